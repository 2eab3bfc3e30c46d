package policy

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
)

// policyModel drives an Updater and a full Compile with the same random
// sequence of order changes and checks, after each, that they decide
// everything alike.
type policyModel struct {
	t       *testing.T
	r       *rand.Rand
	orders  map[string]*order.Order
	now     time.Time
	version uint64
	names   []string
	ips     []string
	urls    []string
	seq     int
}

func newPolicyModel(t *testing.T, seed uint64) *policyModel {
	m := &policyModel{t: t, r: rand.New(rand.NewPCG(seed, 7)), orders: map[string]*order.Order{}, now: now}
	for _, site := range []string{"motogpstream.me", "live.example", "stream.co.uk", "a.b.example", "live-football-streams-hd.example"} {
		m.names = append(m.names, site, "www."+site, "cdn.www."+site, "x1."+site)
	}
	m.ips = []string{"203.0.113.0/24", "203.0.113.5/32", "203.0.112.0/22", "198.51.100.0/24", "2001:db8::/48", "2001:db8::7/128", "2001:db8::/32"}
	m.urls = []string{"https://stream.example/live", "https://stream.example/live/", "http://stream.example:8080/", "https://other.example/x", "https://stream.example/live?v=1"}
	return m
}

func (m *policyModel) list() []*order.Order {
	out := make([]*order.Order, 0, len(m.orders))
	for _, o := range m.orders {
		out = append(out, o)
	}
	// The registry hands orders over in no particular order.
	m.r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func (m *policyModel) target() order.Target {
	switch m.r.IntN(6) {
	case 0:
		return order.Target{IP: m.ips[m.r.IntN(len(m.ips))], State: order.TargetActive}
	case 1:
		return order.Target{URL: m.urls[m.r.IntN(len(m.urls))], State: order.TargetActive}
	}
	return order.Target{FQDN: m.names[m.r.IntN(len(m.names))], Subdomains: m.r.IntN(2) == 0, State: order.TargetActive}
}

// addTarget appends t unless the order has it already (intake merges
// duplicates).
func addTarget(o *order.Order, t order.Target) {
	for _, x := range o.Targets {
		if x.FQDN == t.FQDN && x.IP == t.IP && x.URL == t.URL {
			return
		}
	}
	o.Targets = append(o.Targets, t)
}

func (m *policyModel) pick() (*order.Order, bool) {
	if len(m.orders) == 0 {
		return nil, false
	}
	ids := make([]string, 0, len(m.orders))
	for id := range m.orders {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return m.orders[ids[m.r.IntN(len(ids))]].Clone(), true
}

// step makes one random change, as the registry would: a changed order
// is a new *order.Order.
func (m *policyModel) step() string {
	codes := []string{"FR", "IT", "DE", "EU"}
	switch op := m.r.IntN(10); {
	case op < 3 || len(m.orders) == 0:
		m.seq++
		o := mkOrder(fmt.Sprintf("o%03d", m.seq), []string{codes[m.r.IntN(len(codes))]})
		o.Received = m.now.Add(-time.Duration(m.r.IntN(100)) * time.Minute) // not always the latest
		o.Effective = m.now.Add(time.Duration(m.r.IntN(40)-10) * time.Minute)
		o.Expires = m.now.Add(time.Duration(20+m.r.IntN(120)) * time.Minute)
		for range 1 + m.r.IntN(5) {
			addTarget(o, m.target())
		}
		m.orders[o.ID] = o
		return "new " + o.ID
	case op < 5:
		o, _ := m.pick()
		for range 1 + m.r.IntN(3) {
			t := m.target()
			if m.r.IntN(4) == 0 {
				t.State = order.TargetHeld
			}
			addTarget(o, t)
		}
		if len(o.Targets) > 1 && m.r.IntN(2) == 0 {
			o.Targets[m.r.IntN(len(o.Targets))].State = order.TargetRemoved
		}
		m.orders[o.ID] = o
		return "amend " + o.ID
	case op == 5:
		o, _ := m.pick()
		i := m.r.IntN(len(o.Targets))
		switch o.Targets[i].State {
		case order.TargetActive:
			o.Targets[i].State = []order.TargetState{order.TargetHeld, order.TargetSuspended}[m.r.IntN(2)]
		case order.TargetHeld, order.TargetSuspended:
			o.Targets[i].State = order.TargetActive
		}
		m.orders[o.ID] = o
		return "target state " + o.ID
	case op == 6:
		o, _ := m.pick()
		switch o.Disposition {
		case "":
			o.Disposition = []order.Disposition{order.Suspended, order.Suspended, order.Revoked}[m.r.IntN(3)]
		case order.Suspended:
			o.Disposition = ""
		}
		m.orders[o.ID] = o
		return "disposition " + o.ID
	case op == 7:
		o, _ := m.pick()
		o.Jurisdiction = []string{codes[m.r.IntN(len(codes))]}
		o.LegalBasis.Case += "'"
		m.orders[o.ID] = o
		return "redescribe " + o.ID
	case op == 8:
		// The same order again, reordered targets: nothing changes.
		o, _ := m.pick()
		m.r.Shuffle(len(o.Targets), func(i, j int) { o.Targets[i], o.Targets[j] = o.Targets[j], o.Targets[i] })
		m.orders[o.ID] = o
		return "shuffle " + o.ID
	default:
		m.now = m.now.Add(time.Duration(1+m.r.IntN(15)) * time.Minute)
		return "time " + m.now.Format("15:04")
	}
}

func ids(refs []*OrderRef) string {
	var out []string
	for _, r := range refs {
		out = append(out, r.ID)
	}
	return strings.Join(out, ",")
}

// equivalent checks that two snapshots decide every query alike.
func (m *policyModel) equivalent(what string, got, want *Snapshot) {
	t := m.t
	t.Helper()
	codes := []jurisdiction.Code{fr, it, de, us, jurisdiction.Unknown}
	var queries []string
	for _, n := range m.names {
		queries = append(queries, n, n+".", "q."+n, "A.B."+strings.ToUpper(n)+".")
	}
	queries = append(queries, "example", "co.uk", "unrelated.example.")
	for _, q := range queries {
		for _, c := range codes {
			if g, w := id(got.MatchName(q, c)), id(want.MatchName(q, c)); g != w {
				t.Fatalf("after %s: MatchName(%q, %s) = %q, compiled anew %q", what, q, c, g, w)
			}
		}
	}
	for _, p := range m.ips {
		pfx := netip.MustParsePrefix(p)
		for _, a := range []netip.Addr{pfx.Addr(), pfx.Addr().Next(), pfx.Addr().Prev()} {
			for _, c := range codes {
				if g, w := id(got.MatchAddr(a, c)), id(want.MatchAddr(a, c)); g != w {
					t.Fatalf("after %s: MatchAddr(%s, %s) = %q, compiled anew %q", what, a, c, g, w)
				}
			}
		}
	}
	for _, path := range []string{"/live", "/live/1", "/", "/x"} {
		for _, host := range []string{"stream.example", "other.example"} {
			for _, port := range []string{"", "8080"} {
				for _, c := range codes {
					for _, q := range []string{"", "v=1", "t=2&v=1"} {
						if g, w := id(got.MatchURLQuery(host, port, path, q, c)), id(want.MatchURLQuery(host, port, path, q, c)); g != w {
							t.Fatalf("after %s: MatchURLQuery(%s:%s%s?%s, %s) = %q, compiled anew %q", what, host, port, path, q, c, g, w)
						}
					}
				}
			}
		}
	}
	if got.Names() != want.Names() || got.Prefixes() != want.Prefixes() || got.URLs() != want.URLs() {
		t.Fatalf("after %s: names/prefixes/URLs %d/%d/%d, compiled anew %d/%d/%d", what,
			got.Names(), got.Prefixes(), got.URLs(), want.Names(), want.Prefixes(), want.URLs())
	}
	if got.Scope() != want.Scope() || !got.ValidUntil().Equal(want.ValidUntil()) || ids(got.Orders()) != ids(want.Orders()) {
		t.Fatalf("after %s: scope %v until %v orders %s, compiled anew %v %v %s", what,
			got.Scope(), got.ValidUntil(), ids(got.Orders()), want.Scope(), want.ValidUntil(), ids(want.Orders()))
	}
	if g, w := eachName(got), eachName(want); g != w {
		t.Fatalf("after %s: EachName\n%s\ncompiled anew\n%s", what, g, w)
	}
	if g, w := eachPrefix(got), eachPrefix(want); g != w {
		t.Fatalf("after %s: EachPrefix\n%s\ncompiled anew\n%s", what, g, w)
	}
	for _, n := range m.names {
		if g, w := explain(got.ExplainName("q."+n)), explain(want.ExplainName("q."+n)); g != w {
			t.Fatalf("after %s: ExplainName(q.%s) = %s, compiled anew %s", what, n, g, w)
		}
	}
}

func explain(ms []Match) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Order.ID+":"+m.Target)
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func eachName(s *Snapshot) string {
	var out []string
	s.EachName(func(name string, self, below []*OrderRef) bool {
		out = append(out, name+"="+ids(self)+"|"+ids(below))
		return true
	})
	slices.Sort(out)
	return strings.Join(out, "\n")
}

func eachPrefix(s *Snapshot) string {
	var out []string
	s.EachPrefix(func(p netip.Prefix, orders []*OrderRef) bool {
		out = append(out, p.String()+"="+ids(orders))
		return true
	})
	slices.Sort(out)
	return strings.Join(out, "\n")
}

// TestUpdaterAgreesWithCompile: after every change of a long random
// sequence (new orders, amendments, holds, suspensions, revocations, new
// jurisdictions, time passing), the incrementally updated snapshot
// decides every name, address and URL as a fresh compilation does, and
// cites the same order.
//
// It runs twice: with Update given every order, and with Apply given the
// orders that changed, as the registry does.
func TestUpdaterAgreesWithCompile(t *testing.T) {
	for _, mode := range []string{"update", "apply"} {
		for seed := range uint64(8) {
			t.Run(fmt.Sprintf("%s/%d", mode, seed), func(t *testing.T) { agreeWithCompile(t, mode == "apply", seed) })
		}
	}
}

func agreeWithCompile(t *testing.T, apply bool, seed uint64) {
	m := newPolicyModel(t, seed)
	h := NewHolder(nil)
	u := NewUpdater(h, nil)
	u.minDelta = 6 // rebuild the base in the background now and then
	u.recent = 3   // and merge the recent delta into the older one
	for i := range 300 {
		before := maps.Clone(m.orders)
		what := m.step()
		m.version++
		list := m.list()
		var got *Snapshot
		if apply && i > 0 {
			changed := []*order.Order{}
			for _, o := range list {
				if before[o.ID] != o {
					changed = append(changed, o)
				}
			}
			got = u.Apply(changed, m.now, m.version)
		} else {
			got = u.Update(list, m.now, m.version)
		}
		want := Compile(list, m.now, m.version, nil)
		m.equivalent(fmt.Sprintf("step %d (%s)", i, what), got, want)
		// What the holder has is this snapshot or, if a background
		// rebuild landed since, its equal.
		m.equivalent(fmt.Sprintf("step %d (%s), published", i, what), h.Load(), want)
		if i%7 == 0 {
			u.wg.Wait() // let a background rebuild land
			m.equivalent(fmt.Sprintf("step %d (%s), rebuilt", i, what), h.Load(), Compile(list, m.now, m.version, nil))
		}
	}
}

// TestUpdaterScope: the incremental path keeps scope. A name added by an
// amendment blocks in the order's jurisdiction only; a name removed stops
// blocking there; a suspended order stops blocking everywhere.
func TestUpdaterScope(t *testing.T) {
	fro := mkOrder("fr", []string{"FR"}, sub("motogpstream.me"))
	ito := mkOrder("it", []string{"IT"}, exact("calcio.example"))
	u := NewUpdater(nil, nil)
	u.Update([]*order.Order{fro, ito}, now, 1)

	amended := fro.Clone()
	amended.Targets = append(amended.Targets, order.Target{FQDN: "mirror.example", Subdomains: true, State: order.TargetActive})
	s := u.Update([]*order.Order{amended, ito}, now, 2)
	if s.deltas[0] == nil {
		t.Fatal("an amendment was compiled anew, not applied as a delta")
	}
	for _, c := range []struct {
		name string
		c    jurisdiction.Code
		want string
	}{
		{"www.mirror.example", fr, "fr"},
		{"www.mirror.example", it, ""},
		{"www.mirror.example", jurisdiction.Unknown, ""},
		{"calcio.example", it, "it"},
		{"calcio.example", fr, ""},
		{"motogpstream.me", fr, "fr"},
	} {
		if got := id(s.MatchName(c.name, c.c)); got != c.want {
			t.Errorf("MatchName(%s, %s) = %q, want %q", c.name, c.c, got, c.want)
		}
	}

	removed := amended.Clone()
	removed.Targets[0].State = order.TargetRemoved
	s = u.Update([]*order.Order{removed, ito}, now, 3)
	if s.MatchName("motogpstream.me", fr) != nil || s.MatchName("www.mirror.example", fr) == nil {
		t.Error("removal not applied")
	}

	suspended := removed.Clone()
	suspended.Disposition = order.Suspended
	s = u.Update([]*order.Order{suspended, ito}, now, 4)
	if s.MatchName("www.mirror.example", fr) != nil || s.Names() != 1 || len(s.Orders()) != 1 {
		t.Errorf("suspended order still blocks: names %d orders %d", s.Names(), len(s.Orders()))
	}
	reinstated := suspended.Clone()
	reinstated.Disposition = ""
	s = u.Update([]*order.Order{reinstated, ito}, now, 5)
	if id(s.MatchName("www.mirror.example", fr)) != "fr" || s.MatchName("www.mirror.example", it) != nil {
		t.Error("reinstated order does not block in its scope only")
	}
}

// TestUpdaterLookupsDoNotAllocate: a snapshot with a delta is still
// looked up without allocating.
func TestUpdaterLookupsDoNotAllocate(t *testing.T) {
	o := mkOrder("o", []string{"FR"}, sub("motogpstream.me"), ip("203.0.113.0/24"))
	u := NewUpdater(nil, nil)
	u.Update([]*order.Order{o}, now, 1)
	o2 := o.Clone()
	o2.Targets = append(o2.Targets, order.Target{FQDN: "mirror.example", State: order.TargetActive}, order.Target{IP: "198.51.100.0/24", State: order.TargetActive})
	s := u.Update([]*order.Order{o2}, now, 2)
	a := netip.MustParseAddr("198.51.100.7")
	allocs := testing.AllocsPerRun(1000, func() {
		s.MatchName("a.b.MotoGPStream.me.", fr)
		s.MatchName("mirror.example.", fr)
		s.MatchName("www.example.com.", fr)
		s.MatchAddr(a, fr)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per lookup", allocs)
	}
}

// TestUpdaterConcurrentLookups: lookups run while updates publish (run
// with -race): a snapshot once published is never written again.
func TestUpdaterConcurrentLookups(t *testing.T) {
	h := NewHolder(nil)
	u := NewUpdater(h, nil)
	u.minDelta, u.recent = 40, 4
	o := mkOrder("o", []string{"FR"}, sub("base.example"))
	u.Update([]*order.Order{o}, now, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s := h.Load()
				if s.MatchName("www.base.example.", fr) == nil {
					t.Error("a name no update touched stopped blocking")
					return
				}
				s.MatchName("n7.example.", fr)
				s.EachName(func(string, []*OrderRef, []*OrderRef) bool { return true })
			}
		}()
	}
	for i := range 200 {
		o = o.Clone()
		o.Targets = append(o.Targets, order.Target{FQDN: fmt.Sprintf("n%d.example", i), State: order.TargetActive})
		u.Update([]*order.Order{o}, now, uint64(i+2))
	}
	close(stop)
	wg.Wait()
	u.wg.Wait()
	if h.Load().Names() != 201 {
		t.Fatalf("names = %d", h.Load().Names())
	}
}
