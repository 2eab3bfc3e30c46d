package rpz

import (
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
)

// maxMessageBytes bounds the record bytes (uncompressed) of one
// transfer message, well under the 64 KiB a TCP message may hold.
const maxMessageBytes = 32 << 10

// transfer answers an AXFR or IXFR request for zone z from peer.
func (s *Server) transfer(w dns.ResponseWriter, r *dns.Msg, z *zone, peer netip.Addr, key *TSIGKey) {
	q := r.Question[0]
	kind := dns.TypeToString[q.Qtype]
	refuse := func(reason string) {
		s.cfg.Logger.Warn("rpz transfer refused", "zone", z.origin, "type", kind, "peer", peer.String(), "reason", reason)
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeRefused)
		s.write(w, m, key)
	}
	if !s.allowed(peer) {
		refuse("address not in the transfer ACL")
		return
	}
	if s.cfg.RequireTSIG && key == nil {
		refuse("TSIG required")
		return
	}
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	if udp && q.Qtype == dns.TypeAXFR {
		refuse("AXFR over UDP")
		return
	}

	v := z.cur.Load()
	var (
		deltas      []*delta
		incremental bool
		since       uint32
	)
	if q.Qtype == dns.TypeIXFR {
		var soa *dns.SOA
		if len(r.Ns) > 0 {
			soa, _ = r.Ns[0].(*dns.SOA)
		}
		if soa == nil {
			m := new(dns.Msg)
			m.SetRcode(r, dns.RcodeFormatError)
			s.write(w, m, key)
			return
		}
		since = soa.Serial
		deltas, incremental = v.since(since)
		if SerialLess(v.serial, since) {
			// The secondary will refuse a serial older than its own: only
			// a lost state file (rpz-state.json) makes writ go back.
			s.cfg.Logger.Warn("rpz secondary is ahead of writ; it keeps its copy until its serial is passed or its SOA expire",
				"zone", z.origin, "peer", peer.String(), "secondary_serial", since, "serial", v.serial)
		}
	}

	var records []dns.RR
	current := s.render.soaRR(z.origin, v.serial)
	switch {
	case incremental && since == v.serial:
		// Up to date: the current SOA alone (RFC 1995 section 2).
		s.send(w, r, key, []dns.RR{current})
		s.cfg.Logger.Debug("rpz transfer", "zone", z.origin, "type", kind, "peer", peer.String(), "serial", v.serial, "result", "up to date")
		return
	case incremental:
		records = append(records, current)
		for _, d := range deltas {
			records = append(records, s.render.soaRR(z.origin, d.from))
			for _, c := range d.removed {
				records = s.render.records(records, z.origin, c)
			}
			records = append(records, s.render.soaRR(z.origin, d.to))
			for _, c := range d.added {
				records = s.render.records(records, z.origin, c)
			}
		}
		records = append(records, current)
	case udp:
		// A full zone never goes over UDP: the SOA alone tells the
		// client to ask again over TCP (RFC 1995 section 2).
		s.send(w, r, key, []dns.RR{current})
		return
	}

	start := time.Now()
	var n int
	if incremental {
		if udp && !fitsUDP(r, records) {
			s.send(w, r, key, []dns.RR{current})
			return
		}
		n = len(records)
		if err := s.send(w, r, key, records); err != nil {
			s.cfg.Logger.Warn("rpz transfer failed", "zone", z.origin, "type", kind, "peer", peer.String(), "err", err)
			return
		}
	} else {
		// A full transfer streams the zone rather than building it whole.
		out := &xfrWriter{s: s, w: w, r: r, key: key}
		s.render.eachRecord(z.origin, v, func(rr dns.RR) bool {
			n++
			return out.add(rr) == nil
		})
		n++
		if out.add(current) != nil || out.flush() != nil {
			s.cfg.Logger.Warn("rpz transfer failed", "zone", z.origin, "type", kind, "peer", peer.String(), "err", out.err)
			return
		}
	}
	result := "full"
	if incremental {
		result = "incremental"
	}
	keyName := ""
	if key != nil {
		keyName = key.Name
	}
	s.cfg.Logger.Info("rpz transfer", "zone", z.origin, "type", kind, "peer", peer.String(), "key", keyName,
		"serial", v.serial, "from_serial", since, "result", result, "records", n, "took", time.Since(start))
	if s.cfg.OnTransfer != nil {
		s.cfg.OnTransfer(z.origin, v.serial, v.covers.Load(), peer, incremental)
	}
}

// fitsUDP reports whether records fit in one UDP answer to r.
func fitsUDP(r *dns.Msg, records []dns.RR) bool {
	size := dns.MinMsgSize
	if opt := r.IsEdns0(); opt != nil {
		size = int(opt.UDPSize())
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.Compress = true
	m.Answer = records
	return m.Len()+200 <= size // room for a TSIG record
}

// send writes records as one transfer, split into messages.
func (s *Server) send(w dns.ResponseWriter, r *dns.Msg, key *TSIGKey, records []dns.RR) error {
	out := &xfrWriter{s: s, w: w, r: r, key: key}
	for _, rr := range records {
		if err := out.add(rr); err != nil {
			return err
		}
	}
	return out.flush()
}

// xfrWriter packs a transfer's records into messages. Each message is
// signed when the request was; after the first, with the timers only, as
// RFC 8945 section 5.3.1 prescribes for a message stream.
type xfrWriter struct {
	s    *Server
	w    dns.ResponseWriter
	r    *dns.Msg
	key  *TSIGKey
	buf  []dns.RR
	size int
	sent int
	err  error
}

func (x *xfrWriter) add(rr dns.RR) error {
	if x.err != nil {
		return x.err
	}
	l := dns.Len(rr)
	if x.size+l > maxMessageBytes && len(x.buf) > 0 {
		if err := x.flush(); err != nil {
			return err
		}
	}
	x.buf = append(x.buf, rr)
	x.size += l
	return nil
}

func (x *xfrWriter) flush() error {
	if x.err != nil || (len(x.buf) == 0 && x.sent > 0) {
		return x.err
	}
	m := new(dns.Msg)
	m.SetReply(x.r)
	m.Authoritative = true
	m.Compress = true
	m.Answer = x.buf
	if x.key != nil {
		m.SetTsig(x.key.Name, x.key.Algorithm, 300, time.Now().Unix())
	}
	if err := x.w.WriteMsg(m); err != nil {
		x.err = err
		return err
	}
	x.w.TsigTimersOnly(true)
	x.sent++
	x.buf, x.size = x.buf[:0:0], 0
	return nil
}
