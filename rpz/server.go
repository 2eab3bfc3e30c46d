package rpz

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/policy"
)

// Source publishes policy snapshots: a *policy.Holder.
type Source interface {
	Load() *policy.Snapshot
	Changed() <-chan struct{}
}

// Server publishes one policy zone per jurisdiction and serves them to
// secondaries: SOA queries, AXFR, IXFR from the changes it keeps, and
// NOTIFY on every new serial.
type Server struct {
	cfg      Config
	src      Source
	render   *renderer
	zones    []*zone          // in the order of cfg.Scopes
	byOrigin map[string]*zone // by origin
	keys     map[string]TSIGKey
	saved    map[string]savedZone
	notifier *notifier

	mu      sync.Mutex // guards what Start and Shutdown change
	servers []*dns.Server
	addrs   []net.Addr
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	built   *policy.Snapshot // last snapshot the zones were built from

	// updated, if set before Start, receives a value after each rebuild
	// (tests wait on it); a full channel is not waited for.
	updated chan struct{}
}

// New prepares the zones of cfg.Scopes from the current snapshot of src.
// Each zone's first serial continues the one saved in cfg.StateFile,
// unchanged if the zone is too.
func New(cfg Config, src Source) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg,
		src: src,
		render: &renderer{
			target:    cfg.target(),
			ttl:       uint32(cfg.TTL / time.Second),
			recordURL: cfg.RecordURL,
			soa: dns.SOA{
				// The names only fill the fields: nobody reaches writ
				// through them.
				Ns:      "localhost.",
				Mbox:    "hostmaster.localhost.",
				Refresh: uint32(cfg.Refresh / time.Second),
				Retry:   uint32(cfg.Retry / time.Second),
				Expire:  uint32(cfg.Expire / time.Second),
				Minttl:  uint32(cfg.TTL / time.Second),
			},
		},
		byOrigin: map[string]*zone{},
		keys:     map[string]TSIGKey{},
	}
	for _, k := range cfg.TSIGKeys {
		s.keys[k.Name] = k
	}
	saved, err := loadState(cfg.StateFile)
	if err != nil {
		return nil, err
	}
	s.saved = saved
	snap := src.Load()
	s.built = snap
	rules := buildRules(snap, cfg.Scopes, ownerRoom(cfg.ZoneTemplate))
	first := cfg.FirstSerial
	if first == 0 {
		first = uint32(time.Now().Unix())
	}
	for _, c := range cfg.Scopes {
		z := &zone{code: c, origin: ZoneName(cfg.ZoneTemplate, c)}
		if s.byOrigin[z.origin] != nil {
			return nil, fmt.Errorf("rpz: two jurisdictions share the zone %s", z.origin)
		}
		serial := first
		hash := s.render.hash(rules[c])
		if prev, ok := saved[z.origin]; ok {
			serial = prev.Serial
			if prev.Hash != hash {
				serial++
			}
		}
		s.saved[z.origin] = savedZone{Serial: serial, Hash: hash}
		z.cur.Store(&version{serial: serial, rules: rules[c]})
		s.zones = append(s.zones, z)
		s.byOrigin[z.origin] = z
	}
	if err := saveState(cfg.StateFile, s.saved); err != nil {
		return nil, err
	}
	return s, nil
}

// Zones returns the names of the zones served, in the order of the
// configured jurisdictions.
func (s *Server) Zones() []string {
	out := make([]string, len(s.zones))
	for i, z := range s.zones {
		out[i] = z.origin
	}
	return out
}

// Zone returns the name of jurisdiction c's zone, or "" if none is
// served for it.
func (s *Server) Zone(c jurisdiction.Code) string {
	for _, z := range s.zones {
		if z.code == c {
			return z.origin
		}
	}
	return ""
}

// Serial returns the current serial of a zone.
func (s *Server) Serial(zoneName string) (uint32, bool) {
	z := s.byOrigin[dns.Fqdn(strings.ToLower(zoneName))]
	if z == nil {
		return 0, false
	}
	return z.cur.Load().serial, true
}

// Start listens on every configured address (UDP and TCP), follows the
// policy, and notifies the secondaries of the current serials. It returns
// once the listeners are bound.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return errors.New("rpz: already started")
	}
	secrets := map[string]string{} // never nil: unknown keys must fail
	for name, k := range s.keys {
		secrets[name] = k.Secret
	}
	for _, addr := range s.cfg.Listen {
		udp, tcp, err := listenBoth(addr)
		if err != nil {
			s.stopLocked()
			return fmt.Errorf("rpz listen %s: %w", addr, err)
		}
		for _, srv := range []*dns.Server{
			{PacketConn: udp, Handler: s, TsigSecret: secrets},
			{Listener: tcp, Handler: s, TsigSecret: secrets},
		} {
			started := make(chan struct{})
			srv.NotifyStartedFunc = func() { close(started) }
			s.servers = append(s.servers, srv)
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				srv.ActivateAndServe()
			}()
			<-started
		}
		s.addrs = append(s.addrs, udp.LocalAddr(), tcp.Addr())
		s.cfg.Logger.Info("rpz listening", "net", "udp", "addr", udp.LocalAddr().String())
		s.cfg.Logger.Info("rpz listening", "net", "tcp", "addr", tcp.Addr().String())
	}
	ctx, s.cancel = context.WithCancel(ctx)
	s.notifier = newNotifier(ctx, s.cfg.Notify, s.cfg.Listen, s.cfg.Logger)
	for _, z := range s.zones {
		s.cfg.Logger.Info("rpz zone", "zone", z.origin, "serial", z.cur.Load().serial, "rules", len(z.cur.Load().rules))
		s.notifier.notify(z.origin, s.render.soaRR(z.origin, z.cur.Load().serial))
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.follow(ctx)
	}()
	return nil
}

// listenBoth binds UDP and TCP on the same address; with port 0 it retries
// until the port UDP got is free on TCP too.
func listenBoth(addr string) (net.PacketConn, net.Listener, error) {
	var err error
	for range 10 {
		var pc net.PacketConn
		pc, err = net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		var ln net.Listener
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
	}
	return nil, nil, err
}

// Addrs returns the bound addresses, UDP and TCP for each listen address.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.addrs)
}

// Shutdown stops serving, following the policy and notifying.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *Server) stopLocked() error {
	if s.cancel != nil {
		s.cancel()
	}
	var errs []error
	for _, srv := range s.servers {
		errs = append(errs, srv.Shutdown())
	}
	s.wg.Wait()
	if s.notifier != nil {
		s.notifier.wait()
	}
	s.servers = nil
	return errors.Join(errs...)
}

// follow rebuilds the zones at every policy change until ctx ends.
func (s *Server) follow(ctx context.Context) {
	for {
		changed := s.src.Changed()
		s.refresh(s.src.Load())
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}

// refresh rebuilds the zones from snap, publishes a new serial for each
// zone that changed, and notifies the secondaries.
func (s *Server) refresh(snap *policy.Snapshot) {
	if snap == s.built {
		return
	}
	s.built = snap
	start := time.Now()
	rules := buildRules(snap, s.cfg.Scopes, ownerRoom(s.cfg.ZoneTemplate))
	dirty := false
	for _, z := range s.zones {
		v, changed := z.update(rules[z.code], s.cfg.History, s.render)
		v.covers.Store(snap.Version())
		if !changed {
			continue
		}
		dirty = true
		d := v.deltas
		var added, removed int
		if len(d) > 0 {
			added, removed = d[len(d)-1].addedN, d[len(d)-1].removedN
		}
		s.cfg.Logger.Info("rpz zone updated", "zone", z.origin, "serial", v.serial, "rules", len(v.rules),
			"records_added", added, "records_removed", removed, "policy_version", snap.Version(), "took", time.Since(start))
		s.saved[z.origin] = savedZone{Serial: v.serial, Hash: s.render.hash(v.rules)}
		s.notifier.notify(z.origin, s.render.soaRR(z.origin, v.serial))
	}
	if dirty {
		if err := saveState(s.cfg.StateFile, s.saved); err != nil {
			// The zones are served all the same; only a restart could
			// then reuse a serial, which the next change corrects.
			s.cfg.Logger.Error("rpz: saving serials", "err", err)
		}
	}
	if s.updated != nil {
		select {
		case s.updated <- struct{}{}:
		default:
		}
	}
}

// ServeDNS answers SOA and NS queries for the zones' apexes and transfer
// requests; anything else is refused.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	peer := addrOf(w.RemoteAddr())
	m := new(dns.Msg)
	m.SetReply(r)
	if r.Opcode != dns.OpcodeQuery {
		m.SetRcode(r, dns.RcodeNotImplemented)
		w.WriteMsg(m)
		return
	}
	if len(r.Question) != 1 {
		m.SetRcode(r, dns.RcodeFormatError)
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	z := s.byOrigin[strings.ToLower(q.Name)]

	// A signed request with a bad signature gets the TSIG error whatever
	// it asks (RFC 8945 section 5.2).
	var key *TSIGKey
	if t := r.IsTsig(); t != nil {
		k, ok := s.keys[strings.ToLower(t.Hdr.Name)]
		code := uint16(dns.RcodeSuccess)
		switch err := w.TsigStatus(); {
		case !ok || !strings.EqualFold(k.Algorithm, t.Algorithm) || errors.Is(err, dns.ErrSecret):
			code = dns.RcodeBadKey
		case errors.Is(err, dns.ErrTime):
			code = dns.RcodeBadTime
		case err != nil:
			code = dns.RcodeBadSig
		}
		if code != dns.RcodeSuccess {
			s.cfg.Logger.Warn("rpz request refused: TSIG", "zone", q.Name, "type", dns.TypeToString[q.Qtype],
				"peer", peer.String(), "key", t.Hdr.Name, "error", dns.RcodeToString[int(code)])
			writeTSIGError(w, m, t, code)
			return
		}
		key = &k
	}
	if z == nil || (q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY) {
		m.SetRcode(r, dns.RcodeRefused)
		s.write(w, m, key)
		return
	}
	switch q.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		s.transfer(w, r, z, peer, key)
		return
	case dns.TypeSOA:
		m.Answer = []dns.RR{s.render.soaRR(z.origin, z.cur.Load().serial)}
	case dns.TypeNS:
		m.Answer = s.render.apex(z.origin)
	default:
		m.Ns = []dns.RR{s.render.soaRR(z.origin, z.cur.Load().serial)}
	}
	m.Authoritative = true
	s.write(w, m, key)
}

// write sends m, signed with key if the request was.
func (s *Server) write(w dns.ResponseWriter, m *dns.Msg, key *TSIGKey) {
	if key != nil {
		m.SetTsig(key.Name, key.Algorithm, 300, time.Now().Unix())
	}
	if err := w.WriteMsg(m); err != nil {
		s.cfg.Logger.Debug("rpz: writing a response", "err", err)
	}
}

// writeTSIGError answers a request whose TSIG failed: NOTAUTH and the
// TSIG error, unsigned, since the key or the signature cannot be trusted
// (RFC 8945 section 5.3.2).
func writeTSIGError(w dns.ResponseWriter, m *dns.Msg, t *dns.TSIG, code uint16) {
	m.Rcode = dns.RcodeNotAuth
	m.Answer, m.Ns = nil, nil
	resp := &dns.TSIG{
		Hdr:        dns.RR_Header{Name: t.Hdr.Name, Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
		Algorithm:  t.Algorithm,
		TimeSigned: t.TimeSigned,
		Fudge:      t.Fudge,
		OrigId:     m.Id,
		Error:      code,
	}
	if code == dns.RcodeBadTime {
		// The server's time, so that the client can see the skew.
		now := uint64(time.Now().Unix())
		resp.OtherLen = 6
		resp.OtherData = fmt.Sprintf("%012x", now)
	}
	m.Extra = []dns.RR{resp}
	b, err := m.Pack()
	if err != nil {
		return
	}
	w.Write(b)
}

func (s *Server) allowed(a netip.Addr) bool {
	for _, p := range s.cfg.AllowTransfer {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func addrOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

// WriteZone writes the current content of a zone as a zone file that
// BIND, Unbound and PowerDNS can load.
func (s *Server) WriteZone(w io.Writer, zoneName string) error {
	z := s.byOrigin[dns.Fqdn(strings.ToLower(zoneName))]
	if z == nil {
		return fmt.Errorf("rpz: no zone %s is served", zoneName)
	}
	v := z.cur.Load()
	return s.render.writeZone(w, z.origin, v, fmt.Sprintf("%s serial %d: response policy zone of jurisdiction %s, written by writ", z.origin, v.serial, z.code))
}
