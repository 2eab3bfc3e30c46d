package policy

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"time"

	"github.com/gaissmai/bart"

	"github.com/writ-project/writ/jurisdiction"

	"github.com/writ-project/writ/order"
)

// Compile builds the snapshot of the orders enforced at time now: active
// orders (effective ≤ now < expires, not revoked or suspended) and, of
// those, the active targets; held targets and every other order are left
// out. URL targets are compiled for MatchURL (the HTTP layer) only.
// version is the store version the orders were read at; counters supplies
// each order's counters and may be nil.
//
// Compile builds everything anew. To follow a changing set of orders, an
// Updater publishes each change in time proportional to the change.
func Compile(orders []*order.Order, now time.Time, version uint64, counters *CounterSet) *Snapshot {
	return build(orders, now, version, counters).snap
}

// state is what a compilation knows beyond the snapshot it produced: what
// each order was compiled from and the full sets behind the rulesets. An
// Updater keeps it to apply later changes in place of a new compilation.
type state struct {
	snap     *Snapshot
	counters *CounterSet
	byID     map[string]*orderState
	// byPtr finds the state of an order that has not changed without
	// hashing its id.
	byPtr map[*order.Order]*orderState
	// rank orders the indexed orders for citation: earliest received
	// first, then by id. By order index.
	rank []orderRank
	// members lists, by ruleset index, every order of the ruleset whether
	// enforced now or not, by rank. The snapshot's rulesets hold the
	// enforced ones only, so that an order that stops or starts being
	// enforced changes a few rulesets, not a million names.
	members  [][]uint32
	interned map[string]uint32
	// names counts the stored names by their (self, below) rulesets, and
	// prefixVals the stored prefixes by their own orders' ruleset, so that the numbers of
	// enforced names and prefixes follow ruleset changes without a scan.
	names      map[[2]uint32]int
	prefixVals map[uint32]int
	// prefixOwn is each stored prefix's own orders (not inherited).
	prefixOwn map[netip.Prefix][]uint32
	urlRules  map[urlKey]uint32
	// recentLimit bounds the recent delta (see Updater).
	recentLimit int
	// published is the orders list the snapshot's rulesets were last
	// published for: an order whose OrderRef differs was redescribed.
	published []*OrderRef
}

// orderState is what was compiled of one order.
type orderState struct {
	src *order.Order
	// idx is the order's index in the snapshot, valid when indexed: its
	// active targets are in the tables.
	idx     uint32
	indexed bool
	// The status of src at checked, valid until its next change (next,
	// if hasNext): an order's status changes only when it takes effect
	// or expires, so most updates need not work it out again.
	checked  time.Time
	enforced bool
	next     time.Time
	hasNext  bool
	checkedC *order.Order // the src the cached status is for
}

// status returns whether the order is enforced at now and when that may
// next change.
func (os *orderState) status(now time.Time) (enforced bool, next time.Time, hasNext bool) {
	if os.checkedC != os.src || now.Before(os.checked) || os.hasNext && !now.Before(os.next) {
		os.checkedC, os.checked = os.src, now
		os.enforced = os.src.EnforcedAt(now)
		os.next, os.hasNext = os.src.NextChange(now)
	}
	return os.enforced, os.next, os.hasNext
}

// setSrc records the order an orderState now compiles.
func (st *state) setSrc(os *orderState, o *order.Order) {
	if os.src != nil && st.byPtr[os.src] == os {
		delete(st.byPtr, os.src)
	}
	os.src = o
	st.byPtr[o] = os
}

type orderRank struct {
	received time.Time
	id       string
}

func (a orderRank) compare(b orderRank) int {
	if c := a.received.Compare(b.received); c != 0 {
		return c
	}
	return cmp.Compare(a.id, b.id)
}

// indexable reports whether an order's targets belong in the tables at
// time now: it is enforced, or may be later (scheduled, suspended, every
// target held). Revoked and expired orders never block again.
func indexable(o *order.Order, now time.Time) bool {
	return o.Disposition != order.Revoked && (o.OpenEnded() || now.Before(o.Expires))
}

// build compiles orders into a new snapshot and the state behind it. The
// tables hold the active targets of every indexable order; only those of
// enforced orders are in the snapshot's rulesets.
func build(orders []*order.Order, now time.Time, version uint64, counters *CounterSet) *state {
	if counters == nil {
		counters = &CounterSet{}
	}
	st := &state{
		counters:   counters,
		byID:       make(map[string]*orderState, len(orders)),
		byPtr:      make(map[*order.Order]*orderState, len(orders)),
		members:    [][]uint32{nil},
		interned:   map[string]uint32{},
		names:      map[[2]uint32]int{},
		prefixVals: map[uint32]int{},
		prefixOwn:  map[netip.Prefix][]uint32{},
		urlRules:   map[urlKey]uint32{},
	}
	s := &Snapshot{
		version:  version,
		compiled: now,
		prefixes: new(bart.Table[prefixRule]),
	}
	st.snap = s

	// Orders are cited in a stable order: earliest received first.
	indexed := make([]*order.Order, 0, len(orders))
	for _, o := range orders {
		if indexable(o, now) {
			indexed = append(indexed, o)
		} else {
			os := &orderState{}
			st.setSrc(os, o)
			st.byID[o.ID] = os
		}
	}
	slices.SortStableFunc(indexed, func(a, b *order.Order) int {
		return orderRank{a.Received, a.ID}.compare(orderRank{b.Received, b.ID})
	})

	names, nameBytes := 0, 0
	for _, o := range indexed {
		for _, t := range o.Targets {
			if t.State == order.TargetActive && t.FQDN != "" {
				names++
				nameBytes += arenaBytes(t.FQDN)
			}
		}
	}
	s.names = newBaseTable(names, nameBytes)
	s.rulesets = []ruleset{{}}
	prefixOrders := st.prefixOwn

	for _, o := range indexed {
		idx := st.addOrder(o)
		single := st.intern([]uint32{idx})
		for _, t := range o.Targets {
			if t.State != order.TargetActive {
				continue
			}
			switch {
			case t.FQDN != "":
				sl := s.names.insert(t.FQDN)
				sl.self = st.withOrder(sl.self, idx, single)
				if t.Subdomains {
					sl.below = st.withOrder(sl.below, idx, single)
				}
			case t.IP != "":
				if p, ok := t.Prefix(); ok {
					if !slices.Contains(prefixOrders[p], idx) {
						prefixOrders[p] = append(prefixOrders[p], idx)
					}
				}
			case t.URL != "":
				st.addURL(t.URL, idx, single)
			}
		}
	}
	s.names.seal()
	s.maxLabels = s.names.maxLabels
	for i := range s.names.slots {
		if sl := &s.names.slots[i]; sl.n != 0 {
			st.names[[2]uint32{sl.self, sl.below}]++
		}
	}

	// A prefix inherits the orders of every prefix that contains it, so
	// that the longest-prefix match alone finds all of them. Inserting
	// shortest first means the table's best match for a new prefix is its
	// nearest ancestor, which already carries its own ancestors' orders.
	ps := make([]netip.Prefix, 0, len(prefixOrders))
	for p, own := range prefixOrders {
		ps = append(ps, p)
		st.sortByRank(own)
	}
	slices.SortFunc(ps, comparePrefixes)
	for _, p := range ps {
		own := prefixOrders[p]
		inherited := own
		if parent, ok := s.prefixes.LookupPrefix(p); ok {
			inherited = st.union(own, st.members[parent.inherited])
		}
		v := prefixRule{inherited: st.intern(inherited), own: st.intern(own)}
		s.prefixes.Insert(p, v)
		st.prefixVals[v.own]++
	}
	s.buildURLs(st.urlRules)
	enforced, until := st.scan(orders, now)
	st.refresh(enforced, until, now)
	return st
}

// scan returns which orders are enforced at now, by index, and the next
// time an order takes effect or expires.
func (st *state) scan(orders []*order.Order, now time.Time) (enforced []bool, until time.Time) {
	enforced = make([]bool, len(st.snap.orders))
	for _, o := range orders {
		os := st.byPtr[o]
		e, next, ok := os.status(now)
		if ok && (until.IsZero() || next.Before(until)) {
			until = next
		}
		if e && os.indexed {
			enforced[os.idx] = true
		}
	}
	return enforced, until
}

func comparePrefixes(a, b netip.Prefix) int {
	if a.Bits() != b.Bits() {
		return cmp.Compare(a.Bits(), b.Bits())
	}
	return a.Addr().Compare(b.Addr())
}

// addOrder gives an indexable order the next index.
func (st *state) addOrder(o *order.Order) uint32 {
	s := st.snap
	idx := uint32(len(s.orders))
	s.orders = append(s.orders, newRef(o, st.counters))
	st.rank = append(st.rank, orderRank{o.Received, o.ID})
	os := st.byID[o.ID]
	if os == nil {
		os = &orderState{}
		st.byID[o.ID] = os
	}
	st.setSrc(os, o)
	os.idx, os.indexed = idx, true
	return idx
}

func newRef(o *order.Order, counters *CounterSet) *OrderRef {
	return &OrderRef{
		ID:         o.ID,
		Authority:  o.Authority,
		LegalBasis: o.LegalBasis,
		Scope:      o.Scope(),
		Expires:    o.Expires,
		Counters:   counters.For(o.ID),
		received:   o.Received,
	}
}

// sameRef reports whether an OrderRef still describes o.
func sameRef(r *OrderRef, o *order.Order) bool {
	return r.ID == o.ID && r.Authority == o.Authority && r.LegalBasis == o.LegalBasis &&
		r.Scope == o.Scope() && r.Expires.Equal(o.Expires)
}

// withOrder returns ruleset r plus order idx; single is idx's own ruleset.
func (st *state) withOrder(r, idx, single uint32) uint32 {
	switch {
	case r == 0 || r == single:
		return single
	case slices.Contains(st.members[r], idx):
		return r
	}
	return st.intern(st.union(st.members[r], []uint32{idx}))
}

// withoutOrder returns ruleset r less order idx.
func (st *state) withoutOrder(r, idx uint32) uint32 {
	if r == 0 || !slices.Contains(st.members[r], idx) {
		return r
	}
	rest := make([]uint32, 0, len(st.members[r])-1)
	for _, o := range st.members[r] {
		if o != idx {
			rest = append(rest, o)
		}
	}
	return st.intern(rest)
}

// intern returns the ruleset of exactly the given orders, sorted by rank,
// adding it if new. The empty set is ruleset 0.
func (st *state) intern(orders []uint32) uint32 {
	if len(orders) == 0 {
		return 0
	}
	key := make([]byte, 4*len(orders))
	for i, o := range orders {
		binary.LittleEndian.PutUint32(key[4*i:], o)
	}
	if r, ok := st.interned[string(key)]; ok {
		return r
	}
	r := uint32(len(st.members))
	st.members = append(st.members, orders)
	st.snap.rulesets = append(st.snap.rulesets, st.publish(orders))
	st.interned[string(key)] = r
	return r
}

// publish returns the ruleset a snapshot holds for a set of orders: those
// of them that are enforced.
func (st *state) publish(members []uint32) ruleset {
	var rs ruleset
	for _, o := range members {
		if st.enforced(o) {
			rs.orders = append(rs.orders, o)
			rs.scope = rs.scope.Union(st.snap.orders[o].Scope)
		}
	}
	if len(rs.orders) > 0 {
		rs.first = st.snap.orders[rs.orders[0]]
	}
	return rs
}

func (st *state) enforced(idx uint32) bool {
	e := st.snap.enforcedIdx
	return int(idx) < len(e) && e[idx]
}

// union merges two order lists, each sorted by rank.
func (st *state) union(a, b []uint32) []uint32 {
	out := make([]uint32, 0, len(a)+len(b))
	out = append(out, a...)
	for _, o := range b {
		if !slices.Contains(a, o) {
			out = append(out, o)
		}
	}
	st.sortByRank(out)
	return out
}

func (st *state) sortByRank(orders []uint32) {
	slices.SortFunc(orders, func(a, b uint32) int { return st.rank[a].compare(st.rank[b]) })
}

// refresh sets what depends on which orders are enforced: the enforced
// flags, the orders list, the rulesets' enforced members, the scope and
// the counts; and the time of the next change.
func (st *state) refresh(enforced []bool, until, now time.Time) {
	s := st.snap
	s.compiled = now
	s.validUntil = until
	prevEnforced, prevRulesets := s.enforcedIdx, s.rulesets
	s.enforcedIdx = enforced
	s.enforced = s.enforced[:0:0]
	s.scope = jurisdiction.Set{}
	for i, ref := range s.orders {
		if enforced[i] {
			s.enforced = append(s.enforced, ref)
			s.scope = s.scope.Union(ref.Scope)
		}
	}
	slices.SortStableFunc(s.enforced, func(a, b *OrderRef) int {
		return orderRank{a.received, a.ID}.compare(orderRank{b.received, b.ID})
	})
	// Only rulesets with an order that started or stopped being enforced,
	// or was described anew, change.
	changed := make([]bool, len(s.orders))
	for i := range changed {
		changed[i] = i >= len(prevEnforced) || i >= len(st.published) || prevEnforced[i] != enforced[i] || s.orders[i] != st.published[i]
	}
	rs := make([]ruleset, len(st.members))
	for i, m := range st.members {
		if i < len(prevRulesets) && !slices.ContainsFunc(m, func(o uint32) bool { return changed[o] }) {
			rs[i] = prevRulesets[i]
		} else {
			rs[i] = st.publish(m)
		}
	}
	s.rulesets = rs
	st.published = s.orders
	st.count()
}

// live reports whether a name with rulesets self and below blocks for
// some enforced order.
func (s *Snapshot) live(self, below uint32) bool {
	return len(s.rulesets[self].orders) > 0 || len(s.rulesets[below].orders) > 0
}

// count sets the numbers of enforced names and prefixes.
func (st *state) count() {
	s := st.snap
	s.nameCount = 0
	for k, n := range st.names {
		if s.live(k[0], k[1]) {
			s.nameCount += n
		}
	}
	s.prefixN = 0
	for r, n := range st.prefixVals {
		if len(s.rulesets[r].orders) > 0 {
			s.prefixN += n
		}
	}
}
