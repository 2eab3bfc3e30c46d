package httpgate

import (
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/writ-project/writ/internal/namegen"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
)

// benchBody is the origin's answer in the proxy benchmarks: a small page,
// where the gate's share of the cost is the largest.
var benchBody = make([]byte, 1024)

// benchPolicy is the test orders plus an order of 100,000 names, so that
// lookups run against a table of realistic size.
func benchPolicy(b *testing.B) *policy.Holder {
	now := time.Now()
	orders := testOrders(now)
	big := orders[0].Clone()
	big.ID = "bulk"
	big.Targets = nil
	for _, n := range namegen.New(1).Names(100_000) {
		big.Targets = append(big.Targets, order.Target{FQDN: n, Subdomains: true, State: order.TargetActive})
	}
	return policy.NewHolder(policy.Compile(append(orders, big), now, 1, nil))
}

// serveLoopback serves h on a loopback port for the benchmark's length.
func serveLoopback(b *testing.B, h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// benchProxy measures GET requests from src through the proxy at addr,
// from parallel clients over keep-alive connections.
func benchProxy(b *testing.B, src, addr, target string, wantStatus int) {
	c := clientFrom(src, addr)
	c.Transport.(*http.Transport).MaxIdleConnsPerHost = 256
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := c.Get(target)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != wantStatus {
				b.Errorf("status %d, want %d", resp.StatusCode, wantStatus)
				return
			}
		}
	})
}

func benchOrigin(b *testing.B) *url.URL {
	addr := serveLoopback(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write(benchBody)
	}))
	u, _ := url.Parse("http://" + addr)
	return u
}

// BenchmarkProxyBare is the baseline: httputil.ReverseProxy alone, with
// the gate's transport and Host handling.
func BenchmarkProxyBare(b *testing.B) {
	origin := benchOrigin(b)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(origin)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: NewTransport(),
	}
	benchProxy(b, outClient, serveLoopback(b, rp), "http://www.example.org/page", http.StatusOK)
}

func benchGate(b *testing.B) *Gate {
	g, err := New(Config{BlockedBy: blockedByURL, RecordURL: recordURL, Logger: quiet}, benchPolicy(b), testResolver(b))
	if err != nil {
		b.Fatal(err)
	}
	return g
}

// BenchmarkProxyGateOutOfScope: a client in no jurisdiction with orders
// in force; the decision stops at the scope test.
func BenchmarkProxyGateOutOfScope(b *testing.B) {
	g := benchGate(b)
	addr := serveLoopback(b, g.Proxy(Origins{Default: benchOrigin(b)}, nil))
	benchProxy(b, outClient, addr, "http://www.example.org/page", http.StatusOK)
}

// BenchmarkProxyGateInScope: a client in France asking for an allowed
// host: name, URL and address lookups all run, then the proxy.
func BenchmarkProxyGateInScope(b *testing.B) {
	g := benchGate(b)
	addr := serveLoopback(b, g.Proxy(Origins{Default: benchOrigin(b)}, nil))
	benchProxy(b, frClient, addr, "http://www.example.org/page", http.StatusOK)
}

// BenchmarkProxyGateBlocked: a client in France asking for a blocked
// host gets the 451 page; the origin is not contacted.
func BenchmarkProxyGateBlocked(b *testing.B) {
	g := benchGate(b)
	addr := serveLoopback(b, g.Proxy(Origins{Default: benchOrigin(b)}, nil))
	benchProxy(b, frClient, addr, "http://www.motogpstream.me/page", http.StatusUnavailableForLegalReasons)
}

// BenchmarkProxyPaired alternates one request through the bare proxy and
// one through the gate (a client in France, an allowed host: every
// lookup runs), one at a time, so that both see the same machine load; it
// reports the median of each and of the per-pair difference. On a shared
// machine this pairing is what makes a sub-microsecond overhead visible
// under tens of microseconds of noise.
func BenchmarkProxyPaired(b *testing.B) {
	origin := benchOrigin(b)
	bare := serveLoopback(b, &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(origin)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: NewTransport(),
	})
	gated := serveLoopback(b, benchGate(b).Proxy(Origins{Default: origin}, nil))
	cb, cg := clientFrom(frClient, bare), clientFrom(frClient, gated)
	one := func(c *http.Client) time.Duration {
		start := time.Now()
		resp, err := c.Get("http://www.example.org/page")
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
		return time.Since(start)
	}
	one(cb) // open the connections outside the measurement
	one(cg)
	var tb, tg, diff []float64
	b.ResetTimer()
	for i := range b.N {
		var db, dg time.Duration
		if i%2 == 0 {
			db, dg = one(cb), one(cg)
		} else {
			dg, db = one(cg), one(cb)
		}
		tb, tg = append(tb, float64(db.Nanoseconds())), append(tg, float64(dg.Nanoseconds()))
		diff = append(diff, float64(dg.Nanoseconds()-db.Nanoseconds()))
	}
	b.ReportMetric(median(tb)/1e3, "bare-µs")
	b.ReportMetric(median(tg)/1e3, "gate-µs")
	b.ReportMetric(median(diff)/1e3, "overhead-µs")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// BenchmarkDecide is the decision alone, for an in-scope client and an
// allowed host and path: what the gate adds to every request.
func BenchmarkDecide(b *testing.B) {
	g := benchGate(b)
	req := Request{Host: "www.example.org", Path: "/live/page", Client: netip.MustParseAddr(frClient)}
	b.ReportAllocs()
	for b.Loop() {
		if g.Decide(req).Blocked() {
			b.Fatal("blocked")
		}
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	g, _, _ := testGate(t)
	for _, req := range []Request{
		{Host: "www.example.org", Path: "/live/page", Client: netip.MustParseAddr(frClient)},
		{Host: "news.example:443", Path: "/live/page", Client: netip.MustParseAddr(frClient)},
		{Host: "www.motogpstream.me", Path: "/", Client: netip.MustParseAddr(frClient)},
		{Host: "www.motogpstream.me", Path: "/", Client: netip.MustParseAddr(outClient)},
	} {
		if n := testing.AllocsPerRun(100, func() { g.Decide(req) }); n != 0 {
			t.Errorf("Decide(%+v) allocates %v times", req, n)
		}
	}
}
