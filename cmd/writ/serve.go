package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/writ-project/writ/api"
	"github.com/writ-project/writ/dnsserver"
	"github.com/writ-project/writ/internal/config"
	"github.com/writ-project/writ/internal/demo"
	"github.com/writ-project/writ/internal/localzone"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/registry"
	"github.com/writ-project/writ/scope"
	"github.com/writ-project/writ/store"
)

func init() {
	register(command{name: "serve", rank: 0, run: runServe,
		usage: []string{"writ serve [flags]              run the DNS server, the API and the public record"}})
}

const serveHelp = `
Usage: writ serve [flags]

Runs writ: the DNS server that blocks ordered names for clients in each
order's jurisdiction and forwards everything else, and the HTTP server with
the API, the public record and /metrics. Orders are kept in a SQLite
database in the data directory and survive restarts and crashes.

Settings come from defaults, then the --config file (YAML; see
writ.example.yaml), then flags. Flags given more than once add up.

Examples:
  writ serve --demo
      Runs with the sample court order (Paris, 2025: motogpstream.me and
      others, France only), 127.0.0.2 mapped to France and a built-in
      upstream, and prints dig commands to try.

  writ serve --upstream 9.9.9.9 --scope FR=192.0.2.0/24 --scope IT=198.51.100.0/24
      Forwards to Quad9; clients in 192.0.2.0/24 are in France, those in
      198.51.100.0/24 in Italy, all others in no jurisdiction (never blocked).

  writ serve --config /etc/writ/writ.yaml
`

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", serveHelp, stdout, stderr)
	var (
		configPath = fs.String("config", "", "YAML configuration `file`")
		dataDir    = fs.String("data-dir", "", "directory for the database and the API token (default "+config.DefaultDataDir+")")
		httpListen = fs.String("http", "", "API and public record listen `address` (default "+config.DefaultHTTPListen+")")
		publicURL  = fs.String("public-url", "", "`URL` clients use to reach the public record (default http://<http address>)")
		blockMode  = fs.String("block-mode", "", "answer to blocked queries: refused, nxdomain or sinkhole (default refused)")
		geoip      = fs.String("geoip", "", "MaxMind-format country database `file` for clients outside every --scope network")
		tokenFile  = fs.String("token-file", "", "`file` holding the API token (default <data-dir>/api-token, created if missing)")
		logLevel   = fs.String("log-level", "", "debug, info, warn or error (default info)")
		logFormat  = fs.String("log-format", "", "text or json (default text)")
		demoMode   = fs.Bool("demo", false, "seed the sample order, map "+demo.FranceClient+" to France and, without --upstream, answer from a built-in upstream")
		dnsListen  listFlag
		upstreams  listFlag
		scopes     listFlag
	)
	fs.Var(&dnsListen, "dns", "DNS listen `address` (UDP and TCP; repeatable; default "+dnsserver.DefaultListen+")")
	fs.Var(&upstreams, "upstream", "upstream resolver `address`[:port] (repeatable, tried in order)")
	fs.Var(&scopes, "scope", "client networks of a jurisdiction, `CC=prefix[,prefix…]` (repeatable), e.g. FR=192.0.2.0/24")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("serve takes no arguments, got %q (flags start with --)", pos[0])
	}

	cfg := config.Default()
	if *configPath != "" {
		if cfg, err = config.Load(*configPath); err != nil {
			return err
		}
	}
	setIf := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	setIf(&cfg.DataDir, *dataDir)
	setIf(&cfg.HTTP.Listen, *httpListen)
	setIf(&cfg.HTTP.PublicURL, *publicURL)
	setIf(&cfg.DNS.BlockMode, *blockMode)
	setIf(&cfg.GeoIPDatabase, *geoip)
	setIf(&cfg.API.TokenFile, *tokenFile)
	setIf(&cfg.Log.Level, *logLevel)
	setIf(&cfg.Log.Format, *logFormat)
	if len(dnsListen) > 0 {
		cfg.DNS.Listen = dnsListen
	}
	if len(upstreams) > 0 {
		cfg.DNS.Upstreams = upstreams
	}
	for _, s := range scopes {
		code, list, err := config.ParseScopeFlag(s)
		if err != nil {
			return usageError("%v", err)
		}
		if cfg.Scopes == nil {
			cfg.Scopes = map[string][]string{}
		}
		cfg.Scopes[code] = append(cfg.Scopes[code], list...)
	}
	if *demoMode {
		if cfg.Scopes == nil {
			cfg.Scopes = map[string][]string{}
		}
		cfg.Scopes["FR"] = append(cfg.Scopes["FR"], demo.FranceClient+"/32")
		if cfg.Operator.Name == "" {
			cfg.Operator.Name = "writ demo"
		}
	}

	log := newLogger(stderr, cfg.Log)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var demoUpstream *localzone.Server
	if *demoMode && len(cfg.DNS.Upstreams) == 0 {
		demoUpstream, err = localzone.Start("127.0.0.1:0", demo.Upstream()...)
		if err != nil {
			return fmt.Errorf("demo upstream: %w", err)
		}
		defer demoUpstream.Close()
		cfg.DNS.Upstreams = []string{demoUpstream.Addr()}
		log.Info("demo upstream answering the demo names only; pass --upstream to forward to a real resolver", "addr", demoUpstream.Addr())
	}

	res, err := cfg.Resolve()
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	res.DNS.Logger = log
	res.DNS.RecordURL = func(id string) string { return api.RecordURL(res.PublicURL, id) }

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	token, err := loadOrCreateToken(res.TokenFile, log)
	if err != nil {
		return err
	}
	st, err := store.OpenSQLite(ctx, filepath.Join(cfg.DataDir, "writ.db"))
	if err != nil {
		return err
	}
	defer st.Close()
	reg, err := registry.Open(ctx, st, registry.Options{Intake: res.Intake, Logger: log})
	if err != nil {
		return err
	}
	defer reg.Close()

	var demoOrder *order.Order
	if *demoMode {
		if demoOrder, err = seedDemo(ctx, reg); err != nil {
			return err
		}
	}

	var geo *scope.GeoIP
	if res.GeoIPPath != "" {
		if geo, err = scope.OpenGeoIP(res.GeoIPPath); err != nil {
			return err
		}
		info := geo.Info()
		log.Info("GeoIP database loaded", "file", res.GeoIPPath, "type", info.DatabaseType, "built", info.BuildTime, "networks", info.Networks, "skipped", info.Skipped)
	}
	resolver, err := scope.New(res.Networks, geo)
	if err != nil {
		return err
	}
	for _, n := range resolver.Networks() {
		log.Info("scope network", "network", n.Prefix.String(), "jurisdiction", n.Code.String())
	}

	// Listen for HTTP before anything links to it: with port 0 the public
	// URL is known only now.
	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", cfg.HTTP.Listen, err)
	}
	defer ln.Close()
	if cfg.HTTP.PublicURL == "" {
		res.PublicURL = "http://" + ln.Addr().String()
	}

	dns, err := dnsserver.New(res.DNS, reg.Policy(), resolver)
	if err != nil {
		return err
	}
	if err := dns.Start(ctx); err != nil {
		return err
	}
	defer dns.Shutdown(context.Background())

	prom := prometheus.NewRegistry()
	prom.MustRegister(reg.Metrics(), dns.Metrics, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	handler, err := api.New(api.Config{
		Token:        token,
		PublicURL:    res.PublicURL,
		MaxBodyBytes: cfg.HTTP.MaxBodyBytes,
		BlockAnswer:  blockAnswer(res.DNS),
		Gatherer:     prom,
		Logger:       log,
	}, reg, resolver)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("http listening", "addr", ln.Addr().String(), "public_url", res.PublicURL)
	log.Info("writ ready", "policy_version", reg.Policy().Load().Version(), "orders_enforced", len(reg.Policy().Load().Orders()))

	if *demoMode {
		printDemo(stdout, dns, res.PublicURL, demoOrder)
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// loadOrCreateToken reads the API token, creating a random one (readable
// by its owner only) at first start.
func loadOrCreateToken(path string, log *slog.Logger) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", fmt.Errorf("API token file %s is empty", path)
		}
		return t, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("API token: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	t := hex.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("API token: %w", err)
	}
	log.Info("created an API token; clients read it from this file", "file", path)
	return t, nil
}

func blockAnswer(c dnsserver.Config) string {
	mode := c.BlockMode
	if mode == "" {
		mode = dnsserver.Refused
	}
	switch mode {
	case dnsserver.NXDomain:
		return "NXDOMAIN with EDE 16 (Censored)"
	case dnsserver.Sinkhole:
		return "the sinkhole address with EDE 16 (Censored)"
	}
	return "REFUSED with EDE 16 (Censored)"
}

// seedDemo submits the sample order unless an order of its authority is
// already in force (a restarted demo keeps its order).
func seedDemo(ctx context.Context, reg *registry.Registry) (*order.Order, error) {
	now := reg.Now()
	for _, o := range reg.Orders() {
		if o.Authority.ID == "tj-paris" && o.EnforcedAt(now) {
			return o, nil
		}
	}
	sub, err := demo.Order(now)
	if err != nil {
		return nil, fmt.Errorf("demo order: %w", err)
	}
	o, err := reg.Submit(ctx, sub, "demo")
	if err != nil {
		return nil, fmt.Errorf("demo order: %w", err)
	}
	return o, nil
}

func printDemo(w io.Writer, dns *dnsserver.Server, publicURL string, o *order.Order) {
	host, port, _ := net.SplitHostPort(dns.Addrs()[0].String())
	self := "writ"
	if strings.Contains(os.Args[0], "go-build") {
		self = "go run ./cmd/writ"
	}
	fmt.Fprintf(w, `
writ demo
  Order %s of the %s blocks, for clients in France only:
    %s (and their subdomains)
  Clients from %s are in France; every other client is outside it.

Try:
  dig @%s -p %s -b %s %s    # in France: REFUSED, EDE 16 (Censored)
  dig @%s -p %s -b %s %s    # outside France: %s
  %s check %s --client %s
  curl %s
`, o.ID, o.Authority.Name, strings.Join(demoNames(o), ", "), demo.FranceClient,
		host, port, demo.FranceClient, demo.BlockedName,
		host, port, demo.OutsideClient, demo.BlockedName, demo.BlockedAddr,
		self, demo.BlockedName, demo.FranceClient, api.RecordURL(publicURL, o.ID))
	if _, err := exec.LookPath("dig"); err != nil {
		fmt.Fprintln(w, "\n(dig is in Debian's bind9-dnsutils package: apt-get install -y bind9-dnsutils)")
	}
	fmt.Fprintln(w)
}

func demoNames(o *order.Order) []string {
	var out []string
	for _, t := range o.Targets {
		out = append(out, t.FQDN)
	}
	return out
}
