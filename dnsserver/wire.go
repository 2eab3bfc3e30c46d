package dnsserver

import (
	"encoding/binary"
	"net/netip"
	"time"
	"unsafe"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/policy"
)

// The UDP fast path answers the common queries — one question, class IN,
// at most an OPT record without Client Subnet — on the wire format: it
// parses the question in place, decides, and writes the answer into a
// buffer of the reading goroutine, with no *dns.Msg and no allocation. A
// cached answer is the upstream's response as bytes, copied with the
// query's ID and question and its TTLs aged; a block notice is a
// per-order template. Every other query (and every cache miss) takes the
// general path of ServeDNS, which makes the same decisions on messages.

// Header flag bits.
const (
	flagQR = 1 << 15
	flagAA = 1 << 10
	flagTC = 1 << 9
	flagRD = 1 << 8
	flagRA = 1 << 7
	flagAD = 1 << 5
	flagCD = 1 << 4
)

const (
	headerLen  = 12
	ednsDOFlag = 0x80 // in the high byte of the OPT record's flags
	optionECS  = 8
)

// wireQuery is what the fast path needs of a query.
type wireQuery struct {
	id      uint16
	flags   uint16 // the query's flags; RD and CD are echoed
	qend    int    // end of the question section
	qtype   uint16
	edns    bool
	do      bool
	udpSize int
	// name is the question name in presentation format with a trailing
	// dot, in the scratch buffer; key is the cache key (lower-case wire
	// name, type, flags), also in the scratch buffer.
	name string
	key  []byte
}

// scratch is one reading goroutine's buffers: the fast path writes only
// into them, so it allocates nothing. It also counts what the goroutine
// answered, for Metrics (see queryStats).
type scratch struct {
	name  [256]byte
	key   [256 + 3]byte
	out   []byte
	stats queryStats
	// limited is set when handleUDP hands a query to the general path
	// after counting it against the client's rate limit, so that the
	// general path does not count it again.
	limited bool
}

// responseBuffer is the capacity of a fast path response buffer: more
// than any UDP response may be (see blockUDP).
const responseBuffer = maxUDPSize + 512

func newScratch() *scratch { return &scratch{out: make([]byte, 0, responseBuffer)} }

// parseQuery parses a query the fast path can answer. It returns false
// for anything else: responses, other opcodes or classes, more than one
// question or record, compression or unusual bytes in the name, OPT
// records of other versions or with Client Subnet, malformed messages;
// the general path handles those as it always has.
func parseQuery(pkt []byte, q *wireQuery, sc *scratch, maxUDP int) bool {
	if len(pkt) < headerLen+5 {
		return false
	}
	q.id = binary.BigEndian.Uint16(pkt)
	q.flags = binary.BigEndian.Uint16(pkt[2:])
	if q.flags&flagQR != 0 || q.flags>>11&0xf != dns.OpcodeQuery ||
		binary.BigEndian.Uint16(pkt[4:]) != 1 || binary.BigEndian.Uint16(pkt[6:]) != 0 || binary.BigEndian.Uint16(pkt[8:]) != 0 {
		return false
	}
	arcount := binary.BigEndian.Uint16(pkt[10:])
	if arcount > 1 {
		return false
	}

	// The name: copied lower-case into the key and as text into name.
	off, n, kn := headerLen, 0, 0
	for {
		if off >= len(pkt) {
			return false
		}
		l := int(pkt[off])
		if l == 0 {
			break
		}
		if l > 63 || off+1+l >= len(pkt) || kn+1+l > 255 {
			return false // a compression pointer, a bad length or too long
		}
		sc.key[kn] = byte(l)
		kn++
		for _, c := range pkt[off+1 : off+1+l] {
			if !plainByte(c) {
				return false // needs escaping in text: the general path does it
			}
			sc.name[n] = c
			n++
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			sc.key[kn] = c
			kn++
		}
		sc.name[n] = '.'
		n++
		off += 1 + l
	}
	if n == 0 {
		sc.name[0] = '.'
		n = 1
	}
	sc.key[kn] = 0
	kn++
	off++
	if off+4 > len(pkt) {
		return false
	}
	q.qtype = binary.BigEndian.Uint16(pkt[off:])
	if binary.BigEndian.Uint16(pkt[off+2:]) != dns.ClassINET || q.qtype == dns.TypeAXFR || q.qtype == dns.TypeIXFR {
		return false
	}
	off += 4
	q.qend = off

	q.edns, q.do, q.udpSize = false, false, dns.MinMsgSize
	if arcount == 1 {
		// OPT: root name, type, UDP size, extended rcode, version, flags,
		// options.
		if off+11 > len(pkt) || pkt[off] != 0 || binary.BigEndian.Uint16(pkt[off+1:]) != dns.TypeOPT || pkt[off+6] != 0 {
			return false
		}
		q.edns = true
		q.udpSize = max(dns.MinMsgSize, min(int(binary.BigEndian.Uint16(pkt[off+3:])), maxUDP))
		q.do = pkt[off+7]&ednsDOFlag != 0
		rdlen := int(binary.BigEndian.Uint16(pkt[off+9:]))
		off += 11
		if off+rdlen != len(pkt) {
			return false
		}
		for o := off; o < off+rdlen; {
			if o+4 > off+rdlen {
				return false
			}
			code, l := binary.BigEndian.Uint16(pkt[o:]), int(binary.BigEndian.Uint16(pkt[o+2:]))
			if code == optionECS || o+4+l > off+rdlen {
				return false // Client Subnet decides the scope: the general path
			}
			o += 4 + l
		}
	} else if off != len(pkt) {
		return false
	}

	key := sc.key[:kn]
	key = binary.BigEndian.AppendUint16(key, q.qtype)
	key = append(key, cacheFlags(q.do, q.flags&flagCD != 0))
	q.key = key
	q.name = unsafe.String(&sc.name[0], n)
	return true
}

// plainByte reports whether a name byte stands for itself in
// presentation format: letters, digits, hyphen, underscore and asterisk.
func plainByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '*'
}

// cacheFlags is the last byte of a cache key: answers differ with the DO
// and CD bits of the query.
func cacheFlags(do, cd bool) byte {
	var f byte
	if do {
		f |= 1
	}
	if cd {
		f |= 2
	}
	return f
}

// handleUDP answers one UDP query on the fast path. It returns the
// response (in sc.out) and true, or false when the query needs the
// general path: then nothing was sent or counted but, when sc.limited is
// set, the client's rate. A nil response with true means the rate limit
// dropped it.
func (s *Server) handleUDP(pkt []byte, from netip.Addr, sc *scratch) ([]byte, bool) {
	sc.limited = false
	var q wireQuery
	if !parseQuery(pkt, &q, sc, s.cfg.MaxUDPSize) {
		return nil, false
	}
	q.udpSize = s.udpLimit(q.udpSize, len(pkt))
	now := time.Now()
	if s.limiter != nil {
		switch s.limiter.check(from, now.Unix()) {
		case rateDrop:
			sc.stats.queries++
			sc.stats.dropped++
			return nil, true
		case rateSlip:
			sc.stats.queries++
			sc.stats.slipped++
			return s.truncatedUDP(pkt, &q, dns.RcodeSuccess, sc), true
		}
		sc.limited = true
	}
	var code jurisdiction.Code
	if s.scoper != nil {
		code, _ = s.scoper.Lookup(from)
	}
	snap := s.policy.Load()
	if ref := snap.MatchName(q.name, code); ref != nil {
		return s.blockUDP(pkt, &q, ref, code, sc, false, now)
	}
	if s.cache == nil {
		return nil, false
	}
	e := s.cache.get(q.key, now)
	if e == nil || e.stale || e.qend != q.qend {
		// A stale answer carries EDE 3: the general path adds it.
		return nil, false
	}
	// The cache is per name; the decision is per client. An answer whose
	// address, or a name in whose CNAME chain, is blocked for this client
	// is blocked, exactly as on the general path.
	if snap.Scope().Has(code) {
		for _, c := range e.checks {
			var ref *policy.OrderRef
			if c.name != "" {
				ref = snap.MatchName(c.name, code)
			} else {
				ref = snap.MatchAddr(c.addr, code)
			}
			if ref != nil {
				return s.blockUDP(pkt, &q, ref, code, sc, true, now)
			}
		}
	}

	sc.stats.queries++
	sc.stats.hits++
	rcode := int(e.wire[3] & 0xf)
	size := len(e.wire)
	if q.edns {
		size += optLen
	}
	if size > q.udpSize {
		sc.stats.truncated++
		return s.truncatedUDP(pkt, &q, rcode, sc), true
	}
	out := append(sc.out[:0], e.wire...)
	binary.BigEndian.PutUint16(out, q.id)
	binary.BigEndian.PutUint16(out[2:], binary.BigEndian.Uint16(e.wire[2:])|q.flags&(flagRD|flagCD))
	copy(out[headerLen:q.qend], pkt[headerLen:q.qend]) // the client's spelling of the name
	age := uint32(now.Sub(e.stored) / time.Second)
	for _, off := range e.ttls {
		ttl := binary.BigEndian.Uint32(out[off:])
		if ttl > age {
			ttl -= age
		} else {
			ttl = 0
		}
		binary.BigEndian.PutUint32(out[off:], ttl)
	}
	if q.edns {
		out = s.appendOPT(out, q.do)
	}
	sc.stats.rcodes[rcode]++
	sc.out = out
	return out, true
}

// udpLimit is the largest UDP response to a query of qlen bytes from a
// client whose buffer is size bytes: the buffer, unless the amplification
// bound is smaller.
func (s *Server) udpLimit(size, qlen int) int {
	if f := s.cfg.MaxAmplification; f > 0 && f*qlen < size {
		return f * qlen
	}
	return size
}

// truncatedUDP writes into sc.out the truncated response to q: the
// header with TC set and rcode, the question, and an OPT record without
// options if the client sent one. It is no larger than the query, so it
// fits every bound. The general path's truncated is the same response.
func (s *Server) truncatedUDP(pkt []byte, q *wireQuery, rcode int, sc *scratch) []byte {
	out := sc.out[:0]
	out = binary.BigEndian.AppendUint16(out, q.id)
	out = binary.BigEndian.AppendUint16(out, flagQR|flagRA|flagTC|q.flags&(flagRD|flagCD)|uint16(rcode))
	out = append(out, 0, 1, 0, 0, 0, 0, 0, 0)
	out = append(out, pkt[headerLen:q.qend]...)
	if q.edns {
		out = s.appendOPT(out, q.do)
	}
	sc.stats.rcodes[rcode]++
	sc.out = out
	return out
}

// optLen is the length of an OPT record without options.
const optLen = 11

// appendOPT appends the response's OPT record, with no options, and
// counts it in the header.
func (s *Server) appendOPT(out []byte, do bool) []byte {
	var flags byte
	if do {
		flags = ednsDOFlag
	}
	size := s.cfg.MaxUDPSize
	out = append(out, 0, 0, byte(dns.TypeOPT), byte(size>>8), byte(size), 0, 0, flags, 0, 0, 0)
	binary.BigEndian.PutUint16(out[10:], binary.BigEndian.Uint16(out[10:])+1)
	return out
}

// blockUDP writes the block notice for ref into sc.out, per the
// configured mode, with the order's EDE template when the client speaks
// EDNS: the full justification if it fits the client's buffer, else the
// contact alone, else the bare code, as block does on the general path.
func (s *Server) blockUDP(pkt []byte, q *wireQuery, ref *policy.OrderRef, code jurisdiction.Code, sc *scratch, byAnswer bool, now time.Time) ([]byte, bool) {
	rcode := dns.RcodeRefused
	var answer []byte
	switch s.cfg.BlockMode {
	case NXDomain:
		rcode = dns.RcodeNameError
	case Sinkhole:
		rcode = dns.RcodeSuccess
		switch {
		case q.qtype == dns.TypeA && s.cfg.SinkholeV4.IsValid():
			a := s.cfg.SinkholeV4.As4()
			answer = a[:]
		case q.qtype == dns.TypeAAAA && s.cfg.SinkholeV6.IsValid():
			a := s.cfg.SinkholeV6.As16()
			answer = a[:]
		}
	}
	size := q.qend
	if answer != nil {
		size += 12 + len(answer)
	}
	// Nothing appended below outgrows sc.out, whose capacity exceeds
	// every size allowed: the fast path does not allocate.
	out := sc.out[:0]
	out = binary.BigEndian.AppendUint16(out, q.id)
	out = binary.BigEndian.AppendUint16(out, flagQR|flagRA|q.flags&(flagRD|flagCD)|uint16(rcode))
	var an uint16
	if answer != nil {
		an = 1
	}
	out = append(out, 0, 1, byte(an>>8), byte(an), 0, 0, 0, 0)
	out = append(out, pkt[headerLen:q.qend]...)
	if answer != nil {
		// The owner is the question name: a pointer to offset 12.
		out = append(out, 0xc0, headerLen)
		out = binary.BigEndian.AppendUint16(out, q.qtype)
		out = binary.BigEndian.AppendUint16(out, dns.ClassINET)
		out = binary.BigEndian.AppendUint32(out, uint32(s.sinkholeTTL(ref, now)/time.Second))
		out = binary.BigEndian.AppendUint16(out, uint16(len(answer)))
		out = append(out, answer...)
	}
	fitted := !q.edns && len(out) <= q.udpSize
	if q.edns {
		for _, opt := range s.texts.get(s, ref).opts {
			if len(out)+len(opt) <= q.udpSize {
				base := len(out)
				out = append(out, opt...)
				if q.do {
					out[base+7] |= ednsDOFlag
				}
				binary.BigEndian.PutUint16(out[10:], 1)
				fitted = true
				break
			}
		}
	}
	sc.stats.queries++
	if byAnswer {
		sc.stats.answerBlocks++
	}
	s.countOrderBlock(ref, now)
	sc.stats.block(code, s.Metrics)
	if !fitted {
		// Not even the bare notice fits (a long name, a small bound):
		// the client asks again over TCP.
		sc.stats.truncated++
		return s.truncatedUDP(pkt, q, rcode, sc), true
	}
	sc.stats.rcodes[rcode]++
	sc.out = out
	return out, true
}

// sinkholeTTL is the TTL of a sinkhole answer: the configured one, cut
// to what is left of the order.
func (s *Server) sinkholeTTL(ref *policy.OrderRef, now time.Time) time.Duration {
	ttl := s.cfg.BlockTTL
	if ref.Expires.IsZero() {
		return ttl // an open-ended order
	}
	if left := ref.Expires.Sub(now); left < ttl {
		ttl = max(left, time.Second)
	}
	return ttl
}

// optTemplate returns the wire form of a response OPT record
// advertising size, carrying EDE 16 (Censored) with text, the DO flag
// clear.
func optTemplate(text string, size int) []byte {
	ede := 2 + len(text)
	b := []byte{0, 0, byte(dns.TypeOPT), byte(size >> 8), byte(size), 0, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(4+ede))
	b = binary.BigEndian.AppendUint16(b, dns.EDNS0EDE)
	b = binary.BigEndian.AppendUint16(b, uint16(ede))
	b = binary.BigEndian.AppendUint16(b, dns.ExtendedErrorCodeCensored)
	return append(b, text...)
}
