package policy

import (
	"slices"
	"strings"
	"unsafe"
)

// nameTable maps domain names to the rulesets that block them. It is an
// open-addressing hash table with linear probing over fixed-size slots and
// a separate byte arena for the names, so that a million names cost a few
// large allocations and no pointers for the garbage collector to trace.
//
// Names are hashed label by label from the root (see hash.go): a query
// walk yields, at every label boundary, the hash of the ancestor domain to
// its right, so one pass probes the name and all its ancestors.
type nameTable struct {
	slots []slot
	mask  uint64
	// names is a Bloom filter over the stored names: most probed suffixes
	// are not blocked, and the filter, about 1.25 bytes a name, stays in
	// cache where the slots cannot.
	names bloom
	// sites is a Bloom filter over the last two labels of every stored
	// name. Every suffix a query probes ends in the query's own last two
	// labels, so when those are absent nothing can match: most unblocked
	// queries end after this single probe.
	sites bloom
	arena []byte // for each name: one length byte, then the name
	count int
	// maxLabels is the largest label count of any stored name. A query walk
	// stops probing once its suffix has more labels than that.
	maxLabels int
}

// slot is 16 bytes. tag is the high half of the name's mixed hash with
// the low bit forced on, so that zero marks an empty slot.
type slot struct {
	tag uint32
	off uint32 // offset of the name's length byte in arena
	// self is the ruleset applying to the name itself (exact targets and
	// subdomain targets); below applies to every name under it
	// (subdomain targets only). Zero means none.
	self, below uint32
}

// arenaSlack is the spare capacity after the last name that word-wise
// comparison may read.
const arenaSlack = 8

func newNameTable(n, arenaBytes int) nameTable {
	size := 16
	for size*3 < n*4 { // load factor at most 3/4
		size <<= 1
	}
	t := nameTable{
		slots: make([]slot, size),
		mask:  uint64(size - 1),
		names: newBloom(n),
		sites: newBloom(n),
		arena: make([]byte, 0, arenaBytes+arenaSlack),
	}
	adviseHugePages(t.slots)
	adviseHugePages(t.arena[:cap(t.arena)])
	return t
}

// bloom is a cache-line-blocked Bloom filter: the three bits of a key lie
// in one 64-byte line, so a check costs one memory access.
type bloom struct {
	words    []uint64
	lineMask uint64
}

// newBloom sizes a filter for n keys at about 10 bits a key, for a false
// positive rate near 1%.
func newBloom(n int) bloom {
	lines := 1
	for lines*512 < n*10 {
		lines <<= 1
	}
	return bloom{words: make([]uint64, lines*8), lineMask: uint64(lines - 1)}
}

// bits returns the line (index of its first word) and the three bit
// positions within the 512-bit line for a mixed hash.
func (f *bloom) bits(m uint64) (line uint64, b1, b2, b3 uint64) {
	line = (m >> 40 & f.lineMask) * 8
	return line, m & 511, m >> 9 & 511, m >> 18 & 511
}

func (f *bloom) add(m uint64) {
	line, b1, b2, b3 := f.bits(m)
	f.words[line+b1>>6] |= 1 << (b1 & 63)
	f.words[line+b2>>6] |= 1 << (b2 & 63)
	f.words[line+b3>>6] |= 1 << (b3 & 63)
}

func (f *bloom) mayContain(m uint64) bool {
	line, b1, b2, b3 := f.bits(m)
	w := f.words[line : line+8 : line+8]
	return w[b1>>6]&(1<<(b1&63)) != 0 && w[b2>>6]&(1<<(b2&63)) != 0 && w[b3>>6]&(1<<(b3&63)) != 0
}

// find returns the slot of a name given its raw walk hash, comparing the
// query bytes case-insensitively against the stored lower-case name.
func (t *nameTable) find(h uint64, name string) *slot {
	m := mix(h)
	if !t.names.mayContain(m) {
		return nil
	}
	return t.findMixed(m, name)
}

// findMixed is find for a mixed hash that has passed the filter.
func (t *nameTable) findMixed(m uint64, name string) *slot {
	tag := uint32(m>>32) | 1
	for i := m & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.tag == 0 {
			return nil
		}
		if s.tag == tag && t.equal(s.off, name) {
			return s
		}
	}
}

// equal compares a query name, case-insensitively, with the stored
// lower-case name at off, eight bytes at a time. The arena has eight
// bytes of slack past its last name, so the word loads stay inside it.
func (t *nameTable) equal(off uint32, name string) bool {
	n := int(t.arena[off])
	if n != len(name) {
		return false
	}
	a := unsafe.Pointer(&t.arena[off+1])
	q := unsafe.Pointer(unsafe.StringData(name))
	i := 0
	for ; n-i >= 8; i += 8 {
		if lower8(*(*uint64)(unsafe.Add(q, i))) != *(*uint64)(unsafe.Add(a, i)) {
			return false
		}
	}
	if i < n {
		mask := uint64(1)<<(8*(n-i)) - 1
		return lower8(tail(name, q, i, n)) == *(*uint64)(unsafe.Add(a, i))&mask
	}
	return true
}

// insert returns the slot for a canonical name, adding it if absent.
func (t *nameTable) insert(name string, labels int) *slot {
	h := hashName(name)
	if s := t.find(h, name); s != nil {
		return s
	}
	m := mix(h)
	i := m & t.mask
	for t.slots[i].tag != 0 {
		i = (i + 1) & t.mask
	}
	s := &t.slots[i]
	s.tag = uint32(m>>32) | 1
	s.off = uint32(len(t.arena))
	t.names.add(m)
	t.sites.add(mix(hashName(site(name))))
	if cap(t.arena)-len(t.arena) < 1+len(name)+arenaSlack {
		grown := make([]byte, len(t.arena), 2*cap(t.arena)+1+len(name)+arenaSlack)
		copy(grown, t.arena)
		t.arena = grown
	}
	t.arena = append(t.arena, byte(len(name)))
	t.arena = append(t.arena, name...)
	t.count++
	if labels > t.maxLabels {
		t.maxLabels = labels
	}
	return s
}

// site returns the last two labels of a canonical name of two labels or
// more.
func site(name string) string {
	last := strings.LastIndexByte(name, '.')
	if i := strings.LastIndexByte(name[:last], '.'); i >= 0 {
		return name[i+1:]
	}
	return name
}

// bytes is the memory the table holds.
func (t *nameTable) bytes() int {
	return len(t.slots)*16 + cap(t.arena) + 8*(len(t.names.words)+len(t.sites.words))
}

// withRoom returns a copy of t with room for n more names and nameBytes
// more arena bytes. The copy shares nothing with t, which snapshots may
// still be reading: below the load limit the arrays are copied as they
// are; past it the table is rebuilt at twice the size.
func (t *nameTable) withRoom(n, nameBytes int) nameTable {
	if (t.count+n)*4 <= len(t.slots)*3 {
		c := *t
		c.slots = slices.Clone(t.slots)
		c.names.words = slices.Clone(t.names.words)
		c.sites.words = slices.Clone(t.sites.words)
		c.arena = make([]byte, len(t.arena), len(t.arena)+nameBytes+arenaSlack)
		copy(c.arena, t.arena)
		return c
	}
	g := newNameTable(2*(t.count+n), len(t.arena)+nameBytes)
	for i := range t.slots {
		sl := &t.slots[i]
		if sl.tag == 0 {
			continue
		}
		name := t.name(sl)
		ns := g.insert(name, strings.Count(name, ".")+1)
		ns.self, ns.below = sl.self, sl.below
	}
	return g
}

// name returns the name stored for a slot.
func (t *nameTable) name(sl *slot) string {
	n := uint32(t.arena[sl.off])
	return string(t.arena[sl.off+1 : sl.off+1+n])
}
