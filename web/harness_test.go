package web

import (
	"context"
	"fmt"
	stdhtml "html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/ledger"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/registry"
	"github.com/writ-project/writ/scope"
	"github.com/writ-project/writ/store"
)

// The console's tests run it over the real registry and a SQLite store,
// as writ serve does, and drive it over HTTP as a browser would.

// testClock is the console's clock in tests: it moves when told to.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeLedger stands for the transparency log, whose own tests are in
// package ledger.
type fakeLedger struct{ cp ledger.Checkpoint }

func (l *fakeLedger) Checkpoint() (ledger.Checkpoint, []byte) {
	return l.cp, l.cp.Body()
}

type harness struct {
	t       *testing.T
	reg     *registry.Registry
	console *Console
	srv     *httptest.Server
	clock   *testClock
	// Tokens of an operator, a reviewer and an authority's clerk.
	operator, reviewer, clerk string
}

var operatorPrincipal = access.Principal{ID: "operator", Name: "Olivia Operator", Role: access.Operator}

// newHarness starts a console over a fresh registry. Clients in
// 127.0.0.2/32 are in France.
func newHarness(t *testing.T, cfg Config, tls bool) *harness {
	t.Helper()
	ctx := context.Background()
	st, err := store.OpenSQLite(ctx, filepath.Join(t.TempDir(), "writ.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logger := slog.New(slog.DiscardHandler)
	reg, err := registry.Open(ctx, st, registry.Options{Intake: order.Intake{Safeguards: order.Safeguards{SharedInfra: order.DefaultSharedInfra()}}, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	h := &harness{t: t, reg: reg, clock: &testClock{now: time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)}, operator: "writ_operator_token_for_tests"}
	if err := reg.EnsurePrincipal(ctx, operatorPrincipal, h.operator); err != nil {
		t.Fatal(err)
	}
	op, err := reg.Authenticate(ctx, h.operator)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.RegisterAuthority(ctx, order.RegisteredAuthority{Authority: order.Authority{ID: "tj-paris", Name: "Tribunal judiciaire de Paris", Kind: order.Court, Jurisdiction: "FR"}, DeadlineSeconds: 1800}, op); err != nil {
		t.Fatal(err)
	}
	if h.reviewer, err = reg.CreatePrincipal(ctx, access.Principal{ID: "alice", Name: "Alice Martin", Role: access.Reviewer}, op); err != nil {
		t.Fatal(err)
	}
	if h.clerk, err = reg.CreatePrincipal(ctx, access.Principal{ID: "paris-clerk", Role: access.Authority, Authority: "tj-paris"}, op); err != nil {
		t.Fatal(err)
	}
	resolver, err := scope.New([]scope.Network{{Prefix: netip.MustParsePrefix("127.0.0.2/32"), Code: jurisdiction.MustParse("FR")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Clock, cfg.Logger = h.clock.Now, logger
	if cfg.BlockAnswer == "" {
		cfg.BlockAnswer = "REFUSED with EDE 16 (Censored)"
	}
	mux := http.NewServeMux()
	if tls {
		h.srv = httptest.NewUnstartedServer(mux)
		h.srv.StartTLS()
	} else {
		h.srv = httptest.NewServer(mux)
	}
	t.Cleanup(h.srv.Close)
	led := &fakeLedger{cp: ledger.Checkpoint{Origin: "writ.test/ledger", Size: 7, Root: []byte("0123456789abcdef0123456789abcdef")}}
	h.console, err = New(cfg, Sources{Registry: reg, Policy: reg.Policy(), Scoper: resolver, Counters: reg.Counters(), Ledger: led})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle(Prefix, h.console)
	return h
}

// submit records an order of the Paris court for France, in force from
// a minute ago for a day, against the given targets (JSON objects).
func (h *harness) submit(targets ...string) *order.Order {
	h.t.Helper()
	now := time.Now().UTC()
	body := fmt.Sprintf(`{"authority":{"id":"tj-paris"},"legal_basis":{"statute":"Code du sport L.333-10","case":"Canal+ v. Cloudflare, judgment of 28 March 2025"},
"jurisdiction":["FR"],"effective":%q,"expires":%q,"targets":[%s]}`,
		now.Add(-time.Minute).Format(time.RFC3339), now.Add(24*time.Hour).Format(time.RFC3339), strings.Join(targets, ","))
	sub, err := order.DecodeBytes([]byte(body))
	if err != nil {
		h.t.Fatal(err)
	}
	o, err := h.reg.Submit(context.Background(), sub, operatorPrincipal)
	if err != nil {
		h.t.Fatal(err)
	}
	return o
}

func (h *harness) order(id string) *order.Order {
	h.t.Helper()
	o, _, err := h.reg.Order(context.Background(), id)
	if err != nil {
		h.t.Fatal(err)
	}
	return o
}

func (h *harness) targetState(id, target string) order.TargetState {
	h.t.Helper()
	t, ok := h.order(id).FindTarget(target)
	if !ok {
		h.t.Fatalf("order %s has no target %s", id, target)
	}
	return t.State
}

// client is a browser without script: it keeps cookies and does not
// follow redirects, so that each answer can be checked.
type client struct {
	t    *testing.T
	h    *harness
	http *http.Client
	csrf string
}

func (h *harness) client() *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		h.t.Fatal(err)
	}
	// A copy: httptest hands every caller the same client.
	hc := new(http.Client)
	*hc = *h.srv.Client()
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &client{t: h.t, h: h, http: hc}
}

type answer struct {
	status int
	header http.Header
	body   string
}

func (a answer) location() string { return a.header.Get("Location") }

func (c *client) do(req *http.Request) answer {
	c.t.Helper()
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
	if m := csrfField.FindStringSubmatch(a.body); m != nil {
		c.csrf = m[1]
	}
	return a
}

var (
	csrfField      = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	loginFormField = regexp.MustCompile(`name="login_form" value="([^"]+)"`)
)

func (c *client) get(path string) answer {
	c.t.Helper()
	req, err := http.NewRequest("GET", c.h.srv.URL+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.do(req)
}

// post sends a form; headers are added to the request (a browser's
// Origin and Sec-Fetch-Site, or a forger's).
func (c *client) post(path string, form url.Values, headers ...string) answer {
	c.t.Helper()
	req, err := http.NewRequest("POST", c.h.srv.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return c.do(req)
}

// form posts a console form with the session's anti-forgery token, as
// the browser does from a console page.
func (c *client) form(path string, fields ...string) answer {
	c.t.Helper()
	v := url.Values{"csrf": {c.csrf}}
	for i := 0; i+1 < len(fields); i += 2 {
		v.Set(fields[i], fields[i+1])
	}
	return c.post(path, v, "Sec-Fetch-Site", "same-origin", "Origin", c.h.srv.URL)
}

// login logs in with token and fails the test if that does not work.
func (c *client) login(token string) answer {
	c.t.Helper()
	a := c.tryLogin(token)
	if a.status != http.StatusSeeOther {
		c.t.Fatalf("login: %d\n%s", a.status, a.body)
	}
	// A page of the console gives the session's anti-forgery token.
	c.get(Prefix + "orders")
	if c.csrf == "" {
		c.t.Fatal("no anti-forgery token on the console's pages")
	}
	return a
}

func (c *client) tryLogin(token string) answer {
	c.t.Helper()
	page := c.get(Prefix + "login")
	m := loginFormField.FindStringSubmatch(page.body)
	if page.status != http.StatusOK || m == nil {
		c.t.Fatalf("login page: %d\n%s", page.status, page.body)
	}
	return c.post(Prefix+"login", url.Values{"login_form": {m[1]}, "token": {token}}, "Sec-Fetch-Site", "same-origin")
}

// follow gets the page a form post redirected to.
func (c *client) follow(a answer) answer {
	c.t.Helper()
	if a.status != http.StatusSeeOther {
		c.t.Fatalf("want a redirect, got %d\n%s", a.status, a.body)
	}
	return c.get(a.location())
}

// text returns the page's text without tags, spaces collapsed, for
// checking what a reader sees.
func text(html string) string {
	html = regexp.MustCompile(`(?s)<(script|style)[^>]*>.*?</(script|style)>`).ReplaceAllString(html, " ")
	// Inline elements run on with their neighbours; the others stand apart.
	html = regexp.MustCompile(`</?(a|strong|code|span|em|time)\b[^>]*>`).ReplaceAllString(html, "")
	html = regexp.MustCompile(`<[^>]*>`).ReplaceAllString(html, " ")
	return strings.Join(strings.Fields(stdhtml.UnescapeString(html)), " ")
}

func wantText(t *testing.T, page answer, wants ...string) {
	t.Helper()
	got := text(page.body)
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("the page does not say %q; it reads:\n%s", w, got)
		}
	}
}

func refuseText(t *testing.T, page answer, unwanted ...string) {
	t.Helper()
	got := text(page.body)
	for _, w := range unwanted {
		if strings.Contains(got, w) {
			t.Errorf("the page says %q, which it must not; it reads:\n%s", w, got)
		}
	}
}
