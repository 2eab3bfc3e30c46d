package policy

import (
	"sync"
	"sync/atomic"
	"time"
)

// Holder publishes the current Snapshot to enforcement points. Load is a
// single atomic read; Store replaces the snapshot for every later Load and
// wakes whoever waits on Changed.
type Holder struct {
	p       atomic.Pointer[Snapshot]
	mu      sync.Mutex
	changed chan struct{}
}

// NewHolder returns a Holder publishing s (an empty policy if s is nil).
func NewHolder(s *Snapshot) *Holder {
	if s == nil {
		s = Compile(nil, time.Time{}, 0, nil)
	}
	h := &Holder{changed: make(chan struct{})}
	h.p.Store(s)
	return h
}

// Load returns the current snapshot. It never returns nil.
func (h *Holder) Load() *Snapshot { return h.p.Load() }

// Store publishes s.
func (h *Holder) Store(s *Snapshot) {
	h.p.Store(s)
	h.mu.Lock()
	close(h.changed)
	h.changed = make(chan struct{})
	h.mu.Unlock()
}

// Changed returns a channel that is closed at the next Store. To follow
// the policy without missing a change, take the channel, then Load, act,
// and wait on the channel.
func (h *Holder) Changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}
