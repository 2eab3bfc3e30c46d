package api

// The Guard in front of a whole node: rate limits per client address on
// every public route, failed credentials counted, contests limited per
// hour; all with an injected clock, and every answer checked against
// openapi.yaml.

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/writ-project/writ/access"
)

// principal creates credentials and returns the token.
func (n *node) principal(t *testing.T, id string, role access.Role, authority string) string {
	t.Helper()
	token, err := n.reg.CreatePrincipal(t.Context(), access.Principal{ID: id, Role: role, Authority: authority}, operator)
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// wantTooMany checks a 429: Retry-After, and the API's error body.
func wantTooMany(t *testing.T, c *client, path string, retryAfter string) {
	t.Helper()
	code, data, h := c.doHeader("GET", path, nil)
	if code != http.StatusTooManyRequests {
		t.Fatalf("GET %s: status %d, want 429: %s", path, code, data)
	}
	if got := h.Get("Retry-After"); got != retryAfter {
		t.Errorf("GET %s: Retry-After %q, want %q", path, got, retryAfter)
	}
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET %s: Content-Type %q", path, ct)
	}
	if e := decode[errorBody](t, data); !strings.Contains(e.Error, "too many requests from this address") || !strings.Contains(e.Error, "try again in "+retryAfter+" s") {
		t.Errorf("GET %s: error %q", path, e.Error)
	}
}

func TestGuardLimitsPublicRoutes(t *testing.T) {
	clock := newFakeClock()
	n := newNode(t, RateLimit{PerSecond: 1, Burst: 3, Now: clock.Now})
	o := n.submit(t, fqdn("motogpstream.me"))
	n.syncLedger(t)
	pub, op := n.client(t, ""), n.client(t, testToken)

	// The allowance is the address's, whatever the route: the API, the
	// public record, the ledger.
	pub.want(http.StatusOK, "GET", "/v1/check?name=motogpstream.me&scope=FR", nil)
	pub.want(http.StatusOK, "GET", "/orders/"+o.ID, nil)
	pub.want(http.StatusOK, "GET", "/v1/ledger/proof/inclusion?index=0", nil)
	wantTooMany(t, pub, "/v1/orders", "1")
	wantTooMany(t, pub, "/", "1")
	wantTooMany(t, pub, "/v1/ledger/checkpoint", "1")
	// Liveness is never refused.
	for range 5 {
		pub.want(http.StatusOK, "GET", "/healthz", nil)
	}
	// An address out of allowance is refused before its credentials are
	// looked up, good or bad.
	lookups := n.auth.lookups.Load()
	wantTooMany(t, op, "/v1/orders", "1")
	if got := n.auth.lookups.Load(); got != lookups {
		t.Errorf("%d credential lookups for an address out of allowance", got-lookups)
	}

	// A second later one token is back. Credentials that authenticate do
	// not spend it; the next anonymous request does.
	clock.Advance(time.Second)
	for range 3 {
		op.want(http.StatusOK, "GET", "/v1/orders", nil)
	}
	op.want(http.StatusCreated, "POST", "/v1/orders", courtOrder(fqdn("other.example")))
	pub.want(http.StatusOK, "GET", "/v1/orders/"+o.ID, nil)
	wantTooMany(t, pub, "/v1/orders/"+o.ID, "1")

	// Half a second short of a token: Retry-After rounds up.
	clock.Advance(500 * time.Millisecond)
	wantTooMany(t, pub, "/v1/orders", "1")

	// The refusals are counted, and the addresses remembered shown.
	clock.Advance(time.Second)
	_, data := op.do("GET", "/metrics", nil)
	if got := metricValue(t, string(data), `writ_http_rate_limited_total{limit="requests"}`); got != 6 {
		t.Errorf("writ_http_rate_limited_total{limit=\"requests\"} = %v, want 6", got)
	}
	if got := metricValue(t, string(data), `writ_http_rate_limited_total{limit="contests"}`); got != 0 {
		t.Errorf("contest refusals %v, want 0", got)
	}
	if got := metricValue(t, string(data), `writ_http_rate_limit_clients{limit="requests"}`); got != 1 {
		t.Errorf("writ_http_rate_limit_clients = %v, want 1", got)
	}
}

func TestGuardCountsFailedCredentials(t *testing.T) {
	clock := newFakeClock()
	n := newNode(t, RateLimit{PerSecond: 1, Burst: 3, Now: clock.Now})
	bad := n.client(t, "writ_"+strings.Repeat("a", 52))
	op := n.client(t, testToken)
	for range 2 {
		code, data, h := bad.doHeader("GET", "/v1/orders", nil)
		if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("bad token: %d %v %s", code, h, data)
		}
	}
	// A malformed header counts too, without a lookup.
	req, err := http.NewRequest("GET", n.url+"/v1/ledger/key", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Basic b3BlcmF0b3I6c2VjcmV0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("Basic credentials: status %d, want 401", resp.StatusCode)
	}
	if got := n.auth.lookups.Load(); got != 2 {
		t.Fatalf("%d lookups, want 2", got)
	}
	// The allowance is spent: guesses stop reaching the store.
	for range 5 {
		code, data, _ := bad.doHeader("POST", "/v1/orders", courtOrder(fqdn("x.example")))
		if code != http.StatusTooManyRequests {
			t.Fatalf("guess after the allowance: %d %s", code, data)
		}
	}
	wantTooMany(t, op, "/v1/principals", "1")
	if got := n.auth.lookups.Load(); got != 2 {
		t.Errorf("%d lookups once out of allowance, want still 2", got)
	}
	clock.Advance(time.Second)
	op.want(http.StatusOK, "GET", "/v1/principals", nil)
	_, data := op.do("GET", "/metrics", nil)
	if got := metricValue(t, string(data), "writ_http_authentication_failures_total"); got != 3 {
		t.Errorf("writ_http_authentication_failures_total = %v, want 3", got)
	}
}

func TestGuardLimitsContestsPerHour(t *testing.T) {
	clock := newFakeClock()
	// Requests unlimited, contests two an hour; the API's own default of
	// ten an hour gives way to the guard's.
	n := newNode(t, RateLimit{ContestsPerHour: 2, Now: clock.Now})
	o := n.submit(t, fqdn("motogpstream.me"))
	pub := n.client(t, "")
	body := map[string]any{"grounds": "This order blocks my legitimate site.", "contact": map[string]string{"name": "A", "email": "a@example.org"}}
	path := "/v1/orders/" + o.ID + "/contests"
	pub.want(http.StatusCreated, "POST", path, body)
	pub.want(http.StatusCreated, "POST", path, body)
	code, data, h := pub.doHeader("POST", path, body)
	if code != http.StatusTooManyRequests || h.Get("Retry-After") != "1800" || !strings.Contains(string(data), "at most 2 an hour") {
		t.Fatalf("third contest: %d, Retry-After %q: %s", code, h.Get("Retry-After"), data)
	}
	// A malformed filing spends a contest too: it is counted before it is read.
	clock.Advance(30 * time.Minute)
	pub.want(http.StatusBadRequest, "POST", path, map[string]any{"grounds": "short"})
	pub.want(http.StatusTooManyRequests, "POST", path, body)
	clock.Advance(30 * time.Minute)
	pub.want(http.StatusCreated, "POST", path, body)
	// Reading is not limited by the contest allowance.
	for range 20 {
		pub.want(http.StatusOK, "GET", path, nil)
	}
	_, data = n.client(t, testToken).do("GET", "/metrics", nil)
	if got := metricValue(t, string(data), `writ_http_rate_limited_total{limit="contests"}`); got != 2 {
		t.Errorf("contest refusals %v, want 2", got)
	}
	if got := metricValue(t, string(data), `writ_http_rate_limited_total{limit="requests"}`); got != 0 {
		t.Errorf("request refusals %v with request limits off", got)
	}
}

func TestGuardOff(t *testing.T) {
	n := newNode(t, RateLimit{})
	o := n.submit(t, fqdn("motogpstream.me"))
	pub := n.client(t, "")
	for range 50 {
		pub.want(http.StatusOK, "GET", "/v1/check?name=motogpstream.me&scope=FR", nil)
	}
	body := map[string]any{"grounds": "This order blocks my legitimate site.", "contact": map[string]string{"name": "A", "email": "a@example.org"}}
	for range DefaultContestsPerHour + 2 {
		pub.want(http.StatusCreated, "POST", "/v1/orders/"+o.ID+"/contests", body)
	}
	// Still authenticated, limits or not.
	n.client(t, "nope").want(http.StatusUnauthorized, "GET", "/v1/orders", nil)
}

// TestGuardBehindProxy: behind a trusted proxy each client has its own
// allowance, named in X-Forwarded-For or, when so configured, in
// Forwarded (RFC 7239); an untrusted peer's header is ignored.
func TestGuardBehindProxy(t *testing.T) {
	for _, tc := range []struct {
		trusted bool
		header  string
	}{{true, "X-Forwarded-For"}, {false, "X-Forwarded-For"}, {true, "Forwarded"}, {false, "Forwarded"}} {
		trusted := tc.trusted
		t.Run(fmt.Sprint(tc.header, " trusted=", trusted), func(t *testing.T) {
			clock := newFakeClock()
			rl := RateLimit{PerSecond: 1, Burst: 1, Now: clock.Now, ClientIPHeader: tc.header}
			if trusted {
				rl.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
			}
			n := newNode(t, rl)
			get := func(xff string) int {
				req, err := http.NewRequest("GET", n.url+"/v1/authorities", nil)
				if err != nil {
					t.Fatal(err)
				}
				if tc.header == "Forwarded" {
					// The other header, which the proxy would pass on
					// from the client untouched, is not read.
					req.Header.Set("X-Forwarded-For", "203.0.113.99")
					req.Header.Set("Forwarded", "for="+xff+";proto=https")
				} else {
					req.Header.Set("X-Forwarded-For", xff)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			if got := get("198.51.100.1"); got != http.StatusOK {
				t.Fatalf("first client: %d", got)
			}
			if got := get("198.51.100.1"); got != http.StatusTooManyRequests {
				t.Errorf("first client again: %d, want 429", got)
			}
			want := http.StatusOK
			if !trusted {
				want = http.StatusTooManyRequests
			}
			if got := get("198.51.100.2"); got != want {
				t.Errorf("second client: %d, want %d", got, want)
			}
		})
	}
}

// TestAPIHeaders: every answer of the API says not to sniff, frame or
// run it, and answers to credentials are not to be stored.
func TestAPIHeaders(t *testing.T) {
	n := newNode(t, DefaultRateLimit())
	for _, tc := range []struct {
		method, path, token string
		body                any
		noStore             bool
	}{
		{"GET", "/v1/orders", "", nil, false},
		{"GET", "/v1/openapi.yaml", "", nil, false},
		{"GET", "/metrics", "", nil, false},
		{"GET", "/v1/orders/nope", "", nil, false},
		{"GET", "/v1/orders", testToken, nil, true},
		{"POST", "/v1/principals", testToken, map[string]string{"id": "rev-bob", "role": "reviewer"}, true},
		{"GET", "/v1/principals", "nope", nil, true},
	} {
		t.Run(tc.method+" "+tc.path+" "+tc.token, func(t *testing.T) {
			_, _, h := n.client(t, tc.token).doHeader(tc.method, tc.path, tc.body)
			if h.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
				!strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") || h.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("headers %v", h)
			}
			if got := h.Get("Cache-Control") == "no-store"; got != tc.noStore {
				t.Errorf("Cache-Control %q, want no-store: %v", h.Get("Cache-Control"), tc.noStore)
			}
		})
	}
}
