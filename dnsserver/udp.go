package dnsserver

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"

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
		pkt := buf[:n]
		if resp, ok := s.handleUDP(pkt, from.Addr().Unmap(), sc); ok {
			s.Metrics.add(&sc.stats)
			if _, err := conn.WriteToUDPAddrPort(resp, from); err != nil {
				s.cfg.Logger.Debug("dns write failed", "client", from.String(), "err", err)
			}
			continue
		}
		pkt = bytes.Clone(pkt)
		s.general.Add(1)
		go func() {
			defer s.general.Done()
			s.serveUDPGeneral(conn, pkt, from)
		}()
	}
}

// serveUDPGeneral answers a UDP query on the general path, checking and
// unpacking it as github.com/miekg/dns's server does for TCP: a response
// is ignored, a message that is not a query of one question is refused
// with FORMERR or NOTIMP, and the rest goes to ServeDNS.
func (s *Server) serveUDPGeneral(conn *net.UDPConn, pkt []byte, from netip.AddrPort) {
	if len(pkt) < headerLen {
		return // not even a header: anything sent back could amplify
	}
	w := &udpWriter{conn: conn, remote: from}
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
	if err := w.WriteMsg(resp); err != nil {
		s.cfg.Logger.Debug("dns write failed", "client", from.String(), "err", err)
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
	conn   *net.UDPConn
	remote netip.AddrPort
}

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
