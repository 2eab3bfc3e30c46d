package registry

import (
	"context"
	"errors"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/store"
)

// fakeClock is a clock whose time moves only when the test says so;
// timers fire, in order, as it passes their deadline.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at      time.Time
	f       func()
	stopped bool
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// Advance moves time forward by d, firing due timers synchronously.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		sort.Slice(c.timers, func(i, j int) bool { return c.timers[i].at.Before(c.timers[j].at) })
		var due *fakeTimer
		for _, t := range c.timers {
			if !t.stopped && !t.at.After(end) {
				due = t
				break
			}
		}
		if due == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		due.stopped = true
		if due.at.After(c.now) {
			c.now = due.at
		}
		c.mu.Unlock()
		due.f()
	}
}

var (
	t0       = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	fr       = jurisdiction.MustParse("FR")
	operator = access.Principal{ID: "test", Name: "test", Role: access.Operator}
)

func open(t *testing.T, path string, clock *fakeClock) (*Registry, *store.SQLite) {
	t.Helper()
	st, err := store.OpenSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r, err := Open(context.Background(), st, Options{Clock: clock, Intake: order.Intake{Safeguards: order.Safeguards{SharedInfra: order.DefaultSharedInfra()}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, st
}

func submission(effective, expires time.Time, names ...string) *order.Submission {
	s := &order.Submission{
		Authority:    order.Authority{ID: "tj-paris", Name: "Tribunal judiciaire de Paris", Kind: order.Court, Jurisdiction: "FR"},
		LegalBasis:   order.LegalBasis{Case: "Canal+ v. Cloudflare"},
		Jurisdiction: []string{"FR"},
		Effective:    effective.Format(time.RFC3339),
		Expires:      expires.Format(time.RFC3339),
	}
	for _, n := range names {
		s.Targets = append(s.Targets, order.SubmittedTarget{FQDN: n, Subdomains: true})
	}
	return s
}

func blocked(r *Registry, name string) bool { return r.Policy().Load().MatchName(name, fr) != nil }

func kinds(evs []order.Event) []order.EventKind {
	var out []order.EventKind
	for _, e := range evs {
		out = append(out, e.Kind)
	}
	return out
}

func TestExpiryAndEffectWithoutRestart(t *testing.T) {
	clock := &fakeClock{now: t0}
	r, _ := open(t, filepath.Join(t.TempDir(), "writ.db"), clock)
	ctx := context.Background()
	now, err := r.Submit(ctx, submission(t0.Add(-time.Hour), t0.Add(time.Hour), "now.example"), operator)
	if err != nil {
		t.Fatal(err)
	}
	later, err := r.Submit(ctx, submission(t0.Add(30*time.Minute), t0.Add(2*time.Hour), "later.example"), operator)
	if err != nil {
		t.Fatal(err)
	}
	if !blocked(r, "www.now.example") || blocked(r, "later.example") {
		t.Fatal("wrong policy at t0")
	}
	clock.Advance(30 * time.Minute)
	if !blocked(r, "later.example") {
		t.Fatal("scheduled order not enforced at its effective time")
	}
	clock.Advance(30*time.Minute - time.Nanosecond)
	if !blocked(r, "now.example") {
		t.Fatal("expired a nanosecond early")
	}
	clock.Advance(time.Nanosecond)
	if blocked(r, "now.example") || !blocked(r, "later.example") {
		t.Fatal("order still enforced at its expiry")
	}
	clock.Advance(time.Hour)
	if blocked(r, "later.example") {
		t.Fatal("second order not expired")
	}
	_, evs, _ := r.Order(ctx, now.ID)
	if got := kinds(evs); fmt.Sprint(got) != "[received activated expired]" {
		t.Fatalf("events %v", got)
	}
	_, evs, _ = r.Order(ctx, later.ID)
	if got := kinds(evs); fmt.Sprint(got) != "[received activated expired]" || !evs[1].At.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("events %v", got)
	}
}

func TestLifecycleEventsAreRecordedOnceAcrossRestarts(t *testing.T) {
	clock := &fakeClock{now: t0}
	path := filepath.Join(t.TempDir(), "writ.db")
	r, st := open(t, path, clock)
	ctx := context.Background()
	o, err := r.Submit(ctx, submission(t0.Add(-time.Hour), t0.Add(time.Hour), "a.example"), operator)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	r.Close()
	st.Close()
	// Restarted twice after the expiry: still one expired event.
	for range 2 {
		r, st = open(t, path, clock)
		r.Close()
		st.Close()
	}
	r, _ = open(t, path, clock)
	_, evs, err := r.Order(ctx, o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got := kinds(evs); fmt.Sprint(got) != "[received activated expired]" {
		t.Fatalf("events %v", got)
	}
}

func TestRejectedOrderChangesNothing(t *testing.T) {
	clock := &fakeClock{now: t0}
	r, st := open(t, filepath.Join(t.TempDir(), "writ.db"), clock)
	ctx := context.Background()
	if _, err := r.Submit(ctx, submission(t0, t0.Add(time.Hour), "good.example"), operator); err != nil {
		t.Fatal(err)
	}
	version := r.Policy().Load().Version()
	bad := submission(t0, t0.Add(time.Hour), "fine.example", "co.uk")
	_, err := r.Submit(ctx, bad, operator)
	var inv *order.InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("err = %v", err)
	}
	if blocked(r, "fine.example") || len(r.Orders()) != 1 || r.Policy().Load().Version() != version {
		t.Fatal("a rejected order left a trace")
	}
	orders, v, err := st.Orders(ctx)
	if err != nil || len(orders) != 1 || v != version {
		t.Fatalf("store holds %d orders at version %d (want 1 at %d): %v", len(orders), v, version, err)
	}
}

func TestRevoke(t *testing.T) {
	clock := &fakeClock{now: t0}
	r, _ := open(t, filepath.Join(t.TempDir(), "writ.db"), clock)
	ctx := context.Background()
	o, err := r.Submit(ctx, submission(t0, t0.Add(time.Hour), "a.example"), operator)
	if err != nil {
		t.Fatal(err)
	}
	before := r.Policy().Load().Version()
	if _, err := r.Revoke(ctx, o.ID, "overturned", operator); err != nil {
		t.Fatal(err)
	}
	if blocked(r, "a.example") || r.Policy().Load().Version() <= before {
		t.Fatal("revoked order still enforced, or version not advanced")
	}
	if _, err := r.Revoke(ctx, o.ID, "again", operator); !errors.Is(err, ErrConflict) {
		t.Fatalf("second revoke: %v", err)
	}
	if _, err := r.Revoke(ctx, "nope", "", operator); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown order: %v", err)
	}
	// Time passing does not resurrect it, nor add an expiry event to a
	// revoked order's history.
	clock.Advance(2 * time.Hour)
	_, evs, _ := r.Order(ctx, o.ID)
	if got := kinds(evs); fmt.Sprint(got) != "[received activated revoked]" {
		t.Fatalf("events %v", got)
	}
}

func TestHeldTargetsAreRecordedAndNeverEnforced(t *testing.T) {
	clock := &fakeClock{now: t0}
	r, _ := open(t, filepath.Join(t.TempDir(), "writ.db"), clock)
	ctx := context.Background()
	s := submission(t0, t0.Add(time.Hour), "a.example")
	s.Targets = append(s.Targets, order.SubmittedTarget{IP: "1.1.1.1"})
	o, err := r.Submit(ctx, s, operator)
	if err != nil {
		t.Fatal(err)
	}
	if o.Targets[1].State != order.TargetHeld {
		t.Fatalf("1.1.1.1 not held: %+v", o.Targets[1])
	}
	snap := r.Policy().Load()
	if snap.Prefixes() != 0 || snap.Names() != 1 {
		t.Fatalf("snapshot has %d prefixes, %d names", snap.Prefixes(), snap.Names())
	}
	_, evs, _ := r.Order(ctx, o.ID)
	if got := kinds(evs); fmt.Sprint(got) != "[received held activated]" || evs[1].Detail == "" {
		t.Fatalf("events %+v", evs)
	}
}

func TestReopenRestoresPolicy(t *testing.T) {
	clock := &fakeClock{now: t0}
	path := filepath.Join(t.TempDir(), "writ.db")
	r, st := open(t, path, clock)
	if _, err := r.Submit(context.Background(), submission(t0, t0.Add(time.Hour), "a.example"), operator); err != nil {
		t.Fatal(err)
	}
	version := r.Policy().Load().Version()
	r.Close()
	st.Close()
	r, _ = open(t, path, clock)
	if !blocked(r, "a.example") || r.Policy().Load().Version() != version {
		t.Fatal("policy not restored from the store")
	}
}

func TestExpiryReminders(t *testing.T) {
	clock := &fakeClock{now: t0}
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "writ.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := Open(context.Background(), st, Options{Clock: clock, ExpiryReminder: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	o, err := r.Submit(ctx, submission(t0.Add(-time.Hour), t0.Add(72*time.Hour), "a.example"), operator)
	if err != nil {
		t.Fatal(err)
	}
	history := func() string {
		_, evs, err := r.Order(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(kinds(evs))
	}
	clock.Advance(47*time.Hour + 59*time.Minute)
	if got := history(); got != "[received activated]" {
		t.Fatalf("before the reminder: %s", got)
	}
	clock.Advance(time.Minute)
	if got := history(); got != "[received activated expiring]" {
		t.Fatalf("at the reminder: %s", got)
	}
	clock.Advance(24 * time.Hour)
	if got := history(); got != "[received activated expiring expired]" {
		t.Fatalf("at expiry: %s", got)
	}
}

func TestReceiptsObserveTimeToEnforce(t *testing.T) {
	clock := &fakeClock{now: t0}
	r, _ := open(t, filepath.Join(t.TempDir(), "writ.db"), clock)
	ctx := context.Background()
	o, err := r.Submit(ctx, submission(t0.Add(-time.Hour), t0.Add(time.Hour), "a.example"), operator)
	if err != nil {
		t.Fatal(err)
	}
	v := r.Policy().Load().Version()
	if err := r.Receipt(ctx, policy.Receipt{Point: "rpz:a", Version: v, At: t0.Add(2 * time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := r.Receipt(ctx, policy.Receipt{Point: "rpz:a", Version: v + 1}); err == nil {
		t.Fatal("a receipt for a version not yet published was accepted")
	}
	rep, err := r.Receipts(ctx, o.ID)
	if err != nil || len(rep.Points) != 1 || !rep.Points[0].Met || rep.Points[0].Seconds != 2 {
		t.Fatalf("receipts %+v %v", rep, err)
	}
	// The histogram saw the order once for that point.
	reg := prometheus.NewRegistry()
	reg.MustRegister(r.Metrics())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "writ_time_to_enforce_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			found = h.GetSampleCount() == 1 && h.GetSampleSum() == 2
		}
	}
	if !found {
		t.Fatal("time to enforce not observed exactly once")
	}
}

// An order no longer waits for a retired enforcement point, nor is
// overdue there; only operators retire points.
func TestRetiredPointIsNoLongerAwaited(t *testing.T) {
	clock := &fakeClock{now: t0}
	r, _ := open(t, filepath.Join(t.TempDir(), "writ.db"), clock)
	ctx := context.Background()
	// gate@old applied version 1, then was decommissioned.
	if err := r.Receipt(ctx, policy.Receipt{Point: "gate@old", Version: r.Policy().Load().Version(), At: t0}); err != nil {
		t.Fatal(err)
	}
	o, err := r.Submit(ctx, submission(t0.Add(-time.Hour), t0.Add(72*time.Hour), "a.example"), operator)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Receipt(ctx, policy.Receipt{Point: "dns@a", Version: r.Policy().Load().Version(), At: t0.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(48 * time.Hour)
	pending := func() []string {
		t.Helper()
		rep, err := r.Receipts(ctx, o.ID)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range rep.Points {
			if p.Pending {
				out = append(out, fmt.Sprintf("%s overdue=%v", p.Point, p.Overdue))
			}
		}
		return out
	}
	if got := fmt.Sprint(pending()); got != "[gate@old overdue=true]" {
		t.Fatalf("before retiring: pending %s", got)
	}
	anonymous := access.Principal{Role: access.Public}
	if err := r.RetirePoint(ctx, "gate@old", anonymous); !errors.Is(err, ErrForbidden) {
		t.Fatalf("retired without credentials: %v", err)
	}
	if err := r.RetirePoint(ctx, "gate@old", operator); err != nil {
		t.Fatal(err)
	}
	if got := pending(); len(got) != 0 {
		t.Errorf("after retiring: pending %v", got)
	}
	if err := r.RetirePoint(ctx, "gate@old", operator); !errors.Is(err, ErrNotFound) {
		t.Errorf("retired twice: %v, want ErrNotFound", err)
	}
}
