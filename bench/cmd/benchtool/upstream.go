package main

import (
	"flag"
	"hash/fnv"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/miekg/dns"
)

// upstream serves every name, as an authoritative server for the whole
// namespace would: an A query gets one or two addresses (in 198.18.0.0/15,
// the benchmarking range) derived from the name, and "www." names a CNAME
// to a CDN host first, as much of the web does; other types get an empty
// answer with an SOA, which resolvers cache as a negative answer. Every
// TTL is an hour, so that answers stay cached for the whole run.
func upstream(args []string) error {
	fs := flag.NewFlagSet("upstream", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:0", "listen address (UDP and TCP)")
	fs.Parse(args)
	pc, err := net.ListenPacket("udp", *addr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		return err
	}
	h := dns.HandlerFunc(answer)
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: ln, Handler: h}
	go tcp.ActivateAndServe()
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		udp.Shutdown()
		tcp.Shutdown()
	}()
	return udp.ActivateAndServe()
}

var soa = func() dns.RR {
	rr, _ := dns.NewRR(". 3600 IN SOA a.bench. hostmaster.bench. 1 3600 600 86400 3600")
	return rr
}()

func answer(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := strings.ToLower(q.Name)
	h := fnv.New32a()
	h.Write([]byte(name))
	sum := h.Sum32()
	hdr := func(owner string, t uint16) dns.RR_Header {
		return dns.RR_Header{Name: owner, Rrtype: t, Class: dns.ClassINET, Ttl: 3600}
	}
	switch q.Qtype {
	case dns.TypeA:
		owner := q.Name
		if strings.HasPrefix(name, "www.") {
			target := "e" + strings.TrimSuffix(strings.ReplaceAll(name[4:], ".", "-"), "-") + ".edge.cdn-bench.net."
			m.Answer = append(m.Answer, &dns.CNAME{Hdr: hdr(owner, dns.TypeCNAME), Target: target})
			owner = target
		}
		for i := range 1 + sum%2 {
			a := net.IPv4(198, 18+byte(sum>>8)%2, byte(sum>>16), byte(sum>>24)+byte(i))
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(owner, dns.TypeA), A: a})
		}
	default:
		s := dns.Copy(soa).(*dns.SOA)
		s.Hdr.Name = q.Name
		m.Ns = []dns.RR{s}
	}
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(1232, opt.Do())
	}
	w.WriteMsg(m)
}
