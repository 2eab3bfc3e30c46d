package policy

import (
	"math/bits"
	"unsafe"
)

// Names are hashed label by label, from the last label to the first: the
// hash of a suffix combines the hash of its leftmost label with the hash
// of the suffix to its right. One backward pass over a query name thus
// yields the hash of every ancestor domain, each of which may be a target
// covering its subdomains. Labels are hashed eight bytes at a time,
// lower-cased on the fly, so case never has to be folded in a copy.

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

// hashLabel hashes name[start:end] case-insensitively.
func hashLabel(name string, start, end int) uint64 {
	h := uint64(end-start+1) * k0
	p := unsafe.Pointer(unsafe.StringData(name))
	if end-start <= 8 && end >= 8 {
		// The common short label: one load.
		return bits.RotateLeft64((h^lower8(*(*uint64)(unsafe.Add(p, end-8))>>(8*(8-(end-start)))))*k1, 31)
	}
	i := start
	for ; end-i >= 8; i += 8 {
		h = bits.RotateLeft64((h^lower8(*(*uint64)(unsafe.Add(p, i))))*k1, 31)
	}
	if i < end {
		h = bits.RotateLeft64((h^lower8(tail(name, p, i, end)))*k1, 31)
	}
	return h
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

// hashName returns the suffix hash of a whole canonical name (no escapes,
// no trailing dot), as a query walk computes it.
func hashName(name string) uint64 {
	var h uint64
	end := len(name)
	for i := len(name) - 1; i >= -1; i-- {
		if i >= 0 && name[i] != '.' {
			continue
		}
		h = combine(h, hashLabel(name, i+1, end))
		end = i
	}
	return h
}

func lower(b byte) byte {
	if 'A' <= b && b <= 'Z' {
		return b + ('a' - 'A')
	}
	return b
}

// dotPositions writes to pos the offsets of the unescaped dots of
// name[:n], scanning eight bytes at a time, and returns how many there
// are (at most len(pos) are written). A name with a backslash is rescanned
// byte by byte, since an escaped dot is not a label boundary.
func dotPositions(name string, n int, pos *[maxLabelsQueried]uint16) int {
	const (
		low7       = 0x7f7f7f7f7f7f7f7f
		dots       = 0x2e2e2e2e2e2e2e2e
		backslashs = 0x5c5c5c5c5c5c5c5c
		high       = 0x8080808080808080
	)
	p := unsafe.Pointer(unsafe.StringData(name))
	count := 0
	for i := 0; i < n; i += 8 {
		var w uint64
		if n-i >= 8 {
			w = *(*uint64)(unsafe.Add(p, i))
		} else {
			w = tail(name, p, i, n)
		}
		// zero bytes of x mark dots; tail padding is zero, not a dot
		x := w ^ dots
		m := ^((x&low7 + low7) | x | low7) & high
		y := w ^ backslashs
		if ^((y&low7+low7)|y|low7)&high != 0 {
			return escapedDotPositions(name, n, pos)
		}
		for m != 0 {
			if count < len(pos) {
				pos[count] = uint16(i + bits.TrailingZeros64(m)/8)
			}
			count++
			m &= m - 1
		}
	}
	return count
}

func escapedDotPositions(name string, n int, pos *[maxLabelsQueried]uint16) int {
	count := 0
	for i := 0; i < n; i++ {
		if name[i] != '.' || escapedAt(name, i) {
			continue
		}
		if count < len(pos) {
			pos[count] = uint16(i)
		}
		count++
	}
	return count
}
