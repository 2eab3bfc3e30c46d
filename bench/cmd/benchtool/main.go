// Command benchtool prepares and drives the side-by-side DNS benchmark of
// bench/run.sh: it generates the blocked names, the orders, the RPZ zone
// and the dnsperf query files; serves the authoritative upstream both
// resolvers forward to; submits and amends orders over writ's API; waits
// for a resolver to block a name; and turns dnsperf's output into the
// results table. It is a benchmark tool, not part of writ.
//
// Usage:
//
//	benchtool gen -n N -dir DIR [-runs R] [-lines L]
//	benchtool upstream -addr 127.0.0.1:PORT
//	benchtool submit -api URL -token FILE -dir DIR
//	benchtool amend -api URL -token FILE -dir DIR -rate 100 -duration 20s
//	benchtool wait -server ADDR -name NAME -rcode RCODE [-timeout 300s]
//	benchtool dnsperf FILE          (a result line from dnsperf's output)
//	dnsperf -v ... | benchtool latency
//	benchtool report RESULTS.tsv
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool gen|upstream|submit|amend|wait|dnsperf|latency|report ...")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"gen":      gen,
		"upstream": upstream,
		"submit":   submit,
		"amend":    amend,
		"wait":     wait,
		"dnsperf":  parseDnsperf,
		"latency":  latency,
		"report":   report,
	}
	run, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "benchtool: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := run(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "benchtool %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}
