package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/writ-project/writ/internal/namegen"
)

// The query mixes. Every mix is in dnsperf's input format, one
// "name type" a line.
//
//   - cached: names the resolvers answered once already (the warm-up),
//     so every query is a cache hit.
//   - blocked: blocked names, uniformly over all N of them, a third of
//     them below a name blocked with its subdomains.
//   - mixed: 80% cached, 10% blocked, 10% names never asked before,
//     which both resolvers forward to the upstream (a file per run, so
//     that each run's misses are real misses for each resolver).
const (
	allowedNames = 10_000
	namesPerOrd  = 1000
)

func gen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
	n := fs.Int("n", 10_000, "blocked names")
	dir := fs.String("dir", "", "output directory")
	runs := fs.Int("runs", 3, "mixed-query files, one per run")
	lines := fs.Int("lines", 400_000, "queries per file")
	fs.Parse(args)
	if *dir == "" {
		return fmt.Errorf("-dir is required")
	}
	if err := os.MkdirAll(filepath.Join(*dir, "orders"), 0o755); err != nil {
		return err
	}
	// Seeds differ per set, so blocked, allowed and missed names are
	// drawn from the same distribution but are distinct sets.
	blocked := namegen.New(1).Names(*n)
	sub := func(i int) bool { return i%3 == 0 }
	// Allowed names and misses come from the same generator with other
	// seeds; those it happens to draw among the blocked ones, or below a
	// name blocked with its subdomains, are left out, so that the cached
	// mix is all allowed names and the misses all reach the upstream.
	isBlocked := blockedSet(blocked, sub)
	allowedGen := namegen.New(2)
	allowed := make([]string, 0, allowedNames)
	for len(allowed) < allowedNames {
		if name := allowedGen.Name(); !isBlocked(name) {
			allowed = append(allowed, name)
		}
	}

	if err := writeOrders(*dir, blocked, sub); err != nil {
		return err
	}
	if err := writeRPZ(filepath.Join(*dir, "rpz.zone"), blocked, sub); err != nil {
		return err
	}
	if err := writeLines(filepath.Join(*dir, "allowed.txt"), len(allowed), func(i int) string { return allowed[i] + " A" }); err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(3, 4))
	blockedQuery := func() string {
		i := r.IntN(len(blocked))
		if sub(i) && r.IntN(2) == 0 {
			return "www." + blocked[i] + " A"
		}
		return blocked[i] + " A"
	}
	if err := writeLines(filepath.Join(*dir, "q-cached.txt"), *lines, func(int) string { return allowed[r.IntN(len(allowed))] + " A" }); err != nil {
		return err
	}
	if len(blocked) > 0 {
		if err := writeLines(filepath.Join(*dir, "q-blocked.txt"), *lines, func(int) string { return blockedQuery() }); err != nil {
			return err
		}
	}
	for run := range *runs {
		misses := namegen.New(uint64(1000 + run))
		err := writeLines(filepath.Join(*dir, fmt.Sprintf("q-mixed-%d.txt", run)), *lines, func(i int) string {
			switch p := r.IntN(10); {
			case p == 0 && len(blocked) > 0:
				return blockedQuery()
			case p == 1:
				// A label unique to this run and line: never cached.
				for {
					if name := misses.Name(); !isBlocked(name) {
						return fmt.Sprintf("m%dx%d.%s A", run, i, name)
					}
				}
			}
			return allowed[r.IntN(len(allowed))] + " A"
		})
		if err != nil {
			return err
		}
	}
	// The probe tells when a resolver is ready: the last blocked name or,
	// with none, an allowed one.
	probe := allowed[0]
	if len(blocked) > 0 {
		probe = blocked[len(blocked)-1]
	}
	return os.WriteFile(filepath.Join(*dir, "probe"), []byte(probe+"\n"), 0o644)
}

// submission is an order as writ's API takes it.
type submission struct {
	Authority    map[string]string `json:"authority"`
	LegalBasis   map[string]string `json:"legal_basis"`
	Jurisdiction []string          `json:"jurisdiction"`
	Effective    string            `json:"effective"`
	Expires      string            `json:"expires"`
	Targets      []map[string]any  `json:"targets"`
}

// writeOrders splits the names into orders of 1,000 names of a French
// court, as a regulator's list arrives in batches.
func writeOrders(dir string, names []string, sub func(int) bool) error {
	now := time.Now().UTC()
	for k := 0; k*namesPerOrd < len(names); k++ {
		end := min(len(names), (k+1)*namesPerOrd)
		s := submission{
			Authority:    map[string]string{"id": "bench-court", "name": "Benchmark court", "kind": "court", "jurisdiction": "FR"},
			LegalBasis:   map[string]string{"statute": "Benchmark statute", "case": fmt.Sprintf("Bench v. Names, batch %d", k)},
			Jurisdiction: []string{"FR"},
			Effective:    now.Add(-time.Hour).Format(time.RFC3339),
			Expires:      now.Add(365 * 24 * time.Hour).Format(time.RFC3339),
		}
		for i := k * namesPerOrd; i < end; i++ {
			s.Targets = append(s.Targets, map[string]any{"fqdn": names[i], "subdomains": sub(i)})
		}
		b, err := json.Marshal(s)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "orders", fmt.Sprintf("o%05d.json", k)), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeRPZ writes the same names as a response policy zone: "CNAME ."
// answers NXDOMAIN, and a wildcard covers the subdomains.
func writeRPZ(path string, names []string, sub func(int) bool) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintf(w, "$TTL 300\n@ IN SOA localhost. hostmaster.localhost. 1 3600 600 86400 300\n@ IN NS localhost.\n")
	for i, n := range names {
		fmt.Fprintf(w, "%s CNAME .\n", n)
		if sub(i) {
			fmt.Fprintf(w, "*.%s CNAME .\n", n)
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func writeLines(path string, n int, line func(i int) string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for i := range n {
		w.WriteString(line(i))
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return f.Close()
}

// blockedSet returns whether a name is blocked by the generated orders:
// it is one of the names, or lies below one blocked with its subdomains.
func blockedSet(names []string, sub func(int) bool) func(string) bool {
	exact := make(map[string]bool, len(names))
	below := make(map[string]bool, len(names)/3)
	for i, n := range names {
		exact[n] = true
		if sub(i) {
			below[n] = true
		}
	}
	return func(name string) bool {
		if exact[name] {
			return true
		}
		for i := range len(name) {
			if name[i] == '.' && below[name[i+1:]] {
				return true
			}
		}
		return false
	}
}
