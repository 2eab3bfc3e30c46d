package httpgate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ServerConfig configures the standalone gate's listeners. Each address
// left empty is not served.
type ServerConfig struct {
	// Listen is the plain-HTTP reverse proxy's address.
	Listen string
	// TLSListen is the address where TLS is terminated with Certificates
	// for the names they cover; connections for other names are relayed
	// untouched to TLSPassthrough, or, without it, terminated with the
	// first certificate.
	TLSListen      string
	Certificates   []tls.Certificate
	TLSPassthrough string
	// Origins are where allowed requests go.
	Origins Origins
	// Transport reaches the origins; nil means NewTransport().
	Transport http.RoundTripper
	// DecisionListen is the address of the decision service (see
	// Gate.DecisionHandler).
	DecisionListen string
	// Gatherer, when set, is served at /metrics on the decision listener.
	Gatherer prometheus.Gatherer
}

// Validate reports configuration that cannot work, naming the setting.
func (c ServerConfig) Validate() error {
	var errs []error
	if c.Listen == "" && c.TLSListen == "" && c.DecisionListen == "" {
		errs = append(errs, errors.New("gate: nothing to serve; set listen, tls_listen or decision_listen"))
	}
	if (c.Listen != "" || c.TLSListen != "") && c.Origins.Default == nil && len(c.Origins.ByHost) == 0 {
		errs = append(errs, errors.New("gate: a proxy listener needs an origin (origin or routes)"))
	}
	if c.TLSListen != "" && len(c.Certificates) == 0 {
		errs = append(errs, errors.New("gate tls_listen: no certificates; give at least one certificate and key"))
	}
	if c.TLSListen == "" && (len(c.Certificates) > 0 || c.TLSPassthrough != "") {
		errs = append(errs, errors.New("gate: certificates and tls_passthrough need tls_listen"))
	}
	return errors.Join(errs...)
}

// Server runs the standalone gate: the reverse proxy (plain HTTP and
// TLS) and the decision service.
type Server struct {
	gate *Gate
	cfg  ServerConfig
	log  *slog.Logger

	mu       sync.Mutex
	servers  []*http.Server
	front    *tlsFront
	proxy    net.Addr
	tlsAddr  net.Addr
	decision net.Addr
	wg       sync.WaitGroup
}

// NewServer returns a server for g; call Start to serve.
func NewServer(g *Gate, cfg ServerConfig) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Server{gate: g, cfg: cfg, log: g.cfg.Logger}, nil
}

// Start binds every configured address and serves in the background until
// ctx ends or Shutdown is called. A bind error is returned at once, with
// nothing left listening.
func (s *Server) Start(ctx context.Context) error {
	var lns []net.Listener
	fail := func(err error) error {
		for _, ln := range lns {
			ln.Close()
		}
		return err
	}
	listen := func(what, addr string) (net.Listener, error) {
		if addr == "" {
			return nil, nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("gate %s listen %s: %w", what, addr, err)
		}
		lns = append(lns, ln)
		return ln, nil
	}
	proxyLn, err := listen("proxy", s.cfg.Listen)
	if err != nil {
		return fail(err)
	}
	tlsLn, err := listen("TLS", s.cfg.TLSListen)
	if err != nil {
		return fail(err)
	}
	decLn, err := listen("decision", s.cfg.DecisionListen)
	if err != nil {
		return fail(err)
	}

	newServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	serve := func(srv *http.Server, ln net.Listener, what string) {
		s.servers = append(s.servers, srv)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				s.log.Error("gate server stopped", "listener", what, "err", err)
			}
		}()
		s.log.Info("gate listening", "listener", what, "addr", ln.Addr().String())
	}
	if proxyLn != nil || tlsLn != nil {
		proxy := s.gate.Proxy(s.cfg.Origins, s.cfg.Transport)
		if proxyLn != nil {
			s.proxy = proxyLn.Addr()
			serve(newServer(proxy), proxyLn, "proxy")
		}
		if tlsLn != nil {
			front, err := newTLSFront(s.gate, tlsLn, s.cfg.Certificates, s.cfg.TLSPassthrough)
			if err != nil {
				return fail(err)
			}
			s.front, s.tlsAddr = front, tlsLn.Addr()
			serve(newServer(proxy), front, "tls")
		}
	}
	if decLn != nil {
		h := s.gate.DecisionHandler()
		if s.cfg.Gatherer != nil {
			mux := http.NewServeMux()
			mux.Handle("/", h)
			mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}))
			h = mux
		}
		s.decision = decLn.Addr()
		serve(newServer(h), decLn, "decision")
	}
	go func() {
		<-ctx.Done()
		s.Shutdown(context.Background())
	}()
	return nil
}

// ProxyAddr returns the plain-HTTP proxy's address, nil if not
// configured.
func (s *Server) ProxyAddr() net.Addr { s.mu.Lock(); defer s.mu.Unlock(); return s.proxy }

// TLSAddr returns the TLS listener's address, nil if not configured.
func (s *Server) TLSAddr() net.Addr { s.mu.Lock(); defer s.mu.Unlock(); return s.tlsAddr }

// DecisionAddr returns the decision service's address, nil if not
// configured.
func (s *Server) DecisionAddr() net.Addr { s.mu.Lock(); defer s.mu.Unlock(); return s.decision }

// Shutdown stops accepting, lets requests in progress finish until ctx
// ends, and cuts relayed TLS connections.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	servers, front := s.servers, s.front
	s.servers, s.front = nil, nil
	s.mu.Unlock()
	var errs []error
	// Shutting the HTTP servers down closes their listeners, the TLS
	// front among them, so that Serve reports a clean stop.
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if front != nil {
		front.Close()
		front.wait()
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

// Gate returns the gate the server decides with.
func (s *Server) Gate() *Gate { return s.gate }
