package httpgate

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
)

// Headers by which a proxy tells the decision service which request it
// asks about. nginx sets the X-Original ones as the README shows; Caddy's
// forward_auth sends the X-Forwarded ones on its own.
const (
	HeaderOriginalHost  = "X-Original-Host"
	HeaderOriginalURI   = "X-Original-URI"
	HeaderForwardedHost = "X-Forwarded-Host"
	HeaderForwardedURI  = "X-Forwarded-Uri"
	// HeaderOrder carries the id of the blocking order on a refusal.
	HeaderOrder = "X-Writ-Order"
)

// DecisionHandler serves the decision service that reverse proxies in
// front of origins call before passing a request on:
//
//   - /auth for nginx auth_request: 204 to allow, 403 to block (the only
//     refusal auth_request understands); nginx then fetches the page
//     from /blocked (see the README).
//   - /blocked: the 451 page for the request described by the headers.
//   - /forward-auth for Caddy forward_auth: 200 to allow; to block, the
//     451 page itself, which Caddy hands to the client.
//   - /healthz: the policy version decided with, as JSON.
//
// The request is described by X-Original-Host and X-Original-URI, or
// X-Forwarded-Host and X-Forwarded-Uri, or else is the request itself;
// the client is found as for every request (ClientAddr), so the proxy's
// address must be among the trusted proxies. Listen where only the
// proxies reach it.
func (g *Gate) DecisionHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/auth", func(w http.ResponseWriter, r *http.Request) {
		g.Metrics.requests[endpointAuth].Add(1)
		d := g.decideForProxy(r)
		w.Header().Set("Cache-Control", "no-store")
		if !d.Blocked() {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		g.countBlock(d)
		w.Header().Set(HeaderOrder, d.Order.ID)
		w.WriteHeader(http.StatusForbidden)
	})
	mux.HandleFunc("/blocked", func(w http.ResponseWriter, r *http.Request) {
		d := g.decideForProxy(r)
		if !d.Blocked() {
			// The order was lifted between the proxy's question and this
			// request: there is no order to show, and the client should
			// simply ask again.
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Retry-After", "0")
			http.Error(w, "The block on this address was just lifted. Please reload the page.", http.StatusServiceUnavailable)
			return
		}
		g.WriteBlocked(w, r, d)
	})
	mux.HandleFunc("/forward-auth", func(w http.ResponseWriter, r *http.Request) {
		g.Metrics.requests[endpointForwardAuth].Add(1)
		d := g.decideForProxy(r)
		if !d.Blocked() {
			w.Header().Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusOK)
			return
		}
		g.countBlock(d)
		w.Header().Set(HeaderOrder, d.Order.ID)
		g.WriteBlocked(w, r, d)
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(map[string]any{"status": "ok", "policy_version": g.AppliedVersion()})
	})
	return mux
}

// decideForProxy decides the request a proxy describes in its headers.
func (g *Gate) decideForProxy(r *http.Request) Decision {
	host := firstOf(r.Header.Get(HeaderOriginalHost), firstElement(r.Header.Get(HeaderForwardedHost)), r.Host)
	uri := firstOf(r.Header.Get(HeaderOriginalURI), r.Header.Get(HeaderForwardedURI), r.URL.RequestURI())
	path, query := "/", ""
	if u, err := url.ParseRequestURI(uri); err == nil {
		path, query = u.Path, u.RawQuery
	} else if p, q, _ := strings.Cut(uri, "?"); strings.HasPrefix(p, "/") {
		// A URI Go will not parse (bad escapes) still has a path that an
		// origin may serve; decide on it as written.
		path, query = p, q
	}
	return g.Decide(Request{Host: host, Path: path, Query: query, Client: g.ClientAddr(r)})
}

func firstOf(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// firstElement returns the first of a comma-separated header's elements:
// the client's own for X-Forwarded-Host.
func firstElement(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}
