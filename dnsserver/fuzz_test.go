package dnsserver

// FuzzServe drives the whole request path with arbitrary bytes: a UDP
// datagram through what the read loops do (the fast path, else the rate
// limit and the general path), or a TCP message through what a TCP
// connection does, against a real upstream on loopback, for clients in
// and out of the orders' jurisdiction, under three configurations. It
// checks properties of every answer, not only that nothing panics.
// Run it with, for example:
//
//	go test ./dnsserver -run '^$' -fuzz '^FuzzServe$' -fuzztime 60s
//
// The seed corpus is in testdata/fuzz/FuzzServe; inputs that once failed
// stay there as regression tests, run by every `go test`.

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/scope"
)

// fuzzClients are the sources a fuzzed query comes from: in France on
// loopback (exempt from the rate limit by default) and on a network, in
// Italy, and nowhere, one of them a front-end resolver whose Client Subnet
// is trusted.
var fuzzClients = []netip.AddrPort{
	netip.MustParseAddrPort("127.0.0.2:5300"),     // FR
	netip.MustParseAddrPort("192.0.2.10:5300"),    // FR
	netip.MustParseAddrPort("127.0.0.3:5300"),     // IT
	netip.MustParseAddrPort("127.0.0.1:5300"),     // nowhere; its ECS is trusted
	netip.MustParseAddrPort("192.0.2.200:5300"),   // nowhere
	netip.MustParseAddrPort("[2001:db8::1]:5300"), // nowhere
}

var fuzzSinkhole = netip.MustParseAddr("192.0.2.80")

// fuzzConfigs are the servers a fuzzed query may go to.
var fuzzConfigs = []func(*Config){
	nil, // the defaults, block mode refused
	func(c *Config) {
		c.BlockMode = Sinkhole
		c.SinkholeV4, c.SinkholeV6 = fuzzSinkhole, netip.MustParseAddr("2001:db8::80")
		c.MaxUDPSize, c.MaxAmplification, c.MaxStale = 512, 3, time.Hour
	},
	func(c *Config) {
		c.BlockMode = NXDomain
		c.FullResponses = true
		c.RateLimit = RateLimit{ResponsesPerSecond: 5, Slip: 1, Exempt: []netip.Prefix{}}
	},
}

type fuzzServer struct {
	srv    *Server
	scoper Scoper
	holder *policy.Holder
}

func startFuzzServers(f *testing.F) []fuzzServer {
	up := startUpstream(f)
	fr, err := scope.ParseMapping("FR=127.0.0.2/32,192.0.2.0/25")
	if err != nil {
		f.Fatal(err)
	}
	it, err := scope.ParseMapping("IT=127.0.0.3/32")
	if err != nil {
		f.Fatal(err)
	}
	sc, err := scope.New(append(fr, it...), nil)
	if err != nil {
		f.Fatal(err)
	}
	o := frOrder()
	o.Expires = time.Now().Add(24 * time.Hour)
	var out []fuzzServer
	for _, mutate := range fuzzConfigs {
		h := policy.NewHolder(policy.Compile([]*order.Order{o}, time.Now(), 1, nil))
		cfg := Config{
			Upstreams:       []string{up.Addr()},
			UpstreamTimeout: time.Second,
			Operator:        "Example ISP",
			Contact:         []string{"mailto:legal@isp.example"},
			ECSTrusted:      []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		}
		if mutate != nil {
			mutate(&cfg)
		}
		srv, err := New(cfg, h, sc)
		if err != nil {
			f.Fatal(err)
		}
		f.Cleanup(func() { srv.Shutdown(context.Background()) })
		out = append(out, fuzzServer{srv: srv, scoper: sc, holder: h})
	}
	return out
}

// bytesWriter is a dns.ResponseWriter for a TCP client that keeps the
// answer's bytes.
type bytesWriter struct {
	remote net.Addr
	out    []byte
	n      int
}

func (w *bytesWriter) LocalAddr() net.Addr  { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (w *bytesWriter) RemoteAddr() net.Addr { return w.remote }
func (w *bytesWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
func (w *bytesWriter) Write(b []byte) (int, error) {
	w.out = append([]byte(nil), b...)
	w.n++
	return len(b), nil
}
func (w *bytesWriter) Close() error        { return nil }
func (w *bytesWriter) TsigStatus() error   { return nil }
func (w *bytesWriter) TsigTimersOnly(bool) {}
func (w *bytesWriter) Hijack()             {}

func FuzzServe(f *testing.F) {
	servers := startFuzzServers(f)
	for _, m := range []*dns.Msg{
		query("www.motogpstream.me.", dns.TypeA),
		query("a.ok.example.", dns.TypeA, withDO),
		query("x.blockedaddr.example.", dns.TypeA, withoutEDNS),
		query("y.alias.example.", dns.TypeAAAA, withCD),
		query("t.big.example.", dns.TypeTXT, withSize(4096)),
	} {
		pkt, _ := m.Pack()
		f.Add(pkt, byte(0), false, byte(0))
	}
	sc := newScratch()
	f.Fuzz(func(t *testing.T, pkt []byte, client byte, overTCP bool, config byte) {
		fs := servers[int(config)%len(servers)]
		from := fuzzClients[int(client)%len(fuzzClients)]
		var raw []byte
		if overTCP {
			w := &bytesWriter{remote: net.TCPAddrFromAddrPort(from)}
			fs.srv.serveMessage(w, pkt)
			if w.n > 1 {
				t.Fatalf("%d answers to one query", w.n)
			}
			raw = w.out
		} else {
			raw = exchangeUDP(fs.srv, from, pkt, sc)
		}
		if raw == nil {
			return
		}
		checkFuzzAnswer(t, fs, pkt, raw, from.Addr(), overTCP)
	})
}

// checkFuzzAnswer checks an answer to pkt from client: it parses, it is
// a response with the query's ID, it is no larger than the transport and
// the bounds allow, a truncated one carries no records, and the policy
// holds — an in-scope client never gets a record of a blocked name or an
// address in a blocked prefix (a sinkhole address apart), and an
// out-of-scope client is never blocked.
func checkFuzzAnswer(t *testing.T, fs fuzzServer, pkt, raw []byte, client netip.Addr, overTCP bool) {
	t.Helper()
	resp := new(dns.Msg)
	if err := resp.Unpack(raw); err != nil {
		t.Fatalf("answer does not parse: %v\nquery % x\nanswer % x", err, pkt, raw)
	}
	if len(pkt) < 2 || resp.Id != binary.BigEndian.Uint16(pkt) || !resp.Response {
		t.Fatalf("answer with ID %d (query %x) or not a response:\n%v", resp.Id, pkt[:min(2, len(pkt))], resp)
	}
	req := new(dns.Msg)
	parsed := req.Unpack(pkt) == nil
	cfg := fs.srv.cfg
	if overTCP {
		if len(raw) > dns.MaxMsgSize {
			t.Fatalf("%d-byte TCP answer", len(raw))
		}
	} else {
		limit := dns.MinMsgSize
		if parsed {
			if opt := req.IsEdns0(); opt != nil {
				limit = max(dns.MinMsgSize, min(int(opt.UDPSize()), cfg.MaxUDPSize))
			}
		}
		if cfg.MaxAmplification > 0 {
			limit = min(limit, cfg.MaxAmplification*len(pkt))
		}
		if len(raw) > limit {
			t.Fatalf("%d-byte UDP answer to a %d-byte query, allowed %d:\nquery %v\nanswer %v", len(raw), len(pkt), limit, req, resp)
		}
	}
	if resp.Truncated && len(resp.Answer)+len(resp.Ns) > 0 {
		t.Fatalf("truncated answer with records:\n%v", resp)
	}

	// The client the decision was for: the source, or the Client Subnet
	// a trusted front end relays.
	if parsed && fs.srv.trustsECS(client) {
		if ecs, ok := findECS(req.IsEdns0()); ok {
			a, ok := ecsAddr(ecs)
			if !ok {
				return // a malformed subnet: refused with FORMERR
			}
			client = a
		}
	}
	code, _ := fs.scoper.Lookup(client)
	snap := fs.holder.Load()
	x, censored := ede(resp)
	censored = censored && x.InfoCode == dns.ExtendedErrorCodeCensored
	if !snap.Scope().Has(code) {
		if censored {
			t.Fatalf("client %s in %v, outside the orders' jurisdiction, blocked:\n%v", client, code, resp)
		}
		for _, rr := range resp.Answer {
			if a, ok := rr.(*dns.A); ok && a.A.Equal(fuzzSinkhole.AsSlice()) {
				t.Fatalf("client %s outside the jurisdiction sent to the sinkhole:\n%v", client, resp)
			}
		}
		return
	}
	for _, rr := range resp.Answer {
		if leaks(snap, rr, code, cfg) {
			t.Fatalf("client %s in %v got %v, blocked for it:\nquery %v\nanswer %v", client, code, rr, req, resp)
		}
	}
}

// leaks reports whether rr, in an answer to a client in c, carries what
// the policy blocks for c: a blocked owner or target name, or an address
// in a blocked prefix. The sinkhole record of a block notice is its own.
func leaks(snap *policy.Snapshot, rr dns.RR, c jurisdiction.Code, cfg Config) bool {
	var addr netip.Addr
	switch v := rr.(type) {
	case *dns.A:
		addr, _ = netip.AddrFromSlice(v.A)
		addr = addr.Unmap()
		if addr == cfg.SinkholeV4 {
			return false
		}
	case *dns.AAAA:
		addr, _ = netip.AddrFromSlice(v.AAAA)
		if addr == cfg.SinkholeV6 {
			return false
		}
	case *dns.CNAME:
		if snap.MatchName(v.Target, c) != nil {
			return true
		}
	case *dns.DNAME:
		if snap.MatchName(v.Target, c) != nil {
			return true
		}
	}
	if addr.IsValid() && snap.MatchAddr(addr, c) != nil {
		return true
	}
	return snap.MatchName(rr.Header().Name, c) != nil
}
