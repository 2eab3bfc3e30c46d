package dnsserver

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// startFaulty starts a server whose only upstream is a testUpstream, with
// an upstream timeout short enough for failures to be quick and long
// enough for answers under the race detector on a loaded machine.
func startFaulty(t *testing.T, mutate func(*Config)) (*env, *testUpstream) {
	t.Helper()
	up := startUpstream(t)
	e := start(t, func(c *Config) {
		c.Upstreams = []string{up.Addr()}
		c.UpstreamTimeout = 500 * time.Millisecond
		if mutate != nil {
			mutate(c)
		}
	})
	return e, up
}

// ageCache moves every cached answer back in time by d, as if it had
// been stored d earlier: the test's way to let answers expire without
// waiting for them to.
func ageCache(s *Server, d time.Duration) {
	for i := range s.cache.sets {
		for w := range s.cache.sets[i].ways {
			if e := s.cache.sets[i].ways[w].Load(); e != nil {
				old := *e
				old.stored, old.expires = e.stored.Add(-d), e.expires.Add(-d)
				if e.stale {
					old.staleSince = e.staleSince.Add(-d)
				}
				s.cache.sets[i].ways[w].Store(&old)
			}
		}
	}
}

// everyFault lists the misbehaviours an upstream failure test covers.
func everyFault() []fault {
	var fs []fault
	for f := range faultNames {
		fs = append(fs, f)
	}
	slices.Sort(fs)
	return fs
}

// assertServfail checks for a SERVFAIL with EDE 23 (Network Error) and
// no records: an upstream failure answered as one.
func assertServfail(t *testing.T, m *dns.Msg) {
	t.Helper()
	if m.Rcode != dns.RcodeServerFailure || len(m.Answer) != 0 {
		t.Fatalf("want SERVFAIL without records, got\n%v", m)
	}
	if x, ok := ede(m); !ok || x.InfoCode != dns.ExtendedErrorCodeNetworkError {
		t.Fatalf("want EDE 23 (Network Error), got\n%v", m)
	}
}

// assertStale checks for a stale answer (RFC 8767): NOERROR, the
// address, a TTL of at most StaleTTL, and EDE 3 (Stale Answer).
func assertStale(t *testing.T, m *dns.Msg, want netip.Addr) {
	t.Helper()
	if m.Rcode != dns.RcodeSuccess {
		t.Fatalf("rcode %s, want a stale NOERROR:\n%v", dns.RcodeToString[m.Rcode], m)
	}
	if got := addrs(m); len(got) == 0 || got[len(got)-1] != want.String() {
		t.Fatalf("stale answer %v, want %s:\n%v", got, want, m)
	}
	for _, rr := range m.Answer {
		if rr.Header().Ttl > uint32(DefaultStaleTTL/time.Second) {
			t.Fatalf("stale answer with TTL %d, want at most %v:\n%v", rr.Header().Ttl, DefaultStaleTTL, m)
		}
	}
	if x, ok := ede(m); !ok || x.InfoCode != dns.ExtendedErrorCodeStaleAnswer {
		t.Fatalf("want EDE 3 (Stale Answer), got\n%v", m)
	}
}

// TestUpstreamFaults: whatever the upstream does wrong — no answer,
// garbage, an answer under another ID or to another question, one cut
// short, not a response, TC then a closed TCP connection, SERVFAIL,
// REFUSED or FORMERR — a client gets SERVFAIL with EDE 23, never the
// failure as an answer; an in-scope client is still blocked for a
// blocked name, and an out-of-scope client is never blocked. Without
// serve-stale (the default) an expired answer is not served.
func TestUpstreamFaults(t *testing.T) {
	for _, f := range everyFault() {
		t.Run(faultNames[f], func(t *testing.T) {
			t.Parallel()
			e, up := startFaulty(t, nil)
			assertAnswered(t, e.query(outsideClient, "a.ok.example", dns.TypeA), upstreamAddr("a.ok.example").String())
			up.set(f)

			assertServfail(t, e.query(outsideClient, "fresh.ok.example", dns.TypeA))
			assertServfail(t, e.query(frClient, "fresh.ok.example", dns.TypeA))
			// In scope: blocked by name without asking the upstream, and
			// never given an address in a blocked prefix.
			before := up.queries.Load()
			assertBlocked(t, e.query(frClient, "www.motogpstream.me", dns.TypeA), dns.RcodeRefused)
			if up.queries.Load() != before {
				t.Error("the upstream was asked about a name blocked for the client")
			}
			assertServfail(t, e.query(frClient, "x.blockedaddr.example", dns.TypeA))
			// Out of scope: the failure, never a block.
			for _, from := range []string{outsideClient, itClient, unknownClient} {
				assertServfail(t, e.query(from, "www.motogpstream.me", dns.TypeA))
			}
			// An answer still in the cache is served; once expired, it is
			// not (serve-stale is off).
			assertAnswered(t, e.query(outsideClient, "a.ok.example", dns.TypeA), upstreamAddr("a.ok.example").String())
			ageCache(e.srv, 301*time.Second)
			assertServfail(t, e.query(outsideClient, "a.ok.example", dns.TypeA))
			if e.srv.Metrics.staleAnswers.Load() != 0 {
				t.Error("stale answers counted with serve-stale off")
			}
		})
	}
}

// TestFailoverOnEveryFault: an upstream that misbehaves in any way is
// passed over for the next.
func TestFailoverOnEveryFault(t *testing.T) {
	for _, f := range everyFault() {
		t.Run(faultNames[f], func(t *testing.T) {
			t.Parallel()
			bad := startUpstream(t)
			bad.set(f)
			e, _ := startFaulty(t, func(c *Config) { c.Upstreams = append([]string{bad.Addr()}, c.Upstreams...) })
			assertAnswered(t, e.query(outsideClient, "b.ok.example", dns.TypeA), upstreamAddr("b.ok.example").String())
			assertBlocked(t, e.query(frClient, "y.blockedaddr.example", dns.TypeA), dns.RcodeRefused)
			if bad.queries.Load() == 0 {
				t.Error("the first upstream was not tried")
			}
			if e.srv.Metrics.upstreamErrors.Load() == 0 {
				t.Error("the failure was not counted")
			}
		})
	}
}

// TestServeStale: with serve-stale on, an expired answer is served when
// the upstream fails, with a 30-second TTL and EDE 3 — and the policy in
// force applies to it as to any answer: in scope, a stale answer whose
// address is in a blocked prefix or whose CNAME points into a blocked
// domain is blocked; out of scope, stale data is never blocked. The
// stale answer is then served without asking the upstream until its TTL
// runs out, and not at all once older than the maximum stale age.
func TestServeStale(t *testing.T) {
	for _, f := range everyFault() {
		t.Run(faultNames[f], func(t *testing.T) {
			t.Parallel()
			e, up := startFaulty(t, func(c *Config) { c.MaxStale = time.Hour })
			names := map[string]netip.Addr{
				"a.ok.example":          upstreamAddr("a.ok.example"),
				"www.motogpstream.me":   upstreamAddr("www.motogpstream.me"),
				"x.blockedaddr.example": blockedAddr,
				"y.alias.example":       upstreamAddr("www.motogpstream.me"),
			}
			for name, a := range names {
				assertAnswered(t, e.query(outsideClient, name, dns.TypeA), a.String())
			}
			ageCache(e.srv, 400*time.Second)
			up.set(f)

			assertStale(t, e.query(outsideClient, "a.ok.example", dns.TypeA), names["a.ok.example"])
			assertStale(t, e.query(frClient, "a.ok.example", dns.TypeA), names["a.ok.example"])
			assertBlocked(t, e.query(frClient, "www.motogpstream.me", dns.TypeA), dns.RcodeRefused)
			assertBlocked(t, e.query(frClient, "x.blockedaddr.example", dns.TypeA), dns.RcodeRefused)
			assertBlocked(t, e.query(frClient, "y.alias.example", dns.TypeA), dns.RcodeRefused)
			for _, from := range []string{outsideClient, itClient, unknownClient} {
				assertStale(t, e.query(from, "www.motogpstream.me", dns.TypeA), names["www.motogpstream.me"])
				assertStale(t, e.query(from, "x.blockedaddr.example", dns.TypeA), blockedAddr)
				assertStale(t, e.query(from, "y.alias.example", dns.TypeA), names["y.alias.example"])
			}
			// Served again from the cache, stale still, without the
			// upstream, until StaleTTL has passed.
			before := up.queries.Load()
			assertStale(t, e.query(outsideClient, "a.ok.example", dns.TypeA), names["a.ok.example"])
			if up.queries.Load() != before {
				t.Error("the upstream was asked again within the stale answer's TTL")
			}
			// A name never answered has nothing stale to serve.
			assertServfail(t, e.query(outsideClient, "never.ok.example", dns.TypeA))
			// Past the maximum stale age: SERVFAIL.
			ageCache(e.srv, 2*time.Hour)
			assertServfail(t, e.query(outsideClient, "a.ok.example", dns.TypeA))
			if e.srv.Metrics.staleAnswers.Load() == 0 {
				t.Error("stale answers not counted")
			}

			// The upstream recovers: a fresh answer, without EDE.
			up.set(faultNone)
			assertAnswered(t, e.query(outsideClient, "a.ok.example", dns.TypeA), names["a.ok.example"].String())
		})
	}
}

// TestStaleNegativeAnswer: a negative answer is served stale too, and
// stays negative.
func TestStaleNegativeAnswer(t *testing.T) {
	e, up := startFaulty(t, func(c *Config) { c.MaxStale = time.Hour })
	if m := e.query(outsideClient, "gone.nx.example", dns.TypeA); m.Rcode != dns.RcodeNameError {
		t.Fatalf("want NXDOMAIN, got\n%v", m)
	}
	ageCache(e.srv, 400*time.Second)
	up.set(faultTimeout)
	m := e.query(outsideClient, "gone.nx.example", dns.TypeA)
	if x, ok := ede(m); m.Rcode != dns.RcodeNameError || !ok || x.InfoCode != dns.ExtendedErrorCodeStaleAnswer {
		t.Fatalf("want a stale NXDOMAIN with EDE 3, got\n%v", m)
	}
}
