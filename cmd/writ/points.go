package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// writ point: the enforcement points that send receipts, and retiring
// those taken out of service.

func init() {
	register(command{name: "point", rank: 33, run: runPoint, usage: []string{
		"writ point list                 enforcement points and the policy version each applied",
		"writ point retire NAME          a point taken out of service is no longer awaited (operator)",
	}})
}

const pointHelp = `
Usage:
  writ point list
  writ point retire NAME

Enforcement points (the DNS server and the HTTP gate of each node, RPZ
secondaries, external points that send receipts) each say which policy
version they apply. An order counts as enforced at a point once the point
has applied a version that includes it; until then it is pending there,
and overdue past its authority's deadline. A point taken out of service (a
node, gate or secondary removed) would stay pending for every new order
and hold Piracy Shield reports back: retire it (operator credentials).
Its receipts are kept; a receipt for a later policy version puts it back
in service.

Examples:
  writ point list
  writ point retire gate@edge-2
  writ point retire rpz:192.0.2.53/fr.rpz.writ
`

func runPoint(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(stdout, strings.TrimLeft(pointHelp, "\n"))
		if len(args) == 0 {
			return usageError("point needs a subcommand: list or retire")
		}
		return nil
	}
	sub, args := args[0], args[1:]
	fs := newFlags("point "+sub, pointHelp, stdout, stderr)
	c := clientFlags(fs)
	switch sub {
	case "list":
		asJSON := fs.Bool("json", false, "print the server's JSON answer")
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 0 {
			return usageError("point list takes no arguments")
		}
		var out struct {
			Points []struct {
				Point   string    `json:"point"`
				Version uint64    `json:"version"`
				At      time.Time `json:"at"`
				Scope   string    `json:"scope"`
			} `json:"points"`
			Retired []struct {
				Point     string    `json:"point"`
				Version   uint64    `json:"version"`
				RetiredAt time.Time `json:"retired_at"`
				RetiredBy string    `json:"retired_by"`
			} `json:"retired"`
			PolicyVersion uint64 `json:"policy_version"`
		}
		if err := c.do("GET", "/v1/points", nil, false, &out); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, out)
		}
		fmt.Fprintf(stdout, "policy version %d\n", out.PolicyVersion)
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "POINT\tSCOPE\tVERSION\tSINCE\tSTATE")
		for _, p := range out.Points {
			scope, state := p.Scope, "current"
			if scope == "" {
				scope = "all"
			}
			if p.Version < out.PolicyVersion {
				state = fmt.Sprintf("%d behind", out.PolicyVersion-p.Version)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", p.Point, scope, p.Version, p.At.Format(time.RFC3339), state)
		}
		for _, p := range out.Retired {
			fmt.Fprintf(tw, "%s\t-\t%d\t%s\tretired by %s\n", p.Point, p.Version, p.RetiredAt.Format(time.RFC3339), p.RetiredBy)
		}
		return tw.Flush()
	case "retire":
		pos, err := parse(fs, args)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			return usageError("point retire takes one point name, as writ point list shows it")
		}
		body, _ := json.Marshal(map[string]string{"point": pos[0]})
		if err := c.do("POST", "/v1/points/retire", body, true, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "enforcement point %s retired: orders no longer wait for it\n", pos[0])
		return nil
	default:
		return usageError("unknown point subcommand %q: want list or retire", sub)
	}
}
