package dnsserver

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/internal/localzone"
	"github.com/writ-project/writ/internal/namegen"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/scope"
)

// discardWriter is a dns.ResponseWriter that drops the answer, so that a
// benchmark measures the handler and not the socket.
type discardWriter struct{ remote net.Addr }

func (w *discardWriter) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}
func (w *discardWriter) RemoteAddr() net.Addr        { return w.remote }
func (w *discardWriter) WriteMsg(m *dns.Msg) error   { _, err := m.Pack(); return err }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) Close() error                { return nil }
func (w *discardWriter) TsigStatus() error           { return nil }
func (w *discardWriter) TsigTimersOnly(bool)         {}
func (w *discardWriter) Hijack()                     {}
func (w *discardWriter) Network() string             { return "udp" }

func benchServer(b *testing.B) *Server {
	up, err := localzone.Start("127.0.0.1:0", upstreamRecords...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { up.Close() })
	fr, _ := scope.ParseMapping("FR=" + frClient)
	sc, _ := scope.New(fr, nil)
	o := frOrder()
	o.Expires = time.Now().Add(24 * time.Hour)
	srv, err := New(Config{Upstreams: []string{up.Addr()}, Operator: "Example ISP", Contact: []string{"mailto:legal@isp.example"}},
		policy.NewHolder(policy.Compile([]*order.Order{o}, time.Now(), 1, nil)), sc)
	if err != nil {
		b.Fatal(err)
	}
	return srv
}

func benchQuery(b *testing.B, srv *Server, from, name string) {
	req := new(dns.Msg)
	req.SetQuestion(name, dns.TypeA)
	req.SetEdns0(1232, false)
	w := &discardWriter{remote: &net.UDPAddr{IP: net.ParseIP(from), Port: 40000}}
	srv.ServeDNS(w, req) // warm the cache
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		srv.ServeDNS(w, req)
	}
}

// BenchmarkServeDNSBlocked: an in-scope query for a blocked name, through
// the whole handler including packing the response.
func BenchmarkServeDNSBlocked(b *testing.B) {
	benchQuery(b, benchServer(b), frClient, "www.motogpstream.me.")
}

// BenchmarkServeDNSCached: an allowed name answered from the cache.
func BenchmarkServeDNSCached(b *testing.B) {
	benchQuery(b, benchServer(b), outsideClient, "allowed.example.")
}

// benchUDP measures the UDP fast path, from the query's bytes to the
// response's, as the server's read loop calls it (no socket).
func benchUDP(b *testing.B, srv *Server, from, name string) {
	req := new(dns.Msg)
	req.SetQuestion(name, dns.TypeA)
	req.SetEdns0(1232, false)
	// Fill the cache through the general path.
	srv.ServeDNS(&discardWriter{remote: &net.UDPAddr{IP: net.ParseIP(outsideClient), Port: 40000}}, req.Copy())
	pkt, err := req.Pack()
	if err != nil {
		b.Fatal(err)
	}
	client := netip.MustParseAddr(from)
	sc := newScratch()
	if _, ok := srv.handleUDP(pkt, client, sc); !ok {
		b.Fatal("not answered on the fast path")
	}
	b.ReportAllocs()
	for b.Loop() {
		srv.handleUDP(pkt, client, sc)
	}
}

// BenchmarkServeUDPBlocked: an in-scope query for a blocked name.
func BenchmarkServeUDPBlocked(b *testing.B) {
	benchUDP(b, benchServer(b), frClient, "www.motogpstream.me.")
}

// BenchmarkServeUDPCached: an allowed name answered from the cache, for a
// client in no jurisdiction.
func BenchmarkServeUDPCached(b *testing.B) {
	benchUDP(b, benchServer(b), outsideClient, "allowed.example.")
}

// BenchmarkServeUDPCachedInScope: the same for an in-scope client, whose
// cached answer's addresses are checked against the policy.
func BenchmarkServeUDPCachedInScope(b *testing.B) {
	benchUDP(b, benchServer(b), frClient, "allowed.example.")
}

// bigPolicy is a million blocked names in 1,000 French orders, a third
// of them with their subdomains, published through an Updater.
func bigPolicy(b *testing.B) (*policy.Updater, *policy.Holder, []*order.Order, []string) {
	b.Helper()
	names := namegen.New(42).Names(1_000_000)
	now := time.Now()
	orders := make([]*order.Order, 0, 1000)
	for i := range 1000 {
		o := frOrder()
		o.ID = fmt.Sprintf("bench-%04d", i)
		o.Expires = now.Add(24 * time.Hour)
		o.Targets = nil
		for j, n := range names[i*1000 : (i+1)*1000] {
			o.Targets = append(o.Targets, order.Target{FQDN: n, Subdomains: j%3 == 0, State: order.TargetActive})
		}
		orders = append(orders, o)
	}
	h := policy.NewHolder(nil)
	u := policy.NewUpdater(h, nil)
	u.Update(orders, now, 1)
	return u, h, orders, names
}

// BenchmarkServeUDP1MUpdating: the UDP fast path on every processor with
// a million blocked names, for queries of which half are blocked (spread
// over all the names) and half cached allowed answers, in alternating
// windows of 100 ms: steady, then while orders are amended 100 times a
// second (each amendment one more name, as the registry publishes it).
// Lookups take no lock and never wait for an update, so the difference
// is the processor time the updates take. Alternating windows keep the
// machine's drift out of the comparison; the figures are medians over
// the windows. Run with -benchtime 20x or more.
func BenchmarkServeUDP1MUpdating(b *testing.B) {
	u, h, orders, names := bigPolicy(b)
	up, err := localzone.Start("127.0.0.1:0", upstreamRecords...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { up.Close() })
	fr, _ := scope.ParseMapping("FR=" + frClient)
	sc, _ := scope.New(fr, nil)
	srv, err := New(Config{Upstreams: []string{up.Addr()}, Operator: "Example ISP", Contact: []string{"mailto:legal@isp.example"}}, h, sc)
	if err != nil {
		b.Fatal(err)
	}
	var pkts [][]byte
	for i := range 1024 {
		name := "allowed.example."
		if i%2 == 0 {
			name = names[(i*7919)%len(names)] + "."
		}
		req := new(dns.Msg)
		req.SetQuestion(name, dns.TypeA)
		req.SetEdns0(1232, false)
		if i == 1 {
			srv.ServeDNS(&discardWriter{remote: &net.UDPAddr{IP: net.ParseIP(outsideClient), Port: 40000}}, req.Copy())
		}
		pkt, _ := req.Pack()
		pkts = append(pkts, pkt)
	}
	client := netip.MustParseAddr(frClient)

	// Workers answer queries until stopped, counting them.
	var answered atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc, i := newScratch(), 0
			for {
				for range 64 {
					if _, ok := srv.handleUDP(pkts[i&1023], client, sc); !ok {
						panic("not answered on the fast path")
					}
					i++
				}
				answered.Add(64)
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	const window = 100 * time.Millisecond
	g, n := namegen.New(7), 0
	list := slices.Clone(orders)
	amend := func() {
		k := n % len(list)
		o := list[k].Clone()
		o.Targets = append(o.Targets, order.Target{FQDN: g.Name(), State: order.TargetActive})
		list[k] = o
		u.Update(list, time.Now(), uint64(n+2))
		n++
	}
	measure := func(updating bool) float64 {
		start, before, done := time.Now(), answered.Load(), 0
		for time.Since(start) < window || updating && done < int(window/(10*time.Millisecond)) {
			if updating && done < int(time.Since(start)/(10*time.Millisecond)) {
				amend()
				done++
				continue
			}
			time.Sleep(time.Millisecond)
		}
		return float64(time.Since(start).Nanoseconds()) / float64(answered.Load()-before)
	}
	var steady, updating []float64
	updates := 0
	for b.Loop() {
		steady = append(steady, measure(false))
		before := n
		updating = append(updating, measure(true))
		updates += n - before
	}
	med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	s, w := med(steady), med(updating)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(s, "steady-ns/query")
	b.ReportMetric(w, "updating-ns/query")
	b.ReportMetric(s/w, "throughput-ratio")
	b.ReportMetric(float64(updates)/(float64(len(updating))*window.Seconds()), "updates/s")
}
