package policy

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
)

// nameOfLen returns a name of exactly n bytes (n ≥ 4) under the TLD "ex",
// its other labels made of c and at most 20 bytes long.
func nameOfLen(c byte, n int) string {
	body := []byte(strings.Repeat(string(c), n-3))
	for i := 20; i < len(body)-1; i += 21 {
		body[i] = '.'
	}
	return string(body) + ".ex"
}

// boundaryLengths straddles every boundary of the slot layout: the word
// size, the head kept in a slot for a long name, the longest name a slot
// holds whole, the longest length its length byte holds.
var boundaryLengths = []int{4, 7, 8, 9, 15, 16, 17, headLen - 1, headLen, headLen + 1,
	inlineMax - 1, inlineMax, inlineMax + 1, inlineMax + 7, inlineMax + 8, inlineMax + 9,
	63, 64, 200, 253, longLen - 1, longLen, longLen + 1, 300}

// sharedPrefixNames returns, for each boundary length, names of that
// length that differ from one another in a single byte: the last one, the
// last of a slot's head, the first kept in the arena, the first one.
func sharedPrefixNames() []string {
	var out []string
	for _, n := range boundaryLengths {
		base := nameOfLen('a', n)
		out = append(out, base)
		for _, at := range []int{0, headLen - 1, headLen, inlineMax - 1, inlineMax, n - 4} {
			if at < 0 || at >= n-3 || base[at] == '.' {
				continue
			}
			v := []byte(base)
			v[at] = 'b'
			out = append(out, string(v))
		}
		// and a name that is the same but one byte shorter or longer
		out = append(out, nameOfLen('a', n+1)[1:], "a"+base)
	}
	seen := map[string]bool{}
	uniq := out[:0]
	for _, s := range out {
		if !seen[s] {
			seen[s] = true
			uniq = append(uniq, s)
		}
	}
	return uniq
}

func labelCount(name string) int { return strings.Count(name, ".") + 1 }

// TestNameTableBoundaries: names at and around every length boundary of a
// slot, sharing all but one byte, are each found as themselves, in any
// letter case, and a name not stored is never found, whether the table
// is a delta (insert) or a base (seal).
func TestNameTableBoundaries(t *testing.T) {
	names := sharedPrefixNames()
	stored, absent := []string{}, []string{}
	for i, n := range names {
		if i%3 == 2 {
			absent = append(absent, n)
		} else {
			stored = append(stored, n)
		}
	}
	for _, base := range []bool{false, true} {
		t.Run(fmt.Sprint("base=", base), func(t *testing.T) {
			var tb nameTable
			if base {
				tb = newBaseTable(len(stored), 0) // arena grown on demand
			} else {
				tb = newNameTable(len(stored), 0)
			}
			for i, n := range stored {
				tb.insert(n).self = uint32(i + 1)
			}
			if again := tb.insert(stored[0]); again.self != 1 || tb.count != len(stored) {
				t.Fatalf("inserting a stored name again added it: count %d", tb.count)
			}
			if base {
				tb.seal()
			}
			for i, n := range stored {
				sl := tb.find(n)
				if sl == nil || sl.self != uint32(i+1) || tb.name(sl) != n {
					t.Fatalf("find(%q) = %v", n, sl)
				}
				up := strings.ToUpper(n)
				if got := tb.findMixed(keysOf(up).m, up, 0, len(up)); got != sl {
					t.Fatalf("findMixed(%q) did not find %q", up, n)
				}
				// as a suffix of a longer query, as MatchName probes it
				q := "www." + up + "."
				if got := tb.findMixed(keysOf(n).m, q, 4, len(q)-1); got != sl {
					t.Fatalf("findMixed(%q[4:]) did not find %q", q, n)
				}
			}
			for _, n := range absent {
				if sl := tb.find(n); sl != nil {
					t.Fatalf("find(%q) found %q", n, tb.name(sl))
				}
				if sl := tb.findMixed(keysOf(n).m, n, 0, len(n)); sl != nil {
					t.Fatalf("findMixed(%q) found %q", n, tb.name(sl))
				}
			}
		})
	}
}

// TestNameTableCollidingHashes forces every name into the same hash, so
// that they share a home slot, a filter line and a probe run (which
// wraps around the end of the table): only the comparison of the stored
// names tells them apart, and a name that is not stored is not found
// however many of its neighbours share its hash and its first bytes.
func TestNameTableCollidingHashes(t *testing.T) {
	names := sharedPrefixNames()
	const m, ms = 0xffffffff_fffffff0, 0x1234 // home: the last line
	tb := newNameTable(len(names), 0)
	stored := names[:len(names)/2]
	for i, n := range stored {
		tb.insertKeys(keys{m: m, s2: ms, s3: ms, labels: labelCount(n)}, n).below = uint32(i + 1)
	}
	if tb.home(m) != len(tb.slots)-2 || len(stored) < 3 {
		t.Fatalf("home %d of %d slots: the probe run does not wrap", tb.home(m), len(tb.slots))
	}
	if !tb.mayHave(keys{m: m, s2: ms, s3: ms, labels: 2}) {
		t.Fatal("filter rejects the shared hash")
	}
	for i, n := range stored {
		sl := tb.findMixed(m, strings.ToUpper(n), 0, len(n))
		if sl == nil || sl.below != uint32(i+1) {
			t.Fatalf("findMixed(%q) = %v", n, sl)
		}
	}
	for _, n := range names[len(names)/2:] {
		if sl := tb.findMixed(m, n, 0, len(n)); sl != nil {
			t.Fatalf("findMixed(%q) found %q", n, tb.name(sl))
		}
	}
}

// TestMatchNameBoundaryNames: names of every boundary length, stored
// with or without subdomains, match as the naive definition says, as
// themselves, under a subdomain and with a neighbour's name.
func TestMatchNameBoundaryNames(t *testing.T) {
	names := sharedPrefixNames()
	var ts []order.Target
	for i, n := range names {
		if i%3 != 2 {
			ts = append(ts, order.Target{FQDN: n, Subdomains: i%2 == 0})
		}
	}
	orders := []*order.Order{mkOrder("o", []string{"FR"}, ts...)}
	check := func(s *Snapshot) {
		t.Helper()
		for _, n := range names {
			for _, q := range []string{n, n + ".", strings.ToUpper(n), "www." + n, "a.b." + strings.ToUpper(n) + ".", n[1:], "x" + n} {
				if got, want := s.MatchName(q, fr) != nil, naiveMatch(orders, q, fr); got != want {
					t.Fatalf("MatchName(%q) = %v, naive %v", q, got, want)
				}
			}
		}
	}
	s := Compile(orders, now, 1, nil)
	check(s)
	if g := eachName(s); strings.Count(g, "\n")+1 != len(ts) {
		t.Fatalf("EachName lists %d names, want %d", strings.Count(g, "\n")+1, len(ts))
	}
	for _, tg := range ts {
		ex := s.ExplainName(tg.FQDN)
		if !slices.ContainsFunc(ex, func(m Match) bool { return strings.TrimSuffix(m.Target, " (and subdomains)") == tg.FQDN }) {
			t.Fatalf("ExplainName(%q) = %v", tg.FQDN, ex)
		}
	}
	// The same names arriving one amendment at a time live in the deltas.
	u := NewUpdater(nil, nil)
	o := mkOrder("o", []string{"FR"}, sub("seed.example"))
	u.Update([]*order.Order{o}, now, 1)
	for i, tg := range ts {
		o = o.Clone()
		o.Targets = append(o.Targets, order.Target{FQDN: tg.FQDN, Subdomains: tg.Subdomains, State: order.TargetActive})
		s = u.Update([]*order.Order{o}, now, uint64(i+2))
	}
	orders = []*order.Order{o}
	check(s)
	if g, w := eachName(s), eachName(Compile(orders, now, 1, nil)); g != w {
		t.Fatalf("EachName after updates\n%s\ncompiled anew\n%s", g, w)
	}
}

// TestMatchNameCrowdedSites: a site with more names than its filter line
// holds (a shared suffix such as co.uk, a platform's subdomains) has them
// in their own lines; lookups agree with the naive definition for its
// names, their subdomains and names near them, and for quieter sites.
func TestMatchNameCrowdedSites(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var ts []order.Target
	var queries []string
	for i := range 400 {
		crowd := fmt.Sprintf("s%d.crowd.example", i)  // a crowded site
		deep := fmt.Sprintf("x.y%d.z.co.uk", i)       // crowded at two and three labels
		mid := fmt.Sprintf("h%d.m%d.co.uk", i%5, i/5) // a crowded site, then five names each
		quiet := fmt.Sprintf("q%d.quiet%d.example", i%3, i)
		for _, n := range []string{crowd, deep, mid, quiet} {
			if r.IntN(4) != 0 {
				ts = append(ts, order.Target{FQDN: n, Subdomains: r.IntN(2) == 0})
			}
			queries = append(queries, n, "w."+n, n[2:], "crowd.example", "co.uk", "z.co.uk")
		}
	}
	orders := []*order.Order{mkOrder("o", []string{"FR"}, ts...)}
	s := Compile(orders, now, 1, nil)
	for _, site := range []string{"crowd.example", "co.uk", "z.co.uk"} {
		if !isCrowded(s.names.filter.line(keysOf(site).m)) {
			t.Fatalf("%s is not marked crowded: the test does not exercise crowded sites", site)
		}
	}
	if isCrowded(s.names.filter.line(keysOf("m7.co.uk").m)) {
		t.Fatal("m7.co.uk is marked crowded: the test does not exercise names filed under three labels")
	}
	for _, q := range queries {
		if got, want := s.MatchName(q, fr) != nil, naiveMatch(orders, q, fr); got != want {
			t.Fatalf("MatchName(%q) = %v, naive %v", q, got, want)
		}
	}
	// Amendments remove names of the crowded sites from the base and add
	// others to them in the deltas.
	u := NewUpdater(nil, nil)
	u.Update(orders, now, 1)
	o := orders[0]
	for i := range 40 {
		o = o.Clone()
		o.Targets[r.IntN(len(o.Targets))].State = order.TargetRemoved
		o.Targets = append(o.Targets, order.Target{FQDN: fmt.Sprintf("new%d.crowd.example", i), Subdomains: i%2 == 0, State: order.TargetActive})
		queries = append(queries, fmt.Sprintf("new%d.crowd.example", i), fmt.Sprintf("w.new%d.crowd.example", i))
		s = u.Update([]*order.Order{o}, now, uint64(i+2))
	}
	if s.deltas[0] == nil {
		t.Fatal("the amendments were compiled anew")
	}
	active := o.Clone() // naiveMatch does not look at target states
	active.Targets = slices.DeleteFunc(active.Targets, func(t order.Target) bool { return t.State != order.TargetActive })
	orders = []*order.Order{active}
	for _, q := range queries {
		if got, want := s.MatchName(q, fr) != nil, naiveMatch(orders, q, fr); got != want {
			t.Fatalf("after amendments: MatchName(%q) = %v, naive %v", q, got, want)
		}
	}
}

// TestSealReadsCrowdMarks: where a site is marked crowded only by other
// sites' marks (a false positive of the line's mark), its names are filed
// as lookups will look for them. Here every line is marked, or every line
// of a name's site: every name is still found, with its subdomains.
func TestSealReadsCrowdMarks(t *testing.T) {
	names := sharedPrefixNames()
	for _, all := range []bool{true, false} {
		tb := newBaseTable(len(names), 0)
		for _, n := range names {
			tb.insert(n).below = 1
		}
		for i := 7; i < len(tb.filter.words); i += 8 {
			if all {
				tb.filter.words[i] |= crowdMark
			}
		}
		for _, n := range names {
			if !all {
				tb.filter.line(keysOf(n).s2)[7] |= crowdMark
			}
		}
		tb.seal()
		s := &Snapshot{names: tb, maxLabels: tb.maxLabels, nameCount: tb.count, rulesets: []ruleset{{}, {scope: jurisdiction.Of(fr), first: &OrderRef{ID: "o"}, orders: []uint32{0}}}}
		s.scope = s.rulesets[1].scope
		for _, n := range names {
			if !isCrowded(tb.filter.line(keysOf(n).s2)) || tb.find(n) == nil {
				t.Fatalf("all=%v: %q not found", all, n)
			}
			if s.MatchName("w."+n, fr) == nil {
				t.Fatalf("all=%v: w.%s not blocked", all, n)
			}
		}
	}
}

// TestMatchNameDeepQueries: a query of more labels than a wire-format
// name can have (a Host header, say) under a blocked name is blocked: the
// walk from the root never loses its place, however deep the query.
func TestMatchNameDeepQueries(t *testing.T) {
	s := Compile([]*order.Order{mkOrder("o", []string{"FR"}, sub("motogpstream.me"), exact("a.b.c.d.e.example"))}, now, 1, nil)
	for _, labels := range []int{1, 127, 128, 129, 200, 1000} {
		q := strings.Repeat("a.", labels) + "motogpstream.me."
		if s.MatchName(q, fr) == nil {
			t.Errorf("%d labels under motogpstream.me not blocked", labels)
		}
		if q := strings.Repeat("a.", labels) + "a.b.c.d.e.example"; s.MatchName(q, fr) != nil {
			t.Errorf("%d labels under an exact target blocked", labels)
		}
	}
}

// TestAgreesWithNaiveDefinitionLongLabels: TestAgreesWithNaiveDefinition
// with labels long enough that many names do not fit in a slot, and many
// names per site.
func TestAgreesWithNaiveDefinitionLongLabels(t *testing.T) {
	checkAgainstNaive(t, rand.New(rand.NewPCG(3, 4)),
		[]string{"a", "www", "streaming-live-football", "cdn", strings.Repeat("x", 19), strings.Repeat("x", 20), "hd", strings.Repeat("y", 63)},
		[]string{"me", "co.uk", "example"}, 40, 8)
}

// refMatch is a reference for MatchName on any string: the query is
// split into labels at its unescaped dots (one trailing unescaped dot
// dropped), letters compared without regard to ASCII case, and a target
// matches the query itself or, with its subdomains, any query ending in
// its labels.
func refMatch(orders []*order.Order, q string, c jurisdiction.Code) bool {
	if n := len(q); n > 0 && q[n-1] == '.' && !escapedAt(q, n-1) {
		q = q[:n-1]
	}
	var labels []string
	start := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '.' && !escapedAt(q, i) {
			labels = append(labels, asciiLower(q[start:i]))
			start = i + 1
		}
	}
	labels = append(labels, asciiLower(q[start:]))
	for _, o := range orders {
		if !o.Scope().Has(c) {
			continue
		}
		for _, t := range o.Targets {
			tl := strings.Split(t.FQDN, ".")
			if len(tl) > len(labels) || len(tl) < len(labels) && !t.Subdomains {
				continue
			}
			if slices.Equal(tl, labels[len(labels)-len(tl):]) {
				return true
			}
		}
	}
	return false
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// arbitraryOrders stores boundary-length names, a crowded site and short
// names, for queries made of arbitrary bytes.
func arbitraryOrders() []*order.Order {
	var ts []order.Target
	for i, n := range sharedPrefixNames() {
		ts = append(ts, order.Target{FQDN: n, Subdomains: i%2 == 0})
	}
	for i := range 20 {
		ts = append(ts, order.Target{FQDN: fmt.Sprintf("h%d.crowd.example", i), Subdomains: i%2 == 1})
	}
	ts = append(ts, sub("motogpstream.me"), exact("a.b"), sub("x.y.z.w.v.example"))
	return []*order.Order{mkOrder("o", []string{"FR"}, ts...), mkOrder("p", []string{"IT"}, sub("it.example"))}
}

// TestMatchNameArbitraryBytes: queries of arbitrary bytes near the
// stored names (dots, escapes, empty labels, upper case, bytes past
// ASCII, cut or extended at either end) are decided as the reference
// says, by a compiled snapshot and by one with deltas.
func TestMatchNameArbitraryBytes(t *testing.T) {
	orders := arbitraryOrders()
	s := Compile(orders, now, 1, nil)
	u := NewUpdater(nil, nil)
	u.Update([]*order.Order{orders[1]}, now, 1)
	withDeltas := u.Update(orders, now, 2)
	if withDeltas.deltas[0] == nil {
		t.Fatal("no delta")
	}
	var stored []string
	for _, tg := range orders[0].Targets {
		stored = append(stored, tg.FQDN)
	}
	r := rand.New(rand.NewPCG(9, 10))
	alphabet := "..\\\\aAbBxX0-\x00\xff\x80 "
	for range 40000 {
		q := []byte(stored[r.IntN(len(stored))])
		for range r.IntN(4) {
			switch i := r.IntN(len(q) + 1); r.IntN(4) {
			case 0: // insert
				q = slices.Insert(q, i, alphabet[r.IntN(len(alphabet))])
			case 1: // replace
				if i < len(q) {
					q[i] = alphabet[r.IntN(len(alphabet))]
				}
			case 2: // cut
				if r.IntN(2) == 0 {
					q = q[i:]
				} else {
					q = q[:i]
				}
			case 3: // a subdomain, or a case change
				if r.IntN(2) == 0 {
					q = append([]byte("w."), q...)
				} else {
					q = []byte(strings.ToUpper(string(q)))
				}
			}
		}
		if r.IntN(2) == 0 {
			q = append(q, '.')
		}
		for _, c := range []jurisdiction.Code{fr, it} {
			want := refMatch(orders, string(q), c)
			if got := s.MatchName(string(q), c) != nil; got != want {
				t.Fatalf("MatchName(%q, %s) = %v, reference %v", q, c, got, want)
			}
			if got := withDeltas.MatchName(string(q), c) != nil; got != want {
				t.Fatalf("with deltas: MatchName(%q, %s) = %v, reference %v", q, c, got, want)
			}
		}
	}
}
