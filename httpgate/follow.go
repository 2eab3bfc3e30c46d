package httpgate

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
)

// Follower keeps a local copy of a writ server's policy for a gate on
// another host. It asks the server's /healthz for the policy version
// every poll interval, and at once when the server's event stream
// announces a change; when the version changed it reads the orders
// (GET /v1/orders) and compiles them with policy.Compile, as the server
// does. Between fetches it recompiles on its own when an order expires.
//
// A failure never widens a block: when the server cannot be reached or
// answers nonsense, the last policy stays in force (orders still expire
// on time) and the failure is logged and counted. Before the first
// successful fetch the policy is empty.
type Follower struct {
	base     string
	client   *http.Client
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time

	holder   *policy.Holder
	counters *policy.CounterSet

	mu         sync.Mutex
	orders     []*order.Order // enforced by the server at the last fetch
	version    uint64
	nextChange time.Time // next effective or expiry time of any order

	failing              atomic.Bool
	fetchOK, fetchErrors atomic.Uint64
	lastSuccess          atomic.Int64
	// Metrics exports the follower's state; register it with Prometheus.
	Metrics *FollowerMetrics
}

// FollowerConfig configures a Follower.
type FollowerConfig struct {
	// Server is the writ server's API base URL ("http://writ:8080").
	Server string
	// PollInterval is how often the policy version is checked. Default 1s.
	PollInterval time.Duration
	// Client makes the requests. Default: a client with a 10s timeout.
	Client *http.Client
	Logger *slog.Logger
}

// DefaultPollInterval is how often a Follower checks the policy version.
const DefaultPollInterval = time.Second

// NewFollower returns a follower of the server at cfg.Server; call Sync
// or Run to fetch the policy.
func NewFollower(cfg FollowerConfig) (*Follower, error) {
	if _, err := ParseOrigin(cfg.Server); err != nil {
		return nil, fmt.Errorf("gate follow: writ server %q: want http://host:port or https://…", cfg.Server)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	f := &Follower{
		base:     strings.TrimSuffix(cfg.Server, "/"),
		client:   cfg.Client,
		interval: cfg.PollInterval,
		log:      cfg.Logger,
		now:      time.Now,
		holder:   policy.NewHolder(nil),
		counters: &policy.CounterSet{},
	}
	f.Metrics = &FollowerMetrics{f: f}
	return f, nil
}

// Policy returns the holder of the followed policy, for New.
func (f *Follower) Policy() *policy.Holder { return f.holder }

// Version is the server's policy version the local policy was compiled
// from; 0 before the first fetch.
func (f *Follower) Version() uint64 { return f.holder.Load().Version() }

// Run follows the server until ctx ends: Sync every poll interval, at
// the next time an order takes effect or expires, and at once when the
// server's event stream (GET /v1/events) announces a change, so that an
// order reaches the gate in milliseconds rather than at the next poll.
// The stream only hastens: if it cannot be had, polling goes on alone.
func (f *Follower) Run(ctx context.Context) {
	kick := make(chan struct{}, 1)
	go f.watch(ctx, kick)
	for {
		wait := f.interval
		f.mu.Lock()
		if nc := f.nextChange; !nc.IsZero() {
			wait = min(wait, max(0, nc.Sub(f.now())))
		}
		f.mu.Unlock()
		if !pause(ctx, wait, kick) {
			return
		}
		f.Sync(ctx)
	}
}

// pause waits for d, or until kick (nil: never) if sooner, and reports
// false if ctx ended first.
func pause(ctx context.Context, d time.Duration, kick <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-kick:
	}
	return true
}

// watch reads the server's event stream until ctx ends, sending on kick
// (without waiting: one pending kick is enough) at each event, and
// connects again after a failure, waiting longer each time up to
// streamRetryMax.
func (f *Follower) watch(ctx context.Context, kick chan<- struct{}) {
	// The stream lives as long as it is useful: the client's timeout
	// would end it, so it gets a client of its own on the same transport.
	client := &http.Client{Transport: f.client.Transport}
	wait := streamRetryMin
	for {
		f.mu.Lock()
		after := f.version
		f.mu.Unlock()
		start := f.now()
		err := f.stream(ctx, client, after, kick)
		if ctx.Err() != nil {
			return
		}
		if f.now().Sub(start) > streamRetryMax {
			wait = streamRetryMin // it worked for a while
		}
		f.log.Debug("gate event stream ended; polling meanwhile", "server", f.base, "err", err, "retry_in", wait)
		if !pause(ctx, wait, nil) {
			return
		}
		wait = min(2*wait, streamRetryMax)
	}
}

// Bounds of the wait before the event stream is opened again.
const (
	streamRetryMin = time.Second
	streamRetryMax = 30 * time.Second
)

// stream reads one event stream, from the events after seq after, and
// kicks at each event; it returns when the stream ends.
func (f *Follower) stream(ctx context.Context, client *http.Client, after uint64, kick chan<- struct{}) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/events?after=%d", f.base, after), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
		return fmt.Errorf("GET /v1/events: %s (%s)", resp.Status, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "id:") {
			select {
			case kick <- struct{}{}:
			default:
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return io.EOF
}

// Sync brings the local policy up to date: it fetches the orders if the
// server's policy version changed or an order's time came, and
// recompiles if an order expired. On failure the last policy stays and
// the error is returned.
func (f *Follower) Sync(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	due := !f.nextChange.IsZero() && !now.Before(f.nextChange)
	err := f.fetch(ctx, due)
	if err != nil {
		f.fetchErrors.Add(1)
		if !f.failing.Swap(true) {
			f.log.Warn("gate cannot reach the writ server; keeping the last policy", "server", f.base, "policy_version", f.version, "err", err)
		}
		if due {
			// Orders expire on time even while the server is away. This
			// only removes orders: every one compiled was enforced by the
			// server at the last fetch.
			f.publish(f.orders, f.version, now)
		}
		return err
	}
	f.fetchOK.Add(1)
	f.lastSuccess.Store(f.now().UnixNano())
	if f.failing.Swap(false) {
		f.log.Info("gate reached the writ server again", "server", f.base, "policy_version", f.version)
	}
	return nil
}

// fetch reads the version and, when it changed (or force), the orders.
// The version is read first, so the orders read after it are at least as
// recent: a change in between makes the next poll fetch again.
func (f *Follower) fetch(ctx context.Context, force bool) error {
	var health struct {
		Version *uint64 `json:"policy_version"`
	}
	if err := f.getJSON(ctx, "/healthz", &health); err != nil {
		return err
	}
	if health.Version == nil {
		return errors.New("/healthz has no policy_version: is this a writ server?")
	}
	v := *health.Version
	if v == f.version && f.holder.Load().Version() == v && f.fetchOK.Load() > 0 && !force {
		return nil
	}
	var list struct {
		Orders []struct {
			order.Order
			Enforced bool `json:"enforced"`
		} `json:"orders"`
	}
	if err := f.getJSON(ctx, "/v1/orders", &list); err != nil {
		return err
	}
	var enforced []*order.Order
	next := time.Time{}
	now := f.now()
	for i := range list.Orders {
		o := &list.Orders[i].Order
		if n, ok := o.NextChange(now); ok && (next.IsZero() || n.Before(next)) {
			next = n
		}
		// Only what the server enforces: the local clock may only end an
		// order, never start one the server does not yet enforce.
		if list.Orders[i].Enforced {
			enforced = append(enforced, o)
		}
	}
	f.nextChange = next
	f.publish(enforced, v, now)
	return nil
}

// publish compiles and stores the policy of orders at now. Callers hold mu.
func (f *Follower) publish(orders []*order.Order, version uint64, now time.Time) {
	prev := f.holder.Load()
	first := f.fetchOK.Load() == 0
	f.orders, f.version = orders, version
	snap := policy.Compile(orders, now, version, f.counters)
	f.holder.Store(snap)
	if first || snap.Version() != prev.Version() || len(snap.Orders()) != len(prev.Orders()) {
		f.log.Info("gate policy applied", "policy_version", version, "orders_enforced", len(snap.Orders()),
			"names", snap.Names(), "prefixes", snap.Prefixes(), "urls", snap.URLs())
	}
}

func (f *Follower) getJSON(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	return nil
}

// FollowerMetrics exports a follower's state and the blocks counted per
// order by the gate that uses it.
type FollowerMetrics struct{ f *Follower }

var (
	descFetches     = prometheus.NewDesc("writ_gate_policy_fetches_total", "Checks of the writ server's policy, by result.", []string{"result"}, nil)
	descLastSuccess = prometheus.NewDesc("writ_gate_policy_last_success_timestamp_seconds", "When the writ server last answered a policy check (Unix time; 0: never).", nil, nil)
	descStale       = prometheus.NewDesc("writ_gate_policy_stale", "1 while the writ server cannot be reached and the last policy is kept, else 0.", nil, nil)
	descOrderBlocks = prometheus.NewDesc("writ_order_blocks_total", "Requests blocked, by order.", []string{"order"}, nil)
)

// Describe implements prometheus.Collector.
func (m *FollowerMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descFetches, descLastSuccess, descStale, descOrderBlocks} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *FollowerMetrics) Collect(ch chan<- prometheus.Metric) {
	f := m.f
	ch <- prometheus.MustNewConstMetric(descFetches, prometheus.CounterValue, float64(f.fetchOK.Load()), "ok")
	ch <- prometheus.MustNewConstMetric(descFetches, prometheus.CounterValue, float64(f.fetchErrors.Load()), "error")
	last := 0.0
	if ns := f.lastSuccess.Load(); ns != 0 {
		last = float64(ns) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, last)
	stale := 0.0
	if f.failing.Load() {
		stale = 1
	}
	ch <- prometheus.MustNewConstMetric(descStale, prometheus.GaugeValue, stale)
	f.counters.Each(func(id string, c *policy.Counters) {
		ch <- prometheus.MustNewConstMetric(descOrderBlocks, prometheus.CounterValue, float64(c.Blocks.Load()), id)
	})
}
