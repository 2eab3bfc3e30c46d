package dnsserver

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/internal/localzone"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/scope"
)

// Loopback addresses stand for clients in different places: 127.0.0.2 is
// mapped to France, 127.0.0.3 to Italy, 127.0.0.1 and 127.0.0.4 to
// nowhere.
const (
	frClient      = "127.0.0.2"
	itClient      = "127.0.0.3"
	outsideClient = "127.0.0.1"
	unknownClient = "127.0.0.4"
)

var upstreamRecords = []string{
	"motogpstream.me. 300 IN A 198.51.100.7",
	"www.motogpstream.me. 300 IN A 198.51.100.7",
	"a.b.motogpstream.me. 300 IN A 198.51.100.7",
	"notmotogpstream.me. 300 IN A 198.51.100.8",
	"motogpstream.me.evil.com. 300 IN A 198.51.100.9",
	"alias.example. 300 IN CNAME www.motogpstream.me.",
	"shared-host.example. 300 IN A 203.0.113.7",
	"v6-host.example. 300 IN AAAA 2001:db8::7",
	"allowed.example. 300 IN A 198.51.100.10",
	"big.example. 300 IN TXT \"" + strings.Repeat("x", 250) + "\"",
	"big.example. 300 IN TXT \"" + strings.Repeat("y", 250) + "\"",
	"big.example. 300 IN TXT \"" + strings.Repeat("z", 250) + "\"",
}

// hugeRecords is the number of TXT records of huge.example, an answer of
// about 50 KB that only TCP carries.
const hugeRecords = 200

func init() {
	for i := range hugeRecords {
		upstreamRecords = append(upstreamRecords, fmt.Sprintf("huge.example. 300 IN TXT \"%03d%s\"", i, strings.Repeat("h", 240)))
	}
}

type env struct {
	t        *testing.T
	srv      *Server
	upstream *localzone.Server
	holder   *policy.Holder
	addr     string
	orders   []*order.Order
}

func frOrder() *order.Order {
	now := time.Now()
	return &order.Order{
		ID:           "20261123-fr0001",
		Authority:    order.Authority{ID: "tj-paris", Name: "Tribunal judiciaire de Paris", Kind: order.Court, Jurisdiction: "FR"},
		LegalBasis:   order.LegalBasis{Statute: "Code du sport L.333-10", Case: "Canal+ v. Cloudflare"},
		Jurisdiction: []string{"FR"},
		Effective:    now.Add(-time.Hour),
		Expires:      now.Add(time.Hour),
		Received:     now.Add(-time.Hour),
		Targets: []order.Target{
			{FQDN: "motogpstream.me", Subdomains: true, State: order.TargetActive},
			{IP: "203.0.113.0/24", State: order.TargetActive},
			{IP: "2001:db8::/48", State: order.TargetActive},
		},
	}
}

func start(t *testing.T, mutate func(*Config)) *env {
	t.Helper()
	up, err := localzone.Start("127.0.0.1:0", upstreamRecords...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	fr, _ := scope.ParseMapping("FR=" + frClient)
	it, _ := scope.ParseMapping("IT=" + itClient)
	sc, err := scope.New(append(fr, it...), nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, upstream: up, orders: []*order.Order{frOrder()}}
	e.holder = policy.NewHolder(policy.Compile(e.orders, time.Now(), 1, nil))
	cfg := Config{
		Listen:    []string{"127.0.0.1:0"},
		Upstreams: []string{up.Addr()},
		Operator:  "Example ISP",
		Contact:   []string{"mailto:legal@isp.example"},
		RecordURL: func(id string) string { return "http://127.0.0.1:8080/orders/" + id },
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv, err := New(cfg, e.holder, sc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); srv.Shutdown(context.Background()) })
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.addr = srv.Addrs()[0].String()
	return e
}

// query sends one question from the given loopback source address.
func (e *env) query(from, name string, qtype uint16, opts ...func(*dns.Msg, *dns.Client)) *dns.Msg {
	e.t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, false)
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(from)}}}
	for _, o := range opts {
		o(m, c)
	}
	if c.Net == "tcp" {
		c.Dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	resp, _, err := c.Exchange(m, e.addr)
	if err != nil {
		e.t.Fatalf("query %s from %s: %v", name, from, err)
	}
	return resp
}

func noEDNS(m *dns.Msg, _ *dns.Client)  { m.Extra = nil }
func overTCP(_ *dns.Msg, c *dns.Client) { c.Net = "tcp" }

func ede(m *dns.Msg) (*dns.EDNS0_EDE, bool) {
	opt := m.IsEdns0()
	if opt == nil {
		return nil, false
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_EDE); ok {
			return e, true
		}
	}
	return nil, false
}

func addrs(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.AAAA:
			out = append(out, v.AAAA.String())
		}
	}
	return out
}

func assertBlocked(t *testing.T, m *dns.Msg, rcode int) structuredError {
	t.Helper()
	if m.Rcode != rcode {
		t.Fatalf("rcode %s, want %s:\n%v", dns.RcodeToString[m.Rcode], dns.RcodeToString[rcode], m)
	}
	e, ok := ede(m)
	if !ok || e.InfoCode != dns.ExtendedErrorCodeCensored {
		t.Fatalf("no EDE 16 in\n%v", m)
	}
	var se structuredError
	if err := json.Unmarshal([]byte(e.ExtraText), &se); err != nil {
		t.Fatalf("EXTRA-TEXT is not JSON: %q", e.ExtraText)
	}
	return se
}

func assertAnswered(t *testing.T, m *dns.Msg, want string) {
	t.Helper()
	if m.Rcode != dns.RcodeSuccess {
		t.Fatalf("rcode %s, want NOERROR:\n%v", dns.RcodeToString[m.Rcode], m)
	}
	if got := addrs(m); len(got) == 0 || got[len(got)-1] != want {
		t.Fatalf("answer %v, want %s", got, want)
	}
	if _, ok := ede(m); ok {
		t.Fatalf("unexpected EDE in an allowed answer:\n%v", m)
	}
}

func TestScopedBlocking(t *testing.T) {
	e := start(t, nil)
	se := assertBlocked(t, e.query(frClient, "www.motogpstream.me", dns.TypeA), dns.RcodeRefused)
	if !strings.Contains(se.J, "20261123-fr0001") || !strings.Contains(se.J, "Tribunal judiciaire de Paris") || !strings.Contains(se.J, "/orders/20261123-fr0001") {
		t.Errorf("justification %q does not cite the order, authority and record", se.J)
	}
	if se.O != "Example ISP" || se.L != "en" || len(se.C) != 1 || se.C[0] != "mailto:legal@isp.example" {
		t.Errorf("structured error = %+v", se)
	}
	// The other side of the scope: nobody outside France is blocked.
	for _, from := range []string{outsideClient, itClient, unknownClient} {
		assertAnswered(t, e.query(from, "www.motogpstream.me", dns.TypeA), "198.51.100.7")
	}
}

func TestSubdomainCoverageOnTheWire(t *testing.T) {
	e := start(t, nil)
	assertBlocked(t, e.query(frClient, "a.b.motogpstream.me", dns.TypeA), dns.RcodeRefused)
	assertBlocked(t, e.query(frClient, "MotoGPStream.ME", dns.TypeA), dns.RcodeRefused)
	assertBlocked(t, e.query(frClient, "motogpstream.me", dns.TypeAAAA), dns.RcodeRefused)
	assertAnswered(t, e.query(frClient, "motogpstream.me.evil.com", dns.TypeA), "198.51.100.9")
	assertAnswered(t, e.query(frClient, "notmotogpstream.me", dns.TypeA), "198.51.100.8")
}

func TestAnswersPointingAtBlockedTargets(t *testing.T) {
	e := start(t, nil)
	// An address in a blocked prefix, by IPv4 and IPv6.
	assertBlocked(t, e.query(frClient, "shared-host.example", dns.TypeA), dns.RcodeRefused)
	assertAnswered(t, e.query(outsideClient, "shared-host.example", dns.TypeA), "203.0.113.7")
	assertBlocked(t, e.query(frClient, "v6-host.example", dns.TypeAAAA), dns.RcodeRefused)
	assertAnswered(t, e.query(itClient, "v6-host.example", dns.TypeAAAA), "2001:db8::7")
	// A CNAME into a blocked domain.
	assertBlocked(t, e.query(frClient, "alias.example", dns.TypeA), dns.RcodeRefused)
	assertAnswered(t, e.query(outsideClient, "alias.example", dns.TypeA), "198.51.100.7")
	if e.srv.Metrics.answerBlocks.Load() != 3 {
		t.Errorf("answer blocks = %d", e.srv.Metrics.answerBlocks.Load())
	}
}

func TestBlockModes(t *testing.T) {
	e := start(t, func(c *Config) { c.BlockMode = NXDomain })
	assertBlocked(t, e.query(frClient, "motogpstream.me", dns.TypeA), dns.RcodeNameError)

	e = start(t, func(c *Config) {
		c.BlockMode = Sinkhole
		c.SinkholeV4 = netip.MustParseAddr("192.0.2.80")
		c.SinkholeV6 = netip.MustParseAddr("2001:db8::80")
	})
	m := e.query(frClient, "motogpstream.me", dns.TypeA)
	assertBlocked(t, m, dns.RcodeSuccess)
	if got := addrs(m); len(got) != 1 || got[0] != "192.0.2.80" || m.Answer[0].Header().Ttl > 60 {
		t.Fatalf("sinkhole answer %v", m.Answer)
	}
	m = e.query(frClient, "motogpstream.me", dns.TypeAAAA)
	if got := addrs(m); len(got) != 1 || got[0] != "2001:db8::80" {
		t.Fatalf("sinkhole answer %v", m.Answer)
	}
	m = e.query(frClient, "motogpstream.me", dns.TypeMX)
	assertBlocked(t, m, dns.RcodeSuccess)
	if len(m.Answer) != 0 {
		t.Fatalf("MX in sinkhole mode answered %v", m.Answer)
	}
}

func TestClientWithoutEDNS(t *testing.T) {
	e := start(t, nil)
	m := e.query(frClient, "motogpstream.me", dns.TypeA, noEDNS)
	if m.Rcode != dns.RcodeRefused || m.IsEdns0() != nil {
		t.Fatalf("want bare REFUSED without OPT (RFC 6891 section 7):\n%v", m)
	}
	m = e.query(outsideClient, "motogpstream.me", dns.TypeA, noEDNS)
	if m.IsEdns0() != nil || len(addrs(m)) != 1 {
		t.Fatalf("allowed answer without EDNS:\n%v", m)
	}
}

func TestTrustedECS(t *testing.T) {
	e := start(t, func(c *Config) { c.ECSTrusted = []netip.Prefix{netip.MustParsePrefix(outsideClient + "/32")} })
	withECS := func(subnet string) func(*dns.Msg, *dns.Client) {
		return func(m *dns.Msg, _ *dns.Client) {
			p := netip.MustParsePrefix(subnet)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice()})
		}
	}
	// A trusted front-end resolver relays a French client's subnet.
	m := e.query(outsideClient, "motogpstream.me", dns.TypeA, withECS(frClient+"/32"))
	assertBlocked(t, m, dns.RcodeRefused)
	var echoed *dns.EDNS0_SUBNET
	for _, o := range m.IsEdns0().Option {
		if s, ok := o.(*dns.EDNS0_SUBNET); ok {
			echoed = s
		}
	}
	if echoed == nil || echoed.SourceScope != 32 {
		t.Fatalf("ECS not echoed with a scope covering the decision: %v", m)
	}
	// The same resolver relaying a client from nowhere gets the answer.
	assertAnswered(t, e.query(outsideClient, "motogpstream.me", dns.TypeA, withECS(unknownClient+"/32")), "198.51.100.7")
	// An untrusted French client cannot escape by claiming another subnet.
	assertBlocked(t, e.query(frClient, "motogpstream.me", dns.TypeA, withECS(unknownClient+"/32")), dns.RcodeRefused)
	// Nor can an untrusted outsider get France's scope... or be blocked by it.
	assertAnswered(t, e.query(itClient, "motogpstream.me", dns.TypeA, withECS(frClient+"/32")), "198.51.100.7")
}

func TestPolicySwapTakesEffectAtOnce(t *testing.T) {
	e := start(t, nil)
	assertBlocked(t, e.query(frClient, "motogpstream.me", dns.TypeA), dns.RcodeRefused)
	revoked := frOrder()
	revoked.Disposition = order.Revoked
	e.holder.Store(policy.Compile([]*order.Order{revoked}, time.Now(), 2, nil))
	assertAnswered(t, e.query(frClient, "motogpstream.me", dns.TypeA), "198.51.100.7")
}

func TestCache(t *testing.T) {
	e := start(t, nil)
	assertAnswered(t, e.query(outsideClient, "allowed.example", dns.TypeA), "198.51.100.10")
	before := e.upstream.Queries()
	for range 5 {
		m := e.query(outsideClient, "ALLOWED.example", dns.TypeA)
		assertAnswered(t, m, "198.51.100.10")
		if ttl := m.Answer[0].Header().Ttl; ttl > 300 || ttl < 290 {
			t.Fatalf("cached TTL %d", ttl)
		}
	}
	if got := e.upstream.Queries(); got != before {
		t.Fatalf("upstream asked %d more times for a cached answer", got-before)
	}
	// Blocking applies to cached answers too: the cache is per name, the
	// decision per client.
	assertAnswered(t, e.query(outsideClient, "shared-host.example", dns.TypeA), "203.0.113.7")
	assertBlocked(t, e.query(frClient, "shared-host.example", dns.TypeA), dns.RcodeRefused)
}

func TestTruncationAndTCP(t *testing.T) {
	e := start(t, nil)
	small := func(m *dns.Msg, _ *dns.Client) { m.IsEdns0().SetUDPSize(512) }
	m := e.query(outsideClient, "big.example", dns.TypeTXT, small)
	if !m.Truncated {
		t.Fatalf("a 760-byte answer in a 512-byte buffer was not truncated:\n%v", m)
	}
	m = e.query(outsideClient, "big.example", dns.TypeTXT, small, overTCP)
	if m.Truncated || len(m.Answer) != 3 {
		t.Fatalf("TCP answer: %v", m)
	}
	assertBlocked(t, e.query(frClient, "motogpstream.me", dns.TypeA, overTCP), dns.RcodeRefused)
}

func TestLongJustificationFitsSmallBuffers(t *testing.T) {
	e := start(t, func(c *Config) { c.Operator = strings.Repeat("Operator ", 50) })
	m := e.query(frClient, "motogpstream.me", dns.TypeA, func(m *dns.Msg, _ *dns.Client) { m.IsEdns0().SetUDPSize(512) })
	se := assertBlocked(t, m, dns.RcodeRefused)
	if se.J != "" || se.O != "" || len(se.C) != 1 || m.Truncated {
		t.Fatalf("want the contact alone in a 512-byte answer, got %+v (TC=%v)", se, m.Truncated)
	}
	m = e.query(frClient, "motogpstream.me", dns.TypeA, overTCP)
	if se := assertBlocked(t, m, dns.RcodeRefused); se.J == "" {
		t.Fatal("full justification missing over TCP")
	}
}

func TestMalformedQueries(t *testing.T) {
	e := start(t, nil)
	two := func(m *dns.Msg, _ *dns.Client) { m.Question = append(m.Question, m.Question[0]) }
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion("allowed.example.", dns.TypeA)
	two(m, nil)
	resp, _, err := c.Exchange(m, e.addr)
	if err != nil || resp.Rcode != dns.RcodeFormatError {
		t.Fatalf("two questions: %v %v", resp, err)
	}
	m = new(dns.Msg)
	m.SetNotify("example.")
	resp, _, err = c.Exchange(m, e.addr)
	if err != nil || resp.Rcode != dns.RcodeNotImplemented {
		t.Fatalf("NOTIFY: %v %v", resp, err)
	}
	m = new(dns.Msg)
	m.SetQuestion("allowed.example.", dns.TypeA)
	m.SetEdns0(1232, false)
	m.IsEdns0().SetVersion(1)
	resp, _, err = c.Exchange(m, e.addr)
	if err != nil || resp.Rcode != dns.RcodeBadVers {
		t.Fatalf("EDNS version 1: %v %v", resp, err)
	}
	m = new(dns.Msg)
	m.SetQuestion("allowed.example.", dns.TypeA)
	m.Question[0].Qclass = dns.ClassCHAOS
	resp, _, err = c.Exchange(m, e.addr)
	if err != nil || resp.Rcode != dns.RcodeRefused {
		t.Fatalf("CHAOS: %v %v", resp, err)
	}
	// A response sent to the server is never answered.
	m = new(dns.Msg)
	m.SetQuestion("allowed.example.", dns.TypeA)
	m.Response = true
	c.Timeout = 300 * time.Millisecond
	if resp, _, err = c.Exchange(m, e.addr); err == nil {
		t.Fatalf("answered a response: %v", resp)
	}
}

func TestUpstreamFailure(t *testing.T) {
	// An upstream that never answers: a bound UDP socket nobody reads.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	e := start(t, func(c *Config) {
		c.Upstreams = []string{dead.LocalAddr().String()}
		c.UpstreamTimeout = 200 * time.Millisecond
	})
	m := e.query(outsideClient, "allowed.example", dns.TypeA)
	if m.Rcode != dns.RcodeServerFailure {
		t.Fatalf("want SERVFAIL, got\n%v", m)
	}
	if x, ok := ede(m); !ok || x.InfoCode != dns.ExtendedErrorCodeNetworkError {
		t.Fatalf("want EDE 23, got\n%v", m)
	}
	// The policy does not depend on the upstream: still blocked in scope.
	assertBlocked(t, e.query(frClient, "motogpstream.me", dns.TypeA), dns.RcodeRefused)
}

func TestFailoverToSecondUpstream(t *testing.T) {
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	e := start(t, func(c *Config) {
		c.Upstreams = append([]string{dead.LocalAddr().String()}, c.Upstreams...)
		c.UpstreamTimeout = 200 * time.Millisecond
	})
	assertAnswered(t, e.query(outsideClient, "allowed.example", dns.TypeA), "198.51.100.10")
}

func TestConfigValidation(t *testing.T) {
	cases := map[string]Config{
		"upstreams":     {},
		"block mode":    {Upstreams: []string{"127.0.0.1:53"}, BlockMode: "drop"},
		"sinkhole":      {Upstreams: []string{"127.0.0.1:53"}, BlockMode: Sinkhole},
		"mailto":        {Upstreams: []string{"127.0.0.1:53"}, Contact: []string{"https://isp.example/legal"}},
		"sinkhole_ipv4": {Upstreams: []string{"127.0.0.1:53"}, BlockMode: Sinkhole, SinkholeV4: netip.MustParseAddr("::1")},
	}
	for want, cfg := range cases {
		if _, err := New(cfg, policy.NewHolder(nil), nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %+v: error %v, want one mentioning %q", cfg, err, want)
		}
	}
	c := Config{Upstreams: []string{"192.0.2.53", "2001:db8::53", "dns.example"}}
	c.fillDefaults()
	if strings.Join(c.Upstreams, " ") != "192.0.2.53:53 [2001:db8::53]:53 dns.example:53" {
		t.Errorf("upstreams %v", c.Upstreams)
	}
}

func TestBindErrorIsReported(t *testing.T) {
	e := start(t, nil)
	srv, err := New(Config{Listen: []string{e.addr}, Upstreams: []string{"127.0.0.1:53"}}, e.holder, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err == nil || !strings.Contains(err.Error(), e.addr) {
		t.Fatalf("second bind on %s: %v", e.addr, err)
	}
}
