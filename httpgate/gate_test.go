package httpgate

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/writ-project/writ/policy"
)

func TestDecide(t *testing.T) {
	g, _, _ := testGate(t)
	fr, out, itc := netip.MustParseAddr(frClient), netip.MustParseAddr(outClient), netip.MustParseAddr(itClient)
	for _, tc := range []struct {
		name   string
		req    Request
		order  string
		target Target
	}{
		{"name", Request{Host: "motogpstream.me", Path: "/", Client: fr}, "20250328-paris", TargetName},
		{"subdomain, port, case, dot", Request{Host: "WWW.MotoGPStream.me.:8080", Path: "/", Client: fr}, "20250328-paris", TargetName},
		{"outside", Request{Host: "motogpstream.me", Path: "/", Client: out}, "", TargetNone},
		{"unknown client", Request{Host: "motogpstream.me", Path: "/"}, "", TargetNone},
		{"other jurisdiction", Request{Host: "motogpstream.me", Path: "/", Client: itc}, "", TargetNone},
		{"sni", Request{Host: "shop.example", SNI: "www.motogpstream.me", Path: "/", Client: fr}, "20250328-paris", TargetName},
		{"url", Request{Host: "news.example", Path: "/live/x", Client: fr}, "20250328-paris", TargetURL},
		{"url on a non-default port", Request{Host: "news.example:8443", Path: "/live", Client: fr}, "", TargetNone},
		{"url sibling", Request{Host: "news.example", Path: "/lively", Client: fr}, "", TargetNone},
		{"url with its query", Request{Host: "news.example", Path: "/watch", Query: "t=3&v=abc", Client: fr}, "20250328-paris", TargetURL},
		{"url with another query", Request{Host: "news.example", Path: "/watch", Query: "v=abd", Client: fr}, "", TargetNone},
		{"url of a query target, no query", Request{Host: "news.example", Path: "/watch", Client: fr}, "", TargetNone},
		{"url with its query, outside", Request{Host: "news.example", Path: "/watch", Query: "v=abc", Client: out}, "", TargetNone},
		{"address host", Request{Host: "198.51.100.9", Path: "/", Client: fr}, "20250328-paris", TargetAddr},
		{"ipv6 host", Request{Host: "[2001:db8::1]:443", Path: "/", Client: fr}, "", TargetNone},
		{"mapped client", Request{Host: "calcio.example", Path: "/", Client: netip.MustParseAddr("::ffff:" + itClient)}, "20250401-agcom", TargetName},
	} {
		d := g.Decide(tc.req)
		got := ""
		if d.Order != nil {
			got = d.Order.ID
		}
		if got != tc.order || d.Target != tc.target || d.Version != 7 {
			t.Errorf("%s: order %q target %v version %d, want %q %v 7", tc.name, got, d.Target, d.Version, tc.order, tc.target)
		}
	}
}

func TestSplitHost(t *testing.T) {
	for in, want := range map[string][2]string{
		"example.com":           {"example.com", ""},
		"Example.COM.:8080":     {"example.com", "8080"},
		"[2001:db8::1]:443":     {"2001:db8::1", "443"},
		"[2001:DB8::1]":         {"2001:db8::1", ""},
		"2001:db8::1":           {"2001:db8::1", ""},
		"192.0.2.1:80":          {"192.0.2.1", "80"},
		"":                      {"", ""},
		"motogpstream.me.":      {"motogpstream.me", ""},
		"xn--bcher-kva.example": {"xn--bcher-kva.example", ""},
	} {
		h, p := splitHost(in)
		if h != want[0] || p != want[1] {
			t.Errorf("splitHost(%q) = %q, %q; want %q, %q", in, h, p, want[0], want[1])
		}
	}
}

func TestCanonicalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/live":         "/live",
		"":              "/",
		"live":          "/live",
		"/live/":        "/live/",
		"//live":        "/live",
		"/a/../live":    "/live",
		"/../live":      "/live",
		"/./live/.":     "/live/",
		"/live/x/..":    "/live/",
		"/live now":     "/live%20now",
		"/caf\u00e9":    "/caf%C3%A9",
		"/a;b=c,d@e:f":  "/a;b=c,d@e:f",
		"/live?":        "/live%3F",
		"/a/b//c/../d/": "/a/b/d/",
	} {
		if got := policy.CanonicalPath(in); got != want {
			t.Errorf("policy.CanonicalPath(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { policy.CanonicalPath("/live/match-1") }); n != 0 {
		t.Errorf("a clean path allocates %v times", n)
	}
}

func TestClientAddr(t *testing.T) {
	g, _, _ := testGate(t)
	gf, err := New(Config{BlockedBy: blockedByURL, ClientIPHeader: "forwarded",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::ffff:192.0.2.0/120")}, Logger: quiet}, g.policy, g.scoper)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		g      *Gate
		remote string
		header map[string][]string
		want   string
	}{
		{g, "127.0.0.3:1234", nil, outClient},
		{g, "[::ffff:127.0.0.3]:1234", nil, outClient},
		{g, "127.0.0.3:1234", map[string][]string{"X-Forwarded-For": {frClient}}, outClient},
		{g, proxyClient + ":1", nil, proxyClient},
		{g, proxyClient + ":1", map[string][]string{"X-Forwarded-For": {frClient}}, frClient},
		{g, proxyClient + ":1", map[string][]string{"X-Forwarded-For": {"192.0.2.9, " + frClient + ", " + proxyClient}}, frClient},
		{g, proxyClient + ":1", map[string][]string{"X-Forwarded-For": {"192.0.2.9", frClient + ":5555"}}, frClient},
		{g, proxyClient + ":1", map[string][]string{"X-Forwarded-For": {"[2001:db8::7]:80"}}, "2001:db8::7"},
		{g, proxyClient + ":1", map[string][]string{"X-Forwarded-For": {proxyClient}}, proxyClient},
		{g, proxyClient + ":1", map[string][]string{"X-Forwarded-For": {"garbage"}}, "invalid IP"},
		// The proxy reads X-Forwarded-For only: a Forwarded header the
		// proxy passed on from the client is ignored.
		{g, proxyClient + ":1", map[string][]string{"Forwarded": {"for=" + frClient}}, proxyClient},
		{gf, "10.1.2.3:1", map[string][]string{"Forwarded": {`for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711"`}}, "2001:db8:cafe::17"},
		{gf, "10.1.2.3:1", map[string][]string{"Forwarded": {"for=" + frClient, "for=10.9.9.9"}}, frClient},
		{gf, "10.1.2.3:1", map[string][]string{"Forwarded": {"for=unknown"}}, "invalid IP"},
		{gf, "10.1.2.3:1", map[string][]string{"Forwarded": {"for=_hidden, for=10.0.0.1"}}, "invalid IP"},
		{gf, "10.1.2.3:1", map[string][]string{"Forwarded": {"proto=https"}}, "invalid IP"},
		{gf, "192.0.2.9:1", map[string][]string{"Forwarded": {"for=" + frClient}}, frClient},
		{gf, "10.1.2.3:1", map[string][]string{"X-Forwarded-For": {frClient}}, "10.1.2.3"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.remote
		r.Header = tc.header
		if got := tc.g.ClientAddr(r).String(); got != tc.want {
			t.Errorf("from %s with %v: %s, want %s", tc.remote, tc.header, got, tc.want)
		}
	}
}

func TestNegotiate(t *testing.T) {
	for header, want := range map[string]string{
		"":                         "en",
		"fr":                       "fr",
		"FR-be":                    "fr",
		"it-CH;q=0.8, fr;q=0.9":    "fr",
		"de, it;q=0.1":             "it",
		"de":                       "en",
		"fr, it":                   "fr",
		"it, fr":                   "it",
		"*":                        "en",
		"en;q=0, *;q=0.5":          "fr",
		"*;q=0.1, it;q=0.05":       "en",
		"en;q=0, fr;q=0":           "en", // nothing acceptable: the default rather than no page
		"fr;q=bogus, it":           "it",
		"fr;q=2, it;q=0.5":         "it",
		" fr ; q=0.7 , it ; q=0.6": "fr",
	} {
		if got := languages[negotiate(header)].tag; got != want {
			t.Errorf("negotiate(%q) = %s, want %s", header, got, want)
		}
	}
}

func TestDecisionHandler(t *testing.T) {
	g, _, _ := testGate(t)
	h := g.DecisionHandler()
	do := func(path, remote string, header ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.RemoteAddr = remote
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	proxy := proxyClient + ":4000"
	nginx := func(host, uri, xff string) []string {
		return []string{"X-Original-Host", host, "X-Original-URI", uri, "X-Forwarded-For", xff}
	}

	// nginx auth_request: 204 or 403.
	if w := do("/auth", proxy, nginx("www.motogpstream.me", "/watch?x=1", outClient)...); w.Code != http.StatusNoContent {
		t.Errorf("auth outside France: %d", w.Code)
	}
	w := do("/auth", proxy, nginx("www.motogpstream.me", "/watch?x=1", frClient)...)
	if w.Code != http.StatusForbidden || w.Header().Get(HeaderOrder) != "20250328-paris" || w.Body.Len() != 0 {
		t.Errorf("auth in France: %d %v %q", w.Code, w.Header(), w.Body)
	}
	if w := do("/auth", proxy, nginx("news.example", "/live%2Fx?y", frClient)...); w.Code != http.StatusForbidden {
		t.Errorf("auth of an encoded URL target path: %d", w.Code)
	}
	if w := do("/auth", proxy, nginx("news.example", "/lively", frClient)...); w.Code != http.StatusNoContent {
		t.Errorf("auth of a sibling path: %d", w.Code)
	}
	// A URL target with a query: the proxy's URI carries it.
	if w := do("/auth", proxy, nginx("news.example", "/watch?v=abc&t=3", frClient)...); w.Code != http.StatusForbidden {
		t.Errorf("auth of the query a URL target names: %d", w.Code)
	}
	if w := do("/auth", proxy, nginx("news.example", "/watch?v=other", frClient)...); w.Code != http.StatusNoContent {
		t.Errorf("auth of another query on a URL target's path: %d", w.Code)
	}
	// From an untrusted peer, the client address header is ignored.
	if w := do("/auth", outClient+":1", nginx("www.motogpstream.me", "/", frClient)...); w.Code != http.StatusNoContent {
		t.Errorf("auth from an untrusted peer claiming France: %d", w.Code)
	}

	// The page nginx fetches after a 403.
	w = do("/blocked", proxy, append(nginx("www.motogpstream.me", "/watch", frClient), "Accept-Language", "fr")...)
	r := response{w.Code, w.Header(), w.Body.Bytes()}
	checkBlocked(t, r, "20250328-paris", "fr", "Tribunal judiciaire de Paris")
	if w := do("/blocked", proxy, nginx("www.motogpstream.me", "/watch", outClient)...); w.Code != http.StatusServiceUnavailable || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("page for a request no longer blocked: %d %v", w.Code, w.Header())
	}

	// Caddy forward_auth: 200, or the 451 itself.
	caddy := func(host, uri, xff string) []string {
		return []string{"X-Forwarded-Host", host, "X-Forwarded-Uri", uri, "X-Forwarded-For", xff, "X-Forwarded-Method", "GET"}
	}
	if w := do("/forward-auth", proxy, caddy("www.motogpstream.me", "/", outClient)...); w.Code != http.StatusOK {
		t.Errorf("forward_auth outside France: %d", w.Code)
	}
	w = do("/forward-auth", proxy, caddy("www.motogpstream.me", "/", frClient)...)
	checkBlocked(t, response{w.Code, w.Header(), w.Body.Bytes()}, "20250328-paris", "en")

	w = do("/healthz", proxy)
	var health struct {
		Version uint64 `json:"policy_version"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &health); err != nil || health.Version != 7 {
		t.Errorf("healthz: %s", w.Body)
	}

	// Metrics: decisions by endpoint, blocks by scope; the page fetch is
	// not a second block.
	m := gather(t, g.Metrics)
	for series, want := range map[string]float64{
		`writ_gate_requests_total{endpoint="auth_request"}`: 7,
		`writ_gate_requests_total{endpoint="forward_auth"}`: 2,
		`writ_gate_requests_total{endpoint="proxy"}`:        0,
		`writ_gate_blocks_total{scope="FR"}`:                4,
		`writ_gate_blocks_by_target_total{target="name"}`:   2,
		`writ_gate_blocks_by_target_total{target="url"}`:    2,
		`writ_gate_policy_version`:                          7,
		`writ_gate_order_propagation_seconds_count`:         0,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
}

// gather collects c through a pedantic registry (which checks the
// metrics are consistent) into "name{label="value"}" → value.
func gather(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+strconv.Quote(l.GetValue()))
			}
			name := mf.GetName()
			if len(labels) > 0 {
				name += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[name] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[name] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[name+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestPropagationAndOrderCounters(t *testing.T) {
	now := time.Now()
	orders := testOrders(now)
	counters := &policy.CounterSet{}
	counters.For("20250328-paris").Acknowledged(now.Add(-50 * time.Millisecond))
	holder := policy.NewHolder(policy.Compile(orders, now, 1, counters))
	g, err := New(Config{BlockedBy: blockedByURL, Logger: quiet}, holder, testResolver(t))
	if err != nil {
		t.Fatal(err)
	}
	h := g.Middleware(http.NotFoundHandler())
	for range 3 {
		r := httptest.NewRequest(http.MethodGet, "http://motogpstream.me/", nil)
		r.RemoteAddr = frClient + ":1"
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	if got := counters.For("20250328-paris").Blocks.Load(); got != 3 {
		t.Errorf("order blocks %d, want 3", got)
	}
	if got := gather(t, g.Metrics)["writ_gate_order_propagation_seconds_count"]; got != 1 {
		t.Errorf("propagation observations %v, want 1 (the first block only)", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg     Config
		mention string
	}{
		{Config{}, "blocked_by"},
		{Config{BlockedBy: "isp.example"}, `"isp.example"`},
		{Config{BlockedBy: blockedByURL, ClientIPHeader: "X-Real-IP"}, "client_ip_header"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("Validate(%+v) = %v, want an error mentioning %s", tc.cfg, err, tc.mention)
		}
	}
}
