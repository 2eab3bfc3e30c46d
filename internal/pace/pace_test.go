package pace

import (
	"context"
	"sync"
	"testing"
	"time"
)

// signal is a change signal: each change closes the channel handed out
// and starts a new one, as policy.Holder's does.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newSignal() *signal { return &signal{ch: make(chan struct{})} }

func (s *signal) changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *signal) change() {
	s.mu.Lock()
	defer s.mu.Unlock()
	close(s.ch)
	s.ch = make(chan struct{})
}

func TestFollowRunsAtOnceThenOnEachChangeAtMostOncePerGap(t *testing.T) {
	const gap = 30 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	sig := newSignal()
	runs := make(chan time.Time)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Follow(ctx, gap, sig.changed, nil, func(context.Context) { runs <- time.Now() })
	}()
	first := <-runs // at once, with no change
	sig.change()
	second := <-runs
	if d := second.Sub(first); d < gap {
		t.Errorf("two runs %v apart, under the gap of %v", d, gap)
	}
	// A change during a run is not missed.
	sig.change()
	third := <-runs
	if d := third.Sub(second); d < gap {
		t.Errorf("two runs %v apart, under the gap of %v", d, gap)
	}
	cancel()
	<-done
}

func TestFollowRunsOnTickWithoutChanges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	tick := make(chan time.Time)
	runs := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		Follow(ctx, time.Millisecond, nil, tick, func(context.Context) { runs <- struct{}{} })
	}()
	<-runs
	tick <- time.Now()
	<-runs
	cancel()
	<-done
}

// Follow returns once ctx ends, whether it waits for a change or for
// the gap to pass, and never runs work after.
func TestFollowEndsWithItsContext(t *testing.T) {
	for _, gap := range []time.Duration{0, time.Hour} {
		ctx, cancel := context.WithCancel(context.Background())
		sig := newSignal()
		var n int
		ran := make(chan struct{}, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			Follow(ctx, gap, sig.changed, nil, func(context.Context) { n++; ran <- struct{}{} })
		}()
		<-ran
		sig.change() // with a gap of an hour, Follow now waits for the gap
		cancel()
		<-done
		if gap == time.Hour && n != 1 {
			t.Errorf("gap %v: %d runs, want 1", gap, n)
		}
	}
}
