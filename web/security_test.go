package web

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/writ-project/writ/order"
)

// concrete turns a route pattern into a path to request.
func concrete(pattern, orderID string) (method, path string) {
	method, path, _ = strings.Cut(pattern, " ")
	path = strings.NewReplacer("{$}", "", "{id}", orderID).Replace(path)
	if strings.Contains(path, "/contests/") || strings.Contains(path, "/credentials/") {
		path = strings.Replace(path, orderID, "1", 1)
	}
	return method, path
}

func TestEveryRouteRefusesWithoutSession(t *testing.T) {
	h := newHarness(t, Config{}, false)
	o := h.submit(`{"ip":"1.1.1.1"}`)
	type probe struct{ method, path string }
	var probes []probe
	for _, rt := range h.console.routes() {
		m, p := concrete(rt.pattern, o.ID)
		probes = append(probes, probe{m, p})
	}
	// Pages that do not exist are not revealed either.
	probes = append(probes, probe{"GET", Prefix + "no-such-page"}, probe{"POST", Prefix + "orders/" + o.ID + "/nonsense"})
	for _, cookie := range []string{"", "forged-session-id"} {
		for _, p := range probes {
			c := h.client()
			if cookie != "" {
				u, _ := url.Parse(h.srv.URL + Prefix)
				c.http.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: cookie, Path: Prefix}})
			}
			switch p.method {
			case "GET":
				a := c.get(p.path)
				if a.status != http.StatusSeeOther || !strings.HasPrefix(a.location(), Prefix+"login?next=") {
					t.Errorf("GET %s without a session (cookie %q): %d to %q, want 303 to the login form", p.path, cookie, a.status, a.location())
				}
				if strings.Contains(a.body, o.Authority.Name) || strings.Contains(a.body, "1.1.1.1") {
					t.Errorf("GET %s without a session shows the order:\n%s", p.path, a.body)
				}
			default:
				form := url.Values{"csrf": {"guessed"}, "target": {"1.1.1.1"}, "reason": {"forged"}, "outcome": {"upheld"}, "id": {"mallory"}, "role": {"operator"}}
				a := c.post(p.path, form, "Sec-Fetch-Site", "same-origin")
				if a.status != http.StatusUnauthorized {
					t.Errorf("POST %s without a session (cookie %q): %d, want 401", p.path, cookie, a.status)
				}
				// Sent from another site it is refused before anything else.
				if a := c.post(p.path, form, "Sec-Fetch-Site", "cross-site"); a.status != http.StatusForbidden {
					t.Errorf("cross-site POST %s without a session: %d, want 403", p.path, a.status)
				}
			}
		}
	}
	if st := h.targetState(o.ID, "1.1.1.1"); st != order.TargetHeld {
		t.Fatalf("posts without a session changed the record: target is %s", st)
	}
	if _, err := h.reg.Authenticate(t.Context(), "mallory"); err == nil {
		t.Fatal("a post without a session created credentials")
	}
}

func TestSessionCookieFlags(t *testing.T) {
	for _, tc := range []struct {
		name      string
		publicURL string
		tls       bool
		secure    bool
	}{
		{"plain http", "", false, false},
		{"https public URL behind a proxy", "https://writ.isp.example", false, true},
		{"TLS", "", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{PublicURL: tc.publicURL}, tc.tls)
			c := h.client()
			page := c.get(Prefix + "login")
			check := func(a answer, name string, wantDeleted bool) {
				t.Helper()
				for _, ck := range (&http.Response{Header: a.header}).Cookies() {
					if ck.Name != name {
						continue
					}
					if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != Prefix || ck.Secure != tc.secure {
						t.Errorf("cookie %s: HttpOnly %v, SameSite %v, Path %q, Secure %v; want HttpOnly, Strict, %s, Secure %v",
							name, ck.HttpOnly, ck.SameSite, ck.Path, ck.Secure, Prefix, tc.secure)
					}
					if deleted := ck.MaxAge < 0; deleted != wantDeleted {
						t.Errorf("cookie %s deleted: %v, want %v", name, deleted, wantDeleted)
					}
					if !wantDeleted && len(ck.Value) < 40 {
						t.Errorf("cookie %s value %q is too short to be unguessable", name, ck.Value)
					}
					return
				}
				t.Errorf("no cookie %s in %v", name, a.header["Set-Cookie"])
			}
			check(page, loginCookie, false)
			a := c.login(h.reviewer)
			check(a, sessionCookie, false)
			check(a, loginCookie, true)
		})
	}
}

func TestLoginRefusals(t *testing.T) {
	h := newHarness(t, Config{}, false)

	c := h.client()
	a := c.tryLogin("writ_not_a_token")
	if a.status != http.StatusUnauthorized || strings.Contains(strings.Join(a.header["Set-Cookie"], ";"), sessionCookie+"=") {
		t.Errorf("unknown token: %d, cookies %v; want 401 and no session", a.status, a.header["Set-Cookie"])
	}
	wantText(t, a, "These credentials are unknown or disabled.")
	if c.get(Prefix+"queue").status != http.StatusSeeOther {
		t.Error("a refused login opened a session")
	}

	// Disabled credentials are refused like unknown ones.
	if err := h.reg.DisablePrincipal(t.Context(), "alice", true, operatorPrincipal); err != nil {
		t.Fatal(err)
	}
	if a := h.client().tryLogin(h.reviewer); a.status != http.StatusUnauthorized {
		t.Errorf("disabled credentials: %d, want 401", a.status)
	}

	// The login form carries a value that must match its cookie: a page
	// elsewhere cannot log a browser in to the forger's session.
	forged := url.Values{"login_form": {"forged"}, "token": {h.operator}}
	if a := h.client().post(Prefix+"login", forged); a.status != http.StatusForbidden {
		t.Errorf("login without the form's cookie: %d, want 403", a.status)
	}
	c = h.client()
	c.get(Prefix + "login")
	if a := c.post(Prefix+"login", forged); a.status != http.StatusForbidden {
		t.Errorf("login with a value that does not match the cookie: %d, want 403", a.status)
	}
	page := h.client()
	form := loginFormField.FindStringSubmatch(page.get(Prefix + "login").body)[1]
	if a := page.post(Prefix+"login", url.Values{"login_form": {form}, "token": {h.operator}}, "Sec-Fetch-Site", "cross-site"); a.status != http.StatusForbidden {
		t.Errorf("cross-site login: %d, want 403", a.status)
	}
	if a := page.post(Prefix+"login", url.Values{"login_form": {form}, "token": {h.operator}}, "Origin", "https://evil.example"); a.status != http.StatusForbidden {
		t.Errorf("login posted from another origin: %d, want 403", a.status)
	}
}

func TestLoginGoesBackOnlyToTheConsole(t *testing.T) {
	h := newHarness(t, Config{}, false)
	for next, want := range map[string]string{
		Prefix + "orders?status=held": Prefix + "orders?status=held",
		"https://evil.example/":       Prefix + "queue",
		"//evil.example" + Prefix:     Prefix + "queue",
		Prefix + "..//evil.example":   Prefix + "queue",
		"/\\evil.example":             Prefix + "queue",
		"":                            Prefix + "queue",
	} {
		c := h.client()
		m := loginFormField.FindStringSubmatch(c.get(Prefix + "login?next=" + url.QueryEscape(next)).body)
		a := c.post(Prefix+"login", url.Values{"login_form": {m[1]}, "token": {h.reviewer}, "next": {next}})
		if a.status != http.StatusSeeOther || a.location() != want {
			t.Errorf("login with next %q: %d to %q, want %q", next, a.status, a.location(), want)
		}
	}
	// A page asked for before logging in is where the login leads.
	c := h.client()
	page := c.get(c.get(Prefix + "check?name=example.com&scope=FR").location())
	form := loginFormField.FindStringSubmatch(page.body)
	next := regexp.MustCompile(`name="next" value="([^"]*)"`).FindStringSubmatch(page.body)
	if form == nil || next == nil {
		t.Fatalf("the login form lacks its fields:\n%s", page.body)
	}
	a := c.post(Prefix+"login", url.Values{"login_form": {form[1]}, "token": {h.reviewer}, "next": {html.UnescapeString(next[1])}})
	if a.location() != Prefix+"check?name=example.com&scope=FR" {
		t.Errorf("after login, sent to %q", a.location())
	}
}

func TestForgedPostsRefused(t *testing.T) {
	h := newHarness(t, Config{PublicURL: "https://writ.isp.example"}, false)
	o := h.submit(`{"fqdn":"motogpstream.me","subdomains":true}`, `{"ip":"1.1.1.1"}`)
	alice := h.client()
	alice.login(h.reviewer)
	other := h.client()
	other.login(h.operator)
	path := Prefix + "orders/" + o.ID + "/release"
	fields := func(csrf string) url.Values {
		v := url.Values{"target": {"1.1.1.1"}, "reason": {"forged"}}
		if csrf != "" {
			v.Set("csrf", csrf)
		}
		return v
	}
	for _, tc := range []struct {
		name    string
		form    url.Values
		headers []string
	}{
		{"no token", fields(""), []string{"Sec-Fetch-Site", "same-origin"}},
		{"a wrong token", fields("not-the-token"), []string{"Sec-Fetch-Site", "same-origin"}},
		{"another session's token", fields(other.csrf), []string{"Sec-Fetch-Site", "same-origin"}},
		{"the token, from another site", fields(alice.csrf), []string{"Sec-Fetch-Site", "cross-site"}},
		{"the token, from a sibling site", fields(alice.csrf), []string{"Sec-Fetch-Site", "same-site"}},
		{"the token, from another origin (old browser)", fields(alice.csrf), []string{"Origin", "https://evil.example"}},
		{"the token, from a null origin", fields(alice.csrf), []string{"Origin", "null"}},
	} {
		if a := alice.post(path, tc.form, tc.headers...); a.status != http.StatusForbidden {
			t.Errorf("post with %s: %d, want 403", tc.name, a.status)
		}
	}
	if st := h.targetState(o.ID, "1.1.1.1"); st != order.TargetHeld {
		t.Fatalf("a forged post changed the record: target is %s", st)
	}
	// The same form from the console itself goes through, also from the
	// public URL's origin when a proxy rewrites the Host header.
	if a := alice.post(path, fields(alice.csrf), "Origin", "https://writ.isp.example"); a.status != http.StatusSeeOther {
		t.Fatalf("genuine post: %d\n%s", a.status, a.body)
	}
	if st := h.targetState(o.ID, "1.1.1.1"); st != order.TargetActive {
		t.Fatalf("genuine release: target is %s", st)
	}
}

func TestLogoutEndsTheSession(t *testing.T) {
	h := newHarness(t, Config{}, false)
	o := h.submit(`{"ip":"1.1.1.1"}`)
	c := h.client()
	c.login(h.reviewer)
	u, _ := url.Parse(h.srv.URL + Prefix)
	var id string
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			id = ck.Value
		}
	}
	csrf := c.csrf

	// Logging out is a form too.
	if a := c.post(Prefix+"logout", url.Values{}); a.status != http.StatusForbidden {
		t.Errorf("logout without the token: %d, want 403", a.status)
	}
	a := c.form(Prefix + "logout")
	if a.status != http.StatusSeeOther || a.location() != Prefix+"login?logged_out=1" {
		t.Fatalf("logout: %d to %q", a.status, a.location())
	}
	if !strings.Contains(strings.Join(a.header["Set-Cookie"], "\n"), sessionCookie+"=; Path=/console/; Max-Age=0") {
		t.Errorf("logout does not clear the cookie: %v", a.header["Set-Cookie"])
	}
	wantText(t, c.follow(a), "You have logged out.")

	// The old session id is worth nothing, even replayed with its token.
	replay := h.client()
	replay.http.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: id, Path: Prefix}})
	if a := replay.get(Prefix + "queue"); a.status != http.StatusSeeOther {
		t.Errorf("old session after logout: %d, want a redirect to login", a.status)
	}
	if a := replay.post(Prefix+"orders/"+o.ID+"/release", url.Values{"csrf": {csrf}, "target": {"1.1.1.1"}, "reason": {"replayed"}}); a.status != http.StatusUnauthorized {
		t.Errorf("old session's form after logout: %d, want 401", a.status)
	}
	if h.console.sessions.count() != 0 {
		t.Errorf("%d sessions left after logout", h.console.sessions.count())
	}
}

func TestSessionsExpire(t *testing.T) {
	h := newHarness(t, Config{IdleTimeout: 10 * time.Minute}, false)
	c := h.client()
	c.login(h.reviewer)
	// Activity keeps a session open...
	for range 3 {
		h.clock.Advance(9 * time.Minute)
		if a := c.get(Prefix + "queue"); a.status != http.StatusOK {
			t.Fatalf("active session: %d", a.status)
		}
	}
	// ...idleness ends it.
	h.clock.Advance(10 * time.Minute)
	if a := c.get(Prefix + "queue"); a.status != http.StatusSeeOther {
		t.Fatalf("idle session: %d, want a redirect to login", a.status)
	}

	// However active, a session ends MaxSessionAge after login.
	c.login(h.reviewer)
	for elapsed := time.Duration(0); elapsed+9*time.Minute < MaxSessionAge; elapsed += 9 * time.Minute {
		h.clock.Advance(9 * time.Minute)
		if a := c.get(Prefix + "queue"); a.status != http.StatusOK {
			t.Fatalf("session %v old: %d", elapsed, a.status)
		}
	}
	h.clock.Advance(9 * time.Minute)
	if a := c.get(Prefix + "queue"); a.status != http.StatusSeeOther {
		t.Fatalf("session older than %v: %d, want a redirect to login", MaxSessionAge, a.status)
	}

	// Expired sessions are forgotten.
	other := h.client()
	other.login(h.operator)
	h.clock.Advance(time.Hour)
	h.console.sessions.sweep()
	if n := h.console.sessions.count(); n != 0 {
		t.Errorf("%d sessions kept after expiry", n)
	}
}

func TestDisabledCredentialsEndTheirSessions(t *testing.T) {
	h := newHarness(t, Config{}, false)
	alice := h.client()
	alice.login(h.reviewer)
	op := h.client()
	op.login(h.operator)
	a := op.follow(op.form(Prefix + "credentials/alice/disable"))
	wantText(t, a, "Credentials of alice disabled")
	if a := alice.get(Prefix + "queue"); a.status != http.StatusSeeOther {
		t.Fatalf("session of disabled credentials: %d, want a redirect to login", a.status)
	}
	if a := h.client().tryLogin(h.reviewer); a.status != http.StatusUnauthorized {
		t.Fatalf("login with disabled credentials: %d", a.status)
	}
}

func TestSecurityHeaders(t *testing.T) {
	h := newHarness(t, Config{}, false)
	h.submit(`{"ip":"1.1.1.1"}`)
	c := h.client()
	c.login(h.reviewer)
	nonces := map[string]bool{}
	for _, path := range []string{Prefix + "login", Prefix + "queue", Prefix + "queue"} {
		a := c.get(path)
		csp := a.header.Get("Content-Security-Policy")
		m := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9_-]+)'; style-src 'nonce-([A-Za-z0-9_-]+)'`).FindStringSubmatch(csp)
		if m == nil || m[1] != m[2] || !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "form-action 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Fatalf("%s: Content-Security-Policy %q", path, csp)
		}
		nonces[m[1]] = true
		// Every style and script element carries the nonce; nothing else
		// on the page may run.
		for _, tag := range regexp.MustCompile(`<(script|style)[^>]*>`).FindAllString(a.body, -1) {
			if !strings.Contains(tag, `nonce="`+m[1]+`"`) {
				t.Errorf("%s: %s without this response's nonce", path, tag)
			}
		}
		if regexp.MustCompile(`\sstyle="|\son[a-z]+="|src="http`).MatchString(a.body) {
			t.Errorf("%s: inline style or event handler attributes, or an external resource", path)
		}
		for k, v := range map[string]string{"Cache-Control": "no-store", "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"} {
			if a.header.Get(k) != v {
				t.Errorf("%s: %s %q, want %q", path, k, a.header.Get(k), v)
			}
		}
	}
	if len(nonces) != 3 {
		t.Errorf("nonces repeat across responses: %v", nonces)
	}
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/console/":                     "/console/",
		"/console/orders/x#contest-1":   "/console/orders/x#contest-1",
		"/console/check?name=a&b=c":     "/console/check?name=a&b=c",
		"/":                             "",
		"/v1/orders":                    "",
		"https://evil.example/console/": "",
		"//evil.example/console/":       "",
		"/console//evil.example":        "",
		"/console/\\evil":               "",
		"/console/\r\nSet-Cookie: x":    "",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}
