package policy

import (
	"encoding/binary"
	"slices"
	"unsafe"
)

// nameTable maps domain names to the rulesets that block them. It is an
// open-addressing hash table with linear probing over 32-byte slots, two
// to a cache line, that hold the name itself: a lookup that finds its slot
// has the name to compare in the same line, and does not follow an offset
// to another array (a second dependent cache miss in a large table). Only
// names longer than inlineMax bytes keep their end in a separate arena.
// A million names cost a few large allocations and no pointers for the
// garbage collector to trace.
//
// Names are hashed label by label from the root (see hash.go): a query
// walk yields, at every label boundary, the hash of the ancestor domain to
// its right, so one pass probes the name and all its ancestors.
type nameTable struct {
	slots []slot
	// filter is a Bloom filter over the stored names and over their sites
	// (last two labels), consulted before the slots: see filter.
	filter filter
	// bySite tells that names' filter bits are in their sites' lines
	// (a base table: see seal). While sealing, insert leaves the filter
	// to seal and keeps each name's keys in pending.
	bySite, sealing bool
	pending         []keys
	arena           []byte // the ends of names longer than inlineMax
	count           int
	// maxLabels is the largest label count of any stored name. A query walk
	// stops probing once its suffix has more labels than that.
	maxLabels int
}

const (
	// inlineMax is the longest name a slot holds whole.
	inlineMax = 23
	// headLen is how much of a longer name a slot holds; the four bytes
	// after it give the offset of the rest in the arena.
	headLen = inlineMax - 4
	// longLen in a slot's length byte marks a name of 255 bytes or more
	// (not a valid domain name, but Compile accepts any string): its
	// length is then the four arena bytes before the rest.
	longLen = 255
)

// slot is 32 bytes. n is the name's length, zero for an empty slot.
type slot struct {
	n uint8
	// head is the name, zero-padded, when it has at most inlineMax bytes;
	// else its first headLen bytes then the little-endian arena offset of
	// the rest.
	head [inlineMax]byte
	// self is the ruleset applying to the name itself (exact targets and
	// subdomain targets); below applies to every name under it
	// (subdomain targets only). Zero means none.
	self, below uint32
}

// arenaSlack is the spare capacity after the last name that word-wise
// comparison may read.
const arenaSlack = 8

// maxLoad is the load factor past which withRoom rebuilds a table, as
// maxLoadNum/maxLoadDen; newNameTable sizes a table for 0.7.
const maxLoadNum, maxLoadDen = 3, 4

func newNameTable(n, arenaBytes int) nameTable {
	size := max(16, n*10/7+2) &^ 1 // load factor about 0.7, two slots a line
	t := nameTable{
		slots:  make([]slot, size),
		filter: newFilter(n),
		arena:  make([]byte, 0, arenaBytes+arenaSlack),
	}
	adviseHugePages(t.slots)
	adviseHugePages(t.arena[:cap(t.arena)])
	adviseHugePages(t.filter.words)
	return t
}

// newBaseTable returns a table for a base of n names: its filter is set
// by seal once every name is in.
func newBaseTable(n, arenaBytes int) nameTable {
	t := newNameTable(n, arenaBytes)
	t.sealing = true
	t.pending = make([]keys, 0, n)
	return t
}

// arenaBytes is what a name takes in the arena.
func arenaBytes(name string) int {
	switch {
	case len(name) <= inlineMax:
		return 0
	case len(name) < longLen:
		return len(name) - headLen
	}
	return 4 + len(name) - headLen
}

// home is the slot where the probe for a mixed hash starts: the first
// of a cache line's two, so that the probe reads the whole line before
// the next (79% of the names of a table at load 0.7 are in their home
// line, against 73% when a probe may start at a line's second slot).
func (t *nameTable) home(m uint64) int {
	return int(uint64(uint32(m))*uint64(len(t.slots)/2)>>32) * 2
}

// filter is a cache-line-blocked Bloom filter over two sets of keys: the
// stored names and their sites (the last two labels of a stored name),
// three bits a key each. Every suffix a query probes ends in the query's
// own last two labels, so when they are not a site nothing can match,
// and most unblocked queries end after one check.
//
// The bits of a key lie in one word of one 64-byte line, so a check costs
// one memory access (see keyBits). A site's bits are in the line its hash
// selects. In a base table
// (see seal) a name's bits are in its site's line too, so that one line
// answers for every suffix a query probes: whether its two labels are a
// site, and which of its longer suffixes may be stored names. A line that
// a site with too many names for it (a shared suffix such as co.uk)
// selects is marked crowded; the names of the sites of a crowded line are
// filed in the same way under their last three labels (kalo.co.uk), and
// those under a crowded line again in their own lines, as every name is
// in a table built by insert alone (a delta). See nameLine.
type filter struct {
	words []uint64
	lines uint64
}

// newFilter sizes a filter for n names and as many sites at 16 bits a
// key (32 bits a name), for a false positive rate near 1%.
func newFilter(n int) filter {
	lines := max(1, (n*32+511)/512)
	return filter{words: make([]uint64, lines*8), lines: uint64(lines)}
}

// line returns the eight words of the line for a mixed hash.
func (f *filter) line(m uint64) *[8]uint64 {
	i := (m >> 32) * f.lines >> 32 * 8
	return (*[8]uint64)(f.words[i : i+8 : i+8])
}

// A key's bits lie in one 64-bit word of its line (a register-blocked
// filter: one load and one comparison a check), three bits chosen by 21
// bits of its mixed hash as a name, and of a multiple of it as a site:
// independent of the high bits that choose the line. The last bit of a
// word is never a key's, so that the last word's can be the crowd mark
// (see seal); a key drawn on it has one bit less.

// siteKey returns the bits of a site's mixed hash that choose its bits.
func siteKey(m uint64) uint64 { return m * k1 >> 43 }

// keyBits returns the word of a line and the bits in it given by the low
// 21 bits of x.
func keyBits(x uint64) (i, mask uint64) {
	return x & 7, (1<<(x>>3&63) | 1<<(x>>9&63) | 1<<(x>>15&63)) &^ crowdMark
}

func has(w *[8]uint64, x uint64) bool {
	i, mask := keyBits(x)
	return w[i]&mask == mask
}

func set(w *[8]uint64, x uint64) {
	i, mask := keyBits(x)
	w[i] |= mask
}

func hasName(w *[8]uint64, m uint64) bool { return has(w, m) }
func hasSite(w *[8]uint64, m uint64) bool { return has(w, siteKey(m)) }

// crowdMark is the last bit of a line, which no key's bits use: the line
// is crowded.
const crowdMark = 1 << 63

func isCrowded(w *[8]uint64) bool { return w[7]&crowdMark != 0 }

func (f *filter) bytes() int    { return 8 * len(f.words) }
func (f *filter) clone() filter { return filter{words: slices.Clone(f.words), lines: f.lines} }

// crowdLimit is the most names of one site a base table's filter keeps in
// the site's line. A line holds the bits of 16 names and sites on average.
const crowdLimit = 12

// keys are the mixed hashes a name is filed under in a filter: its own,
// those of its last two and last three labels, and its label count.
type keys struct {
	m, s2, s3 uint64
	labels    int
}

// keysOf returns the keys of a canonical name, from one walk over it as
// MatchName walks a query. A name of one label is its own site.
func keysOf(name string) keys {
	var k keys
	var h uint64
	for end := len(name); ; {
		start, lh := labelBefore(name, end)
		h = combine(h, lh)
		k.labels++
		switch k.labels {
		case 2:
			k.s2 = mix(h)
		case 3:
			k.s3 = mix(h)
		}
		if start == 0 {
			k.m = mix(h)
			if k.labels == 1 {
				k.s2 = k.m
			}
			return k
		}
		end = start - 1
	}
}

// nameLine returns the filter line that holds the bits of a name: in a
// base table, its site's line, or if that is crowded the line of its last
// three labels, or if that is crowded too (or the name has only two
// labels) its own; in a delta, its own. MatchName makes the same choice
// as it walks a query.
func (t *nameTable) nameLine(k keys) *[8]uint64 {
	if t.bySite {
		if w := t.filter.line(k.s2); !isCrowded(w) {
			return w
		}
		if k.labels >= 3 {
			if w := t.filter.line(k.s3); !isCrowded(w) {
				return w
			}
		}
	}
	return t.filter.line(k.m)
}

// mayHave reports whether the table may hold a name of the given keys.
func (t *nameTable) mayHave(k keys) bool { return hasName(t.nameLine(k), k.m) }

// mayHaveSite reports whether a stored name may end in the two labels of
// mixed hash s2.
func (t *nameTable) mayHaveSite(s2 uint64) bool { return hasSite(t.filter.line(s2), s2) }

// file sets the filter bits of a name: its site's, the site bits of its
// last three labels if its site's line is crowded (in a base table), and
// its own in the line nameLine chooses. It never sets a crowd mark.
func (t *nameTable) file(k keys) {
	w := t.filter.line(k.s2)
	set(w, siteKey(k.s2))
	if t.bySite && isCrowded(w) && k.labels >= 3 {
		set(t.filter.line(k.s3), siteKey(k.s3))
	}
	set(t.nameLine(k), k.m)
}

// find returns the slot of a canonical name.
func (t *nameTable) find(name string) *slot {
	k := keysOf(name)
	if !t.mayHave(k) {
		return nil
	}
	return t.findMixed(k.m, name, 0, len(name))
}

// seal sets the filter bits of a base table once every name is in. Sites
// of more than crowdLimit names mark their lines crowded; then, of the
// names under a crowded line, the last three labels that more than
// crowdLimit names share mark theirs; then every name is filed. Sites are
// counted in saturating counters indexed by hash, which may only
// overcount. Every crowd mark is set before any name is filed, and no
// key's bits use the mark's bit: the marks a lookup reads are those the
// filing read. Deltas never write to a base table.
func (t *nameTable) seal() {
	p := t.pending
	t.pending, t.sealing = nil, false
	counts := make([]uint8, max(64, 2*len(p)))
	idx := func(h uint64) uint64 { return uint64(uint32(h)) * uint64(len(counts)) >> 32 }
	count := func(h uint64) {
		if c := &counts[idx(h)]; *c < 255 {
			*c++
		}
	}
	for _, k := range p {
		count(k.s2)
	}
	for _, k := range p {
		if counts[idx(k.s2)] > crowdLimit {
			t.filter.line(k.s2)[7] |= crowdMark
		}
	}
	clear(counts)
	under := func(k keys) bool { return k.labels >= 3 && isCrowded(t.filter.line(k.s2)) }
	for _, k := range p {
		if under(k) {
			count(k.s3)
		}
	}
	for _, k := range p {
		if under(k) && counts[idx(k.s3)] > crowdLimit {
			t.filter.line(k.s3)[7] |= crowdMark
		}
	}
	t.bySite = true
	for _, k := range p {
		t.file(k)
	}
}

// findMixed returns the slot of name[start:end] given its mixed hash,
// comparing the query bytes case-insensitively against the stored
// lower-case name. The filter is not consulted.
func (t *nameTable) findMixed(m uint64, name string, start, end int) *slot {
	n := end - start
	nb := uint8(min(n, longLen))
	i := t.home(m)
	for {
		s := &t.slots[i]
		if s.n == 0 {
			return nil
		}
		if s.n == nb && t.equal(s, name, start, end) {
			return s
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
}

// load64 reads eight bytes at p+i.
func load64(p unsafe.Pointer, i int) uint64 { return *(*uint64)(unsafe.Add(p, i)) }

// equal compares name[start:end], case-insensitively, with the lower-case
// name of a slot whose length byte matches, eight bytes at a time. The
// slot's head is read in words that stay inside the slot; the arena has
// eight bytes of slack past its last name.
func (t *nameTable) equal(s *slot, name string, start, end int) bool {
	n := end - start
	q := unsafe.Pointer(unsafe.StringData(name))
	h := unsafe.Pointer(&s.head)
	lim := min(n, headLen)
	if n <= inlineMax {
		lim = n
	}
	i := 0
	for ; lim-i >= 8; i += 8 {
		if lower8(load64(q, start+i)) != load64(h, i) {
			return false
		}
	}
	if i < lim {
		mask := uint64(1)<<(8*(lim-i)) - 1
		if lower8(tail(name, q, start+i, start+lim)) != load64(h, i)&mask {
			return false
		}
	}
	if n <= inlineMax {
		return true
	}
	off := int(binary.LittleEndian.Uint32(s.head[headLen:]))
	if s.n == longLen {
		if int(binary.LittleEndian.Uint32(t.arena[off:])) != n {
			return false
		}
		off += 4
	}
	a := unsafe.Pointer(&t.arena[off])
	rest := n - headLen
	q = unsafe.Add(q, start+headLen)
	i = 0
	for ; rest-i >= 8; i += 8 {
		if lower8(load64(q, i)) != load64(a, i) {
			return false
		}
	}
	if i < rest {
		mask := uint64(1)<<(8*(rest-i)) - 1
		return lower8(tail(name, unsafe.Pointer(unsafe.StringData(name)), start+headLen+i, end)) == load64(a, i)&mask
	}
	return true
}

// insert returns the slot for a canonical name, adding it if absent.
func (t *nameTable) insert(name string) *slot {
	return t.insertKeys(keysOf(name), name)
}

// insertKeys is insert given the name's keys.
func (t *nameTable) insertKeys(k keys, name string) *slot {
	m := k.m
	i := t.home(m)
	for t.slots[i].n != 0 {
		if s := &t.slots[i]; int(s.n) == min(len(name), longLen) && t.equal(s, name, 0, len(name)) {
			return s
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
	s := &t.slots[i]
	s.n = uint8(min(len(name), longLen))
	if len(name) <= inlineMax {
		copy(s.head[:], name)
	} else {
		copy(s.head[:headLen], name)
		binary.LittleEndian.PutUint32(s.head[headLen:], uint32(len(t.arena)))
		if need := arenaBytes(name) + arenaSlack; cap(t.arena)-len(t.arena) < need {
			grown := make([]byte, len(t.arena), 2*cap(t.arena)+need)
			copy(grown, t.arena)
			t.arena = grown
		}
		if len(name) >= longLen {
			t.arena = binary.LittleEndian.AppendUint32(t.arena, uint32(len(name)))
		}
		t.arena = append(t.arena, name[headLen:]...)
	}
	if t.sealing {
		t.pending = append(t.pending, k)
	} else {
		t.file(k)
	}
	t.count++
	t.maxLabels = max(t.maxLabels, k.labels)
	return s
}

// bytes is the memory the table holds.
func (t *nameTable) bytes() int {
	return len(t.slots)*int(unsafe.Sizeof(slot{})) + cap(t.arena) + t.filter.bytes()
}

// withRoom returns a copy of t with room for n more names taking
// arenaBytes more arena bytes. The copy shares nothing with t, which
// snapshots may still be reading: below the load limit the arrays are
// copied as they are; past it the table is rebuilt at twice the size.
func (t *nameTable) withRoom(n, arenaBytes int) nameTable {
	if (t.count+n)*maxLoadDen <= len(t.slots)*maxLoadNum {
		c := *t
		c.slots = slices.Clone(t.slots)
		c.filter = t.filter.clone()
		c.arena = make([]byte, len(t.arena), len(t.arena)+arenaBytes+arenaSlack)
		copy(c.arena, t.arena)
		return c
	}
	g := newNameTable(2*(t.count+n), len(t.arena)+arenaBytes)
	for i := range t.slots {
		sl := &t.slots[i]
		if sl.n == 0 {
			continue
		}
		name := t.name(sl)
		ns := g.insert(name)
		ns.self, ns.below = sl.self, sl.below
	}
	return g
}

// name returns the name stored in a slot.
func (t *nameTable) name(sl *slot) string {
	n := int(sl.n)
	if n <= inlineMax {
		return string(sl.head[:n])
	}
	off := int(binary.LittleEndian.Uint32(sl.head[headLen:]))
	if n == longLen {
		n = int(binary.LittleEndian.Uint32(t.arena[off:]))
		off += 4
	}
	return string(sl.head[:headLen]) + string(t.arena[off:off+n-headLen])
}
