// Package dnsserver is writ's DNS enforcement point: a forwarding
// resolver that answers queries for names blocked by an order in force
// for the client's jurisdiction with a refusal carrying Extended DNS Error
// 16 (Censored) and the structured justification, and forwards every
// other query unchanged to the configured upstreams through a cache.
package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
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
	servers []*dns.Server
	addrs   []net.Addr
	wg      sync.WaitGroup
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
func (s *Server) Start(ctx context.Context) error {
	var servers []*dns.Server
	closeAll := func() {
		for _, srv := range servers {
			if srv.PacketConn != nil {
				srv.PacketConn.Close()
			}
			if srv.Listener != nil {
				srv.Listener.Close()
			}
		}
	}
	for _, addr := range s.cfg.Listen {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			closeAll()
			return fmt.Errorf("dns listen %s/udp: %w", addr, err)
		}
		servers = append(servers, &dns.Server{PacketConn: pc, Handler: s, UDPSize: 65535})
		// Port 0 means "any": TCP takes the port UDP got.
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			closeAll()
			return fmt.Errorf("dns listen %s/tcp: %w", pc.LocalAddr(), err)
		}
		servers = append(servers, &dns.Server{Listener: ln, Handler: s, ReadTimeout: tcpTimeout, WriteTimeout: tcpTimeout})
	}
	s.mu.Lock()
	s.servers = servers
	for _, srv := range servers {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		if srv.PacketConn != nil {
			s.addrs = append(s.addrs, srv.PacketConn.LocalAddr())
		} else {
			s.addrs = append(s.addrs, srv.Listener.Addr())
		}
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
	servers := s.servers
	s.servers = nil
	s.mu.Unlock()
	var errs []error
	for _, srv := range servers {
		if err := srv.ShutdownContext(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}
