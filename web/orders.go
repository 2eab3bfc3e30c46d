package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/registry"
)

// open reports whether an order can still change: neither revoked nor
// expired. Only open orders' held targets can be reviewed.
func open(o *order.Order, now time.Time) bool {
	st := o.StatusAt(now)
	return st != order.StatusRevoked && st != order.StatusExpired
}

// deadlineOf returns the enforcement deadline of an order's authority.
func (c *Console) deadlineOf(o *order.Order, auths map[string]order.RegisteredAuthority) time.Duration {
	if a, ok := auths[o.Authority.ID]; ok {
		return a.Deadline()
	}
	return order.DefaultDeadline
}

func (c *Console) authorities() map[string]order.RegisteredAuthority {
	m := map[string]order.RegisteredAuthority{}
	for _, a := range c.src.Registry.Authorities() {
		m[a.ID] = a
	}
	return m
}

// targetKind names the kind of a target for people.
func targetKind(t order.Target) string {
	switch {
	case t.FQDN != "" && t.Subdomains:
		return "name and its subdomains"
	case t.FQDN != "":
		return "name"
	case t.IP != "":
		if p, ok := t.Prefix(); ok && p.IsSingleIP() {
			return "IP address"
		}
		return "IP prefix"
	default:
		return "URL (HTTP gate only)"
	}
}

// deadlineStart is when the authority's clock started for a target: when
// the order, or the amendment that added the target, was received, or
// the order's effective time if later.
func deadlineStart(o *order.Order, t order.Target) time.Time {
	start := o.Received
	if t.Added != nil {
		start = *t.Added
	}
	if o.Effective.After(start) {
		start = o.Effective
	}
	return start
}

// heldTarget is one entry of the review queue.
type heldTarget struct {
	OrderID, Authority, Jurisdiction string
	Target, Kind, Reason, Anchor     string
	Amendment                        int
	Deadline                         time.Time
	Left                             string
	Overdue                          bool
}

// heldTargets lists the held targets of open orders, most urgent first.
func (c *Console) heldTargets(ctx context.Context) ([]heldTarget, error) {
	reg := c.src.Registry
	now := reg.Now()
	auths := c.authorities()
	var out []heldTarget
	for _, o := range reg.Orders() {
		if !open(o, now) || !slices.ContainsFunc(o.Targets, func(t order.Target) bool { return t.State == order.TargetHeld }) {
			continue
		}
		for _, t := range o.Targets {
			if t.State != order.TargetHeld {
				continue
			}
			deadline := deadlineStart(o, t).Add(c.deadlineOf(o, auths))
			out = append(out, heldTarget{
				OrderID: o.ID, Authority: o.Authority.Name, Jurisdiction: o.JurisdictionString(),
				Target: t.String(), Kind: targetKind(t), Reason: t.HoldReason, Anchor: anchor(o.ID + "-" + t.String()),
				Amendment: t.Amendment, Deadline: deadline, Left: countdown(deadline.Sub(now)), Overdue: now.After(deadline),
			})
		}
	}
	slices.SortFunc(out, func(a, b heldTarget) int {
		if c := a.Deadline.Compare(b.Deadline); c != 0 {
			return c
		}
		return strings.Compare(a.OrderID+a.Target, b.OrderID+b.Target)
	})
	return out, nil
}

// heldCount counts the held targets of open orders.
func (c *Console) heldCount() int {
	now := c.src.Registry.Now()
	n := 0
	for _, o := range c.src.Registry.Orders() {
		if !open(o, now) {
			continue
		}
		for _, t := range o.Targets {
			if t.State == order.TargetHeld {
				n++
			}
		}
	}
	return n
}

type queueView struct {
	Held     []heldTarget
	Contests []order.Contest
}

func (c *Console) queuePage(w http.ResponseWriter, r *http.Request, s *session) {
	held, err := c.heldTargets(r.Context())
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	contests, err := c.src.Registry.Contests(r.Context(), "")
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	v := queueView{Held: held}
	for _, ct := range contests {
		if ct.Status == order.ContestPending {
			v.Contests = append(v.Contests, ct)
		}
	}
	c.render(w, r, s, http.StatusOK, "queue", "Review queue", v)
}

// orderRow is one order in the list of orders.
type orderRow struct {
	ID, Authority, Kind, Jurisdiction string
	Status                            order.Status
	Targets, Active, Held             int
	Received, Expires                 time.Time
}

type ordersView struct {
	Rows     []orderRow
	Statuses []string
	Status   string
	Total    int
}

func (c *Console) ordersPage(w http.ResponseWriter, r *http.Request, s *session) {
	now := c.src.Registry.Now()
	v := ordersView{Status: r.URL.Query().Get("status")}
	for _, st := range order.Statuses {
		v.Statuses = append(v.Statuses, string(st))
	}
	for _, o := range c.src.Registry.Orders() {
		v.Total++
		st := o.StatusAt(now)
		if v.Status != "" && string(st) != v.Status {
			continue
		}
		row := orderRow{ID: o.ID, Authority: o.Authority.Name, Kind: string(o.Authority.Kind), Jurisdiction: o.JurisdictionString(),
			Status: st, Targets: len(o.Targets), Received: o.Received, Expires: o.Expires}
		for _, t := range o.Targets {
			switch t.State {
			case order.TargetActive:
				row.Active++
			case order.TargetHeld:
				row.Held++
			}
		}
		v.Rows = append(v.Rows, row)
	}
	c.render(w, r, s, http.StatusOK, "orders", "Orders", v)
}

// targetRow is one target on the order page.
type targetRow struct {
	Name, Kind, Anchor string
	State              order.TargetState
	Amendment          int
	Reason             string
	Deadline           time.Time
	Left               string
	Overdue            bool
}

type orderView struct {
	O         *order.Order
	Status    order.Status
	Enforced  bool
	Deadline  string
	RecordURL string
	Targets   []targetRow
	// LiveTargets can be contested.
	LiveTargets []string
	Amendments  []order.Event
	Contests    []order.Contest
	Receipts    *registry.OrderReceipts
	Timeline    timeline
	Events      []order.Event
	Now         time.Time
	// CanSuspendOrder and CanReinstateOrder offer the whole-order forms.
	CanSuspendOrder, CanReinstateOrder bool
}

func (c *Console) orderPage(w http.ResponseWriter, r *http.Request, s *session) {
	reg := c.src.Registry
	o, events, err := reg.Order(r.Context(), r.PathValue("id"))
	if errors.Is(err, registry.ErrNotFound) {
		c.errorPage(w, r, s, http.StatusNotFound, "No order with this id is on record.")
		return
	}
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	now := reg.Now()
	deadline := c.deadlineOf(o, c.authorities())
	v := orderView{O: o, Status: o.StatusAt(now), Enforced: o.EnforcedAt(now), Deadline: formatSeconds(deadline.Seconds()),
		RecordURL: c.cfg.PublicURL + "/orders/" + o.ID, Events: events, Now: now}
	isOpen := open(o, now)
	v.CanSuspendOrder = isOpen && o.Disposition == ""
	v.CanReinstateOrder = isOpen && o.Disposition == order.Suspended
	for _, t := range o.Targets {
		row := targetRow{Name: t.String(), Kind: targetKind(t), Anchor: anchor(t.String()), State: t.State, Amendment: t.Amendment, Reason: t.Decision}
		if t.State == order.TargetHeld {
			row.Reason = t.HoldReason
			if isOpen {
				row.Deadline = deadlineStart(o, t).Add(deadline)
				row.Left, row.Overdue = countdown(row.Deadline.Sub(now)), now.After(row.Deadline)
			}
		}
		if t.State.Live() {
			v.LiveTargets = append(v.LiveTargets, t.String())
		}
		v.Targets = append(v.Targets, row)
	}
	for _, e := range events {
		if e.Kind == order.EventAmended {
			v.Amendments = append(v.Amendments, e)
		}
	}
	if v.Contests, err = reg.Contests(r.Context(), o.ID); err != nil {
		c.failed(w, r, s, err)
		return
	}
	if v.Receipts, err = reg.Receipts(r.Context(), o.ID); err != nil {
		c.failed(w, r, s, err)
		return
	}
	if v.Receipts.InForce && len(v.Receipts.Points) > 0 {
		v.Timeline = enforcementTimeline(v.Receipts, now)
	}
	c.render(w, r, s, http.StatusOK, "order", "Order "+o.ID, v)
}

// targetAction is a registry method acting on one target of an order
// (or, with an empty target, on the whole order).
type targetAction func(reg Registry, ctx context.Context, id, target, reason string, by access.Principal) (*order.Order, error)

// reviewTarget posts a decision on a target to the registry: verb says
// what was done, effect what it means for enforcement.
func (c *Console) reviewTarget(act targetAction, verb, effect string) sessionHandler {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		id := r.PathValue("id")
		target := strings.TrimSpace(r.PostForm.Get("target"))
		_, err := act(c.src.Registry, r.Context(), id, target, strings.TrimSpace(r.PostForm.Get("reason")), s.who)
		msg := fmt.Sprintf("%s of order %s %s: %s.", target, id, verb, effect)
		if target == "" {
			msg = fmt.Sprintf("Order %s %s: %s.", id, verb, effect)
		}
		c.done(w, r, s, err, msg, Prefix+"orders/"+id)
	}
}

func (c *Console) recordContest(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	back := Prefix + "orders/" + id
	// The public files contests through the API; the console records
	// those that reach the operator by post or e-mail, with the filer's
	// contact, which only these roles may read.
	if !s.who.Can(access.ReadPrivate) {
		c.done(w, r, s, fmt.Errorf("%s may not record contests on behalf of others (roles allowed: %v): %w", s.who, access.Roles(access.ReadPrivate), registry.ErrForbidden), "", back)
		return
	}
	f := r.PostForm
	ct, err := c.src.Registry.FileContest(r.Context(), id, &order.ContestSubmission{
		Target:  strings.TrimSpace(f.Get("target")),
		Grounds: f.Get("grounds"),
		Contact: order.ContestFiler{Name: strings.TrimSpace(f.Get("name")), Email: strings.TrimSpace(f.Get("email"))},
	}, s.who)
	msg := ""
	if err == nil {
		c.cfg.Logger.Info("contest recorded through the console", "order", id, "contest", ct.ID, "principal", s.who.String())
		msg = fmt.Sprintf("Contest %d recorded against order %s; it is public from now on.", ct.ID, id)
		back += "#contest-" + strconv.FormatInt(ct.ID, 10)
	}
	c.done(w, r, s, err, msg, back)
}

func (c *Console) decideContest(w http.ResponseWriter, r *http.Request, s *session) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		c.errorPage(w, r, s, http.StatusNotFound, "No contest has this id.")
		return
	}
	outcome := order.ContestStatus(r.PostForm.Get("outcome"))
	ct, err := c.src.Registry.DecideContest(r.Context(), id, outcome, strings.TrimSpace(r.PostForm.Get("reason")), s.who)
	msg, back := "", Prefix+"queue"
	if err == nil {
		back = Prefix + "orders/" + ct.OrderID + "#contest-" + strconv.FormatInt(ct.ID, 10)
		switch {
		case outcome == order.ContestUpheld && ct.Target == "":
			msg = fmt.Sprintf("Contest %d upheld: order %s is revoked.", ct.ID, ct.OrderID)
		case outcome == order.ContestUpheld:
			msg = fmt.Sprintf("Contest %d upheld: %s is lifted from order %s.", ct.ID, ct.Target, ct.OrderID)
		default:
			msg = fmt.Sprintf("Contest %d dismissed; any suspension it caused is lifted.", ct.ID)
		}
	}
	c.done(w, r, s, err, msg, back)
}

// done ends a form post: it notes the outcome for the next page and
// sends the browser back to the page the form names, or fallback.
func (c *Console) done(w http.ResponseWriter, r *http.Request, s *session, err error, ok, fallback string) {
	back := localPath(r.PostForm.Get("return"))
	if back == "" {
		back = fallback
	}
	f := flash{Message: ok}
	if err != nil {
		f = flash{Message: describe(err), Error: true}
		var inv *order.InvalidError
		if !errors.As(err, &inv) && !errors.Is(err, registry.ErrForbidden) && !errors.Is(err, registry.ErrNotFound) && !errors.Is(err, registry.ErrConflict) {
			c.cfg.Logger.Error("console: change failed", "path", r.URL.Path, "principal", s.who.String(), "err", err)
		}
	}
	c.sessions.setFlash(s.id, f)
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// describe says why the registry refused a change, in a sentence.
func describe(err error) string {
	var inv *order.InvalidError
	if errors.As(err, &inv) {
		parts := make([]string, len(inv.Fields))
		for i, f := range inv.Fields {
			parts[i] = f.Error()
		}
		return "Nothing was changed: " + strings.Join(parts, "; ") + "."
	}
	return "Nothing was changed: " + err.Error() + "."
}

// failed answers a request the registry could not serve.
func (c *Console) failed(w http.ResponseWriter, r *http.Request, s *session, err error) {
	c.cfg.Logger.Error("console: reading the record failed", "path", r.URL.Path, "err", err)
	c.errorPage(w, r, s, http.StatusInternalServerError, "The record could not be read: "+err.Error())
}
