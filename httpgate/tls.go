package httpgate

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// helloTimeout bounds how long a client may take to send its ClientHello.
const helloTimeout = 10 * time.Second

// alertAccessDenied is a TLS fatal alert record, access_denied (49): the
// only refusal the gate can give a client of a host whose certificate it
// does not hold, since it cannot show that client a page.
var alertAccessDenied = []byte{21, 3, 3, 0, 2, 2, 49}

// tlsFront accepts TLS connections, reads each ClientHello, and either
// hands the connection to the HTTP server to be terminated with the
// operator's certificate (for the names those certificates cover), or
// relays it byte for byte to the passthrough address.
type tlsFront struct {
	g           *Gate
	ln          net.Listener
	config      *tls.Config
	leaves      []*x509.Certificate
	passthrough string

	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu    sync.Mutex
	relay map[net.Conn]struct{}
}

func newTLSFront(g *Gate, ln net.Listener, certs []tls.Certificate, passthrough string) (*tlsFront, error) {
	f := &tlsFront{
		g:           g,
		ln:          ln,
		passthrough: passthrough,
		conns:       make(chan net.Conn),
		closed:      make(chan struct{}),
		relay:       map[net.Conn]struct{}{},
		config: &tls.Config{
			Certificates: certs,
			NextProtos:   []string{"h2", "http/1.1"},
			MinVersion:   tls.VersionTLS12,
		},
	}
	for i, c := range certs {
		leaf := c.Leaf
		if leaf == nil {
			if len(c.Certificate) == 0 {
				return nil, fmt.Errorf("gate certificate %d: empty", i+1)
			}
			var err error
			if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
				return nil, fmt.Errorf("gate certificate %d: %w", i+1, err)
			}
		}
		f.leaves = append(f.leaves, leaf)
	}
	go f.acceptLoop()
	return f, nil
}

// Accept returns the next connection to terminate; it implements
// net.Listener for the HTTP server.
func (f *tlsFront) Accept() (net.Conn, error) {
	select {
	case c := <-f.conns:
		return c, nil
	case <-f.closed:
		return nil, net.ErrClosed
	}
}

// Close stops accepting and cuts the relayed connections.
func (f *tlsFront) Close() error {
	var err error
	f.once.Do(func() {
		close(f.closed)
		err = f.ln.Close()
		f.mu.Lock()
		for c := range f.relay {
			c.Close()
		}
		f.mu.Unlock()
	})
	return err
}

// Addr is the listening address.
func (f *tlsFront) Addr() net.Addr { return f.ln.Addr() }

// wait returns once every connection being sorted or relayed is done.
func (f *tlsFront) wait() { f.wg.Wait() }

func (f *tlsFront) acceptLoop() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				f.g.cfg.Logger.Error("gate TLS accept", "err", err)
			}
			f.Close()
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.sort(c)
		}()
	}
}

// sort reads the ClientHello and sends the connection where it belongs.
func (f *tlsFront) sort(c net.Conn) {
	var hello bytes.Buffer
	c.SetReadDeadline(time.Now().Add(helloTimeout))
	sni, err := peekServerName(io.TeeReader(c, &hello))
	c.SetReadDeadline(time.Time{})
	if err != nil {
		f.g.cfg.Logger.Debug("gate TLS: no ClientHello", "client", c.RemoteAddr().String(), "err", err)
		c.Close()
		return
	}
	if f.passthrough == "" || f.fronts(sni) {
		replayed := &replayConn{Conn: c, r: io.MultiReader(&hello, c)}
		select {
		case f.conns <- tls.Server(replayed, f.config):
		case <-f.closed:
			c.Close()
		}
		return
	}
	f.pass(c, hello.Bytes(), sni)
}

// fronts reports whether one of the operator's certificates covers sni.
func (f *tlsFront) fronts(sni string) bool {
	if sni == "" {
		return false
	}
	for _, l := range f.leaves {
		if l.VerifyHostname(sni) == nil {
			return true
		}
	}
	return false
}

// pass relays a connection for a host the gate does not front. The gate
// sees only the server name: a name blocked for the client is refused
// with a TLS alert; anything else is relayed untouched.
func (f *tlsFront) pass(c net.Conn, hello []byte, sni string) {
	g := f.g
	g.Metrics.requests[endpointTLS].Add(1)
	d := g.Decide(Request{Host: sni, Path: "/", Client: remoteAddr(c.RemoteAddr().String())})
	if d.Blocked() {
		g.countBlock(d)
		c.Write(alertAccessDenied)
		c.Close()
		return
	}
	up, err := net.DialTimeout("tcp", f.passthrough, 10*time.Second)
	if err != nil {
		g.Metrics.originErrors.Add(1)
		g.cfg.Logger.Warn("gate TLS passthrough unreachable", "addr", f.passthrough, "err", err)
		c.Close()
		return
	}
	if !f.track(c, up) {
		return
	}
	defer f.untrack(c, up)
	if _, err := up.Write(hello); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		io.Copy(c, up)
		closeWrite(c)
		close(done)
	}()
	io.Copy(up, c)
	closeWrite(up)
	<-done
}

func (f *tlsFront) track(conns ...net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.closed:
		for _, c := range conns {
			c.Close()
		}
		return false
	default:
	}
	for _, c := range conns {
		f.relay[c] = struct{}{}
	}
	return true
}

func (f *tlsFront) untrack(conns ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range conns {
		c.Close()
		delete(f.relay, c)
	}
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(interface{ CloseWrite() error }); ok {
		tc.CloseWrite()
		return
	}
	c.Close()
}

// replayConn reads the bytes already consumed from a connection, then
// the connection.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// errHelloRead stops the handshake once the ClientHello is parsed.
var errHelloRead = errors.New("ClientHello read")

// peekServerName parses the TLS ClientHello read from r with crypto/tls
// itself, stopping before anything is written back, and returns its
// server name (lower case; "" when the client sent none).
func peekServerName(r io.Reader) (string, error) {
	var sni string
	seen := false
	err := tls.Server(readOnlyConn{r: r}, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			sni, seen = strings.ToLower(h.ServerName), true
			return nil, errHelloRead
		},
	}).Handshake()
	if !seen {
		return "", err
	}
	return sni, nil
}

// readOnlyConn is a net.Conn that reads from r and refuses writes, so
// that parsing a ClientHello sends nothing to the client.
type readOnlyConn struct{ r io.Reader }

func (c readOnlyConn) Read(p []byte) (int, error)     { return c.r.Read(p) }
func (readOnlyConn) Write([]byte) (int, error)        { return 0, io.ErrClosedPipe }
func (readOnlyConn) Close() error                     { return nil }
func (readOnlyConn) LocalAddr() net.Addr              { return nil }
func (readOnlyConn) RemoteAddr() net.Addr             { return nil }
func (readOnlyConn) SetDeadline(time.Time) error      { return nil }
func (readOnlyConn) SetReadDeadline(time.Time) error  { return nil }
func (readOnlyConn) SetWriteDeadline(time.Time) error { return nil }
