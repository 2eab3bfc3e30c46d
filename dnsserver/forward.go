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

func (f *forwarder) exchange(ctx context.Context, q dns.Question, do, cd bool) (*dns.Msg, error) {
	req := new(dns.Msg)
	req.SetQuestion(q.Name, q.Qtype)
	req.RecursionDesired = true
	req.CheckingDisabled = cd
	req.SetEdns0(maxUDPResponse, do)
	var (
		last *dns.Msg
		errs []error
	)
	for _, up := range f.upstreams {
		resp, err := f.try(ctx, req, up)
		if err != nil {
			f.metrics.upstreamErrors.Add(1)
			errs = append(errs, fmt.Errorf("%s: %w", up, err))
			continue
		}
		// SERVFAIL and REFUSED say this upstream cannot help; another
		// may.
		if resp.Rcode == dns.RcodeServerFailure || resp.Rcode == dns.RcodeRefused {
			f.metrics.upstreamErrors.Add(1)
			last = resp
			errs = append(errs, fmt.Errorf("%s: %s", up, dns.RcodeToString[resp.Rcode]))
			continue
		}
		return resp, nil
	}
	if last != nil && last.Rcode == dns.RcodeServerFailure {
		return nil, fmt.Errorf("%w: %w", errUpstream, errors.Join(errs...))
	}
	if last != nil {
		return last, nil
	}
	return nil, fmt.Errorf("%w: %w", errUpstream, errors.Join(errs...))
}

// try asks one upstream over UDP, and over TCP when the UDP answer is
// truncated, and checks that the answer is for the question asked.
func (f *forwarder) try(ctx context.Context, req *dns.Msg, up string) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", Timeout: f.timeout, UDPSize: maxUDPResponse}
	resp, err := f.exchangeUDP(ctx, c, req, up)
	if err == nil && resp.Truncated {
		c.Net = "tcp"
		resp, _, err = c.ExchangeContext(ctx, req, up)
	}
	if err != nil {
		return nil, err
	}
	if len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, req.Question[0].Name) ||
		resp.Question[0].Qtype != req.Question[0].Qtype || resp.Question[0].Qclass != req.Question[0].Qclass {
		return nil, errors.New("answer does not match the question")
	}
	return resp, nil
}

// resolve answers q from the cache or, coalescing identical concurrent
// misses into one upstream query, from the upstreams. The returned message
// is the caller's own copy.
func (s *Server) resolve(ctx context.Context, q dns.Question, do, cd bool) (*dns.Msg, error) {
	key, err := cacheKey(q, do, cd)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if s.cache != nil {
		if e := s.cache.get([]byte(key), now); e != nil {
			if m, err := e.msg(now); err == nil {
				s.Metrics.cacheHits.Add(1)
				return m, nil
			}
		}
	}
	s.Metrics.cacheMisses.Add(1)
	v, err, _ := s.up.group.Do(key, func() (any, error) {
		resp, err := s.up.exchange(ctx, q, do, cd)
		if err == nil && s.cache != nil {
			s.cache.put(key, q, resp, time.Now())
		}
		return resp, err
	})
	if err != nil {
		return nil, err
	}
	return copyMsg(v.(*dns.Msg)), nil
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
