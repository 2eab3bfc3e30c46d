// Package dnsserver is writ's DNS enforcement point: a forwarding
// resolver that answers queries for names blocked by an order in force
// for the client's jurisdiction with a refusal carrying Extended DNS Error
// 16 (Censored) and the structured justification, and forwards every
// other query unchanged to the configured upstreams through a cache.
package dnsserver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/scope"
)

// Policy supplies the snapshot in force; policy.Holder is one.
type Policy interface {
	Load() *policy.Snapshot
}

// Scoper maps a client address to its jurisdiction; scope.Resolver is one.
type Scoper interface {
	Lookup(netip.Addr) (jurisdiction.Code, scope.Source)
}

// Server is a running DNS enforcement point.
type Server struct {
	cfg     Config
	policy  Policy
	scoper  Scoper
	up      *forwarder
	cache   *cache
	texts   extraTexts
	Metrics *Metrics

	mu      sync.Mutex
	udp     []*net.UDPConn
	servers []*dns.Server // TCP
	addrs   []net.Addr
	wg      sync.WaitGroup
	general sync.WaitGroup // UDP queries on the general path
}

// New returns a server for cfg; call Start to serve.
func New(cfg Config, p Policy, s Scoper) (*Server, error) {
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	srv := &Server{
		cfg:     cfg,
		policy:  p,
		scoper:  s,
		Metrics: newMetrics(),
	}
	srv.up = &forwarder{upstreams: cfg.Upstreams, timeout: cfg.UpstreamTimeout, metrics: srv.Metrics}
	if cfg.CacheEntries > 0 {
		srv.cache = newCache(cfg.CacheEntries, cfg.MaxCacheTTL)
	}
	return srv, nil
}

// Start binds every listen address on UDP and TCP and serves in the
// background until ctx ends or Shutdown is called. A bind error is
// returned at once, with nothing left listening.
//
// UDP, where nearly all queries arrive, is served by writ's own read
// loops, one socket and goroutine per processor (SO_REUSEPORT on Linux);
// TCP by github.com/miekg/dns's server.
func (s *Server) Start(ctx context.Context) error {
	var (
		udp   []*net.UDPConn
		tcp   []*dns.Server
		addrs []net.Addr
	)
	closeAll := func() {
		for _, c := range udp {
			c.Close()
		}
		for _, srv := range tcp {
			srv.Listener.Close()
		}
	}
	for _, addr := range s.cfg.Listen {
		conns, ln, err := listen(addr, runtime.GOMAXPROCS(0))
		if err != nil {
			closeAll()
			return err
		}
		udp = append(udp, conns...)
		tcp = append(tcp, &dns.Server{Listener: ln, Handler: s, ReadTimeout: tcpTimeout, WriteTimeout: tcpTimeout})
		addrs = append(addrs, conns[0].LocalAddr(), ln.Addr())
	}
	s.mu.Lock()
	s.udp, s.servers, s.addrs = udp, tcp, addrs
	for _, c := range udp {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveUDP(c)
		}()
	}
	for _, srv := range tcp {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.ActivateAndServe(); err != nil && !errors.Is(err, net.ErrClosed) {
				s.cfg.Logger.Error("dns server stopped", "err", err)
			}
		}()
		<-started
	}
	s.mu.Unlock()
	for _, a := range s.addrs {
		s.cfg.Logger.Info("dns listening", "addr", a.String(), "net", a.Network())
	}
	go func() {
		<-ctx.Done()
		s.Shutdown(context.Background())
	}()
	return nil
}

// Addrs returns the bound addresses, UDP and TCP, in listen order.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]net.Addr(nil), s.addrs...)
}

// Shutdown stops serving and waits for the listeners to close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	servers, udp := s.servers, s.udp
	s.servers, s.udp = nil, nil
	s.mu.Unlock()
	var errs []error
	for _, c := range udp {
		c.Close()
	}
	for _, srv := range servers {
		if err := srv.ShutdownContext(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	s.wg.Wait()
	s.general.Wait()
	s.up.closeIdle()
	return errors.Join(errs...)
}
