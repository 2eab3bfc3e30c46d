package web

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
)

// scopeRow counts the orders and targets of one jurisdiction as orders
// name it ("FR", "EU"): an order for two jurisdictions counts in both.
type scopeRow struct {
	Jurisdiction                 string
	Orders, Enforced, Held, Susp int
}

// blockRow is one order's blocks: since the process started, this hour,
// and per hour over the last day.
type blockRow struct {
	OrderID, Authority string
	Total, ThisHour    uint64
	Chart              barChart
}

// pointRow is one enforcement point: the policy version it applied and
// how far behind the published one it is.
type pointRow struct {
	Point, Scope string
	Version, Lag uint64
	At           time.Time
	Since        string
}

type ledgerView struct {
	Origin string
	Size   uint64
	Root   string
	Note   string
}

type dashboardView struct {
	Now             time.Time
	PolicyVersion   uint64
	Names, Prefixes int
	Scopes          []scopeRow
	Totals          scopeRow
	HeldTotal       int
	PendingContests int
	Blocks          []blockRow
	BlocksTotal     uint64
	Points          []pointRow
	Retired         []policy.Retirement
	Ledger          *ledgerView
	PointsError     string
}

func (c *Console) dashboardPage(w http.ResponseWriter, r *http.Request, s *session) {
	reg := c.src.Registry
	now := reg.Now()
	snap := c.src.Policy.Load()
	v := dashboardView{Now: now, PolicyVersion: snap.Version(), Names: snap.Names(), Prefixes: snap.Prefixes()}

	orders := reg.Orders()
	byID := map[string]*order.Order{}
	scopes := map[string]*scopeRow{}
	for _, o := range orders {
		byID[o.ID] = o
		if !open(o, now) {
			continue
		}
		var enforced, held, susp int
		inForce := o.EnforcedAt(now)
		for _, t := range o.Targets {
			switch {
			case t.State == order.TargetActive && inForce:
				enforced++
			case t.State == order.TargetActive && o.Disposition == order.Suspended:
				susp++
			case t.State == order.TargetHeld:
				held++
			case t.State == order.TargetSuspended:
				susp++
			}
		}
		add := func(row *scopeRow) {
			if inForce {
				row.Orders++
			}
			row.Enforced += enforced
			row.Held += held
			row.Susp += susp
		}
		for _, j := range o.Jurisdiction {
			row, ok := scopes[j]
			if !ok {
				row = &scopeRow{Jurisdiction: j}
				scopes[j] = row
			}
			add(row)
		}
		add(&v.Totals)
	}
	for _, row := range scopes {
		if row.Orders+row.Enforced+row.Held+row.Susp > 0 {
			v.Scopes = append(v.Scopes, *row)
		}
	}
	slices.SortFunc(v.Scopes, func(a, b scopeRow) int { return strings.Compare(a.Jurisdiction, b.Jurisdiction) })
	v.HeldTotal = v.Totals.Held

	contests, err := reg.Contests(r.Context(), "")
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	for _, ct := range contests {
		if ct.Status == order.ContestPending {
			v.PendingContests++
		}
	}

	at := c.cfg.Clock()
	c.blocks.sample(c.src.Counters, at)
	c.src.Counters.Each(func(id string, ctr *policy.Counters) {
		total := ctr.Blocks.Load()
		if total == 0 {
			return
		}
		series := c.blocks.series(id, total, at)
		row := blockRow{OrderID: id, Total: total, ThisHour: series[historyHours-1], Chart: blocksChart(id, series, at)}
		if o, ok := byID[id]; ok {
			row.Authority = o.Authority.Name
		}
		v.Blocks = append(v.Blocks, row)
		v.BlocksTotal += total
	})
	slices.SortFunc(v.Blocks, func(a, b blockRow) int {
		if a.Total != b.Total {
			if a.Total > b.Total {
				return -1
			}
			return 1
		}
		return strings.Compare(a.OrderID, b.OrderID)
	})

	points, err := reg.Points(r.Context())
	if err != nil {
		// The rest of the dashboard is still worth showing.
		c.cfg.Logger.Error("console: reading enforcement points failed", "err", err)
		v.PointsError = err.Error()
	}
	for _, p := range points {
		row := pointRow{Point: p.Point, Scope: p.Scope, Version: p.Version, At: p.At, Since: formatSeconds(max(now.Sub(p.At), 0).Seconds()) + " ago"}
		if p.Version < v.PolicyVersion {
			row.Lag = v.PolicyVersion - p.Version
		}
		v.Points = append(v.Points, row)
	}
	slices.SortFunc(v.Points, func(a, b pointRow) int { return strings.Compare(a.Point, b.Point) })
	if v.Retired, err = reg.RetiredPoints(r.Context()); err != nil {
		c.cfg.Logger.Error("console: reading retired enforcement points failed", "err", err)
		v.PointsError = err.Error()
	}

	if c.src.Ledger != nil {
		cp, signed := c.src.Ledger.Checkpoint()
		v.Ledger = &ledgerView{Origin: cp.Origin, Size: cp.Size, Root: base64.StdEncoding.EncodeToString(cp.Root), Note: string(signed)}
	}
	c.render(w, r, s, http.StatusOK, "dashboard", "Dashboard", v)
}

// retirePoint takes an enforcement point out of service (operators).
func (c *Console) retirePoint(w http.ResponseWriter, r *http.Request, s *session) {
	point := r.PostForm.Get("point")
	err := c.src.Registry.RetirePoint(r.Context(), point, s.who)
	c.done(w, r, s, err, fmt.Sprintf("Enforcement point %s retired: orders no longer wait for it. A receipt for a later policy version puts it back in service.", point), Prefix+"#points")
}
