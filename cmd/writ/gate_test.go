package main

// End-to-end tests of the HTTP gate: `writ serve` with its gate, and
// `writ gate` as a separate process following a `writ serve`, in front of
// a real origin on loopback, driven by clients from two source addresses:
// 127.0.0.2 (France) and 127.0.0.1 (nowhere).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// gateOrigin is a real origin server on loopback that counts requests.
type gateOrigin struct {
	url   string
	large []byte
	mu    sync.Mutex
	seen  []string
}

func startGateOrigin(t *testing.T) *gateOrigin {
	t.Helper()
	o := &gateOrigin{large: make([]byte, 8<<20)}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range o.large {
		o.large[i] = byte(rng.Uint32())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.url = "http://" + ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.seen = append(o.seen, r.Host+r.URL.Path)
		o.mu.Unlock()
		w.Header().Set("Date", "Mon, 02 Jun 2025 10:00:00 GMT")
		w.Header().Set("X-Origin", "yes")
		switch r.URL.Path {
		case "/large":
			w.Write(o.large)
		case "/stream":
			for i := range 3 {
				fmt.Fprintf(w, "part %d\n", i)
				w.(http.Flusher).Flush()
			}
		default:
			fmt.Fprintf(w, "origin page for %s%s\n", r.Host, r.URL.Path)
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return o
}

func (o *gateOrigin) requests() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.seen...)
}

// httpFrom is an HTTP client whose connections come from src and go to
// addr, whatever the URL's host.
func httpFrom(src, addr string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:        func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
			DisableCompression: true,
		},
	}
}

type fetched struct {
	status int
	header http.Header
	body   []byte
}

func fetch(t *testing.T, c *http.Client, url string) fetched {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fetched{resp.StatusCode, resp.Header, body}
}

// wantBlocked checks a 451 citing order id with a link to its record.
func wantBlocked(t *testing.T, f fetched, id, recordBase string) {
	t.Helper()
	if f.status != http.StatusUnavailableForLegalReasons {
		t.Fatalf("status %d, want 451: %s", f.status, f.body)
	}
	if !strings.HasSuffix(f.header.Get("Link"), `>; rel="blocked-by"`) || f.header.Get("X-Origin") != "" {
		t.Errorf("451 headers: %v", f.header)
	}
	for _, m := range []string{id, recordBase + "/orders/" + id, "Tribunal judiciaire de Paris"} {
		if !bytes.Contains(f.body, []byte(m)) {
			t.Errorf("451 page lacks %q", m)
		}
	}
}

// wantOrigin checks that the answer through the gate is the origin's,
// byte for byte.
func wantOrigin(t *testing.T, got fetched, o *gateOrigin, url string) {
	t.Helper()
	want := fetch(t, httpFrom(outsideClient, strings.TrimPrefix(o.url, "http://")), url)
	if got.status != want.status || !bytes.Equal(got.body, want.body) || got.header.Get("X-Origin") != "yes" ||
		got.header.Get("Content-Length") != want.header.Get("Content-Length") || got.header.Get("Date") != want.header.Get("Date") {
		t.Errorf("%s through the gate: %d, %d bytes, %v; straight: %d, %d bytes", url, got.status, len(got.body), got.header, want.status, len(want.body))
	}
}

// logField finds the first JSON log line with msg and returns field.
func logField(logs, msg, key, value, field string) string {
	for _, line := range strings.Split(logs, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != msg {
			continue
		}
		if key != "" && rec[key] != value {
			continue
		}
		if v, ok := rec[field].(string); ok {
			return v
		}
	}
	return ""
}

func TestGateInServe(t *testing.T) {
	up := upstream(t)
	o := startGateOrigin(t)
	n := startNode(t, t.TempDir(), "--upstream", up.Addr(), "--scope", "FR="+frClient+"/32",
		"--gate-listen", "127.0.0.1:0", "--gate-origin", o.url)
	gateAddr := logField(n.logText(), "gate listening", "listener", "proxy", "addr")
	if gateAddr == "" {
		t.Fatalf("no gate listener logged:\n%s", n.logText())
	}
	inFR, outside := httpFrom(frClient, gateAddr), httpFrom(outsideClient, gateAddr)
	const site = "http://www.motogpstream.me"

	if f := fetch(t, inFR, site+"/"); f.status != http.StatusOK {
		t.Fatalf("before the order: %d", f.status)
	}
	var ord orderResp
	if code := n.api("POST", "/v1/orders", sampleOrder(t, time.Now().Add(time.Hour)), &ord); code != http.StatusCreated {
		t.Fatalf("submit: %d %+v", code, ord)
	}
	// The 201 means enforced: the very next request is blocked.
	before := len(o.requests())
	wantBlocked(t, fetch(t, inFR, site+"/large"), ord.ID, n.httpURL)
	wantBlocked(t, fetch(t, inFR, "http://tarjetarojaenvivo.lat/"), ord.ID, n.httpURL)
	if len(o.requests()) != before {
		t.Errorf("blocked requests reached the origin: %q", o.requests()[before:])
	}
	for _, path := range []string{"/large", "/stream", "/"} {
		wantOrigin(t, fetch(t, outside, site+path), o, site+path)
	}
	if v := n.metric(`writ_gate_blocks_total{scope="FR"}`); v != 2 {
		t.Errorf("writ_gate_blocks_total{FR} = %v, want 2", v)
	}
	if v := n.metric(fmt.Sprintf(`writ_order_blocks_total{order=%q}`, ord.ID)); v != 2 {
		t.Errorf("writ_order_blocks_total = %v, want 2", v)
	}
	if v := n.metric("writ_gate_order_propagation_seconds_count"); v != 1 {
		t.Errorf("gate propagation count = %v, want 1", v)
	}

	if code := n.api("POST", "/v1/orders/"+ord.ID+"/revoke", map[string]string{"reason": "test"}, &ord); code != http.StatusOK {
		t.Fatalf("revoke: %d", code)
	}
	wantOrigin(t, fetch(t, inFR, site+"/large"), o, site+"/large")

	// The gate's receipts reach the server's record, as dns's do. They
	// are recorded in the background: wait for the condition, bounded.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var points struct {
			Points []struct {
				Point string `json:"point"`
			} `json:"points"`
		}
		n.api("GET", "/v1/points", nil, &points)
		found := false
		for _, p := range points.Points {
			found = found || strings.HasPrefix(p.Point, "gate@")
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no receipt of the gate among %+v", points.Points)
		}
		<-time.After(10 * time.Millisecond)
	}
}

// gateProc is a running `writ gate` process.
type gateProc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	logs   []string
	logged *sync.Cond
	done   bool
	exited chan struct{}
}

func startGate(t *testing.T, args ...string) *gateProc {
	t.Helper()
	g := &gateProc{exited: make(chan struct{})}
	g.logged = sync.NewCond(&g.mu)
	g.cmd = exec.Command(writBin, append([]string{"gate", "--log-format", "json"}, args...)...)
	stderr, err := g.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(g.exited)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			g.mu.Lock()
			g.logs = append(g.logs, sc.Text())
			g.logged.Broadcast()
			g.mu.Unlock()
		}
		g.cmd.Wait()
		g.mu.Lock()
		g.done = true
		g.logged.Broadcast()
		g.mu.Unlock()
	}()
	t.Cleanup(func() {
		g.cmd.Process.Kill()
		<-g.exited
	})
	if g.waitLog(func(rec map[string]any) bool { return rec["msg"] == "writ gate ready" }) == nil {
		t.Fatalf("writ gate exited before it was ready:\n%s", g.logText())
	}
	return g
}

// waitLog returns the first log record (JSON) for which match is true,
// waiting for it to be logged; nil if the process ends first.
func (g *gateProc) waitLog(match func(rec map[string]any) bool) map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := 0; ; {
		for ; i < len(g.logs); i++ {
			var rec map[string]any
			if json.Unmarshal([]byte(g.logs[i]), &rec) == nil && match(rec) {
				return rec
			}
		}
		if g.done {
			return nil
		}
		g.logged.Wait()
	}
}

func (g *gateProc) logText() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return strings.Join(g.logs, "\n")
}

// waitVersion waits until the gate logs that it applied policy version v
// or later.
func (g *gateProc) waitVersion(t *testing.T, v float64) {
	t.Helper()
	if g.waitLog(func(rec map[string]any) bool {
		pv, _ := rec["policy_version"].(float64)
		return rec["msg"] == "gate policy applied" && pv >= v
	}) == nil {
		t.Fatalf("writ gate exited before applying policy version %v:\n%s", v, g.logText())
	}
}

func (n *node) policyVersion() float64 {
	var h struct {
		Version float64 `json:"policy_version"`
	}
	n.api("GET", "/healthz", nil, &h)
	return h.Version
}

func TestGateFollowsServer(t *testing.T) {
	up := upstream(t)
	o := startGateOrigin(t)
	n := startNode(t, t.TempDir(), "--upstream", up.Addr(), "--scope", "FR="+frClient+"/32")
	var ord orderResp
	if code := n.api("POST", "/v1/orders", sampleOrder(t, time.Now().Add(time.Hour)), &ord); code != http.StatusCreated {
		t.Fatalf("submit: %d", code)
	}

	g := startGate(t, "--follow", n.httpURL, "--poll", "20ms", "--listen", "127.0.0.1:0", "--decision", "127.0.0.1:0",
		"--origin", o.url, "--scope", "FR="+frClient+"/32", "--blocked-by", "https://isp.example/legal",
		"--token", n.token(), "--point", "gate:test")
	addr := logField(g.logText(), "gate listening", "listener", "proxy", "addr")
	decision := logField(g.logText(), "gate listening", "listener", "decision", "addr")
	inFR, outside := httpFrom(frClient, addr), httpFrom(outsideClient, addr)
	const site = "http://www.motogpstream.me"

	// It starts with the server's policy in force.
	wantBlocked(t, fetch(t, inFR, site+"/"), ord.ID, n.httpURL)
	if f := fetch(t, inFR, site+"/"); f.header.Get("Link") != `<https://isp.example/legal>; rel="blocked-by"` {
		t.Errorf("Link %q", f.header.Get("Link"))
	}
	if len(o.requests()) != 0 {
		t.Errorf("blocked requests reached the origin: %q", o.requests())
	}
	for _, path := range []string{"/large", "/stream"} {
		wantOrigin(t, fetch(t, outside, site+path), o, site+path)
	}

	// A URL target, added on the server, blocks its path only.
	urlOrder := sampleOrder(t, time.Now().Add(time.Hour))
	urlOrder["targets"] = []map[string]any{{"url": "https://news.example/live"}}
	var uo orderResp
	if code := n.api("POST", "/v1/orders", urlOrder, &uo); code != http.StatusCreated {
		t.Fatalf("submit URL order: %d %+v", code, uo)
	}
	g.waitVersion(t, n.policyVersion())
	wantBlocked(t, fetch(t, inFR, "http://news.example/live/final"), uo.ID, n.httpURL)
	if f := fetch(t, inFR, "http://news.example/lively"); f.status != http.StatusOK {
		t.Errorf("news.example/lively in France: %d", f.status)
	}
	if f := fetch(t, outside, "http://news.example/live/final"); f.status != http.StatusOK {
		t.Errorf("news.example/live/final outside France: %d", f.status)
	}

	// The gate's receipts reach the server's record of enforcement points.
	v := n.policyVersion()
	if g.waitLog(func(rec map[string]any) bool {
		pv, _ := rec["policy_version"].(float64)
		return rec["msg"] == "gate receipt recorded" && pv >= v
	}) == nil {
		t.Fatalf("no receipt recorded for version %v:\n%s", v, g.logText())
	}
	var points struct {
		Points []struct {
			Point   string  `json:"point"`
			Version float64 `json:"version"`
		} `json:"points"`
	}
	n.api("GET", "/v1/points", nil, &points)
	found := false
	for _, p := range points.Points {
		found = found || (p.Point == "gate:test" && p.Version >= v)
	}
	if !found {
		t.Errorf("the server's enforcement points lack gate:test at version %v: %+v", v, points.Points)
	}

	// Revocation lifts the block, without restarting anything.
	if code := n.api("POST", "/v1/orders/"+ord.ID+"/revoke", map[string]string{"reason": "test"}, nil); code != http.StatusOK {
		t.Fatalf("revoke: %d", code)
	}
	g.waitVersion(t, n.policyVersion())
	wantOrigin(t, fetch(t, inFR, site+"/large"), o, site+"/large")

	// The server goes away: the gate keeps its last policy.
	n.kill()
	if g.waitLog(func(rec map[string]any) bool {
		return rec["msg"] == "gate cannot reach the writ server; keeping the last policy"
	}) == nil {
		t.Fatalf("no warning when the server went away:\n%s", g.logText())
	}
	wantBlocked(t, fetch(t, inFR, "http://news.example/live"), uo.ID, n.httpURL)

	metrics := string(fetch(t, httpFrom(outsideClient, decision), "http://"+decision+"/metrics").body)
	for _, series := range []string{
		`writ_gate_blocks_total{scope="FR"} 4`,
		fmt.Sprintf(`writ_order_blocks_total{order=%q} 2`, uo.ID),
		"writ_gate_policy_stale 1",
	} {
		if !strings.Contains(metrics, series+"\n") {
			t.Errorf("gate metrics lack %q", series)
		}
	}
}

func TestGateRefusesBadSettings(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		mention string
	}{
		{[]string{"--follow", "http://127.0.0.1:1"}, "nothing to serve"},
		{[]string{"--listen", "127.0.0.1:0"}, "origin"},
		{[]string{"--listen", "127.0.0.1:0", "--origin", "10.0.0.8"}, "gate.origin"},
		{[]string{"--decision", "127.0.0.1:0", "--cert", "only-one.pem"}, "CERT,KEY"},
		{[]string{"--decision", "127.0.0.1:0", "--route", "no-equals"}, "HOST=URL"},
		{[]string{"--decision", "127.0.0.1:0", "--scope", "XX=10.0.0.0/8"}, "XX"},
	} {
		_, _, err := runCLI(t, append([]string{"gate"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("writ gate %v: %v, want an error mentioning %q", tc.args, err, tc.mention)
		}
	}
}

// With polling an hour apart, a following gate still applies a new order
// at once: the server's event stream announces it. The order's URL target
// names a query, which blocks that resource only.
func TestGateFollowsEventStream(t *testing.T) {
	up := upstream(t)
	o := startGateOrigin(t)
	n := startNode(t, t.TempDir(), "--upstream", up.Addr(), "--scope", "FR="+frClient+"/32")
	g := startGate(t, "--follow", n.httpURL, "--poll", "1h", "--listen", "127.0.0.1:0",
		"--origin", o.url, "--scope", "FR="+frClient+"/32")
	addr := logField(g.logText(), "gate listening", "listener", "proxy", "addr")
	inFR := httpFrom(frClient, addr)

	urlOrder := sampleOrder(t, time.Now().Add(time.Hour))
	urlOrder["targets"] = []map[string]any{{"url": "https://tube.example/watch?v=abc"}}
	var uo orderResp
	if code := n.api("POST", "/v1/orders", urlOrder, &uo); code != http.StatusCreated {
		t.Fatalf("submit URL order: %d %+v", code, uo)
	}
	applied := make(chan bool, 1)
	go func() {
		applied <- g.waitLog(func(rec map[string]any) bool {
			pv, _ := rec["policy_version"].(float64)
			return rec["msg"] == "gate policy applied" && pv >= n.policyVersion()
		}) != nil
	}()
	select {
	case ok := <-applied:
		if !ok {
			t.Fatalf("writ gate exited:\n%s", g.logText())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("the gate did not apply the new order; its next poll is an hour away:\n%s", g.logText())
	}
	wantBlocked(t, fetch(t, inFR, "http://tube.example/watch?t=5&v=abc"), uo.ID, n.httpURL)
	for _, other := range []string{"http://tube.example/watch?v=xyz", "http://tube.example/watch"} {
		if f := fetch(t, inFR, other); f.status != http.StatusOK {
			t.Errorf("%s in France: %d, want the origin's 200", other, f.status)
		}
	}
}
