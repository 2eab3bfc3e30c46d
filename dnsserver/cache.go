package dnsserver

import (
	"encoding/binary"
	"errors"
	"hash/maphash"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// cache holds upstream answers in wire format for their TTL, bounded in
// entries. It is a set-associative table of atomic pointers to immutable
// entries: a lookup is a hash, a few atomic loads and a comparison, with
// no lock, so concurrent queries never wait for each other; a store
// replaces one pointer. Each entry keeps its response as bytes, so that a
// hit is answered by copying them (see handleUDP).
type cache struct {
	seed   maphash.Seed
	sets   []cacheSet
	mask   uint64
	maxTTL time.Duration
}

// cacheWays is the number of entries a key may occupy: a new entry
// replaces an expired one, else the one expiring first.
const cacheWays = 4

type cacheSet struct {
	ways [cacheWays]atomic.Pointer[cacheEntry]
}

// cacheEntry is one cached answer. It is never modified once stored.
type cacheEntry struct {
	key  string // see cacheKey
	hash uint64
	// wire is the response as sent to a client without EDNS: header
	// (QR, RA, AD and RCODE set; ID, RD and CD to fill in), the question,
	// then the upstream's answer, authority and additional records,
	// without OPT or TSIG.
	wire []byte
	qend int      // end of the question in wire
	ttls []uint16 // offsets of the records' TTL fields in wire
	// checks lists, in answer order, the addresses and names of the
	// answer that must not be blocked for the client: A and AAAA
	// addresses, CNAME and DNAME targets, and owner names.
	checks  []answerCheck
	stored  time.Time
	expires time.Time
	// stale marks an expired answer served again because no upstream
	// answered (see Server.serveStale); staleSince is when the answer
	// first expired, from which its stale life is counted.
	stale      bool
	staleSince time.Time
}

// answerCheck is an address or, when name is set, a name of an answer.
type answerCheck struct {
	addr netip.Addr
	name string
}

func newCache(entries int, maxTTL time.Duration) *cache {
	sets := 1
	for sets*cacheWays < entries {
		sets <<= 1
	}
	return &cache{seed: maphash.MakeSeed(), sets: make([]cacheSet, sets), mask: uint64(sets - 1), maxTTL: maxTTL}
}

// cacheKey builds the key of a question: its name in lower-case wire
// format, its type, and the query's DO and CD bits. The fast path builds
// the same bytes from the packet.
func cacheKey(q dns.Question, do, cd bool) (string, error) {
	buf := make([]byte, 255+3)
	n, err := dns.PackDomainName(dns.Fqdn(q.Name), buf, 0, nil, false)
	if err != nil {
		return "", err
	}
	key := buf[:n]
	for i, c := range key {
		if 'A' <= c && c <= 'Z' {
			key[i] = c + 'a' - 'A'
		}
	}
	key = binary.BigEndian.AppendUint16(key, q.Qtype)
	key = append(key, cacheFlags(do, cd))
	return string(key), nil
}

// get returns the live entry for key, or nil.
func (c *cache) get(key []byte, now time.Time) *cacheEntry {
	h := maphash.Bytes(c.seed, key)
	set := &c.sets[h&c.mask]
	for i := range set.ways {
		e := set.ways[i].Load()
		if e != nil && e.hash == h && e.key == string(key) {
			if now.Before(e.expires) {
				return e
			}
			return nil
		}
	}
	return nil
}

// put caches an upstream answer to q for the TTL it states: the smallest
// TTL of its answer records, or for a negative answer the SOA's negative
// TTL (RFC 2308). Answers that state no TTL, and failures, are not
// cached.
func (c *cache) put(key string, q dns.Question, m *dns.Msg, now time.Time) {
	ttl, ok := cacheTTL(m)
	if !ok {
		return
	}
	e, err := newCacheEntry(key, q, m)
	if err != nil {
		return
	}
	e.hash = maphash.String(c.seed, key)
	e.stored = now
	e.expires = now.Add(min(ttl, c.maxTTL))
	c.store(e, now)
}

// store puts e in its set: in the place of the entry of the same key,
// else of an empty or expired one, else of the one expiring first.
func (c *cache) store(e *cacheEntry, now time.Time) {
	set := &c.sets[e.hash&c.mask]
	victim := -1
	var first time.Time
	for i := range set.ways {
		cur := set.ways[i].Load()
		switch {
		case cur != nil && cur.key == e.key:
			set.ways[i].Store(e)
			return
		case victim >= 0 && first.IsZero():
			// An empty or expired place is taken already.
		case cur == nil || !now.Before(cur.expires):
			victim, first = i, time.Time{}
		case victim < 0 || cur.expires.Before(first):
			victim, first = i, cur.expires
		}
	}
	set.ways[victim].Store(e)
}

// getStale returns the expired entry for key if it expired less than
// maxStale ago (counted from its first expiry), or nil. Expired entries
// stay in the table until their place is needed.
func (c *cache) getStale(key []byte, now time.Time, maxStale time.Duration) *cacheEntry {
	h := maphash.Bytes(c.seed, key)
	set := &c.sets[h&c.mask]
	for i := range set.ways {
		e := set.ways[i].Load()
		if e == nil || e.hash != h || e.key != string(key) {
			continue
		}
		if now.Before(e.expires) {
			return nil // not expired: it was answered meanwhile
		}
		since := e.expires
		if e.stale {
			since = e.staleSince
		}
		if now.Before(since.Add(maxStale)) {
			return e
		}
	}
	return nil
}

// revive returns a copy of an expired entry to serve as stale data for
// ttl from now: every record's TTL is ttl.
func (e *cacheEntry) revive(now time.Time, ttl time.Duration) (*cacheEntry, error) {
	r := *e
	r.wire = append([]byte(nil), e.wire...)
	secs := uint32(ttl / time.Second)
	for _, off := range r.ttls {
		if int(off)+4 > len(r.wire) {
			return nil, errShortMessage
		}
		binary.BigEndian.PutUint32(r.wire[off:], secs)
	}
	r.stored, r.expires = now, now.Add(ttl)
	if !e.stale {
		r.stale, r.staleSince = true, e.expires
	}
	return &r, nil
}

// newCacheEntry packs an upstream answer into the form the cache keeps.
func newCacheEntry(key string, q dns.Question, up *dns.Msg) (*cacheEntry, error) {
	m := &dns.Msg{
		MsgHdr:   dns.MsgHdr{Response: true, Rcode: up.Rcode, RecursionAvailable: true, AuthenticatedData: up.AuthenticatedData},
		Compress: true,
		Question: []dns.Question{q},
		Answer:   up.Answer,
		Ns:       up.Ns,
	}
	for _, rr := range up.Extra {
		if t := rr.Header().Rrtype; t != dns.TypeOPT && t != dns.TypeTSIG {
			m.Extra = append(m.Extra, rr)
		}
	}
	wire, err := m.Pack()
	if err != nil {
		return nil, err
	}
	e := &cacheEntry{key: key, wire: wire}
	if e.qend, e.ttls, err = recordTTLs(wire); err != nil {
		return nil, err
	}
	for _, rr := range up.Answer {
		switch v := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(v.A); ok {
				e.checks = append(e.checks, answerCheck{addr: a.Unmap()})
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(v.AAAA); ok {
				e.checks = append(e.checks, answerCheck{addr: a})
			}
		case *dns.CNAME:
			e.checks = append(e.checks, answerCheck{name: v.Target})
		case *dns.DNAME:
			e.checks = append(e.checks, answerCheck{name: v.Target})
		}
		// The question name itself was decided before the cache.
		name := rr.Header().Name
		if !strings.EqualFold(name, q.Name) && (len(e.checks) == 0 || !strings.EqualFold(e.checks[len(e.checks)-1].name, name)) {
			e.checks = append(e.checks, answerCheck{name: name})
		}
	}
	return e, nil
}

var errShortMessage = errors.New("message ends inside a record")

// recordTTLs returns the end of the question and the offsets of the TTL
// fields of every record in a packed message.
func recordTTLs(wire []byte) (int, []uint16, error) {
	counts := binary.BigEndian.Uint16(wire[6:]) + binary.BigEndian.Uint16(wire[8:]) + binary.BigEndian.Uint16(wire[10:])
	off, err := skipName(wire, headerLen)
	if err != nil {
		return 0, nil, err
	}
	off += 4
	qend := off
	ttls := make([]uint16, 0, counts)
	for range counts {
		if off, err = skipName(wire, off); err != nil {
			return 0, nil, err
		}
		if off+10 > len(wire) {
			return 0, nil, errShortMessage
		}
		ttls = append(ttls, uint16(off+4))
		off += 10 + int(binary.BigEndian.Uint16(wire[off+8:]))
	}
	if off > len(wire) {
		return 0, nil, errShortMessage
	}
	return qend, ttls, nil
}

// skipName returns the offset after the name at off.
func skipName(wire []byte, off int) (int, error) {
	for {
		if off >= len(wire) {
			return 0, errShortMessage
		}
		l := int(wire[off])
		switch {
		case l == 0:
			return off + 1, nil
		case l&0xc0 == 0xc0:
			return off + 2, nil
		case l > 63:
			return 0, errors.New("bad label length")
		}
		off += 1 + l
	}
}

// msg returns the entry as a message with TTLs aged to now, for the
// general path.
func (e *cacheEntry) msg(now time.Time) (*dns.Msg, error) {
	m := new(dns.Msg)
	if err := m.Unpack(e.wire); err != nil {
		return nil, err
	}
	age := uint32(now.Sub(e.stored) / time.Second)
	for _, section := range [][]dns.RR{m.Answer, m.Ns, m.Extra} {
		for _, rr := range section {
			if h := rr.Header(); h.Ttl > age {
				h.Ttl -= age
			} else {
				h.Ttl = 0
			}
		}
	}
	return m, nil
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
