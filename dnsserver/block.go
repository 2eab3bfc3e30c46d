package dnsserver

import (
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/policy"
)

// block answers a query blocked by order ref, per the configured mode,
// with Extended DNS Error 16 (Censored) and the structured justification
// of draft-ietf-dnsop-structured-dns-error when the client speaks EDNS.
// RFC 6891 forbids an OPT record in the answer to a query without one, so
// a client without EDNS gets the bare response code.
func (s *Server) block(r *request, ref *policy.OrderRef) *dns.Msg {
	now := time.Now()
	s.countBlock(ref, r.code, now)

	resp := new(dns.Msg)
	resp.SetReply(r.msg)
	resp.RecursionAvailable = true
	switch s.cfg.BlockMode {
	case NXDomain:
		resp.Rcode = dns.RcodeNameError
	case Sinkhole:
		hdr := dns.RR_Header{Name: r.q.Name, Class: dns.ClassINET, Ttl: uint32(s.sinkholeTTL(ref, now) / time.Second)}
		switch {
		case r.q.Qtype == dns.TypeA && s.cfg.SinkholeV4.IsValid():
			hdr.Rrtype = dns.TypeA
			resp.Answer = []dns.RR{&dns.A{Hdr: hdr, A: net.IP(s.cfg.SinkholeV4.AsSlice())}}
		case r.q.Qtype == dns.TypeAAAA && s.cfg.SinkholeV6.IsValid():
			hdr.Rrtype = dns.TypeAAAA
			resp.Answer = []dns.RR{&dns.AAAA{Hdr: hdr, AAAA: net.IP(s.cfg.SinkholeV6.AsSlice())}}
		}
	default:
		resp.Rcode = dns.RcodeRefused
	}
	if r.opt == nil {
		return s.finish(r, resp)
	}
	texts := s.texts.get(s, ref)
	// The draft's order of sacrifice when the answer would not fit a UDP
	// response: drop "j" and "o" first, then the EXTRA-TEXT altogether.
	for _, text := range []string{texts.full, texts.short} {
		out := resp.Copy()
		out.Compress = true
		s.addOPT(r, out, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeCensored, ExtraText: text})
		if !r.udp || out.Len() <= r.udpSize {
			return out
		}
	}
	return s.finish(r, resp, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeCensored})
}

// countBlock counts a block for the order and the client's jurisdiction,
// and, for the order's first block since its acknowledgement, the
// propagation time.
func (s *Server) countBlock(ref *policy.OrderRef, code jurisdiction.Code, now time.Time) {
	s.Metrics.countBlock(code)
	s.countOrderBlock(ref, now)
}

// countOrderBlock counts a block for the order and, for its first block
// since its acknowledgement, the propagation time.
func (s *Server) countOrderBlock(ref *policy.OrderRef, now time.Time) {
	ref.Counters.Blocks.Add(1)
	if ref.Counters.AwaitingFirstBlock() {
		if d, ok := ref.Counters.FirstBlock(now); ok {
			s.Metrics.propagation.Observe(d.Seconds())
		}
	}
}

// extraTexts caches the EXTRA-TEXT of each order: built once per order
// and snapshot, read without a lock.
type extraTexts struct {
	mu sync.Mutex
	m  atomic.Pointer[map[*policy.OrderRef]*orderTexts]
}

type orderTexts struct {
	full  string // c, j, o, l
	short string // c only
	// opts are the wire forms of the response OPT record with EDE 16 and
	// the full text, the short one, and none: the fast path's order of
	// sacrifice when the answer would not fit.
	opts [3][]byte
}

func (t *extraTexts) get(s *Server, ref *policy.OrderRef) *orderTexts {
	if m := t.m.Load(); m != nil {
		if ot, ok := (*m)[ref]; ok {
			return ot
		}
	}
	ot := s.buildTexts(ref)
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.m.Load()
	next := map[*policy.OrderRef]*orderTexts{}
	if old != nil {
		// Drop texts of orders no longer enforced; keep the rest.
		live := map[*policy.OrderRef]bool{}
		for _, o := range s.policy.Load().Orders() {
			live[o] = true
		}
		for k, v := range *old {
			if live[k] {
				next[k] = v
			}
		}
	}
	next[ref] = ot
	t.m.Store(&next)
	return ot
}

// structuredError is the EXTRA-TEXT JSON of the structured DNS error
// draft: contact URIs, justification, organisation and the language of
// the texts (required with "j" and "o"). Sub-error "s" must not be sent
// with Censored.
type structuredError struct {
	C []string `json:"c,omitempty"`
	J string   `json:"j,omitempty"`
	O string   `json:"o,omitempty"`
	L string   `json:"l,omitempty"`
}

func (s *Server) buildTexts(ref *policy.OrderRef) *orderTexts {
	j := fmt.Sprintf("Blocked in %s under order %s of %s (%s, %s): %s.",
		ref.Scope, ref.ID, ref.Authority.Name, ref.Authority.Kind, ref.Authority.Jurisdiction, clip(ref.LegalBasis.String(), 160))
	if s.cfg.RecordURL != nil {
		j += " Public record: " + s.cfg.RecordURL(ref.ID)
	}
	full, _ := json.Marshal(structuredError{C: s.cfg.Contact, J: j, O: s.cfg.Operator, L: s.cfg.Language})
	var short []byte
	if len(s.cfg.Contact) > 0 {
		short, _ = json.Marshal(structuredError{C: s.cfg.Contact})
	}
	return &orderTexts{full: string(full), short: string(short),
		opts: [3][]byte{optTemplate(string(full), s.cfg.MaxUDPSize), optTemplate(string(short), s.cfg.MaxUDPSize), optTemplate("", s.cfg.MaxUDPSize)}}
}

// clip shortens s to at most n bytes on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
