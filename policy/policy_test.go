package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
)

var (
	now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	fr  = jurisdiction.MustParse("FR")
	it  = jurisdiction.MustParse("IT")
	de  = jurisdiction.MustParse("DE")
	us  = jurisdiction.MustParse("US")
)

func mkOrder(id string, juris []string, targets ...order.Target) *order.Order {
	for i := range targets {
		if targets[i].State == "" {
			targets[i].State = order.TargetActive
		}
	}
	return &order.Order{
		ID:           id,
		Authority:    order.Authority{ID: "a-" + id, Name: "Authority " + id, Kind: order.Court, Jurisdiction: juris[0]},
		LegalBasis:   order.LegalBasis{Case: "case " + id},
		Jurisdiction: juris,
		Effective:    now.Add(-time.Hour),
		Expires:      now.Add(time.Hour),
		Received:     now.Add(-2 * time.Hour),
		Targets:      targets,
	}
}

func sub(name string) order.Target   { return order.Target{FQDN: name, Subdomains: true} }
func exact(name string) order.Target { return order.Target{FQDN: name} }
func ip(p string) order.Target       { return order.Target{IP: p} }

func id(o *OrderRef) string {
	if o == nil {
		return ""
	}
	return o.ID
}

func TestSubdomainCoverage(t *testing.T) {
	s := Compile([]*order.Order{mkOrder("fr1", []string{"FR"}, sub("motogpstream.me"), exact("exact.example"))}, now, 7, nil)
	cases := map[string]bool{
		"motogpstream.me":          true,
		"motogpstream.me.":         true,
		"a.b.motogpstream.me":      true,
		"A.B.MotoGPStream.ME.":     true,
		"motogpstream.me.evil.com": false,
		"notmotogpstream.me":       false,
		"me":                       false,
		"exact.example":            true,
		"www.exact.example":        false,
		"example":                  false,
		"":                         false,
		".":                        false,
		"a\\.motogpstream.me.":     false, // one label "a.motogpstream" under me.
		"x.a\\.b.motogpstream.me.": true,  // label "a.b" under motogpstream.me
		"motogpstream\\.me.":       false,
		"a..motogpstream.me":       true, // malformed, but under the blocked domain either way
		"motogpstream.me\\.":       false,
	}
	for name, want := range cases {
		if got := s.MatchName(name, fr) != nil; got != want {
			t.Errorf("MatchName(%q, FR) blocked=%v, want %v", name, got, want)
		}
		if s.MatchName(name, it) != nil || s.MatchName(name, jurisdiction.Unknown) != nil {
			t.Errorf("MatchName(%q) blocked outside FR", name)
		}
	}
	if s.Version() != 7 || s.Names() != 2 {
		t.Errorf("version %d names %d", s.Version(), s.Names())
	}
}

func TestScopes(t *testing.T) {
	orders := []*order.Order{
		mkOrder("fr", []string{"FR"}, sub("shared.example")),
		mkOrder("it", []string{"IT"}, sub("shared.example"), exact("only-it.example")),
		mkOrder("eu", []string{"EU"}, exact("www.eu-wide.example")),
	}
	s := Compile(orders, now, 1, nil)
	check := func(name string, c jurisdiction.Code, want string) {
		t.Helper()
		if got := id(s.MatchName(name, c)); got != want {
			t.Errorf("MatchName(%q, %s) = %q, want %q", name, c, got, want)
		}
	}
	check("x.shared.example", fr, "fr")
	check("x.shared.example", it, "it")
	check("x.shared.example", de, "")
	check("only-it.example", it, "it")
	check("only-it.example", fr, "")
	check("www.eu-wide.example", de, "eu")
	check("www.eu-wide.example", fr, "eu")
	check("www.eu-wide.example", us, "")
	check("www.eu-wide.example", jurisdiction.Unknown, "")
	if s.Scope() != jurisdiction.EUMembers() {
		t.Errorf("scope = %v", s.Scope())
	}
}

func TestMostSpecificTargetIsCited(t *testing.T) {
	s := Compile([]*order.Order{
		mkOrder("broad", []string{"FR"}, sub("example.org")),
		mkOrder("narrow", []string{"FR"}, sub("www.example.org")),
	}, now, 1, nil)
	if got := id(s.MatchName("a.www.example.org", fr)); got != "narrow" {
		t.Errorf("cited %q", got)
	}
	if got := id(s.MatchName("mail.example.org", fr)); got != "broad" {
		t.Errorf("cited %q", got)
	}
}

func TestPrefixesInheritEnclosingOrders(t *testing.T) {
	s := Compile([]*order.Order{
		mkOrder("fr24", []string{"FR"}, ip("203.0.113.0/24")),
		mkOrder("it32", []string{"IT"}, ip("203.0.113.5/32"), ip("2001:db8::/48")),
	}, now, 1, nil)
	a := netip.MustParseAddr
	check := func(addr string, c jurisdiction.Code, want string) {
		t.Helper()
		if got := id(s.MatchAddr(a(addr), c)); got != want {
			t.Errorf("MatchAddr(%s, %s) = %q, want %q", addr, c, got, want)
		}
	}
	check("203.0.113.5", fr, "fr24") // the /32 of another scope must not hide the /24
	check("203.0.113.5", it, "it32")
	check("203.0.113.6", it, "")
	check("203.0.113.6", fr, "fr24")
	check("203.0.114.1", fr, "")
	check("::ffff:203.0.113.9", fr, "fr24")
	check("2001:db8:1::1", it, "")
	check("2001:db8::1", it, "it32")
	check("2001:db8::1", us, "")
	if n := len(s.ExplainAddr(a("203.0.113.5"))); n != 2 {
		t.Errorf("ExplainAddr found %d orders", n)
	}
}

func TestOnlyEnforcedOrdersAndTargetsCompile(t *testing.T) {
	active := mkOrder("active", []string{"FR"}, exact("active.example"), order.Target{FQDN: "held.example", State: order.TargetHeld, HoldReason: "x"})
	expired := mkOrder("expired", []string{"FR"}, exact("expired.example"))
	expired.Expires = now
	scheduled := mkOrder("scheduled", []string{"FR"}, exact("scheduled.example"))
	scheduled.Effective = now.Add(30 * time.Minute)
	revoked := mkOrder("revoked", []string{"FR"}, exact("revoked.example"))
	revoked.Disposition = order.Revoked
	s := Compile([]*order.Order{active, expired, scheduled, revoked}, now, 1, nil)
	for name, want := range map[string]bool{"active.example": true, "held.example": false, "expired.example": false, "scheduled.example": false, "revoked.example": false} {
		if got := s.MatchName(name, fr) != nil; got != want {
			t.Errorf("%s blocked=%v want %v", name, got, want)
		}
	}
	if !s.ValidUntil().Equal(scheduled.Effective) {
		t.Errorf("ValidUntil = %v, want %v", s.ValidUntil(), scheduled.Effective)
	}
	later := Compile([]*order.Order{active, expired, scheduled, revoked}, scheduled.Effective, 1, nil)
	if later.MatchName("scheduled.example", fr) == nil {
		t.Error("scheduled order not enforced at its effective time")
	}
	if !later.ValidUntil().Equal(active.Expires) {
		t.Errorf("ValidUntil = %v", later.ValidUntil())
	}
}

func TestCountersSurviveRecompilation(t *testing.T) {
	cs := &CounterSet{}
	o := mkOrder("o", []string{"FR"}, exact("a.example"))
	s1 := Compile([]*order.Order{o}, now, 1, cs)
	s1.MatchName("a.example", fr).Counters.Blocks.Add(1)
	s2 := Compile([]*order.Order{o}, now, 2, cs)
	if got := s2.MatchName("a.example", fr).Counters.Blocks.Load(); got != 1 {
		t.Fatalf("blocks after recompile = %d", got)
	}
	c := cs.For("o")
	if _, ok := c.FirstBlock(now); ok {
		t.Fatal("latency reported without acknowledgement")
	}
	c.Acknowledged(now)
	if d, ok := c.FirstBlock(now.Add(3 * time.Millisecond)); !ok || d != 3*time.Millisecond {
		t.Fatalf("first block = %v %v", d, ok)
	}
	if _, ok := c.FirstBlock(now.Add(time.Second)); ok {
		t.Fatal("second block reported as first")
	}
}

func TestLookupsDoNotAllocate(t *testing.T) {
	s := Compile([]*order.Order{mkOrder("o", []string{"FR"}, sub("motogpstream.me"), ip("203.0.113.0/24"))}, now, 1, nil)
	a := netip.MustParseAddr("203.0.113.7")
	allocs := testing.AllocsPerRun(1000, func() {
		s.MatchName("a.b.MotoGPStream.me.", fr)
		s.MatchName("www.example.com.", fr)
		s.MatchAddr(a, fr)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per lookup", allocs)
	}
}

// naiveMatch is the obviously correct definition MatchName must agree with.
func naiveMatch(orders []*order.Order, name string, c jurisdiction.Code) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	for _, o := range orders {
		if !o.Scope().Has(c) {
			continue
		}
		for _, t := range o.Targets {
			if t.FQDN == name || t.Subdomains && strings.HasSuffix(name, "."+t.FQDN) {
				return true
			}
		}
	}
	return false
}

func TestAgreesWithNaiveDefinition(t *testing.T) {
	checkAgainstNaive(t, rand.New(rand.NewPCG(1, 2)), []string{"a", "b", "www", "cdn", "stream", "motogp", "x1", "live"},
		[]string{"me", "lat", "com", "fr"}, 30, 5)
}

// checkAgainstNaive compiles orders (up to maxTargets names each, built
// of labels and tlds, in three jurisdictions) and checks MatchName
// against naiveMatch on 20,000 random queries, some in upper case with a
// final dot.
func checkAgainstNaive(t *testing.T, r *rand.Rand, labels, tlds []string, orders, maxTargets int) {
	t.Helper()
	rname := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = labels[r.IntN(len(labels))]
		}
		return strings.Join(parts, ".") + "." + tlds[r.IntN(len(tlds))]
	}
	codes := []string{"FR", "IT", "DE"}
	var os []*order.Order
	for i := range orders {
		var ts []order.Target
		for range 1 + r.IntN(maxTargets) {
			ts = append(ts, order.Target{FQDN: rname(1 + r.IntN(3)), Subdomains: r.IntN(2) == 0})
		}
		os = append(os, mkOrder(fmt.Sprint(i), []string{codes[r.IntN(3)]}, ts...))
	}
	s := Compile(os, now, 1, nil)
	for range 20000 {
		name := rname(1 + r.IntN(5))
		if r.IntN(3) == 0 {
			name = strings.ToUpper(name) + "."
		}
		c := jurisdiction.MustParse(codes[r.IntN(3)])
		if got, want := s.MatchName(name, c) != nil, naiveMatch(os, name, c); got != want {
			t.Fatalf("MatchName(%q, %s) = %v, naive %v", name, c, got, want)
		}
	}
}

func TestHolder(t *testing.T) {
	h := NewHolder(nil)
	if h.Load() == nil || h.Load().MatchName("a.example", fr) != nil {
		t.Fatal("empty holder")
	}
	s := Compile([]*order.Order{mkOrder("o", []string{"FR"}, exact("a.example"))}, now, 3, nil)
	h.Store(s)
	if h.Load().Version() != 3 || h.Load().MatchName("a.example", fr) == nil {
		t.Fatal("store not visible")
	}
}

func TestMatchURL(t *testing.T) {
	s := Compile([]*order.Order{
		mkOrder("live", []string{"FR"}, order.Target{URL: "https://stream.example/live"}),
		mkOrder("port", []string{"FR"}, order.Target{URL: "http://stream.example:8080/"}),
		mkOrder("dir", []string{"IT"}, order.Target{URL: "https://stream.example/live/"}),
		mkOrder("escaped", []string{"FR"}, order.Target{URL: "https://stream.example/%6Cive2/a%20b"}),
		mkOrder("dots", []string{"FR"}, order.Target{URL: "https://stream.example/x/../dotted//y"}),
	}, now, 1, nil)
	cases := []struct {
		host, port, path string
		c                jurisdiction.Code
		want             string
	}{
		{"stream.example", "", "/live", fr, "live"},
		{"stream.example", "443", "/live/match1", fr, "live"},
		{"stream.example", "80", "/live?x=1", fr, "live"}, // http too
		{"stream.example", "", "/lively", fr, ""},
		{"stream.example", "", "/", fr, ""},
		{"stream.example", "8080", "/anything", fr, "port"},
		{"stream.example", "8443", "/live", fr, ""},
		{"other.example", "", "/live", fr, ""},
		{"stream.example", "", "/live/x", it, "dir"},
		{"stream.example", "", "/live", it, ""}, // "/live/" covers what is under it
		{"stream.example", "", "/live", us, ""},
		{"stream.example", "", "/live", jurisdiction.Unknown, ""},
		// Targets are compiled in the form requests are matched in.
		{"stream.example", "", CanonicalPath("/live2/a b"), fr, "escaped"},
		{"stream.example", "", CanonicalPath("/dotted/y/z"), fr, "dots"},
	}
	for _, tc := range cases {
		if got := id(s.MatchURL(tc.host, tc.port, tc.path, tc.c)); got != tc.want {
			t.Errorf("MatchURL(%s, %q, %s, %s) = %q, want %q", tc.host, tc.port, tc.path, tc.c, got, tc.want)
		}
	}
	if s.URLs() != 5 || s.Names() != 0 {
		t.Errorf("URLs %d, names %d", s.URLs(), s.Names())
	}
	// A URL target never reaches the DNS name table.
	if s.MatchName("stream.example", fr) != nil {
		t.Error("URL target blocked the whole name")
	}
	if n := testing.AllocsPerRun(100, func() { s.MatchURL("stream.example", "", "/live/1", fr) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// A URL target with a query blocks its own resource only: its path
// exactly, for requests carrying each of its parameters, whatever their
// order, the other parameters or the percent-encoding; never the rest of
// the path.
func TestMatchURLQuery(t *testing.T) {
	s := Compile([]*order.Order{
		mkOrder("video", []string{"FR"}, order.Target{URL: "https://tube.example/watch?v=abc%20d&list=x"}),
		mkOrder("page", []string{"FR"}, order.Target{URL: "https://tube.example/page?id=7"}),
		mkOrder("all", []string{"FR"}, order.Target{URL: "https://tube.example/all"}),
	}, now, 1, nil)
	cases := []struct {
		path, query string
		c           jurisdiction.Code
		want        string
	}{
		{"/watch", "v=abc%20d&list=x", fr, "video"},
		{"/watch", "list=x&t=10&v=abc+d", fr, "video"},  // any order, others, '+' for a space
		{"/watch", "%6Cist=%78&v=abc%20d", fr, "video"}, // encoded alike
		{"/watch", "v=abc%20d", fr, ""},                 // a parameter missing
		{"/watch", "v=abc%20e&list=x", fr, ""},          // another video
		{"/watch", "", fr, ""},                          // the path alone
		{"/watch/", "v=abc%20d&list=x", fr, ""},         // another path
		{"/watch/more", "v=abc%20d&list=x", fr, ""},     // not a tree
		{"/watch", "v=abc%20d&list=x", it, ""},          // out of scope
		{"/page", "id=7", fr, "page"},
		{"/page", "id=77", fr, ""},
		{"/page", "xid=7", fr, ""},
		{"/page", "id=7%", fr, ""}, // a stray %: itself
		{"/all/x", "anything=1", fr, "all"},
	}
	for _, tc := range cases {
		if got := id(s.MatchURLQuery("tube.example", "", tc.path, tc.query, tc.c)); got != tc.want {
			t.Errorf("MatchURLQuery(%s?%s, %s) = %q, want %q", tc.path, tc.query, tc.c, got, tc.want)
		}
	}
	if got := id(s.MatchURL("tube.example", "", "/watch", fr)); got != "" {
		t.Errorf("MatchURL without a query matched the query target %s", got)
	}
	if n := testing.AllocsPerRun(100, func() { s.MatchURLQuery("tube.example", "", "/watch", "t=1&list=x&v=abc+d", fr) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func TestEachNameAndPrefix(t *testing.T) {
	s := Compile([]*order.Order{
		mkOrder("a", []string{"FR"}, sub("motogpstream.me"), exact("exact.example"), ip("203.0.113.0/24")),
		mkOrder("b", []string{"IT"}, exact("motogpstream.me"), ip("203.0.113.5/32")),
	}, now, 1, nil)
	got := map[string]string{}
	s.EachName(func(name string, self, below []*OrderRef) bool {
		var ids []string
		for _, o := range self {
			ids = append(ids, o.ID)
		}
		ids = append(ids, "|")
		for _, o := range below {
			ids = append(ids, o.ID)
		}
		got[name] = strings.Join(ids, "")
		return true
	})
	want := map[string]string{"motogpstream.me": "ab|a", "exact.example": "a|"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("EachName: %v, want %v", got, want)
	}
	prefixes := map[string]int{}
	s.EachPrefix(func(p netip.Prefix, orders []*OrderRef) bool {
		prefixes[p.String()] = len(orders)
		return true
	})
	// The /32 carries the /24's order too.
	if prefixes["203.0.113.0/24"] != 1 || prefixes["203.0.113.5/32"] != 2 || len(prefixes) != 2 {
		t.Errorf("EachPrefix: %v", prefixes)
	}
}

func TestHolderChanged(t *testing.T) {
	h := NewHolder(nil)
	ch := h.Changed()
	select {
	case <-ch:
		t.Fatal("changed before any Store")
	default:
	}
	h.Store(Compile(nil, now, 5, nil))
	select {
	case <-ch:
	default:
		t.Fatal("Store did not signal")
	}
	if h.Load().Version() != 5 {
		t.Fatal("wrong snapshot")
	}
	select {
	case <-h.Changed():
		t.Fatal("new channel already closed")
	default:
	}
}
