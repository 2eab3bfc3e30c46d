package policy

import (
	"math/bits"
	"unsafe"
)

// Names are hashed label by label, from the last label to the first: the
// hash of a suffix combines the hash of its leftmost label with the hash
// of the suffix to its right. One backward pass over a query name thus
// yields the hash of every ancestor domain, each of which may be a target
// covering its subdomains. Labels are hashed eight bytes at a time from
// their end, as the pass reads them (see labelBefore), lower-cased on the
// fly, so case never has to be folded in a copy.

const (
	k0 = 0x9e3779b97f4a7c15
	k1 = 0xbf58476d1ce4e5b9
	k2 = 0x94d049bb133111eb
)

// mix spreads a suffix hash's entropy over all 64 bits before it
// indexes the table and the filter: one multiply, folded both ways.
func mix(h uint64) uint64 {
	h ^= h >> 32
	h *= 0xd6e8feb86659fd93
	h ^= h >> 32
	return h
}

// combine folds the hash of a label into the hash of the suffix to its
// right (zero for the root).
func combine(suffix, label uint64) uint64 {
	return bits.RotateLeft64((suffix^label)*k2, 29) + k0
}

// labelBefore returns the start of the label that ends at end (the byte
// after the last unescaped dot of name[:end], or 0) and the label's hash.
//
// It reads the name backwards eight bytes at a time, and a label is
// hashed in the same words, from its end: each full word, then the bytes
// of the label in the word that holds its dot (or the name's first
// bytes). So a label of up to seven bytes, the most common, is found and
// hashed from one load. The length is not hashed: labels that differ only
// in trailing NUL bytes may collide, which costs a comparison, as any
// collision does. Lower-casing on the fly makes the hash case-blind.
//
// A dot preceded by a backslash is checked for escaping: an escaped dot,
// as in "a\\.b", is not a label boundary.
func labelBefore(name string, end int) (start int, h uint64) {
	p := unsafe.Pointer(unsafe.StringData(name))
	h = k0
	for e := end; ; {
		base := e - 8
		var w uint64
		if base >= 0 {
			w = *(*uint64)(unsafe.Add(p, base))
		} else {
			base = 0
			w = tail(name, p, 0, e) // zero padding is not a dot
		}
		for m := dotBytes(w); m != 0; {
			b := 63 - bits.LeadingZeros64(m)
			i := base + b>>3
			if i == 0 || name[i-1] != '\\' || !escapedAt(name, i) {
				if i+1 < e {
					h = foldLabel(h, w>>(b+1))
				}
				return i + 1, h
			}
			m &^= 1 << b
		}
		if e > 0 {
			h = foldLabel(h, w)
		}
		if base == 0 {
			return 0, h
		}
		e = base
	}
}

// foldLabel folds up to eight bytes of a label into its hash.
func foldLabel(h, w uint64) uint64 {
	return bits.RotateLeft64((h^lower8(w))*k1, 31)
}

// dotBytes returns w with the high bit of each byte that is a dot set,
// and every other bit clear.
func dotBytes(w uint64) uint64 {
	const (
		low7 = 0x7f7f7f7f7f7f7f7f
		dots = 0x2e2e2e2e2e2e2e2e
		high = 0x8080808080808080
	)
	x := w ^ dots
	return ^((x&low7 + low7) | x | low7) & high
}

// tail returns name[i:end], fewer than eight bytes, as a little-endian
// word with zero high bytes, reading only bytes inside the string.
func tail(name string, p unsafe.Pointer, i, end int) uint64 {
	n := end - i
	if end >= 8 {
		// Load the eight bytes ending at end and shift away the ones
		// before i: one load instead of a byte loop.
		return *(*uint64)(unsafe.Add(p, end-8)) >> (8 * (8 - n))
	}
	if len(name)-i >= 8 {
		// or the eight starting at i, masking away the ones from end
		return *(*uint64)(unsafe.Add(p, i)) & (1<<(8*n) - 1)
	}
	var w uint64
	for k := n - 1; k >= 0; k-- {
		w = w<<8 | uint64(name[i+k])
	}
	return w
}

// lower8 lower-cases the ASCII letters among eight bytes at once; other
// bytes are unchanged.
func lower8(x uint64) uint64 {
	const (
		ones = 0x0101010101010101
		high = 0x8080808080808080
	)
	h := x &^ high
	geA := h + ones*(0x80-'A')
	gtZ := h + ones*(0x80-'Z'-1)
	upper := geA &^ gtZ &^ x & high
	return x | upper>>2
}

// escapedAt reports whether the byte at i is escaped by an odd run of
// backslashes before it, as in the label "a\\.b".
func escapedAt(name string, i int) bool {
	n := 0
	for j := i - 1; j >= 0 && name[j] == '\\'; j-- {
		n++
	}
	return n%2 == 1
}
