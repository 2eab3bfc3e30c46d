package web

import (
	"fmt"
	"math"
	"time"

	"github.com/writ-project/writ/registry"
)

// Charts are inline SVG computed here and drawn by the templates, so they
// need neither script nor any file from elsewhere, and html/template
// escapes every label. Each chart has a text title for screen readers
// and sits beside a table with the same figures.

// barChart is a blocks-per-hour chart: one bar per hour.
type barChart struct {
	Width, Height int
	Title         string
	Bars          []bar
	// Axis labels under the bars.
	Ticks []tick
}

type bar struct {
	X, Y, W, H int
	Title      string
}

type tick struct {
	X int
	// Anchor is the SVG text-anchor: the end ticks are aligned inwards so
	// that their labels stay inside the chart.
	Anchor string
	Label  string
}

// Geometry of the blocks-per-hour chart, in SVG user units.
const (
	barPitch    = 10
	barWidth    = 8
	barAreaTop  = 4
	barAreaH    = 48
	barAxisText = 62
)

// blocksChart draws an order's blocks per hour; series ends with the
// hour containing at.
func blocksChart(orderID string, series [historyHours]uint64, at time.Time) barChart {
	var peak, total uint64
	for _, v := range series {
		peak = max(peak, v)
		total += v
	}
	first := time.Unix((hourOf(at)-historyHours+1)*3600, 0).UTC()
	ch := barChart{Width: historyHours * barPitch, Height: barAxisText + 4,
		Title: fmt.Sprintf("Blocks per hour for order %s over the last %d hours (UTC): %d in all, at most %d in one hour, %d so far this hour.",
			orderID, historyHours, total, peak, series[historyHours-1])}
	for i, v := range series {
		h := 0
		if peak > 0 && v > 0 {
			h = max(1, int(math.Round(float64(v)/float64(peak)*barAreaH)))
		}
		start := first.Add(time.Duration(i) * time.Hour)
		ch.Bars = append(ch.Bars, bar{X: i*barPitch + 1, Y: barAreaTop + barAreaH - h, W: barWidth, H: h,
			Title: fmt.Sprintf("%s–%s UTC: %d blocks", start.Format("15:04"), start.Add(time.Hour).Format("15:04"), v)})
	}
	ch.Ticks = []tick{
		{X: 0, Anchor: "start", Label: first.Format("15:00")},
		{X: historyHours/2*barPitch + barWidth/2 + 1, Anchor: "middle", Label: first.Add(historyHours / 2 * time.Hour).Format("15:00")},
		{X: ch.Width, Anchor: "end", Label: "now"},
	}
	return ch
}

// timeline is the time-to-enforce chart of an order: one row per
// enforcement point, a bar from the start of the deadline to the point's
// receipt, and a line at the deadline.
type timeline struct {
	Width, Height int
	Title         string
	Rows          []timelineRow
	DeadlineX     int
	DeadlineLabel string
}

type timelineRow struct {
	LabelY, BarY, BarW int
	Label              string
	// Class is met, late, pending or overdue.
	Class string
}

// Geometry of the timeline, in SVG user units.
const (
	timelineWidth = 600
	timelineTop   = 18
	timelineRowH  = 38
)

// enforcementTimeline draws rc as it stands at time now.
func enforcementTimeline(rc *registry.OrderReceipts, now time.Time) timeline {
	deadline := float64(rc.DeadlineSeconds)
	elapsed := now.Sub(rc.DeadlineStart).Seconds()
	scale := deadline
	for _, p := range rc.Points {
		if !p.Pending {
			scale = max(scale, p.Seconds)
		}
	}
	// The deadline sits inside the chart, with room for its label.
	scale *= 1.1
	if scale <= 0 {
		scale = 1
	}
	x := func(s float64) int {
		return int(math.Round(min(max(s, 0), scale) / scale * timelineWidth))
	}
	t := timeline{Width: timelineWidth, Height: timelineTop + len(rc.Points)*timelineRowH + 4,
		DeadlineX: x(deadline), DeadlineLabel: "deadline " + formatSeconds(deadline)}
	met, late, pending := 0, 0, 0
	for i, p := range rc.Points {
		y := timelineTop + i*timelineRowH
		row := timelineRow{LabelY: y + 12, BarY: y + 17}
		switch {
		case p.Pending:
			pending++
			row.BarW = max(2, x(elapsed))
			row.Class = "pending"
			row.Label = fmt.Sprintf("%s: not applied yet (%s since the deadline started)", p.Point, formatSeconds(elapsed))
			if p.Overdue {
				row.Class = "overdue"
				row.Label = fmt.Sprintf("%s: not applied, deadline passed", p.Point)
			}
		default:
			row.BarW = max(2, x(p.Seconds))
			row.Class, row.Label = "met", fmt.Sprintf("%s: applied after %s, within the deadline", p.Point, formatSeconds(p.Seconds))
			if p.Met {
				met++
			} else {
				late++
				row.Class, row.Label = "late", fmt.Sprintf("%s: applied after %s, late", p.Point, formatSeconds(p.Seconds))
			}
		}
		t.Rows = append(t.Rows, row)
	}
	t.Title = fmt.Sprintf("Time to enforce at each of %d enforcement points against a deadline of %s: %d within it, %d late, %d pending.",
		len(rc.Points), formatSeconds(deadline), met, late, pending)
	return t
}

// formatSeconds writes a duration for people: "4 ms", "1.5 s",
// "12 min 5 s", "3 h 20 min".
func formatSeconds(s float64) string {
	switch {
	case s < 0.001:
		return fmt.Sprintf("%.2f ms", s*1000)
	case s < 1:
		return fmt.Sprintf("%.0f ms", s*1000)
	case s < 60:
		return fmt.Sprintf("%.1f s", s)
	case s < 3600:
		return fmt.Sprintf("%d min %d s", int(s)/60, int(s)%60)
	default:
		return fmt.Sprintf("%d h %d min", int(s)/3600, int(s)%3600/60)
	}
}

// countdown says how long is left before a deadline, in the words the
// page's script uses as it ticks.
func countdown(d time.Duration) string {
	late := d < 0
	if late {
		d = -d
	}
	s := int64(d / time.Second)
	h, m, r := s/3600, s%3600/60, s%60
	var t string
	switch {
	case h > 0:
		t = fmt.Sprintf("%d h %d min", h, m)
	case m > 0:
		t = fmt.Sprintf("%d min %d s", m, r)
	default:
		t = fmt.Sprintf("%d s", r)
	}
	if late {
		return "deadline passed " + t + " ago"
	}
	return t + " left"
}
