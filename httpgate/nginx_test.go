package httpgate

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
)

// nginxSnippet is the configuration README.md documents; the test runs
// nginx on it, changing only the addresses.
const nginxSnippet = "testdata/nginx-writ.conf"

func TestREADMEShowsTheTestedNginxConfig(t *testing.T) {
	snippet, err := os.ReadFile(nginxSnippet)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, []byte("```nginx\n"+string(snippet)+"```\n")) {
		t.Errorf("README.md does not show %s exactly, in an nginx code block", nginxSnippet)
	}
}

// findNginx returns Debian's nginx, which ./test.sh installs.
func findNginx(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("nginx is not installed: ./test.sh installs it (Debian package nginx)")
	return ""
}

// freePort returns a loopback port nobody listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startNginx runs nginx in a temporary prefix with the documented
// configuration, pointed at the gate and the origin, and returns its
// address once it accepts connections.
func startNginx(t *testing.T, gateAddr, originAddr string) string {
	t.Helper()
	bin := findNginx(t)
	snippet, err := os.ReadFile(nginxSnippet)
	if err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	conf := string(snippet)
	for old, repl := range map[string]string{
		"server 127.0.0.1:8451;": "server " + gateAddr + ";",
		"server 127.0.0.1:8000;": "server " + originAddr + ";",
		"listen 80;":             "listen " + addr + ";",
	} {
		if !strings.Contains(conf, old) {
			t.Fatalf("%s lacks %q", nginxSnippet, old)
		}
		conf = strings.Replace(conf, old, repl, 1)
	}
	prefix := t.TempDir()
	if err := os.WriteFile(filepath.Join(prefix, "writ.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	user := ""
	if os.Geteuid() == 0 {
		// Workers would otherwise run as nobody, who cannot enter the
		// temporary prefix.
		user = "user root;"
	}
	main := fmt.Sprintf(`%s
worker_processes 1;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log info;
events { worker_connections 128; }
http {
    access_log off;
    client_body_temp_path %[2]s/client_body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[2]s/writ.conf;
}
`, user, prefix)
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-p", prefix, "-c", confPath, "-e", filepath.Join(prefix, "error.log")}
	if out, err := exec.Command(bin, append(args, "-t")...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(prefix, "error.log"))
			t.Logf("nginx error log:\n%s", log)
		}
	})
	// Ready when it accepts a connection; it logs nothing on its own.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		select {
		case err := <-exited:
			t.Fatalf("nginx exited: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx does not accept connections on %s: %v", addr, err)
		}
	}
}

func TestNginxAuthRequest(t *testing.T) {
	now := time.Now()
	orders := testOrders(now)
	holder := policy.NewHolder(policy.Compile(orders, now, 3, nil))
	g, err := New(Config{
		BlockedBy:      blockedByURL,
		Operator:       "Example ISP",
		RecordURL:      recordURL,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, // nginx
		Logger:         quiet,
	}, holder, testResolver(t))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(g, ServerConfig{DecisionListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	o := startOrigin(t)
	addr := startNginx(t, s.DecisionAddr().String(), o.addr)
	inFR, outside, direct := clientFrom(frClient, addr), clientFrom(outClient, addr), clientFrom(outClient, o.addr)

	// In France: nginx serves the gate's 451, headers and page, in the
	// client's language; the origin hears nothing.
	for _, u := range []string{"http://www.motogpstream.me/watch?x=1", "http://motogpstream.me/large", "http://news.example/live/1"} {
		r := get(t, inFR, u, "Accept-Language", "fr-FR, en;q=0.5")
		checkBlocked(t, r, "20250328-paris", "fr", "Tribunal judiciaire de Paris", "Comment contester")
	}
	if reqs := o.requests(); len(reqs) != 0 {
		t.Fatalf("blocked requests reached the origin through nginx: %q", reqs)
	}

	// Outside France, and paths no target covers: the origin's answer.
	for _, c := range []struct {
		client *http.Client
		url    string
	}{
		{outside, "http://www.motogpstream.me/watch?x=1"},
		{outside, "http://www.motogpstream.me/large"},
		{outside, "http://news.example/live/1"},
		{inFR, "http://news.example/lively"},
	} {
		got, want := get(t, c.client, c.url), get(t, direct, c.url)
		if got.status != want.status || !bytes.Equal(got.body, want.body) {
			t.Errorf("%s: through nginx %d (%d bytes), straight %d (%d bytes)", c.url, got.status, len(got.body), want.status, len(want.body))
		}
		for _, h := range []string{"Content-Type", "Set-Cookie", "X-Origin", "ETag", "Content-Length"} {
			if got.header.Get(h) != want.header.Get(h) {
				t.Errorf("%s: %s through nginx %q, straight %q", c.url, h, got.header.Get(h), want.header.Get(h))
			}
		}
	}
	// The origin's own 403 is not taken for the gate's.
	if r := get(t, outside, "http://www.motogpstream.me/forbidden"); r.status != http.StatusForbidden || !strings.Contains(string(r.body), "the origin's own refusal") {
		t.Errorf("origin 403 through nginx: %d %s", r.status, r.body)
	}
	// A client cannot claim another address: nginx appends the real one
	// and the gate takes the right-most address nginx did not add itself.
	if r := get(t, outside, "http://www.motogpstream.me/", "X-Forwarded-For", frClient); r.status != http.StatusOK {
		t.Errorf("outside client claiming France through nginx: %d", r.status)
	}
	checkBlocked(t, get(t, inFR, "http://www.motogpstream.me/", "X-Forwarded-For", outClient), "20250328-paris", "en")

	// Revocation lifts the block at once, with nothing restarted.
	revoked := orders[0].Clone()
	revoked.Disposition = order.Revoked
	revoked.DispositionAt = &now
	holder.Store(policy.Compile([]*order.Order{revoked, orders[1]}, time.Now(), 4, nil))
	if r := get(t, inFR, "http://www.motogpstream.me/watch?x=1"); r.status != http.StatusOK || !strings.Contains(string(r.body), "origin page") {
		t.Errorf("after revocation, through nginx: %d %s", r.status, r.body)
	}
	if got := g.Metrics.Blocks(); got != 4 {
		t.Errorf("gate counted %d blocks, want 4", got)
	}
}
