package dnsserver

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/policy"
)

// upstreamUDPSize is the UDP buffer size writ advertises to upstreams:
// the DNS flag day 2020 size that avoids IP fragmentation. Larger answers
// come over TCP.
const upstreamUDPSize = 1232

// ServeDNS answers one query. It implements dns.Handler.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	udp := isUDP(w)
	s.Metrics.countQuery(udp)
	resp := s.answer(w, req, udp)
	if resp == nil {
		return
	}
	s.Metrics.countRcode(resp.Rcode)
	if err := w.WriteMsg(resp); err != nil {
		s.cfg.Logger.Debug("dns write failed", "client", w.RemoteAddr().String(), "err", err)
	}
}

// request is what answer learns about a query before deciding.
type request struct {
	msg     *dns.Msg
	q       dns.Question
	opt     *dns.OPT // nil when the client does not speak EDNS
	udp     bool
	udpSize int
	ecs     *dns.EDNS0_SUBNET // the trusted ECS option to echo, if any
	code    jurisdiction.Code
}

func (s *Server) answer(w dns.ResponseWriter, msg *dns.Msg, udp bool) *dns.Msg {
	if msg.Response {
		// Never answer an answer: that is how reflection loops start.
		return nil
	}
	r := &request{msg: msg, udp: udp, opt: msg.IsEdns0(), udpSize: dns.MinMsgSize}
	if msg.Opcode != dns.OpcodeQuery {
		return s.fail(r, dns.RcodeNotImplemented)
	}
	if len(msg.Question) != 1 {
		return s.fail(r, dns.RcodeFormatError)
	}
	r.q = msg.Question[0]
	if r.opt != nil {
		if r.opt.Version() != 0 {
			return s.fail(r, dns.RcodeBadVers)
		}
		r.udpSize = max(dns.MinMsgSize, min(int(r.opt.UDPSize()), s.cfg.MaxUDPSize))
	}
	if udp {
		r.udpSize = s.udpLimit(r.udpSize, queryLen(w, msg))
	}
	switch {
	case r.q.Qclass != dns.ClassINET:
		return s.fail(r, dns.RcodeRefused)
	case r.q.Qtype == dns.TypeAXFR || r.q.Qtype == dns.TypeIXFR:
		return s.fail(r, dns.RcodeRefused)
	}

	client := remoteAddr(w)
	if ecs, ok := findECS(r.opt); ok && s.trustsECS(client) {
		a, ok := ecsAddr(ecs)
		if !ok {
			return s.fail(r, dns.RcodeFormatError)
		}
		client = a
		r.ecs = ecs
	}
	r.code, _ = s.scoper.Lookup(client)

	snap := s.policy.Load()
	if ref := snap.MatchName(r.q.Name, r.code); ref != nil {
		return s.block(r, ref)
	}

	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.UpstreamTimeout*time.Duration(len(s.cfg.Upstreams)+1))
	defer cancel()
	up, stale, err := s.resolve(ctx, r.q, r.opt != nil && r.opt.Do(), msg.CheckingDisabled)
	if err != nil {
		s.cfg.Logger.Debug("upstream failed", "name", r.q.Name, "err", err)
		return s.fail(r, dns.RcodeServerFailure, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeNetworkError})
	}
	// An answer whose address, or a name in whose CNAME chain, is blocked
	// for this client is blocked too: otherwise any name pointed at a
	// blocked site would bypass the order. A stale answer is checked like
	// any other, against the policy in force now.
	if ref := matchAnswer(snap, up, r.code); ref != nil {
		s.Metrics.answerBlocks.Add(1)
		return s.block(r, ref)
	}
	resp := new(dns.Msg)
	resp.SetReply(msg)
	resp.Rcode = up.Rcode
	resp.RecursionAvailable = true
	resp.AuthenticatedData = up.AuthenticatedData
	resp.Answer = up.Answer
	resp.Ns = up.Ns
	for _, rr := range up.Extra {
		if t := rr.Header().Rrtype; t != dns.TypeOPT && t != dns.TypeTSIG {
			resp.Extra = append(resp.Extra, rr)
		}
	}
	if stale {
		return s.finish(r, resp, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeStaleAnswer})
	}
	return s.finish(r, resp)
}

// fail returns a response with rcode, the given EDNS options, and
// nothing else.
func (s *Server) fail(r *request, rcode int, opts ...dns.EDNS0) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetRcode(r.msg, rcode)
	resp.RecursionAvailable = true
	return s.finish(r, resp, opts...)
}

// finish adds the OPT record a client that speaks EDNS expects, with the
// given options, and replaces a UDP response larger than allowed by the
// truncated one.
func (s *Server) finish(r *request, resp *dns.Msg, opts ...dns.EDNS0) *dns.Msg {
	s.addOPT(r, resp, opts...)
	resp.Compress = true
	if r.udp && resp.Len() > r.udpSize {
		s.Metrics.truncated.Add(1)
		return s.truncated(r, resp.Rcode)
	}
	return resp
}

// truncated returns the truncated response to r: TC set, the rcode, the
// question, and an OPT record without options if the client sent one.
// It asks the client to retry over TCP, and is no larger than the query.
// (miekg/dns's Msg.Truncate would keep what records fit; a client that
// gets TC asks again over TCP whatever they are, so they would only
// amplify.)
func (s *Server) truncated(r *request, rcode int) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(r.msg)
	resp.Rcode = rcode
	resp.RecursionAvailable = true
	resp.Truncated = true
	if r.opt != nil {
		resp.Extra = []dns.RR{s.responseOPT(r)}
	}
	return resp
}

// responseOPT is the OPT record of a response to r, which has one: the
// server's UDP size and the query's DO bit, without options.
func (s *Server) responseOPT(r *request) *dns.OPT {
	o := new(dns.OPT)
	o.Hdr.Name = "."
	o.Hdr.Rrtype = dns.TypeOPT
	o.SetUDPSize(uint16(s.cfg.MaxUDPSize))
	o.SetDo(r.opt.Do())
	return o
}

// queryLen is the size of the query on the wire, when the writer knows
// it (the UDP socket's), or else as packed.
func queryLen(w dns.ResponseWriter, msg *dns.Msg) int {
	if q, ok := w.(interface{ queryLen() int }); ok {
		return q.queryLen()
	}
	return msg.Len()
}

// addOPT adds the response OPT record when the client sent one; RFC 6891
// forbids one otherwise, so options are dropped for such clients.
func (s *Server) addOPT(r *request, resp *dns.Msg, opts ...dns.EDNS0) {
	if r.opt != nil {
		o := s.responseOPT(r)
		if r.ecs != nil {
			echo := *r.ecs
			echo.SourceScope = echo.SourceNetmask
			o.Option = append(o.Option, &echo)
		}
		o.Option = append(o.Option, opts...)
		resp.Extra = append(resp.Extra, o)
	}
}

func matchAnswer(snap *policy.Snapshot, up *dns.Msg, c jurisdiction.Code) *policy.OrderRef {
	if !snap.Scope().Has(c) {
		return nil
	}
	for _, rr := range up.Answer {
		var ref *policy.OrderRef
		switch v := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(v.A); ok {
				ref = snap.MatchAddr(a.Unmap(), c)
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(v.AAAA); ok {
				ref = snap.MatchAddr(a, c)
			}
		case *dns.CNAME:
			ref = snap.MatchName(v.Target, c)
		case *dns.DNAME:
			ref = snap.MatchName(v.Target, c)
		}
		if ref == nil {
			ref = snap.MatchName(rr.Header().Name, c)
		}
		if ref != nil {
			return ref
		}
	}
	return nil
}

func (s *Server) trustsECS(client netip.Addr) bool {
	for _, p := range s.cfg.ECSTrusted {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

func findECS(opt *dns.OPT) (*dns.EDNS0_SUBNET, bool) {
	if opt == nil {
		return nil, false
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_SUBNET); ok {
			return e, true
		}
	}
	return nil, false
}

// ecsAddr returns the client subnet's address, masked to its source
// prefix; false when the option is malformed (RFC 7871 section 7.1.1).
func ecsAddr(e *dns.EDNS0_SUBNET) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(e.Address)
	if !ok {
		return netip.Addr{}, false
	}
	switch {
	case e.Family == 1 && a.Unmap().Is4() && e.SourceNetmask <= 32:
		a = a.Unmap()
	case e.Family == 2 && a.Is6() && e.SourceNetmask <= 128:
	default:
		return netip.Addr{}, false
	}
	p, err := a.Prefix(int(e.SourceNetmask))
	if err != nil {
		return netip.Addr{}, false
	}
	return p.Addr(), true
}

func remoteAddr(w dns.ResponseWriter) netip.Addr {
	switch a := w.RemoteAddr().(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

func isUDP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.UDPAddr)
	return ok
}
