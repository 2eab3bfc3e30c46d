package rpz

// SerialLess reports whether serial a comes before serial b in the
// sequence-space arithmetic of RFC 1982, in which serials wrap from
// 4294967295 to 0. Serials exactly 2^31 apart are not comparable; it
// reports false for them.
func SerialLess(a, b uint32) bool {
	return a != b && int32(b-a) > 0
}
