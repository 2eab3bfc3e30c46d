package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/internal/clientip"
	"github.com/writ-project/writ/registry"
)

// RateLimit is how much one client address may ask of a node without
// credentials. Zero rates turn a limit off.
type RateLimit struct {
	// PerSecond is the sustained rate of requests without credentials
	// from one address, on every route but /healthz. 0: no limit.
	PerSecond float64
	// Burst is how many such requests an address may make at once.
	// Default: PerSecond, rounded up.
	Burst int
	// ContestsPerHour is how many contests one address may file in an
	// hour (a burst of that many, refilled evenly). 0: no limit.
	ContestsPerHour int
	// EventStreams is how many event streams (GET /v1/events) one
	// address may hold open at once without credentials. 0: no limit.
	EventStreams int
	// MaxClients bounds the addresses each limit remembers; beyond it
	// the least recently seen is forgotten. Default DefaultMaxClients.
	MaxClients int
	// TrustedProxies are the reverse proxies in front of the node: for a
	// request from one, the client is the nearest untrusted address of
	// ClientIPHeader. Without them every request behind a proxy would
	// count against the proxy's address.
	TrustedProxies []netip.Prefix
	// ClientIPHeader is the header those proxies set: X-Forwarded-For
	// (the default, "") or Forwarded (RFC 7239).
	ClientIPHeader string
	// Now is the clock the buckets refill by; nil is time.Now.
	Now func() time.Time
}

// Defaults of RateLimit, as the configuration applies them: enough for a
// person reading the record and for `writ ledger verify`, too little to
// scrape the node flat out from one address.
const (
	DefaultRequestsPerSecond = 20
	DefaultBurst             = 100
	DefaultContestsPerHour   = 10
	DefaultEventStreams      = 8
	DefaultMaxClients        = 65536
)

// DefaultRateLimit is the limit a node applies unless configured.
func DefaultRateLimit() RateLimit {
	return RateLimit{PerSecond: DefaultRequestsPerSecond, Burst: DefaultBurst, ContestsPerHour: DefaultContestsPerHour,
		EventStreams: DefaultEventStreams, MaxClients: DefaultMaxClients}
}

// Authenticator finds the principal holding a token; registry.Registry
// is one.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (access.Principal, error)
}

// Guard stands in front of a node's whole HTTP interface (the API, the
// ledger, the public record, the console's pages): it identifies the
// principal of each request from its bearer token and holds requests
// without credentials to the rate limits of their client address. Handlers behind it, the API's
// among them, take the principal it found. Create it with NewGuard.
//
// A request with credentials that authenticate is not counted against
// its address: a principal is accountable for what it does. A request
// whose credentials fail is counted, and an address out of allowance is
// answered 429 before its credentials are looked up, so that guessing
// tokens costs the guesser and not the store.
type Guard struct {
	cfg      RateLimit
	auth     Authenticator
	log      *slog.Logger
	requests *limiter // nil: no limit
	contests *limiter // nil: no limit
	clients  *clientip.Resolver
	// streams counts the open event streams without credentials, by
	// address; an address is forgotten when its last stream closes.
	streamsMu sync.Mutex
	streams   map[netip.Addr]int

	refused         *prometheus.CounterVec
	refusedRequests prometheus.Counter // refused's children, resolved once
	refusedContests prometheus.Counter
	refusedStreams  prometheus.Counter
	failures        prometheus.Counter
	remembered      *prometheus.Desc
}

// NewGuard returns a guard that authenticates with auth and limits as rl
// says.
func NewGuard(rl RateLimit, auth Authenticator, log *slog.Logger) *Guard {
	if log == nil {
		log = slog.Default()
	}
	if rl.MaxClients <= 0 {
		rl.MaxClients = DefaultMaxClients
	}
	g := &Guard{cfg: rl, auth: auth, log: log,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "writ_http_rate_limited_total",
			Help: "Requests answered 429 because their client address was out of allowance, by limit (requests, contests, event_streams).",
		}, []string{"limit"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "writ_http_authentication_failures_total",
			Help: "Requests refused 401 because their credentials were malformed, unknown or disabled.",
		}),
		remembered: prometheus.NewDesc("writ_http_rate_limit_clients",
			"Client addresses each rate limit currently remembers (bounded by http.rate_limit.max_clients).", []string{"limit"}, nil),
	}
	clients, err := clientip.New(rl.TrustedProxies, rl.ClientIPHeader)
	if err != nil {
		// The configuration checks the header; a caller that did not is
		// told, and proxies' clients are read from X-Forwarded-For.
		log.Error("rate limit client_ip_header: "+err.Error()+"; reading X-Forwarded-For", "header", rl.ClientIPHeader)
		clients, _ = clientip.New(rl.TrustedProxies, "")
	}
	g.clients = clients
	if rl.PerSecond > 0 {
		if g.cfg.Burst <= 0 {
			g.cfg.Burst = int(math.Ceil(rl.PerSecond))
		}
		g.requests = newLimiter(rl.PerSecond, g.cfg.Burst, rl.MaxClients, 0, rl.Now)
	}
	if rl.ContestsPerHour > 0 {
		g.contests = newLimiter(float64(rl.ContestsPerHour)/3600, rl.ContestsPerHour, rl.MaxClients, 0, rl.Now)
	}
	g.refusedRequests = g.refused.WithLabelValues(limitRequests)
	g.refusedContests = g.refused.WithLabelValues(limitContests)
	g.refusedStreams = g.refused.WithLabelValues(limitStreams)
	g.streams = map[netip.Addr]int{}
	return g
}

// Labels of writ_http_rate_limited_total.
const (
	limitRequests = "requests"
	limitContests = "contests"
	limitStreams  = "event_streams"
)

// openStream counts an event stream of client, or reports false when
// the client holds EventStreams already. The caller calls the returned
// function when the stream closes.
func (g *Guard) openStream(client netip.Addr) (func(), bool) {
	if g.cfg.EventStreams <= 0 {
		return func() {}, true
	}
	g.streamsMu.Lock()
	defer g.streamsMu.Unlock()
	if g.streams[client] >= g.cfg.EventStreams {
		g.refusedStreams.Inc()
		return nil, false
	}
	g.streams[client]++
	return func() {
		g.streamsMu.Lock()
		defer g.streamsMu.Unlock()
		if g.streams[client]--; g.streams[client] <= 0 {
			delete(g.streams, client)
		}
	}, true
}

// guarded is what a Guard hands to the handlers behind it.
type guarded struct {
	principal access.Principal
	client    netip.Addr
	guard     *Guard
}

type guardedKey struct{}

func guardedOf(r *http.Request) *guarded {
	g, _ := r.Context().Value(guardedKey{}).(*guarded)
	return g
}

// Wrap returns next behind the guard.
func (g *Guard) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if guardedOf(r) != nil {
			next.ServeHTTP(w, r) // already through a guard
			return
		}
		client := clientAddress(r, g.clients)
		p := access.Anonymous
		if h := r.Header.Get("Authorization"); h != "" {
			if g.requests != nil {
				if ok, wait := g.requests.has(client); !ok {
					g.tooManyRequests(w, wait)
					return
				}
			}
			var err error
			if p, err = bearer(r.Context(), h, g.auth); err != nil {
				if !refusedCredentials(err) {
					g.log.Error("checking credentials", "method", r.Method, "path", r.URL.Path, "err", err)
					headers(w.Header(), true)
					writeError(w, http.StatusInternalServerError, "the credentials could not be checked; try again", nil)
					return
				}
				if g.requests != nil {
					g.requests.allow(client)
				}
				g.failures.Inc()
				g.log.Warn("authentication failed", "method", r.Method, "path", r.URL.Path, "client", client.String())
				headers(w.Header(), true)
				unauthorized(w, err.Error())
				return
			}
		} else if g.requests != nil && r.URL.Path != "/healthz" {
			// Liveness probes are never refused: a 429 there would have a
			// healthy node restarted.
			if ok, wait := g.requests.allow(client); !ok {
				g.tooManyRequests(w, wait)
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), guardedKey{}, &guarded{principal: p, client: client, guard: g})))
	})
}

func (g *Guard) tooManyRequests(w http.ResponseWriter, wait time.Duration) {
	g.refusedRequests.Inc()
	tooMany(w, wait, fmt.Sprintf("too many requests from this address: at most %s a second, %d at once", strconv.FormatFloat(g.cfg.PerSecond, 'f', -1, 64), g.cfg.Burst))
}

// allowContest spends one of the client's contests.
func (g *Guard) allowContest(client netip.Addr) (bool, time.Duration) {
	if g.contests == nil {
		return true, 0
	}
	ok, wait := g.contests.allow(client)
	if !ok {
		g.refusedContests.Inc()
	}
	return ok, wait
}

// tooMany answers 429 with the wait in Retry-After and in the sentence.
func tooMany(w http.ResponseWriter, wait time.Duration, msg string) {
	secs := retryAfter(wait)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	headers(w.Header(), false)
	writeError(w, http.StatusTooManyRequests, fmt.Sprintf("%s; try again in %d s", msg, secs), nil)
}

// Describe implements prometheus.Collector.
func (g *Guard) Describe(ch chan<- *prometheus.Desc) {
	g.refused.Describe(ch)
	g.failures.Describe(ch)
	ch <- g.remembered
}

// Collect implements prometheus.Collector.
func (g *Guard) Collect(ch chan<- prometheus.Metric) {
	g.refused.Collect(ch)
	g.failures.Collect(ch)
	for _, l := range []struct {
		name string
		lim  *limiter
	}{{limitRequests, g.requests}, {limitContests, g.contests}} {
		if l.lim != nil {
			ch <- prometheus.MustNewConstMetric(g.remembered, prometheus.GaugeValue, float64(l.lim.clients()), l.name)
		}
	}
}

// Refusals of credentials: malformed, or unknown or disabled alike.
var (
	errMalformedCredentials = errors.New(`send credentials as "Authorization: Bearer <token>"`)
	errBadCredentials       = errors.New("the bearer token matches no enabled credentials")
)

// refusedCredentials reports whether err refuses the credentials rather
// than failing to check them.
func refusedCredentials(err error) bool {
	return errors.Is(err, errMalformedCredentials) || errors.Is(err, errBadCredentials)
}

// bearer authenticates an Authorization header. The scheme is
// case-insensitive (RFC 9110, section 11.1). Refused credentials are
// errMalformedCredentials or errBadCredentials; other errors are the
// store's.
func bearer(ctx context.Context, h string, auth Authenticator) (access.Principal, error) {
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return access.Anonymous, errMalformedCredentials
	}
	// No comparison here or below depends on how much of a stored token
	// the caller guessed: the token is hashed (access.HashToken) and its
	// hash looked up, so the lookup's time depends only on the hash, which
	// the caller cannot steer towards a stored one (see README.md,
	// "Security").
	p, err := auth.Authenticate(ctx, token)
	switch {
	case errors.Is(err, registry.ErrForbidden):
		return access.Anonymous, errBadCredentials
	case err != nil:
		return access.Anonymous, err
	}
	return p, nil
}

// headers sets what every answer of the API carries: nothing in it is
// to be sniffed, run, framed or, for answers to credentials, stored.
func headers(h http.Header, credentials bool) {
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	h.Set("Referrer-Policy", "no-referrer")
	if credentials {
		h.Set("Cache-Control", "no-store")
	}
}
