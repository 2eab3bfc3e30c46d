package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/store"
)

// receiptTracker remembers the highest version each enforcement point has
// acknowledged, so that each order's time to enforce is observed once per
// point.
type receiptTracker struct {
	last map[string]uint64
}

func (t *receiptTracker) init() { t.last = map[string]uint64{} }

// RecordReceipt records an external enforcement point's receipt (a gate
// or resolver on another host); operators' credentials are needed.
func (r *Registry) RecordReceipt(ctx context.Context, rc policy.Receipt, by access.Principal) error {
	if !by.Can(access.RecordReceipt) {
		return forbidden(by, access.RecordReceipt)
	}
	return r.Receipt(ctx, rc)
}

// Receipt records that an enforcement point of this process applied a
// policy version, and observes the time to enforce of every order that
// version brought into force there.
func (r *Registry) Receipt(ctx context.Context, rc policy.Receipt) error {
	if strings.TrimSpace(rc.Point) == "" || len(rc.Point) > 200 {
		return &order.InvalidError{Fields: []order.FieldError{{Field: "point", Value: rc.Point, Message: "must name the enforcement point in at most 200 characters"}}}
	}
	if rc.Scope != "" {
		c, err := jurisdiction.Parse(rc.Scope)
		if err != nil {
			return &order.InvalidError{Fields: []order.FieldError{{Field: "scope", Value: rc.Scope, Message: "is not an ISO 3166-1 alpha-2 country code"}}}
		}
		rc.Scope = c.String()
	}
	if v := r.holder.Load().Version(); rc.Version > v {
		return &order.InvalidError{Fields: []order.FieldError{{Field: "version", Value: fmt.Sprint(rc.Version),
			Message: fmt.Sprintf("is ahead of the current policy version %d: no enforcement point can have applied it", v)}}}
	}
	if rc.At.IsZero() {
		rc.At = r.clock.Now().UTC()
	}
	if err := r.store.AddReceipt(ctx, rc); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	last := r.receipts.last[rc.Point]
	if rc.Version <= last {
		return nil
	}
	r.receipts.last[rc.Point] = rc.Version
	for id, m := range r.activation {
		if m.version <= last || m.version > rc.Version {
			continue
		}
		o, ok := r.orders[id]
		if !ok {
			continue
		}
		r.metrics.observeEnforcement(rc.Point, rc.At.Sub(enforcementStart(o)))
	}
	return nil
}

// enforcementStart is when the clock of an order's enforcement deadline
// starts: when it was received or, for a scheduled order, when it takes
// effect.
func enforcementStart(o *order.Order) time.Time {
	if o.Effective.After(o.Received) {
		return o.Effective
	}
	return o.Received
}

// PointReceipt says when one enforcement point began enforcing an order,
// and whether that met the authority's deadline.
type PointReceipt struct {
	Point string `json:"point"`
	// Version is the first policy version the point applied that includes
	// the order; zero while the point has applied none.
	Version uint64     `json:"version,omitempty"`
	Applied *time.Time `json:"applied,omitempty"`
	// Seconds is the time from the start of the deadline to Applied.
	Seconds float64 `json:"seconds,omitempty"`
	// Met is true when applied within the deadline.
	Met bool `json:"met"`
	// Pending is true while the point has not applied the order; Overdue
	// then says the deadline has passed.
	Pending bool `json:"pending,omitempty"`
	Overdue bool `json:"overdue,omitempty"`
}

// OrderReceipts is the enforcement record of one order.
type OrderReceipts struct {
	OrderID string `json:"order_id"`
	// InForce is false for an order never enforced (held, scheduled,
	// withdrawn): there is nothing to receipt.
	InForce          bool           `json:"in_force"`
	ActivatedVersion uint64         `json:"activated_version,omitempty"`
	DeadlineStart    time.Time      `json:"deadline_start"`
	DeadlineSeconds  int            `json:"deadline_seconds"`
	Points           []PointReceipt `json:"points"`
}

// Receipts reports, per enforcement point, when the order took effect
// there and whether that met its authority's deadline.
func (r *Registry) Receipts(ctx context.Context, id string) (*OrderReceipts, error) {
	r.mu.Lock()
	o, err := r.lookup(ctx, id)
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	mark, inForce := r.activation[id]
	deadline := order.DefaultDeadline
	if a, known := r.authorities[o.Authority.ID]; known {
		deadline = a.Deadline()
	}
	now := r.clock.Now()
	r.mu.Unlock()
	rep := &OrderReceipts{OrderID: id, InForce: inForce, DeadlineStart: enforcementStart(o), DeadlineSeconds: int(deadline / time.Second), Points: []PointReceipt{}}
	if !inForce {
		return rep, nil
	}
	rep.ActivatedVersion = mark.version
	first, err := r.store.FirstReceipts(ctx, mark.version)
	if err != nil {
		return nil, err
	}
	points, err := r.store.Points(ctx)
	if err != nil {
		return nil, err
	}
	got := map[string]policy.Receipt{}
	for _, rc := range first {
		got[rc.Point] = rc
	}
	scope := o.Scope()
	for _, p := range points {
		if p.Scope != "" {
			// A point serving one jurisdiction answers only for orders
			// that apply there.
			if c, err := jurisdiction.Parse(p.Scope); err != nil || !scope.Has(c) {
				continue
			}
		}
		pr := PointReceipt{Point: p.Point}
		if rc, ok := got[p.Point]; ok {
			at := rc.At
			took := at.Sub(rep.DeadlineStart)
			pr.Version, pr.Applied, pr.Seconds, pr.Met = rc.Version, &at, took.Seconds(), took <= deadline
		} else {
			pr.Pending, pr.Overdue = true, now.Sub(rep.DeadlineStart) > deadline
		}
		rep.Points = append(rep.Points, pr)
	}
	return rep, nil
}

// Points lists every enforcement point in service with its latest
// receipt: which policy version each runs.
func (r *Registry) Points(ctx context.Context) ([]policy.Receipt, error) {
	return r.store.Points(ctx)
}

// RetiredPoints lists the enforcement points retired and not back in
// service.
func (r *Registry) RetiredPoints(ctx context.Context) ([]policy.Retirement, error) {
	return r.store.RetiredPoints(ctx)
}

// RetirePoint takes an enforcement point that no longer enforces (a
// resolver or gate decommissioned, an RPZ secondary removed) out of
// service: orders no longer wait for its receipts, nor count as overdue
// there, and it leaves the list of points. Its receipts are kept. A
// receipt for a later policy version puts it back in service. Operators'
// credentials are needed.
func (r *Registry) RetirePoint(ctx context.Context, point string, by access.Principal) error {
	if !by.Can(access.RetirePoint) {
		return forbidden(by, access.RetirePoint)
	}
	err := r.store.RetirePoint(ctx, point, r.clock.Now().UTC(), by.ID)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("enforcement point %q is not in service: %w", point, ErrNotFound)
	}
	if err != nil {
		return err
	}
	r.log.Info("enforcement point retired", "point", point, "by", by.ID)
	return nil
}
