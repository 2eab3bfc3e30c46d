package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/store"
)

// FileContest records a contest against an order or one of its targets.
// Anyone may file one (by is access.Anonymous then; a principal who
// records one for someone, through the console, is named in the event);
// the filer's contact is kept for reviewers and never enters the events.
func (r *Registry) FileContest(ctx context.Context, id string, sub *order.ContestSubmission, by access.Principal) (*order.Contest, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o, err := r.lookup(ctx, id)
	if err != nil {
		return nil, err
	}
	now := r.clock.Now().UTC()
	c, err := order.AcceptContest(o, sub, now)
	if err != nil {
		return nil, err
	}
	var events []order.Event
	version, err := r.store.CreateContest(ctx, c, func(cid int64) []order.Event {
		what := "the whole order"
		if c.Target != "" {
			what = c.Target
		}
		events = []order.Event{{OrderID: id, At: now, Kind: order.EventContested, Principal: by.String(),
			Detail: fmt.Sprintf("contest %d against %s: %s", cid, what, clip(c.Grounds, 500))}}
		return events
	})
	if err != nil {
		return nil, err
	}
	r.recorded(ctx, version, events)
	r.log.Info("contest filed", "order", id, "contest", c.ID, "target", c.Target)
	return c, nil
}

// DecideContest records a reviewer's decision on a contest. Upheld, the
// contested target is removed (or, for a contest against the whole order,
// the order is revoked); dismissed, a suspension of what was contested is
// lifted. Either way the decision and its reasons are public.
func (r *Registry) DecideContest(ctx context.Context, contestID int64, outcome order.ContestStatus, reason string, by access.Principal) (*order.Contest, error) {
	if !by.Can(access.DecideContest) {
		return nil, forbidden(by, access.DecideContest)
	}
	if outcome != order.ContestUpheld && outcome != order.ContestDismissed {
		return nil, &order.InvalidError{Fields: []order.FieldError{{Field: "outcome", Value: string(outcome), Message: "is not upheld or dismissed"}}}
	}
	if strings.TrimSpace(reason) == "" {
		return nil, &order.InvalidError{Fields: []order.FieldError{{Field: "reason", Message: "is missing: a decision is published with its reasons"}}}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for attempt := 0; ; attempt++ {
		c, err := r.decideContest(ctx, contestID, outcome, reason, by)
		if errors.Is(err, store.ErrStale) && attempt < 3 {
			// Another node decided it, or changed its order: read again.
			if err := r.catchUp(ctx); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		r.log.Info("contest decided", "contest", c.ID, "order", c.OrderID, "outcome", outcome, "principal", by.String())
		return c, nil
	}
}

// decideContest is one attempt of DecideContest. r.mu must be held.
func (r *Registry) decideContest(ctx context.Context, contestID int64, outcome order.ContestStatus, reason string, by access.Principal) (*order.Contest, error) {
	c, err := r.store.Contest(ctx, contestID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("contest %d: %w", contestID, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	if c.Status != order.ContestPending {
		return nil, fmt.Errorf("contest %d was already decided (%s): %w", c.ID, c.Status, ErrConflict)
	}
	cur, err := r.lookup(ctx, c.OrderID)
	if err != nil {
		return nil, err
	}
	now := r.clock.Now().UTC()
	o := cur.Clone()
	c.Status, c.Decided, c.Decision = outcome, &now, reason
	events := []order.Event{{OrderID: o.ID, At: now, Kind: order.EventDecided, Principal: by.String(),
		Detail: fmt.Sprintf("contest %d %s: %s", c.ID, outcome, reason)}}
	changed := false
	switch {
	case outcome == order.ContestUpheld && c.Target == "":
		if stillOpen(o, now) == nil {
			o.Disposition, o.DispositionAt, o.DispositionReason = order.Revoked, &now, fmt.Sprintf("contest %d upheld: %s", c.ID, reason)
			events = append(events, order.Event{OrderID: o.ID, At: now, Kind: order.EventRevoked, Principal: by.String(), Detail: o.DispositionReason})
			changed = true
		}
	case outcome == order.ContestUpheld:
		if i, ok := o.TargetIndex(c.Target); ok && o.Targets[i].State.Live() {
			o.Targets[i].State, o.Targets[i].Decision = order.TargetRemoved, fmt.Sprintf("lifted: contest %d upheld", c.ID)
			changed = true
		}
	default:
		target := c.Target
		suspended := o.Disposition == order.Suspended && target == ""
		if i, ok := o.TargetIndex(target); ok && target != "" {
			suspended = o.Targets[i].State == order.TargetSuspended
		}
		if suspended {
			ev, err := setSuspended(o, target, fmt.Sprintf("contest %d dismissed", c.ID), false, now)
			if err != nil {
				return nil, err
			}
			ev.OrderID, ev.At, ev.Principal = o.ID, now, by.String()
			events = append(events, ev)
			changed = true
		}
	}
	var doc *order.Order
	if changed {
		doc = o
	}
	version, err := r.store.DecideContest(ctx, &c, doc, events, r.version)
	if err != nil {
		return nil, err
	}
	if changed {
		r.setOrder(o)
	}
	r.recorded(ctx, version, events)
	return &c, nil
}

// Contest returns one contest.
func (r *Registry) Contest(ctx context.Context, id int64) (order.Contest, error) {
	c, err := r.store.Contest(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return c, fmt.Errorf("contest %d: %w", id, ErrNotFound)
	}
	return c, err
}

// Contests returns the contests against an order ("" for all).
func (r *Registry) Contests(ctx context.Context, orderID string) ([]order.Contest, error) {
	return r.store.Contests(ctx, orderID)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
