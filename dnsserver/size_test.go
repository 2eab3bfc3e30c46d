package dnsserver

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// capturePC is a packetConn that keeps what the general path sends.
type capturePC struct{ sent [][]byte }

func (c *capturePC) WriteToUDPAddrPort(b []byte, _ netip.AddrPort) (int, error) {
	c.sent = append(c.sent, bytes.Clone(b))
	return len(b), nil
}
func (c *capturePC) LocalAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }

// exchangeUDP runs one datagram from client through the UDP read loop's
// path — the fast path, else the general path, here synchronously — and
// returns the answer's bytes, or nil when nothing is sent.
func exchangeUDP(s *Server, client netip.AddrPort, pkt []byte, sc *scratch) []byte {
	pc := &capturePC{}
	resp := s.dispatchUDP(pc, pkt, client, sc, false)
	s.Metrics.add(&sc.stats)
	if resp != nil {
		return bytes.Clone(resp)
	}
	if len(pc.sent) > 0 {
		return pc.sent[0]
	}
	return nil
}

// udpAnswer is exchangeUDP for a message, from a client address; it
// returns the answer, unpacked, and its size, or nil.
func udpAnswer(t *testing.T, s *Server, from string, m *dns.Msg) (*dns.Msg, int, int) {
	t.Helper()
	pkt, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	raw := exchangeUDP(s, netip.AddrPortFrom(netip.MustParseAddr(from), 40000), pkt, newScratch())
	if raw == nil {
		return nil, 0, len(pkt)
	}
	resp := new(dns.Msg)
	if err := resp.Unpack(raw); err != nil {
		t.Fatalf("answer does not unpack: %v", err)
	}
	return resp, len(raw), len(pkt)
}

// assertTruncated checks for a truncated answer: TC, no records, no
// larger than the query, the client's question.
func assertTruncated(t *testing.T, m *dns.Msg, size, qlen int) {
	t.Helper()
	if m == nil || !m.Truncated || len(m.Answer)+len(m.Ns) != 0 {
		t.Fatalf("want a truncated answer without records, got\n%v", m)
	}
	if size > qlen {
		t.Fatalf("truncated answer of %d bytes to a query of %d", size, qlen)
	}
	for _, rr := range m.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			t.Fatalf("truncated answer with additional records:\n%v", m)
		}
	}
}

// TestMaxUDPSize: the client's EDNS buffer is honoured up to
// dns.max_udp_size, which the OPT record advertises; beyond it the answer
// is truncated, and TCP gets it whole.
func TestMaxUDPSize(t *testing.T) {
	e, _ := startFaulty(t, func(c *Config) { c.MaxUDPSize = 600 })
	for _, from := range []string{outsideClient, frClient} {
		q := query("t.big.example.", dns.TypeTXT, withSize(4096))
		m, size, qlen := udpAnswer(t, e.srv, from, q)
		assertTruncated(t, m, size, qlen)
		if m.IsEdns0() == nil || m.IsEdns0().UDPSize() != 600 {
			t.Fatalf("OPT record does not advertise 600 bytes:\n%v", m)
		}
		// Again, from the cache, on the fast path.
		m, size, qlen = udpAnswer(t, e.srv, from, q)
		assertTruncated(t, m, size, qlen)
	}
	m := e.query(outsideClient, "t.big.example", dns.TypeTXT, overTCP)
	if m.Truncated || len(m.Answer) != 3 {
		t.Fatalf("TCP answer:\n%v", m)
	}

	// The default, 1232: the same answer (about 800 bytes) fits a
	// client's 4096-byte buffer, but not the 512 bytes of a client
	// without EDNS.
	e, _ = startFaulty(t, nil)
	m, size, _ := udpAnswer(t, e.srv, outsideClient, query("t.big.example.", dns.TypeTXT, withSize(4096)))
	if m.Truncated || len(m.Answer) != 3 || size > DefaultMaxUDPSize {
		t.Fatalf("answer of %d bytes:\n%v", size, m)
	}
	m, size, qlen := udpAnswer(t, e.srv, outsideClient, query("t.big.example.", dns.TypeTXT, withoutEDNS))
	assertTruncated(t, m, size, qlen)
}

// TestAmplificationBound: no UDP answer is larger than
// dns.max_amplification times its query: larger answers are truncated
// and a block notice drops its justification as it would for a small
// buffer; TCP is not bounded. The default bound leaves ordinary answers
// and block notices whole.
func TestAmplificationBound(t *testing.T) {
	e, _ := startFaulty(t, func(c *Config) { c.MaxAmplification = 4 })
	cases := []struct {
		from string
		q    *dns.Msg
	}{
		{outsideClient, query("t.big.example.", dns.TypeTXT)},
		{outsideClient, query("t.big.example.", dns.TypeTXT, withoutEDNS)},
		{outsideClient, query("a.ok.example.", dns.TypeA)},
		{frClient, query("www.motogpstream.me.", dns.TypeA)},
		{frClient, query("x.blockedaddr.example.", dns.TypeA)},
		{outsideClient, query("gone.nx.example.", dns.TypeA, withDO)},
	}
	for range 2 { // from the upstream, then from the cache
		for _, c := range cases {
			m, size, qlen := udpAnswer(t, e.srv, c.from, c.q)
			if m == nil {
				t.Fatalf("%v: no answer", c.q.Question[0])
			}
			if size > 4*qlen {
				t.Errorf("%v from %s: %d-byte answer to a %d-byte query:\n%v", c.q.Question[0], c.from, size, qlen, m)
			}
		}
	}
	m, size, qlen := udpAnswer(t, e.srv, outsideClient, query("t.big.example.", dns.TypeTXT))
	assertTruncated(t, m, size, qlen)
	m, _, _ = udpAnswer(t, e.srv, frClient, query("www.motogpstream.me.", dns.TypeA))
	if se := assertBlocked(t, m, dns.RcodeRefused); se.J != "" || len(se.C) != 1 {
		t.Fatalf("want the contact alone in a notice bounded to 4 times the query, got %+v", se)
	}
	if se := assertBlocked(t, e.query(frClient, "www.motogpstream.me", dns.TypeA, overTCP), dns.RcodeRefused); se.J == "" {
		t.Fatal("TCP notice without its justification")
	}

	e, _ = startFaulty(t, nil)
	m, _, _ = udpAnswer(t, e.srv, frClient, query("www.motogpstream.me.", dns.TypeA))
	if se := assertBlocked(t, m, dns.RcodeRefused); se.J == "" {
		t.Fatal("the default bound cut the justification of a block notice")
	}
	m, _, _ = udpAnswer(t, e.srv, outsideClient, query("t.big.example.", dns.TypeTXT))
	if m.Truncated {
		t.Fatalf("the default bound truncated an 800-byte answer:\n%v", m)
	}
}

// TestTruncatedAnswerIsNoLargerThanItsQuery: whatever the query —
// names of every length, with or without EDNS and DO, in and out of
// scope, blocked or not — a truncated answer is never larger than it.
func TestTruncatedAnswerIsNoLargerThanItsQuery(t *testing.T) {
	e, _ := startFaulty(t, func(c *Config) { c.MaxAmplification = 1 })
	for _, label := range []string{"a", strings.Repeat("b", 63)} {
		for _, name := range []string{label + ".big.example.", label + ".motogpstream.me.", label + ".blockedaddr.example."} {
			for _, mods := range [][]func(*dns.Msg){nil, {withoutEDNS}, {withDO}, {withSize(512)}} {
				for _, from := range []string{frClient, outsideClient} {
					for _, qt := range []uint16{dns.TypeA, dns.TypeTXT} {
						m, size, qlen := udpAnswer(t, e.srv, from, query(name, qt, mods...))
						if m == nil || size > qlen {
							t.Fatalf("%s %s from %s: %d-byte answer to a %d-byte query:\n%v", name, dns.TypeToString[qt], from, size, qlen, m)
						}
					}
				}
			}
		}
	}
}

// TestMinimalResponses: by default the upstream's NS records and glue are
// left out of answers, on both paths; a negative answer keeps its SOA.
// With FullResponses they are kept.
func TestMinimalResponses(t *testing.T) {
	e, _ := startFaulty(t, nil)
	for range 2 { // from the upstream, then from the cache
		m, _, _ := udpAnswer(t, e.srv, outsideClient, query("m.ok.example.", dns.TypeA))
		if len(m.Answer) != 1 || len(m.Ns) != 0 || len(m.Extra) != 1 {
			t.Fatalf("not a minimal response:\n%v", m)
		}
		m, _, _ = udpAnswer(t, e.srv, outsideClient, query("gone.nx.example.", dns.TypeA))
		if m.Rcode != dns.RcodeNameError || len(m.Ns) != 1 || m.Ns[0].Header().Rrtype != dns.TypeSOA {
			t.Fatalf("negative answer without its SOA:\n%v", m)
		}
	}
	e, _ = startFaulty(t, func(c *Config) { c.FullResponses = true })
	for range 2 {
		m, _, _ := udpAnswer(t, e.srv, outsideClient, query("m.ok.example.", dns.TypeA))
		if len(m.Ns) != 1 || len(m.Extra) != 2 {
			t.Fatalf("full response lacks authority or additional records:\n%v", m)
		}
	}
}

// TestMinimise: what a minimal response keeps of each section.
func TestMinimise(t *testing.T) {
	m := new(dns.Msg)
	m.Answer = []dns.RR{mustRR("a.example. 60 IN A 192.0.2.1")}
	m.Ns = []dns.RR{
		mustRR("example. 60 IN NS ns.example."),
		mustRR("example. 60 IN SOA ns.example. host.example. 1 2 3 4 5"),
		mustRR("a.example. 60 IN NSEC b.example. A RRSIG NSEC"),
		mustRR("a.example. 60 IN RRSIG NSEC 13 2 60 20300101000000 20200101000000 1 example. AAAA"),
		mustRR("example. 60 IN RRSIG NS 13 1 60 20300101000000 20200101000000 1 example. AAAA"),
	}
	m.Extra = []dns.RR{mustRR("ns.example. 60 IN A 192.0.2.53"), &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}}
	minimise(m)
	var kept []string
	for _, rr := range m.Ns {
		kept = append(kept, dns.TypeToString[rr.Header().Rrtype])
	}
	if strings.Join(kept, " ") != "SOA NSEC RRSIG" || len(m.Extra) != 1 || m.Extra[0].Header().Rrtype != dns.TypeOPT || len(m.Answer) != 1 {
		t.Fatalf("minimised to authority %v, additional %v", kept, m.Extra)
	}
}
