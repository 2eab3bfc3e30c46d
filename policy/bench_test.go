package policy

import (
	"fmt"
	"math/rand"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/writ-project/writ/internal/namegen"
	"github.com/writ-project/writ/order"
)

// bigOrders is a million blocked names split over 1,000 orders of three
// jurisdictions, a third of them covering subdomains, plus 10,000 prefixes.
var bigOrders = sync.OnceValues(func() ([]*order.Order, []string) {
	names := namegen.New(42).Names(1_000_000)
	codes := []string{"FR", "IT", "DE"}
	orders := make([]*order.Order, 0, 1000)
	per := len(names) / 1000
	for i := range 1000 {
		ts := make([]order.Target, 0, per+10)
		for j, n := range names[i*per : (i+1)*per] {
			ts = append(ts, order.Target{FQDN: n, Subdomains: j%3 == 0, State: order.TargetActive})
		}
		for j := range 10 {
			ts = append(ts, order.Target{IP: fmt.Sprintf("45.%d.%d.0/24", i%250, j), State: order.TargetActive})
		}
		orders = append(orders, mkOrder(fmt.Sprintf("o%04d", i), []string{codes[i%3]}, ts...))
	}
	return orders, names
})

func BenchmarkCompile1M(b *testing.B) {
	orders, names := bigOrders()
	var s *Snapshot
	for b.Loop() {
		s = Compile(orders, now, 1, nil)
	}
	b.ReportMetric(float64(s.MemoryBytes())/float64(len(names)), "table-B/name")
}

// BenchmarkHeapPerName measures the whole heap a compiled 1M-name snapshot
// retains, divided by the number of names.
func BenchmarkHeapPerName(b *testing.B) {
	orders, names := bigOrders()
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := Compile(orders, now, 1, nil)
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(names)), "heap-B/name")
		runtime.KeepAlive(s)
	}
}

func benchLookup(b *testing.B, queries []string) {
	orders, _ := bigOrders()
	benchLookupOn(b, Compile(orders, now, 1, nil), queries)
}

func benchLookupOn(b *testing.B, s *Snapshot, queries []string) {
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		s.MatchName(queries[i&(len(queries)-1)], fr)
		i++
	}
}

// queriesFrom builds 65,536 queries spread over the whole table. Their
// bytes are laid out contiguously, as consecutive packets in a receive
// buffer would be, so that the benchmark measures the table, not cache
// misses on scattered query strings.
func queriesFrom(names []string, f func(i int, n string) string) []string {
	return contiguous(1<<16, func(i int) string { return f(i, names[(i*7919)%len(names)]) })
}

func contiguous(n int, f func(i int) string) []string {
	parts := make([]string, n)
	var all []byte
	for i := range parts {
		parts[i] = f(i)
		all = append(all, parts[i]...)
	}
	joined := string(all)
	off := 0
	for i, p := range parts {
		parts[i] = joined[off : off+len(p)]
		off += len(p)
	}
	return parts
}

// BenchmarkMatchNameHit: a blocked name, in scope or not (a third of the
// orders are FR), with a trailing dot as DNS messages carry it.
func BenchmarkMatchNameHit(b *testing.B) {
	_, names := bigOrders()
	benchLookup(b, queriesFrom(names, func(_ int, n string) string { return n + "." }))
}

// BenchmarkMatchNameSubdomain: a name two labels under a blocked name.
func BenchmarkMatchNameSubdomain(b *testing.B) {
	_, names := bigOrders()
	benchLookup(b, queriesFrom(names, func(_ int, n string) string { return "a.www." + n + "." }))
}

// BenchmarkMatchNameMiss: names that are not blocked, the common case,
// drawn from the same distribution as the blocked ones.
func BenchmarkMatchNameMiss(b *testing.B) {
	g := namegen.New(7)
	benchLookup(b, contiguous(1<<16, func(int) string { return g.Name() + "." }))
}

func BenchmarkMatchAddr(b *testing.B) {
	orders, _ := bigOrders()
	s := Compile(orders, now, 1, nil)
	addrs := make([]netip.Addr, 1<<12)
	for i := range addrs {
		addrs[i] = netip.AddrFrom4([4]byte{45, byte(i % 250), byte(i % 13), byte(i)})
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.MatchAddr(addrs[i&(len(addrs)-1)], fr)
		i++
	}
}

// BenchmarkMatchNameZipf models resolver traffic: query popularity
// follows a Zipf law (s = 1.1) over 100,000 allowed names and the million
// blocked ones, one query in ten for a blocked name. Popular names stay
// in cache, as they do in a real resolver.
func BenchmarkMatchNameZipf(b *testing.B) {
	benchLookup(b, zipfQueries())
}

func zipfQueries() []string {
	_, names := bigOrders()
	allowed := namegen.New(9).Names(100_000)
	r := rand.New(rand.NewSource(3))
	zAllowed := rand.NewZipf(r, 1.1, 1, uint64(len(allowed)-1))
	zBlocked := rand.NewZipf(r, 1.1, 1, uint64(len(names)-1))
	return contiguous(1<<16, func(i int) string {
		if i%10 == 0 {
			return names[(zBlocked.Uint64()*7919)%uint64(len(names))] + "."
		}
		return allowed[zAllowed.Uint64()] + "."
	})
}

// BenchmarkMatchNameZipfUpdated is MatchNameZipf on a snapshot that an
// Updater published after 300 amendments, as the registry's snapshots
// are between rebuilds: lookups probe both deltas too.
func BenchmarkMatchNameZipfUpdated(b *testing.B) {
	orders, _ := bigOrders()
	list := slices.Clone(orders)
	u := NewUpdater(nil, nil)
	u.Update(list, now, 1)
	g := namegen.New(99)
	var s *Snapshot
	for i := range 300 {
		o := list[i].Clone()
		o.Targets = append(o.Targets, order.Target{FQDN: g.Name(), Subdomains: true, State: order.TargetActive})
		list[i] = o
		s = u.Update(list, now, uint64(i+2))
	}
	u.wg.Wait()
	if s.deltas[0] == nil || s.deltas[1] == nil {
		b.Fatal("the snapshot does not have both deltas")
	}
	benchLookupOn(b, s, zipfQueries())
}

// BenchmarkMatchNameHot: the 1M-name table queried for a working set of
// 1,024 names, half of them blocked, that stays in the processor's
// caches, as the popular names of a resolver's traffic do. It measures
// the lookup's own work, without main-memory latency.
func BenchmarkMatchNameHot(b *testing.B) {
	_, names := bigOrders()
	g := namegen.New(11)
	benchLookup(b, contiguous(1<<10, func(i int) string {
		if i%2 == 0 {
			return names[(i*7919)%len(names)] + "."
		}
		return g.Name() + "."
	}))
}

// benchUpdates applies one change per iteration to the 1M-name policy
// through an Updater, as the registry does at each amendment, and
// reports the latency distribution of Update: a change is published in
// time proportional to the change, and no update waits for the
// background rebuild of the base (which runs as the delta grows).
func benchUpdates(b *testing.B, change func(i int, o *order.Order) *order.Order) {
	orders, _ := bigOrders()
	list := slices.Clone(orders)
	u := NewUpdater(NewHolder(nil), nil)
	u.Update(list, now, 1)
	var lat []time.Duration
	i := 0
	for b.Loop() {
		k := (i * 7) % len(list)
		list[k] = change(i, list[k])
		start := time.Now()
		u.Update(list, now, uint64(i+2))
		lat = append(lat, time.Since(start))
		i++
	}
	b.StopTimer()
	u.wg.Wait()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
}

// BenchmarkUpdateAdd1M: an amendment adds one name to an order of the
// 1M-name policy.
func BenchmarkUpdateAdd1M(b *testing.B) {
	g := namegen.New(99)
	benchUpdates(b, func(_ int, o *order.Order) *order.Order {
		o = o.Clone()
		o.Targets = append(o.Targets, order.Target{FQDN: g.Name(), Subdomains: true, State: order.TargetActive})
		return o
	})
}

// BenchmarkUpdateRemove1M: an amendment removes one name.
func BenchmarkUpdateRemove1M(b *testing.B) {
	benchUpdates(b, func(i int, o *order.Order) *order.Order {
		o = o.Clone()
		for j := range o.Targets {
			if t := &o.Targets[(i+j)%len(o.Targets)]; t.FQDN != "" && t.State == order.TargetActive {
				t.State = order.TargetRemoved
				break
			}
		}
		return o
	})
}

// BenchmarkUpdateSuspend1M: an order of 1,000 names is suspended or
// reinstated: its names stay in the tables, only its rulesets change.
func BenchmarkUpdateSuspend1M(b *testing.B) {
	benchUpdates(b, func(_ int, o *order.Order) *order.Order {
		o = o.Clone()
		if o.Disposition == "" {
			o.Disposition = order.Suspended
		} else {
			o.Disposition = ""
		}
		return o
	})
}

// BenchmarkUpdateNewOrder1M: a new order of 1,000 names (a regulator's
// batch) joins the 1M-name policy.
func BenchmarkUpdateNewOrder1M(b *testing.B) {
	orders, _ := bigOrders()
	list := slices.Clone(orders)
	u := NewUpdater(NewHolder(nil), nil)
	u.Update(list, now, 1)
	g := namegen.New(98)
	var lat []time.Duration
	i := 0
	for b.Loop() {
		ts := make([]order.Target, 0, 1000)
		for range 1000 {
			ts = append(ts, order.Target{FQDN: g.Name(), Subdomains: true, State: order.TargetActive})
		}
		list = append(list, mkOrder(fmt.Sprintf("new%05d", i), []string{"FR"}, ts...))
		start := time.Now()
		u.Update(list, now, uint64(i+2))
		lat = append(lat, time.Since(start))
		i++
	}
	b.StopTimer()
	u.wg.Wait()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
