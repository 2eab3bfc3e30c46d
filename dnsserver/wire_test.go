package dnsserver

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
)

// captureWriter is a dns.ResponseWriter that keeps the answer.
type captureWriter struct {
	remote net.Addr
	msg    *dns.Msg
}

func (w *captureWriter) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53}
}
func (w *captureWriter) RemoteAddr() net.Addr             { return w.remote }
func (w *captureWriter) WriteMsg(m *dns.Msg) error        { w.msg = m; return nil }
func (w *captureWriter) Write(b []byte) (int, error)      { return len(b), nil }
func (w *captureWriter) Close() error                     { return nil }
func (w *captureWriter) TsigStatus() error                { return nil }
func (w *captureWriter) TsigTimersOnly(bool)              {}
func (w *captureWriter) Hijack()                          {}
func udpFrom(from string) *net.UDPAddr                    { return &net.UDPAddr{IP: net.ParseIP(from), Port: 40000} }
func general(s *Server, from string, m *dns.Msg) *dns.Msg { return generalAt(s, udpFrom(from), m) }

func generalAt(s *Server, from net.Addr, m *dns.Msg) *dns.Msg {
	w := &captureWriter{remote: from}
	// The general path sees the query as unpacked from the wire.
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	req := new(dns.Msg)
	if err := req.Unpack(b); err != nil {
		panic(err)
	}
	s.ServeDNS(w, req)
	return w.msg
}

// fast runs a query through the UDP fast path; nil when the fast path
// hands it to the general path.
func fast(t *testing.T, s *Server, from string, m *dns.Msg) *dns.Msg {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	sc := newScratch()
	resp, ok := s.handleUDP(b, netip.MustParseAddr(from), sc)
	s.Metrics.add(&sc.stats)
	if !ok {
		return nil
	}
	out := new(dns.Msg)
	if err := out.Unpack(resp); err != nil {
		t.Fatalf("fast path answer does not unpack: %v", err)
	}
	return out
}

func query(name string, qtype uint16, mods ...func(*dns.Msg)) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, false)
	for _, f := range mods {
		f(m)
	}
	return m
}

func withDO(m *dns.Msg)      { m.IsEdns0().SetDo() }
func withCD(m *dns.Msg)      { m.CheckingDisabled = true }
func withoutRD(m *dns.Msg)   { m.RecursionDesired = false }
func withoutEDNS(m *dns.Msg) { m.Extra = nil }
func withSize(n uint16) func(*dns.Msg) {
	return func(m *dns.Msg) { m.IsEdns0().SetUDPSize(n) }
}

// normalise prints a message for comparison: TTLs are rounded down to
// tens of seconds, since the two paths read the clock at different
// times, and owner names are lower-cased, since a cached answer's names
// that compress to the question take the client's spelling of it.
func normalise(m *dns.Msg) string {
	if m == nil {
		return "<nil>"
	}
	c := m.Copy()
	c.Compress = false
	for _, sec := range [][]dns.RR{c.Answer, c.Ns, c.Extra} {
		for _, rr := range sec {
			if rr.Header().Rrtype != dns.TypeOPT {
				rr.Header().Ttl = rr.Header().Ttl / 10 * 10
				rr.Header().Name = strings.ToLower(rr.Header().Name)
			}
		}
	}
	return c.String()
}

// TestFastPathAnswersAsTheGeneralPath: for queries of every kind the
// fast path takes — blocked or not, in and out of scope, cached
// answers, answers blocked for their address or CNAME, with and without
// EDNS, DO, CD and RD, in every block mode — the fast path's answer is
// the general path's.
func TestFastPathAnswersAsTheGeneralPath(t *testing.T) {
	fr := jurisdiction.MustParse("FR")
	modes := map[string]func(*Config){
		"refused":  nil,
		"nxdomain": func(c *Config) { c.BlockMode = NXDomain },
		"sinkhole": func(c *Config) {
			c.BlockMode = Sinkhole
			c.SinkholeV4 = netip.MustParseAddr("192.0.2.80")
			c.SinkholeV6 = netip.MustParseAddr("2001:db8::80")
		},
	}
	for mode, mutate := range modes {
		t.Run(mode, func(t *testing.T) {
			e := start(t, mutate)
			names := []string{"www.motogpstream.me.", "MotoGPStream.ME.", "allowed.example.", "ALLOWED.example.",
				"shared-host.example.", "alias.example.", "nowhere.example.", "v6-host.example.", "big.example."}
			types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT}
			mods := map[string][]func(*dns.Msg){
				"plain":   nil,
				"DO":      {withDO},
				"CD":      {withCD},
				"no RD":   {withoutRD},
				"no EDNS": {withoutEDNS},
				"512":     {withSize(512)},
			}
			for _, name := range names {
				for _, qt := range types {
					for label, mod := range mods {
						// Fill the cache through the general path.
						general(e.srv, outsideClient, query(name, qt, mod...))
						for _, from := range []string{frClient, itClient, outsideClient} {
							q := query(name, qt, mod...)
							got := fast(t, e.srv, from, q)
							want := general(e.srv, from, q)
							if got == nil {
								// Answers that state no TTL (without
								// records or SOA) are not cached; any other
								// must be answered on the fast path.
								key, _ := cacheKey(q.Question[0], q.IsEdns0() != nil && q.IsEdns0().Do(), q.CheckingDisabled)
								_, blocked := ede(want)
								blocked = blocked || from == frClient && e.holder.Load().MatchName(name, fr) != nil
								if blocked || e.srv.cache.get([]byte(key), time.Now()) != nil {
									t.Fatalf("%s %s %s from %s: not answered on the fast path", name, dns.TypeToString[qt], label, from)
								}
								continue
							}
							if normalise(got) != normalise(want) {
								t.Fatalf("%s %s %s from %s:\nfast path:\n%s\ngeneral path:\n%s", name, dns.TypeToString[qt], label, from, got, want)
							}
						}
					}
				}
			}
		})
	}
}

// TestFastPathHandsOver: what the fast path does not handle goes to the
// general path untouched (and uncounted).
func TestFastPathHandsOver(t *testing.T) {
	e := start(t, func(c *Config) { c.ECSTrusted = []netip.Prefix{netip.MustParsePrefix(outsideClient + "/32")} })
	general(e.srv, outsideClient, query("allowed.example.", dns.TypeA))
	ecs := func(m *dns.Msg) {
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 32, Address: net.ParseIP(frClient).To4()})
	}
	cases := map[string]*dns.Msg{
		"client subnet":     query("www.motogpstream.me.", dns.TypeA, ecs),
		"a cache miss":      query("never-asked.example.", dns.TypeA),
		"EDNS version 1":    query("allowed.example.", dns.TypeA, func(m *dns.Msg) { m.IsEdns0().SetVersion(1) }),
		"class CHAOS":       query("allowed.example.", dns.TypeA, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }),
		"a zone transfer":   query("motogpstream.me.", dns.TypeAXFR),
		"a response":        query("allowed.example.", dns.TypeA, func(m *dns.Msg) { m.Response = true }),
		"two questions":     query("allowed.example.", dns.TypeA, func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }),
		"NOTIFY":            query("allowed.example.", dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }),
		"an escaped label":  query("a\\.b.allowed.example.", dns.TypeA),
		"a space in a name": query("a\\032b.example.", dns.TypeA),
	}
	before := e.srv.Metrics.queriesUDP.Load()
	for what, m := range cases {
		if got := fast(t, e.srv, outsideClient, m); got != nil {
			t.Errorf("%s answered on the fast path:\n%s", what, got)
		}
	}
	if n := e.srv.Metrics.queriesUDP.Load(); n != before {
		t.Errorf("handed-over queries counted: %d", n-before)
	}
}

// TestCachedAnswerIsDecidedPerClient: the cache is per name, the
// decision per client and per policy in force. An answer cached for a
// client outside every jurisdiction is blocked on the fast path for an
// in-scope client when its address or CNAME target is blocked, is still
// answered outside, and a new order reaches answers already cached.
func TestCachedAnswerIsDecidedPerClient(t *testing.T) {
	e := start(t, nil)
	for _, name := range []string{"shared-host.example.", "alias.example.", "allowed.example."} {
		assertAnswered(t, general(e.srv, outsideClient, query(name, dns.TypeA)), map[string]string{
			"shared-host.example.": "203.0.113.7", "alias.example.": "198.51.100.7", "allowed.example.": "198.51.100.10"}[name])
	}
	blocksBefore := e.srv.Metrics.answerBlocks.Load()
	assertBlocked(t, fast(t, e.srv, frClient, query("shared-host.example.", dns.TypeA)), dns.RcodeRefused)
	assertBlocked(t, fast(t, e.srv, frClient, query("alias.example.", dns.TypeA)), dns.RcodeRefused)
	if got := e.srv.Metrics.answerBlocks.Load() - blocksBefore; got != 2 {
		t.Errorf("answer blocks counted: %d", got)
	}
	for _, from := range []string{outsideClient, itClient, unknownClient} {
		assertAnswered(t, fast(t, e.srv, from, query("shared-host.example.", dns.TypeA)), "203.0.113.7")
		assertAnswered(t, fast(t, e.srv, from, query("alias.example.", dns.TypeA)), "198.51.100.7")
	}
	assertAnswered(t, fast(t, e.srv, frClient, query("allowed.example.", dns.TypeA)), "198.51.100.10")

	// An Italian order for the address of a cached answer.
	it := frOrder()
	it.ID, it.Jurisdiction = "20261123-it0001", []string{"IT"}
	it.Targets = []order.Target{{IP: "198.51.100.10/32", State: order.TargetActive}}
	e.holder.Store(policy.Compile([]*order.Order{frOrder(), it}, time.Now(), 2, nil))
	assertBlocked(t, fast(t, e.srv, itClient, query("allowed.example.", dns.TypeA)), dns.RcodeRefused)
	assertAnswered(t, fast(t, e.srv, frClient, query("allowed.example.", dns.TypeA)), "198.51.100.10")
}

// TestFastPathDoesNotAllocate: blocked queries and cache hits, in and
// out of scope, are answered without allocating.
func TestFastPathDoesNotAllocate(t *testing.T) {
	e := start(t, nil)
	general(e.srv, outsideClient, query("allowed.example.", dns.TypeA))
	general(e.srv, outsideClient, query("allowed.example.", dns.TypeA, withDO))
	general(e.srv, outsideClient, query("shared-host.example.", dns.TypeA))
	sc := newScratch()
	cases := []struct {
		from string
		m    *dns.Msg
	}{
		{frClient, query("www.motogpstream.me.", dns.TypeA)},
		{frClient, query("www.motogpstream.me.", dns.TypeA, withoutEDNS)},
		{outsideClient, query("allowed.example.", dns.TypeA)},
		{frClient, query("Allowed.Example.", dns.TypeA, withDO)},
		{frClient, query("shared-host.example.", dns.TypeA)},
	}
	for _, c := range cases {
		b, _ := c.m.Pack()
		from := netip.MustParseAddr(c.from)
		if _, ok := e.srv.handleUDP(b, from, sc); !ok {
			t.Fatalf("%v from %s: not on the fast path", c.m.Question[0], c.from)
		}
		if n := testing.AllocsPerRun(1000, func() { e.srv.handleUDP(b, from, sc) }); n != 0 {
			t.Errorf("%v from %s: %v allocations", c.m.Question[0], c.from, n)
		}
	}
}

// TestCacheAgesTTLs: a cached answer's TTLs count down on both paths.
func TestCacheAgesTTLs(t *testing.T) {
	c := newCache(16, time.Hour)
	up := new(dns.Msg)
	up.SetQuestion("allowed.example.", dns.TypeA)
	up.Answer = []dns.RR{mustRR("allowed.example. 300 IN A 198.51.100.10"), mustRR("allowed.example. 20 IN A 198.51.100.11")}
	q := up.Question[0]
	key, err := cacheKey(q, false, false)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	c.put(key, q, up, t0)
	if c.get([]byte(key), t0.Add(20*time.Second)) != nil {
		t.Fatal("entry outlived its smallest TTL")
	}
	e := c.get([]byte(key), t0.Add(15*time.Second))
	m, err := e.msg(t0.Add(15 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if m.Answer[0].Header().Ttl != 285 || m.Answer[1].Header().Ttl != 5 {
		t.Fatalf("aged TTLs: %v", m.Answer)
	}
}

// TestCacheBound: the cache holds about as many entries as configured,
// however many names are asked.
func TestCacheBound(t *testing.T) {
	c := newCache(64, time.Hour)
	now := time.Now()
	for i := range 1000 {
		up := new(dns.Msg)
		name := fmt.Sprintf("n%d.example.", i)
		up.SetQuestion(name, dns.TypeA)
		up.Answer = []dns.RR{mustRR(name + " 300 IN A 192.0.2.1")}
		key, _ := cacheKey(up.Question[0], false, false)
		c.put(key, up.Question[0], up, now)
	}
	n := 0
	for i := range c.sets {
		for w := range c.sets[i].ways {
			if c.sets[i].ways[w].Load() != nil {
				n++
			}
		}
	}
	if n != 64 {
		t.Fatalf("%d entries", n)
	}
}

func mustRR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil {
		panic(err)
	}
	return rr
}

// TestNamesWithUnusualBytes: names the fast path leaves to the general
// path are still decided (a blocked name under an escaped label is
// blocked).
func TestNamesWithUnusualBytes(t *testing.T) {
	e := start(t, nil)
	m := e.query(frClient, "a\\.b.motogpstream.me", dns.TypeA)
	assertBlocked(t, m, dns.RcodeRefused)
	if !strings.Contains(m.Question[0].Name, "\\.") {
		t.Fatalf("question %q", m.Question[0].Name)
	}
}

// TestFastPathCountsOverUDP: queries answered on the fast path are
// counted like the others once their batch is answered.
func TestFastPathCountsOverUDP(t *testing.T) {
	e := start(t, nil)
	for range 3 {
		assertBlocked(t, e.query(frClient, "www.motogpstream.me", dns.TypeA), dns.RcodeRefused)
	}
	for range 3 {
		assertAnswered(t, e.query(outsideClient, "allowed.example", dns.TypeA), "198.51.100.10")
	}
	m := e.srv.Metrics
	fr := jurisdiction.MustParse("FR")
	if q, h, b, bf := m.queriesUDP.Load(), m.cacheHits.Load(), m.blocks.Load(), m.blocksByScope[fr].Load(); q != 6 || h != 2 || b != 3 || bf != 3 {
		t.Errorf("queries %d, cache hits %d, blocks %d (FR %d); want 6, 2, 3, 3", q, h, b, bf)
	}
	if r, n := m.rcodes[dns.RcodeRefused].Load(), m.rcodes[dns.RcodeSuccess].Load(); r != 3 || n != 3 {
		t.Errorf("REFUSED %d, NOERROR %d", r, n)
	}
}

// TestEverySocketServes: the UDP sockets of a listen address (one per
// processor) all answer, whichever the kernel gives a client to.
func TestEverySocketServes(t *testing.T) {
	e := start(t, nil)
	if want := runtime.GOMAXPROCS(0); runtime.GOOS == "linux" && len(e.srv.udp) != want {
		t.Fatalf("%d UDP sockets, want one per processor (%d)", len(e.srv.udp), want)
	}
	for i := range 64 {
		// Each query from a new socket: a new source port, hashed anew.
		assertBlocked(t, e.query(frClient, fmt.Sprintf("n%d.motogpstream.me", i), dns.TypeA), dns.RcodeRefused)
	}
}
