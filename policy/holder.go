package policy

import (
	"sync/atomic"
	"time"
)

var timeZero time.Time

// Holder publishes the current Snapshot to enforcement points. Load is a
// single atomic read; Store replaces the snapshot for every later Load.
type Holder struct {
	p atomic.Pointer[Snapshot]
}

// NewHolder returns a Holder publishing s (an empty policy if s is nil).
func NewHolder(s *Snapshot) *Holder {
	if s == nil {
		s = Compile(nil, timeZero, 0, nil)
	}
	h := &Holder{}
	h.p.Store(s)
	return h
}

// Load returns the current snapshot. It never returns nil.
func (h *Holder) Load() *Snapshot { return h.p.Load() }

// Store publishes s.
func (h *Holder) Store(s *Snapshot) { h.p.Store(s) }
