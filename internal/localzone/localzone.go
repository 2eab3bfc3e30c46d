// Package localzone is a minimal authoritative DNS server for fixed
// records, on UDP and TCP. writ's demo mode uses it as the upstream so
// that a newcomer sees real answers without Internet access, and tests
// use it as a real upstream on loopback.
package localzone

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// Server answers queries from a fixed set of records.
type Server struct {
	records map[string][]dns.RR // by lower-case owner name
	udp     *dns.Server
	tcp     *dns.Server
	addr    string
	queries atomic.Int64
	wg      sync.WaitGroup
}

// Start serves the records, given in zone-file syntax one per line
// ("www.example. 300 IN A 192.0.2.1"), on addr (UDP and TCP; port 0
// picks a free port, the same for both). Names with no record get
// NXDOMAIN; names with records of other types get an empty answer.
func Start(addr string, records ...string) (*Server, error) {
	s := &Server{records: map[string][]dns.RR{}}
	for _, line := range records {
		rr, err := dns.NewRR(line)
		if err != nil {
			return nil, fmt.Errorf("localzone: record %q: %w", line, err)
		}
		if rr == nil {
			continue
		}
		name := strings.ToLower(rr.Header().Name)
		s.records[name] = append(s.records[name], rr)
	}
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	// Bind UDP first, then TCP on the same port; retry when port 0 gave a
	// UDP port already taken on TCP.
	for range 10 {
		pc, err = net.ListenPacket("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("localzone: %w", err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("localzone: %w", err)
	}
	s.addr = pc.LocalAddr().String()
	s.udp = &dns.Server{PacketConn: pc, Handler: s}
	s.tcp = &dns.Server{Listener: ln, Handler: s}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			srv.ActivateAndServe()
		}()
		<-started
	}
	return s, nil
}

// Addr is the address the server listens on, for UDP and TCP.
func (s *Server) Addr() string { return s.addr }

// Queries is the number of queries answered so far.
func (s *Server) Queries() int64 { return s.queries.Load() }

// Close stops the server.
func (s *Server) Close() error {
	ctx := context.Background()
	err := errors.Join(s.udp.ShutdownContext(ctx), s.tcp.ShutdownContext(ctx))
	s.wg.Wait()
	return err
}

// ServeDNS answers one query from the records.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	s.queries.Add(1)
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	rrs, ok := s.records[strings.ToLower(q.Name)]
	if !ok {
		m.Rcode = dns.RcodeNameError
	}
	for _, rr := range rrs {
		if rr.Header().Rrtype == q.Qtype || q.Qtype == dns.TypeANY {
			m.Answer = append(m.Answer, dns.Copy(rr))
		} else if rr.Header().Rrtype == dns.TypeCNAME {
			m.Answer = append(m.Answer, dns.Copy(rr))
			if target, ok := s.records[strings.ToLower(rr.(*dns.CNAME).Target)]; ok {
				for _, t := range target {
					if t.Header().Rrtype == q.Qtype {
						m.Answer = append(m.Answer, dns.Copy(t))
					}
				}
			}
		}
	}
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(1232, opt.Do())
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}
