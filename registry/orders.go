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
	"github.com/writ-project/writ/store"
)

// Submit validates a submission, records the order with its events, and
// publishes the new policy before returning. A submission with any
// invalid field returns *order.InvalidError and changes nothing.
//
// Authority principals submit for their own authority and within its
// jurisdiction. Operators submit for any authority — an order received on
// paper — and the first order of an authority not yet registered registers
// it as submitted.
func (r *Registry) Submit(ctx context.Context, sub *order.Submission, by access.Principal) (*order.Order, error) {
	if !by.Can(access.SubmitOrder) {
		return nil, forbidden(by, access.SubmitOrder)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if by.Role == access.Authority {
		if sub.Authority.ID == "" {
			sub.Authority.ID = by.Authority
		}
		if sub.Authority.ID != by.Authority {
			return nil, fmt.Errorf("%s acts for %s and may not submit orders of %s: %w", by, by.Authority, sub.Authority.ID, ErrForbidden)
		}
	}
	registered, known := r.authorities[sub.Authority.ID]
	switch {
	case known:
		if err := r.matchRegistered(sub, registered); err != nil {
			return nil, err
		}
		if by.Role == access.Authority {
			// An authority orders only where its law applies.
			scope, err := jurisdiction.ParseSet(sub.Jurisdiction...)
			own, _ := jurisdiction.ParseSet(registered.Jurisdiction)
			if err == nil && !scope.Within(own) {
				return nil, fmt.Errorf("%s may order only in %s, not in %s: %w", registered.Name, registered.Jurisdiction, strings.Join(sub.Jurisdiction, ","), ErrForbidden)
			}
		}
	case by.Role == access.Authority:
		return nil, fmt.Errorf("authority %s is not registered: %w", sub.Authority.ID, ErrForbidden)
	}

	// An amending authority must be one that can act: a principal acts
	// only for a registered authority, so an unknown id would give the
	// order an amender that no one is, or that a later registration
	// under that id would become without anyone deciding it.
	unknown := &order.InvalidError{}
	for i, a := range sub.AmendingAuthorities {
		if _, ok := r.authorities[a]; !ok && a != sub.Authority.ID {
			unknown.Fields = append(unknown.Fields, order.FieldError{Field: fmt.Sprintf("amending_authorities[%d]", i), Value: a,
				Message: "is not a registered authority: register it first (POST /v1/authorities), or leave it out"})
		}
	}

	now := r.clock.Now().UTC()
	for attempt := 0; ; attempt++ {
		o, err := r.intake.Accept(sub, newID(now), now)
		var inv *order.InvalidError
		switch {
		case err != nil && len(unknown.Fields) > 0 && errors.As(err, &inv):
			inv.Fields = append(inv.Fields, unknown.Fields...) // every problem at once
			return nil, inv
		case err != nil:
			return nil, err
		case len(unknown.Fields) > 0:
			return nil, unknown
		}
		if !known {
			ra := order.RegisteredAuthority{Authority: o.Authority, Registered: now}
			if err := r.store.PutAuthority(ctx, ra); err != nil {
				return nil, fmt.Errorf("registry: register authority: %w", err)
			}
			r.authorities[ra.ID] = ra
			known = true
			r.log.Info("authority registered with its first order", "authority", ra.ID, "principal", by.String())
		}
		events := []order.Event{{OrderID: o.ID, At: now, Kind: order.EventReceived, Principal: by.String(),
			Detail: fmt.Sprintf("%d targets for %s from %s", len(o.Targets), o.JurisdictionString(), o.Authority.Name)}}
		for _, t := range o.Targets {
			if t.State == order.TargetHeld {
				events = append(events, order.Event{OrderID: o.ID, At: now, Kind: order.EventHeld, Principal: "writ", Detail: t.String() + ": " + t.HoldReason})
			}
		}
		version, err := r.store.CreateOrder(ctx, o, events)
		if errors.Is(err, store.ErrExists) && attempt < 3 {
			continue // an id collision: draw another
		}
		if err != nil {
			return nil, fmt.Errorf("registry: record order: %w", err)
		}
		r.setWritten(o, events)
		r.metrics.submitted.Add(1)
		r.recorded(ctx, version, events)
		r.log.Info("order received", "order", o.ID, "authority", o.Authority.ID, "jurisdiction", o.JurisdictionString(),
			"targets", len(o.Targets), "status", o.StatusAt(now), "principal", by.String(), "policy_version", r.version)
		return o.Clone(), nil
	}
}

// matchRegistered checks a submission's authority against the registered
// one, filling in what the submission leaves out: an order cites its
// authority as registered, never as it describes itself.
func (r *Registry) matchRegistered(sub *order.Submission, a order.RegisteredAuthority) error {
	bad := &order.InvalidError{}
	check := func(field, got, want string) string {
		if got != "" && !strings.EqualFold(got, want) {
			bad.Fields = append(bad.Fields, order.FieldError{Field: field, Value: got,
				Message: fmt.Sprintf("does not match the registered authority %s (%s)", a.ID, want)})
		}
		return want
	}
	sub.Authority.Name = check("authority.name", sub.Authority.Name, a.Name)
	sub.Authority.Kind = order.AuthorityKind(check("authority.kind", string(sub.Authority.Kind), string(a.Kind)))
	sub.Authority.Jurisdiction = check("authority.jurisdiction", sub.Authority.Jurisdiction, a.Jurisdiction)
	if len(bad.Fields) > 0 {
		return bad
	}
	return nil
}

// change applies fn to a copy of an order and records the result with
// the events fn returns. fn sees the order as it stands; an error from fn
// changes nothing.
func (r *Registry) change(ctx context.Context, id string, fn func(o *order.Order, now time.Time) ([]order.Event, error)) (*order.Order, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, err := r.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	// The store runs fn on the order as it stands, under its write lock,
	// so that a change made meanwhile on another node is never lost; the
	// order in memory spares it a read when nothing was.
	o, events, version, err := r.store.ModifyOrderFrom(ctx, cur, r.written[id], func(o *order.Order) ([]order.Event, error) {
		now := r.clock.Now().UTC()
		events, err := fn(o, now)
		for i := range events {
			events[i].OrderID = id
			if events[i].At.IsZero() {
				events[i].At = now
			}
		}
		return events, err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("order %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	r.setWritten(o, events)
	r.recorded(ctx, version, events)
	for _, e := range events {
		r.log.Info("order "+string(e.Kind), "order", id, "principal", e.Principal, "detail", e.Detail, "policy_version", r.version)
	}
	return o.Clone(), nil
}

// stillOpen refuses changes to an order that has ended.
func stillOpen(o *order.Order, now time.Time) error {
	switch st := o.StatusAt(now); st {
	case order.StatusRevoked:
		return fmt.Errorf("order %s was already revoked on %s: %w", o.ID, o.DispositionAt.Format(time.RFC3339), ErrConflict)
	case order.StatusExpired:
		return fmt.Errorf("order %s expired on %s: %w", o.ID, o.Expires.Format(time.RFC3339), ErrConflict)
	}
	return nil
}

// Revoke withdraws an order: it stops blocking at once and for good.
func (r *Registry) Revoke(ctx context.Context, id, reason string, by access.Principal) (*order.Order, error) {
	if !by.Can(access.RevokeOrder) {
		return nil, forbidden(by, access.RevokeOrder)
	}
	return r.change(ctx, id, func(o *order.Order, now time.Time) ([]order.Event, error) {
		if !by.CanActFor(o.Authority.ID, nil, false) {
			return nil, fmt.Errorf("%s may revoke only orders of %s: %w", by, by.Authority, ErrForbidden)
		}
		if err := stillOpen(o, now); err != nil {
			return nil, err
		}
		o.Disposition, o.DispositionAt, o.DispositionReason = order.Revoked, &now, reason
		return []order.Event{{Kind: order.EventRevoked, Principal: by.String(), Detail: reason}}, nil
	})
}

// Amend adds targets to, or removes targets from, an order under its
// legal basis. Its authority, an authority it names as an amender, or an
// operator may amend it.
func (r *Registry) Amend(ctx context.Context, id string, a *order.Amendment, by access.Principal) (*order.Order, error) {
	if !by.Can(access.AmendOrder) {
		return nil, forbidden(by, access.AmendOrder)
	}
	return r.change(ctx, id, func(o *order.Order, now time.Time) ([]order.Event, error) {
		if !by.CanActFor(o.Authority.ID, o.AmendingAuthorities, true) {
			return nil, fmt.Errorf("%s may not amend order %s of %s: %w", by, o.ID, o.Authority.ID, ErrForbidden)
		}
		if by.Role == access.Authority && by.Authority != o.Authority.ID {
			// An amender adds targets under another authority's order, and
			// intake's jurisdiction safeguard weighs them against that
			// authority's jurisdiction, not the amender's: so the amender
			// itself must hold every jurisdiction the order applies in.
			// r.mu is held (change).
			amender, known := r.authorities[by.Authority]
			own, _ := jurisdiction.ParseSet(amender.Jurisdiction)
			scope, err := jurisdiction.ParseSet(o.Jurisdiction...)
			if !known || err != nil || !scope.Within(own) {
				return nil, fmt.Errorf("%s may amend only orders within the jurisdiction of %s (%s), and order %s applies in %s: %w",
					by, by.Authority, amender.Jurisdiction, o.ID, o.JurisdictionString(), ErrForbidden)
			}
		}
		if err := stillOpen(o, now); err != nil {
			return nil, err
		}
		amender := o.Authority
		if by.Role == access.Authority && by.Authority != o.Authority.ID {
			amender = r.authorities[by.Authority].Authority
		}
		amended, added, removed, err := r.intake.AmendBy(o, a, amender)
		if err != nil {
			return nil, err
		}
		*o = *amended
		for i := range o.Targets {
			if t := &o.Targets[i]; t.Amendment == o.Amendments && t.Added == nil {
				at := now.UTC()
				t.Added = &at
			}
		}
		var parts []string
		if len(added) > 0 {
			parts = append(parts, "added "+targetList(added))
		}
		if len(removed) > 0 {
			parts = append(parts, "removed "+targetList(removed))
		}
		detail := fmt.Sprintf("amendment %d: %s", o.Amendments, strings.Join(parts, "; "))
		if a.Note != "" {
			detail += " (" + a.Note + ")"
		}
		events := []order.Event{{Kind: order.EventAmended, Principal: by.String(), Detail: detail}}
		for _, t := range added {
			if t.State == order.TargetHeld {
				events = append(events, order.Event{Kind: order.EventHeld, Principal: "writ", Detail: t.String() + ": " + t.HoldReason})
			}
		}
		return events, nil
	})
}

func targetList(ts []order.Target) string {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.String()
	}
	return strings.Join(names, ", ")
}

// Hold takes an active target out of enforcement until a reviewer
// releases it: for an operator or reviewer who finds, after the fact, a
// target that should have been held (shared hosting found out later).
func (r *Registry) Hold(ctx context.Context, id, target, reason string, by access.Principal) (*order.Order, error) {
	return r.onTarget(ctx, id, target, reason, by, access.SuspendOrder, "a hold", func(t *order.Target) ([]order.Event, error) {
		if t.State != order.TargetActive {
			return nil, fmt.Errorf("target %s of order %s is %s; only an active target can be held: %w", t, id, t.State, ErrConflict)
		}
		t.State, t.HoldReason = order.TargetHeld, reason
		return []order.Event{{Kind: order.EventHeld, Principal: by.String(), Detail: t.String() + ": " + reason}}, nil
	})
}

// Release lets a held target be enforced; Reject refuses it for good.
// Both are a reviewer's decision, recorded with the reason.
func (r *Registry) Release(ctx context.Context, id, target, reason string, by access.Principal) (*order.Order, error) {
	return r.review(ctx, id, target, reason, by, order.TargetActive, order.EventReleased)
}

// Reject refuses a held target: it never blocks.
func (r *Registry) Reject(ctx context.Context, id, target, reason string, by access.Principal) (*order.Order, error) {
	return r.review(ctx, id, target, reason, by, order.TargetRejected, order.EventRejected)
}

func (r *Registry) review(ctx context.Context, id, target, reason string, by access.Principal, to order.TargetState, kind order.EventKind) (*order.Order, error) {
	return r.onTarget(ctx, id, target, reason, by, access.ReviewTarget, "a review decision", func(t *order.Target) ([]order.Event, error) {
		if t.State != order.TargetHeld {
			return nil, fmt.Errorf("target %s of order %s is %s, not held: %w", t, id, t.State, ErrConflict)
		}
		t.State, t.Decision = to, reason
		return []order.Event{{Kind: kind, Principal: by.String(), Detail: t.String() + ": " + reason}}, nil
	})
}

// onTarget changes one target of an open order by fn, for a principal
// allowed to take action, with a reason (what names the decision in the
// error when it is missing).
func (r *Registry) onTarget(ctx context.Context, id, target, reason string, by access.Principal, action access.Action, what string,
	fn func(t *order.Target) ([]order.Event, error)) (*order.Order, error) {
	if !by.Can(action) {
		return nil, forbidden(by, action)
	}
	if err := requireReason(reason, what); err != nil {
		return nil, err
	}
	return r.change(ctx, id, func(o *order.Order, now time.Time) ([]order.Event, error) {
		if err := stillOpen(o, now); err != nil {
			return nil, err
		}
		i, ok := o.TargetIndex(target)
		if !ok {
			return nil, fmt.Errorf("%q is not a target of order %s: %w", target, id, ErrNotFound)
		}
		return fn(&o.Targets[i])
	})
}

// requireReason refuses a decision (what) recorded without its reason.
func requireReason(reason, what string) error {
	if strings.TrimSpace(reason) == "" {
		return &order.InvalidError{Fields: []order.FieldError{{Field: "reason", Message: "is missing: " + what + " is recorded with its reason"}}}
	}
	return nil
}

// Suspend pauses an order (target "") or one of its targets, typically
// while a contest is examined: it stops blocking at once. Reinstate
// undoes it.
func (r *Registry) Suspend(ctx context.Context, id, target, reason string, by access.Principal) (*order.Order, error) {
	return r.suspension(ctx, id, target, reason, by, true)
}

// Reinstate ends a suspension.
func (r *Registry) Reinstate(ctx context.Context, id, target, reason string, by access.Principal) (*order.Order, error) {
	return r.suspension(ctx, id, target, reason, by, false)
}

func (r *Registry) suspension(ctx context.Context, id, target, reason string, by access.Principal, suspend bool) (*order.Order, error) {
	if !by.Can(access.SuspendOrder) {
		return nil, forbidden(by, access.SuspendOrder)
	}
	if err := requireReason(reason, "a suspension"); err != nil {
		return nil, err
	}
	return r.change(ctx, id, func(o *order.Order, now time.Time) ([]order.Event, error) {
		if err := stillOpen(o, now); err != nil {
			return nil, err
		}
		ev, err := setSuspended(o, target, reason, suspend, now)
		if err != nil {
			return nil, err
		}
		ev.Principal = by.String()
		return []order.Event{ev}, nil
	})
}

// setSuspended suspends or reinstates an order or one of its targets and
// returns the event that records it.
func setSuspended(o *order.Order, target, reason string, suspend bool, now time.Time) (order.Event, error) {
	kind := order.EventSuspended
	if !suspend {
		kind = order.EventReinstated
	}
	if target == "" {
		switch {
		case suspend && o.Disposition == order.Suspended:
			return order.Event{}, fmt.Errorf("order %s is already suspended: %w", o.ID, ErrConflict)
		case !suspend && o.Disposition != order.Suspended:
			return order.Event{}, fmt.Errorf("order %s is not suspended: %w", o.ID, ErrConflict)
		}
		if suspend {
			o.Disposition, o.DispositionAt, o.DispositionReason = order.Suspended, &now, reason
		} else {
			o.Disposition, o.DispositionAt, o.DispositionReason = "", nil, ""
		}
		return order.Event{Kind: kind, Detail: "whole order: " + reason}, nil
	}
	i, ok := o.TargetIndex(target)
	if !ok {
		return order.Event{}, fmt.Errorf("%q is not a target of order %s: %w", target, o.ID, ErrNotFound)
	}
	t := &o.Targets[i]
	switch {
	case suspend && t.State != order.TargetActive:
		return order.Event{}, fmt.Errorf("target %s is %s; only an active target can be suspended: %w", t, t.State, ErrConflict)
	case !suspend && t.State != order.TargetSuspended:
		return order.Event{}, fmt.Errorf("target %s is %s, not suspended: %w", t, t.State, ErrConflict)
	}
	if suspend {
		t.State = order.TargetSuspended
	} else {
		t.State = order.TargetActive
	}
	t.Decision = reason
	return order.Event{Kind: kind, Detail: t.String() + ": " + reason}, nil
}
