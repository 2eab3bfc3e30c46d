package httpgate

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// Origins says where the standalone gate sends the requests it allows.
type Origins struct {
	// Default receives requests for hosts not in ByHost; nil for none.
	Default *url.URL
	// ByHost maps a host (lower case, without port) to its origin.
	ByHost map[string]*url.URL
}

// ParseOrigin parses an origin URL: http:// or https://, a host, and
// nothing after the path.
func ParseOrigin(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("origin %q: want http://host[:port][/path] or https://…", s)
	}
	return u, nil
}

// NewTransport returns the transport the standalone gate uses to reach
// origins. It never asks for compression on the client's behalf: a body
// the transport decompressed would not be the origin's bytes.
func NewTransport() *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// Proxy returns the standalone gate's handler: the gate's middleware in
// front of a reverse proxy (net/http/httputil) to the origins. Allowed
// requests reach their origin with the Host the client sent, and the
// origin's answer reaches the client unchanged, streamed as it comes;
// protocol upgrades (WebSocket) are passed through. transport nil means
// NewTransport().
func (g *Gate) Proxy(origins Origins, transport http.RoundTripper) http.Handler {
	if transport == nil {
		transport = NewTransport()
	}
	build := func(target *url.URL) *httputil.ReverseProxy {
		return &httputil.ReverseProxy{
			Rewrite:   func(pr *httputil.ProxyRequest) { g.rewrite(pr, target) },
			Transport: transport,
			ErrorLog:  slog.NewLogLogger(g.cfg.Logger.Handler(), slog.LevelDebug),
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				g.Metrics.originErrors.Add(1)
				g.cfg.Logger.Warn("origin unreachable", "origin", target.Host, "host", r.Host, "err", err)
				http.Error(w, "The origin server did not answer.", http.StatusBadGateway)
			},
		}
	}
	var def http.Handler
	if origins.Default != nil {
		def = build(origins.Default)
	}
	byHost := make(map[string]http.Handler, len(origins.ByHost))
	for h, u := range origins.ByHost {
		byHost[strings.TrimSuffix(strings.ToLower(h), ".")] = build(u)
	}
	route := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _ := splitHost(r.Host)
		p, ok := byHost[host]
		if !ok {
			p = def
		}
		if p == nil {
			http.Error(w, "This gateway fronts no origin for "+host+".", http.StatusMisdirectedRequest)
			return
		}
		p.ServeHTTP(w, r)
	})
	return g.Middleware(route)
}

// rewrite prepares the request to the origin: the origin's address, the
// client's Host, and the X-Forwarded headers. Those the client sent are
// kept only when it is a trusted proxy; otherwise they are replaced, so
// the origin is not misled by what a client claims either.
func (g *Gate) rewrite(pr *httputil.ProxyRequest, target *url.URL) {
	pr.SetURL(target)
	pr.Out.Host = pr.In.Host
	peer := remoteAddr(pr.In.RemoteAddr)
	if g.isTrusted(peer) {
		for _, h := range []string{"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "Forwarded"} {
			if v, ok := pr.In.Header[h]; ok {
				pr.Out.Header[h] = v
			}
		}
	}
	if peer.IsValid() {
		if prior := pr.Out.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			pr.Out.Header.Set("X-Forwarded-For", strings.Join(prior, ", ")+", "+peer.String())
		} else {
			pr.Out.Header.Set("X-Forwarded-For", peer.String())
		}
	}
	if pr.Out.Header.Get("X-Forwarded-Host") == "" {
		pr.Out.Header.Set("X-Forwarded-Host", pr.In.Host)
	}
	if pr.Out.Header.Get("X-Forwarded-Proto") == "" {
		proto := "http"
		if pr.In.TLS != nil {
			proto = "https"
		}
		pr.Out.Header.Set("X-Forwarded-Proto", proto)
	}
}
