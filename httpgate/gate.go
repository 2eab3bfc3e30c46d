// Package httpgate is writ's HTTP enforcement point (RFC 7725): requests
// from clients inside an order's jurisdiction for a blocked host or URL
// are answered with status 451 and a page naming the order, its authority,
// its legal basis and its public record; every other request is passed on
// unchanged.
//
// The same decision is offered three ways: as middleware for Go servers
// (Gate.Middleware), as a standalone reverse proxy that may terminate TLS
// (Server), and as a decision service for nginx auth_request and Caddy
// forward_auth (Gate.DecisionHandler).
package httpgate

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/writ-project/writ/internal/clientip"
	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/scope"
)

// Policy supplies the snapshot in force; policy.Holder is one.
type Policy interface {
	Load() *policy.Snapshot
}

// Scoper maps a client address to its jurisdiction; scope.Resolver is one.
type Scoper interface {
	Lookup(netip.Addr) (jurisdiction.Code, scope.Source)
}

// Client address headers a trusted proxy may set.
const (
	HeaderXForwardedFor = clientip.XForwardedFor
	HeaderForwarded     = clientip.Forwarded
)

// Config configures a Gate. Zero fields take the defaults documented on
// each; New reports what cannot work.
type Config struct {
	// BlockedBy is the URL of the operator that applies the block, sent
	// as `Link: <BlockedBy>; rel="blocked-by"` (RFC 7725, section 4).
	// Required.
	BlockedBy string
	// Operator names the operator on the page. Empty: not named.
	Operator string
	// Contact lists URIs (mailto:, tel:, https:) where blocked users can
	// reach the operator, shown on the page.
	Contact []string
	// RecordURL returns the public record URL of an order, linked from
	// the page as the place to read and contest the order. Nil shows the
	// order id alone.
	RecordURL func(orderID string) string

	// TrustedProxies are the networks of the operator's own proxies.
	// Only for requests whose connection comes from one of them is the
	// client address taken from ClientIPHeader; from anyone else the
	// header is ignored, so a client cannot choose its jurisdiction.
	TrustedProxies []netip.Prefix
	// ClientIPHeader is the header the trusted proxies set:
	// HeaderXForwardedFor (default) or HeaderForwarded (RFC 7239). Only
	// one is read: a proxy that sets one usually passes the other from
	// the client untouched.
	ClientIPHeader string

	// MaxAge caps the Cache-Control max-age of a 451 response, which is
	// also never longer than the time the order has left. Default 60s.
	MaxAge time.Duration

	// Logger receives the gate's logs. Default slog.Default().
	Logger *slog.Logger
}

// DefaultMaxAge caps how long a client may cache a 451 response.
const DefaultMaxAge = 60 * time.Second

func (c *Config) fillDefaults() {
	if c.ClientIPHeader == "" {
		c.ClientIPHeader = HeaderXForwardedFor
	}
	c.ClientIPHeader = http.CanonicalHeaderKey(c.ClientIPHeader)
	if c.MaxAge <= 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports configuration that cannot work, naming the setting.
func (c Config) Validate() error {
	c.fillDefaults()
	var errs []error
	if c.BlockedBy == "" {
		errs = append(errs, errors.New("gate blocked_by: empty; RFC 7725 requires a blocked-by link to the operator applying the block"))
	} else if u, err := url.Parse(c.BlockedBy); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("gate blocked_by %q: want an http:// or https:// URL", c.BlockedBy))
	}
	switch c.ClientIPHeader {
	case HeaderXForwardedFor, HeaderForwarded:
	default:
		errs = append(errs, fmt.Errorf("gate client_ip_header %q: want %s or %s", c.ClientIPHeader, HeaderXForwardedFor, HeaderForwarded))
	}
	for _, p := range c.TrustedProxies {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("gate trusted_proxies: %q is not a prefix", p))
		}
	}
	return errors.Join(errs...)
}

// Gate decides, for each HTTP request, whether an order blocks it for the
// client's jurisdiction, and answers blocked requests with the 451 page.
// It is safe for concurrent use.
type Gate struct {
	cfg     Config
	policy  Policy
	scoper  Scoper
	clients *clientip.Resolver
	pages   pageCache
	// Metrics counts requests and blocks; register it with Prometheus.
	Metrics *Metrics
}

// New returns a gate deciding with the policy p and the client scopes of s.
func New(cfg Config, p Policy, s Scoper) (*Gate, error) {
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	trusted := make([]netip.Prefix, len(cfg.TrustedProxies))
	for i, p := range cfg.TrustedProxies {
		// Client addresses are unmapped before the test: so are prefixes.
		if n := unmapBits(p); n > 0 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-n)
		}
		trusted[i] = p.Masked()
	}
	clients, err := clientip.New(trusted, cfg.ClientIPHeader)
	if err != nil {
		return nil, fmt.Errorf("gate client_ip_header %w", err)
	}
	return &Gate{cfg: cfg, policy: p, scoper: s, clients: clients, Metrics: newMetrics(p)}, nil
}

// unmapBits is how many prefix bits an IPv4-mapped IPv6 prefix loses
// when written as IPv4.
func unmapBits(p netip.Prefix) int {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return 96
	}
	return 0
}

// AppliedVersion is the version of the policy snapshot the gate decides
// with: every decision from now on applies at least this version.
func (g *Gate) AppliedVersion() uint64 { return g.policy.Load().Version() }

// Request is what a decision is made on.
type Request struct {
	// Host is the Host header (or :authority), with or without a port.
	Host string
	// SNI is the TLS server name when the gate terminated TLS, else "".
	SNI string
	// Path is the request path, decoded as in url.URL.Path.
	Path string
	// Query is the raw query, as in url.URL.RawQuery: a URL target with
	// a query blocks only requests that carry its parameters.
	Query string
	// Client is the address whose jurisdiction counts.
	Client netip.Addr
}

// Target says what kind of target matched.
type Target uint8

// Kinds of matched target.
const (
	// TargetNone: nothing matched; the request is allowed.
	TargetNone Target = iota
	// TargetName: the host (or the TLS server name) is a blocked name or
	// under one.
	TargetName
	// TargetURL: a URL target covers the host and path.
	TargetURL
	// TargetAddr: the host is an IP address in a blocked prefix.
	TargetAddr
)

// String names the kind of target in logs.
func (t Target) String() string {
	switch t {
	case TargetName:
		return "name"
	case TargetURL:
		return "url"
	case TargetAddr:
		return "address"
	}
	return "none"
}

// Decision is the outcome for one request.
type Decision struct {
	// Order is the order that blocks the request, nil if allowed.
	Order *policy.OrderRef
	// Target is the kind of target that matched.
	Target Target
	// Scope is the client's jurisdiction and Source how it was found.
	Scope  jurisdiction.Code
	Source scope.Source
	// Client is the address the scope was looked up for.
	Client netip.Addr
	// Host is the normalised host decided on (lower case, no port, no
	// trailing dot), Path the normalised path.
	Host, Path string
	// Version is the policy version decided with.
	Version uint64
}

// Blocked reports whether an order blocks the request.
func (d Decision) Blocked() bool { return d.Order != nil }

// Decide decides r with the current policy. It does not count anything:
// the caller counts the requests it serves.
func (g *Gate) Decide(r Request) Decision {
	snap := g.policy.Load()
	host, port := splitHost(r.Host)
	d := Decision{Client: r.Client.Unmap(), Host: host, Version: snap.Version()}
	d.Scope, d.Source = g.scoper.Lookup(d.Client)
	if !snap.Scope().Has(d.Scope) {
		// Nothing is blocked for this client's jurisdiction: the common
		// case outside the ordering countries costs one bit test.
		return d
	}
	if ref := snap.MatchName(host, d.Scope); ref != nil {
		d.Order, d.Target = ref, TargetName
		return d
	}
	if sni, _ := splitHost(r.SNI); sni != "" && sni != host {
		// Fronting a blocked name with an allowed one, or the reverse,
		// must not get around the order.
		if ref := snap.MatchName(sni, d.Scope); ref != nil {
			d.Order, d.Target = ref, TargetName
			return d
		}
	}
	if maybeAddr(host) {
		if a, err := netip.ParseAddr(host); err == nil {
			if ref := snap.MatchAddr(a, d.Scope); ref != nil {
				d.Order, d.Target = ref, TargetAddr
				return d
			}
		}
	}
	d.Path = policy.CanonicalPath(r.Path)
	if ref := snap.MatchURLQuery(host, port, d.Path, r.Query, d.Scope); ref != nil {
		d.Order, d.Target = ref, TargetURL
	}
	return d
}

// DecideHTTP decides an HTTP request arriving at the gate: its Host, its
// TLS server name, its path, and its client address (the connection's,
// or the trusted proxies' header).
func (g *Gate) DecideHTTP(r *http.Request) Decision {
	sni := ""
	if r.TLS != nil {
		sni = r.TLS.ServerName
	}
	return g.Decide(Request{Host: r.Host, SNI: sni, Path: r.URL.Path, Query: r.URL.RawQuery, Client: g.ClientAddr(r)})
}

// Middleware answers requests blocked for their client with the 451 page
// and passes every other request to next untouched. Blocked requests
// never reach next.
func (g *Gate) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.Metrics.requests[endpointMiddleware].Add(1)
		d := g.DecideHTTP(r)
		if d.Blocked() {
			g.countBlock(d)
			g.WriteBlocked(w, r, d)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// countBlock counts a blocked request for the metrics and the order.
func (g *Gate) countBlock(d Decision) {
	g.Metrics.countBlock(d)
	c := d.Order.Counters
	c.Blocks.Add(1)
	if c.AwaitingFirstBlock() {
		if lat, ok := c.FirstBlock(time.Now()); ok {
			g.Metrics.propagation.Observe(lat.Seconds())
		}
	}
}

// splitHost returns the host of a Host header in lower case, without its
// port or trailing dot, and the port ("" when absent).
func splitHost(hostport string) (host, port string) {
	host = hostport
	if strings.HasPrefix(host, "[") {
		// An IPv6 literal: "[2001:db8::1]:8080" or "[2001:db8::1]".
		if end := strings.IndexByte(host, ']'); end > 0 {
			if rest := host[end+1:]; strings.HasPrefix(rest, ":") {
				port = rest[1:]
			}
			host = host[1:end]
		}
	} else if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host, ':') == i {
		host, port = host[:i], host[i+1:]
	}
	host = strings.TrimSuffix(host, ".")
	if hasUpper(host) {
		host = strings.ToLower(host)
	}
	return host, port
}

// maybeAddr reports whether host may be an IP literal: an IPv6 address
// has a colon, and an IPv4 address ends in a digit, which no top-level
// domain does. It spares names the failed parse, which allocates.
func maybeAddr(host string) bool {
	n := len(host)
	return n > 0 && (strings.IndexByte(host, ':') >= 0 || ('0' <= host[n-1] && host[n-1] <= '9'))
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}
