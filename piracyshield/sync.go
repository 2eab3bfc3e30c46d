package piracyshield

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/writ-project/writ/order"
)

// Sync polls the platform once and records in writ what changed: new
// tickets as orders, new items as amendments, unlisted items removed.
// When the checksums of the lists are those last applied in full,
// nothing is fetched beyond them.
func (c *Connector) Sync(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	err := c.sync(ctx)
	switch {
	case ctx.Err() != nil:
		// Stopped, not failed.
	case err != nil:
		c.metrics.polls.WithLabelValues("error").Inc()
	default:
		c.metrics.polls.WithLabelValues("ok").Inc()
	}
	return err
}

func (c *Connector) sync(ctx context.Context) error {
	if c.authority.ID == "" {
		a, err := c.writ.EnsureAuthority(ctx, order.RegisteredAuthority{
			Authority:       order.Authority{ID: c.cfg.Authority, Name: DefaultAuthorityName, Kind: order.DelegatedReporter, Jurisdiction: Jurisdiction},
			DeadlineSeconds: int(Deadline / time.Second),
		})
		if err != nil {
			return err
		}
		c.authority = a
		c.log.Info("piracy shield orders are recorded under authority", "authority", a.ID, "kind", a.Kind, "jurisdiction", a.Jurisdiction, "review", c.cfg.Review)
	}
	now := c.cfg.Now()
	sums := map[Genre]string{}
	for _, g := range Genres {
		sum, err := c.client.ItemsChecksum(ctx, g)
		if err != nil {
			return err
		}
		sums[g] = sum
	}
	changed := false
	if !maps.Equal(sums, c.st.Checksums) {
		listed := map[Genre]map[string]bool{}
		for _, g := range Genres {
			values, sum, err := c.client.VerifiedItems(ctx, g)
			if errors.Is(err, ErrChecksum) {
				c.metrics.checksumFails.Inc()
			}
			if err != nil {
				return err
			}
			listed[g] = map[string]bool{}
			for _, v := range values {
				listed[g][v] = true
			}
			sums[g] = sum
		}
		tickets, err := c.client.Tickets(ctx)
		if err != nil {
			return err
		}
		complete, err := c.apply(ctx, tickets, listed, now)
		changed = true
		if err != nil {
			c.save()
			return err
		}
		if complete {
			c.st.Checksums = sums
		}
	}
	if renewed, err := c.renew(ctx, now); err != nil {
		c.save()
		return err
	} else if renewed {
		changed = true
	}
	c.st.LastSuccess = now
	c.metrics.lastSuccess.Set(float64(now.Unix()))
	if changed {
		return c.save()
	}
	return nil
}

func (c *Connector) save() error {
	if err := c.st.Save(c.cfg.StateFile); err != nil {
		c.log.Error("piracy shield: saving the state failed", "file", c.cfg.StateFile, "err", err)
		return err
	}
	return nil
}

// apply records the tickets as listed. Only values in the
// checksum-verified lists are added; a value is removed when its ticket
// no longer lists it or, for a ticket gone from the listing, when the
// verified list no longer holds it. complete is false when the ticket
// listing and the lists disagree (one changed between the requests), so
// that the next poll looks again.
func (c *Connector) apply(ctx context.Context, tickets []Ticket, listed map[Genre]map[string]bool, now time.Time) (complete bool, err error) {
	complete = true
	c.orders = nil
	attributed := map[Genre]map[string]bool{FQDN: {}, IPv4: {}, IPv6: {}}
	present := map[string]bool{}
	var errs []error
	for i := range tickets {
		t := &tickets[i]
		if !ValidTicketID(t.ID) {
			c.metrics.malformed.Inc()
			c.log.Warn("piracy shield listed a ticket with a malformed id; skipped", "ticket", t.ID)
			for _, g := range Genres {
				for _, v := range t.Items(g) {
					attributed[g][v] = true // skipped on purpose, not missed
				}
			}
			continue
		}
		if present[t.ID] {
			continue
		}
		present[t.ID] = true
		rec := c.st.Tickets[t.ID]
		inTicket := map[string]bool{}
		add := map[string]Genre{}
		for _, g := range Genres {
			for _, v := range t.Items(g) {
				inTicket[v] = true
				if !listed[g][v] {
					complete = false // in the ticket, not yet in the list
					continue
				}
				attributed[g][v] = true
				if rec == nil || rec.Items[v] == nil {
					add[v] = g
				}
			}
		}
		var remove []string
		if rec != nil {
			for v := range rec.Items {
				if !inTicket[v] {
					remove = append(remove, v)
				}
			}
		}
		if err := c.applyTicket(ctx, t.ID, t, add, remove, now); err != nil {
			errs = append(errs, err)
			complete = false
		}
	}
	for g, set := range listed {
		for v := range set {
			if !attributed[g][v] {
				complete = false // listed, but in no ticket yet
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(c.st.Tickets)) {
		if present[id] {
			continue
		}
		rec := c.st.Tickets[id]
		var remove []string
		for v, it := range rec.Items {
			if !listed[it.Genre][v] {
				remove = append(remove, v)
			}
		}
		if len(remove) > 0 {
			if err := c.applyTicket(ctx, id, nil, nil, remove, now); err != nil {
				errs = append(errs, err)
				complete = false
			}
		}
		if len(rec.Items) == 0 {
			delete(c.st.Tickets, id)
		}
	}
	return complete, errors.Join(errs...)
}

// caseOf is how an order cites its ticket; orders are found again by it.
func caseOf(ticketID string) string { return "Piracy Shield ticket " + ticketID }

// applyTicket adds and removes one ticket's items in writ. t is nil for a
// ticket gone from the listing. Nothing is remembered of a change writ
// did not accept, so that the next poll tries again.
func (c *Connector) applyTicket(ctx context.Context, id string, t *Ticket, add map[string]Genre, remove []string, now time.Time) error {
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	rec := c.st.Tickets[id]
	if rec == nil {
		rec = &TicketRecord{FirstSeen: now, Items: map[string]*ItemRecord{}}
	}
	since := now
	if t != nil && c.st.Tickets[id] == nil {
		// The thirty minutes run from the notice, not from the poll.
		if created, ok := t.Created(); ok && created.Before(now) {
			since = created
		}
	}
	added := map[string]*ItemRecord{}
	// Items first seen after the platform's window closed (at a first
	// start) are applied all the same, but can no longer be reported.
	late := now.Sub(since) > UpdateWindow
	if late && len(add) > 0 {
		c.log.Info("piracy shield ticket older than the 48-hour reporting window: its items are applied but not reported", "ticket", id, "items", len(add))
	}
	for _, v := range slices.Sorted(maps.Keys(add)) {
		it := &ItemRecord{Genre: add[v], Since: since, Closed: late}
		target, err := CheckValue(add[v], v)
		switch {
		case errors.Is(err, ErrMalformed):
			// Never blocked, and never reported: the platform refuses
			// any report about a value it should not have listed.
			it.Refused, it.Closed = fmt.Sprintf("%q %v", v, err), true
			c.metrics.malformed.Inc()
			c.log.Warn("piracy shield listed a malformed item; skipped", "ticket", id, "value", v, "reason", err)
		case err != nil:
			it.Refused = fmt.Sprintf("%q %v", v, err)
			c.log.Warn("piracy shield item refused: writ cannot block it", "ticket", id, "value", v, "reason", err)
		case target.FQDN != "":
			it.Target = target.FQDN
		default:
			it.Target = target.IP
		}
		added[v] = it
	}
	removing := map[string]bool{}
	for _, v := range remove {
		removing[v] = true
	}
	// A target stays while any value of the ticket still stands for it.
	keep := map[string]bool{}
	for v, it := range rec.Items {
		if !removing[v] && it.Target != "" {
			keep[it.Target] = true
		}
	}
	for _, it := range added {
		if it.Target != "" {
			keep[it.Target] = true
		}
	}
	commit := func(o *order.Order) {
		maps.Copy(rec.Items, added)
		for _, v := range remove {
			delete(rec.Items, v)
		}
		if o != nil {
			rec.Order, rec.Expires = o.ID, o.Expires
		}
		if len(rec.Items) > 0 {
			c.st.Tickets[id] = rec
		} else {
			delete(c.st.Tickets, id)
		}
	}

	var o *order.Order
	if rec.Order == "" {
		found, err := c.findOrder(ctx, id)
		if err != nil {
			return err
		}
		o = found
	} else {
		got, _, err := c.writ.Order(ctx, rec.Order)
		if err != nil {
			return fmt.Errorf("reading order %s of ticket %s: %w", rec.Order, id, err)
		}
		o = got
	}
	for attempt := 0; ; attempt++ {
		wantAdd := c.targetsToAdd(o, added)
		var wantRemove []order.SubmittedTarget
		if o != nil {
			for _, v := range remove {
				it := rec.Items[v]
				if it == nil || it.Target == "" || keep[it.Target] {
					continue
				}
				if tg, ok := o.FindTarget(it.Target); ok && tg.State.Live() && !containsTarget(wantRemove, it.Target) {
					wantRemove = append(wantRemove, submitted(it))
				}
			}
		}
		if len(wantAdd) == 0 && len(wantRemove) == 0 {
			commit(o)
			return nil
		}
		var (
			got  *order.Order
			err  error
			kind string
		)
		if o == nil {
			kind = "order"
			got, err = c.writ.Submit(ctx, c.submission(id, t, wantAdd, now))
		} else {
			kind = "amendment"
			note := fmt.Sprintf("Piracy Shield ticket %s: %d item(s) listed, %d unlisted", id, len(wantAdd), len(wantRemove))
			got, err = c.writ.Amend(ctx, o.ID, &order.Amendment{Add: wantAdd, Remove: wantRemove, Note: note})
		}
		var inv *order.InvalidError
		switch {
		case err == nil:
		case errors.As(err, &inv) && attempt < 3 && c.refuse(inv, kind, wantAdd, added):
			continue // the targets writ refused are marked; try without them
		case kind == "amendment" && conflict(err):
			// The order can change no more (revoked, say): what the
			// ticket adds cannot be recorded under it.
			for _, it := range added {
				if it.Refused == "" {
					it.Refused = fmt.Sprintf("writ order %s can no longer be amended, %v", o.ID, err)
				}
			}
			commit(nil)
			return nil
		default:
			return fmt.Errorf("piracy shield ticket %s: writ refused the %s: %w", id, kind, err)
		}
		c.metrics.orders.WithLabelValues(kind).Inc()
		c.log.Info("piracy shield ticket recorded", "ticket", id, "order", got.ID, "change", kind, "added", len(wantAdd), "removed", len(wantRemove))
		got = c.releaseReviewOnly(ctx, got, wantAdd)
		commit(got)
		return nil
	}
}

// targetsToAdd lists the targets of added items that o does not already
// hold live (an item another value of the ticket stands for, or a change
// recorded before a crash).
func (c *Connector) targetsToAdd(o *order.Order, added map[string]*ItemRecord) []order.SubmittedTarget {
	var out []order.SubmittedTarget
	for _, v := range slices.Sorted(maps.Keys(added)) {
		it := added[v]
		if it.Target == "" || it.Refused != "" || containsTarget(out, it.Target) {
			continue
		}
		if o != nil {
			if tg, ok := o.FindTarget(it.Target); ok && tg.State.Live() {
				continue
			}
		}
		out = append(out, submitted(it))
	}
	return out
}

func submitted(it *ItemRecord) order.SubmittedTarget {
	if it.Genre == FQDN {
		return order.SubmittedTarget{FQDN: it.Target}
	}
	return order.SubmittedTarget{IP: it.Target}
}

func containsTarget(list []order.SubmittedTarget, target string) bool {
	for _, t := range list {
		if t.FQDN == target || t.IP == target {
			return true
		}
	}
	return false
}

var targetField = regexp.MustCompile(`^(?:targets|add)\[(\d+)\]`)

// refuse marks the items whose targets writ rejected, from the fields of
// its error, and reports whether any was: otherwise the error is about
// the order itself and retrying without targets would not help.
func (c *Connector) refuse(inv *order.InvalidError, kind string, targets []order.SubmittedTarget, added map[string]*ItemRecord) bool {
	marked := false
	for _, f := range inv.Fields {
		m := targetField.FindStringSubmatch(f.Field)
		if m == nil {
			return false
		}
		i, _ := strconv.Atoi(m[1])
		if i >= len(targets) {
			return false
		}
		bad := targets[i].FQDN + targets[i].IP
		for v, it := range added {
			if it.Target == bad {
				it.Refused = fmt.Sprintf("%q %s", v, f.Message)
				c.log.Warn("piracy shield item refused by writ", "value", v, "change", kind, "reason", f.Message)
				marked = true
			}
		}
	}
	return marked
}

// findOrder returns the order recorded for a ticket before the state
// could remember it (a crash between the two), or nil.
func (c *Connector) findOrder(ctx context.Context, ticketID string) (*order.Order, error) {
	if c.orders == nil {
		list, err := c.writ.Orders(ctx, c.authority.ID)
		if err != nil {
			return nil, fmt.Errorf("listing the orders of %s: %w", c.authority.ID, err)
		}
		c.orders = map[string]*order.Order{}
		now := c.cfg.Now()
		for _, o := range list {
			id, ok := strings.CutPrefix(o.LegalBasis.Case, caseOf(""))
			if !ok || len(id) < 32 || o.StatusAt(now) == order.StatusExpired {
				continue
			}
			id = id[:32]
			if prev := c.orders[id]; prev == nil || o.Received.After(prev.Received) {
				c.orders[id] = o
			}
		}
	}
	return c.orders[ticketID], nil
}

// submission is the order a ticket becomes.
func (c *Connector) submission(id string, t *Ticket, targets []order.SubmittedTarget, now time.Time) *order.Submission {
	s := &order.Submission{
		Authority:    c.authority.Authority,
		LegalBasis:   order.LegalBasis{Statute: c.cfg.LegalReference, Case: caseOf(id)},
		Jurisdiction: []string{Jurisdiction},
		Targets:      targets,
		Note:         "Received from the Piracy Shield platform; the ticket's items are this order's targets.",
	}
	if t != nil {
		if t.DDAID != "" {
			s.LegalBasis.Case += " (DDA " + t.DDAID + ")"
		}
		s.LegalBasis.Summary = plainText(t.Description, 4000)
		if created, ok := t.Created(); ok {
			s.Issued = created.UTC().Format(time.RFC3339)
		}
	}
	if c.cfg.OrderExpiry > 0 {
		s.Expires = now.Add(c.cfg.OrderExpiry).UTC().Format(time.RFC3339)
	}
	return s
}

// plainText drops control characters and clips text for an order field.
func plainText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	return clip(strings.TrimSpace(s), n)
}

// releaseReviewOnly is the fallback by which ReviewSafeguards works on a
// writ that reviews every delegated reporter's order: it releases, as the
// connector's reviewer, the targets just recorded that writ holds only
// for that review, never those a safeguard holds. It returns the order
// as it then stands.
func (c *Connector) releaseReviewOnly(ctx context.Context, o *order.Order, added []order.SubmittedTarget) *order.Order {
	if c.cfg.Review != ReviewSafeguards || c.delegatedHold == "" {
		return o
	}
	for _, st := range added {
		name := st.FQDN + st.IP
		t, ok := o.FindTarget(name)
		if !ok || t.State != order.TargetHeld || t.HoldReason != c.delegatedHold {
			continue
		}
		got, err := c.writ.Release(ctx, o.ID, name, "Piracy Shield notices bind the provider within thirty minutes ("+c.cfg.LegalReference+"); writ's safeguards found nothing to hold")
		switch {
		case errors.Is(err, ErrNoReviewer):
			if !c.warned["reviewer"] {
				c.warned["reviewer"] = true
				c.log.Warn("piracy shield targets wait for a writ reviewer: this writ reviews every delegated reporter's order and the connector has no reviewer credentials; give it some, list the authority in orders.review_exempt_authorities (writ serve does so itself when it runs the connector), or set orders.review_delegated_reporters: false",
					"authority", c.authority.ID)
			}
			return o
		case err != nil:
			c.log.Error("piracy shield: releasing a target held only for review failed; it waits for a reviewer", "order", o.ID, "target", name, "err", err)
			continue
		}
		c.metrics.orders.WithLabelValues("release").Inc()
		if !c.warned["release"] {
			c.warned["release"] = true
			c.log.Info("piracy shield: releasing, one by one, the targets this writ holds only because it reviews delegated reporters' orders; "+
				"a large ticket applies faster with orders.review_delegated_reporters: false or the authority registered as a regulator",
				"authority", c.authority.ID)
		}
		o = got
	}
	return o
}

// renewBefore is how long before its expiry an order is renewed.
func (c *Connector) renewBefore() time.Duration {
	return min(7*24*time.Hour, c.cfg.OrderExpiry/4)
}

// renew replaces each order about to expire whose ticket still lists
// items with a new order for the same ticket, carrying the targets that
// are active or held. Rejected, removed and suspended targets are not
// carried: a renewal never undoes a reviewer's or a contest's decision.
func (c *Connector) renew(ctx context.Context, now time.Time) (bool, error) {
	renewed := false
	for _, id := range slices.Sorted(maps.Keys(c.st.Tickets)) {
		rec := c.st.Tickets[id]
		if rec.Order == "" || rec.Expires.IsZero() || now.Before(rec.Expires.Add(-c.renewBefore())) {
			continue
		}
		old, _, err := c.writ.Order(ctx, rec.Order)
		if err != nil {
			return renewed, fmt.Errorf("reading order %s for renewal: %w", rec.Order, err)
		}
		if st := old.StatusAt(now); st == order.StatusRevoked || st == order.StatusSuspended {
			rec.Expires = time.Time{} // a decision, not an expiry: nothing to renew
			continue
		}
		var targets []order.SubmittedTarget
		for _, v := range slices.Sorted(maps.Keys(rec.Items)) {
			it := rec.Items[v]
			if it.Target == "" || containsTarget(targets, it.Target) {
				continue
			}
			if t, ok := old.FindTarget(it.Target); ok && (t.State == order.TargetActive || t.State == order.TargetHeld) {
				targets = append(targets, submitted(it))
			}
		}
		if len(targets) == 0 {
			rec.Expires = time.Time{}
			continue
		}
		sub := c.submission(id, nil, targets, now)
		sub.LegalBasis = old.LegalBasis
		if old.Issued != nil {
			sub.Issued = old.Issued.UTC().Format(time.RFC3339)
		}
		sub.Note = fmt.Sprintf("Renews order %s: the Piracy Shield platform still lists these items.", old.ID)
		o, err := c.writ.Submit(ctx, sub)
		if err != nil {
			return renewed, fmt.Errorf("renewing order %s of ticket %s: %w", old.ID, id, err)
		}
		o = c.releaseReviewOnly(ctx, o, targets)
		c.metrics.orders.WithLabelValues("renewal").Inc()
		c.log.Info("piracy shield order renewed", "ticket", id, "old", old.ID, "order", o.ID, "expires", o.Expires)
		rec.Order, rec.Expires = o.ID, o.Expires
		for _, it := range rec.Items {
			it.ActiveVersion = 0 // enforced anew under the new order
		}
		renewed = true
	}
	return renewed, nil
}
