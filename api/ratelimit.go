package api

import (
	"hash/maphash"
	"math"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/writ-project/writ/internal/clientip"
)

// limiter is a token bucket per client address: each holds up to burst
// tokens and refills at rate tokens a second; a request spends one.
//
// Memory is bounded: the buckets are split into shards by a seeded hash
// of the address, each shard keeps at most its share of maxClients
// buckets in least-recently-used order, and a full shard forgets its
// least recently seen client to make room. A bucket that has refilled to
// burst is the same as no bucket at all, so idle clients are forgotten
// as they are met at the cold end of the list, without loss. A request
// locks one shard only; there is no lock over the whole limiter.
type limiter struct {
	rate   float64 // tokens a second
	burst  float64
	now    func() time.Time
	epoch  time.Time
	seed   maphash.Seed
	shards []limiterShard
}

// limiterShard is one lock's worth of buckets, kept in a slice and
// threaded into a doubly linked list, most recently used first, by
// index: no allocation once the shard has grown to its size.
type limiterShard struct {
	mu      sync.Mutex
	index   map[netip.Addr]int32
	buckets []bucket
	head    int32 // most recently used; -1 when empty
	tail    int32 // least recently used
	free    int32 // first free slot, chained through next; -1 for none
	max     int
	_       [64]byte // keeps neighbouring shards' locks off one cache line
}

type bucket struct {
	key        netip.Addr
	tokens     float64
	at         time.Duration // since the limiter's epoch
	prev, next int32
}

// newLimiter returns a limiter of burst requests refilled at rate a
// second, remembering at most maxClients addresses in the given number
// of shards (0: one per 1024 clients, at most 64). now is the clock; nil
// is time.Now.
func newLimiter(rate float64, burst, maxClients, shards int, now func() time.Time) *limiter {
	if now == nil {
		now = time.Now
	}
	if burst < 1 {
		burst = 1
	}
	if maxClients < 1 {
		maxClients = DefaultMaxClients
	}
	if shards <= 0 {
		shards = min(64, max(1, maxClients/1024))
	}
	shards = min(shards, maxClients)
	l := &limiter{rate: rate, burst: float64(burst), now: now, epoch: now(), seed: maphash.MakeSeed(), shards: make([]limiterShard, shards)}
	for i := range l.shards {
		sh := &l.shards[i]
		// The first shards take one more each when maxClients does not
		// divide evenly, so that they hold maxClients in all.
		sh.max = maxClients / shards
		if i < maxClients%shards {
			sh.max++
		}
		sh.index = make(map[netip.Addr]int32)
		sh.head, sh.tail, sh.free = -1, -1, -1
	}
	return l
}

// allow spends a token of key's bucket. When the bucket is empty it
// returns false and how long until a token is back.
func (l *limiter) allow(key netip.Addr) (bool, time.Duration) {
	return l.take(key, true)
}

// has reports whether key's bucket holds a token, without spending it.
func (l *limiter) has(key netip.Addr) (bool, time.Duration) {
	return l.take(key, false)
}

func (l *limiter) take(key netip.Addr, spend bool) (bool, time.Duration) {
	now := l.now().Sub(l.epoch)
	sh := &l.shards[maphash.Comparable(l.seed, key)%uint64(len(l.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i, ok := sh.index[key]
	if !ok {
		if !spend {
			// An unknown client has a full bucket.
			return true, 0
		}
		i = sh.insert(key, l.burst, now)
	} else {
		sh.touch(i)
	}
	b := &sh.buckets[i]
	b.tokens = l.refill(b, now)
	b.at = now
	ok = b.tokens >= 1
	if ok && spend {
		b.tokens--
	}
	// Forget a client or two at the cold end whose buckets are full again:
	// the table shrinks back as clients go quiet.
	for range 2 {
		if sh.tail < 0 || sh.tail == i || l.refill(&sh.buckets[sh.tail], now) < l.burst {
			break
		}
		sh.remove(sh.tail)
	}
	if ok {
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// refill is the bucket's tokens at now.
func (l *limiter) refill(b *bucket, now time.Duration) float64 {
	return min(l.burst, b.tokens+(now-b.at).Seconds()*l.rate)
}

// clients is the number of addresses the limiter remembers.
func (l *limiter) clients() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.index)
		sh.mu.Unlock()
	}
	return n
}

// insert adds key at the head, evicting the least recently used bucket
// if the shard is full, and returns its slot.
func (sh *limiterShard) insert(key netip.Addr, tokens float64, now time.Duration) int32 {
	if len(sh.index) >= sh.max {
		sh.remove(sh.tail)
	}
	var i int32
	if sh.free >= 0 {
		i = sh.free
		sh.free = sh.buckets[i].next
	} else {
		sh.buckets = append(sh.buckets, bucket{})
		i = int32(len(sh.buckets) - 1)
	}
	sh.buckets[i] = bucket{key: key, tokens: tokens, at: now, prev: -1, next: sh.head}
	if sh.head >= 0 {
		sh.buckets[sh.head].prev = i
	}
	sh.head = i
	if sh.tail < 0 {
		sh.tail = i
	}
	sh.index[key] = i
	return i
}

// touch moves slot i to the head.
func (sh *limiterShard) touch(i int32) {
	if sh.head == i {
		return
	}
	sh.unlink(i)
	b := &sh.buckets[i]
	b.prev, b.next = -1, sh.head
	sh.buckets[sh.head].prev = i
	sh.head = i
}

// remove forgets slot i and puts it on the free list.
func (sh *limiterShard) remove(i int32) {
	sh.unlink(i)
	delete(sh.index, sh.buckets[i].key)
	sh.buckets[i] = bucket{next: sh.free}
	sh.free = i
}

func (sh *limiterShard) unlink(i int32) {
	b := &sh.buckets[i]
	if b.prev >= 0 {
		sh.buckets[b.prev].next = b.next
	} else {
		sh.head = b.next
	}
	if b.next >= 0 {
		sh.buckets[b.next].prev = b.prev
	} else {
		sh.tail = b.prev
	}
}

// retryAfter is the Retry-After value for a wait: whole seconds, at
// least one.
func retryAfter(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// clientAddress is what rate limits count requests against: the
// address of the TCP peer or, when the peer is a trusted proxy, the
// nearest address in its header that is not one (clientip; past a hop
// that names no address, the nearest one vouched for), and for IPv6 its
// /64, since one client usually holds a whole /64. A nil resolver
// trusts no proxy.
func clientAddress(r *http.Request, clients *clientip.Resolver) netip.Addr {
	a := remoteAddr(r)
	if clients != nil {
		a, _ = clients.Client(a, r.Header)
	}
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// remoteAddr is the TCP peer's address, or the zero Addr if it cannot
// be parsed (all such requests then share one bucket).
func remoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.WithZone("").Unmap()
}
