package dnsserver

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
)

// rateLimiter is response rate limiting (RRL) per client prefix. It
// counts the responses each prefix gets in the current second, in a
// fixed-size table of atomic counters: a check is a hash, a few atomic
// loads and one compare-and-swap, with no lock and no allocation, so the
// fast path stays as it was. The table is set-associative: a prefix new
// to its set takes the place of the one that got the fewest responses
// this second, so that a flood from many forged sources cannot push out
// the count of the prefix it is aimed at. Counts are approximate when two
// prefixes race for one place, which can only lighten a limit for a
// second.
type rateLimiter struct {
	limit        uint32
	slip         uint32 // 0: never send a limited response
	bits4, bits6 int
	exempt       []netip.Prefix
	seed         uint64
	sets         []rateSet
	mask         uint64
}

// rateWays is the number of places a prefix may take in the table: one
// set of four is one 64-byte cache line.
const rateWays = 4

type rateSet struct {
	ways [rateWays]rateSlot
}

type rateSlot struct {
	key atomic.Uint64 // the prefix's key (see key); 0: free
	// state is the second counted (Unix time, upper 32 bits) and the
	// responses counted in it (lower 32 bits).
	state atomic.Uint64
}

// rateAction is what to do with a response.
type rateAction uint8

const (
	rateAllow rateAction = iota
	rateSlip             // send it truncated
	rateDrop             // send nothing
)

// newRateLimiter returns the limiter of cfg (defaults filled in), or nil
// when responses are not limited.
func newRateLimiter(cfg RateLimit) *rateLimiter {
	if cfg.ResponsesPerSecond < 0 {
		return nil
	}
	sets := 1
	for sets*rateWays < cfg.MaxClients {
		sets <<= 1
	}
	l := &rateLimiter{
		limit:  uint32(min(cfg.ResponsesPerSecond, math.MaxUint32)),
		bits4:  cfg.IPv4PrefixLen,
		bits6:  cfg.IPv6PrefixLen,
		exempt: cfg.Exempt,
		seed:   rand.Uint64(),
		sets:   make([]rateSet, sets),
		mask:   uint64(sets - 1),
	}
	if cfg.Slip > 0 {
		l.slip = uint32(cfg.Slip)
	}
	return l
}

// check counts a response to client at second now (Unix time) and says
// whether to send it, send it truncated, or drop it.
func (l *rateLimiter) check(client netip.Addr, now int64) rateAction {
	for _, p := range l.exempt {
		if p.Contains(client) {
			return rateAllow
		}
	}
	key := l.key(client)
	sec := uint32(now)
	slot := l.slot(key, sec)
	var n uint32
	for {
		old := slot.state.Load()
		next := uint64(sec)<<32 | 1
		if uint32(old>>32) == sec {
			if n = uint32(old); n == math.MaxUint32 {
				break
			}
			next = old + 1
		} else {
			n = 0
		}
		if slot.state.CompareAndSwap(old, next) {
			n++
			break
		}
	}
	switch {
	case n <= l.limit:
		return rateAllow
	case l.slip > 0 && (n-l.limit)%l.slip == 0:
		return rateSlip
	}
	return rateDrop
}

// slot returns the place that counts key, taking one for it if it has
// none: a free one, else the one that counted the fewest responses in
// second sec.
func (l *rateLimiter) slot(key uint64, sec uint32) *rateSlot {
	set := &l.sets[mix64(key^l.seed)&l.mask]
	var (
		victim *rateSlot
		fewest = uint64(math.MaxUint64)
	)
	for i := range set.ways {
		w := &set.ways[i]
		k := w.key.Load()
		if k == key {
			return w
		}
		var n uint64
		if st := w.state.Load(); k != 0 && uint32(st>>32) == sec {
			n = uint64(uint32(st))
		}
		if n < fewest {
			victim, fewest = w, n
		}
	}
	victim.key.Store(key)
	victim.state.Store(uint64(sec) << 32)
	return victim
}

// key returns a non-zero key for client's prefix. An IPv4 prefix is its
// bits with a mark above them; an IPv6 prefix is hashed to 64 bits.
func (l *rateLimiter) key(client netip.Addr) uint64 {
	if client.Is4() {
		a := client.As4()
		v := binary.BigEndian.Uint32(a[:]) &^ (math.MaxUint32 >> l.bits4)
		return 1<<32 | uint64(v)
	}
	a := client.As16()
	hi, lo := binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
	if l.bits6 <= 64 {
		hi &^= math.MaxUint64 >> l.bits6
		lo = 0
	} else {
		lo &^= math.MaxUint64 >> (l.bits6 - 64)
	}
	k := mix64(hi) ^ lo*0x9e3779b97f4a7c15 | 1<<63
	return k
}

// mix64 is a 64-bit finaliser: every input bit affects every output bit.
func mix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
