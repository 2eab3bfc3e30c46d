package policy

import (
	"net/netip"
)

// EachName calls f for every blocked name of the snapshot, in no
// particular order, with the orders that block the name itself (exact and
// subdomain targets) and those that block every name below it (subdomain
// targets). Either list may be empty. f returns false to stop.
//
// It is for feeds that publish the policy (RPZ, exports), not for
// deciding queries.
func (s *Snapshot) EachName(f func(name string, self, below []*OrderRef) bool) {
	// A name is visited in the newest table that has it: older entries
	// for it are skipped.
	newer := func(tables ...*nameTable) func(string) bool {
		return func(name string) bool {
			for _, t := range tables {
				if t != nil && t.find(name) != nil {
					return true
				}
			}
			return false
		}
	}
	if !s.eachIn(&s.names, newer(s.deltas[0], s.deltas[1]), f) {
		return
	}
	if s.deltas[1] != nil && !s.eachIn(s.deltas[1], newer(s.deltas[0]), f) {
		return
	}
	if s.deltas[0] != nil {
		s.eachIn(s.deltas[0], newer(), f)
	}
}

func (s *Snapshot) eachIn(t *nameTable, skip func(string) bool, f func(name string, self, below []*OrderRef) bool) bool {
	for i := range t.slots {
		sl := &t.slots[i]
		if sl.n == 0 {
			continue
		}
		self, below := s.refs(sl.self), s.refs(sl.below)
		if self == nil && below == nil {
			continue // only orders not enforced now
		}
		name := t.name(sl)
		if skip(name) {
			continue
		}
		if !f(name, self, below) {
			return false
		}
	}
	return true
}

// EachPrefix calls f for every blocked prefix with the orders that block
// addresses in it, including those of enclosing prefixes (so that a
// longest-prefix match on the published list decides as MatchAddr does).
// f returns false to stop.
func (s *Snapshot) EachPrefix(f func(p netip.Prefix, orders []*OrderRef) bool) {
	for p, r := range s.prefixes.All() {
		if len(s.rulesets[r.own].orders) == 0 {
			continue // only orders not enforced now
		}
		if !f(p, s.refs(r.inherited)) {
			return
		}
	}
}

func (s *Snapshot) refs(r uint32) []*OrderRef {
	orders := s.rulesets[r].orders
	if len(orders) == 0 {
		return nil
	}
	out := make([]*OrderRef, len(orders))
	for i, o := range orders {
		out[i] = s.orders[o]
	}
	return out
}
