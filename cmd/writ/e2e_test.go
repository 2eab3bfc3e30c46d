package main

// End-to-end tests: writ runs as a real process, with a real upstream DNS
// server on loopback, and is driven over HTTP and DNS as an operator and
// its clients would. 127.0.0.2 is mapped to France; 127.0.0.1 is nowhere.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/internal/localzone"
)

var writBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "writ-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	writBin = filepath.Join(dir, "writ")
	build := exec.Command("go", "build", "-o", writBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building writ:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	frClient      = "127.0.0.2"
	outsideClient = "127.0.0.1"
)

// node is a running `writ serve` process.
type node struct {
	t       testing.TB
	cmd     *exec.Cmd
	dataDir string
	dnsAddr string
	httpURL string
	mu      sync.Mutex
	logs    []string
	stdout  []string
	printed *sync.Cond // signalled at each stdout line
	exited  chan struct{}
}

func upstream(t testing.TB) *localzone.Server {
	t.Helper()
	up, err := localzone.Start("127.0.0.1:0",
		"motogpstream.me. 300 IN A 198.51.100.7",
		"www.motogpstream.me. 300 IN A 198.51.100.7",
		"tarjetarojaenvivo.lat. 300 IN A 198.51.100.8",
		"resolver.example. 300 IN A 1.1.1.1",
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	return up
}

// startNode runs writ serve on free loopback ports and returns once it
// logs that it is ready (the log line, not a delay, is the signal).
func startNode(t testing.TB, dataDir string, args ...string) *node {
	t.Helper()
	n := &node{t: t, dataDir: dataDir, exited: make(chan struct{})}
	n.printed = sync.NewCond(&n.mu)
	args = append([]string{"serve", "--dns", "127.0.0.1:0", "--http", "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "json"}, args...)
	n.cmd = exec.Command(writBin, args...)
	stderr, err := n.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := n.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			n.mu.Lock()
			n.stdout = append(n.stdout, sc.Text())
			n.printed.Broadcast()
			n.mu.Unlock()
		}
		n.mu.Lock()
		n.stdout = append(n.stdout, "(closed)")
		n.printed.Broadcast()
		n.mu.Unlock()
	}()
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		defer close(n.exited)
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			n.mu.Lock()
			n.logs = append(n.logs, line)
			n.mu.Unlock()
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil {
				continue
			}
			switch rec["msg"] {
			case "dns listening":
				if rec["net"] == "udp" && n.dnsAddr == "" {
					n.dnsAddr = rec["addr"].(string)
				}
			case "http listening":
				n.httpURL = "http://" + rec["addr"].(string)
			case "writ ready":
				if !signalled {
					signalled = true
					close(ready)
				}
			}
		}
		n.cmd.Wait()
	}()
	t.Cleanup(func() { n.kill() })
	select {
	case <-ready:
	case <-n.exited:
		t.Fatalf("writ exited before it was ready:\n%s", n.logText())
	case <-time.After(30 * time.Second):
		t.Fatalf("writ not ready after 30s:\n%s", n.logText())
	}
	return n
}

// waitPrinted returns standard output once a line containing s has been
// printed, or everything printed if the process closes its output first.
func (n *node) waitPrinted(s string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	for {
		all := strings.Join(n.stdout, "\n")
		if strings.Contains(all, s) || strings.HasSuffix(all, "(closed)") {
			return all
		}
		n.printed.Wait()
	}
}

func (n *node) logText() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return strings.Join(n.logs, "\n")
}

// kill ends the process with SIGKILL: no shutdown code runs.
func (n *node) kill() {
	if n.cmd.ProcessState == nil {
		n.cmd.Process.Kill()
	}
	<-n.exited
}

func (n *node) token() string {
	b, err := os.ReadFile(filepath.Join(n.dataDir, "api-token"))
	if err != nil {
		n.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// api sends a request and decodes the JSON answer.
func (n *node) api(method, path string, body any, out any) int {
	n.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			n.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.httpURL+path, r)
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+n.token())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			n.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
		}
	}
	return resp.StatusCode
}

func (n *node) metrics() string {
	resp, err := http.Get(n.httpURL + "/metrics")
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// metric returns the value of one exact series line of /metrics.
func (n *node) metric(series string) float64 {
	for _, line := range strings.Split(n.metrics(), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				n.t.Fatal(err)
			}
			return f
		}
	}
	return -1
}

// query asks the node's DNS server for name's A record from a loopback
// source address.
func (n *node) query(from, name string) *dns.Msg {
	n.t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), dns.TypeA)
	m.SetEdns0(1232, false)
	c := &dns.Client{Timeout: 5 * time.Second, Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(from)}}}
	resp, _, err := c.Exchange(m, n.dnsAddr)
	if err != nil {
		n.t.Fatalf("query %s from %s: %v", name, from, err)
	}
	return resp
}

// blockedBy returns the order id cited by a REFUSED + EDE 16 answer, or
// "" if the answer is not such a block.
func blockedBy(m *dns.Msg) string {
	if m.Rcode != dns.RcodeRefused || m.IsEdns0() == nil {
		return ""
	}
	for _, o := range m.IsEdns0().Option {
		if e, ok := o.(*dns.EDNS0_EDE); ok && e.InfoCode == dns.ExtendedErrorCodeCensored {
			var se struct{ J string }
			if json.Unmarshal([]byte(e.ExtraText), &se) != nil {
				return ""
			}
			if id := regexp.MustCompile(`order (\S+) of`).FindStringSubmatch(se.J); id != nil {
				return id[1]
			}
		}
	}
	return ""
}

func answer(m *dns.Msg) string {
	if m.Rcode != dns.RcodeSuccess || len(m.Answer) == 0 {
		return dns.RcodeToString[m.Rcode]
	}
	if a, ok := m.Answer[len(m.Answer)-1].(*dns.A); ok {
		return a.A.String()
	}
	return m.Answer[0].String()
}

type orderResp struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Error  string `json:"error"`
	Events []struct {
		Kind string `json:"kind"`
	} `json:"events"`
}

// sampleOrder is the testdata order, in force from now until expires.
func sampleOrder(t testing.TB, expires time.Time) map[string]any {
	b, err := os.ReadFile("../../testdata/orders-fr-motogp-2025.json")
	if err != nil {
		t.Fatal(err)
	}
	var o map[string]any
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatal(err)
	}
	o["effective"] = time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	o["expires"] = expires.UTC().Format(time.RFC3339Nano)
	return o
}

func TestOrderToScopedBlockAndBack(t *testing.T) {
	up := upstream(t)
	n := startNode(t, t.TempDir(), "--upstream", up.Addr(), "--scope", "FR="+frClient+"/32")

	// Before the order, everyone gets the upstream's answer.
	for _, from := range []string{frClient, outsideClient} {
		if got := answer(n.query(from, "www.motogpstream.me")); got != "198.51.100.7" {
			t.Fatalf("before the order, %s got %s", from, got)
		}
	}

	var o orderResp
	if code := n.api("POST", "/v1/orders", sampleOrder(t, time.Now().Add(24*time.Hour)), &o); code != http.StatusCreated || o.Status != "active" {
		t.Fatalf("submit: %d %+v", code, o)
	}
	acked := time.Now()
	first := n.query(frClient, "www.motogpstream.me")
	t.Logf("201 to first blocked answer, seen by the client: %v", time.Since(acked))
	if got := blockedBy(first); got != o.ID {
		t.Fatalf("in-scope client: want REFUSED + EDE 16 citing %s, got\n%v", o.ID, first)
	}
	if got := blockedBy(n.query(frClient, "a.b.motogpstream.me")); got != o.ID {
		t.Fatal("subdomain not blocked in scope")
	}
	if got := answer(n.query(outsideClient, "www.motogpstream.me")); got != "198.51.100.7" {
		t.Fatalf("out-of-scope client got %s, want the upstream's address", got)
	}
	// The server measured the same propagation and exports it.
	if c := n.metric("writ_order_propagation_seconds_count"); c != 1 {
		t.Fatalf("propagation histogram count = %v, want 1", c)
	}
	if v := n.metric(`writ_dns_blocks_total{scope="FR"}`); v < 2 {
		t.Fatalf("FR blocks = %v", v)
	}
	if v := n.metric(fmt.Sprintf(`writ_order_blocks_total{order=%q}`, o.ID)); v < 2 {
		t.Fatalf("order blocks = %v", v)
	}

	if code := n.api("POST", "/v1/orders/"+o.ID+"/revoke", map[string]string{"reason": "test"}, &o); code != http.StatusOK || o.Status != "revoked" {
		t.Fatalf("revoke: %d %+v", code, o)
	}
	for _, from := range []string{frClient, outsideClient} {
		if got := answer(n.query(from, "www.motogpstream.me")); got != "198.51.100.7" {
			t.Fatalf("after revoke, %s got %s", from, got)
		}
	}
}

func TestHeldSharedInfrastructureNeverBlocks(t *testing.T) {
	up := upstream(t)
	n := startNode(t, t.TempDir(), "--upstream", up.Addr(), "--scope", "FR="+frClient+"/32")
	o := sampleOrder(t, time.Now().Add(time.Hour))
	o["targets"] = []map[string]any{{"ip": "1.1.1.1"}}
	var got orderResp
	if code := n.api("POST", "/v1/orders", o, &got); code != http.StatusCreated || got.Status != "held" {
		t.Fatalf("submit: %d %+v", code, got)
	}
	if a := answer(n.query(frClient, "resolver.example")); a != "1.1.1.1" {
		t.Fatalf("a held address was enforced: %s", a)
	}
}

func TestAcknowledgedOrdersSurviveKill9(t *testing.T) {
	up := upstream(t)
	dir := t.TempDir()
	args := []string{"--upstream", up.Addr(), "--scope", "FR=" + frClient + "/32"}
	n := startNode(t, dir, args...)

	// A burst of submissions, then SIGKILL straight after the last 201.
	var ids []string
	for i := range 20 {
		o := sampleOrder(t, time.Now().Add(time.Hour))
		o["targets"] = []map[string]any{{"fqdn": fmt.Sprintf("mirror%d.example.com", i), "subdomains": true}}
		var got orderResp
		if code := n.api("POST", "/v1/orders", o, &got); code != http.StatusCreated {
			t.Fatalf("submit %d: %d %+v", i, code, got)
		}
		ids = append(ids, got.ID)
	}
	n.kill()

	n = startNode(t, dir, args...)
	for i, id := range ids {
		var got orderResp
		if code := n.api("GET", "/v1/orders/"+id, nil, &got); code != http.StatusOK || got.Status != "active" {
			t.Fatalf("order %s acknowledged before kill -9 is %d %+v after restart", id, code, got)
		}
		if by := blockedBy(n.query(frClient, fmt.Sprintf("www.mirror%d.example.com", i))); by != id {
			t.Fatalf("order %s not enforced after restart", id)
		}
	}
}

func TestExpiryWithoutRestart(t *testing.T) {
	up := upstream(t)
	n := startNode(t, t.TempDir(), "--upstream", up.Addr(), "--scope", "FR="+frClient+"/32")
	expires := time.Now().Add(1500 * time.Millisecond)
	var o orderResp
	if code := n.api("POST", "/v1/orders", sampleOrder(t, expires), &o); code != http.StatusCreated {
		t.Fatalf("submit: %d %+v", code, o)
	}
	if blockedBy(n.query(frClient, "motogpstream.me")) != o.ID {
		t.Fatal("not blocked before expiry")
	}
	// Wait for the expiry time itself, then for the answer to change: the
	// process must notice on its own.
	deadline := expires.Add(10 * time.Second)
	for blockedBy(n.query(frClient, "motogpstream.me")) != "" {
		if time.Now().After(deadline) {
			t.Fatal("still blocked 10s after expiry")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if time.Now().Before(expires) {
		t.Fatal("unblocked before the expiry time")
	}
	var got orderResp
	n.api("GET", "/v1/orders/"+o.ID, nil, &got)
	if got.Status != "expired" || got.Events[len(got.Events)-1].Kind != "expired" {
		t.Fatalf("after expiry: %+v", got)
	}
}

func TestDemoDoesWhatItPrints(t *testing.T) {
	n := startNode(t, t.TempDir(), "--demo")
	out := n.waitPrinted("curl ")
	digs := regexp.MustCompile(`dig @(\S+) -p (\d+) -b (\S+) (\S+)\s+# ([^\n]+)`).FindAllStringSubmatch(out, -1)
	if len(digs) != 2 {
		t.Fatalf("demo printed %d dig commands:\n%s", len(digs), out)
	}
	for _, d := range digs {
		n.dnsAddr = net.JoinHostPort(d[1], d[2])
		m := n.query(d[3], d[4])
		switch {
		case strings.Contains(d[5], "REFUSED"):
			if blockedBy(m) == "" {
				t.Errorf("%q promised a block, got\n%v", d[0], m)
			}
		default:
			want := strings.TrimSpace(d[5][strings.LastIndex(d[5], " "):])
			if got := answer(m); got != want {
				t.Errorf("%q promised %s, got %s", d[0], want, got)
			}
		}
	}
	// A restarted demo keeps its order instead of adding another.
	n.kill()
	n = startNode(t, n.dataDir, "--demo")
	var list struct{ Orders []orderResp }
	n.api("GET", "/v1/orders", nil, &list)
	if len(list.Orders) != 1 {
		t.Fatalf("restarted demo has %d orders", len(list.Orders))
	}
}

// BenchmarkPropagation measures, on a real process, the time from the
// API's 201 for a new order to the first blocked answer an in-scope
// client receives; p50 and p99 are reported alongside the mean. Each
// iteration submits a new order for a new name.
func BenchmarkPropagation(b *testing.B) {
	up, err := localzone.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer up.Close()
	n := startNode(b, b.TempDir(), "--upstream", up.Addr(), "--scope", "FR="+frClient+"/32")
	var lat []time.Duration
	i := 0
	for b.Loop() {
		o := sampleOrder(n.t, time.Now().Add(time.Hour))
		name := fmt.Sprintf("prop%d.example.com", i)
		i++
		o["targets"] = []map[string]any{{"fqdn": name}}
		var got orderResp
		if code := n.api("POST", "/v1/orders", o, &got); code != http.StatusCreated {
			b.Fatalf("submit: %d %+v", code, got)
		}
		acked := time.Now()
		for blockedBy(n.query(frClient, name)) != got.ID {
			if time.Since(acked) > 10*time.Second {
				b.Fatal("not blocked 10s after 201")
			}
		}
		lat = append(lat, time.Since(acked))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
