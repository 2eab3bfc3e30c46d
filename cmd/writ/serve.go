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
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/api"
	"github.com/writ-project/writ/dnsserver"
	"github.com/writ-project/writ/internal/config"
	"github.com/writ-project/writ/internal/demo"
	"github.com/writ-project/writ/internal/localzone"
	"github.com/writ-project/writ/internal/pace"
	"github.com/writ-project/writ/ledger"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/publicrecord"
	"github.com/writ-project/writ/registry"
	"github.com/writ-project/writ/rpz"
	"github.com/writ-project/writ/scope"
	"github.com/writ-project/writ/store"
	"github.com/writ-project/writ/web"
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
database in the data directory, or in a PostgreSQL database several nodes
share (--store), and survive restarts and crashes.

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

  writ serve --store postgres://writ@db.example/writ --node resolver-2
      Shares the orders of a PostgreSQL database with the other nodes that
      name it: an order accepted by any node is enforced by all within a
      second, and every node serves the same ledger (see store/README.md).

  writ serve --config /etc/writ/writ.yaml
`

func runServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", serveHelp, stdout, stderr)
	var (
		configPath = fs.String("config", "", "YAML configuration `file`")
		dataDir    = fs.String("data-dir", "", "directory for the database and the API token (default "+config.DefaultDataDir+")")
		storeURL   = fs.String("store", "", "order store: `postgres://user@host/db` to share one with other nodes, sqlite:PATH, or empty for <data-dir>/writ.db")
		nodeName   = fs.String("node", "", "`name` of this node in receipts and logs (default the host name)")
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
	// RPZ feed flags; the other rpz.* settings come from the file.
	var rpzListen, rpzNotify listFlag
	fs.Var(&rpzListen, "rpz", "RPZ feed listen `address` (UDP and TCP; repeatable; default: no feed; see rpz/README.md)")
	fs.Var(&rpzNotify, "rpz-notify", "secondary `address:port` told of every RPZ change by NOTIFY (repeatable)")
	// HTTP gate flags (gate.go); the other gate.* settings come from the file.
	gateFlags := newServeGateFlags(fs)
	if err := parseNoArgs(fs, args, "serve"); err != nil {
		return err
	}

	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	setIf(&cfg.DataDir, *dataDir)
	setIf(&cfg.Store.URL, *storeURL)
	setIf(&cfg.Node, *nodeName)
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

	// RPZ feed
	if len(rpzListen) > 0 {
		cfg.RPZ.Listen = rpzListen
	}
	if len(rpzNotify) > 0 {
		cfg.RPZ.Notify = rpzNotify
	}
	// end of RPZ feed

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
	st, shared, err := openStore(ctx, res.Store, log)
	if err != nil {
		return err
	}
	defer st.Close()
	reg, err := registry.Open(ctx, st, registry.Options{Intake: res.Intake, ExpiryReminder: res.ExpiryReminder, Logger: log})
	if err != nil {
		return err
	}
	defer reg.Close()
	if shared != nil {
		// Other nodes write to the same store: follow them.
		go followStore(ctx, shared, reg, res.Store.SyncInterval, log)
	}
	// The token in the data directory is the operator's credential, from
	// which the operator creates the others (writ principal add).
	if err := reg.EnsurePrincipal(ctx, bootstrapPrincipal(res), token); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("%w: another node named %q shares the store with other credentials; give each node its own --node name", err, res.Node)
		}
		return err
	}

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
	// Receipts: the DNS server enforces each snapshot the moment it is
	// published, so its receipts follow the holder.
	go followReceipts(ctx, reg, "dns@"+res.Node, log)

	// RPZ feed: the policy of each jurisdiction as a response policy zone
	// for the operator's resolvers, following the same snapshots as dns.
	if res.RPZ != nil {
		res.RPZ.Logger = log
		res.RPZ.StateFile = filepath.Join(cfg.DataDir, "rpz-state.json")
		res.RPZ.RecordURL = func(id string) string { return api.RecordURL(res.PublicURL, id) }
		// A secondary that transferred a serial enforces the policy that
		// serial carries: that is its receipt.
		zoneScope := map[string]string{}
		res.RPZ.OnTransfer = func(zone string, serial uint32, version uint64, peer netip.Addr, _ bool) {
			rc := policy.Receipt{Point: "rpz:" + peer.String() + "/" + strings.TrimSuffix(zone, "."), Version: version, At: time.Now(), Scope: zoneScope[zone]}
			if err := reg.Receipt(ctx, rc); err != nil && ctx.Err() == nil {
				log.Error("recording an RPZ receipt failed", "zone", zone, "serial", serial, "err", err)
			}
		}
		feed, err := rpz.New(*res.RPZ, reg.Policy())
		if err != nil {
			return err
		}
		for _, c := range res.RPZ.Scopes {
			zoneScope[feed.Zone(c)] = c.String()
		}
		if err := feed.Start(ctx); err != nil {
			return err
		}
		defer feed.Shutdown(context.Background())
	}
	// end of RPZ feed

	prom := prometheus.NewRegistry()
	prom.MustRegister(reg.Metrics(), dns.Metrics, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// HTTP gate: the HTTP 451 enforcement point, on the same policy
	// snapshots as dns, when a gate listener is configured (gate.go).
	gate, err := startServeGate(ctx, gateFlags, &cfg, res.PublicURL, reg.Policy(), resolver, log)
	if err != nil {
		return err
	}
	if gate != nil {
		defer gate.Shutdown(context.Background())
		prom.MustRegister(gate.Gate().Metrics)
		// Like dns, the gate decides with each snapshot once published.
		go followReceipts(ctx, reg, "gate@"+res.Node, log)
	}
	// end of HTTP gate
	// Piracy Shield connector: when piracyshield.url is set, AGCOM's lists
	// are applied for Italy through this registry and each item reported
	// back once the enforcement points have applied it (connect.go).
	if res.PiracyShield != nil {
		stopPiracyShield, err := startPiracyShield(ctx, res.PiracyShield, reg, prom, log)
		if err != nil {
			return err
		}
		defer stopPiracyShield()
	}
	// end of Piracy Shield connector
	handler, err := api.New(api.Config{
		PublicURL:    res.PublicURL,
		MaxBodyBytes: cfg.HTTP.MaxBodyBytes,
		BlockAnswer:  blockAnswer(res.DNS),
		Gatherer:     prom,
		Logger:       log,
	}, reg, resolver)
	if err != nil {
		return err
	}
	// Ledger and public record: the Merkle log of every order event, caught
	// up with the store before anything is served and kept in step with it
	// after, and the public pages, report and exports, mounted in front of
	// the API (publicRecordHandler in ledger.go lists the routes).
	ledgerOpts := ledger.Options{Origin: res.Transparency.LedgerOrigin, DefaultOrigin: ledger.DefaultOrigin(res.PublicURL), Logger: log}
	if shared != nil {
		// Every node derives the same entries from the shared store; with
		// one key they serve the same checkpoints.
		origin := ledgerOpts.Origin
		if origin == "" {
			origin = ledgerOpts.DefaultOrigin
		}
		if ledgerOpts.SignerKey, err = sharedLedgerKey(ctx, st, cfg.DataDir, origin); err != nil {
			return err
		}
	}
	led, err := ledger.Open(ctx, cfg.DataDir, ledgerOpts)
	if err != nil {
		return err
	}
	defer led.Close()
	if n, err := led.Sync(ctx, st); err != nil {
		return fmt.Errorf("ledger: catching up with the order store: %w", err)
	} else if n > 0 {
		log.Info("ledger caught up with the order store", "entries", n, "size", led.Size())
	}
	var lumen *publicrecord.Lumen
	if res.Transparency.LumenURL != "" {
		lumen, err = publicrecord.OpenLumen(publicrecord.LumenConfig{URL: res.Transparency.LumenURL, Token: res.Transparency.LumenToken,
			StateFile: filepath.Join(cfg.DataDir, "lumen-notices.json"), Logger: log})
		if err != nil {
			return err
		}
	}
	record := publicrecord.New(publicrecord.Config{PublicURL: res.PublicURL, Operator: cfg.Operator.Name, Lumen: lumen, Logger: log}, reg)
	followCtx, stopFollowing := context.WithCancel(ctx)
	followed := make(chan struct{}, 2)
	go func() { led.Follow(followCtx, st, reg.Changed, 10*time.Second); followed <- struct{}{} }()
	go func() { record.FollowLumen(followCtx, reg.Changed, time.Minute); followed <- struct{}{} }()
	// The followers stop before the ledger closes (defers run last first).
	defer func() { stopFollowing(); <-followed; <-followed }()
	log.Info("ledger open", "origin", led.Origin(), "size", led.Size(), "public_key", led.VerifierKey())
	handler = publicRecordHandler(handler, led, st, record)
	// end of ledger and public record
	// Web console: the pages for operators and reviewers under /console/
	// (web/README.md), in front of everything else. People log in with
	// their API credentials and act through the same registry as the API.
	if res.Console.Enabled {
		console, err := web.New(web.Config{
			PublicURL:   res.PublicURL,
			BlockAnswer: blockAnswer(res.DNS),
			IdleTimeout: res.Console.IdleTimeout,
			Logger:      log,
		}, web.Sources{Registry: reg, Policy: reg.Policy(), Scoper: resolver, Counters: reg.Counters(), Ledger: led})
		if err != nil {
			return err
		}
		// Samples the block counters for the charts; stops with ctx.
		go console.Run(ctx)
		outer := http.NewServeMux()
		outer.Handle(web.Prefix, console)
		outer.Handle("/", handler)
		handler = outer
		log.Info("web console", "url", res.PublicURL+web.Prefix)
	}
	// end of web console
	// API security (api/README.md, "Security"): one guard in front of
	// everything served over HTTP (the API, the ledger, the public record
	// and the console's pages) authenticates bearer tokens and holds
	// requests without valid credentials, the console's login among them,
	// to http.rate_limit per client address.
	guard := api.NewGuard(res.RateLimit, reg, log)
	prom.MustRegister(guard)
	handler = guard.Wrap(handler)
	// end of API security
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

// receiptGap is the least time between two receipts of one enforcement
// point; see followReceipts.
const receiptGap = 100 * time.Millisecond

// followReceipts records a receipt for point at each policy version the
// registry publishes, until ctx ends.
func followReceipts(ctx context.Context, reg *registry.Registry, point string, log *slog.Logger) {
	// Under a stream of changes, at most one receipt every receiptGap: a
	// receipt for a version stands for the versions before it, and is
	// recorded no earlier than it was applied.
	pace.Follow(ctx, receiptGap, reg.Policy().Changed, nil, func(ctx context.Context) {
		v := reg.Policy().Load().Version()
		if err := reg.Receipt(ctx, policy.Receipt{Point: point, Version: v, At: time.Now()}); err != nil && ctx.Err() == nil {
			log.Error("recording a receipt failed", "point", point, "version", v, "err", err)
		}
	})
}

// operatorPrincipal holds the token of the data directory's api-token file.
var operatorPrincipal = access.Principal{ID: "operator", Name: "operator (data directory token)", Role: access.Operator}

// bootstrapPrincipal is the principal of the data directory's token: the
// operator, or with a shared store the operator on this node, since each
// node's data directory holds its own token.
func bootstrapPrincipal(res *config.Resolved) access.Principal {
	if !res.Store.Shared() {
		return operatorPrincipal
	}
	p := operatorPrincipal
	p.ID = "operator@" + res.Node
	p.Name = "operator (data directory token of node " + res.Node + ")"
	return p
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
	o, err := reg.Submit(ctx, sub, operatorPrincipal)
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
