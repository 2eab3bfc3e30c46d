package rpz

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
)

var (
	now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	fr  = jurisdiction.MustParse("FR")
	it  = jurisdiction.MustParse("IT")
)

func mkOrder(id string, juris []string, targets ...order.Target) *order.Order {
	for i := range targets {
		if targets[i].State == "" {
			targets[i].State = order.TargetActive
		}
	}
	return &order.Order{
		ID:           id,
		Authority:    order.Authority{ID: "a-" + id, Name: "Authority " + id, Kind: order.Court, Jurisdiction: juris[0]},
		LegalBasis:   order.LegalBasis{Case: "case " + id},
		Jurisdiction: juris,
		Effective:    now.Add(-time.Hour),
		Expires:      now.Add(time.Hour),
		Received:     now.Add(-2 * time.Hour),
		Targets:      targets,
	}
}

func sub(name string) order.Target   { return order.Target{FQDN: name, Subdomains: true} }
func exact(name string) order.Target { return order.Target{FQDN: name} }
func ip(p string) order.Target       { return order.Target{IP: p} }

func snapshot(orders ...*order.Order) *policy.Snapshot {
	return policy.Compile(orders, now, 1, nil)
}

func TestIPTrigger(t *testing.T) {
	for _, tc := range []struct{ prefix, owner string }{
		{"203.0.113.0/24", "24.0.113.0.203.rpz-ip"},
		{"203.0.113.7/32", "32.7.113.0.203.rpz-ip"},
		{"10.0.0.0/8", "8.0.0.0.10.rpz-ip"},
		{"2001:db8::/32", "32.zz.db8.2001.rpz-ip"},
		{"2001:db8:1::/48", "48.zz.1.db8.2001.rpz-ip"},
		{"2001:db8::10/128", "128.10.zz.db8.2001.rpz-ip"},
		{"2001:2:3::1/128", "128.1.zz.3.2.2001.rpz-ip"},
		{"::1/128", "128.1.zz.rpz-ip"},
		{"2001:db8:0:1:0:0:0:1/128", "128.1.zz.1.0.db8.2001.rpz-ip"}, // longest run only
		{"2001:db8:1:2:3:4:5:6/128", "128.6.5.4.3.2.1.db8.2001.rpz-ip"},
	} {
		p := netip.MustParsePrefix(tc.prefix)
		if got := IPTrigger(p); got != tc.owner {
			t.Errorf("IPTrigger(%s) = %s, want %s", tc.prefix, got, tc.owner)
		}
		back, err := ParseIPTrigger(tc.owner)
		if err != nil || back != p {
			t.Errorf("ParseIPTrigger(%s) = %v, %v; want %s", tc.owner, back, err, p)
		}
	}
	// Forms other writers use.
	for owner, want := range map[string]string{
		"32.10.zz.db8.2001":               "2001:db8::10/32",
		"24.0.113.0.203.RPZ-IP":           "203.0.113.0/24",
		"48.0.0.0.0.0.1.db8.2001.rpz-ip.": "2001:db8:1::/48",
	} {
		if want == "2001:db8::10/32" {
			// Host bits set: refused rather than silently masked.
			if _, err := ParseIPTrigger(owner); err == nil {
				t.Errorf("ParseIPTrigger(%s) accepted host bits", owner)
			}
			continue
		}
		if p, err := ParseIPTrigger(owner); err != nil || p.String() != want {
			t.Errorf("ParseIPTrigger(%s) = %v, %v; want %s", owner, p, err, want)
		}
	}
	for _, bad := range []string{"rpz-ip", "x.1.2.3.4", "33.1.2.3.4", "0.0.0.0.0", "24.1.2.3", "24.300.2.3.4", "129.zz", "64.zz.zz.1"} {
		if p, err := ParseIPTrigger(bad); err == nil {
			t.Errorf("ParseIPTrigger(%s) = %v, want an error", bad, p)
		}
	}
}

// zoneText renders the zone of c built from s, without the SOA.
func zoneText(t *testing.T, srv *Server, c jurisdiction.Code) string {
	t.Helper()
	var b bytes.Buffer
	z := srv.byOrigin[srv.Zone(c)]
	srv.render.eachRecord(z.origin, z.cur.Load(), func(rr dns.RR) bool {
		if rr.Header().Rrtype != dns.TypeSOA {
			b.WriteString(rr.String() + "\n")
		}
		return true
	})
	return b.String()
}

func newTestServer(t *testing.T, h *policy.Holder, edit func(c *Config)) *Server {
	t.Helper()
	c := Config{
		Listen:      []string{"127.0.0.1:0"},
		Scopes:      []jurisdiction.Code{fr, it},
		FirstSerial: 100,
		RecordURL:   func(id string) string { return "https://writ.example/orders/" + id },
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&c)
	}
	s, err := New(c, h)
	if err != nil {
		t.Fatal(err)
	}
	s.updated = make(chan struct{}, 64)
	return s
}

// testWriter sends logs to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func TestZoneContent(t *testing.T) {
	h := policy.NewHolder(snapshot(
		mkOrder("o-fr", []string{"FR"}, sub("motogpstream.me"), exact("exact.example"), ip("203.0.113.0/24"), ip("2001:db8:1::/48")),
		mkOrder("o-it", []string{"IT", "FR"}, exact("motogpstream.me"), ip("203.0.113.5/32")),
	))
	s := newTestServer(t, h, nil)
	want := `fr.rpz.writ.	60	IN	NS	localhost.
*.motogpstream.me.fr.rpz.writ.	60	IN	CNAME	.
*.motogpstream.me._orders.fr.rpz.writ.	60	IN	TXT	"o-fr" "https://writ.example/orders/o-fr"
24.0.113.0.203.rpz-ip.fr.rpz.writ.	60	IN	CNAME	.
24.0.113.0.203.rpz-ip._orders.fr.rpz.writ.	60	IN	TXT	"o-fr" "https://writ.example/orders/o-fr"
32.5.113.0.203.rpz-ip.fr.rpz.writ.	60	IN	CNAME	.
32.5.113.0.203.rpz-ip._orders.fr.rpz.writ.	60	IN	TXT	"o-fr" "https://writ.example/orders/o-fr"
32.5.113.0.203.rpz-ip._orders.fr.rpz.writ.	60	IN	TXT	"o-it" "https://writ.example/orders/o-it"
48.zz.1.db8.2001.rpz-ip.fr.rpz.writ.	60	IN	CNAME	.
48.zz.1.db8.2001.rpz-ip._orders.fr.rpz.writ.	60	IN	TXT	"o-fr" "https://writ.example/orders/o-fr"
exact.example.fr.rpz.writ.	60	IN	CNAME	.
exact.example._orders.fr.rpz.writ.	60	IN	TXT	"o-fr" "https://writ.example/orders/o-fr"
motogpstream.me.fr.rpz.writ.	60	IN	CNAME	.
motogpstream.me._orders.fr.rpz.writ.	60	IN	TXT	"o-fr" "https://writ.example/orders/o-fr"
motogpstream.me._orders.fr.rpz.writ.	60	IN	TXT	"o-it" "https://writ.example/orders/o-it"
`
	if got := zoneText(t, s, fr); got != want {
		t.Errorf("FR zone:\n%s\nwant:\n%s", got, want)
	}
	wantIT := `it.rpz.writ.	60	IN	NS	localhost.
32.5.113.0.203.rpz-ip.it.rpz.writ.	60	IN	CNAME	.
32.5.113.0.203.rpz-ip._orders.it.rpz.writ.	60	IN	TXT	"o-it" "https://writ.example/orders/o-it"
motogpstream.me.it.rpz.writ.	60	IN	CNAME	.
motogpstream.me._orders.it.rpz.writ.	60	IN	TXT	"o-it" "https://writ.example/orders/o-it"
`
	if got := zoneText(t, s, it); got != wantIT {
		t.Errorf("IT zone:\n%s\nwant:\n%s", got, wantIT)
	}
}

func TestActions(t *testing.T) {
	h := policy.NewHolder(snapshot(mkOrder("o", []string{"FR"}, exact("a.example"))))
	for _, tc := range []struct {
		action Action
		garden string
		want   string
	}{
		{NXDomain, "", "CNAME\t."},
		{NoData, "", "CNAME\t*."},
		{WalledGarden, "Blocked.ISP.example", "CNAME\tblocked.isp.example."},
	} {
		s := newTestServer(t, h, func(c *Config) { c.Action, c.WalledGarden = tc.action, tc.garden })
		if got := zoneText(t, s, fr); !strings.Contains(got, "a.example.fr.rpz.writ.\t60\tIN\t"+tc.want+"\n") {
			t.Errorf("%s: %s", tc.action, got)
		}
	}
	if _, err := New(Config{Listen: []string{"127.0.0.1:0"}, Action: WalledGarden}, h); err == nil || !strings.Contains(err.Error(), "rpz.walled_garden") {
		t.Errorf("cname without a target: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	h := policy.NewHolder(nil)
	for _, tc := range []struct {
		edit    func(c *Config)
		mention string
	}{
		{func(c *Config) { c.Listen = nil }, "listen"},
		{func(c *Config) { c.Listen = []string{"5354"} }, `"5354"`},
		{func(c *Config) { c.ZoneTemplate = "rpz.writ." }, "{scope}"},
		{func(c *Config) { c.Action = "refused" }, `"refused"`},
		{func(c *Config) { c.TSIGKeys = []TSIGKey{{Name: "k", Secret: "not base64!"}} }, "base64"},
		{func(c *Config) { c.TSIGKeys = []TSIGKey{{Name: "k", Algorithm: "md5", Secret: "c2VjcmV0"}} }, `"md5"`},
		{func(c *Config) { c.RequireTSIG = true }, "no key"},
		{func(c *Config) { c.Notify = []string{"127.0.0.1"} }, `rpz.notify: "127.0.0.1"`},
		{func(c *Config) { c.TTL = time.Millisecond }, "ttl"},
	} {
		c := Config{Listen: []string{"127.0.0.1:0"}, Scopes: []jurisdiction.Code{fr}}
		tc.edit(&c)
		if _, err := New(c, h); err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("want an error mentioning %s, got %v", tc.mention, err)
		}
	}
}

func TestSerialArithmetic(t *testing.T) {
	for _, tc := range []struct {
		a, b uint32
		less bool
	}{
		{1, 2, true}, {2, 1, false}, {0xFFFFFFFF, 0, true}, {0, 0xFFFFFFFF, false},
		{0xFFFFFFF0, 5, true}, {5, 5, false}, {0, 1 << 31, false}, {1, 1<<31 - 1, true},
	} {
		if got := SerialLess(tc.a, tc.b); got != tc.less {
			t.Errorf("SerialLess(%d, %d) = %v", tc.a, tc.b, got)
		}
	}
}

// started runs the server and returns its address.
func started(t *testing.T, s *Server) string {
	t.Helper()
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s.Addrs()[1].String()
}

// publish stores snap and waits until the server has rebuilt its zones
// from it.
func publish(t *testing.T, s *Server, h *policy.Holder, snap *policy.Snapshot) {
	t.Helper()
	h.Store(snap)
	for {
		select {
		case <-s.updated:
			if s.built == snap {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the server did not rebuild its zones")
		}
	}
}

func TestTransfers(t *testing.T) {
	o1 := mkOrder("o1", []string{"FR"}, sub("one.example"))
	h := policy.NewHolder(snapshot(o1))
	calls := make(chan string, 32)
	s := newTestServer(t, h, func(c *Config) {
		c.History = 2
		c.OnTransfer = func(zone string, serial uint32, _ uint64, peer netip.Addr, ixfr bool) {
			calls <- fmt.Sprintf("%s %d %s %v", zone, serial, peer, ixfr)
		}
	})
	addr := started(t, s)
	cl := &Client{Server: addr}
	ctx := context.Background()

	soa, err := cl.SOA(ctx, "FR.rpz.writ")
	if err != nil || soa.Serial != 100 {
		t.Fatalf("SOA: %v, %v", soa, err)
	}
	full, err := cl.AXFR(ctx, "fr.rpz.writ.")
	if err != nil || full.Incremental || full.SOA.Serial != 100 || len(full.Records) != 5 {
		t.Fatalf("AXFR: %+v, %v", full, err)
	}

	// A new order, then a revoked one: two changes, each kept.
	o2 := mkOrder("o2", []string{"FR"}, exact("two.example"), ip("198.51.100.0/24"))
	publish(t, s, h, snapshot(o1, o2))
	publish(t, s, h, snapshot(o2))
	if serial, _ := s.Serial("fr.rpz.writ"); serial != 102 {
		t.Fatalf("serial %d after two changes, want 102", serial)
	}
	// The IT zone did not change, nor its serial.
	if serial, _ := s.Serial("it.rpz.writ"); serial != 100 {
		t.Fatalf("IT serial %d, want 100", serial)
	}

	inc, err := cl.IXFR(ctx, "fr.rpz.writ.", 101)
	if err != nil || !inc.Incremental || inc.SOA.Serial != 102 {
		t.Fatalf("IXFR from 101: %+v, %v", inc, err)
	}
	if got := names(inc.Removed); got != "*.one.example.fr.rpz.writ. CNAME,*.one.example._orders.fr.rpz.writ. TXT,one.example.fr.rpz.writ. CNAME,one.example._orders.fr.rpz.writ. TXT" || names(inc.Added) != "" {
		t.Errorf("IXFR from 101: removed %s, added %s", got, names(inc.Added))
	}
	inc, err = cl.IXFR(ctx, "fr.rpz.writ.", 100)
	if err != nil || !inc.Incremental || len(inc.Added) != 4 || len(inc.Removed) != 4 {
		t.Fatalf("IXFR from 100: %+v, %v", inc, err)
	}
	// The same serial: the SOA alone.
	inc, err = cl.IXFR(ctx, "fr.rpz.writ.", 102)
	if err != nil || !inc.Incremental || len(inc.Added)+len(inc.Removed) != 0 || inc.SOA.Serial != 102 {
		t.Fatalf("IXFR from the current serial: %+v, %v", inc, err)
	}
	// A serial older than the history, or never published: the whole zone.
	for _, serial := range []uint32{99, 7, 5000} {
		got, err := cl.IXFR(ctx, "fr.rpz.writ.", serial)
		if err != nil || got.Incremental || got.SOA.Serial != 102 || len(got.Records) != 5 {
			t.Fatalf("IXFR from %d: %+v, %v", serial, got, err)
		}
	}
	// History 2: a third change forgets serial 100.
	publish(t, s, h, snapshot(o1, o2))
	if got, err := cl.IXFR(ctx, "fr.rpz.writ.", 100); err != nil || got.Incremental {
		t.Fatalf("IXFR from a forgotten serial: %+v, %v", got, err)
	}
	if got, err := cl.IXFR(ctx, "fr.rpz.writ.", 101); err != nil || !got.Incremental {
		t.Fatalf("IXFR from a kept serial: %+v, %v", got, err)
	}

	want := []string{
		"fr.rpz.writ. 100 127.0.0.1 false",
		"fr.rpz.writ. 102 127.0.0.1 true", "fr.rpz.writ. 102 127.0.0.1 true",
		"fr.rpz.writ. 102 127.0.0.1 false", "fr.rpz.writ. 102 127.0.0.1 false", "fr.rpz.writ. 102 127.0.0.1 false",
		"fr.rpz.writ. 103 127.0.0.1 false", "fr.rpz.writ. 103 127.0.0.1 true",
	}
	// Each call follows its transfer's last message, so that two calls
	// may come in either order, and the last may follow the client's end.
	var hooks []string
	for range want {
		select {
		case c := <-calls:
			hooks = append(hooks, c)
		case <-time.After(10 * time.Second):
			t.Fatalf("OnTransfer calls: %q, want %d", hooks, len(want))
		}
	}
	slices.Sort(hooks)
	slices.Sort(want)
	if !slices.Equal(hooks, want) {
		t.Errorf("OnTransfer calls:\n%s\nwant\n%s", strings.Join(hooks, "\n"), strings.Join(want, "\n"))
	}
}

func names(rrs []dns.RR) string {
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.Header().Name+" "+dns.TypeToString[rr.Header().Rrtype])
	}
	return strings.Join(out, ",")
}

func TestSerialWrapAround(t *testing.T) {
	h := policy.NewHolder(snapshot())
	s := newTestServer(t, h, func(c *Config) { c.FirstSerial = 0xFFFFFFFE })
	addr := started(t, s)
	var orders []*order.Order
	for i := range 3 {
		orders = append(orders, mkOrder(fmt.Sprint("o", i), []string{"FR"}, exact(fmt.Sprintf("n%d.example", i))))
		publish(t, s, h, snapshot(orders...))
	}
	serial, _ := s.Serial("fr.rpz.writ.")
	if serial != 1 {
		t.Fatalf("serial %d after 0xFFFFFFFE and three changes, want 1", serial)
	}
	cl := &Client{Server: addr}
	for from, added := range map[uint32]int{0xFFFFFFFE: 6, 0xFFFFFFFF: 4, 0: 2} {
		got, err := cl.IXFR(context.Background(), "fr.rpz.writ.", from)
		if err != nil || !got.Incremental || got.SOA.Serial != 1 || len(got.Added) != added {
			t.Errorf("IXFR across the wrap from %#x: %+v, %v", from, got, err)
		}
	}
}

func TestStateKeepsSerials(t *testing.T) {
	state := filepath.Join(t.TempDir(), "rpz-state.json")
	o := mkOrder("o", []string{"FR"}, exact("a.example"))
	cfg := func(c *Config) { c.StateFile = state; c.FirstSerial = 0 }
	h := policy.NewHolder(snapshot(o))
	s := newTestServer(t, h, cfg)
	first, _ := s.Serial("fr.rpz.writ.")
	if d := int64(first) - time.Now().Unix(); d > 5 || d < -5 {
		t.Errorf("first serial %d is not the time", first)
	}
	// Restarted with the same policy: the same serial, no transfer needed.
	s = newTestServer(t, h, cfg)
	if again, _ := s.Serial("fr.rpz.writ."); again != first {
		t.Errorf("restart with the same zone: serial %d, want %d", again, first)
	}
	// Restarted with another policy: the next serial.
	h = policy.NewHolder(snapshot())
	s = newTestServer(t, h, cfg)
	if next, _ := s.Serial("fr.rpz.writ."); next != first+1 {
		t.Errorf("restart with a changed zone: serial %d, want %d", next, first+1)
	}
	started(t, s)
	publish(t, s, h, snapshot(o))
	s.Shutdown(context.Background())
	s = newTestServer(t, h, cfg)
	if next, _ := s.Serial("fr.rpz.writ."); next != first+2 {
		t.Errorf("restart after a change: serial %d, want %d", next, first+2)
	}
}

const keySecret = "c2VjcmV0IGtleSBmb3IgdGhlIHRlc3RzIG9ubHkgMTIzNA=="

func TestTransferRefusals(t *testing.T) {
	h := policy.NewHolder(snapshot(mkOrder("o", []string{"FR"}, exact("a.example"))))
	key := TSIGKey{Name: "xfr-key", Secret: keySecret}
	s := newTestServer(t, h, func(c *Config) {
		c.TSIGKeys = []TSIGKey{key}
		c.RequireTSIG = true
		c.AllowTransfer = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	addr := started(t, s)
	ctx := context.Background()

	signed := &Client{Server: addr, Key: &key}
	if got, err := signed.AXFR(ctx, "fr.rpz.writ"); err != nil || len(got.Records) != 3 {
		t.Fatalf("signed AXFR: %+v, %v", got, err)
	}
	if _, err := signed.IXFR(ctx, "fr.rpz.writ", 5); err != nil {
		t.Fatalf("signed IXFR: %v", err)
	}
	if _, err := (&Client{Server: addr}).AXFR(ctx, "fr.rpz.writ"); err == nil || !strings.Contains(err.Error(), "REFUSED") {
		t.Errorf("unsigned AXFR with TSIG required: %v", err)
	}
	// An unknown key or a wrong secret: NOTAUTH with the TSIG error.
	for _, tc := range []struct {
		key  TSIGKey
		want string
	}{
		{TSIGKey{Name: "other-key", Secret: keySecret}, "BADKEY"},
		{TSIGKey{Name: "xfr-key", Algorithm: "hmac-sha512", Secret: keySecret}, "BADKEY"},
		{TSIGKey{Name: "xfr-key", Secret: "d3Jvbmcgc2VjcmV0"}, "BADSIG"},
	} {
		_, err := (&Client{Server: addr, Key: &tc.key}).AXFR(ctx, "fr.rpz.writ")
		if err == nil || !strings.Contains(err.Error(), "NOTAUTH") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AXFR with %+v: %v, want NOTAUTH %s", tc.key, err, tc.want)
		}
	}
	// A signed SOA query is answered, signed.
	if soa, err := signed.SOA(ctx, "fr.rpz.writ"); err != nil || soa.Serial != 100 {
		t.Errorf("signed SOA: %v %v", soa, err)
	}

	// From an address outside the ACL: REFUSED even when signed.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tr := &dns.Transfer{Conn: &dns.Conn{Conn: conn}, TsigSecret: map[string]string{"xfr-key.": keySecret}}
	m := new(dns.Msg)
	m.SetAxfr("fr.rpz.writ.")
	m.SetTsig("xfr-key.", dns.HmacSHA256, 300, time.Now().Unix())
	ch, err := tr.In(m, addr)
	if err != nil {
		t.Fatal(err)
	}
	env := <-ch
	if env.Error == nil || !strings.Contains(env.Error.Error(), "5") { // RcodeRefused
		t.Errorf("AXFR from outside the ACL: %v", env.Error)
	}
	// Anyone may read the SOA.
	q := new(dns.Msg)
	q.SetQuestion("fr.rpz.writ.", dns.TypeSOA)
	c := &dns.Client{Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP("127.0.0.2")}}}
	if r, _, err := c.Exchange(q, addr); err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("SOA from outside the ACL: %v %v", r, err)
	}
	// Another zone, or AXFR over UDP: refused.
	q.SetQuestion("de.rpz.writ.", dns.TypeSOA)
	if r, _, err := (&dns.Client{}).Exchange(q, addr); err != nil || r.Rcode != dns.RcodeRefused {
		t.Errorf("SOA of a zone not served: %v %v", r, err)
	}
}

func TestNotify(t *testing.T) {
	// A secondary that records NOTIFY messages and ignores the first one,
	// so that the retry is exercised.
	got := make(chan uint32, 8)
	var calls int
	var mu sync.Mutex
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sec := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if r.Opcode != dns.OpcodeNotify || first {
			return
		}
		got <- r.Answer[0].(*dns.SOA).Serial
		m := new(dns.Msg)
		m.SetReply(r)
		w.WriteMsg(m)
	})}
	sec.MsgAcceptFunc = func(dh dns.Header) dns.MsgAcceptAction { return dns.MsgAccept }
	go sec.ActivateAndServe()
	defer sec.Shutdown()

	h := policy.NewHolder(snapshot())
	s := newTestServer(t, h, func(c *Config) { c.Notify = []string{pc.LocalAddr().String()}; c.Scopes = []jurisdiction.Code{fr} })
	started(t, s)
	wait := func(want uint32) {
		t.Helper()
		select {
		case serial := <-got:
			if serial != want {
				t.Fatalf("NOTIFY for serial %d, want %d", serial, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no NOTIFY for serial %d", want)
		}
	}
	wait(100) // at start, after one retry
	publish(t, s, h, snapshot(mkOrder("o", []string{"FR"}, exact("a.example"))))
	wait(101)
}

// TestZoneFilePassesNamedCheckzone loads a zone with every kind of
// trigger in BIND's own checker.
func TestZoneFilePassesNamedCheckzone(t *testing.T) {
	checker, err := exec.LookPath("named-checkzone")
	if err != nil {
		t.Fatal("named-checkzone is missing: install Debian's bind9-utils (./test.sh does)")
	}
	h := policy.NewHolder(snapshot(
		mkOrder("o-fr", []string{"FR"}, sub("motogpstream.me"), exact("exact.example"), ip("203.0.113.0/24"), ip("2001:db8:1::/48"), ip("2001:db8::7/128")),
		mkOrder("o-eu", []string{"EU"}, exact("motogpstream.me"), ip("203.0.113.5/32")),
	))
	for _, action := range []Action{NXDomain, NoData, WalledGarden} {
		s := newTestServer(t, h, func(c *Config) { c.Action = action; c.WalledGarden = "blocked.isp.example" })
		var b bytes.Buffer
		if err := s.WriteZone(&b, "fr.rpz.writ."); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(t.TempDir(), "fr.rpz.writ.zone")
		if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(checker, "-k", "fail", "-i", "full", "fr.rpz.writ", file).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "OK") {
			t.Errorf("%s: named-checkzone: %v\n%s\n%s", action, err, out, b.String())
		}
	}
}
