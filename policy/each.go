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
	t := &s.names
	for i := range t.slots {
		sl := &t.slots[i]
		if sl.tag == 0 {
			continue
		}
		n := uint32(t.arena[sl.off])
		name := string(t.arena[sl.off+1 : sl.off+1+n])
		if !f(name, s.refs(sl.self), s.refs(sl.below)) {
			return
		}
	}
}

// EachPrefix calls f for every blocked prefix with the orders that block
// addresses in it, including those of enclosing prefixes (so that a
// longest-prefix match on the published list decides as MatchAddr does).
// f returns false to stop.
func (s *Snapshot) EachPrefix(f func(p netip.Prefix, orders []*OrderRef) bool) {
	for p, r := range s.prefixes.All() {
		if !f(p, s.refs(r)) {
			return
		}
	}
}

func (s *Snapshot) refs(r uint32) []*OrderRef {
	if r == 0 {
		return nil
	}
	orders := s.rulesets[r].orders
	out := make([]*OrderRef, len(orders))
	for i, o := range orders {
		out[i] = s.orders[o]
	}
	return out
}
