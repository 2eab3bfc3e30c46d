package httpgate

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
)

// startProxy runs the standalone gate's plain-HTTP proxy in front of o.
func startProxy(t testing.TB, g *Gate, o *origin) string {
	t.Helper()
	u, _ := url.Parse("http://" + o.addr)
	s, err := NewServer(g, ServerConfig{Listen: "127.0.0.1:0", Origins: Origins{Default: u}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s.ProxyAddr().String()
}

// checkBlocked checks a 451 answer for order id, in language lang.
func checkBlocked(t *testing.T, r response, id, lang string, mention ...string) {
	t.Helper()
	if r.status != http.StatusUnavailableForLegalReasons {
		t.Fatalf("status %d, want 451; body:\n%s", r.status, r.body)
	}
	if got := r.header.Get("Link"); got != `<`+blockedByURL+`>; rel="blocked-by"` {
		t.Errorf("Link %q", got)
	}
	if got := r.header.Get("Content-Language"); got != lang {
		t.Errorf("Content-Language %q, want %q", got, lang)
	}
	if got := r.header.Get("Content-Type"); got != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", got)
	}
	if got := r.header.Get("Vary"); !strings.Contains(got, "Accept-Language") {
		t.Errorf("Vary %q lacks Accept-Language", got)
	}
	cc := r.header.Get("Cache-Control")
	age, ok := strings.CutPrefix(cc, "private, max-age=")
	n, err := strconv.Atoi(age)
	if !ok || err != nil || n < 0 || n > int(DefaultMaxAge/time.Second) {
		t.Errorf("Cache-Control %q, want private with a max-age of at most %v", cc, DefaultMaxAge)
	}
	if r.header.Get("X-Origin") != "" || r.header.Get("Set-Cookie") != "" {
		t.Errorf("origin headers leaked into the 451: %v", r.header)
	}
	body := html.UnescapeString(string(r.body))
	for _, m := range append([]string{id, recordURL(id), blockedByURL, `lang="` + lang + `"`}, mention...) {
		if !strings.Contains(body, m) {
			t.Errorf("page lacks %q:\n%s", m, body)
		}
	}
	if strings.Contains(body, "origin page") {
		t.Error("the page contains the origin's body")
	}
}

func TestProxyBlocksInScopeOnly(t *testing.T) {
	g, _, _ := testGate(t)
	o := startOrigin(t)
	addr := startProxy(t, g, o)
	inFR, outside := clientFrom(frClient, addr), clientFrom(outClient, addr)

	// In France: 451 for the name and its subdomains, whatever the
	// path, and the origin never hears of it.
	for _, u := range []string{"http://www.motogpstream.me/", "http://MotoGPStream.me./watch?x=1", "http://a.b.motogpstream.me:80/large", "http://motogpstream.me/stream"} {
		checkBlocked(t, get(t, inFR, u), "20250328-paris", "en",
			"Tribunal judiciaire de Paris", "Canal+ v. Cloudflare, judgment of 28 March 2025", "Code du sport L.333-10",
			"https://juridiction.example/decision/2025-03-28", "legal@isp.example", "Example ISP", "How to contest")
	}
	if reqs := o.requests(); len(reqs) != 0 {
		t.Fatalf("blocked requests reached the origin: %q", reqs)
	}
	// HEAD gets the headers and no body.
	req, _ := http.NewRequest(http.MethodHead, "http://www.motogpstream.me/", nil)
	resp, err := inFR.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 451 || resp.Header.Get("Link") == "" {
		t.Errorf("HEAD: %d %v", resp.StatusCode, resp.Header)
	}

	// Outside France: the origin's answer, byte for byte.
	direct := clientFrom(outClient, o.addr)
	for _, path := range []string{"/", "/watch?x=1", "/large"} {
		want := get(t, direct, "http://www.motogpstream.me"+path)
		got := get(t, outside, "http://www.motogpstream.me"+path)
		if got.status != want.status || !bytes.Equal(got.body, want.body) {
			t.Fatalf("%s: through the gate %d (%d bytes), straight %d (%d bytes)", path, got.status, len(got.body), want.status, len(want.body))
		}
		if !reflect.DeepEqual(got.header, want.header) {
			t.Errorf("%s: headers through the gate\n%v\nstraight\n%v", path, got.header, want.header)
		}
	}
	if len(o.large) != largeSize {
		t.Fatal("large body changed")
	}
	if !o.sawHost("www.motogpstream.me") {
		t.Error("the origin did not get the client's Host")
	}
	// The Italian order does not apply in France, and vice versa.
	if r := get(t, inFR, "http://calcio.example/"); r.status != http.StatusOK {
		t.Errorf("Italian order applied in France: %d", r.status)
	}
	checkBlocked(t, get(t, clientFrom(itClient, addr), "http://www.calcio.example/"), "20250401-agcom", "en", "AGCOM", "regulator", "Legge 93/2023")

	if g.Metrics.Blocks() != 6 {
		t.Errorf("blocks counted %d, want 6", g.Metrics.Blocks())
	}
}

func TestProxyStreamsUnchanged(t *testing.T) {
	g, _, _ := testGate(t)
	o := startOrigin(t)
	addr := startProxy(t, g, o)
	resp, err := clientFrom(outClient, addr).Get("http://www.motogpstream.me/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("not streamed: length %d, transfer encoding %v", resp.ContentLength, resp.TransferEncoding)
	}
	// The origin writes each chunk only after the client has read the
	// previous one: a gate that buffered would never finish.
	var all bytes.Buffer
	for i := range streamChunks {
		want := fmt.Sprintf("chunk %d of %d\n", i+1, streamChunks)
		got := make([]byte, len(want))
		if _, err := io.ReadFull(resp.Body, got); err != nil {
			t.Fatalf("chunk %d: %v", i+1, err)
		}
		if string(got) != want {
			t.Fatalf("chunk %d: %q, want %q", i+1, got, want)
		}
		all.Write(got)
		if i+1 < streamChunks {
			o.streamNext <- struct{}{}
		}
	}
	if rest, _ := io.ReadAll(resp.Body); len(rest) != 0 {
		t.Errorf("extra bytes after the stream: %q", rest)
	}
}

func TestProxyUpgrade(t *testing.T) {
	g, _, _ := testGate(t)
	o := startOrigin(t)
	addr := startProxy(t, g, o)
	if err := upgradeEcho(outClient, addr, "www.motogpstream.me"); err != nil {
		t.Fatalf("upgrade outside France: %v", err)
	}
	if err := upgradeEcho(frClient, addr, "www.motogpstream.me"); err == nil || !strings.Contains(err.Error(), "451") {
		t.Fatalf("upgrade in France: %v, want a 451", err)
	}
}

func TestProxyURLTargets(t *testing.T) {
	g, _, _ := testGate(t)
	o := startOrigin(t)
	addr := startProxy(t, g, o)
	inFR, outside := clientFrom(frClient, addr), clientFrom(outClient, addr)
	for _, path := range []string{"/live", "/live/", "/live/match-1", "/live?x=y", "/a/../live", "//live", "/./live/x", "/%6Cive", "/live%2F1"} {
		checkBlocked(t, get(t, inFR, "http://news.example"+path), "20250328-paris", "en")
		// The origin's own answer: its page, or its redirect to the clean path.
		if r := get(t, outside, "http://news.example"+path); r.status != http.StatusOK && r.status != http.StatusTemporaryRedirect {
			t.Errorf("%s outside France: %d", path, r.status)
		}
	}
	for _, path := range []string{"/", "/lively", "/sport/live", "/LIVE"} {
		if r := get(t, inFR, "http://news.example"+path); r.status != http.StatusOK || !strings.Contains(string(r.body), "origin page") {
			t.Errorf("%s in France: %d, want the origin's page", path, r.status)
		}
	}
	// Blocked paths never reached the origin: it saw the requests from
	// outside France and the allowed paths from France, nothing else.
	n := 0
	for _, r := range o.requests() {
		if strings.HasPrefix(r, "news.example ") {
			n++
		}
	}
	if n != 9+4 {
		t.Errorf("origin saw %d requests for news.example, want 13: %q", n, o.requests())
	}
	// The target is https://; plain HTTP to the same path is the same
	// resource and is blocked too (above).
	// A host literal in a blocked prefix is blocked too.
	checkBlocked(t, get(t, inFR, "http://198.51.100.7/"), "20250328-paris", "en")
	if r := get(t, outside, "http://198.51.100.7/"); r.status != http.StatusOK {
		t.Errorf("address host outside France: %d", r.status)
	}
}

func TestRevokeLiftsWithoutRestart(t *testing.T) {
	g, holder, orders := testGate(t)
	o := startOrigin(t)
	addr := startProxy(t, g, o)
	inFR := clientFrom(frClient, addr)
	checkBlocked(t, get(t, inFR, "http://www.motogpstream.me/"), "20250328-paris", "en")

	now := time.Now()
	revoked := orders[0].Clone()
	revoked.Disposition = "revoked"
	revoked.DispositionAt = &now
	holder.Store(policy.Compile([]*order.Order{revoked, orders[1]}, now, 8, nil))
	if r := get(t, inFR, "http://www.motogpstream.me/"); r.status != http.StatusOK || !strings.Contains(string(r.body), "origin page") {
		t.Fatalf("after revocation: %d %s", r.status, r.body)
	}
	if g.AppliedVersion() != 8 {
		t.Errorf("applied version %d, want 8", g.AppliedVersion())
	}
}

func TestSpoofedForwardedFor(t *testing.T) {
	g, _, _ := testGate(t)
	o := startOrigin(t)
	addr := startProxy(t, g, o)
	const u = "http://www.motogpstream.me/"
	// An untrusted client's header changes nothing, either way.
	if r := get(t, clientFrom(outClient, addr), u, "X-Forwarded-For", frClient); r.status != http.StatusOK {
		t.Errorf("outside client claiming France: %d", r.status)
	}
	checkBlocked(t, get(t, clientFrom(frClient, addr), u, "X-Forwarded-For", outClient, "Forwarded", "for="+outClient), "20250328-paris", "en")
	// A trusted proxy's header is believed: the right-most address that
	// is not a trusted proxy is the client.
	proxy := clientFrom(proxyClient, addr)
	checkBlocked(t, get(t, proxy, u, "X-Forwarded-For", outClient+", "+frClient), "20250328-paris", "en")
	if r := get(t, proxy, u, "X-Forwarded-For", frClient+", "+outClient); r.status != http.StatusOK {
		t.Errorf("trusted proxy for an outside client (France claimed further left): %d", r.status)
	}
	// The origin learns the chain: the trusted proxy's, then the proxy.
	reqs := o.requests()
	o.mu.Lock()
	last := o.xff[len(o.xff)-1]
	o.mu.Unlock()
	if want := frClient + ", " + outClient + ", " + proxyClient; last != want || len(reqs) != 2 {
		t.Errorf("origin saw X-Forwarded-For %q (%d requests), want %q", last, len(reqs), want)
	}
}

func TestAcceptLanguage(t *testing.T) {
	g, _, _ := testGate(t)
	o := startOrigin(t)
	addr := startProxy(t, g, o)
	inFR := clientFrom(frClient, addr)
	for _, tc := range []struct{ header, lang, phrase string }{
		{"", "en", "Unavailable for legal reasons"},
		{"fr-FR,fr;q=0.9,en;q=0.8", "fr", "Indisponible pour raisons juridiques"},
		{"de-DE, it;q=0.5, en;q=0.4", "it", "Non disponibile per motivi legali"},
		{"en;q=0.2, fr-CA;q=0.7", "fr", "juridiction"},
		{"*;q=0.1, it;q=0.05", "en", "court"},
		{"de", "en", "How to contest"},
		{"fr;q=0, it;q=0.1", "it", "Come contestare"},
		{"it-IT", "it", "autorità giudiziaria"},
	} {
		r := get(t, inFR, "http://www.motogpstream.me/", "Accept-Language", tc.header)
		checkBlocked(t, r, "20250328-paris", tc.lang, tc.phrase)
	}
}

func TestCacheControlBoundedByExpiry(t *testing.T) {
	g, _, _ := testGate(t)
	o := startOrigin(t)
	addr := startProxy(t, g, o)
	r := get(t, clientFrom(itClient, addr), "http://calcio.example/")
	age, _ := strings.CutPrefix(r.header.Get("Cache-Control"), "private, max-age=")
	if n, err := strconv.Atoi(age); err != nil || n > 30 {
		t.Errorf("Cache-Control %q for an order expiring in 30s", r.header.Get("Cache-Control"))
	}
}

func TestNoOrigin(t *testing.T) {
	g, _, _ := testGate(t)
	o := startOrigin(t)
	u, _ := url.Parse("http://" + o.addr)
	s, err := NewServer(g, ServerConfig{Listen: "127.0.0.1:0", Origins: Origins{ByHost: map[string]*url.URL{"Shop.Example.": u}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	c := clientFrom(outClient, s.ProxyAddr().String())
	if r := get(t, c, "http://shop.example/"); r.status != http.StatusOK {
		t.Errorf("routed host: %d", r.status)
	}
	if r := get(t, c, "http://other.example/"); r.status != http.StatusMisdirectedRequest {
		t.Errorf("unrouted host: %d, want 421", r.status)
	}
	// A blocked host is refused even when no origin is configured for it.
	checkBlocked(t, get(t, clientFrom(frClient, s.ProxyAddr().String()), "http://motogpstream.me/"), "20250328-paris", "en")
}
