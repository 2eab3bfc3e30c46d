package dnsserver

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/registry"
	"github.com/writ-project/writ/scope"
	"github.com/writ-project/writ/store"
)

// TestSoak drives a DNS server fed by a real registry (SQLite) at the
// highest rate its clients can hold, over UDP and TCP from clients in
// France, in Italy and nowhere, while orders are submitted, amended and
// revoked; it checks every answer against the policy, every change as
// soon as the registry acknowledges it, and that the heap and the
// goroutines come back to where they were. It runs for 30 seconds, or
// as long as WRIT_SOAK says (WRIT_SOAK=5m).
//
// The names asked, and what each client must get:
//   - static-N.soak.example and its subdomains, motogpstream.me and its
//     subdomains, *.alias.example (a CNAME to www.motogpstream.me) and
//     *.blockedaddr.example (an address in 203.0.113.0/24): blocked by a
//     French order that never changes: blocked in France, answered
//     elsewhere;
//   - it-N.soak.example: blocked by an Italian order: blocked in Italy only;
//   - churn-G-I.soak.example: in orders submitted, amended and revoked as
//     the soak runs: in France blocked or answered, depending on the
//     moment; answered elsewhere;
//   - ok-N.soak.example, and names asked once (u-N.soak.example): answered
//     for everyone.
func TestSoak(t *testing.T) {
	duration := 30 * time.Second
	if v := os.Getenv("WRIT_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("WRIT_SOAK=%q: want a duration such as 5m", v)
		}
		duration = d
	}
	s := newSoak(t)
	s.run(duration)
}

type soak struct {
	t   *testing.T
	ctx context.Context
	reg *registry.Registry
	srv *Server
	up  *testUpstream

	gen    atomic.Int64 // the newest churn generation
	stop   atomic.Bool
	unique atomic.Int64

	queries, answers, lost, tcpAnswers atomic.Int64
	byKind                             [kinds]atomic.Int64
	churnOps                           atomic.Int64
	violations                         atomic.Int64
	mu                                 sync.Mutex
	examples                           []string
	staticID, italianID                string
	churnIDs                           sync.Map // order id → true
}

// Kinds of names asked.
const (
	kindStatic = iota
	kindItalian
	kindChurn
	kindAllowed
	kindUnique
	kinds
)

var soakOperator = access.Principal{ID: "soak", Name: "soak", Role: access.Operator}

func soakSubmission(jur string, targets ...order.SubmittedTarget) *order.Submission {
	now := time.Now()
	return &order.Submission{
		Authority:    order.Authority{ID: "tj-" + strings.ToLower(jur), Name: "Tribunal " + jur, Kind: order.Court, Jurisdiction: jur},
		LegalBasis:   order.LegalBasis{Case: "soak test"},
		Jurisdiction: []string{jur},
		Effective:    now.Add(-time.Hour).Format(time.RFC3339),
		Expires:      now.Add(24 * time.Hour).Format(time.RFC3339),
		Targets:      targets,
	}
}

func newSoak(t *testing.T) *soak {
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "writ.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	quiet := slog.New(slog.DiscardHandler)
	reg, err := registry.Open(ctx, st, registry.Options{Logger: quiet, Intake: order.Intake{Safeguards: order.Safeguards{SharedInfra: order.DefaultSharedInfra()}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	s := &soak{t: t, ctx: ctx, reg: reg}

	var static []order.SubmittedTarget
	for i := range 50 {
		static = append(static, order.SubmittedTarget{FQDN: fmt.Sprintf("static-%d.soak.example", i), Subdomains: true})
	}
	static = append(static, order.SubmittedTarget{FQDN: "motogpstream.me", Subdomains: true}, order.SubmittedTarget{IP: "203.0.113.0/24"})
	o, err := reg.Submit(ctx, soakSubmission("FR", static...), soakOperator)
	if err != nil {
		t.Fatal(err)
	}
	s.staticID = o.ID
	var italian []order.SubmittedTarget
	for i := range 20 {
		italian = append(italian, order.SubmittedTarget{FQDN: fmt.Sprintf("it-%d.soak.example", i)})
	}
	if o, err = reg.Submit(ctx, soakSubmission("IT", italian...), soakOperator); err != nil {
		t.Fatal(err)
	}
	s.italianID = o.ID

	s.up = startUpstream(t)
	fr, _ := scope.ParseMapping("FR=" + frClient)
	it, _ := scope.ParseMapping("IT=" + itClient)
	sc, err := scope.New(append(fr, it...), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Config{
		Listen:       []string{"127.0.0.1:0"},
		Upstreams:    []string{s.up.Addr()},
		Operator:     "Example ISP",
		Contact:      []string{"mailto:legal@isp.example"},
		CacheEntries: 4096, // small, so that the soak reaches its bound
		Logger:       quiet,
		RecordURL:    func(id string) string { return "http://127.0.0.1:8080/orders/" + id },
	}, reg.Policy(), sc)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	s.srv = srv
	return s
}

// heapSample is the live heap (after a collection) and the goroutines
// at one moment.
type heapSample struct {
	at         time.Duration
	heap       uint64
	goroutines int
}

func sample(start time.Time) heapSample {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return heapSample{at: time.Since(start), heap: ms.HeapAlloc, goroutines: runtime.NumGoroutine()}
}

func (s *soak) run(duration time.Duration) {
	t := s.t
	addr := s.srv.Addrs()[0].String()
	// Warm the server and the upstream sockets, then take the baseline.
	for _, c := range []string{frClient, itClient, outsideClient} {
		s.ask(addr, c, "ok-0.soak.example.")
	}
	start := time.Now()
	base := sample(start)

	var wg sync.WaitGroup
	clients := []string{frClient, frClient, itClient, outsideClient, unknownClient, frClient}
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.udpWorker(addr, c, int64(i))
		}()
	}
	wg.Add(2)
	go func() {
		defer wg.Done()
		s.tcpWorker(addr, frClient)
	}()
	churnDone := make(chan struct{})
	go func() {
		defer wg.Done()
		defer close(churnDone)
		s.churn(addr)
	}()

	samples := []heapSample{base}
	tick := time.NewTicker(time.Second)
	deadline := time.After(duration)
loop:
	for {
		select {
		case <-tick.C:
			samples = append(samples, sample(start))
		case <-deadline:
			break loop
		case <-churnDone:
			break loop // a change was not enforced: stop early
		}
	}
	tick.Stop()
	s.stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)

	// Back to where it started: the goroutines of the soak gone, and
	// those of the server's general path with them; the heap no larger
	// than the bounded cache, the registry's new orders and the
	// collector's slack explain.
	waitFor(t, "the goroutines to return to their level before the soak", func() bool {
		return runtime.NumGoroutine() <= base.goroutines+2
	})
	end := sample(start)

	peak := base
	for _, x := range samples {
		peak.heap = max(peak.heap, x.heap)
		peak.goroutines = max(peak.goroutines, x.goroutines)
	}
	n := s.answers.Load()
	t.Logf("soak: %v, %d queries, %d answered (%.0f qps; %d over TCP), %d lost, %d order changes; by kind: static %d, Italian %d, churn %d, allowed %d, unique %d",
		elapsed.Round(time.Second), s.queries.Load(), n, float64(n)/elapsed.Seconds(), s.tcpAnswers.Load(), s.lost.Load(), s.churnOps.Load(),
		s.byKind[kindStatic].Load(), s.byKind[kindItalian].Load(), s.byKind[kindChurn].Load(), s.byKind[kindAllowed].Load(), s.byKind[kindUnique].Load())
	t.Logf("soak: heap %.1f MiB at the start, %.1f MiB at the peak, %.1f MiB at the end; goroutines %d, %d, %d",
		mib(base.heap), mib(peak.heap), mib(end.heap), base.goroutines, peak.goroutines, end.goroutines)
	t.Logf("soak: heap growth over the second half %+.2f MiB/min", trend(samples)*60/(1<<20))

	if v := s.violations.Load(); v > 0 {
		t.Errorf("%d answers broke the policy or were not expected, for example:\n%s", v, strings.Join(s.examples, "\n"))
	}
	if n == 0 || s.churnOps.Load() == 0 {
		t.Fatalf("nothing happened: %d answers, %d order changes", n, s.churnOps.Load())
	}
	if lost := s.lost.Load(); lost*1000 > s.queries.Load() {
		t.Errorf("%d of %d queries lost", lost, s.queries.Load())
	}
	// The registry keeps every order, revoked ones too: they are the
	// public record. Each change may thus add to the heap (about 5 KiB
	// here); the allowance is three times that. A leak of a single byte
	// per query would exceed it many times over.
	const perChange = 16 << 10
	kept := uint64(s.churnOps.Load()) * perChange
	if limit := base.heap + base.heap/2 + 16<<20 + kept; end.heap > limit {
		t.Errorf("heap %.1f MiB after the soak, %.1f MiB before: it grows", mib(end.heap), mib(base.heap))
	}
	if g := trend(samples) * elapsed.Seconds(); elapsed >= 20*time.Second && g > float64(8<<20+kept) {
		t.Errorf("heap grows by %.1f MiB over the soak's duration at the rate of its second half", g/(1<<20))
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// trend is the least-squares slope of the heap over the second half of
// the samples, in bytes a second: once the cache is full, nothing else
// should grow but the registry's orders.
func trend(samples []heapSample) float64 {
	xs := samples[len(samples)/2:]
	if len(xs) < 3 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for _, x := range xs {
		a, b := x.at.Seconds(), float64(x.heap)
		sx, sy, sxx, sxy = sx+a, sy+b, sxx+a*a, sxy+a*b
	}
	k := float64(len(xs))
	return (k*sxy - sx*sy) / (k*sxx - sx*sx)
}

// soakName picks a name to ask, and its kind.
func (s *soak) soakName(r *rand.Rand) (string, int) {
	switch p := r.IntN(100); {
	case p < 10:
		return fmt.Sprintf("static-%d.soak.example.", r.IntN(50)), kindStatic
	case p < 15:
		return fmt.Sprintf("www.sub%d.static-%d.soak.example.", r.IntN(10), r.IntN(50)), kindStatic
	case p < 18:
		return "www.motogpstream.me.", kindStatic
	case p < 22:
		return fmt.Sprintf("h%d.blockedaddr.example.", r.IntN(20)), kindStatic
	case p < 25:
		return fmt.Sprintf("a%d.alias.example.", r.IntN(20)), kindStatic
	case p < 30:
		return fmt.Sprintf("it-%d.soak.example.", r.IntN(20)), kindItalian
	case p < 40:
		g := s.gen.Load() - int64(r.IntN(4))
		return fmt.Sprintf("churn-%d-%d.soak.example.", max(g, 0), r.IntN(6)), kindChurn
	case p < 95:
		return fmt.Sprintf("ok-%d.soak.example.", r.IntN(2000)), kindAllowed
	}
	return fmt.Sprintf("u-%d.soak.example.", s.unique.Add(1)), kindUnique
}

// soakQuery is an A query for name with EDNS, packed.
func soakQuery(name string, id uint16) []byte {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.Id = id
	m.SetEdns0(1232, false)
	pkt, _ := m.Pack()
	return pkt
}

// udpWorker asks batches of queries from client until the soak stops,
// each batch at once, then reads their answers.
func (s *soak) udpWorker(addr, client string, seed int64) {
	conn, err := net.DialUDP("udp", &net.UDPAddr{IP: net.ParseIP(client)}, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		s.violation("dial: %v", err)
		return
	}
	defer conn.Close()
	r := rand.New(rand.NewPCG(uint64(seed), 1))
	const batch = 16
	type pending struct {
		name string
		kind int
	}
	buf := make([]byte, 4096)
	var id uint16
	for i := 0; i < 100_000_000 && !s.stop.Load(); i++ {
		out := map[uint16]pending{}
		for range batch {
			name, kind := s.soakName(r)
			id++
			if _, err := conn.Write(soakQuery(name, id)); err != nil {
				s.violation("write: %v", err)
				return
			}
			out[id] = pending{name, kind}
		}
		s.queries.Add(batch)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for len(out) > 0 {
			n, err := conn.Read(buf)
			if err != nil {
				s.lost.Add(int64(len(out)))
				break
			}
			resp := new(dns.Msg)
			if err := resp.Unpack(buf[:n]); err != nil {
				s.violation("unparsable answer: %v", err)
				continue
			}
			p, ok := out[resp.Id]
			if !ok {
				continue // a late answer to an earlier batch
			}
			delete(out, resp.Id)
			s.check(client, p.name, p.kind, resp)
		}
	}
}

// tcpWorker asks batches of pipelined queries over one TCP connection.
func (s *soak) tcpWorker(addr, client string) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(client)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		s.violation("dial tcp: %v", err)
		return
	}
	defer c.Close()
	r := rand.New(rand.NewPCG(99, 2))
	const batch = 8
	var id uint16
	for i := 0; i < 100_000_000 && !s.stop.Load(); i++ {
		out := map[uint16][2]any{}
		var msg []byte
		for range batch {
			name, kind := s.soakName(r)
			id++
			pkt := soakQuery(name, id)
			msg = append(binary.BigEndian.AppendUint16(msg, uint16(len(pkt))), pkt...)
			out[id] = [2]any{name, kind}
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(msg); err != nil {
			s.violation("tcp write: %v", err)
			return
		}
		s.queries.Add(batch)
		for len(out) > 0 {
			var l [2]byte
			if _, err := io.ReadFull(c, l[:]); err != nil {
				s.violation("tcp read: %v", err)
				return
			}
			b := make([]byte, binary.BigEndian.Uint16(l[:]))
			if _, err := io.ReadFull(c, b); err != nil {
				s.violation("tcp read: %v", err)
				return
			}
			resp := new(dns.Msg)
			if err := resp.Unpack(b); err != nil {
				s.violation("unparsable TCP answer: %v", err)
				continue
			}
			p, ok := out[resp.Id]
			if !ok {
				s.violation("TCP answer with an unknown ID %d", resp.Id)
				continue
			}
			delete(out, resp.Id)
			s.tcpAnswers.Add(1)
			s.check(client, p[0].(string), p[1].(int), resp)
		}
	}
}

var citedOrder = regexp.MustCompile(`order (\S+) of`)

// blockedBy returns the order a block notice cites, or "" for an answer
// that is not a block notice.
func blockedBy(m *dns.Msg) string {
	x, ok := ede(m)
	if !ok || x.InfoCode != dns.ExtendedErrorCodeCensored || m.Rcode != dns.RcodeRefused || len(m.Answer) != 0 {
		return ""
	}
	var se structuredError
	if json.Unmarshal([]byte(x.ExtraText), &se) != nil {
		return "(unreadable)"
	}
	if id := citedOrder.FindStringSubmatch(se.J); id != nil {
		return id[1]
	}
	return "(none)"
}

// answered reports whether m is the upstream's answer for name.
func answered(m *dns.Msg, name string) bool {
	if m.Rcode != dns.RcodeSuccess || m.Truncated {
		return false
	}
	if _, ok := ede(m); ok {
		return false
	}
	want := upstreamAddr(name)
	switch {
	case strings.HasSuffix(name, ".blockedaddr.example."):
		want = blockedAddr
	case strings.HasSuffix(name, ".alias.example."):
		want = upstreamAddr("www.motogpstream.me.")
	}
	got := addrs(m)
	return len(got) > 0 && got[len(got)-1] == want.String()
}

// check judges one answer to client for name.
func (s *soak) check(client, name string, kind int, m *dns.Msg) {
	s.answers.Add(1)
	s.byKind[kind].Add(1)
	if len(m.Question) != 1 || !strings.EqualFold(m.Question[0].Name, name) {
		s.violation("%s asked %s, answered for %v", client, name, m.Question)
		return
	}
	by := blockedBy(m)
	var ok bool
	switch {
	case kind == kindStatic && client == frClient:
		ok = by == s.staticID
	case kind == kindItalian && client == itClient:
		ok = by == s.italianID
	case kind == kindChurn && client == frClient:
		_, known := s.churnIDs.Load(by)
		ok = known || answered(m, name)
	default: // out of scope, or never blocked: the upstream's answer
		ok = answered(m, name)
	}
	if !ok {
		s.violation("%s asked %s (kind %d), got %s (cites %q):\n%v", client, name, kind, dns.RcodeToString[m.Rcode], by, m)
	}
}

func (s *soak) violation(format string, args ...any) {
	s.violations.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.examples) < 5 {
		s.examples = append(s.examples, fmt.Sprintf(format, args...))
	}
}

// ask asks name from client over UDP, once.
func (s *soak) ask(addr, client, name string) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.SetEdns0(1232, false)
	c := &dns.Client{Timeout: 5 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(client)}}}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		s.violation("ask %s from %s: %v", name, client, err)
		return new(dns.Msg)
	}
	return resp
}

// churn submits, amends and revokes orders until the soak stops: each
// generation's order blocks five names; an amendment adds a sixth and
// removes the first; the order three generations back is revoked. After
// each change is acknowledged, the names it touched are asked from
// France: an acknowledged change is in force at once.
func (s *soak) churn(addr string) {
	name := func(g int64, i int) string { return fmt.Sprintf("churn-%d-%d.soak.example.", g, i) }
	expect := func(what string, g int64, i int, blocked bool) bool {
		m := s.ask(addr, frClient, name(g, i))
		_, known := s.churnIDs.Load(blockedBy(m))
		if known != blocked || !blocked && !answered(m, name(g, i)) {
			s.violation("after %s, %s from France: %v", what, name(g, i), m)
			return false
		}
		return true
	}
	ids := map[int64]string{}
	// Four generations (twelve changes) a second: a heavy day of
	// amendments many times over, without the registry's records
	// outgrowing what the soak can tell from a leak.
	pace := time.NewTicker(250 * time.Millisecond)
	defer pace.Stop()
	for g := int64(1); g < 1_000_000 && !s.stop.Load(); g++ {
		<-pace.C
		var targets []order.SubmittedTarget
		for i := range 5 {
			targets = append(targets, order.SubmittedTarget{FQDN: strings.TrimSuffix(name(g, i), ".")})
		}
		o, err := s.reg.Submit(s.ctx, soakSubmission("FR", targets...), soakOperator)
		if err != nil {
			s.violation("submit: %v", err)
			return
		}
		s.churnIDs.Store(o.ID, true)
		ids[g] = o.ID
		s.gen.Store(g)
		s.churnOps.Add(1)
		if !expect("submission", g, 0, true) {
			return
		}
		_, err = s.reg.Amend(s.ctx, o.ID, &order.Amendment{
			Add:    []order.SubmittedTarget{{FQDN: strings.TrimSuffix(name(g, 5), ".")}},
			Remove: []order.SubmittedTarget{{FQDN: strings.TrimSuffix(name(g, 0), ".")}},
		}, soakOperator)
		if err != nil {
			s.violation("amend: %v", err)
			return
		}
		s.churnOps.Add(1)
		if !expect("amendment", g, 5, true) || !expect("amendment", g, 0, false) {
			return
		}
		if old, ok := ids[g-3]; ok {
			if _, err := s.reg.Revoke(s.ctx, old, "soak", soakOperator); err != nil {
				s.violation("revoke: %v", err)
				return
			}
			delete(ids, g-3)
			s.churnOps.Add(1)
			if !expect("revocation", g-3, 1, false) {
				return
			}
		}
	}
}
