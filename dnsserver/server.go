// Package dnsserver is writ's DNS enforcement point: a forwarding
// resolver that answers queries for names blocked by an order in force
// for the client's jurisdiction with a refusal carrying Extended DNS Error
// 16 (Censored) and the structured justification, and forwards every
// other query unchanged to the configured upstreams through a cache.
package dnsserver

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"sync"

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
	limiter *rateLimiter // nil: no rate limit
	texts   extraTexts
	Metrics *Metrics

	mu       sync.Mutex
	udp      []*net.UDPConn
	tcp      []net.Listener
	tcpConns tcpConns
	addrs    []net.Addr
	wg       sync.WaitGroup // read loops, accept loops, TCP connections
	general  sync.WaitGroup // UDP queries on the general path
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
	srv.limiter = newRateLimiter(cfg.RateLimit)
	return srv, nil
}

// Start binds every listen address on UDP and TCP and serves in the
// background until ctx ends or Shutdown is called. A bind error is
// returned at once, with nothing left listening.
//
// UDP, where nearly all queries arrive, is served by writ's own read
// loops, one socket and goroutine per processor (SO_REUSEPORT on Linux);
// TCP by an accept loop per address and a goroutine per connection,
// within the limits of Config.TCP.
func (s *Server) Start(ctx context.Context) error {
	var (
		udp   []*net.UDPConn
		tcp   []net.Listener
		addrs []net.Addr
	)
	for _, addr := range s.cfg.Listen {
		conns, ln, err := listen(addr, runtime.GOMAXPROCS(0))
		if err != nil {
			for _, c := range udp {
				c.Close()
			}
			for _, ln := range tcp {
				ln.Close()
			}
			return err
		}
		udp = append(udp, conns...)
		tcp = append(tcp, ln)
		addrs = append(addrs, conns[0].LocalAddr(), ln.Addr())
	}
	s.mu.Lock()
	s.udp, s.tcp, s.addrs = udp, tcp, addrs
	for _, c := range udp {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveUDP(c)
		}()
	}
	for _, ln := range tcp {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveTCP(ln)
		}()
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

// Shutdown stops serving: it closes the sockets and the TCP connections,
// and waits for the queries being answered, or for ctx to end.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	tcp, udp := s.tcp, s.udp
	s.tcp, s.udp = nil, nil
	s.mu.Unlock()
	for _, c := range udp {
		c.Close()
	}
	for _, ln := range tcp {
		ln.Close()
	}
	s.closeTCP()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		s.general.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.up.closeIdle()
	return nil
}
