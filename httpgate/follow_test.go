package httpgate

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-project/writ/order"
)

// fakeWrit answers /healthz and /v1/orders as a writ server does.
type fakeWrit struct {
	mu       sync.Mutex
	version  uint64
	orders   []*order.Order
	down     bool
	listings int
	// changed is closed at each set, for the event stream.
	changed chan struct{}
}

func (w *fakeWrit) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/events" {
		w.events(rw, r)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.down {
		http.Error(rw, "maintenance", http.StatusServiceUnavailable)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/healthz":
		json.NewEncoder(rw).Encode(map[string]any{"status": "ok", "policy_version": w.version})
	case "/v1/orders":
		w.listings++
		now := time.Now()
		type view struct {
			*order.Order
			Status   order.Status `json:"status"`
			Enforced bool         `json:"enforced"`
		}
		out := []view{}
		for _, o := range w.orders {
			out = append(out, view{o, o.StatusAt(now), o.EnforcedAt(now)})
		}
		json.NewEncoder(rw).Encode(map[string]any{"orders": out, "policy_version": w.version})
	default:
		http.NotFound(rw, r)
	}
}

func (w *fakeWrit) set(f func(w *fakeWrit)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f(w)
	if w.changed != nil {
		close(w.changed)
	}
	w.changed = make(chan struct{})
}

// events is a server-sent event stream announcing each version from
// ?after= on, as writ's GET /v1/events does with its events.
func (w *fakeWrit) events(rw http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	rw.Header().Set("Content-Type", "text/event-stream")
	rw.WriteHeader(http.StatusOK)
	rw.(http.Flusher).Flush()
	for {
		w.mu.Lock()
		if w.changed == nil {
			w.changed = make(chan struct{})
		}
		changed, version, down := w.changed, w.version, w.down
		w.mu.Unlock()
		if down {
			return
		}
		for ; after < version; after++ {
			fmt.Fprintf(rw, "id: %d\nevent: amended\ndata: {}\n\n", after+1)
		}
		rw.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		}
	}
}

// A change announced on the event stream is fetched at once, though the
// next poll is an hour away.
func TestFollowerEventStream(t *testing.T) {
	now := time.Now()
	w := &fakeWrit{version: 1, orders: testOrders(now)}
	srv := httptest.NewServer(w)
	defer srv.Close()
	f, err := NewFollower(FollowerConfig{Server: srv.URL, PollInterval: time.Hour, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(t.Context()); err != nil || f.Version() != 1 {
		t.Fatalf("first sync: version %d, %v", f.Version(), err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		f.Run(ctx)
		close(done)
	}()
	defer func() { cancel(); <-done }()
	h := f.Policy()
	changed := h.Changed()
	w.set(func(w *fakeWrit) { w.version = 2 })
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("the announced change was not fetched; the next poll is an hour away")
	}
	if v := h.Load().Version(); v != 2 {
		t.Fatalf("version %d after the announcement, want 2", v)
	}
}

func TestFollower(t *testing.T) {
	now := time.Now()
	orders := testOrders(now)
	scheduled := orders[1].Clone()
	scheduled.ID = "20250501-later"
	scheduled.Effective = now.Add(time.Hour)
	scheduled.Expires = now.Add(2 * time.Hour)
	scheduled.Targets = []order.Target{{FQDN: "later.example", State: order.TargetActive}}
	w := &fakeWrit{version: 10, orders: []*order.Order{orders[0], orders[1], scheduled}}
	srv := httptest.NewServer(w)
	defer srv.Close()

	f, err := NewFollower(FollowerConfig{Server: srv.URL + "/", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	clock := now
	f.now = func() time.Time { return clock }
	g, err := New(Config{BlockedBy: blockedByURL, Logger: quiet}, f.Policy(), testResolver(t))
	if err != nil {
		t.Fatal(err)
	}
	decide := func(host string, client string) string {
		d := g.Decide(Request{Host: host, Path: "/", Client: netip.MustParseAddr(client)})
		if d.Order == nil {
			return ""
		}
		return d.Order.ID
	}
	ctx := context.Background()

	// Before the first fetch nothing is blocked.
	if decide("motogpstream.me", frClient) != "" || f.Version() != 0 {
		t.Fatal("blocking before any policy was fetched")
	}
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if decide("motogpstream.me", frClient) != "20250328-paris" || decide("news.example", outClient) != "" || f.Version() != 10 || g.AppliedVersion() != 10 {
		t.Fatalf("after the first fetch: version %d", f.Version())
	}
	if decide("calcio.example", itClient) != "20250401-agcom" {
		t.Error("the Italian order is not applied")
	}
	if decide("later.example", itClient) != "" {
		t.Error("an order the server does not enforce yet is applied")
	}
	// Unchanged version: no listing.
	f.Sync(ctx)
	if w.listings != 1 {
		t.Errorf("listings %d after an unchanged version, want 1", w.listings)
	}

	// A revocation on the server reaches the gate at the next sync.
	revoked := orders[0].Clone()
	revoked.Disposition = order.Revoked
	revoked.DispositionAt = &now
	w.set(func(w *fakeWrit) { w.version, w.orders[0] = 11, revoked })
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if decide("motogpstream.me", frClient) != "" || f.Version() != 11 {
		t.Fatal("revocation not applied")
	}

	// The server goes away: the last policy stays in force, and the
	// failure shows in the metrics.
	w.set(func(w *fakeWrit) { w.down = true })
	if err := f.Sync(ctx); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Sync against a server answering 503: %v", err)
	}
	if decide("calcio.example", itClient) != "20250401-agcom" {
		t.Fatal("an unreachable server lifted the blocks")
	}
	m := gather(t, f.Metrics)
	if m["writ_gate_policy_stale"] != 1 || m[`writ_gate_policy_fetches_total{result="error"}`] != 1 || m[`writ_gate_policy_fetches_total{result="ok"}`] != 3 {
		t.Errorf("metrics while the server is down: %v", m)
	}
	// Orders expire on time all the same.
	clock = now.Add(31 * time.Second)
	f.Sync(ctx)
	if decide("calcio.example", itClient) != "" {
		t.Fatal("an expired order still blocks while the server is down")
	}

	// Back: the scheduled order takes effect when its time comes, as the
	// server says.
	w.set(func(w *fakeWrit) { w.down = false })
	clock = now.Add(time.Hour + time.Second)
	scheduledNow := func() {
		// The fake server decides with the real clock: move the order
		// instead.
		w.set(func(w *fakeWrit) { w.orders[2].Effective = time.Now().Add(-time.Second) })
	}
	scheduledNow()
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if decide("later.example", itClient) != "20250501-later" {
		t.Error("the scheduled order did not take effect")
	}
	m = gather(t, f.Metrics)
	if m["writ_gate_policy_stale"] != 0 || m["writ_gate_policy_last_success_timestamp_seconds"] == 0 {
		t.Errorf("metrics once the server is back: %v", m)
	}
}

func TestFollowerRejectsNonWrit(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	f, err := NewFollower(FollowerConfig{Server: srv.URL, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(context.Background()); err == nil || !strings.Contains(err.Error(), "policy_version") {
		t.Errorf("Sync against a server without policy_version: %v", err)
	}
	if _, err := NewFollower(FollowerConfig{Server: "writ:8080"}); err == nil {
		t.Error("a server without scheme accepted")
	}
}

func TestFollowerRun(t *testing.T) {
	now := time.Now()
	w := &fakeWrit{version: 1, orders: testOrders(now)}
	srv := httptest.NewServer(w)
	defer srv.Close()
	f, err := NewFollower(FollowerConfig{Server: srv.URL, PollInterval: time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		f.Run(ctx)
		close(done)
	}()
	// Run publishes through the holder: wait for the version to arrive.
	h := f.Policy()
	for {
		changed := h.Changed()
		if h.Load().Version() == 1 {
			break
		}
		<-changed
	}
	w.set(func(w *fakeWrit) { w.version = 2 })
	for {
		changed := h.Changed()
		if h.Load().Version() == 2 {
			break
		}
		<-changed
	}
	cancel()
	<-done
}
