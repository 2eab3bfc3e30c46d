package main

// The web console, end to end: writ serve runs as a real process with a
// real upstream, Debian's Chromium drives the console as its users do,
// and real DNS queries from an address in France check that what the
// console does is enforced. Each screen is saved as a screenshot in
// $WRIT_SCREENSHOTS, or writ-screenshots in the system's temporary
// directory.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/writ-project/writ/internal/browsertest"
)

// consoleBrowser is a Chromium tab on a writ node's console.
type consoleBrowser struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string
}

func newConsoleBrowser(t *testing.T, base string) *consoleBrowser {
	t.Helper()
	return &consoleBrowser{t: t, ctx: browsertest.New(t, 3*time.Minute), base: base, dir: browsertest.ScreenshotDir(t)}
}

func (b *consoleBrowser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

func eval[T any](b *consoleBrowser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// load runs a step that leaves the page (following a link, sending a
// form) and returns once the next page has loaded: the old page carries
// a mark that the new one lacks.
func (b *consoleBrowser) load(what string, step chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	eval[bool](b, `window.writOldPage = true`)
	b.do(what, step)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		loaded, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.writOldPage === undefined && document.readyState === "complete"`))
		cancel()
		if err == nil && loaded {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: the next page did not load within 15s (%v)", what, err)
		}
		// The page is navigating: ask the browser again shortly.
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *consoleBrowser) visit(path string) {
	b.t.Helper()
	b.do("visit "+path, chromedp.Navigate(b.base+path))
}

// main returns the text a reader sees in the page's main region.
func (b *consoleBrowser) main() string {
	b.t.Helper()
	text, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		b.t.Fatalf("reading the page: %v", err)
	}
	return strings.Join(strings.Fields(text), " ")
}

// want fails the test unless the page says each of wants.
func (b *consoleBrowser) want(step string, wants ...string) string {
	b.t.Helper()
	text := b.main()
	for _, w := range wants {
		if !strings.Contains(text, w) {
			loc, _ := chromedp.Run(b.ctx, chromedp.Location())
			b.t.Fatalf("%s: the page (%s) does not say %q; it reads:\n%s", step, loc, w, text)
		}
	}
	return text
}

func (b *consoleBrowser) text(sel string) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("reading %s: %v", sel, err)
	}
	return strings.TrimSpace(v)
}

func (b *consoleBrowser) number(sel string) int {
	b.t.Helper()
	n, err := strconv.Atoi(b.text(sel))
	if err != nil {
		b.t.Fatalf("%s is not a number: %v", sel, err)
	}
	return n
}

// accessibilityProblems lists form controls without a label and text
// whose contrast with its background is below WCAG's 4.5:1.
const accessibilityProblems = `(() => {
  const problems = [];
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea, button")) {
    const named = (el.labels && el.labels.length > 0) || el.getAttribute("aria-label") || (el.tagName === "BUTTON" && el.textContent.trim());
    if (!named) problems.push("no label: " + el.outerHTML.slice(0, 80));
  }
  const rgb = s => { const m = s.match(/rgba?\(([^)]+)\)/); if (!m) return null; const p = m[1].split(",").map(Number); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const background = el => { for (; el; el = el.parentElement) { const c = rgb(getComputedStyle(el).backgroundColor); if (c && c.a > 0) return c; } return {r: 255, g: 255, b: 255, a: 1}; };
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n; (n = walk.nextNode());) {
    const el = n.parentElement;
    if (!n.textContent.trim() || el.closest("svg, script, style") || el.getClientRects().length === 0) continue;
    const l1 = lum(rgb(getComputedStyle(el).color)), l2 = lum(background(el));
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    if (ratio < 4.5) problems.push("contrast " + ratio.toFixed(2) + ": " + n.textContent.trim().slice(0, 40));
  }
  return problems;
})()`

// screen checks the page's labels and contrast and saves a screenshot.
func (b *consoleBrowser) screen(name string) {
	b.t.Helper()
	if problems := eval[[]string](b, accessibilityProblems); len(problems) > 0 {
		b.t.Errorf("%s: accessibility problems:\n%s", name, strings.Join(problems, "\n"))
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.dir, "console-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot of %s: %s", name, path)
}

// phone shows the page at a phone's width (375 CSS pixels), checks that
// nothing makes it scroll sideways, and saves a screenshot.
func (b *consoleBrowser) phone(name, path string) {
	b.t.Helper()
	b.do("phone width", chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
	b.visit(path)
	if w := eval[[]int](b, `[document.documentElement.scrollWidth, window.innerWidth]`); len(w) != 2 || w[0] > w[1] || w[1] != 375 {
		b.t.Errorf("%s at phone width: page %d px wide in a %d px window", name, w[0], w[1])
	}
	b.screen(name + "-phone")
	b.do("desktop width", chromedp.EmulateViewport(1280, 1000))
}

func (b *consoleBrowser) login(token string) {
	b.t.Helper()
	b.visit("/console/login")
	b.do("type the token", chromedp.SendKeys(chromedp.ID("token"), token))
	b.load("log in", chromedp.Submit(chromedp.ID("token")))
}

func (b *consoleBrowser) logout() {
	b.t.Helper()
	b.load("log out", chromedp.Click(chromedp.CSS("form.logout button")))
	b.want("log out", "You have logged out.")
}

func TestConsoleInChromium(t *testing.T) {
	up := upstream(t)
	n := startNode(t, t.TempDir(), "--upstream", up.Addr(), "--scope", "FR="+frClient+"/32", "--node", "edge1")
	b := newConsoleBrowser(t, n.httpURL)

	// The console asks who you are before anything else.
	b.visit("/console/queue")
	b.want("before login", "Log in", "API token")
	b.screen("login")

	// The operator logs in with the data directory's token and creates a
	// reviewer's credentials.
	b.login(n.token())
	b.want("operator's dashboard", "Dashboard", "Orders in force")
	b.visit("/console/credentials")
	b.do("fill in the credentials form",
		chromedp.SendKeys(chromedp.ID("cred-id"), "alice"),
		chromedp.SendKeys(chromedp.ID("cred-name"), "Alice Martin"),
		chromedp.SetValue(chromedp.ID("cred-role"), "reviewer"))
	b.load("create credentials", chromedp.Submit(chromedp.ID("cred-id")))
	b.want("credentials created", "Credentials created for reviewer:alice", "it is not shown again")
	alice := b.text("#new-token")
	if !strings.HasPrefix(alice, "writ_") {
		t.Fatalf("the token shown is %q", alice)
	}
	b.screen("credentials")
	b.logout()

	// The court's order arrives through the API. 1.1.1.1 is a public
	// resolver: a safeguard holds it.
	o := sampleOrder(t, time.Now().Add(24*time.Hour))
	o["targets"] = []map[string]any{{"fqdn": "motogpstream.me", "subdomains": true}, {"ip": "1.1.1.1"}}
	var ord orderResp
	if code := n.api("POST", "/v1/orders", o, &ord); code != http.StatusCreated || ord.Status != "active" {
		t.Fatalf("submit: %d %+v", code, ord)
	}
	for range 3 {
		if by := blockedBy(n.query(frClient, "www.motogpstream.me")); by != ord.ID {
			t.Fatalf("www.motogpstream.me not blocked in France: %q", by)
		}
	}
	if got := answer(n.query(frClient, "resolver.example")); got != "1.1.1.1" {
		t.Fatalf("a held address was enforced: %s", got)
	}

	// The reviewer logs in and lands on the queue: the held address, why
	// it is held, and the time left before the court's deadline.
	b.login(alice)
	b.want("reviewer's queue", "Review queue", "Held targets: 1", "1.1.1.1/32",
		"Held because overlaps shared infrastructure 1.1.1.0/24 (Public resolvers): blocking it could cut off unrelated services",
		"Order "+ord.ID+" of Tribunal judiciaire de Paris, for FR", "left")
	// Without script the countdown already reads right; with it, it ticks.
	first := b.text(".countdown")
	if !regexp.MustCompile(`^(29|30) min \d+ s left$`).MatchString(first) {
		t.Fatalf("countdown reads %q", first)
	}
	for deadline := time.Now().Add(5 * time.Second); b.text(".countdown") == first; {
		if time.Now().After(deadline) {
			t.Fatalf("the countdown does not tick: still %q", first)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The first thing the keyboard reaches is the way past the navigation.
	b.do("tab", chromedp.KeyEvent(kb.Tab))
	if got := eval[string](b, `document.activeElement.textContent`); got != "Skip to content" {
		t.Errorf("the first Tab reaches %q, not the skip link", got)
	}
	b.screen("queue")

	// The dashboard before the release.
	b.visit("/console/")
	b.want("dashboard", "Orders and targets per jurisdiction", "Blocks per hour, per order", "Enforcement points", "Transparency ledger")
	enforcedBefore := b.number("#scope-FR-enforced")
	blocksBefore := b.number("#blocks-total")
	ledgerBefore := b.number("#ledger-size")
	if enforcedBefore != 1 || b.number("#targets-held") != 1 || blocksBefore < 3 || b.number("#blocks-"+ord.ID+"-total") < 3 {
		t.Fatalf("dashboard before the release: enforced %d, blocks %d\n%s", enforcedBefore, blocksBefore, b.main())
	}
	b.screen("dashboard-before")

	// Release, by keyboard: the comment, Tab to the Release button, Enter.
	b.visit("/console/queue")
	b.do("comment", chromedp.SendKeys(chromedp.CSS("li.held-target textarea"), "Only the resolver itself answers there for the ordered names; checked with the court's clerk."))
	b.do("tab to Release", chromedp.KeyEvent(kb.Tab))
	if got := eval[string](b, `document.activeElement.textContent`); got != "Release: enforce it" {
		t.Fatalf("Tab from the comment reaches %q", got)
	}
	b.load("release", chromedp.KeyEvent(kb.Enter))
	b.want("after the release", "1.1.1.1/32 of order "+ord.ID+" released: it is enforced from now on.", "No target is waiting for review.")
	b.screen("queue-released")

	// The DNS answer changes: in France, a name answered with the
	// released address is blocked; elsewhere it is not.
	if by := blockedBy(n.query(frClient, "resolver.example")); by != ord.ID {
		t.Fatalf("after the release, resolver.example from France is not blocked by %s", ord.ID)
	}
	if got := answer(n.query(outsideClient, "resolver.example")); got != "1.1.1.1" {
		t.Fatalf("after the release, outside France: %s", got)
	}

	// The dashboard's figures move: one more target enforced, one more
	// answer blocked, and the ledger records the release.
	b.visit("/console/")
	if got := b.number("#scope-FR-enforced"); got != enforcedBefore+1 || b.number("#targets-held") != 0 {
		t.Fatalf("targets enforced in FR after the release: %d, want %d", got, enforcedBefore+1)
	}
	if got := b.number("#blocks-total"); got != blocksBefore+1 {
		t.Fatalf("answers blocked after one more blocked query: %d, want %d", got, blocksBefore+1)
	}
	for deadline := time.Now().Add(15 * time.Second); b.number("#ledger-size") <= ledgerBefore || !strings.Contains(b.text("#point-dns-edge1"), "up to date"); b.visit("/console/") {
		if time.Now().After(deadline) {
			t.Fatalf("the ledger (%d entries) or the DNS server's receipt (%q) did not catch up", b.number("#ledger-size"), b.text("#point-dns-edge1"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.screen("dashboard")

	// A contest received by e-mail is recorded, then decided.
	b.visit("/console/orders/" + ord.ID)
	b.want("order page", "Order "+ord.ID, "1.1.1.1/32", "released", "dns@edge1", "met")
	b.do("record a contest",
		chromedp.Click(chromedp.CSS("#record-contest summary")),
		chromedp.SetValue(chromedp.ID("contest-target"), "motogpstream.me (and subdomains)"),
		chromedp.SendKeys(chromedp.ID("contest-grounds"), "This is a motorcycle club's forum, not a stream; the court's list named it by mistake."),
		chromedp.SendKeys(chromedp.ID("contest-name"), "Marie Dupont"),
		chromedp.SendKeys(chromedp.ID("contest-email"), "marie@club.example"))
	b.load("file the contest", chromedp.Submit(chromedp.ID("contest-grounds")))
	b.want("contest filed", "Contest 1 recorded against order "+ord.ID, "Contest 1 against motogpstream.me (and subdomains): pending",
		"Filed by Marie Dupont <marie@club.example>")
	b.visit("/console/queue")
	b.want("queue with a contest", "Contests to decide: 1", "Contest 1: examine and decide")
	b.load("open the contest", chromedp.Click(chromedp.CSS("#pending-contest-1 a")))
	b.screen("order-contest")
	b.do("decide the contest",
		chromedp.Click(chromedp.ID("upheld-1")),
		chromedp.SendKeys(chromedp.ID("decision-1"), "The club's forum streams nothing; wrongly listed."))
	b.load("record the decision", chromedp.Submit(chromedp.ID("decision-1")))
	b.want("contest decided", "Contest 1 upheld: motogpstream.me (and subdomains) is lifted from order "+ord.ID,
		"Contest 1 against motogpstream.me (and subdomains): upheld", "The club's forum streams nothing", "removed")
	if got := answer(n.query(frClient, "www.motogpstream.me")); got != "198.51.100.7" {
		t.Fatalf("after the upheld contest, www.motogpstream.me from France: %s", got)
	}
	svg := eval[string](b, `document.querySelector("svg.timeline title").textContent`)
	if !strings.Contains(svg, "Time to enforce at each of") || !strings.Contains(b.text("#receipts-table"), "dns@edge1") {
		t.Errorf("no time-to-enforce chart on the order page: %q", svg)
	}
	b.screen("order")
	b.visit("/console/")
	if got := b.number("#scope-FR-enforced"); got != enforcedBefore {
		t.Fatalf("targets enforced in FR after the contest: %d, want %d", got, enforcedBefore)
	}
	if b.number("#contests-pending") != 0 {
		t.Fatal("the decided contest is still pending on the dashboard")
	}

	// Check a name: the released address, for a client in France.
	b.visit("/console/check")
	b.do("ask", chromedp.SendKeys(chromedp.ID("name"), "1.1.1.1"), chromedp.SendKeys(chromedp.ID("client"), frClient))
	b.load("check", chromedp.Submit(chromedp.ID("name")))
	b.want("check a name", "1.1.1.1 for client "+frClient+": blocked", "Jurisdiction FR (network)", "REFUSED with EDE 16 (Censored)",
		ord.ID, "Tribunal judiciaire de Paris", "1.1.1.1/32", "yes")
	b.screen("check")

	// At a phone's width nothing scrolls sideways.
	b.phone("queue", "/console/queue")
	b.phone("dashboard", "/console/")
	b.phone("order", "/console/orders/"+ord.ID)
	b.phone("check", "/console/check?name=www.motogpstream.me&client="+frClient)

	// A page on another site (here another port of the same host, which a
	// browser sends the session cookie to) posts a form to the console:
	// it is refused, and the record is unchanged.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `<!doctype html><title>Win a prize</title><main><form method="post" action="%s/console/orders/%s/hold">
<input type="hidden" name="target" value="1.1.1.1"><input type="hidden" name="reason" value="forged"><input type="hidden" name="csrf" value="guessed">
<button id="prize">Claim your prize</button></form></main>`, n.httpURL, ord.ID)
	}))
	defer evil.Close()
	b.do("visit another site", chromedp.Navigate(evil.URL))
	b.load("claim the prize", chromedp.Click(chromedp.ID("prize")))
	b.want("forged post", "403", "Refused: this form was sent from another site.")
	b.screen("forged-post")
	var after struct {
		Targets []struct{ IP, State string }
	}
	n.api("GET", "/v1/orders/"+ord.ID, nil, &after)
	for _, tg := range after.Targets {
		if tg.IP == "1.1.1.1/32" && tg.State != "active" {
			t.Fatalf("the forged post changed 1.1.1.1/32 to %s", tg.State)
		}
	}
	if by := blockedBy(n.query(frClient, "resolver.example")); by != ord.ID {
		t.Fatal("after the forged post, the released address is no longer blocked")
	}

	// Logging out ends the session: the console asks for a token again.
	b.visit("/console/")
	b.logout()
	b.visit("/console/queue")
	b.want("after logout", "Log in", "API token")
	b.screen("logged-out")
}

// TestConsoleRefusesStrangers asks a real process for the console's pages
// and actions without a session.
func TestConsoleRefusesStrangers(t *testing.T) {
	up := upstream(t)
	n := startNode(t, t.TempDir(), "--upstream", up.Addr())
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/console/", "/console/queue", "/console/orders", "/console/check?name=a.example&scope=FR", "/console/credentials"} {
		resp, err := c.Get(n.httpURL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/console/login?next=") {
			t.Errorf("GET %s: %d to %q, want 303 to the login form", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	resp, err := c.Post(n.httpURL+"/console/credentials", "application/x-www-form-urlencoded", strings.NewReader("id=mallory&role=operator"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /console/credentials without a session: %d\n%s", resp.StatusCode, body)
	}
	// The console is off when the configuration says so.
	cfg := filepath.Join(t.TempDir(), "writ.yaml")
	if err := os.WriteFile(cfg, []byte("console:\n  enabled: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	off := startNode(t, t.TempDir(), "--upstream", up.Addr(), "--config", cfg)
	resp, err = c.Get(off.httpURL + "/console/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("console off: GET /console/login is %d, want 404", resp.StatusCode)
	}
}
