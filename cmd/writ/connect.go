package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/writ-project/writ/internal/config"
	"github.com/writ-project/writ/piracyshield"
	"github.com/writ-project/writ/registry"
)

func init() {
	register(command{name: "connect", rank: 6, run: runConnect,
		usage: []string{"writ connect piracyshield       apply Italy's Piracy Shield lists through a writ server, and report back"}})
}

const connectHelp = `
Usage: writ connect piracyshield [flags]

Connects a writ server to Italy's Piracy Shield platform (AGCOM), as the
provider account given: it polls the platform's blocking lists, records
each ticket as a writ order for Italy (new items as amendments, items gone
from the lists removed), and reports each item back to the platform —
processed once the server's enforcement points have applied it,
unprocessed with the reason when writ holds it for review or refuses it.

writ serve runs the same connector in-process when its configuration has
a piracyshield.url; this command is for a connector on another host, or a
writ serve without one. It talks to the server's API with the token of an
authority principal for AGCOM (writ principal add … --role authority
--authority agcom) or the operator's; with --reviewer-token it can also
release the targets that writ holds only because it reviews delegated
reporters' orders (see piracyshield/README.md).

Settings come from the piracyshield section of --config (and its data_dir,
where the connector keeps piracyshield-state.json), then flags.

Examples:
  writ connect piracyshield --config /etc/writ/writ.yaml --api http://127.0.0.1:8080 \
      --token-file /etc/writ/agcom.token --metrics 127.0.0.1:9464

  writ connect piracyshield --url https://platform.example/api/v1 --email noc@isp.example.it \
      --password-file /etc/writ/ps-password --once
      One poll and one round of reports, then a summary: for a first check.
`

func runConnect(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || isHelp(args[0]) {
		fmt.Fprint(stdout, strings.TrimLeft(connectHelp, "\n"))
		if len(args) == 0 {
			return usageError("connect needs a platform: piracyshield")
		}
		return nil
	}
	if args[0] != "piracyshield" {
		return usageError("unknown platform %q: writ connects to piracyshield", args[0])
	}
	return runConnectPiracyShield(args[1:], stdout, stderr)
}

func runConnectPiracyShield(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("connect piracyshield", connectHelp, stdout, stderr)
	c := clientFlags(fs)
	var (
		configPath   = fs.String("config", "", "YAML configuration `file` (its piracyshield section and data_dir)")
		dataDir      = fs.String("data-dir", "", "`directory` of the connector's state file (default "+config.DefaultDataDir+")")
		url          = fs.String("url", "", "the platform's API base `URL` (piracyshield.url)")
		email        = fs.String("email", "", "the provider account's `e-mail` (piracyshield.email)")
		passwordFile = fs.String("password-file", "", "`file` holding the provider account's password (piracyshield.password_file)")
		caFile       = fs.String("ca-file", "", "PEM `file` of the CAs of the platform's certificate (piracyshield.ca_file)")
		interval     = fs.Duration("poll-interval", 0, "how often the lists are checked (piracyshield.poll_interval; default 60s)")
		review       = fs.String("review", "", "what waits for a writ reviewer: safeguards or all (piracyshield.review)")
		reviewer     = fs.String("reviewer-token", os.Getenv("WRIT_REVIEWER_TOKEN"), "a reviewer's API `token`, to release targets held only for review (env WRIT_REVIEWER_TOKEN)")
		metricsAddr  = fs.String("metrics", "", "serve Prometheus /metrics on this `address`")
		once         = fs.Bool("once", false, "poll once, report what is settled (waiting up to --wait for receipts), print a summary and exit")
		wait         = fs.Duration("wait", 30*time.Second, "with --once, how long to wait for enforcement receipts")
		logLevel     = fs.String("log-level", "", "debug, info, warn or error (default info)")
		logFormat    = fs.String("log-format", "", "text or json (default text)")
		points       listFlag
	)
	fs.Var(&points, "point", "an enforcement `point` whose receipt an item needs before it is reported processed (repeatable; piracyshield.points)")
	if err := parseNoArgs(fs, args, "connect piracyshield"); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	ps := &cfg.PiracyShield
	setIf(&cfg.DataDir, *dataDir)
	setIf(&ps.URL, *url)
	setIf(&ps.Email, *email)
	setIf(&ps.PasswordFile, *passwordFile)
	setIf(&ps.CAFile, *caFile)
	setIf(&ps.Review, *review)
	setIf(&cfg.Log.Level, *logLevel)
	setIf(&cfg.Log.Format, *logFormat)
	if *interval != 0 {
		ps.PollInterval = config.Duration(*interval)
	}
	if len(points) > 0 {
		ps.Points = points
	}
	resolved, err := ps.Resolve(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("configuration:\n%w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	log := newLogger(stderr, cfg.Log)
	resolved.Logger = log
	token, err := c.authToken()
	if err != nil {
		return err
	}
	w, err := piracyshield.OverHTTP(c.base, token, *reviewer, nil)
	if err != nil {
		return usageError("%v", err)
	}
	conn, err := piracyshield.New(*resolved, w)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if *metricsAddr != "" {
		prom := prometheus.NewRegistry()
		prom.MustRegister(conn.Metrics(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		ln, err := net.Listen("tcp", *metricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics %s: %w", *metricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(prom, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("metrics listening", "addr", ln.Addr().String())
	}

	if *once {
		return connectOnce(ctx, conn, *wait, stdout)
	}
	log.Info("piracy shield connector running", "platform", resolved.URL, "writ", c.base, "poll_interval", resolved.PollInterval,
		"review", resolved.Review, "state", resolved.StateFile)
	return conn.Run(ctx)
}

// connectOnce polls once and reports, looking again for receipts (more
// and more rarely) until nothing waits or wait has passed.
func connectOnce(ctx context.Context, conn *piracyshield.Connector, wait time.Duration, stdout io.Writer) error {
	if err := conn.Sync(ctx); err != nil {
		return err
	}
	deadline := time.Now().Add(wait)
	pause := 20 * time.Millisecond
	for {
		waiting, err := conn.Report(ctx)
		if err != nil {
			return err
		}
		if waiting == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
	s := conn.Summary()
	fmt.Fprintf(stdout, "piracy shield: %d tickets; items: %d processed, %d unprocessed, %d awaiting receipts\n",
		s.Tickets, s.Processed, s.Unprocessed, s.Awaiting)
	if s.Awaiting > 0 {
		return fmt.Errorf("%d items still wait for enforcement receipts after %v: run again, or check the points with writ point list (retire one taken out of service with writ point retire NAME)", s.Awaiting, wait)
	}
	return nil
}

// startPiracyShield runs the Piracy Shield connector inside writ serve,
// on the registry of the process, with its metrics in prom. The function
// it returns stops the connector and waits for it.
func startPiracyShield(ctx context.Context, cfg *piracyshield.Config, reg *registry.Registry, prom *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	cfg.Logger = log.With("component", "piracyshield")
	conn, err := piracyshield.New(*cfg, piracyshield.InProcess(reg))
	if err != nil {
		return nil, err
	}
	if err := prom.Register(conn.Metrics()); err != nil {
		return nil, fmt.Errorf("piracy shield metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- conn.Run(ctx) }()
	log.Info("piracy shield connector started", "platform", cfg.URL, "poll_interval", cfg.PollInterval, "review", cfg.Review, "state", cfg.StateFile)
	return func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			log.Error("piracy shield connector stopped", "err", err)
		}
	}, nil
}
