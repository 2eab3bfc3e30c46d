package policy

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gaissmai/bart"

	"github.com/writ-project/writ/order"
)

// Compile builds the snapshot of the orders enforced at time now: active
// orders (effective ≤ now < expires, not revoked or suspended) and, of
// those, the active targets; held targets and every other order are left
// out. URL targets are compiled for MatchURL (the HTTP layer) only.
// version is the store version the orders were read at; counters supplies
// each order's counters and may be nil.
func Compile(orders []*order.Order, now time.Time, version uint64, counters *CounterSet) *Snapshot {
	if counters == nil {
		counters = &CounterSet{}
	}
	s := &Snapshot{
		version:  version,
		compiled: now,
		prefixes: new(bart.Table[uint32]),
		rulesets: []ruleset{{}},
	}

	// Orders are cited in a stable order: earliest received first.
	enforced := make([]*order.Order, 0, len(orders))
	for _, o := range orders {
		if next, ok := o.NextChange(now); ok && (s.validUntil.IsZero() || next.Before(s.validUntil)) {
			s.validUntil = next
		}
		if o.EnforcedAt(now) {
			enforced = append(enforced, o)
		}
	}
	sort.SliceStable(enforced, func(i, j int) bool {
		if !enforced[i].Received.Equal(enforced[j].Received) {
			return enforced[i].Received.Before(enforced[j].Received)
		}
		return enforced[i].ID < enforced[j].ID
	})

	names, nameBytes := 0, 0
	for _, o := range enforced {
		for _, t := range o.Targets {
			if t.State == order.TargetActive && t.FQDN != "" {
				names++
				nameBytes += 1 + len(t.FQDN)
			}
		}
	}
	s.names = newNameTable(names, nameBytes)
	b := builder{s: s, interned: map[string]uint32{}}
	prefixOrders := map[netip.Prefix][]uint32{}
	urlRules := map[urlKey]uint32{}

	for _, o := range enforced {
		idx := uint32(len(s.orders))
		s.orders = append(s.orders, &OrderRef{
			ID:         o.ID,
			Authority:  o.Authority,
			LegalBasis: o.LegalBasis,
			Scope:      o.Scope(),
			Expires:    o.Expires,
			Counters:   counters.For(o.ID),
		})
		s.scope = s.scope.Union(s.orders[idx].Scope)
		single := b.single(idx)
		for _, t := range o.Targets {
			if t.State != order.TargetActive {
				continue
			}
			switch {
			case t.FQDN != "":
				sl := s.names.insert(t.FQDN, strings.Count(t.FQDN, ".")+1)
				sl.self = b.add(sl.self, idx, single)
				if t.Subdomains {
					sl.below = b.add(sl.below, idx, single)
				}
			case t.IP != "":
				if p, ok := t.Prefix(); ok {
					if !slices.Contains(prefixOrders[p], idx) {
						prefixOrders[p] = append(prefixOrders[p], idx)
					}
				}
			case t.URL != "":
				b.addURL(urlRules, t.URL, idx, single)
			}
		}
	}
	s.nameCount = s.names.count
	s.buildURLs(urlRules)

	// A prefix inherits the orders of every prefix that contains it, so
	// that the longest-prefix match alone finds all of them. Inserting
	// shortest first means the table's best match for a new prefix is its
	// nearest ancestor, which already carries its own ancestors' orders.
	ps := make([]netip.Prefix, 0, len(prefixOrders))
	for p := range prefixOrders {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].Bits() != ps[j].Bits() {
			return ps[i].Bits() < ps[j].Bits()
		}
		return ps[i].Addr().Less(ps[j].Addr())
	})
	for _, p := range ps {
		own := prefixOrders[p]
		if parent, ok := s.prefixes.LookupPrefix(p); ok {
			own = union(own, s.rulesets[parent].orders)
		}
		s.prefixes.Insert(p, b.intern(own))
	}
	s.prefixN = len(ps)
	return s
}

// builder interns rulesets so that the million names of one order share a
// single ruleset.
type builder struct {
	s        *Snapshot
	interned map[string]uint32
}

func (b *builder) single(idx uint32) uint32 {
	return b.intern([]uint32{idx})
}

// add returns the ruleset r plus order idx; single is idx's own ruleset.
func (b *builder) add(r, idx, single uint32) uint32 {
	switch {
	case r == 0 || r == single:
		return single
	case slices.Contains(b.s.rulesets[r].orders, idx):
		return r
	}
	return b.intern(union(b.s.rulesets[r].orders, []uint32{idx}))
}

func (b *builder) intern(orders []uint32) uint32 {
	key := make([]byte, 4*len(orders))
	for i, o := range orders {
		binary.LittleEndian.PutUint32(key[4*i:], o)
	}
	if r, ok := b.interned[string(key)]; ok {
		return r
	}
	rs := ruleset{orders: orders, first: b.s.orders[orders[0]]}
	for _, o := range orders {
		rs.scope = rs.scope.Union(b.s.orders[o].Scope)
	}
	r := uint32(len(b.s.rulesets))
	b.s.rulesets = append(b.s.rulesets, rs)
	b.interned[string(key)] = r
	return r
}

// union merges two sorted order lists.
func union(a, b []uint32) []uint32 {
	out := make([]uint32, 0, len(a)+len(b))
	out = append(out, a...)
	out = append(out, b...)
	slices.Sort(out)
	return slices.Compact(out)
}
