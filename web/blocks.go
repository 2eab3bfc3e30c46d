package web

import (
	"sync"
	"time"

	"github.com/writ-project/writ/policy"
)

// historyHours is how many hours the blocks-per-hour charts cover.
const historyHours = 24

// blockHistory turns the enforcement points' cumulative per-order block
// counters into blocks per hour. The counters only ever grow, so the
// blocks of one hour are the counter at the end of the hour minus the
// counter at its start: for each order it keeps the counter's value at
// the first sample of each hour (a baseline), for the last day. Samples
// are taken every minute by Console.Run and at every dashboard view, so
// an hour's boundary is placed to within a minute; memory is at most
// historyHours+1 baselines per order that ever blocked.
//
// The counters, and so the charts, start at zero when the process
// starts: writ keeps no per-query log to rebuild them from.
type blockHistory struct {
	mu     sync.Mutex
	orders map[string][]hourMark
}

// hourMark is an order's counter at the first sample of an hour.
type hourMark struct {
	hour int64 // hours since the Unix epoch
	base uint64
}

func newBlockHistory() *blockHistory {
	return &blockHistory{orders: map[string][]hourMark{}}
}

func hourOf(t time.Time) int64 { return t.Unix() / 3600 }

// sample records the counters' values at time now.
func (b *blockHistory) sample(cs Counters, now time.Time) {
	h := hourOf(now)
	b.mu.Lock()
	defer b.mu.Unlock()
	cs.Each(func(id string, c *policy.Counters) {
		v := c.Blocks.Load()
		marks := b.orders[id]
		switch {
		case len(marks) == 0 && v == 0:
			// Nothing to chart yet.
		case len(marks) == 0:
			// Samples are a minute apart, so an order seen blocking for
			// the first time blocked within the last minute: this hour.
			b.orders[id] = []hourMark{{hour: h, base: 0}}
		case marks[len(marks)-1].hour < h:
			marks = append(marks, hourMark{hour: h, base: v})
			if len(marks) > historyHours+1 {
				marks = append(marks[:0], marks[len(marks)-historyHours-1:]...)
			}
			b.orders[id] = marks
		}
	})
}

// series returns the blocks of order id in each of the last historyHours
// hours, oldest first, the last being the current hour so far; now is
// the current counter value. Blocks between two baselines more than an
// hour apart (the sampler did not run) count in the earlier hour.
func (b *blockHistory) series(id string, now uint64, at time.Time) [historyHours]uint64 {
	first := hourOf(at) - historyHours + 1
	b.mu.Lock()
	marks := append([]hourMark(nil), b.orders[id]...)
	b.mu.Unlock()
	var out [historyHours]uint64
	for i, m := range marks {
		end := now
		if i+1 < len(marks) {
			end = marks[i+1].base
		}
		k := m.hour - first
		if k < 0 || k >= historyHours || end <= m.base {
			continue
		}
		out[k] = end - m.base
	}
	return out
}
