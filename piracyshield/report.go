package piracyshield

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
)

// verdict is what to report about an item now.
type verdict struct {
	status Status
	note   string
	// waiting says what a processed report waits for; empty when the
	// verdict can be reported.
	waiting string
}

// Report reports every item whose status in writ is settled and differs
// from what was last reported: processed once every relevant enforcement
// point has applied the policy version that activated it, unprocessed
// with the reason when writ holds, refuses, suspends or lifts it. It
// returns how many items wait for receipts. Reports are retried at the
// next round until the platform's 48-hour window closes.
//
// Each report is written down in the state (ItemRecord.Sending) before
// it is sent. A report sent but not known to have arrived (the
// connector was stopped, or the answer lost) is settled from the
// platform's state of the item before anything more is sent about it:
// a restart at any point neither reports an item twice nor loses a
// report.
func (c *Connector) Report(ctx context.Context) (waiting int, err error) {
	return c.report(ctx, true)
}

// due is a report to send in this round.
type due struct {
	ticket, value string
	it            *ItemRecord
	v             verdict
}

// report is Report; with all false it looks only at the tickets with an
// item never reported, for the quick rounds that wait for receipts.
func (c *Connector) report(ctx context.Context, all bool) (waiting int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	var errs []error
	// Reports in doubt first: until the platform says whether one
	// arrived, nothing more is sent about its item.
	retry, settled, serr := c.settle(ctx)
	if serr != nil {
		errs = append(errs, serr)
	}
	changed := settled
	fail := func(err error) (int, error) {
		errs = append(errs, err)
		if changed {
			if serr := c.save(); serr != nil {
				errs = append(errs, serr)
			}
		}
		return 0, errors.Join(errs...)
	}
	type fetched struct {
		o      *order.Order
		events []order.Event
	}
	orders := map[string]fetched{}
	for id, rec := range c.st.Tickets {
		if rec.Order == "" || !c.open(rec, now) || !all && !unreported(rec) && !retry[id] {
			continue
		}
		if _, ok := orders[rec.Order]; ok {
			continue
		}
		o, events, err := c.writ.Order(ctx, rec.Order)
		if err != nil {
			return fail(fmt.Errorf("reading order %s: %w", rec.Order, err))
		}
		orders[rec.Order] = fetched{o, events}
	}
	// The receipts are read after the orders: a target seen active was
	// activated at a version these receipts can be compared with.
	_, points, err := c.writ.Enforcement(ctx)
	if err != nil {
		return fail(fmt.Errorf("reading the enforcement points: %w", err))
	}
	relevant := c.relevantPoints(points)

	// What each item's report is now, and which reports are due.
	verdicts := map[*ItemRecord]verdict{}
	var send []due
	for _, id := range slices.Sorted(maps.Keys(c.st.Tickets)) {
		rec := c.st.Tickets[id]
		f, fetchedOrder := orders[rec.Order]
		if rec.Order != "" && !fetchedOrder && c.open(rec, now) {
			continue // not looked at in this round
		}
		for _, value := range slices.Sorted(maps.Keys(rec.Items)) {
			it := rec.Items[value]
			if it.Closed {
				continue
			}
			if !it.Since.IsZero() && now.Sub(it.Since) > UpdateWindow {
				// The platform takes no more reports for it.
				it.Closed, changed = true, true
				if it.Reported == "" && it.Sending == nil {
					c.log.Error("piracy shield item never reported: the platform's 48-hour window has closed", "ticket", id, "value", value)
				}
				continue
			}
			v := c.verdict(it, f.o, f.events, relevant, now)
			verdicts[it] = v
			if v.waiting != "" {
				waiting++
			}
			// An item with a report in doubt (its platform state could not
			// be read) gets nothing more until it is settled.
			if v.waiting == "" && v.status != it.Reported && it.Sending == nil {
				send = append(send, due{id, value, it, v})
			}
		}
	}

	if len(send) > 0 {
		// Written down before sent: a crash from here on leaves intents
		// that the next start settles with the platform.
		for _, d := range send {
			d.it.Sending = &Intent{Status: d.v.status, Note: Note(d.v.note), At: now}
		}
		if serr := c.save(); serr != nil {
			// Not written down, so not sent: the next round tries again.
			for _, d := range send {
				d.it.Sending = nil
			}
			send = nil
			errs = append(errs, serr)
		}
		changed = true
	}
	unreachable := false
	for _, d := range send {
		if unreachable {
			d.it.Sending = nil // never sent
			continue
		}
		if rerr := c.send(ctx, d.ticket, d.value, d.it); rerr != nil {
			errs = append(errs, rerr)
			// Unreachable, the platform would fail the rest too.
			unreachable = d.it.Sending != nil
		}
	}

	counts := map[string]int{}
	atRisk, overdue := 0, 0
	for _, id := range slices.Sorted(maps.Keys(c.st.Tickets)) {
		rec := c.st.Tickets[id]
		for _, value := range slices.Sorted(maps.Keys(rec.Items)) {
			it := rec.Items[value]
			counts[stateOf(it)]++
			v, looked := verdicts[it]
			if !looked || it.Reported != "" {
				continue
			}
			age := now.Sub(it.Since)
			if age >= c.cfg.AlertAfter {
				atRisk++
				// An item first seen already this old (at a first
				// start) was logged when it was seen; alerting on it
				// could change nothing.
				if !it.Alerted && rec.FirstSeen.Sub(it.Since) < c.cfg.AlertAfter {
					it.Alerted, changed = true, true
					c.metrics.alerts.Inc()
					why := v.waiting
					if why == "" {
						why = "the report to the platform failing"
					}
					c.log.Error("piracy shield deadline at risk: item not yet reported", "ticket", id, "value", value,
						"age", age.Round(time.Second), "deadline", Deadline, "waiting_for", why, "order", rec.Order)
				}
			}
			if age >= Deadline {
				overdue++
			}
		}
	}
	for _, state := range []string{"awaiting", string(Processed), string(Unprocessed), "unreported"} {
		c.metrics.items.WithLabelValues(state).Set(float64(counts[state]))
	}
	c.metrics.atRisk.Set(float64(atRisk))
	c.metrics.overdue.Set(float64(overdue))
	if changed {
		if serr := c.save(); serr != nil {
			errs = append(errs, serr)
		}
	}
	return waiting, errors.Join(errs...)
}

// settle resolves the reports in doubt (items whose Sending is set) from
// the platform's state of their tickets' items: a report that arrived is
// recorded as reported, one that did not is dropped, to be sent again if
// still due. retry names the tickets with a report dropped; changed says
// whether the state changed. An item whose ticket's state cannot be read
// stays in doubt, and gets no report, until a later round settles it.
func (c *Connector) settle(ctx context.Context) (retry map[string]bool, changed bool, err error) {
	retry = map[string]bool{}
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(c.st.Tickets)) {
		rec := c.st.Tickets[id]
		if !inDoubt(rec) {
			continue
		}
		states, err := c.client.ItemStates(ctx, id)
		switch {
		case HasCode(err, CodeTicketNotFound):
			// Nothing of the ticket is listed any more: no report about
			// it can arrive, nor could one have been recorded.
			states = nil
		case err != nil:
			errs = append(errs, fmt.Errorf("piracy shield ticket %s: reading its items' state to settle reports in doubt: %w", id, err))
			continue
		}
		byValue := make(map[string]ItemState, len(states))
		for _, s := range states {
			byValue[s.Value] = s
		}
		for _, value := range slices.Sorted(maps.Keys(rec.Items)) {
			it := rec.Items[value]
			in := it.Sending
			if in == nil {
				continue
			}
			it.Sending, changed = nil, true
			if s, ok := byValue[value]; ok && in.arrived(s) {
				c.reported(id, value, it, *in)
				continue
			}
			// Not on the platform: never sent, or refused. An item no
			// longer listed would be refused again (5001): no report
			// about it can arrive twice.
			retry[id] = true
			c.log.Info("piracy shield report in doubt had not arrived; sent again if still due", "ticket", id, "value", value, "status", in.Status)
		}
	}
	return retry, changed, errors.Join(errs...)
}

// inDoubt reports whether a ticket has an item with a report in doubt.
func inDoubt(rec *TicketRecord) bool {
	for _, it := range rec.Items {
		if it.Sending != nil {
			return true
		}
	}
	return false
}

// stateOf names an item's state for the items gauge.
func stateOf(it *ItemRecord) string {
	switch {
	case it.Reported != "":
		return string(it.Reported)
	case it.Closed:
		return "unreported" // the platform's window closed first
	}
	return "awaiting"
}

// unreported reports whether a ticket has an item never reported.
func unreported(rec *TicketRecord) bool {
	for _, it := range rec.Items {
		if !it.Closed && it.Reported == "" {
			return true
		}
	}
	return false
}

// open reports whether a ticket has an item whose report may still change.
func (c *Connector) open(rec *TicketRecord, now time.Time) bool {
	for _, it := range rec.Items {
		if !it.Closed && now.Sub(it.Since) <= UpdateWindow {
			return true
		}
	}
	return false
}

// send sends the report written down in it.Sending. When the platform
// answers, the intent is settled: recorded as reported, or dropped
// (refused). When it does not (unreachable, the answer lost, stopped),
// the intent stays, in doubt, for settle.
func (c *Connector) send(ctx context.Context, ticket, value string, it *ItemRecord) error {
	in := *it.Sending
	var err error
	if in.Status == Processed {
		err = c.client.SetProcessed(ctx, value, in.At, in.Note)
	} else {
		err = c.client.SetUnprocessed(ctx, value, Undefined, in.At, in.Note)
	}
	if err == nil {
		c.metrics.reports.WithLabelValues(string(in.Status), "ok").Inc()
		it.Sending = nil
		c.reported(ticket, value, it, in)
		return nil
	}
	c.metrics.reports.WithLabelValues(string(in.Status), "error").Inc()
	if !refused(err) {
		// It may have arrived all the same.
		return err
	}
	it.Sending = nil
	switch {
	case HasCode(err, CodeUpdateTimeExceeded), HasCode(err, CodeValueNonValid), HasCode(err, CodeNoteNonValid):
		// Refused for good: retrying cannot help.
		it.Closed = true
		c.log.Error("piracy shield refused a report for good", "ticket", ticket, "value", value, "status", in.Status, "err", err)
	case HasCode(err, CodeItemNotFound):
		// Unlisted since the last poll: the next one removes it.
	}
	return err
}

// refused reports whether err is the platform's answer refusing a
// request, which it then did not carry out: an error of the platform
// (its code), or a client error such as rate limiting. A transport
// error, or a server error without the platform's code (a proxy's
// timeout, say), leaves it unknown whether the request was carried out.
func refused(err error) bool {
	var e *APIError
	if !errors.As(err, &e) {
		return false
	}
	return e.Code != "" || e.HTTPStatus >= 400 && e.HTTPStatus < 500
}

// reported records that the report in arrived.
func (c *Connector) reported(ticket, value string, it *ItemRecord, in Intent) {
	if it.Reported == "" {
		c.metrics.reportSeconds.WithLabelValues(string(in.Status)).Observe(in.At.Sub(it.Since).Seconds())
	}
	it.Reported, it.ReportedAt, it.Note = in.Status, in.At, in.Note
	c.log.Info("piracy shield item reported", "ticket", ticket, "value", value, "status", in.Status, "note", in.Note)
}

// verdict decides what to report about an item from its target in o.
func (c *Connector) verdict(it *ItemRecord, o *order.Order, events []order.Event, relevant []policy.Receipt, now time.Time) verdict {
	if it.Refused != "" {
		return verdict{status: Unprocessed, note: "writ cannot block this value, " + it.Refused}
	}
	if o == nil {
		return verdict{waiting: "its writ order"}
	}
	t, ok := o.FindTarget(it.Target)
	if !ok {
		it.ActiveVersion = 0
		return verdict{status: Unprocessed, note: fmt.Sprintf("not a target of writ order %s", o.ID)}
	}
	switch st := o.StatusAt(now); st {
	case order.StatusRevoked, order.StatusSuspended, order.StatusExpired:
		it.ActiveVersion = 0
		why := o.DispositionReason
		if why == "" {
			why = "no reason recorded"
		}
		return verdict{status: Unprocessed, note: fmt.Sprintf("writ order %s is %s, %s", o.ID, st, why)}
	}
	switch t.State {
	case order.TargetActive:
		if it.ActiveVersion == 0 {
			it.ActiveVersion = activationVersion(t, events)
		}
		if len(relevant) == 0 {
			if !c.warned["points"] {
				c.warned["points"] = true
				c.log.Warn("piracy shield: no enforcement point for IT has sent a receipt; nothing can be reported processed", "points", c.cfg.Points)
			}
			return verdict{waiting: "a receipt from an enforcement point for IT"}
		}
		var names, behind []string
		for _, p := range relevant {
			names = append(names, p.Point)
			if p.Version < it.ActiveVersion {
				behind = append(behind, p.Point)
			}
		}
		if len(behind) > 0 {
			return verdict{waiting: fmt.Sprintf("receipts for policy version %d from %s", it.ActiveVersion, strings.Join(behind, ", "))}
		}
		return verdict{status: Processed, note: fmt.Sprintf("blocked for clients in Italy by writ order %s from policy version %d, applied by %s",
			o.ID, it.ActiveVersion, strings.Join(names, ", "))}
	case order.TargetHeld:
		it.ActiveVersion = 0
		return verdict{status: Unprocessed, note: fmt.Sprintf("held for review in writ order %s, %s", o.ID, t.HoldReason)}
	case order.TargetRejected:
		it.ActiveVersion = 0
		return verdict{status: Unprocessed, note: fmt.Sprintf("refused by a writ reviewer in order %s, %s", o.ID, t.Decision)}
	case order.TargetSuspended:
		it.ActiveVersion = 0
		return verdict{status: Unprocessed, note: fmt.Sprintf("suspended in writ order %s, %s", o.ID, t.Decision)}
	default:
		it.ActiveVersion = 0
		return verdict{status: Unprocessed, note: fmt.Sprintf("lifted in writ order %s, %s", o.ID, t.Decision)}
	}
}

// activationVersion is the policy version from which target t blocks:
// that of the event that made it active (the order taking effect, the
// amendment that added it, its release or reinstatement), the newest of
// them. Each event's seq is the policy version that recorded it.
func activationVersion(t order.Target, events []order.Event) uint64 {
	var activated, amended, decided, last uint64
	amendment := fmt.Sprintf("amendment %d:", t.Amendment)
	for _, e := range events {
		last = max(last, e.Seq)
		switch e.Kind {
		case order.EventActivated:
			if activated == 0 {
				activated = e.Seq
			}
		case order.EventAmended:
			if t.Amendment > 0 && strings.HasPrefix(e.Detail, amendment) {
				amended = e.Seq
			}
		case order.EventReleased, order.EventReinstated:
			if strings.HasPrefix(e.Detail, t.String()+": ") || strings.HasPrefix(e.Detail, "whole order: ") {
				decided = e.Seq
			}
		}
	}
	if v := max(activated, amended, decided); v > 0 {
		return v
	}
	return last
}

// relevantPoints are the enforcement points whose receipts an item
// needs: those configured (a configured point that has sent no receipt
// counts as behind), or every point enforcing Italy.
func (c *Connector) relevantPoints(points []policy.Receipt) []policy.Receipt {
	if len(c.cfg.Points) > 0 {
		var out []policy.Receipt
		for _, name := range c.cfg.Points {
			rc := policy.Receipt{Point: name}
			for _, p := range points {
				if p.Point == name {
					rc = p
				}
			}
			out = append(out, rc)
		}
		return out
	}
	var out []policy.Receipt
	for _, p := range points {
		if p.Scope == "" || strings.EqualFold(p.Scope, Jurisdiction) {
			out = append(out, p)
		}
	}
	return out
}
