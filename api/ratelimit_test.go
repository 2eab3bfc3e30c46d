package api

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/writ-project/writ/internal/clientip"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestLimiterBurstThenRate(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(2, 3, 100, 0, clock.Now)
	a := addr("192.0.2.1")
	for i := range 3 {
		if ok, _ := l.allow(a); !ok {
			t.Fatalf("request %d of a burst of 3 refused", i+1)
		}
	}
	ok, wait := l.allow(a)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("fourth request: allowed %v, wait %v; want refused, 500ms", ok, wait)
	}
	// A refused request spends nothing: the wait only shrinks.
	clock.Advance(499 * time.Millisecond)
	if ok, wait := l.allow(a); ok || wait != time.Millisecond {
		t.Fatalf("after 499ms: allowed %v, wait %v; want refused, 1ms", ok, wait)
	}
	clock.Advance(time.Millisecond)
	if ok, _ := l.allow(a); !ok {
		t.Fatal("refused once a token was back")
	}
	if ok, _ := l.allow(a); ok {
		t.Fatal("two requests on one refilled token")
	}
	// Idle for long, the bucket holds the burst and no more.
	clock.Advance(time.Hour)
	for i := range 3 {
		if ok, _ := l.allow(a); !ok {
			t.Fatalf("after an hour, request %d refused", i+1)
		}
	}
	if ok, _ := l.allow(a); ok {
		t.Fatal("the bucket held more than the burst")
	}
	// Another address has its own bucket.
	if ok, _ := l.allow(addr("192.0.2.2")); !ok {
		t.Fatal("another address refused")
	}
}

func TestLimiterHasSpendsNothing(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(1, 2, 100, 0, clock.Now)
	a := addr("192.0.2.1")
	for range 5 {
		if ok, _ := l.has(a); !ok {
			t.Fatal("has: a fresh address has no token")
		}
	}
	if n := l.clients(); n != 0 {
		t.Errorf("has remembered %d addresses; it should remember none", n)
	}
	l.allow(a)
	l.allow(a)
	if ok, wait := l.has(a); ok || wait != time.Second {
		t.Errorf("has after the burst: %v, wait %v; want false, 1s", ok, wait)
	}
}

// TestLimiterEvictsLeastRecentlySeen fills one shard past its size: the
// client seen longest ago is forgotten, the others keep their state.
func TestLimiterEvictsLeastRecentlySeen(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(1.0/3600, 1, 3, 1, clock.Now)
	drain := func(s string) {
		t.Helper()
		if ok, _ := l.allow(addr(s)); !ok {
			t.Fatalf("%s: first request refused", s)
		}
		if ok, _ := l.allow(addr(s)); ok {
			t.Fatalf("%s: second request allowed", s)
		}
	}
	drain("192.0.2.1")         // a
	drain("192.0.2.2")         // b
	drain("192.0.2.3")         // c
	l.allow(addr("192.0.2.1")) // a is seen again: b is now the oldest
	drain("192.0.2.4")         // d takes b's place
	if n := l.clients(); n != 3 {
		t.Fatalf("%d clients remembered, want 3", n)
	}
	// b was forgotten: it starts afresh (and c, now the oldest, goes).
	if ok, _ := l.allow(addr("192.0.2.2")); !ok {
		t.Error("the evicted client did not start with a full bucket")
	}
	for _, s := range []string{"192.0.2.1", "192.0.2.4"} {
		if ok, _ := l.allow(addr(s)); ok {
			t.Errorf("%s: a recently seen, drained client was forgotten", s)
		}
	}
	if ok, _ := l.allow(addr("192.0.2.3")); !ok {
		t.Error("c, least recently seen, was not the one evicted")
	}
}

// TestLimiterForgetsIdleClients: clients whose buckets are full again are
// dropped as later requests come, so the table shrinks back.
func TestLimiterForgetsIdleClients(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(1, 2, 1000, 1, clock.Now)
	for i := range 50 {
		l.allow(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}))
	}
	if n := l.clients(); n != 50 {
		t.Fatalf("%d clients, want 50", n)
	}
	clock.Advance(2 * time.Second) // every bucket is full again
	for range 25 {
		l.allow(addr("203.0.113.1"))
	}
	if n := l.clients(); n != 1 {
		t.Errorf("%d clients remembered after the others went idle, want 1", n)
	}
	// Clients still short of tokens are kept.
	l.allow(addr("203.0.113.2"))
	l.allow(addr("203.0.113.2"))
	for range 10 {
		l.allow(addr("203.0.113.3"))
	}
	if ok, _ := l.allow(addr("203.0.113.2")); ok {
		t.Error("a drained client was forgotten while not idle")
	}
}

// TestLimiterBoundedAcrossShards: however many addresses come, no more
// than maxClients are remembered, split over the shards.
func TestLimiterBoundedAcrossShards(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(1.0/3600, 1, 256, 8, clock.Now)
	total := 0
	for i := range l.shards {
		total += l.shards[i].max
	}
	if total != 256 {
		t.Fatalf("shards hold %d in all, want 256", total)
	}
	for i := range 10000 {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.allow(a)
	}
	if n := l.clients(); n > 256 || n < 200 {
		t.Errorf("%d clients remembered, want at most 256 (and the shards nearly full)", n)
	}
	for i := range l.shards {
		sh := &l.shards[i]
		if len(sh.index) > sh.max || len(sh.buckets) > sh.max {
			t.Errorf("shard %d: %d entries, %d slots, max %d", i, len(sh.index), len(sh.buckets), sh.max)
		}
	}
	// The default sharding: one shard per 1024 clients, at most 64.
	for _, tc := range []struct{ clients, shards int }{{65536, 64}, {8192, 8}, {100, 1}, {1 << 20, 64}} {
		if got := len(newLimiter(1, 1, tc.clients, 0, nil).shards); got != tc.shards {
			t.Errorf("%d clients: %d shards, want %d", tc.clients, got, tc.shards)
		}
	}
}

// TestLimiterConcurrent: requests racing for one bucket get exactly the
// burst between them.
func TestLimiterConcurrent(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter(1, 100, 1000, 4, clock.Now)
	var wg sync.WaitGroup
	allowed := make([]int, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if ok, _ := l.allow(addr("192.0.2.1")); ok {
					allowed[g]++
				}
				// Other addresses in between, some in the same shard.
				l.allow(netip.AddrFrom4([4]byte{198, 51, byte(g), byte(i)}))
			}
		})
	}
	wg.Wait()
	sum := 0
	for _, n := range allowed {
		sum += n
	}
	if sum != 100 {
		t.Errorf("%d requests allowed from a burst of 100", sum)
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		wait time.Duration
		want int
	}{{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1200 * time.Millisecond, 2}, {30 * time.Minute, 1800}} {
		if got := retryAfter(tc.wait); got != tc.want {
			t.Errorf("retryAfter(%v) = %d, want %d", tc.wait, got, tc.want)
		}
	}
}

func TestClientAddress(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	for _, tc := range []struct {
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"192.0.2.7:4711", nil, nil, "192.0.2.7"},
		{"[::ffff:192.0.2.7]:4711", nil, nil, "192.0.2.7"},
		// One IPv6 client holds a /64.
		{"[2001:db8:1:2:3:4:5:6]:4711", nil, nil, "2001:db8:1:2::"},
		{"[fe80::1%eth0]:4711", nil, nil, "fe80::"},
		// Proxy headers from a peer that is not trusted are not believed.
		{"192.0.2.7:4711", []string{"198.51.100.1"}, nil, "192.0.2.7"},
		{"192.0.2.7:4711", []string{"198.51.100.1"}, proxies, "192.0.2.7"},
		// From a trusted proxy: the nearest address it did not add itself.
		{"10.1.1.1:4711", []string{"198.51.100.1"}, proxies, "198.51.100.1"},
		{"10.1.1.1:4711", []string{"203.0.113.9, 198.51.100.1, 10.2.2.2"}, proxies, "198.51.100.1"},
		{"10.1.1.1:4711", []string{"203.0.113.9", "198.51.100.1, 10.2.2.2"}, proxies, "198.51.100.1"},
		{"10.1.1.1:4711", []string{"2001:db8:1:2::99"}, proxies, "2001:db8:1:2::"},
		// A spoofed entry left of the client's own address changes nothing.
		{"10.1.1.1:4711", []string{"10.9.9.9, 198.51.100.1"}, proxies, "198.51.100.1"},
		// Garbage stops the walk at the last address vouched for.
		{"10.1.1.1:4711", []string{"198.51.100.1, not-an-address, 10.2.2.2"}, proxies, "10.2.2.2"},
		{"10.1.1.1:4711", nil, proxies, "10.1.1.1"},
		{"10.1.1.1:4711", []string{"10.2.2.2"}, proxies, "10.2.2.2"},
	} {
		t.Run(fmt.Sprint(tc.remote, tc.xff, len(tc.trusted)), func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, h := range tc.xff {
				r.Header.Add("X-Forwarded-For", h)
			}
			clients, err := clientip.New(tc.trusted, "")
			if err != nil {
				t.Fatal(err)
			}
			if got := clientAddress(r, clients); got != addr(tc.want) {
				t.Errorf("client %s, want %s", got, tc.want)
			}
		})
	}
}

func BenchmarkLimiterAllow(b *testing.B) {
	l := newLimiter(1e9, 1<<30, DefaultMaxClients, 0, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			l.allow(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}))
			i++
		}
	})
}
