package httpgate

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/scope"
)

// Loopback addresses stand for clients: 127.0.0.2 is in France,
// 127.0.0.4 in Italy, 127.0.0.3 nowhere; 127.0.0.5 is a trusted proxy.
const (
	frClient    = "127.0.0.2"
	outClient   = "127.0.0.3"
	itClient    = "127.0.0.4"
	proxyClient = "127.0.0.5"
)

var (
	fr = jurisdiction.MustParse("FR")
	it = jurisdiction.MustParse("IT")
)

// quiet discards the logs of servers under test.
var quiet = slog.New(slog.DiscardHandler)

const blockedByURL = "https://isp.example/legal"

func recordURL(id string) string { return "https://writ.isp.example/orders/" + id }

// testOrders are a French court order against a streaming site (whole
// names, one of them only reachable by TLS passthrough) and one URL, and
// an Italian regulator's order.
func testOrders(now time.Time) []*order.Order {
	active := func(ts ...order.Target) []order.Target {
		for i := range ts {
			ts[i].State = order.TargetActive
		}
		return ts
	}
	return []*order.Order{
		{
			ID:           "20250328-paris",
			Authority:    order.Authority{ID: "tj-paris", Name: "Tribunal judiciaire de Paris", Kind: order.Court, Jurisdiction: "FR"},
			LegalBasis:   order.LegalBasis{Statute: "Code du sport L.333-10", Case: "Canal+ v. Cloudflare, judgment of 28 March 2025", URL: "https://juridiction.example/decision/2025-03-28"},
			Jurisdiction: []string{"FR"},
			Effective:    now.Add(-time.Hour),
			Expires:      now.Add(24 * time.Hour),
			Received:     now.Add(-time.Hour),
			Targets: active(
				order.Target{FQDN: "motogpstream.me", Subdomains: true},
				order.Target{FQDN: "tarjetarojaenvivo.lat", Subdomains: true},
				order.Target{URL: "https://news.example/live"},
				order.Target{URL: "https://news.example/watch?v=abc"},
				order.Target{IP: "198.51.100.0/24"},
			),
		},
		{
			ID:           "20250401-agcom",
			Authority:    order.Authority{ID: "agcom", Name: "AGCOM", Kind: order.Regulator, Jurisdiction: "IT"},
			LegalBasis:   order.LegalBasis{Statute: "Legge 93/2023"},
			Jurisdiction: []string{"IT"},
			Effective:    now.Add(-time.Hour),
			Expires:      now.Add(30 * time.Second),
			Received:     now.Add(-time.Minute),
			Targets:      active(order.Target{FQDN: "calcio.example", Subdomains: true}),
		},
	}
}

func testResolver(t testing.TB) *scope.Resolver {
	t.Helper()
	r, err := scope.New([]scope.Network{
		{Prefix: netip.MustParsePrefix(frClient + "/32"), Code: fr},
		{Prefix: netip.MustParsePrefix(itClient + "/32"), Code: it},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testGate is a gate on the test orders, with 127.0.0.5 as a trusted
// proxy.
func testGate(t testing.TB) (*Gate, *policy.Holder, []*order.Order) {
	t.Helper()
	now := time.Now()
	orders := testOrders(now)
	holder := policy.NewHolder(policy.Compile(orders, now, 7, nil))
	g, err := New(Config{
		BlockedBy:      blockedByURL,
		Operator:       "Example ISP",
		Contact:        []string{"mailto:legal@isp.example", "tel:+33123456789"},
		RecordURL:      recordURL,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix(proxyClient + "/32")},
		Logger:         quiet,
	}, holder, testResolver(t))
	if err != nil {
		t.Fatal(err)
	}
	return g, holder, orders
}

// origin is a real HTTP server on loopback that records what reaches it.
type origin struct {
	addr  string
	large []byte
	// streamNext paces /stream: each chunk after the first is written
	// only once the test has received the one before.
	streamNext chan struct{}

	mu   sync.Mutex
	seen []string // "host path" of every request
	xff  []string
}

const (
	largeSize    = 8 << 20
	streamChunks = 5
	originDate   = "Mon, 02 Jun 2025 10:00:00 GMT"
)

func startOrigin(t testing.TB) *origin {
	t.Helper()
	o := &origin{large: make([]byte, largeSize), streamNext: make(chan struct{})}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range o.large {
		o.large[i] = byte(rng.Uint32())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/large", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("ETag", `"large-1"`)
		w.Write(o.large)
	})
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		for i := range streamChunks {
			if i > 0 {
				select {
				case <-o.streamNext:
				case <-r.Context().Done():
					return
				}
			}
			fmt.Fprintf(w, "chunk %d of %d\n", i+1, streamChunks)
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/upgrade", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return
		}
		c, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		rw.Flush()
		io.Copy(c, rw)
	})
	mux.HandleFunc("/forbidden", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "the origin's own refusal", http.StatusForbidden)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Set-Cookie", "session=abc; Path=/; HttpOnly")
		w.Header().Set("X-Origin", "yes")
		w.Header().Add("X-Multi", "one")
		w.Header().Add("X-Multi", "two")
		fmt.Fprintf(w, "origin page for %s %s %s\n", r.Method, r.Host, r.URL.RequestURI())
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.seen = append(o.seen, r.Host+" "+r.URL.Path)
		o.xff = append(o.xff, r.Header.Get("X-Forwarded-For"))
		o.mu.Unlock()
		// A fixed Date, so that answers through the gate and straight
		// from the origin compare byte for byte.
		w.Header().Set("Date", originDate)
		mux.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return o
}

// requests returns the requests the origin saw.
func (o *origin) requests() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.seen...)
}

// sawHost reports whether any request for host reached the origin.
func (o *origin) sawHost(host string) bool {
	for _, r := range o.requests() {
		if strings.HasPrefix(r, host+" ") {
			return true
		}
	}
	return false
}

// clientFrom returns an HTTP client whose connections come from the
// loopback address src and all go to addr, whatever the URL's host.
func clientFrom(src, addr string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:        func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
			DisableCompression: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// response is an answer read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

func get(t testing.TB, c *http.Client, url string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading: %v", url, err)
	}
	return response{resp.StatusCode, resp.Header, body}
}

// upgradeEcho opens a connection from src to addr, upgrades it to the
// origin's echo protocol and checks that bytes go both ways.
func upgradeEcho(src, addr, host string) error {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(c, "GET /upgrade HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n", host)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("upgrade: status %d", resp.StatusCode)
	}
	for _, msg := range []string{"ping\n", "second message\n"} {
		if _, err := io.WriteString(c, msg); err != nil {
			return err
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil {
			return err
		}
		if !bytes.Equal(got, []byte(msg)) {
			return fmt.Errorf("echo: sent %q, got %q", msg, got)
		}
	}
	return nil
}
