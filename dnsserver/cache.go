package dnsserver

import (
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// cache holds upstream answers for their TTL, bounded in entries. It is
// split into shards, each with its own lock, so that concurrent queries
// for different names rarely contend.
type cache struct {
	shards [cacheShards]cacheShard
	seed   maphash.Seed
	maxTTL time.Duration
}

const cacheShards = 64

type cacheShard struct {
	mu  sync.Mutex
	m   map[cacheKey]*cacheEntry
	max int
}

type cacheKey struct {
	name   string // lower case
	qtype  uint16
	do, cd bool
}

func newCacheKey(q dns.Question, do, cd bool) cacheKey {
	return cacheKey{name: strings.ToLower(q.Name), qtype: q.Qtype, do: do, cd: cd}
}

func (k cacheKey) String() string { return fmt.Sprintf("%s/%d/%t/%t", k.name, k.qtype, k.do, k.cd) }

type cacheEntry struct {
	msg     *dns.Msg // never modified once stored
	stored  time.Time
	expires time.Time
}

func newCache(entries int, maxTTL time.Duration) *cache {
	c := &cache{seed: maphash.MakeSeed(), maxTTL: maxTTL}
	per := max(1, entries/cacheShards)
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]*cacheEntry)
		c.shards[i].max = per
	}
	return c
}

func (c *cache) shard(k cacheKey) *cacheShard {
	return &c.shards[maphash.String(c.seed, k.name)%cacheShards]
}

// get returns a copy of the cached answer with TTLs reduced by its age.
func (c *cache) get(k cacheKey, now time.Time) (*dns.Msg, bool) {
	sh := c.shard(k)
	sh.mu.Lock()
	e, ok := sh.m[k]
	if ok && !now.Before(e.expires) {
		delete(sh.m, k)
		ok = false
	}
	sh.mu.Unlock()
	if !ok {
		return nil, false
	}
	return copyAged(e.msg, uint32(now.Sub(e.stored)/time.Second)), true
}

// put caches an upstream answer for the TTL it states: the smallest TTL
// of its answer records, or for a negative answer the SOA's negative TTL
// (RFC 2308). Answers that state no TTL, and failures, are not cached.
func (c *cache) put(k cacheKey, m *dns.Msg, now time.Time) {
	ttl, ok := cacheTTL(m)
	if !ok {
		return
	}
	if ttl > c.maxTTL {
		ttl = c.maxTTL
	}
	sh := c.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, exists := sh.m[k]; !exists && len(sh.m) >= sh.max {
		sh.evict(now)
	}
	sh.m[k] = &cacheEntry{msg: m, stored: now, expires: now.Add(ttl)}
}

// evict makes room: expired entries first, else an arbitrary one (Go's
// map iteration order is randomised, which makes this random eviction).
func (sh *cacheShard) evict(now time.Time) {
	checked := 0
	for k, e := range sh.m {
		if !now.Before(e.expires) {
			delete(sh.m, k)
			return
		}
		if checked++; checked >= 8 {
			delete(sh.m, k)
			return
		}
	}
}

func cacheTTL(m *dns.Msg) (time.Duration, bool) {
	switch m.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	default:
		return 0, false
	}
	var (
		ttl   uint32
		found bool
	)
	if m.Rcode == dns.RcodeSuccess && len(m.Answer) > 0 {
		for _, rr := range m.Answer {
			if t := rr.Header().Ttl; !found || t < ttl {
				ttl, found = t, true
			}
		}
	} else {
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ttl, found = min(soa.Hdr.Ttl, soa.Minttl), true
			}
		}
	}
	if !found || ttl == 0 {
		return 0, false
	}
	return time.Duration(ttl) * time.Second, true
}

// copyAged returns a copy of m whose record TTLs are reduced by age
// seconds (never below zero). OPT records are left out: the response
// carries its own.
func copyAged(m *dns.Msg, age uint32) *dns.Msg {
	out := &dns.Msg{MsgHdr: m.MsgHdr}
	out.Question = m.Question
	section := func(rrs []dns.RR) []dns.RR {
		if len(rrs) == 0 {
			return nil
		}
		cp := make([]dns.RR, 0, len(rrs))
		for _, rr := range rrs {
			if rr.Header().Rrtype == dns.TypeOPT {
				continue
			}
			r := dns.Copy(rr)
			if h := r.Header(); h.Ttl > age {
				h.Ttl -= age
			} else {
				h.Ttl = 0
			}
			cp = append(cp, r)
		}
		return cp
	}
	out.Answer = section(m.Answer)
	out.Ns = section(m.Ns)
	out.Extra = section(m.Extra)
	return out
}
