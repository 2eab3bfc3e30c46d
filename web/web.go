// Package web is writ's console for the people who run it and review its
// orders: server-rendered HTML pages, mounted under /console/ by
// `writ serve`, over the same registry the API drives.
//
// A person logs in with API credentials; the role of those credentials
// decides what the pages show and which forms they offer, and every
// action goes to the registry as that principal, so that the
// registry's authorisation rules and event log apply unchanged. The
// pages work without script: the only script is a countdown that ticks
// the time left before an authority's deadline, which the page already
// states as rendered. Charts are inline SVG drawn on the server.
//
// Sessions live in memory: a restart logs everyone out.
package web

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/ledger"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/registry"
	"github.com/writ-project/writ/scope"
)

// Prefix is the path under which the console is served.
const Prefix = "/console/"

// DefaultIdleTimeout ends a session after half an hour without a
// request: a reviewer's working session, not a forgotten browser tab.
const DefaultIdleTimeout = 30 * time.Minute

// MaxSessionAge ends a session twelve hours after login however active
// it is, so that credentials disabled elsewhere and a shared computer
// are both bounded by a working day.
const MaxSessionAge = 12 * time.Hour

// sampleInterval is how often the per-order block counters are sampled
// for the blocks-per-hour charts: the hour boundaries are placed to
// within this much.
const sampleInterval = time.Minute

// Registry is the part of the order registry the console reads and
// drives; registry.Registry is one. Every change names the principal of
// the session, and the registry decides whether it may.
type Registry interface {
	Authenticate(ctx context.Context, token string) (access.Principal, error)
	Orders() []*order.Order
	Order(ctx context.Context, id string) (*order.Order, []order.Event, error)
	Authorities() []order.RegisteredAuthority
	Release(ctx context.Context, id, target, reason string, by access.Principal) (*order.Order, error)
	Reject(ctx context.Context, id, target, reason string, by access.Principal) (*order.Order, error)
	Hold(ctx context.Context, id, target, reason string, by access.Principal) (*order.Order, error)
	Suspend(ctx context.Context, id, target, reason string, by access.Principal) (*order.Order, error)
	Reinstate(ctx context.Context, id, target, reason string, by access.Principal) (*order.Order, error)
	FileContest(ctx context.Context, id string, sub *order.ContestSubmission, by access.Principal) (*order.Contest, error)
	DecideContest(ctx context.Context, id int64, outcome order.ContestStatus, reason string, by access.Principal) (*order.Contest, error)
	Contests(ctx context.Context, orderID string) ([]order.Contest, error)
	Receipts(ctx context.Context, id string) (*registry.OrderReceipts, error)
	Points(ctx context.Context) ([]policy.Receipt, error)
	RetiredPoints(ctx context.Context) ([]policy.Retirement, error)
	RetirePoint(ctx context.Context, point string, by access.Principal) error
	CreatePrincipal(ctx context.Context, p access.Principal, by access.Principal) (string, error)
	Principals(ctx context.Context, by access.Principal) ([]access.Principal, error)
	DisablePrincipal(ctx context.Context, id string, disabled bool, by access.Principal) error
	Now() time.Time
}

// Policy is where the console reads the published policy;
// *policy.Holder is one.
type Policy interface {
	Load() *policy.Snapshot
}

// Scoper maps a client address to its jurisdiction; *scope.Resolver is
// one.
type Scoper interface {
	Lookup(netip.Addr) (jurisdiction.Code, scope.Source)
}

// Counters are the per-order block counters of the enforcement points;
// *policy.CounterSet (registry.Registry.Counters) is one.
type Counters interface {
	Each(f func(id string, c *policy.Counters))
}

// Ledger is the transparency log whose latest checkpoint the dashboard
// shows; *ledger.Ledger is one.
type Ledger interface {
	Checkpoint() (ledger.Checkpoint, []byte)
}

// Sources are what the console shows and drives.
type Sources struct {
	// Registry holds the orders, contests, credentials and receipts.
	Registry Registry
	// Policy is the published policy, for "check a name".
	Policy Policy
	// Scoper places a client address in a jurisdiction.
	Scoper Scoper
	// Counters are the per-order block counters, for the charts.
	Counters Counters
	// Ledger is optional: without it the dashboard says there is none.
	Ledger Ledger
}

// Config configures the console.
type Config struct {
	// PublicURL is the server's externally visible base URL. When it is
	// https, session cookies are Secure even if TLS ends at a proxy in
	// front of writ; its origin is trusted for form posts.
	PublicURL string
	// BlockAnswer describes the DNS answer to a blocked query, shown by
	// "check a name" ("REFUSED with EDE 16 (Censored)").
	BlockAnswer string
	// IdleTimeout ends a session after this long without a request.
	// Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Clock is the time of sessions and block samples. Default time.Now.
	// Order statuses and deadlines follow the registry's clock.
	Clock func() time.Time
	// Logger logs logins, logouts and refused requests. Default
	// slog.Default().
	Logger *slog.Logger
}

// Console is the web console's HTTP handler. Create it with New, mount
// it at Prefix, and run Run for the charts and session expiry.
type Console struct {
	cfg      Config
	src      Sources
	mux      *http.ServeMux
	sessions *sessions
	blocks   *blockHistory
	origins  *http.CrossOriginProtection
	// secureURL is true when the public URL is https.
	secureURL bool
}

// New returns the console over src.
func New(cfg Config, src Sources) (*Console, error) {
	if src.Registry == nil || src.Policy == nil || src.Scoper == nil || src.Counters == nil {
		return nil, errors.New("web: the console needs a registry, a policy, a scoper and block counters")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BlockAnswer == "" {
		cfg.BlockAnswer = "blocked, with EDE 16 (Censored)"
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	c := &Console{
		cfg:      cfg,
		src:      src,
		mux:      http.NewServeMux(),
		sessions: newSessions(cfg.IdleTimeout, MaxSessionAge, cfg.Clock),
		blocks:   newBlockHistory(),
		origins:  http.NewCrossOriginProtection(),
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("web: public URL %q: want an http:// or https:// URL", cfg.PublicURL)
		}
		c.secureURL = u.Scheme == "https"
		// Behind a proxy that rewrites Host, a browser without
		// Sec-Fetch-Site still posts from the public origin.
		if err := c.origins.AddTrustedOrigin(u.Scheme + "://" + u.Host); err != nil {
			return nil, fmt.Errorf("web: public URL %q: %w", cfg.PublicURL, err)
		}
	}
	c.mux.HandleFunc("GET "+Prefix+"login", c.loginPage)
	c.mux.HandleFunc("POST "+Prefix+"login", c.login)
	for _, rt := range c.routes() {
		c.mux.HandleFunc(rt.pattern, c.authed(rt.handler))
	}
	// Every other path under the prefix needs a session too, then is not
	// found: the console reveals nothing, not even which pages exist, to
	// someone not logged in.
	c.mux.HandleFunc(Prefix, c.authed(c.notFound))
	return c, nil
}

// route is one page or action of the console; all need a session.
type route struct {
	pattern string
	handler sessionHandler
}

func (c *Console) routes() []route {
	return []route{
		{"GET " + Prefix + "{$}", c.dashboardPage},
		{"GET " + Prefix + "queue", c.queuePage},
		{"GET " + Prefix + "orders", c.ordersPage},
		{"GET " + Prefix + "orders/{id}", c.orderPage},
		{"GET " + Prefix + "check", c.checkPage},
		{"GET " + Prefix + "credentials", c.credentialsPage},
		{"POST " + Prefix + "logout", c.logout},
		{"POST " + Prefix + "orders/{id}/release", c.reviewTarget(Registry.Release, "released", "it is enforced from now on")},
		{"POST " + Prefix + "orders/{id}/reject", c.reviewTarget(Registry.Reject, "rejected", "it will never be enforced")},
		{"POST " + Prefix + "orders/{id}/hold", c.reviewTarget(Registry.Hold, "held", "it is no longer enforced until a reviewer releases it")},
		{"POST " + Prefix + "orders/{id}/suspend", c.reviewTarget(Registry.Suspend, "suspended", "it is not enforced until reinstated")},
		{"POST " + Prefix + "orders/{id}/reinstate", c.reviewTarget(Registry.Reinstate, "reinstated", "it is enforced again")},
		{"POST " + Prefix + "orders/{id}/contests", c.recordContest},
		{"POST " + Prefix + "contests/{id}/decision", c.decideContest},
		{"POST " + Prefix + "credentials", c.createCredentials},
		{"POST " + Prefix + "credentials/{id}/disable", c.setDisabled(true)},
		{"POST " + Prefix + "credentials/{id}/enable", c.setDisabled(false)},
		{"POST " + Prefix + "points/retire", c.retirePoint},
	}
}

// ServeHTTP serves the console.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	nonce := randomString(18)
	securityHeaders(w.Header(), nonce)
	c.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), nonceKey{}, nonce)))
}

// Run samples the block counters for the blocks-per-hour charts and
// forgets expired sessions, until ctx ends.
func (c *Console) Run(ctx context.Context) {
	t := time.NewTicker(sampleInterval)
	defer t.Stop()
	c.blocks.sample(c.src.Counters, c.cfg.Clock())
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := c.cfg.Clock()
			c.blocks.sample(c.src.Counters, now)
			c.sessions.sweep()
		}
	}
}

type nonceKey struct{}

func nonceOf(r *http.Request) string {
	n, _ := r.Context().Value(nonceKey{}).(string)
	return n
}

// securityHeaders are sent with every console response: only the page's
// own style and script, marked with this response's nonce, may run;
// forms post only to the console; nothing may frame it; nothing of it is
// cached, since it shows who is logged in and contest filers' contacts.
func securityHeaders(h http.Header, nonce string) {
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; style-src 'nonce-"+nonce+"'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// randomString returns n random bytes, base64url-encoded.
func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
