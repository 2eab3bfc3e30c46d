// Package policy compiles the orders in force into an immutable Snapshot
// that answers, for a domain name or an IP address and a client's
// jurisdiction, whether to block and which order demands it.
//
// A Snapshot never changes once built. Publishing a new policy means
// compiling a new Snapshot and swapping a pointer (see Holder), so a
// lookup takes no lock and allocates nothing, however many orders change
// around it.
package policy

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gaissmai/bart"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
)

// OrderRef is what a Snapshot knows of one enforced order: enough to
// justify a block to the client and count it.
type OrderRef struct {
	ID         string
	Authority  order.Authority
	LegalBasis order.LegalBasis
	Scope      jurisdiction.Set
	Expires    time.Time
	// Counters outlive snapshots: they belong to the order, not to one
	// compilation of it.
	Counters *Counters
	received time.Time // ranks the orders a snapshot lists
}

// Counters count what enforcement points did for one order. They are
// updated with atomic operations from the hot path.
type Counters struct {
	// Blocks counts blocked DNS answers.
	Blocks atomic.Uint64
	// acked is when the order was acknowledged to its submitter (Unix
	// nanoseconds), zero if not in this process's lifetime.
	acked atomic.Int64
	// firstBlock is when an enforcement point first blocked for the order.
	firstBlock atomic.Int64
}

// Acknowledged records when the order was acknowledged to its submitter,
// which starts the propagation clock.
func (c *Counters) Acknowledged(t time.Time) { c.acked.Store(t.UnixNano()) }

// AwaitingFirstBlock reports, with one atomic load, whether a block now
// would be the order's first since its acknowledgement.
func (c *Counters) AwaitingFirstBlock() bool { return c.firstBlock.Load() == 0 && c.acked.Load() != 0 }

// FirstBlock records a block at time now and, the first time it is called
// after an acknowledgement, returns the time from acknowledgement to this
// block: the order's propagation latency.
func (c *Counters) FirstBlock(now time.Time) (time.Duration, bool) {
	if c.firstBlock.Load() != 0 {
		return 0, false
	}
	acked := c.acked.Load()
	if acked == 0 || !c.firstBlock.CompareAndSwap(0, now.UnixNano()) {
		return 0, false
	}
	d := time.Duration(now.UnixNano() - acked)
	if d < 0 {
		d = 0
	}
	return d, true
}

// CounterSet hands out one Counters per order id and keeps them across
// snapshots. Its methods are safe for concurrent use; the hot path never
// calls them (it reaches Counters through OrderRef).
type CounterSet struct {
	mu sync.Mutex
	m  map[string]*Counters
}

// For returns the counters of the order with the given id.
func (cs *CounterSet) For(id string) *Counters {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.m == nil {
		cs.m = map[string]*Counters{}
	}
	c, ok := cs.m[id]
	if !ok {
		c = &Counters{}
		cs.m[id] = c
	}
	return c
}

// Each calls f for every order's counters, in no particular order.
func (cs *CounterSet) Each(f func(id string, c *Counters)) {
	cs.mu.Lock()
	copied := make(map[string]*Counters, len(cs.m))
	for id, c := range cs.m {
		copied[id] = c
	}
	cs.mu.Unlock()
	for id, c := range copied {
		f(id, c)
	}
}

// ruleset is a set of orders that block the same names or prefixes.
type ruleset struct {
	scope jurisdiction.Set // union of the orders' scopes
	// first is the first order; most rulesets have only one, and reaching
	// it directly saves the lookup two memory accesses.
	first  *OrderRef
	orders []uint32 // indexes into Snapshot.orders
}

// prefixRule is what the prefix table holds for a blocked prefix: the
// ruleset of its own orders and that of its own and every enclosing
// prefix's orders, which a longest-prefix match needs.
type prefixRule struct{ inherited, own uint32 }

// Snapshot is a compiled, immutable policy.
type Snapshot struct {
	version    uint64
	compiled   time.Time
	validUntil time.Time
	// names is the base name table. deltas, when not nil, hold the names
	// changed since the base was built: recent changes in deltas[0],
	// older ones in deltas[1]. A name's entry in the first table that has
	// it is the one in force; an entry with no rulesets removes a name.
	// See Updater.
	names     nameTable
	deltas    [2]*nameTable
	maxLabels int // the most labels of any stored name
	prefixes  *bart.Table[prefixRule]
	urls      map[string][]urlRule // by host
	rulesets  []ruleset            // index 0 is the empty ruleset
	// orders holds every order whose targets are in the tables, by index;
	// enforcedIdx tells which are enforced now, and enforced lists those.
	orders      []*OrderRef
	enforcedIdx []bool
	enforced    []*OrderRef
	scope       jurisdiction.Set // union of every enforced order's scope
	nameCount   int
	prefixN     int
}

// Version is the store version the snapshot was compiled from.
func (s *Snapshot) Version() uint64 { return s.version }

// CompiledAt is the time the snapshot was compiled for.
func (s *Snapshot) CompiledAt() time.Time { return s.compiled }

// ValidUntil is the next time at which an order compiled in, or left out,
// takes effect or expires; the policy must be recompiled by then. It is
// the zero time if no such change is ahead.
func (s *Snapshot) ValidUntil() time.Time { return s.validUntil }

// Orders returns the orders the snapshot enforces, earliest received
// first.
func (s *Snapshot) Orders() []*OrderRef { return s.enforced }

// Names is the number of distinct blocked names.
func (s *Snapshot) Names() int { return s.nameCount }

// Prefixes is the number of distinct blocked IP prefixes.
func (s *Snapshot) Prefixes() int { return s.prefixN }

// Scope is the set of jurisdictions in which anything is blocked.
func (s *Snapshot) Scope() jurisdiction.Set { return s.scope }

// MemoryBytes estimates the memory held by the name tables.
func (s *Snapshot) MemoryBytes() int {
	n := s.names.bytes()
	for _, d := range s.deltas {
		if d != nil {
			n += d.bytes()
		}
	}
	return n
}

// inScope returns the first order of ruleset r whose scope includes c.
func (s *Snapshot) inScope(r uint32, c jurisdiction.Code) *OrderRef {
	rs := &s.rulesets[r]
	if !rs.scope.Has(c) {
		return nil
	}
	if len(rs.orders) == 1 || rs.first.Scope.Has(c) {
		// A ruleset of one order has that order's scope: no need to read it.
		return rs.first
	}
	for _, i := range rs.orders[1:] {
		if o := s.orders[i]; o.Scope.Has(c) {
			return o
		}
	}
	return nil
}

// MatchName returns the order that blocks name for a client in
// jurisdiction c, or nil. name is a domain name in presentation format,
// with or without the trailing dot, in any letter case. When several
// targets match, the most specific (longest) one's order is returned.
//
// MatchName takes no lock and does not allocate.
func (s *Snapshot) MatchName(name string, c jurisdiction.Code) *OrderRef {
	if !s.scope.Has(c) || s.nameCount == 0 {
		return nil
	}
	n := len(name)
	if n > 0 && name[n-1] == '.' && !escapedAt(name, n-1) {
		n--
	}
	// Walk the name from the root down, label by label, hashing as it
	// goes: after each label the hash covers the suffix ending there,
	// which is probed if it has two labels or more (a single label is
	// never a target). The walk stops at the depth of the deepest stored
	// name, and the last match found is the most specific.
	var (
		found  *OrderRef
		h      uint64
		k      keys // of the suffix probed
		end    = n
		t      = &s.names
		deltas = s.deltas[0] != nil || s.deltas[1] != nil
		// w is the base table's filter line that holds the bits of the
		// longer suffixes, when one does (see nameTable.nameLine): the
		// line of the last two labels, or if that is crowded of the last
		// three. byThree tells that the last two labels' line is crowded;
		// baseDone that the base holds no name ending in the query's last
		// labels; inDeltas which deltas may hold one (bit i for deltas[i]).
		w                 *[8]uint64
		byThree, baseDone bool
		inDeltas          uint8
	)
	for labels := 1; labels <= s.maxLabels; labels++ {
		start, lh := labelBefore(name, end)
		h = combine(h, lh)
		if labels >= 2 {
			m := mix(h)
			k.m, k.labels = m, labels
			switch labels {
			case 2:
				k.s2 = m
			case 3:
				k.s3 = m
			}
			var wm *[8]uint64 // the base's line for this suffix's bits
			switch {
			case w != nil:
				wm = w
			case labels == 2:
				// Usually this one line answers for the whole walk.
				wm = t.filter.line(m)
				if deltas {
					inDeltas = s.deltaSites(m)
				}
				if !hasSite(wm, m) {
					if inDeltas == 0 {
						return nil // no stored name ends in these two labels
					}
					baseDone = true
				}
				if !t.bySite {
					break
				}
				if isCrowded(wm) {
					byThree = true
				} else {
					w = wm
				}
			case labels == 3:
				wm = t.filter.line(m)
				if !byThree || baseDone {
					break
				}
				if !hasSite(wm, m) {
					if inDeltas == 0 {
						return found // no stored name ends in these three labels
					}
					baseDone = true
				} else if !isCrowded(wm) {
					w = wm
				}
			default:
				wm = t.filter.line(m)
			}
			var sl *slot
			if inDeltas != 0 {
				// A delta's entry for a name overrides the base's.
				sl = s.probeDeltas(inDeltas, k, name, start, n)
			}
			if sl == nil && !baseDone && hasName(wm, m) {
				sl = t.findMixed(m, name, start, n)
			}
			if sl != nil {
				r := sl.below
				if start == 0 {
					r = sl.self
				}
				if r != 0 {
					if o := s.inScope(r, c); o != nil {
						found = o
					}
				}
			}
		}
		if start == 0 {
			break
		}
		end = start - 1
	}
	return found
}

// deltaSites returns which deltas may hold a name ending in the two
// labels of mixed hash s2: bit i for deltas[i].
func (s *Snapshot) deltaSites(s2 uint64) uint8 {
	var in uint8
	for i, d := range s.deltas {
		if d != nil && hasSite(d.filter.line(s2), s2) {
			in |= 1 << i
		}
	}
	return in
}

// probeDeltas returns the slot of name[start:end], of the given keys, in
// the newest of the deltas in (bit i for deltas[i]) that has it, or nil.
func (s *Snapshot) probeDeltas(in uint8, k keys, name string, start, end int) *slot {
	for i, d := range s.deltas {
		if in&(1<<i) == 0 {
			continue
		}
		w := d.filter.line(k.m) // a delta keeps names in their own lines
		if d.bySite {
			w = d.nameLine(k)
		}
		if hasName(w, k.m) {
			if sl := d.findMixed(k.m, name, start, end); sl != nil {
				return sl
			}
		}
	}
	return nil
}

// probe returns the slot in force for a canonical name: the newest
// delta's that has the name, else the base table's, else nil.
func (s *Snapshot) probe(name string) *slot {
	k := keysOf(name)
	if sl := s.probeDeltas(s.deltaSites(k.s2), k, name, 0, len(name)); sl != nil {
		return sl
	}
	if !s.names.mayHave(k) {
		return nil
	}
	return s.names.findMixed(k.m, name, 0, len(name))
}

// MatchAddr returns the order that blocks address a for a client in
// jurisdiction c, or nil. It takes no lock and does not allocate.
func (s *Snapshot) MatchAddr(a netip.Addr, c jurisdiction.Code) *OrderRef {
	if !s.scope.Has(c) || s.prefixN == 0 {
		return nil
	}
	r, ok := s.prefixes.Lookup(a.Unmap())
	if !ok {
		return nil
	}
	return s.inScope(r.inherited, c)
}

// Match is one reason a name or address is blocked somewhere.
type Match struct {
	Order *OrderRef
	// Target is the blocked name or prefix that matched, as written in
	// the order ("motogpstream.me (and subdomains)", "203.0.113.0/24").
	Target string
}

// ExplainName lists every order that blocks name in any jurisdiction,
// most specific target first. It allocates; it is for people, not for
// the hot path.
func (s *Snapshot) ExplainName(name string) []Match {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	var out []Match
	labels := strings.Split(name, ".")
	for i := range labels {
		suffix := strings.Join(labels[i:], ".")
		sl := s.probe(suffix)
		if sl == nil {
			continue
		}
		r := sl.below
		target := suffix + " (and subdomains)"
		if i == 0 {
			r = sl.self
			if sl.below == 0 {
				target = suffix
			}
		}
		for _, oi := range s.rulesets[r].orders {
			out = append(out, Match{Order: s.orders[oi], Target: target})
		}
	}
	return out
}

// ExplainAddr lists every order that blocks a in any jurisdiction.
func (s *Snapshot) ExplainAddr(a netip.Addr) []Match {
	var out []Match
	for p, r := range s.prefixes.Supernets(netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())) {
		for _, oi := range s.rulesets[r.inherited].orders {
			if !slices.ContainsFunc(out, func(m Match) bool { return m.Order == s.orders[oi] }) {
				out = append(out, Match{Order: s.orders[oi], Target: p.String()})
			}
		}
	}
	return out
}
