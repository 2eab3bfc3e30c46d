package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	resp, _, err := c.ExchangeContext(ctx, req, up)
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
	key := newCacheKey(q, do, cd)
	now := time.Now()
	if s.cache != nil {
		if m, ok := s.cache.get(key, now); ok {
			s.Metrics.cacheHits.Add(1)
			return m, nil
		}
	}
	s.Metrics.cacheMisses.Add(1)
	v, err, _ := s.up.group.Do(key.String(), func() (any, error) {
		resp, err := s.up.exchange(ctx, q, do, cd)
		if err == nil && s.cache != nil {
			s.cache.put(key, resp, time.Now())
		}
		return resp, err
	})
	if err != nil {
		return nil, err
	}
	return copyAged(v.(*dns.Msg), 0), nil
}
