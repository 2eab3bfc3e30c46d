// Package registry is writ's order registry: it accepts orders through
// intake, records them and their events in the store before acknowledging
// them, and keeps the published policy equal to the orders in force,
// recompiling when an order changes and when one takes effect or expires,
// without a restart. It also holds the due process around orders: who may
// act (authorities, credentials, roles), review of held targets,
// amendments, contests, suspension, and receipts from enforcement points.
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

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
)

// Store is the persistence the registry needs; store.SQLite is one.
type Store interface {
	CreateOrder(ctx context.Context, o *order.Order, events []order.Event) (uint64, error)
	ModifyOrder(ctx context.Context, id string, change func(o *order.Order) ([]order.Event, error)) (*order.Order, []order.Event, uint64, error)
	ModifyOrderFrom(ctx context.Context, cur *order.Order, last uint64, change func(o *order.Order) ([]order.Event, error)) (*order.Order, []order.Event, uint64, error)
	AppendEvents(ctx context.Context, events []order.Event) (uint64, error)
	Orders(ctx context.Context) ([]*order.Order, uint64, error)
	Order(ctx context.Context, id string) (*order.Order, error)
	Events(ctx context.Context, orderID string) ([]order.Event, error)
	EventsSince(ctx context.Context, after uint64, limit int) ([]order.Event, error)

	PutAuthority(ctx context.Context, a order.RegisteredAuthority) error
	Authorities(ctx context.Context) ([]order.RegisteredAuthority, error)
	CreatePrincipal(ctx context.Context, p access.Principal) error
	PrincipalByTokenHash(ctx context.Context, hash string) (access.Principal, error)
	Principals(ctx context.Context) ([]access.Principal, error)
	SetPrincipalDisabled(ctx context.Context, id string, disabled bool) error

	CreateContest(ctx context.Context, c *order.Contest, events func(id int64) []order.Event) (uint64, error)
	DecideContest(ctx context.Context, c *order.Contest, o *order.Order, events []order.Event, since uint64) (uint64, error)
	Contest(ctx context.Context, id int64) (order.Contest, error)
	Contests(ctx context.Context, orderID string) ([]order.Contest, error)

	AddReceipt(ctx context.Context, r policy.Receipt) error
	FirstReceipts(ctx context.Context, version uint64) ([]policy.Receipt, error)
	Points(ctx context.Context) ([]policy.Receipt, error)
	RetirePoint(ctx context.Context, point string, at time.Time, by string) error
	RetiredPoints(ctx context.Context) ([]policy.Retirement, error)
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
	// ExpiryReminder, when set, records an "expiring" event this long
	// before each order expires, so that authorities and operators can
	// renew or let go in time. Zero sends no reminders.
	ExpiryReminder time.Duration
	Clock          Clock // default: the system clock
	Logger         *slog.Logger
}

// Errors the registry returns; test with errors.Is.
var (
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("conflicts with the current state")
	ErrForbidden = errors.New("not permitted")
)

// Registry owns the set of orders and the policy compiled from it.
type Registry struct {
	store    Store
	intake   order.Intake
	reminder time.Duration
	clock    Clock
	log      *slog.Logger
	holder   *policy.Holder
	updater  *policy.Updater // publishes to holder what changed
	counters *policy.CounterSet
	metrics  *Metrics

	mu          sync.Mutex // serialises changes, compilation and the timer
	orders      map[string]*order.Order
	authorities map[string]order.RegisteredAuthority
	version     uint64
	stopTick    func() bool
	closed      bool
	// active and expired remember the orders whose taking effect or
	// expiry is on record, and reminded those whose reminder is, so that
	// each is recorded once.
	active, expired, reminded map[string]bool
	// activation is the version at which each order first took effect:
	// receipts for that version or later prove its enforcement.
	activation map[string]activationMark
	changed    chan struct{} // closed at each recorded event
	receipts   receiptTracker
	// dirty holds the orders changed since recordLifecycle last looked,
	// and lifecycleDue the earliest time a lifecycle event of another
	// order falls due (zero: unknown, look at them all), so that a change
	// to one order does not make the registry look at every other.
	dirty        map[string]bool
	lifecycleDue time.Time
	// unpublished holds the orders changed since the policy was last
	// published, which the updater applies; the others stand.
	unpublished map[string]bool
	published   bool // the policy has been published once
	// written holds, for an order this registry last wrote itself, the
	// seq of that write's last event: as long as the store has nothing
	// later for it, the order in memory is the one stored.
	written map[string]uint64
	auth    authCache
}

type activationMark struct {
	version uint64
	at      time.Time
}

// Open loads every order from st, publishes the policy in force now, and
// schedules the next recompilation.
func Open(ctx context.Context, st Store, opts Options) (*Registry, error) {
	r := &Registry{
		store:       st,
		intake:      opts.Intake,
		reminder:    opts.ExpiryReminder,
		clock:       opts.Clock,
		log:         opts.Logger,
		counters:    &policy.CounterSet{},
		orders:      map[string]*order.Order{},
		authorities: map[string]order.RegisteredAuthority{},
		active:      map[string]bool{},
		expired:     map[string]bool{},
		reminded:    map[string]bool{},
		activation:  map[string]activationMark{},
		changed:     make(chan struct{}),
		dirty:       map[string]bool{},
		unpublished: map[string]bool{},
		written:     map[string]uint64{},
	}
	if r.clock == nil {
		r.clock = systemClock{}
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.metrics = newMetrics(r)
	r.receipts.init()
	orders, version, err := st.Orders(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry: load orders: %w", err)
	}
	for _, o := range orders {
		r.setOrder(o)
	}
	r.version = version
	auths, err := st.Authorities(ctx)
	if err != nil {
		return nil, fmt.Errorf("registry: load authorities: %w", err)
	}
	for _, a := range auths {
		r.authorities[a.ID] = a
	}
	// What is already on record is not recorded again.
	for after := uint64(0); ; {
		evs, err := st.EventsSince(ctx, after, 10000)
		if err != nil {
			return nil, fmt.Errorf("registry: load events: %w", err)
		}
		if len(evs) == 0 {
			break
		}
		for _, e := range evs {
			r.note(e)
		}
		after = evs[len(evs)-1].Seq
	}
	r.holder = policy.NewHolder(nil)
	r.updater = policy.NewUpdater(r.holder, r.counters)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.republish(ctx)
	return r, nil
}

// note remembers what a recorded event means for the lifecycle.
func (r *Registry) note(e order.Event) {
	switch e.Kind {
	case order.EventActivated:
		if !r.active[e.OrderID] {
			r.active[e.OrderID] = true
			r.activation[e.OrderID] = activationMark{version: e.Seq, at: e.At}
		}
	case order.EventExpired:
		r.expired[e.OrderID] = true
	case order.EventExpiring:
		r.reminded[e.OrderID] = true
	}
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

// Changed returns a channel closed at the next recorded event, for
// followers of the event stream.
func (r *Registry) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// EventsSince returns recorded events after seq, oldest first.
func (r *Registry) EventsSince(ctx context.Context, after uint64, limit int) ([]order.Event, error) {
	return r.store.EventsSince(ctx, after, limit)
}

// Acknowledged records when the order was acknowledged to its submitter,
// from which enforcement points measure propagation.
func (r *Registry) Acknowledged(id string, at time.Time) { r.counters.For(id).Acknowledged(at) }

// lookup returns an order, catching up with the store first when it is
// unknown here: another node may have just recorded it. r.mu must be held.
func (r *Registry) lookup(ctx context.Context, id string) (*order.Order, error) {
	if o, ok := r.orders[id]; ok {
		return o, nil
	}
	if err := r.catchUp(ctx); err != nil {
		return nil, err
	}
	if o, ok := r.orders[id]; ok {
		return o, nil
	}
	return nil, fmt.Errorf("order %s: %w", id, ErrNotFound)
}

// Order returns one order and its history.
func (r *Registry) Order(ctx context.Context, id string) (*order.Order, []order.Event, error) {
	r.mu.Lock()
	o, err := r.lookup(ctx, id)
	r.mu.Unlock()
	if err != nil {
		return nil, nil, err
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
		switch {
		case a.ID < b.ID:
			return 1
		case a.ID > b.ID:
			return -1
		}
		return 0
	})
	return out
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

// recorded updates the registry after events were committed at version:
// it notes them, wakes followers and republishes the policy. r.mu must be
// held.
func (r *Registry) recorded(ctx context.Context, version uint64, events []order.Event) {
	if version == r.version+uint64(len(events)) {
		r.version = version
		for _, e := range events {
			r.note(e)
		}
		r.wake()
	} else if err := r.catchUp(ctx); err != nil {
		// Other nodes wrote in between; what they wrote is read at the next
		// sync. Ours is in memory already.
		r.log.Error("reading changes from other nodes failed; will retry", "err", err)
	}
	r.republish(ctx)
}

// wake closes the changed channel for followers of the event stream.
// r.mu must be held.
func (r *Registry) wake() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Sync catches up with changes that other writ nodes recorded in a
// shared store, and republishes the policy if there were any. Nodes call
// it when the store announces a new version, and on a timer in case an
// announcement was lost.
func (r *Registry) Sync(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	before := r.version
	if err := r.catchUp(ctx); err != nil {
		return err
	}
	if r.version != before {
		r.republish(ctx)
	}
	return nil
}

// Version is the store version the registry has caught up to.
func (r *Registry) Version() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.version
}

// catchUp reads every event recorded after r.version, by this node or
// others, and reloads the orders they concern. r.mu must be held.
func (r *Registry) catchUp(ctx context.Context) error {
	changed := false
	for {
		evs, err := r.store.EventsSince(ctx, r.version, 1000)
		if err != nil {
			return fmt.Errorf("registry: read events after %d: %w", r.version, err)
		}
		if len(evs) == 0 {
			break
		}
		ids := map[string]bool{}
		for _, e := range evs {
			ids[e.OrderID] = true
		}
		for id := range ids {
			o, err := r.store.Order(ctx, id)
			if err != nil {
				return fmt.Errorf("registry: reload order %s: %w", id, err)
			}
			r.setOrder(o)
		}
		for _, e := range evs {
			r.note(e)
		}
		r.version = evs[len(evs)-1].Seq
		changed = true
	}
	if !changed {
		return nil
	}
	// Authorities registered on another node come without an event.
	auths, err := r.store.Authorities(ctx)
	if err != nil {
		return fmt.Errorf("registry: reload authorities: %w", err)
	}
	for _, a := range auths {
		r.authorities[a.ID] = a
	}
	r.wake()
	return nil
}

// republish records lifecycle events due by now, compiles the orders in
// force, publishes the snapshot and arms the timer for the next change.
// r.mu must be held.
func (r *Registry) republish(ctx context.Context) {
	now := r.clock.Now()
	r.recordLifecycle(ctx, now)
	start := time.Now()
	// The updater applies what changed since its last publication, so an
	// amendment is published in time proportional to the amendment, not
	// to the million names or thousands of orders already in force.
	var snap *policy.Snapshot
	if r.published {
		changed := make([]*order.Order, 0, len(r.unpublished))
		for id := range r.unpublished {
			changed = append(changed, r.orders[id])
		}
		snap = r.updater.Apply(changed, now, r.version)
	} else {
		list := make([]*order.Order, 0, len(r.orders))
		for _, o := range r.orders {
			list = append(list, o)
		}
		snap = r.updater.Update(list, now, r.version)
		r.published = true
	}
	clear(r.unpublished)
	r.metrics.compileSeconds.Observe(time.Since(start).Seconds())
	r.log.Debug("policy published", "version", r.version, "orders", len(snap.Orders()), "names", snap.Names(), "prefixes", snap.Prefixes(), "compile", time.Since(start))

	if r.stopTick != nil {
		r.stopTick()
		r.stopTick = nil
	}
	next := snap.ValidUntil()
	if t := r.lifecycleDue; !t.IsZero() && (next.IsZero() || t.Before(next)) {
		next = t
	}
	if !next.IsZero() && !r.closed {
		r.stopTick = r.clock.AfterFunc(next.Sub(now), r.tick)
	}
}

// tick runs when an order takes effect or expires, or a reminder is due.
func (r *Registry) tick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.republish(context.Background())
}

// recordLifecycle writes an event for each order that took effect, is
// about to expire, or expired since it was last looked at. A failure to
// write is logged and retried at the next recompilation; enforcement
// never waits for it. r.mu must be held.
func (r *Registry) recordLifecycle(ctx context.Context, now time.Time) {
	full := r.lifecycleDue.IsZero() || !now.Before(r.lifecycleDue)
	var events []order.Event
	due := time.Time{}
	look := func(id string, o *order.Order) {
		events = append(events, r.lifecycleEvents(id, o, now)...)
		if t, ok := r.nextLifecycle(id, o, now); ok && (due.IsZero() || t.Before(due)) {
			due = t
		}
	}
	if full {
		for id, o := range r.orders {
			look(id, o)
		}
	} else {
		due = r.lifecycleDue
		for id := range r.dirty {
			if o, ok := r.orders[id]; ok {
				look(id, o)
			}
		}
	}
	clear(r.dirty)
	r.lifecycleDue = due
	if len(events) == 0 {
		return
	}
	slices.SortFunc(events, func(a, b order.Event) int { return a.At.Compare(b.At) })
	if _, err := r.store.AppendEvents(ctx, events); err != nil {
		r.log.Error("recording lifecycle events failed; will retry", "err", err)
		// Look at every order again next time.
		r.lifecycleDue = time.Time{}
		return
	}
	for _, e := range events {
		// Seq zero: another node had recorded it already.
		if e.Seq != 0 {
			r.log.Info("order "+string(e.Kind), "order", e.OrderID, "at", e.At)
		}
	}
	if err := r.catchUp(ctx); err != nil {
		r.log.Error("reading lifecycle events failed; will retry", "err", err)
	}
}

// lifecycleEvents returns the lifecycle events of o due by now and not
// yet on record.
func (r *Registry) lifecycleEvents(id string, o *order.Order, now time.Time) []order.Event {
	var events []order.Event
	switch st := o.StatusAt(now); {
	case st == order.StatusActive && !r.active[id]:
		at := o.Effective
		if at.Before(o.Received) {
			at = o.Received
		}
		events = append(events, order.Event{OrderID: id, At: at, Kind: order.EventActivated, Principal: "writ", Detail: "in force"})
	case st == order.StatusExpired && !r.expired[id]:
		events = append(events, order.Event{OrderID: id, At: o.Expires, Kind: order.EventExpired, Principal: "writ"})
	}
	if r.reminder > 0 && !r.reminded[id] && !o.OpenEnded() && o.Disposition == "" &&
		o.StatusAt(now) != order.StatusExpired && !now.Before(o.Expires.Add(-r.reminder)) {
		events = append(events, order.Event{OrderID: id, At: now, Kind: order.EventExpiring, Principal: "writ",
			Detail: "expires " + o.Expires.UTC().Format(time.RFC3339)})
	}
	return events
}

// nextLifecycle returns the next time after now at which o, unchanged,
// has a lifecycle event due: it takes effect, its reminder falls due, or
// it expires.
func (r *Registry) nextLifecycle(id string, o *order.Order, now time.Time) (time.Time, bool) {
	var next time.Time
	consider := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if !r.active[id] {
		consider(o.Effective)
	}
	if !o.OpenEnded() {
		if !r.expired[id] {
			consider(o.Expires)
		}
		if r.reminder > 0 && !r.reminded[id] && o.Disposition == "" {
			consider(o.Expires.Add(-r.reminder))
		}
	}
	return next, !next.IsZero()
}

// setOrder keeps o as the current state of its order and marks it for
// the next look at lifecycle events and the next publication. r.mu must
// be held.
func (r *Registry) setOrder(o *order.Order) {
	r.orders[o.ID] = o
	r.dirty[o.ID] = true
	r.unpublished[o.ID] = true
	delete(r.written, o.ID)
}

// setWritten is setOrder for an order this registry has just written
// with events. r.mu must be held.
func (r *Registry) setWritten(o *order.Order, events []order.Event) {
	r.setOrder(o)
	if len(events) > 0 {
		r.written[o.ID] = events[len(events)-1].Seq
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

// forbidden builds the error for a principal who may not take an action.
func forbidden(p access.Principal, a access.Action) error {
	if p.Role == access.Public {
		return fmt.Errorf("to %s you need credentials with the role %v: %w", a, access.Roles(a), ErrForbidden)
	}
	return fmt.Errorf("%s may not %s (roles allowed: %v): %w", p, a, access.Roles(a), ErrForbidden)
}
