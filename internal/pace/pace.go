// Package pace runs work when something changes, at most once per gap:
// a change after a quiet moment is acted on at once, a stream of changes
// in batches.
package pace

import (
	"context"
	"time"
)

// Follow runs work at once, then again whenever the channel that changed
// returned before the last run is closed, or tick fires, until ctx ends;
// two runs are never less than gap apart. changed and tick may be nil.
// The channel is taken before each run, so that a change made during a
// run is not missed.
func Follow(ctx context.Context, gap time.Duration, changed func() <-chan struct{}, tick <-chan time.Time, work func(context.Context)) {
	var last time.Time
	for {
		if wait := gap - time.Since(last); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		last = time.Now()
		var ch <-chan struct{}
		if changed != nil {
			ch = changed()
		}
		work(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-tick:
		}
	}
}
