package dnsserver

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func testLimiter(limit, slip, maxClients int) *rateLimiter {
	c := Config{RateLimit: RateLimit{ResponsesPerSecond: limit, Slip: slip, MaxClients: maxClients, Exempt: []netip.Prefix{}}}
	c.fillDefaults()
	return newRateLimiter(c.RateLimit)
}

func actions(l *rateLimiter, client string, sec int64, n int) string {
	var out []byte
	for range n {
		out = append(out, "ASD"[l.check(netip.MustParseAddr(client), sec)])
	}
	return string(out)
}

// TestRateLimitPerPrefix: a client prefix gets its limit of responses a
// second; beyond it, every Slip-th is truncated and the others dropped.
// Addresses of one /24 (IPv4) or /56 (IPv6) count together; other
// prefixes, and the next second, start afresh.
func TestRateLimitPerPrefix(t *testing.T) {
	const sec = 1_800_000_000
	l := testLimiter(5, 2, 1024)
	if got := actions(l, "192.0.2.1", sec, 10); got != "AAAAADSDSD" {
		t.Errorf("192.0.2.1: %s, want 5 answered, then dropped and truncated in turn", got)
	}
	if got := actions(l, "192.0.2.200", sec, 2); got != "SD" {
		t.Errorf("192.0.2.200, in the same /24: %s", got)
	}
	if got := actions(l, "192.0.3.1", sec, 5); got != "AAAAA" {
		t.Errorf("192.0.3.1, another /24: %s", got)
	}
	if got := actions(l, "192.0.2.1", sec+1, 5); got != "AAAAA" {
		t.Errorf("192.0.2.1 the next second: %s", got)
	}
	if got := actions(l, "2001:db8:0:1::1", sec, 5) + actions(l, "2001:db8:0:ff::2", sec, 1); got != "AAAAAD" {
		t.Errorf("two addresses of one /56: %s", got)
	}
	if got := actions(l, "2001:db8:0:100::1", sec, 1); got != "A" {
		t.Errorf("another /56: %s", got)
	}

	if got := actions(testLimiter(2, 1, 1024), "192.0.2.1", sec, 5); got != "AASSS" {
		t.Errorf("slip 1: %s, want every limited response truncated", got)
	}
	if got := actions(testLimiter(2, -1, 1024), "192.0.2.1", sec, 5); got != "AADDD" {
		t.Errorf("no slip: %s, want every limited response dropped", got)
	}
	if l := testLimiter(-1, 0, 0); l != nil {
		t.Error("a negative limit does not turn the limit off")
	}
}

// TestRateLimitExempt: loopback is exempt by default (a forged loopback
// source cannot arrive from the network); the configured list replaces
// the default.
func TestRateLimitExempt(t *testing.T) {
	c := Config{RateLimit: RateLimit{ResponsesPerSecond: 1}}
	c.fillDefaults()
	l := newRateLimiter(c.RateLimit)
	if got := actions(l, "127.0.0.2", 1, 5) + actions(l, "::1", 1, 5); got != "AAAAAAAAAA" {
		t.Errorf("loopback limited: %s", got)
	}
	if got := actions(l, "192.0.2.1", 1, 2); got != "AD" {
		t.Errorf("192.0.2.1: %s", got)
	}
	c = Config{RateLimit: RateLimit{ResponsesPerSecond: 1, Exempt: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}}
	c.fillDefaults()
	l = newRateLimiter(c.RateLimit)
	if got := actions(l, "192.0.2.1", 1, 3) + actions(l, "127.0.0.1", 1, 2); got != "AAAAD" {
		t.Errorf("exempt 192.0.2.0/24 only: %s", got)
	}
}

// TestRateLimitKeepsTheHeavyHitter: in a full table, a new prefix takes
// the place of the one with the fewest responses this second, so a flood
// from many (forged) sources cannot free the prefix being flooded from
// its limit.
func TestRateLimitKeepsTheHeavyHitter(t *testing.T) {
	l := testLimiter(5, -1, rateWays) // one set: every prefix competes
	const sec = 7
	actions(l, "198.51.100.1", sec, 10)
	for i := range 50 {
		actions(l, fmt.Sprintf("10.%d.0.1", i), sec, 1)
	}
	if got := actions(l, "198.51.100.1", sec, 1); got != "D" {
		t.Errorf("the flooded prefix was let through after the table churned: %s", got)
	}
}

// TestRateLimitConcurrent: counting from several goroutines at once
// lets exactly the limit through.
func TestRateLimitConcurrent(t *testing.T) {
	l := testLimiter(1000, -1, 1024)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed int
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for range 500 {
				if l.check(netip.MustParseAddr("192.0.2.9"), 42) == rateAllow {
					n++
				}
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if allowed != 1000 {
		t.Fatalf("%d responses allowed, want 1000", allowed)
	}
}

// withinOneSecond runs f until it runs within one wall-clock second (the
// rate limit's window), at most five times.
func withinOneSecond(t *testing.T, f func() bool) {
	t.Helper()
	for range 5 {
		before := time.Now().Unix()
		ok := f()
		if time.Now().Unix() == before {
			if !ok {
				t.FailNow()
			}
			return
		}
	}
	t.Fatal("could not run within one second")
}

// TestRateLimitOnBothPaths: queries answered on the fast path and on the
// general path (cache misses, queries the fast path cannot parse) count
// against the same limit, once each; limited ones are dropped or get a
// truncated answer no larger than the query, and are counted.
func TestRateLimitOnBothPaths(t *testing.T) {
	withinOneSecond(t, func() bool {
		e, _ := startFaulty(t, func(c *Config) { c.RateLimit = RateLimit{ResponsesPerSecond: 6, Slip: 2} })
		client := netip.MustParseAddrPort("192.0.2.10:40000")
		sc := newScratch()
		send := func(m *dns.Msg) *dns.Msg {
			pkt, _ := m.Pack()
			raw := exchangeUDP(e.srv, client, pkt, sc)
			if raw == nil {
				return nil
			}
			resp := new(dns.Msg)
			if err := resp.Unpack(raw); err != nil {
				t.Fatal(err)
			}
			if resp.Truncated && len(raw) > len(pkt) {
				t.Errorf("truncated answer of %d bytes to a %d-byte query", len(raw), len(pkt))
			}
			return resp
		}
		// Six answered: misses (general path), hits (fast path), a
		// block, a query only the general path parses.
		answered := []*dns.Msg{
			query("r1.ok.example.", dns.TypeA),
			query("r1.ok.example.", dns.TypeA),
			query("r2.ok.example.", dns.TypeA),
			query("www.motogpstream.me.", dns.TypeA),
			query("r1.ok.example.", dns.TypeA, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }),
			query("a\\.b.ok.example.", dns.TypeA),
		}
		for _, m := range answered {
			if resp := send(m); resp == nil || resp.Truncated {
				t.Errorf("%v: %v, want an answer within the limit", m.Question[0], resp)
				return false
			}
		}
		// Then dropped, truncated, dropped, truncated, on either path.
		var got []string
		for _, m := range []*dns.Msg{query("r1.ok.example.", dns.TypeA), query("r3.ok.example.", dns.TypeA),
			query("a\\.b.ok.example.", dns.TypeA), query("www.motogpstream.me.", dns.TypeA)} {
			switch resp := send(m); {
			case resp == nil:
				got = append(got, "dropped")
			case resp.Truncated && len(resp.Answer) == 0 && resp.Rcode == dns.RcodeSuccess && resp.Id == m.Id:
				got = append(got, "truncated")
			default:
				got = append(got, "answered")
			}
		}
		if fmt.Sprint(got) != "[dropped truncated dropped truncated]" {
			t.Errorf("beyond the limit: %v", got)
			return false
		}
		m := e.srv.Metrics
		if d, s := m.rateLimited[rateDrop].Load(), m.rateLimited[rateSlip].Load(); d != 2 || s != 2 {
			t.Errorf("counted %d dropped and %d truncated, want 2 and 2", d, s)
		}
		if q := m.queriesUDP.Load(); q != 10 {
			t.Errorf("counted %d queries, want 10", q)
		}
		// Loopback, exempt by default, is not limited.
		for range 10 {
			if resp, _, _ := udpAnswer(t, e.srv, outsideClient, query("r1.ok.example.", dns.TypeA)); resp == nil || resp.Truncated {
				t.Errorf("loopback limited: %v", resp)
				return false
			}
		}
		return true
	})
}

// TestRateLimitOverTheWire: over a real socket, a client beyond its
// limit gets truncated answers and, asking again over TCP, which is not
// limited, its answer.
func TestRateLimitOverTheWire(t *testing.T) {
	withinOneSecond(t, func() bool {
		e, _ := startFaulty(t, func(c *Config) {
			c.RateLimit = RateLimit{ResponsesPerSecond: 5, Slip: 1, Exempt: []netip.Prefix{}}
		})
		conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(frClient)}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(e.addr)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		const n = 20
		for i := range n {
			m := query("w.ok.example.", dns.TypeA)
			m.Id = uint16(i)
			pkt, _ := m.Pack()
			if _, err := conn.Write(pkt); err != nil {
				t.Fatal(err)
			}
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		answered, truncated := 0, 0
		buf := make([]byte, 2048)
		for range n {
			k, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("after %d answers and %d truncated: %v", answered, truncated, err)
			}
			resp := new(dns.Msg)
			if err := resp.Unpack(buf[:k]); err != nil {
				t.Fatal(err)
			}
			if resp.Truncated {
				truncated++
			} else {
				answered++
			}
		}
		if answered != 5 || truncated != 15 {
			t.Errorf("%d answered and %d truncated, want 5 and 15", answered, truncated)
			return false
		}
		assertAnswered(t, e.query(frClient, "w.ok.example", dns.TypeA, overTCP), upstreamAddr("w.ok.example").String())
		return true
	})
}
