package dnsserver

import (
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/internal/localzone"
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
