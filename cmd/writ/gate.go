package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/writ-project/writ/httpgate"
	"github.com/writ-project/writ/internal/config"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/scope"
)

func init() {
	register(command{name: "gate", rank: 5, run: runGate,
		usage: []string{"writ gate [flags]               run the HTTP 451 gate on another host, following a writ server"}})
}

const gateHelp = `
Usage: writ gate [flags]

Runs the HTTP 451 gate (RFC 7725) in front of origin servers, on the
orders of a writ server that may run on another host. Clients in an
order's jurisdiction asking for a blocked host or URL get HTTP 451 and a
page citing the order, its authority, its legal basis and its public
record; everyone else is proxied to the origin unchanged.

The gate reads the writ server's orders (GET /v1/orders) and checks its
policy version (GET /healthz) every --poll interval, and at once when the
server's event stream (GET /v1/events) announces a change, compiling the
policy locally. If the server cannot be reached, the last policy stays in force
(orders still expire on time): the gate never blocks more than the server
says. It starts serving once it has the server's policy.

It serves any of: a plain-HTTP reverse proxy (--listen), TLS with your
certificates (--tls-listen, --cert), passing TLS for other names through
untouched (--tls-passthrough), and a decision service for nginx
auth_request and Caddy forward_auth (--decision), which also serves
/metrics and /healthz. Client jurisdictions come from --scope and --geoip,
as for writ serve.

Settings come from defaults, then the --config file (its scopes,
geoip_database, operator, http.public_url and gate sections; see
writ.example.yaml), then flags.

Examples:
  writ gate --follow http://writ.isp.example:8080 --listen :80 \
      --origin http://10.0.0.8:8080 --scope FR=192.0.2.0/24
      A plain-HTTP gate in front of one origin.

  writ gate --follow http://writ.isp.example:8080 --decision 127.0.0.1:8451 \
      --trusted-proxy 127.0.0.1 --scope FR=192.0.2.0/24
      The decision service for an nginx on the same host (httpgate/README.md).
`

// gateFlags are the flags of writ gate that set gate.* settings; writ
// serve has a few of them too.
type gateFlags struct {
	listen, decision, origin *string
	trusted, routes          listFlag
}

func addGateFlags(fs *cmdFlags, prefix string) *gateFlags {
	f := &gateFlags{
		listen:   fs.String(prefix+"listen", "", "HTTP gate: plain-HTTP reverse proxy listen `address` (gate.listen)"),
		decision: fs.String(prefix+"decision", "", "HTTP gate: decision service listen `address` for nginx auth_request and Caddy forward_auth (gate.decision_listen)"),
		origin:   fs.String(prefix+"origin", "", "HTTP gate: origin `URL` for allowed requests (gate.origin)"),
	}
	fs.Var(&f.trusted, prefix+"trusted-proxy", "HTTP gate: a trusted proxy's `address or prefix`, whose X-Forwarded-For is believed (repeatable; gate.trusted_proxies)")
	fs.Var(&f.routes, prefix+"route", "HTTP gate: origin of one host, `HOST=URL` (repeatable; gate.routes)")
	return f
}

// apply sets the gate settings given as flags.
func (f *gateFlags) apply(g *config.Gate) error {
	setIf := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	setIf(&g.Listen, *f.listen)
	setIf(&g.DecisionListen, *f.decision)
	setIf(&g.Origin, *f.origin)
	if len(f.trusted) > 0 {
		g.TrustedProxies = f.trusted
	}
	for _, r := range f.routes {
		host, origin, ok := strings.Cut(r, "=")
		if !ok || host == "" {
			return usageError("route %q: want HOST=URL, such as shop.example=http://10.0.0.8:8080", r)
		}
		if g.Routes == nil {
			g.Routes = map[string]string{}
		}
		g.Routes[host] = origin
	}
	return nil
}

// newServeGateFlags adds writ serve's HTTP gate flags.
func newServeGateFlags(fs *cmdFlags) *gateFlags { return addGateFlags(fs, "gate-") }

// startServeGate starts the HTTP gate inside writ serve, on the policy
// the registry publishes, when a gate listener is configured; it returns
// nil otherwise. publicURL is the server's final public URL.
func startServeGate(ctx context.Context, f *gateFlags, cfg *config.Config, publicURL string, p *policy.Holder, sc *scope.Resolver, log *slog.Logger) (*httpgate.Server, error) {
	if err := f.apply(&cfg.Gate); err != nil {
		return nil, err
	}
	r, err := cfg.Gate.Resolve(cfg.Operator, publicURL)
	if err != nil {
		return nil, fmt.Errorf("configuration:\n%w", err)
	}
	if !r.Enabled {
		return nil, nil
	}
	r.Gate.Logger = log
	g, err := httpgate.New(r.Gate, p, sc)
	if err != nil {
		return nil, err
	}
	srv, err := httpgate.NewServer(g, r.Server)
	if err != nil {
		return nil, err
	}
	if err := srv.Start(ctx); err != nil {
		return nil, err
	}
	return srv, nil
}

func runGate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("gate", gateHelp, stdout, stderr)
	var (
		configPath     = fs.String("config", "", "YAML configuration `file`")
		follow         = fs.String("follow", "", "writ server `URL` whose orders the gate enforces (gate.follow; env WRIT_API; default http://"+config.DefaultHTTPListen+")")
		poll           = fs.Duration("poll", 0, "how often to check the writ server's policy version (gate.poll_interval; default 1s)")
		publicURL      = fs.String("public-url", "", "`URL` of the writ server's public record, linked from the 451 page (http.public_url; default the --follow URL)")
		tlsListen      = fs.String("tls-listen", "", "TLS listen `address`, terminated with --cert (gate.tls_listen)")
		tlsPassthrough = fs.String("tls-passthrough", "", "`host:port` receiving, untouched, TLS for names no --cert covers (gate.tls_passthrough)")
		clientHeader   = fs.String("client-ip-header", "", "header trusted proxies set: X-Forwarded-For or Forwarded (gate.client_ip_header)")
		blockedBy      = fs.String("blocked-by", "", "your `URL`, sent as Link: <URL>; rel=\"blocked-by\" (gate.blocked_by; default the public record)")
		geoip          = fs.String("geoip", "", "MaxMind-format country database `file` for clients outside every --scope network")
		logLevel       = fs.String("log-level", "", "debug, info, warn or error (default info)")
		logFormat      = fs.String("log-format", "", "text or json (default text)")
		point          = fs.String("point", "", "name of this gate in its receipts (default gate:<host name>)")
		token          = fs.String("token", os.Getenv("WRIT_TOKEN"), "operator `token` of the writ server, to record receipts of the policy versions applied (env WRIT_TOKEN; default: no receipts)")
		certs, scopes  listFlag
	)
	gf := addGateFlags(fs, "")
	fs.Var(&certs, "cert", "certificate and key PEM files, `CERT,KEY` (repeatable; gate.certificates)")
	fs.Var(&scopes, "scope", "client networks of a jurisdiction, `CC=prefix[,prefix…]` (repeatable), e.g. FR=192.0.2.0/24")
	if err := parseNoArgs(fs, args, "gate"); err != nil {
		return err
	}

	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	if err := gf.apply(&cfg.Gate); err != nil {
		return err
	}
	setIf(&cfg.Gate.Follow, *follow)
	if cfg.Gate.Follow == "" {
		cfg.Gate.Follow = envOr("WRIT_API", "http://"+config.DefaultHTTPListen)
	}
	if *poll > 0 {
		cfg.Gate.PollInterval = config.Duration(*poll)
	}
	setIf(&cfg.HTTP.PublicURL, *publicURL)
	setIf(&cfg.Gate.TLSListen, *tlsListen)
	setIf(&cfg.Gate.TLSPassthrough, *tlsPassthrough)
	setIf(&cfg.Gate.ClientIPHeader, *clientHeader)
	setIf(&cfg.Gate.BlockedBy, *blockedBy)
	setIf(&cfg.GeoIPDatabase, *geoip)
	setIf(&cfg.Log.Level, *logLevel)
	setIf(&cfg.Log.Format, *logFormat)
	for _, c := range certs {
		cert, key, ok := strings.Cut(c, ",")
		if !ok {
			return usageError("--cert %q: want CERT,KEY (two PEM files)", c)
		}
		cfg.Gate.Certificates = append(cfg.Gate.Certificates, config.GateCertificate{Cert: cert, Key: key})
	}
	var networks []scope.Network
	for code, list := range cfg.Scopes {
		nets, err := scope.ParseMapping(code + "=" + strings.Join(list, ","))
		if err != nil {
			return fmt.Errorf("configuration: scopes.%s: %w", code, err)
		}
		networks = append(networks, nets...)
	}
	for _, s := range scopes {
		nets, err := scope.ParseMapping(s)
		if err != nil {
			return usageError("--scope: %v", err)
		}
		networks = append(networks, nets...)
	}
	record := cfg.HTTP.PublicURL
	if record == "" {
		record = cfg.Gate.Follow
	}
	res, err := cfg.Gate.Resolve(cfg.Operator, record)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if !res.Enabled {
		return usageError("nothing to serve: give --listen, --tls-listen or --decision (see writ gate --help)")
	}

	log := newLogger(stderr, cfg.Log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var geo *scope.GeoIP
	if cfg.GeoIPDatabase != "" {
		if geo, err = scope.OpenGeoIP(cfg.GeoIPDatabase); err != nil {
			return err
		}
	}
	resolver, err := scope.New(networks, geo)
	if err != nil {
		return err
	}
	res.Follow.Logger = log
	follower, err := httpgate.NewFollower(res.Follow)
	if err != nil {
		return err
	}
	// Serve only once the server's policy is known: before that, the gate
	// would let through what the server blocks.
	if err := firstPolicy(ctx, follower, res.Follow.PollInterval); err != nil {
		return err
	}

	res.Gate.Logger = log
	gate, err := httpgate.New(res.Gate, follower.Policy(), resolver)
	if err != nil {
		return err
	}
	prom := prometheus.NewRegistry()
	prom.MustRegister(gate.Metrics, follower.Metrics, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	res.Server.Gatherer = prom
	srv, err := httpgate.NewServer(gate, res.Server)
	if err != nil {
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	go follower.Run(ctx)
	if *token != "" {
		name := *point
		if name == "" {
			host, _ := os.Hostname()
			name = "gate:" + host
		}
		go sendReceipts(ctx, follower.Policy(), cfg.Gate.Follow, *token, name, res.Follow.PollInterval, log)
	}
	log.Info("writ gate ready", "follow", cfg.Gate.Follow, "policy_version", follower.Version())

	<-ctx.Done()
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

// firstPolicy syncs until the follower has the server's policy, or ctx
// ends. The follower logs the failures.
func firstPolicy(ctx context.Context, f *httpgate.Follower, interval time.Duration) error {
	if interval <= 0 {
		interval = httpgate.DefaultPollInterval
	}
	for {
		err := f.Sync(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("stopped before the writ server's policy could be read")
		case <-time.After(interval):
		}
	}
}

// sendReceipts records with the writ server a receipt for each policy
// version the gate applies (POST /v1/receipts), as writ serve records its
// own enforcement points', so that the server's record shows when the
// order took effect here. A failed attempt is retried after interval.
func sendReceipts(ctx context.Context, h *policy.Holder, server, token, point string, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		interval = httpgate.DefaultPollInterval
	}
	c := &client{base: server, token: token, http: &http.Client{Timeout: 10 * time.Second}}
	var sent uint64
	failing := false
	for {
		changed := h.Changed()
		v := h.Load().Version()
		var retry <-chan time.Time
		if v != sent {
			body, _ := json.Marshal(policy.Receipt{Point: point, Version: v, At: time.Now().UTC()})
			if err := c.do(http.MethodPost, "/v1/receipts", body, true, nil); err != nil {
				if !failing {
					log.Warn("gate receipt not recorded; retrying", "point", point, "policy_version", v, "err", err)
				}
				failing = true
				retry = time.After(interval)
			} else {
				failing = false
				sent = v
				log.Info("gate receipt recorded", "point", point, "policy_version", v)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-retry:
		}
	}
}
