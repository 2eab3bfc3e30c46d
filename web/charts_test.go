package web

import (
	"strings"
	"testing"
	"time"

	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/registry"
)

func TestBlockHistory(t *testing.T) {
	cs := &policy.CounterSet{}
	b := newBlockHistory()
	at := time.Date(2026, 3, 2, 10, 0, 30, 0, time.UTC)
	quiet := cs.For("quiet")
	busy := cs.For("busy")
	series := func(id string, c *policy.Counters) [historyHours]uint64 {
		b.sample(cs, at)
		return b.series(id, c.Blocks.Load(), at)
	}
	// An order that never blocked has nothing to chart and costs nothing.
	if s := series("quiet", quiet); s != [historyHours]uint64{} || len(b.orders) != 0 {
		t.Fatalf("quiet order: %v, %d kept", s, len(b.orders))
	}
	busy.Blocks.Add(4)
	if s := series("busy", busy); s[historyHours-1] != 4 {
		t.Fatalf("first blocks are this hour's: %v", s)
	}
	// Minutes later in the same hour, the hour grows.
	at = at.Add(20 * time.Minute)
	busy.Blocks.Add(3)
	if s := series("busy", busy); s[historyHours-1] != 7 {
		t.Fatalf("same hour: %v", s)
	}
	// The next hour starts from the baseline taken at its first sample.
	at = at.Add(time.Hour)
	b.sample(cs, at)
	busy.Blocks.Add(2)
	s := series("busy", busy)
	if s[historyHours-2] != 7 || s[historyHours-1] != 2 {
		t.Fatalf("two hours: %v", s)
	}
	// Hours the sampler missed count in the hour of the earlier sample;
	// quiet hours are zero.
	at = at.Add(3 * time.Hour)
	busy.Blocks.Add(5)
	b.sample(cs, at)
	s = series("busy", busy)
	if s[historyHours-5] != 7 || s[historyHours-4] != 7 || s[historyHours-3] != 0 || s[historyHours-1] != 0 {
		t.Fatalf("after a gap: %v", s)
	}
	// A day later the old hours are gone, and so are their baselines.
	for range 30 {
		at = at.Add(time.Hour)
		b.sample(cs, at)
	}
	if s := series("busy", busy); s != [historyHours]uint64{} {
		t.Fatalf("a day later: %v", s)
	}
	if n := len(b.orders["busy"]); n > historyHours+1 {
		t.Fatalf("%d baselines kept", n)
	}
}

func TestBlocksChart(t *testing.T) {
	at := time.Date(2026, 3, 2, 10, 15, 0, 0, time.UTC)
	var s [historyHours]uint64
	s[historyHours-1], s[historyHours-2], s[0] = 10, 5, 1
	ch := blocksChart("o1", s, at)
	if len(ch.Bars) != historyHours || ch.Bars[historyHours-1].H != barAreaH || ch.Bars[historyHours-2].H != barAreaH/2 || ch.Bars[1].H != 0 {
		t.Fatalf("bar heights: %+v", ch.Bars)
	}
	// A single block stays visible next to a large hour.
	if ch.Bars[0].H < 1 {
		t.Error("a small hour is invisible")
	}
	for _, b := range ch.Bars {
		if b.Y+b.H != barAreaTop+barAreaH {
			t.Errorf("bar %+v does not stand on the axis", b)
		}
	}
	if ch.Bars[historyHours-1].Title != "10:00–11:00 UTC: 10 blocks" || ch.Bars[0].Title != "11:00–12:00 UTC: 1 blocks" {
		t.Errorf("bar titles %q, %q", ch.Bars[0].Title, ch.Bars[historyHours-1].Title)
	}
	if ch.Title != "Blocks per hour for order o1 over the last 24 hours (UTC): 16 in all, at most 10 in one hour, 10 so far this hour." {
		t.Errorf("title %q", ch.Title)
	}
	if ch.Ticks[len(ch.Ticks)-1].Label != "now" || ch.Ticks[0].Label != "11:00" {
		t.Errorf("ticks %+v", ch.Ticks)
	}
}

func TestEnforcementTimeline(t *testing.T) {
	start := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	applied := start.Add(15 * time.Minute)
	late := start.Add(45 * time.Minute)
	rc := &registry.OrderReceipts{InForce: true, DeadlineStart: start, DeadlineSeconds: 1800, Points: []registry.PointReceipt{
		{Point: "dns", Version: 3, Applied: &applied, Seconds: 900, Met: true},
		{Point: "rpz:192.0.2.53/fr", Version: 4, Applied: &late, Seconds: 2700},
		{Point: "gate", Pending: true, Overdue: true},
	}}
	tl := enforcementTimeline(rc, start.Add(time.Hour))
	// The scale fits the slowest point; the deadline line sits at 30 of
	// its 49.5 minutes.
	if tl.DeadlineX != 364 || tl.Rows[0].BarW != 182 || tl.Rows[1].BarW != 545 || tl.Rows[2].BarW != timelineWidth {
		t.Errorf("geometry: deadline at %d, bars %d %d %d", tl.DeadlineX, tl.Rows[0].BarW, tl.Rows[1].BarW, tl.Rows[2].BarW)
	}
	for i, want := range []string{"met", "late", "overdue"} {
		if tl.Rows[i].Class != want {
			t.Errorf("row %d class %q, want %q", i, tl.Rows[i].Class, want)
		}
	}
	if !strings.Contains(tl.Rows[1].Label, "applied after 45 min 0 s, late") || tl.Title != "Time to enforce at each of 3 enforcement points against a deadline of 30 min 0 s: 1 within it, 1 late, 1 pending." {
		t.Errorf("labels: %q; title %q", tl.Rows[1].Label, tl.Title)
	}
}

func TestCountdownAndDurations(t *testing.T) {
	for d, want := range map[time.Duration]string{
		29*time.Minute + 59*time.Second + 900*time.Millisecond: "29 min 59 s left",
		42 * time.Second:                 "42 s left",
		2*time.Hour + 3*time.Minute:      "2 h 3 min left",
		0:                                "0 s left",
		-(5*time.Minute + 2*time.Second): "deadline passed 5 min 2 s ago",
		-(26*time.Hour + 30*time.Second): "deadline passed 26 h 0 min ago",
	} {
		if got := countdown(d); got != want {
			t.Errorf("countdown(%v) = %q, want %q", d, got, want)
		}
	}
	for s, want := range map[float64]string{0.0004: "0.40 ms", 0.004: "4 ms", 1.5: "1.5 s", 1800: "30 min 0 s", 7380: "2 h 3 min"} {
		if got := formatSeconds(s); got != want {
			t.Errorf("formatSeconds(%v) = %q, want %q", s, got, want)
		}
	}
}
