package publicrecord

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/writ-project/writ/order"
)

// Report is the transparency report over a period: the figures Article 15
// of the Digital Services Act asks intermediaries to publish about the
// orders they receive from authorities. See README.md for the definition
// of each figure.
type Report struct {
	// From and To bound the period, From included and To excluded; nil
	// means unbounded.
	From *time.Time `json:"from,omitempty"`
	To   *time.Time `json:"to,omitempty"`
	// Generated is when the report was computed; outcomes are as of then.
	Generated time.Time `json:"generated"`
	// Orders and Targets count the orders received in the period and the
	// targets they name.
	Orders  int `json:"orders"`
	Targets int `json:"targets"`
	// The same counts broken down.
	ByAuthority     []Count `json:"by_authority"`
	ByJurisdiction  []Count `json:"by_jurisdiction"`
	ByAuthorityKind []Count `json:"by_authority_kind"`
	ByTargetKind    []Count `json:"by_target_kind"`
	ByOutcome       []Count `json:"by_outcome"`
	// Events counts the events of each kind that happened in the period,
	// whichever order they concern: contests filed and decided,
	// suspensions, releases, revocations, expiries.
	Events []EventCount `json:"events"`
	// EnforcedOrders is how many orders received in the period were
	// enforced at some time; MedianSecondsToEnforce is the median time
	// from receipt to enforcement over them, absent when there is none.
	EnforcedOrders         int      `json:"enforced_orders"`
	MedianSecondsToEnforce *float64 `json:"median_seconds_to_enforce,omitempty"`
}

// Count is one line of a breakdown: a key (an authority id, a country
// code, a kind, a status), with its name where the key is an identifier.
type Count struct {
	Key     string `json:"key"`
	Name    string `json:"name,omitempty"`
	Orders  int    `json:"orders"`
	Targets int    `json:"targets,omitempty"`
}

// EventCount is how many events of one kind happened in the period.
type EventCount struct {
	Kind  string `json:"kind"`
	Count int    `json:"count"`
}

// BuildReport computes the report over orders received in [from, to)
// (zero times leave that side open), with outcomes at now. history gives
// each order's events.
func BuildReport(ctx context.Context, orders []*order.Order, history func(ctx context.Context, id string) ([]order.Event, error), from, to, now time.Time) (*Report, error) {
	in := func(t time.Time) bool { return (from.IsZero() || !t.Before(from)) && (to.IsZero() || t.Before(to)) }
	r := &Report{Generated: now.UTC()}
	if !from.IsZero() {
		f := from.UTC()
		r.From = &f
	}
	if !to.IsZero() {
		t := to.UTC()
		r.To = &t
	}
	type tally struct {
		name            string
		orders, targets int
	}
	groups := map[string]map[string]*tally{}
	add := func(dim, key, name string, targets int) {
		if groups[dim] == nil {
			groups[dim] = map[string]*tally{}
		}
		t := groups[dim][key]
		if t == nil {
			t = &tally{name: name}
			groups[dim][key] = t
		}
		t.orders++
		t.targets += targets
	}
	events := map[string]int{}
	var delays []float64
	for _, o := range orders {
		evs, err := history(ctx, o.ID)
		if err != nil {
			return nil, fmt.Errorf("report: history of order %s: %w", o.ID, err)
		}
		for _, e := range evs {
			if in(e.At) {
				events[string(e.Kind)]++
			}
		}
		if !in(o.Received) {
			continue
		}
		n := len(o.Targets)
		r.Orders++
		r.Targets += n
		add("authority", o.Authority.ID, o.Authority.Name, n)
		add("authority_kind", string(o.Authority.Kind), "", n)
		add("outcome", string(o.StatusAt(now)), "", n)
		for _, j := range o.Jurisdiction {
			add("jurisdiction", j, "", n)
		}
		kinds := map[string]int{}
		for _, t := range o.Targets {
			kinds[targetClass(t)]++
		}
		for k, c := range kinds {
			add("target_kind", k, "", c)
		}
		if d, ok := timeToEnforce(o, evs); ok {
			delays = append(delays, d.Seconds())
		}
	}
	list := func(dim string) []Count {
		out := []Count{}
		for k, t := range groups[dim] {
			out = append(out, Count{Key: k, Name: t.name, Orders: t.orders, Targets: t.targets})
		}
		slices.SortFunc(out, func(a, b Count) int {
			if a.Orders != b.Orders {
				return b.Orders - a.Orders
			}
			return strings.Compare(a.Key, b.Key)
		})
		return out
	}
	r.ByAuthority = list("authority")
	r.ByJurisdiction = list("jurisdiction")
	r.ByAuthorityKind = list("authority_kind")
	r.ByTargetKind = list("target_kind")
	r.ByOutcome = list("outcome")
	r.Events = []EventCount{}
	for k, n := range events {
		r.Events = append(r.Events, EventCount{Kind: k, Count: n})
	}
	slices.SortFunc(r.Events, func(a, b EventCount) int { return strings.Compare(a.Kind, b.Kind) })
	r.EnforcedOrders = len(delays)
	if m, ok := median(delays); ok {
		r.MedianSecondsToEnforce = &m
	}
	return r, nil
}

// targetClass is a target's kind in the report: fqdn, ip or url.
func targetClass(t order.Target) string {
	switch {
	case t.FQDN != "":
		return "fqdn"
	case t.IP != "":
		return "ip"
	default:
		return "url"
	}
}

// timeToEnforce is the time from an order's receipt to when it was first
// enforced: zero for an order in effect when received with a target that
// was not held; otherwise the first event that put a target into force,
// its taking effect ("activated", at its effective time) or a reviewer's
// release of a held target. It reports false for an order never
// enforced.
func timeToEnforce(o *order.Order, events []order.Event) (time.Duration, bool) {
	received := o.Received
	held := 0
	for _, e := range events {
		if e.Kind == order.EventReceived {
			received = e.At
			break
		}
	}
	original := 0
	for _, t := range o.Targets {
		if t.Amendment == 0 {
			original++
		}
	}
	for _, e := range events {
		if e.Kind == order.EventHeld && e.At.Equal(received) {
			held++
		}
	}
	if !o.Effective.After(received) && held < original {
		return 0, true
	}
	for _, e := range events {
		switch e.Kind {
		case order.EventActivated, "released":
			if e.At.Before(received) {
				return 0, true
			}
			return e.At.Sub(received), true
		}
	}
	return 0, false
}

func median(xs []float64) (float64, bool) {
	if len(xs) == 0 {
		return 0, false
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

// parseBound reads a report bound: an RFC 3339 time or a date (midnight
// UTC).
func parseBound(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%s: %q is not a date (2025-01-31) or an RFC 3339 time (2025-01-31T00:00:00Z)", name, s)
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, err := parseBound("from", q.Get("from"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	to, err := parseBound("to", q.Get("to"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("from %s is not before to %s", q.Get("from"), q.Get("to")))
		return
	}
	format := q.Get("format")
	if format == "" {
		format = "json"
		for _, a := range strings.Split(r.Header.Get("Accept"), ",") {
			if mt, _, err := mime.ParseMediaType(strings.TrimSpace(a)); err == nil && mt == "text/csv" {
				format = "csv"
				break
			}
		}
	}
	if format != "json" && format != "csv" {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("format: %q is not json or csv", format))
		return
	}
	history := func(ctx context.Context, id string) ([]order.Event, error) {
		_, evs, err := s.rec.Order(ctx, id)
		return evs, err
	}
	rep, err := BuildReport(r.Context(), s.rec.Orders(), history, from, to, s.rec.Now())
	if err != nil {
		s.cfg.Logger.Error("transparency report", "err", err)
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	if format == "json" {
		writeJSON(w, rep)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="writ-transparency-report.csv"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	rep.WriteCSV(w)
}

// WriteCSV writes the report as one table in long form: figure,
// dimension, key, name, value. Totals have the dimension "all".
func (r *Report) WriteCSV(w interface{ Write([]byte) (int, error) }) error {
	c := csv.NewWriter(w)
	rows := [][]string{{"figure", "dimension", "key", "name", "value"}}
	bound := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.Format(time.RFC3339)
	}
	rows = append(rows,
		[]string{"period_from", "all", "", "", bound(r.From)},
		[]string{"period_to", "all", "", "", bound(r.To)},
		[]string{"generated", "all", "", "", r.Generated.Format(time.RFC3339)},
		[]string{"orders", "all", "", "", strconv.Itoa(r.Orders)},
		[]string{"targets", "all", "", "", strconv.Itoa(r.Targets)},
	)
	for _, d := range []struct {
		dim  string
		list []Count
	}{{"authority", r.ByAuthority}, {"jurisdiction", r.ByJurisdiction}, {"authority_kind", r.ByAuthorityKind}, {"target_kind", r.ByTargetKind}, {"outcome", r.ByOutcome}} {
		for _, c := range d.list {
			rows = append(rows, []string{"orders", d.dim, c.Key, c.Name, strconv.Itoa(c.Orders)},
				[]string{"targets", d.dim, c.Key, c.Name, strconv.Itoa(c.Targets)})
		}
	}
	for _, c := range r.Events {
		rows = append(rows, []string{"events", "event_kind", c.Kind, "", strconv.Itoa(c.Count)})
	}
	rows = append(rows, []string{"enforced_orders", "all", "", "", strconv.Itoa(r.EnforcedOrders)})
	median := ""
	if r.MedianSecondsToEnforce != nil {
		median = strconv.FormatFloat(*r.MedianSecondsToEnforce, 'f', -1, 64)
	}
	rows = append(rows, []string{"median_seconds_to_enforce", "all", "", "", median})
	if err := c.WriteAll(rows); err != nil {
		return err
	}
	return c.Error()
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
