// Package registry is writ's order registry: it accepts orders through
// intake, records them and their events in the store before acknowledging
// them, and keeps the published policy equal to the orders in force,
// recompiling when an order changes and when one takes effect or expires,
// without a restart.
package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/store"
)

// Store is the persistence the registry needs; store.SQLite is one.
type Store interface {
	CreateOrder(ctx context.Context, o *order.Order, events []order.Event) (uint64, error)
	UpdateOrder(ctx context.Context, o *order.Order, events []order.Event) (uint64, error)
	AppendEvents(ctx context.Context, events []order.Event) (uint64, error)
	Orders(ctx context.Context) ([]*order.Order, uint64, error)
	Events(ctx context.Context, orderID string) ([]order.Event, error)
}

// Clock is the registry's source of time and timers; tests replace it.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// Options configure a Registry.
type Options struct {
	Intake order.Intake
	Clock  Clock // default: the system clock
	Logger *slog.Logger
}

// Errors the registry returns; test with errors.Is.
var (
	ErrNotFound = errors.New("no such order")
	ErrConflict = errors.New("conflicts with the order's state")
)

// Registry owns the set of orders and the policy compiled from it.
type Registry struct {
	store    Store
	intake   order.Intake
	clock    Clock
	log      *slog.Logger
	holder   *policy.Holder
	counters *policy.CounterSet
	metrics  *Metrics

	mu       sync.Mutex // serialises changes, compilation and the timer
	orders   map[string]*order.Order
	version  uint64
	stopTick func() bool
	closed   bool
	// noted records the time-driven status of each order for which an
	// event was written, so that taking effect and expiry are recorded once.
	noted map[string]order.Status
}

// Open loads every order from st, publishes the policy in force now, and
// schedules the next recompilation.
func Open(ctx context.Context, st Store, opts Options) (*Registry, error) {
	r := &Registry{
		store:    st,
		intake:   opts.Intake,
		clock:    opts.Clock,
		log:      opts.Logger,
		counters: &policy.CounterSet{},
		orders:   map[string]*order.Order{},
		noted:    map[string]order.Status{},
	}
	if r.clock == nil {
		r.clock = systemClock{}
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.metrics = newMetrics(r)
	orders, version, err := st.Orders(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry: load orders: %w", err)
	}
	for _, o := range orders {
		r.orders[o.ID] = o
	}
	r.version = version
	r.holder = policy.NewHolder(nil)
	// Lifecycle events already on record are not written again. An order
	// already in effect when received was active from its "received" event.
	now := r.clock.Now()
	for _, o := range orders {
		if status := o.StatusAt(now); status != order.StatusExpired && status != order.StatusActive {
			continue
		}
		if !o.Effective.After(o.Received) {
			r.noted[o.ID] = order.StatusActive
		}
		evs, err := st.Events(ctx, o.ID)
		if err != nil {
			return nil, fmt.Errorf("registry: events of %s: %w", o.ID, err)
		}
		for _, e := range evs {
			switch {
			case e.Kind == order.EventExpired:
				r.noted[o.ID] = order.StatusExpired
			case e.Kind == order.EventActivated && r.noted[o.ID] == "":
				r.noted[o.ID] = order.StatusActive
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.republish(ctx)
	return r, nil
}

// Policy returns the holder through which the registry publishes
// snapshots to enforcement points.
func (r *Registry) Policy() *policy.Holder { return r.holder }

// Counters returns the per-order counters shared with the snapshots.
func (r *Registry) Counters() *policy.CounterSet { return r.counters }

// Metrics returns the registry's Prometheus collector.
func (r *Registry) Metrics() *Metrics { return r.metrics }

// Now is the registry clock's current time.
func (r *Registry) Now() time.Time { return r.clock.Now() }

// Submit validates a submission, records the order with its events, and
// publishes the new policy before returning. A submission with any
// invalid field returns *order.InvalidError and changes nothing.
func (r *Registry) Submit(ctx context.Context, sub *order.Submission, principal string) (*order.Order, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock.Now().UTC()
	for attempt := 0; ; attempt++ {
		o, err := r.intake.Accept(sub, newID(now), now)
		if err != nil {
			return nil, err
		}
		events := []order.Event{{OrderID: o.ID, At: now, Kind: order.EventReceived, Principal: principal,
			Detail: fmt.Sprintf("%d targets for %s from %s", len(o.Targets), o.JurisdictionString(), o.Authority.Name)}}
		for _, t := range o.Targets {
			if t.State == order.TargetHeld {
				events = append(events, order.Event{OrderID: o.ID, At: now, Kind: order.EventHeld, Principal: "writ", Detail: t.String() + " " + t.HoldReason})
			}
		}
		version, err := r.store.CreateOrder(ctx, o, events)
		if errors.Is(err, store.ErrExists) && attempt < 3 {
			continue // an id collision: draw another
		}
		if err != nil {
			return nil, fmt.Errorf("registry: record order: %w", err)
		}
		r.orders[o.ID] = o
		r.version = version
		if o.StatusAt(now) == order.StatusActive {
			r.noted[o.ID] = order.StatusActive
		}
		r.metrics.submitted.Add(1)
		r.republish(ctx)
		r.log.Info("order received", "order", o.ID, "authority", o.Authority.ID, "jurisdiction", o.JurisdictionString(),
			"targets", len(o.Targets), "status", o.StatusAt(now), "principal", principal, "policy_version", r.version)
		return o.Clone(), nil
	}
}

// Acknowledged records when the order was acknowledged to its submitter,
// from which enforcement points measure propagation.
func (r *Registry) Acknowledged(id string, at time.Time) { r.counters.For(id).Acknowledged(at) }

// Revoke withdraws an order: it stops blocking at once and for good.
func (r *Registry) Revoke(ctx context.Context, id, reason, principal string) (*order.Order, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o, ok := r.orders[id]
	if !ok {
		return nil, fmt.Errorf("order %s: %w", id, ErrNotFound)
	}
	now := r.clock.Now().UTC()
	switch st := o.StatusAt(now); st {
	case order.StatusRevoked:
		return nil, fmt.Errorf("order %s was already revoked on %s: %w", id, o.DispositionAt.Format(time.RFC3339), ErrConflict)
	case order.StatusExpired:
		return nil, fmt.Errorf("order %s expired on %s and no longer blocks: %w", id, o.Expires.Format(time.RFC3339), ErrConflict)
	}
	c := o.Clone()
	c.Disposition = order.Revoked
	c.DispositionAt = &now
	c.DispositionReason = reason
	version, err := r.store.UpdateOrder(ctx, c, []order.Event{{OrderID: id, At: now, Kind: order.EventRevoked, Principal: principal, Detail: reason}})
	if err != nil {
		return nil, fmt.Errorf("registry: record revocation: %w", err)
	}
	r.orders[id] = c
	r.version = version
	r.republish(ctx)
	r.log.Info("order revoked", "order", id, "principal", principal, "reason", reason, "policy_version", r.version)
	return c.Clone(), nil
}

// Order returns one order and its history.
func (r *Registry) Order(ctx context.Context, id string) (*order.Order, []order.Event, error) {
	r.mu.Lock()
	o, ok := r.orders[id]
	r.mu.Unlock()
	if !ok {
		return nil, nil, fmt.Errorf("order %s: %w", id, ErrNotFound)
	}
	evs, err := r.store.Events(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	return o.Clone(), evs, nil
}

// Orders returns every order, most recently received first.
func (r *Registry) Orders() []*order.Order {
	r.mu.Lock()
	out := make([]*order.Order, 0, len(r.orders))
	for _, o := range r.orders {
		out = append(out, o.Clone())
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b *order.Order) int {
		if c := b.Received.Compare(a.Received); c != 0 {
			return c
		}
		return compareStrings(b.ID, a.ID)
	})
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Close stops the recompilation timer.
func (r *Registry) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	if r.stopTick != nil {
		r.stopTick()
	}
}

// republish records lifecycle events due by now, compiles the orders in
// force, publishes the snapshot and arms the timer for the next change.
// r.mu must be held.
func (r *Registry) republish(ctx context.Context) {
	now := r.clock.Now()
	r.recordLifecycle(ctx, now)
	list := make([]*order.Order, 0, len(r.orders))
	for _, o := range r.orders {
		list = append(list, o)
	}
	start := time.Now()
	snap := policy.Compile(list, now, r.version, r.counters)
	r.holder.Store(snap)
	r.metrics.compileSeconds.Observe(time.Since(start).Seconds())
	r.log.Debug("policy published", "version", r.version, "orders", len(snap.Orders()), "names", snap.Names(), "prefixes", snap.Prefixes(), "compile", time.Since(start))

	if r.stopTick != nil {
		r.stopTick()
		r.stopTick = nil
	}
	if next := snap.ValidUntil(); !next.IsZero() && !r.closed {
		r.stopTick = r.clock.AfterFunc(next.Sub(now), r.tick)
	}
}

// tick runs when an order takes effect or expires.
func (r *Registry) tick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.republish(context.Background())
}

// recordLifecycle writes an event for each order that took effect or
// expired since it was last looked at. A failure to write is logged and
// retried at the next recompilation; enforcement never waits for it.
func (r *Registry) recordLifecycle(ctx context.Context, now time.Time) {
	var events []order.Event
	var ids []string
	var states []order.Status
	for id, o := range r.orders {
		st := o.StatusAt(now)
		if (st != order.StatusActive && st != order.StatusExpired) || r.noted[id] == st {
			continue
		}
		kind, at := order.EventActivated, o.Effective
		if st == order.StatusExpired {
			kind, at = order.EventExpired, o.Expires
		}
		events = append(events, order.Event{OrderID: id, At: at, Kind: kind, Principal: "writ"})
		ids = append(ids, id)
		states = append(states, st)
	}
	if len(events) == 0 {
		return
	}
	version, err := r.store.AppendEvents(ctx, events)
	if err != nil {
		r.log.Error("recording lifecycle events failed; will retry", "err", err)
		return
	}
	r.version = version
	for i, id := range ids {
		r.noted[id] = states[i]
		r.log.Info("order "+string(events[i].Kind), "order", id, "at", events[i].At)
	}
}

// newID returns an order id: the UTC date it was received and 32 random
// bits, readable in a URL and sortable by day.
func newID(now time.Time) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return now.UTC().Format("20060102") + "-" + hex.EncodeToString(b[:])
}
