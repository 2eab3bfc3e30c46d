package registry

import (
	"sync"
	"time"

	"github.com/writ-project/writ/access"
)

// AuthCacheTTL is how long a successful authentication is remembered,
// so that a stream of requests from one client does not read the store
// for each. Credentials changed through this node's registry take effect
// at once; changed on another node sharing the store, within this time.
const AuthCacheTTL = time.Second

// authCacheMax bounds the remembered credentials: past it, all are
// forgotten at once, which costs a store read each and nothing more.
const authCacheMax = 4096

// authCache remembers principals by token hash. Only successes are
// kept: a refused token is looked up again each time, so that a
// credential just created works at once and guessing fills no memory.
type authCache struct {
	mu      sync.Mutex
	entries map[string]authEntry
	// gen counts forget calls: a lookup that began before one does not
	// put what it read.
	gen uint64
}

type authEntry struct {
	p  access.Principal
	at time.Time
}

// get returns the principal remembered for hash, or false and the
// generation to hand to put.
func (c *authCache) get(hash string, now time.Time) (access.Principal, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[hash]
	if !ok || now.Before(e.at) || now.Sub(e.at) >= AuthCacheTTL {
		return access.Principal{}, c.gen, false
	}
	return e.p, c.gen, true
}

// put remembers p, read from the store since get returned gen.
func (c *authCache) put(hash string, p access.Principal, now time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return // a principal changed meanwhile: p may be stale
	}
	if c.entries == nil || len(c.entries) >= authCacheMax {
		c.entries = map[string]authEntry{}
	}
	c.entries[hash] = authEntry{p, now}
}

// forget drops every entry: a principal changed.
func (c *authCache) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
	c.gen++
}
