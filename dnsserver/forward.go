package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// forwarder sends queries to the upstream resolvers, first one first,
// moving to the next on failure.
type forwarder struct {
	upstreams []string
	timeout   time.Duration
	metrics   *Metrics
	group     singleflight.Group
	// idle keeps UDP sockets to each upstream for reuse: opening and
	// closing one per cache miss costs more system calls than the
	// exchange. An answer arriving late on a reused socket is skipped by
	// its ID.
	mu   sync.Mutex
	idle map[string]chan *dns.Conn
}

// idleSockets is how many UDP sockets per upstream are kept for reuse.
const idleSockets = 64

func (f *forwarder) idleFor(up string) chan *dns.Conn {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.idle == nil {
		f.idle = map[string]chan *dns.Conn{}
	}
	ch, ok := f.idle[up]
	if !ok {
		ch = make(chan *dns.Conn, idleSockets)
		f.idle[up] = ch
	}
	return ch
}

// closeIdle closes the sockets kept for reuse.
func (f *forwarder) closeIdle() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.idle {
		for {
			select {
			case c := <-ch:
				c.Close()
				continue
			default:
			}
			break
		}
	}
}

// exchangeUDP asks one upstream over UDP on a reused socket, or a new
// one. A socket is kept only after a clean exchange.
func (f *forwarder) exchangeUDP(ctx context.Context, c *dns.Client, req *dns.Msg, up string) (*dns.Msg, error) {
	idle := f.idleFor(up)
	var conn *dns.Conn
	select {
	case conn = <-idle:
	default:
		var err error
		if conn, err = c.DialContext(ctx, up); err != nil {
			return nil, err
		}
	}
	resp, _, err := c.ExchangeWithConnContext(ctx, req, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	select {
	case idle <- conn:
	default:
		conn.Close()
	}
	return resp, nil
}

// errUpstream reports that no upstream gave a usable answer.
var errUpstream = errors.New("no upstream answered")

// exchange asks the upstreams in turn until one gives a usable answer:
// a timeout, an error, an answer that does not parse or does not match
// the query, and any response code but NOERROR and NXDOMAIN (SERVFAIL,
// REFUSED, FORMERR…) move to the next. When none answers the error
// wraps errUpstream: a client never gets an upstream's failure as if it
// were an answer.
func (f *forwarder) exchange(ctx context.Context, q dns.Question, do, cd bool) (*dns.Msg, error) {
	req := new(dns.Msg)
	req.SetQuestion(q.Name, q.Qtype)
	req.RecursionDesired = true
	req.CheckingDisabled = cd
	req.SetEdns0(upstreamUDPSize, do)
	var errs []error
	for _, up := range f.upstreams {
		resp, err := f.try(ctx, req, up)
		if err == nil && resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError {
			err = errors.New(dns.RcodeToString[resp.Rcode])
		}
		if err != nil {
			f.metrics.upstreamErrors.Add(1)
			errs = append(errs, fmt.Errorf("%s: %w", up, err))
			continue
		}
		return resp, nil
	}
	return nil, fmt.Errorf("%w: %w", errUpstream, errors.Join(errs...))
}

// try asks one upstream over UDP, and over TCP when the UDP answer is
// truncated, and checks that the answer is a response to the question
// asked. (miekg/dns skips UDP answers with another ID, and rejects them
// over TCP.)
func (f *forwarder) try(ctx context.Context, req *dns.Msg, up string) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", Timeout: f.timeout, UDPSize: upstreamUDPSize}
	resp, err := f.exchangeUDP(ctx, c, req, up)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, req, up)
	}
	if err != nil {
		return nil, err
	}
	if !resp.Response || resp.Opcode != dns.OpcodeQuery {
		return nil, errors.New("answer is not a response to a query")
	}
	if len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, req.Question[0].Name) ||
		resp.Question[0].Qtype != req.Question[0].Qtype || resp.Question[0].Qclass != req.Question[0].Qclass {
		return nil, errors.New("answer does not match the question")
	}
	return resp, nil
}

// resolve answers q from the cache or, coalescing identical concurrent
// misses into one upstream query, from the upstreams; when none answers,
// from an expired cache entry if serving stale data is allowed (stale is
// then true). The returned message is the caller's own copy.
func (s *Server) resolve(ctx context.Context, q dns.Question, do, cd bool) (m *dns.Msg, stale bool, err error) {
	key, err := cacheKey(q, do, cd)
	if err != nil {
		return nil, false, err
	}
	now := time.Now()
	if s.cache != nil {
		if e := s.cache.get([]byte(key), now); e != nil {
			if m, err := e.msg(now); err == nil {
				s.Metrics.cacheHits.Add(1)
				if e.stale {
					s.Metrics.staleAnswers.Add(1)
				}
				return m, e.stale, nil
			}
		}
	}
	s.Metrics.cacheMisses.Add(1)
	v, err, _ := s.up.group.Do(key, func() (any, error) {
		resp, err := s.up.exchange(ctx, q, do, cd)
		if err != nil {
			return nil, err
		}
		if !s.cfg.FullResponses {
			minimise(resp)
		}
		if s.cache != nil {
			s.cache.put(key, q, resp, time.Now())
		}
		return resp, nil
	})
	if err != nil {
		if m := s.serveStale(key, time.Now()); m != nil {
			return m, true, nil
		}
		return nil, false, err
	}
	return copyMsg(v.(*dns.Msg)), false, nil
}

// serveStale returns the expired answer cached under key, if serving
// stale data is allowed and it expired less than MaxStale ago, with its
// TTLs set to StaleTTL (RFC 8767). The answer is cached again as stale
// for StaleTTL, so that the upstreams are not asked again, and clients
// kept waiting, for every query until then.
func (s *Server) serveStale(key string, now time.Time) *dns.Msg {
	if s.cfg.MaxStale <= 0 || s.cache == nil {
		return nil
	}
	e := s.cache.getStale([]byte(key), now, s.cfg.MaxStale)
	if e == nil {
		return nil
	}
	r, err := e.revive(now, s.cfg.StaleTTL)
	if err != nil {
		return nil
	}
	s.cache.store(r, now)
	m, err := r.msg(now)
	if err != nil {
		return nil
	}
	s.Metrics.staleAnswers.Add(1)
	return m
}

// minimise keeps in an upstream answer only what its client needs (as
// Unbound's minimal-responses): in the authority section, the SOA of a
// negative answer and the NSEC and NSEC3 records that prove it or a
// wildcard, with their signatures; nothing in the additional section.
// Less to send, less to amplify, fewer answers that need TCP.
func minimise(m *dns.Msg) {
	keep := func(t uint16) bool { return t == dns.TypeSOA || t == dns.TypeNSEC || t == dns.TypeNSEC3 }
	ns := m.Ns[:0]
	for _, rr := range m.Ns {
		t := rr.Header().Rrtype
		if sig, ok := rr.(*dns.RRSIG); ok {
			t = sig.TypeCovered
		}
		if keep(t) {
			ns = append(ns, rr)
		}
	}
	clear(m.Ns[len(ns):])
	m.Ns = ns
	var opt []dns.RR
	for _, rr := range m.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			opt = append(opt, rr)
		}
	}
	m.Extra = opt
}

// copyMsg returns a copy of an upstream answer that the caller may
// change, without its OPT record: the response carries its own.
func copyMsg(m *dns.Msg) *dns.Msg {
	out := &dns.Msg{MsgHdr: m.MsgHdr, Question: m.Question}
	section := func(rrs []dns.RR) []dns.RR {
		var cp []dns.RR
		for _, rr := range rrs {
			if rr.Header().Rrtype != dns.TypeOPT {
				cp = append(cp, dns.Copy(rr))
			}
		}
		return cp
	}
	out.Answer, out.Ns, out.Extra = section(m.Answer), section(m.Ns), section(m.Extra)
	return out
}
