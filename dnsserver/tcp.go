package dnsserver

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// DNS over TCP (RFC 7766), with the limits a server on the public edge
// needs: a bounded number of connections in all and per client, an idle
// timeout, a time limit on receiving each query once it has begun and on
// sending each answer (a client that trickles bytes, or never reads,
// cannot hold a connection), and a bound on the queries of one
// connection answered at once (pipelining). Queries of a connection are
// answered concurrently, and possibly out of order, as RFC 7766 allows.

// tcpConns counts open connections, in all and per client, under a lock:
// connections are opened far less often than queries are answered.
type tcpConns struct {
	mu        sync.Mutex
	open      map[net.Conn]struct{}
	perClient map[netip.Addr]int
	closed    bool
}

// tcpClient is the key a client's connections are counted under: its
// IPv4 address, or its IPv6 /64 (one host may hold a whole /64).
func tcpClient(a net.Addr) netip.Addr {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Addr{}
	}
	ip := ta.AddrPort().Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// acquireTCP counts a new connection c of client, or returns the index of
// the limit it would exceed in Metrics.tcpRejected (or -1 when the
// server is shutting down).
func (s *Server) acquireTCP(c net.Conn, client netip.Addr) (int, bool) {
	t := &s.tcpConns
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return -1, false
	case len(t.open) >= s.cfg.TCP.MaxConnections:
		return rejectTotal, false
	case t.perClient[client] >= s.cfg.TCP.MaxConnectionsPerClient:
		return rejectClient, false
	}
	if t.open == nil {
		t.open, t.perClient = map[net.Conn]struct{}{}, map[netip.Addr]int{}
	}
	t.open[c] = struct{}{}
	t.perClient[client]++
	s.Metrics.tcpOpen.Add(1)
	return 0, true
}

func (s *Server) releaseTCP(c net.Conn, client netip.Addr) {
	t := &s.tcpConns
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.open, c)
	if t.perClient[client]--; t.perClient[client] <= 0 {
		delete(t.perClient, client)
	}
	s.Metrics.tcpOpen.Add(-1)
}

// closeTCP closes every open connection and refuses new ones.
func (s *Server) closeTCP() {
	t := &s.tcpConns
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for c := range t.open {
		c.Close()
	}
}

// serveTCP accepts connections on ln until it is closed.
func (s *Server) serveTCP(ln net.Listener) {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors, or the like: wait a little before
			// the next attempt rather than spin, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.cfg.Logger.Warn("dns tcp accept failed", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		client := tcpClient(c.RemoteAddr())
		if limit, ok := s.acquireTCP(c, client); !ok {
			// Counted before the close, so whoever sees the close sees
			// the count too.
			if limit >= 0 {
				s.Metrics.tcpRejected[limit].Add(1)
			}
			c.Close()
			if limit < 0 {
				return
			}
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.releaseTCP(c, client)
			s.serveTCPConn(c)
		}()
	}
}

// serveTCPConn reads queries from one connection and answers them, at
// most TCP.Pipeline at once, until the client closes it, is idle for
// TCP.IdleTimeout, is too slow, or sends something that is not a DNS
// message.
func (s *Server) serveTCPConn(c net.Conn) {
	lim := s.cfg.TCP
	w := &tcpWriter{conn: c, timeout: lim.ReadTimeout, metrics: s.Metrics}
	inflight := make(chan struct{}, lim.Pipeline)
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		c.Close()
	}()
	var length [2]byte
	for {
		// Waiting for a query is idling; once its first byte is in, the
		// rest must follow within the read timeout.
		c.SetReadDeadline(time.Now().Add(lim.IdleTimeout))
		if _, err := io.ReadFull(c, length[:1]); err != nil {
			return
		}
		c.SetReadDeadline(time.Now().Add(lim.ReadTimeout))
		if _, err := io.ReadFull(c, length[1:]); err != nil {
			w.countSlow(err)
			return
		}
		n := int(binary.BigEndian.Uint16(length[:]))
		if n < headerLen {
			return // not a DNS message: nothing to answer
		}
		pkt := make([]byte, n)
		if _, err := io.ReadFull(c, pkt); err != nil {
			w.countSlow(err)
			return
		}
		inflight <- struct{}{} // wait while Pipeline queries are being answered
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inflight }()
			s.serveMessage(w, pkt)
		}()
	}
}

// countSlow counts the connection as closed for a slow client when err
// is a missed deadline: once, however many of its reads and writes
// missed theirs (a client that neither sends nor reads misses both).
func (w *tcpWriter) countSlow(err error) {
	if errors.Is(err, os.ErrDeadlineExceeded) && w.slow.CompareAndSwap(false, true) {
		w.metrics.tcpSlow.Add(1)
	}
}

// tcpWriter is the dns.ResponseWriter of the queries of one TCP
// connection: answers are written whole, one at a time, each within the
// timeout. A failed write closes the connection.
type tcpWriter struct {
	conn    net.Conn
	timeout time.Duration
	metrics *Metrics
	mu      sync.Mutex
	failed  bool
	slow    atomic.Bool // counted as a slow client
}

func (w *tcpWriter) LocalAddr() net.Addr  { return w.conn.LocalAddr() }
func (w *tcpWriter) RemoteAddr() net.Addr { return w.conn.RemoteAddr() }
func (w *tcpWriter) WriteMsg(m *dns.Msg) error {
	b, err := m.Pack()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// Write sends one message with its length.
func (w *tcpWriter) Write(b []byte) (int, error) {
	if len(b) > dns.MaxMsgSize {
		return 0, errors.New("dns message too long for TCP")
	}
	buf := make([]byte, 2+len(b))
	binary.BigEndian.PutUint16(buf, uint16(len(b)))
	copy(buf[2:], b)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed {
		return 0, net.ErrClosed
	}
	w.conn.SetWriteDeadline(time.Now().Add(w.timeout))
	if _, err := w.conn.Write(buf); err != nil {
		// A client that does not take its answers loses its connection;
		// the reader sees it closed.
		w.failed = true
		w.countSlow(err)
		w.conn.Close()
		return 0, err
	}
	return len(b), nil
}
func (w *tcpWriter) Close() error        { return w.conn.Close() }
func (w *tcpWriter) TsigStatus() error   { return nil }
func (w *tcpWriter) TsigTimersOnly(bool) {}
func (w *tcpWriter) Hijack()             {}
