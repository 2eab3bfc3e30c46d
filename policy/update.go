package policy

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/writ-project/writ/order"
)

// Updater keeps a published policy equal to a changing set of orders
// without compiling it anew at each change. A snapshot is a large base,
// built by Compile, and small deltas of the names changed since: an
// update copies the recent delta (a few hundred names at most, merged
// into an older delta when full), applies the changed orders' targets to
// it and publishes the result, in time proportional to the change, not
// to the million names of the base. When the older delta grows past a
// limit a new base is built in the background, while lookups go on with
// the current snapshot, and published once it is ready.
//
// Whether an order is enforced is a property of the small ruleset table,
// not of each name, so an order that is revoked, suspended, reinstated,
// takes effect or expires is also applied without touching its names.
//
// Orders are compared by pointer: an order whose contents change must
// come as a new *order.Order (order.Clone), as the registry does. Update
// and the background rebuild publish through the Holder, under one lock,
// so a snapshot never replaces a newer one.
type Updater struct {
	holder   *Holder
	counters *CounterSet

	mu sync.Mutex
	st *state
	// last is the latest input, from which a background rebuild is
	// brought up to date; seq counts inputs.
	last struct {
		orders  []*order.Order
		now     time.Time
		version uint64
		seq     uint64
	}
	// pos is the index of each order in last.orders, for Apply; nil
	// until Apply needs it.
	pos      map[string]int
	gen      uint64 // counts full builds; a rebuild begun before one is dropped
	rebasing bool
	wg       sync.WaitGroup
	// minDelta is the delta's size limit for small bases, and recent that
	// of the recent delta (tests lower both).
	minDelta, recent int
}

// NewUpdater returns an Updater that publishes to h (when not nil) and
// takes each order's counters from counters (a new set when nil).
func NewUpdater(h *Holder, counters *CounterSet) *Updater {
	if counters == nil {
		counters = &CounterSet{}
	}
	return &Updater{holder: h, counters: counters, minDelta: 4096, recent: defaultRecentLimit}
}

// Update makes the policy that of orders at time now, publishes it and
// returns it. version is the store version the orders were read at.
// The first call compiles; later ones apply what changed.
func (u *Updater) Update(orders []*order.Order, now time.Time, version uint64) *Snapshot {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.last.orders = slices.Clone(orders)
	u.pos = nil
	return u.publish(nil, now, version)
}

// Apply is Update for a caller that knows what changed: changed holds
// the orders that are new or replaced since the last call, and every
// other order stands as it was. Unless an order takes effect or expires
// by now, the orders that did not change are not looked at, so that an
// amendment is published in time proportional to itself, not to the
// number of orders.
func (u *Updater) Apply(changed []*order.Order, now time.Time, version uint64) *Snapshot {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.pos == nil {
		u.pos = make(map[string]int, len(u.last.orders))
		for i, o := range u.last.orders {
			u.pos[o.ID] = i
		}
	}
	// A copy: a background rebuild may be reading the previous list.
	orders := slices.Clone(u.last.orders)
	for _, o := range changed {
		if i, ok := u.pos[o.ID]; ok {
			orders[i] = o
		} else {
			u.pos[o.ID] = len(orders)
			orders = append(orders, o)
		}
	}
	u.last.orders = orders
	return u.publish(changed, now, version)
}

// publish brings the policy to u.last.orders, given the orders that
// changed (all of them when changed is nil), and publishes it. u.mu must
// be held.
func (u *Updater) publish(changed []*order.Order, now time.Time, version uint64) *Snapshot {
	u.last.now, u.last.version = now, version
	u.last.seq++
	s := u.update(changed, now, version)
	if u.holder != nil {
		u.holder.Store(s)
	}
	return s
}

// update applies the changed orders (nil: any of u.last.orders may have)
// to the current state, or builds a new one when the change is too large
// for the delta. u.mu must be held.
func (u *Updater) update(changed []*order.Order, now time.Time, version uint64) *Snapshot {
	orders := u.last.orders
	if u.st == nil || !u.st.applyChanged(changed, orders, now, version, u.deltaLimit(u.st.snap)) {
		u.gen++
		u.st = build(orders, now, version, u.counters)
		u.st.recentLimit = u.recent
		return u.st.snap
	}
	if d := u.st.snap.deltas[1]; d != nil && d.count > u.deltaLimit(u.st.snap) && !u.rebasing {
		u.rebase()
	}
	return u.st.snap
}

// rebase builds a new base from the latest input in the background,
// brings it up to date with the updates made meanwhile, and publishes
// it. u.mu must be held.
func (u *Updater) rebase() {
	u.rebasing = true
	gen := u.gen
	last := u.last
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		st := build(last.orders, last.now, last.version, u.counters)
		st.recentLimit = u.recent
		// Catch up without the lock, on the new state no one else sees,
		// so that updates meanwhile do not wait for it; what arrives
		// during the last catch-up is applied under the lock.
		for range 10 {
			u.mu.Lock()
			latest := u.last
			u.mu.Unlock()
			if latest.seq == last.seq {
				break
			}
			if !st.apply(latest.orders, latest.now, latest.version, u.deltaLimit(st.snap)) {
				st = build(latest.orders, latest.now, latest.version, u.counters)
				st.recentLimit = u.recent
			}
			last = latest
		}
		u.mu.Lock()
		defer u.mu.Unlock()
		u.rebasing = false
		if u.gen != gen {
			return // a full build replaced the state meanwhile
		}
		if u.last.seq != last.seq && !st.apply(u.last.orders, u.last.now, u.last.version, u.deltaLimit(st.snap)) {
			// Changes keep coming faster than a base is built: keep the
			// current state, whose deltas are correct, and let a later
			// update try again, rather than make this one wait.
			return
		}
		u.gen++
		u.st = st
		if u.holder != nil {
			u.holder.Store(st.snap)
		}
	}()
}

// deltaLimit is how many names the older delta may hold before a new
// base is built: past it, merging the recent changes into it (a copy)
// costs more than it saves, and lookups probe two large tables.
func (u *Updater) deltaLimit(s *Snapshot) int {
	return max(u.minDelta, s.names.count/64)
}

// nameOp adds or removes one order's name target.
type nameOp struct {
	name string
	sub  bool
	idx  uint32
}

type prefixOp struct {
	p   netip.Prefix
	idx uint32
	add bool
}

type urlOp struct {
	url string
	idx uint32
	add bool
}

// changes collects what an update does to the tables.
type changes struct {
	removed, added []nameOp
	arenaBytes     int // of the names added or removed
	prefixes       []prefixOp
	urls           []urlOp
	refs           bool // an order's OrderRef was replaced
}

func (c *changes) target(t order.Target, idx uint32, add bool) {
	switch {
	case t.FQDN != "":
		op := nameOp{name: t.FQDN, sub: t.Subdomains, idx: idx}
		if add {
			c.added = append(c.added, op)
		} else {
			c.removed = append(c.removed, op)
		}
		c.arenaBytes += arenaBytes(t.FQDN)
	case t.IP != "":
		if p, ok := t.Prefix(); ok {
			c.prefixes = append(c.prefixes, prefixOp{p: p, idx: idx, add: add})
		}
	case t.URL != "":
		c.urls = append(c.urls, urlOp{url: t.URL, idx: idx, add: add})
	}
}

// apply brings the state to orders at time now and publishes a new
// snapshot in st.snap. It reports false, having left the state unusable,
// when more than limit names change: the caller then builds anew.
func (st *state) apply(orders []*order.Order, now time.Time, version uint64, limit int) bool {
	return st.applyOrders(orders, true, now, version, limit)
}

// applyChanged is apply for a caller that knows which orders changed
// since the state was last brought up to date; all is every order, and
// changed nil means any of them may have. Orders that did not change
// keep the status they had, unless the time of the next change has
// come: then all are looked at.
func (st *state) applyChanged(changed, all []*order.Order, now time.Time, version uint64, limit int) bool {
	prev := st.snap
	if changed == nil || now.Before(prev.compiled) || !prev.validUntil.IsZero() && !now.Before(prev.validUntil) {
		return st.applyOrders(all, true, now, version, limit)
	}
	return st.applyOrders(changed, false, now, version, limit)
}

// applyOrders is apply over orders: every order when all, otherwise the
// changed ones, the others keeping the status they had.
func (st *state) applyOrders(orders []*order.Order, all bool, now time.Time, version uint64, limit int) bool {
	prev := st.snap
	s := *prev
	s.version = version
	st.snap = &s

	type mark struct {
		idx uint32
		on  bool
	}
	var (
		ch    changes
		marks []mark
		until time.Time
	)
	// Without all, the others' next change is what it was: until starts
	// there, unless a changed order was the one due then and no longer
	// is (revoked, say), which takes a look at every order's.
	recheck := false
	if !all {
		until = prev.validUntil
	}
	for _, o := range orders {
		os := st.byPtr[o]
		if os == nil {
			if old := st.byID[o.ID]; !all && old != nil && old.hasNext && old.next.Equal(prev.validUntil) {
				recheck = true
			}
			os = st.changed(o, now, &ch)
			if len(ch.added)+len(ch.removed) > limit {
				return false
			}
		}
		e, next, ok := os.status(now)
		if ok && (until.IsZero() || next.Before(until)) {
			until = next
		}
		if os.indexed && (e || !all) {
			marks = append(marks, mark{os.idx, e})
		}
	}

	if len(ch.added)+len(ch.removed) > 0 {
		st.applyNames(&s, &ch)
	}
	if len(ch.prefixes) > 0 {
		st.applyPrefixes(&s, ch.prefixes)
	}
	if len(ch.urls) > 0 {
		for _, op := range ch.urls {
			if op.add {
				st.addURL(op.url, op.idx, st.intern([]uint32{op.idx}))
			} else {
				st.removeURL(op.url, op.idx)
			}
		}
		s.buildURLs(st.urlRules)
	}

	if recheck {
		until = time.Time{}
		for _, os := range st.byID {
			if _, next, ok := os.status(now); ok && (until.IsZero() || next.Before(until)) {
				until = next
			}
		}
	}
	flags := make([]bool, len(s.orders))
	if !all {
		copy(flags, prev.enforcedIdx)
	}
	for _, m := range marks {
		flags[m.idx] = m.on
	}
	if ch.refs || !slices.Equal(flags, prev.enforcedIdx) {
		st.refresh(flags, until, now)
	} else {
		// Which orders are enforced, and how they are described, did not
		// change: the rulesets stand, and the counts were kept up to date
		// name by name.
		s.compiled, s.validUntil = now, until
	}
	return true
}

// changed records an order that is new or differs from what was compiled
// and collects the changes to the tables it makes.
func (st *state) changed(o *order.Order, now time.Time, ch *changes) *orderState {
	s := st.snap
	os := st.byID[o.ID]
	if os == nil {
		os = &orderState{}
		st.byID[o.ID] = os
		st.setSrc(os, o)
		if indexable(o, now) {
			st.index(os, ch)
		}
		return os
	}
	old := os.src
	st.setSrc(os, o)
	switch {
	case os.indexed:
		removed, added := diffTargets(old.Targets, o.Targets)
		for _, t := range removed {
			ch.target(t, os.idx, false)
		}
		for _, t := range added {
			ch.target(t, os.idx, true)
		}
		if !sameRef(s.orders[os.idx], o) {
			if !ch.refs {
				s.orders = slices.Clone(s.orders) // shared with the previous snapshot
				ch.refs = true
			}
			s.orders[os.idx] = newRef(o, st.counters)
		}
	case indexable(o, now):
		st.index(os, ch)
	}
	return os
}

// index gives an order an index and adds its active targets.
func (st *state) index(os *orderState, ch *changes) {
	idx := st.addOrder(os.src)
	for _, t := range os.src.Targets {
		if t.State == order.TargetActive {
			ch.target(t, idx, true)
		}
	}
}

// diffTargets returns the active targets of old that new no longer has
// active, and those of new that old did not have active. Amendments
// append targets and change states in place, so targets are compared by
// position first and only those that differ are matched by key.
func diffTargets(old, cur []order.Target) (removed, added []order.Target) {
	for i := range max(len(old), len(cur)) {
		var a, b *order.Target
		if i < len(old) && old[i].State == order.TargetActive {
			a = &old[i]
		}
		if i < len(cur) && cur[i].State == order.TargetActive {
			b = &cur[i]
		}
		if a != nil && b != nil && a.FQDN == b.FQDN && a.Subdomains == b.Subdomains && a.IP == b.IP && a.URL == b.URL {
			continue
		}
		if a != nil {
			removed = append(removed, *a)
		}
		if b != nil {
			added = append(added, *b)
		}
	}
	if len(removed) == 0 || len(added) == 0 {
		return removed, added
	}
	// A target that moved appears on both sides: it did not change.
	inRemoved := make(map[order.Target]bool, len(removed))
	for _, t := range removed {
		inRemoved[targetKey(t)] = true
	}
	inAdded := make(map[order.Target]bool, len(added))
	for _, t := range added {
		inAdded[targetKey(t)] = true
	}
	removed = slices.DeleteFunc(removed, func(t order.Target) bool { return inAdded[targetKey(t)] })
	added = slices.DeleteFunc(added, func(t order.Target) bool { return inRemoved[targetKey(t)] })
	return removed, added
}

// targetKey is what of a target the policy compiles.
func targetKey(t order.Target) order.Target {
	return order.Target{FQDN: t.FQDN, Subdomains: t.Subdomains, IP: t.IP, URL: t.URL}
}

// defaultRecentLimit bounds the recent delta, which each update copies;
// past it, the recent changes are merged into the older delta, whose copy
// is thereby paid once every few hundred changes.
const defaultRecentLimit = 256

// applyNames writes the name changes into a copy of the recent delta:
// removals first, so that a target whose coverage of subdomains changed
// ends up with the new coverage.
func (st *state) applyNames(s *Snapshot, ch *changes) {
	if r := s.deltas[0]; r != nil && r.count >= st.recentLimit {
		s.deltas[1] = merge(s.deltas[1], r, st.recentLimit)
		s.deltas[0] = nil
	}
	n := len(ch.removed) + len(ch.added)
	var d nameTable
	if s.deltas[0] != nil {
		d = s.deltas[0].withRoom(n, ch.arenaBytes)
	} else {
		d = newNameTable(max(st.recentLimit, 2*n), 2*ch.arenaBytes)
	}
	for _, op := range ch.removed {
		sl := st.deltaSlot(s, &d, op.name)
		self, below := st.withoutOrder(sl.self, op.idx), sl.below
		if op.sub {
			below = st.withoutOrder(below, op.idx)
		}
		st.setSlot(sl, self, below)
	}
	for _, op := range ch.added {
		sl := st.deltaSlot(s, &d, op.name)
		single := st.intern([]uint32{op.idx})
		self, below := st.withOrder(sl.self, op.idx, single), sl.below
		if op.sub {
			below = st.withOrder(below, op.idx, single)
		}
		st.setSlot(sl, self, below)
	}
	s.deltas[0] = &d
	s.maxLabels = max(s.maxLabels, d.maxLabels)
}

// merge returns a new table with the entries of older overridden and
// completed by those of recent. older may be nil.
func merge(older, recent *nameTable, recentLimit int) *nameTable {
	var m nameTable
	if older != nil {
		m = older.withRoom(recent.count, len(recent.arena))
	} else {
		m = newNameTable(max(4*recentLimit, 2*recent.count), 2*len(recent.arena))
	}
	for i := range recent.slots {
		sl := &recent.slots[i]
		if sl.n == 0 {
			continue
		}
		name := recent.name(sl)
		to := m.insert(name)
		to.self, to.below = sl.self, sl.below
	}
	return &m
}

// deltaSlot returns the recent delta's slot for a name, adding it with
// the rulesets in force (none if no table has the name) if absent.
func (st *state) deltaSlot(s *Snapshot, d *nameTable, name string) *slot {
	if sl := d.find(name); sl != nil {
		return sl
	}
	var self, below uint32
	if bs := s.probe(name); bs != nil {
		self, below = bs.self, bs.below
	} else {
		st.names[[2]uint32{}]++ // a new entry, so far blocking nothing
	}
	sl := d.insert(name)
	sl.self, sl.below = self, below
	return sl
}

// setSlot sets a slot's rulesets, keeping the counts of names per pair
// and of enforced names.
func (st *state) setSlot(sl *slot, self, below uint32) {
	s := st.snap
	if s.live(sl.self, sl.below) {
		s.nameCount--
	}
	if s.live(self, below) {
		s.nameCount++
	}
	old := [2]uint32{sl.self, sl.below}
	if n := st.names[old] - 1; n > 0 {
		st.names[old] = n
	} else {
		delete(st.names, old)
	}
	st.names[[2]uint32{self, below}]++
	sl.self, sl.below = self, below
}

// applyPrefixes updates the prefixes' own orders, then recomputes the
// inherited orders of each changed prefix and of every prefix under it,
// on a persistent copy of the table.
func (st *state) applyPrefixes(s *Snapshot, ops []prefixOp) {
	changed := map[netip.Prefix]bool{}
	for _, op := range ops {
		own := st.prefixOwn[op.p]
		if op.add {
			if !slices.Contains(own, op.idx) {
				own = append(slices.Clone(own), op.idx)
				st.sortByRank(own)
			}
		} else {
			own = slices.DeleteFunc(slices.Clone(own), func(o uint32) bool { return o == op.idx })
		}
		if len(own) > 0 {
			st.prefixOwn[op.p] = own
		} else {
			delete(st.prefixOwn, op.p)
		}
		changed[op.p] = true
	}
	t := s.prefixes
	affected := map[netip.Prefix]bool{}
	for p := range changed {
		affected[p] = true
		for q := range t.Subnets(p) {
			affected[q] = true
		}
	}
	ps := make([]netip.Prefix, 0, len(affected))
	for p := range affected {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, comparePrefixes)
	for _, p := range ps {
		var v prefixRule
		if own, ok := st.prefixOwn[p]; ok {
			v = prefixRule{inherited: st.intern(st.inherited(p)), own: st.intern(own)}
		}
		old, had := t.Get(p)
		switch {
		case had && old == v:
			continue
		case v.own == 0:
			if had {
				t = t.DeletePersist(p)
			}
		default:
			t = t.InsertPersist(p, v)
			st.prefixVals[v.own]++
			if len(s.rulesets[v.own].orders) > 0 {
				s.prefixN++
			}
		}
		if had {
			if len(s.rulesets[old.own].orders) > 0 {
				s.prefixN--
			}
			if n := st.prefixVals[old.own] - 1; n > 0 {
				st.prefixVals[old.own] = n
			} else {
				delete(st.prefixVals, old.own)
			}
		}
	}
	s.prefixes = t
}

// inherited returns the orders of a stored prefix: its own and those of
// every stored prefix containing it.
func (st *state) inherited(p netip.Prefix) []uint32 {
	var all []uint32
	for bits := 0; bits <= p.Bits(); bits++ {
		a, _ := p.Addr().Prefix(bits)
		if own, ok := st.prefixOwn[a]; ok {
			all = st.union(all, own)
		}
	}
	return all
}
