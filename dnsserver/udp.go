package dnsserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// serveUDPSimple reads queries from one UDP socket, one at a time, until
// it is closed. The fast path answers in the reading goroutine, from its
// own buffers; a query it cannot answer (a cache miss, an unusual query)
// is handed to a new goroutine so that an upstream round trip never holds
// up the socket.
func (s *Server) serveUDPSimple(conn *net.UDPConn) {
	buf := make([]byte, 65535)
	sc := newScratch()
	for {
		n, from, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.cfg.Logger.Debug("dns read failed", "err", err)
			continue
		}
		resp := s.dispatchUDP(conn, buf[:n], from, sc, true)
		s.Metrics.add(&sc.stats)
		if resp != nil {
			if _, err := conn.WriteToUDPAddrPort(resp, from); err != nil {
				s.cfg.Logger.Debug("dns write failed", "client", from.String(), "err", err)
			}
		}
	}
}

// packetConn is where the general path sends a UDP answer; *net.UDPConn
// is one.
type packetConn interface {
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
	LocalAddr() net.Addr
}

// dispatchUDP answers one UDP datagram, as both read loops do: on the
// fast path, returning the answer to send (nil when there is none), or
// else on the general path, which sends its own answer on conn, in a
// goroutine of its own when async so that an upstream round trip never
// holds up the socket.
func (s *Server) dispatchUDP(conn packetConn, pkt []byte, from netip.AddrPort, sc *scratch, async bool) []byte {
	if resp, ok := s.handleUDP(pkt, from.Addr().Unmap(), sc); ok {
		return resp
	}
	limited := sc.limited
	if !async {
		s.serveUDPGeneral(conn, pkt, from, limited)
		return nil
	}
	pkt = bytes.Clone(pkt)
	s.general.Add(1)
	go func() {
		defer s.general.Done()
		s.serveUDPGeneral(conn, pkt, from, limited)
	}()
	return nil
}

// serveUDPGeneral answers a UDP query on the general path: it counts the
// response against the client's rate limit unless the fast path already
// did (limited), then answers as serveMessage does.
func (s *Server) serveUDPGeneral(conn packetConn, pkt []byte, from netip.AddrPort, limited bool) {
	if len(pkt) < headerLen {
		return // not even a header: anything sent back could amplify
	}
	w := &udpWriter{conn: conn, remote: from, qlen: len(pkt)}
	if s.limiter != nil && !limited {
		switch s.limiter.check(from.Addr().Unmap(), time.Now().Unix()) {
		case rateDrop:
			s.Metrics.countQuery(true)
			s.Metrics.rateLimited[rateDrop].Add(1)
			return
		case rateSlip:
			s.Metrics.countQuery(true)
			s.Metrics.rateLimited[rateSlip].Add(1)
			s.slipGeneral(w, pkt)
			return
		}
	}
	s.serveMessage(w, pkt)
}

// slipGeneral sends the truncated answer to a rate-limited query the
// fast path could not parse, if it is a query of one question; anything
// else gets nothing.
func (s *Server) slipGeneral(w *udpWriter, pkt []byte) {
	req := new(dns.Msg)
	if req.Unpack(pkt) != nil || req.Response || len(req.Question) != 1 {
		return
	}
	resp := s.truncated(&request{msg: req, opt: req.IsEdns0()}, dns.RcodeSuccess)
	s.Metrics.countRcode(resp.Rcode)
	if err := w.WriteMsg(resp); err != nil {
		s.cfg.Logger.Debug("dns write failed", "client", w.remote.String(), "err", err)
	}
}

// serveMessage answers a query in wire format on the general path,
// checking and unpacking it as github.com/miekg/dns's server does: a
// response is ignored, a message that is not a query of one question is
// refused with FORMERR or NOTIMP, and the rest goes to ServeDNS.
func (s *Server) serveMessage(w dns.ResponseWriter, pkt []byte) {
	if len(pkt) < headerLen {
		return
	}
	dh := dns.Header{
		Id:      binary.BigEndian.Uint16(pkt),
		Bits:    binary.BigEndian.Uint16(pkt[2:]),
		Qdcount: binary.BigEndian.Uint16(pkt[4:]),
		Ancount: binary.BigEndian.Uint16(pkt[6:]),
		Nscount: binary.BigEndian.Uint16(pkt[8:]),
		Arcount: binary.BigEndian.Uint16(pkt[10:]),
	}
	action := dns.DefaultMsgAcceptFunc(dh)
	req := new(dns.Msg)
	switch action {
	case dns.MsgIgnore:
		return
	case dns.MsgAccept:
		if err := req.Unpack(pkt); err == nil {
			s.ServeDNS(w, req)
			return
		}
	}
	resp := &dns.Msg{MsgHdr: headerOf(dh)}
	resp.SetRcodeFormatError(resp)
	resp.Zero = false
	if action == dns.MsgRejectNotImplemented {
		resp.Opcode = int(dh.Bits>>11) & 0xf
		resp.Rcode = dns.RcodeNotImplemented
	}
	resp.Question = req.Question
	s.Metrics.countQuery(isUDP(w))
	s.Metrics.countRcode(resp.Rcode)
	if err := w.WriteMsg(resp); err != nil {
		s.cfg.Logger.Debug("dns write failed", "client", w.RemoteAddr().String(), "err", err)
	}
}

// headerOf returns the header fields of a message header.
func headerOf(dh dns.Header) dns.MsgHdr {
	b := dh.Bits
	return dns.MsgHdr{
		Id:                 dh.Id,
		Response:           b&flagQR != 0,
		Opcode:             int(b>>11) & 0xf,
		Authoritative:      b&flagAA != 0,
		Truncated:          b&flagTC != 0,
		RecursionDesired:   b&flagRD != 0,
		RecursionAvailable: b&flagRA != 0,
		Zero:               b&(1<<6) != 0,
		AuthenticatedData:  b&flagAD != 0,
		CheckingDisabled:   b&flagCD != 0,
		Rcode:              int(b & 0xf),
	}
}

// udpWriter is the dns.ResponseWriter of a UDP query on the general path.
type udpWriter struct {
	conn   packetConn
	remote netip.AddrPort
	qlen   int // the query's size, which bounds the answer's
}

func (w *udpWriter) queryLen() int { return w.qlen }

func (w *udpWriter) LocalAddr() net.Addr  { return w.conn.LocalAddr() }
func (w *udpWriter) RemoteAddr() net.Addr { return net.UDPAddrFromAddrPort(w.remote) }
func (w *udpWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
func (w *udpWriter) Write(b []byte) (int, error) { return w.conn.WriteToUDPAddrPort(b, w.remote) }
func (w *udpWriter) Close() error                { return nil }
func (w *udpWriter) TsigStatus() error           { return nil }
func (w *udpWriter) TsigTimersOnly(bool)         {}
func (w *udpWriter) Hijack()                     {}
