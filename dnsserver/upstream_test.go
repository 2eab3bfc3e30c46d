package dnsserver

import (
	"encoding/binary"
	"hash/fnv"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fault is how a testUpstream misbehaves.
type fault int32

const (
	faultNone      fault = iota
	faultTimeout         // reads the query and never answers
	faultGarbage         // answers bytes that are not a DNS message
	faultWrongID         // answers correctly, under another ID
	faultServfail        // SERVFAIL
	faultRefused         // REFUSED
	faultFormerr         // FORMERR
	faultCut             // the answer cut in the middle of a record
	faultNotReply        // the answer without QR: a query, not a response
	faultOtherName       // an answer to another question
	faultTCThenEOF       // TC over UDP; over TCP, closes at once
	faultHold            // holds each query until released (see release)
)

var faultNames = map[fault]string{
	faultTimeout: "timeout", faultGarbage: "garbage", faultWrongID: "wrong ID", faultServfail: "SERVFAIL",
	faultRefused: "REFUSED", faultFormerr: "FORMERR", faultCut: "cut short", faultNotReply: "not a response",
	faultOtherName: "another question", faultTCThenEOF: "truncated, TCP closed",
}

// testUpstream is an upstream resolver on 127.0.0.1, UDP and TCP, that
// answers every name — as the whole namespace would, so that a blocked
// name has an address to leak — and misbehaves on demand.
//
// Names it answers:
//   - *.blockedaddr.example.: an A record in 203.0.113.0/24, the prefix
//     frOrder blocks;
//   - *.alias.example.: a CNAME to www.motogpstream.me., then its A;
//   - *.big.example. TXT: three 250-byte strings;
//   - *.nx.example.: NXDOMAIN with an SOA;
//   - anything else: A upstreamAddr(name) and AAAA 2001:db8:ffff::1,
//     with an NS record in the authority section and its glue in the
//     additional section (for minimal responses to remove).
type testUpstream struct {
	udp   net.PacketConn
	tcp   net.Listener
	fault atomic.Int32
	ttl   atomic.Uint32

	queries atomic.Int64

	mu      sync.Mutex
	held    []heldQuery
	peak    int
	changed chan struct{} // signalled when a query is held
	wg      sync.WaitGroup
}

type heldQuery struct {
	reply func()
}

func startUpstream(t testing.TB) *testUpstream {
	t.Helper()
	u := &testUpstream{changed: make(chan struct{}, 1)}
	u.ttl.Store(300)
	var err error
	for range 10 {
		if u.udp, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if u.tcp, err = net.Listen("tcp", u.udp.LocalAddr().String()); err == nil {
			break
		}
		u.udp.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	u.wg.Add(2)
	go u.serveUDP()
	go u.serveTCP()
	t.Cleanup(u.close)
	return u
}

func (u *testUpstream) Addr() string    { return u.udp.LocalAddr().String() }
func (u *testUpstream) set(f fault)     { u.fault.Store(int32(f)) }
func (u *testUpstream) setTTL(s uint32) { u.ttl.Store(s) }

func (u *testUpstream) close() {
	u.udp.Close()
	u.tcp.Close()
	u.releaseAll()
	u.wg.Wait()
}

// release answers the oldest held query.
func (u *testUpstream) release() {
	u.mu.Lock()
	if len(u.held) == 0 {
		u.mu.Unlock()
		return
	}
	h := u.held[0]
	u.held = u.held[1:]
	u.mu.Unlock()
	h.reply()
}

// releaseAll stops holding queries and answers those held.
func (u *testUpstream) releaseAll() {
	u.mu.Lock()
	if fault(u.fault.Load()) == faultHold {
		u.fault.Store(int32(faultNone))
	}
	held := u.held
	u.held = nil
	u.mu.Unlock()
	for _, h := range held {
		h.reply()
	}
}

func (u *testUpstream) peakHeld() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.peak
}

func (u *testUpstream) serveUDP() {
	defer u.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := u.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		pkt := append([]byte(nil), buf[:n]...)
		u.respond(pkt, true, func(b []byte) { u.udp.WriteTo(b, from) })
	}
}

func (u *testUpstream) serveTCP() {
	defer u.wg.Done()
	for {
		c, err := u.tcp.Accept()
		if err != nil {
			return
		}
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			defer c.Close()
			var mu sync.Mutex
			for {
				var l [2]byte
				if _, err := io.ReadFull(c, l[:]); err != nil {
					return
				}
				pkt := make([]byte, binary.BigEndian.Uint16(l[:]))
				if _, err := io.ReadFull(c, pkt); err != nil {
					return
				}
				if fault(u.fault.Load()) == faultTCThenEOF {
					return
				}
				u.respond(pkt, false, func(b []byte) {
					mu.Lock()
					defer mu.Unlock()
					c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(b))))
					c.Write(b)
				})
			}
		}()
	}
}

// respond answers one query per the current fault.
func (u *testUpstream) respond(pkt []byte, udp bool, send func([]byte)) {
	u.queries.Add(1)
	req := new(dns.Msg)
	if req.Unpack(pkt) != nil || len(req.Question) != 1 {
		return
	}
	resp := upstreamAnswer(req, u.ttl.Load())
	f := fault(u.fault.Load())
	if f == faultHold {
		b, _ := resp.Pack()
		u.mu.Lock()
		if fault(u.fault.Load()) == faultHold { // not stopped meanwhile
			u.held = append(u.held, heldQuery{reply: func() { send(b) }})
			u.peak = max(u.peak, len(u.held))
			u.mu.Unlock()
			select {
			case u.changed <- struct{}{}:
			default:
			}
			return
		}
		u.mu.Unlock()
		f = faultNone
	}
	switch f {
	case faultTimeout:
		return
	case faultGarbage:
		send(append(binary.BigEndian.AppendUint16(nil, req.Id), "\xff\xfe this is not DNS at all"...))
		return
	case faultWrongID:
		resp.Id++
	case faultServfail, faultRefused, faultFormerr:
		resp = new(dns.Msg)
		resp.SetRcode(req, map[fault]int{faultServfail: dns.RcodeServerFailure, faultRefused: dns.RcodeRefused, faultFormerr: dns.RcodeFormatError}[f])
	case faultCut:
		b, _ := resp.Pack()
		send(b[:len(b)-3])
		return
	case faultNotReply:
		resp.Response = false
	case faultOtherName:
		resp.Question[0].Name = "other." + resp.Question[0].Name
	case faultTCThenEOF:
		if udp {
			resp.Answer, resp.Ns, resp.Extra = nil, nil, nil
			resp.Truncated = true
		}
	}
	b, err := resp.Pack()
	if err != nil {
		return
	}
	send(b)
}

// upstreamAddr is the address the test upstream gives a name: in
// 198.18.0.0/15, never in a blocked prefix.
func upstreamAddr(name string) netip.Addr {
	h := fnv.New32a()
	h.Write([]byte(strings.ToLower(dns.Fqdn(name))))
	v := h.Sum32()
	return netip.AddrFrom4([4]byte{198, 18 + byte(v>>16)&1, byte(v >> 8), byte(v)})
}

// blockedAddr is the address of every *.blockedaddr.example. name: in
// frOrder's 203.0.113.0/24.
var blockedAddr = netip.MustParseAddr("203.0.113.7")

func upstreamAnswer(req *dns.Msg, ttl uint32) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	hdr := func(owner string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
	}
	a := func(owner string, addr netip.Addr) dns.RR {
		return &dns.A{Hdr: hdr(owner, dns.TypeA), A: addr.AsSlice()}
	}
	switch {
	case strings.HasSuffix(name, ".nx.example.") || name == "nx.example.":
		resp.Rcode = dns.RcodeNameError
		resp.Ns = []dns.RR{&dns.SOA{Hdr: hdr("example.", dns.TypeSOA), Ns: "ns.example.", Mbox: "host.example.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: ttl}}
		return resp
	case strings.HasSuffix(name, ".blockedaddr.example."):
		if q.Qtype == dns.TypeA {
			resp.Answer = []dns.RR{a(q.Name, blockedAddr)}
		}
	case strings.HasSuffix(name, ".alias.example."):
		resp.Answer = []dns.RR{&dns.CNAME{Hdr: hdr(q.Name, dns.TypeCNAME), Target: "www.motogpstream.me."}}
		if q.Qtype == dns.TypeA {
			resp.Answer = append(resp.Answer, a("www.motogpstream.me.", upstreamAddr("www.motogpstream.me.")))
		}
	case strings.HasSuffix(name, ".big.example.") && q.Qtype == dns.TypeTXT:
		for _, c := range "xyz" {
			resp.Answer = append(resp.Answer, &dns.TXT{Hdr: hdr(q.Name, dns.TypeTXT), Txt: []string{strings.Repeat(string(c), 250)}})
		}
	default:
		switch q.Qtype {
		case dns.TypeA:
			resp.Answer = []dns.RR{a(q.Name, upstreamAddr(q.Name))}
		case dns.TypeAAAA:
			resp.Answer = []dns.RR{&dns.AAAA{Hdr: hdr(q.Name, dns.TypeAAAA), AAAA: netip.MustParseAddr("2001:db8:ffff::1").AsSlice()}}
		}
	}
	if len(resp.Answer) == 0 {
		resp.Ns = []dns.RR{&dns.SOA{Hdr: hdr("example.", dns.TypeSOA), Ns: "ns.example.", Mbox: "host.example.", Serial: 1, Refresh: 3600, Retry: 600, Expire: 86400, Minttl: ttl}}
		return resp
	}
	resp.Ns = []dns.RR{&dns.NS{Hdr: hdr("example.", dns.TypeNS), Ns: "ns.example."}}
	resp.Extra = []dns.RR{a("ns.example.", netip.MustParseAddr("192.0.2.53"))}
	return resp
}

// waitHeld waits until the upstream holds n queries.
func (u *testUpstream) waitHeld(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		u.mu.Lock()
		got := len(u.held)
		u.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-u.changed:
		case <-deadline:
			t.Fatalf("the upstream holds %d queries, want %d", got, n)
		}
	}
}
