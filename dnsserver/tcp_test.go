package dnsserver

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dialTCP connects to the server from a loopback source address.
func (e *env) dialTCP(from string) net.Conn {
	e.t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// writeQuery sends one query on a TCP connection.
func writeQuery(t *testing.T, c net.Conn, m *dns.Msg) {
	t.Helper()
	pkt, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(pkt))), pkt...)); err != nil {
		t.Fatal(err)
	}
}

// readAnswer reads one answer from a TCP connection, within a generous
// deadline.
func readAnswer(t *testing.T, c net.Conn) (*dns.Msg, error) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	return m, m.Unpack(b)
}

// assertClosedByServer checks that the server closes c: a read ends
// (EOF or reset) well before the test's own deadline.
func assertClosedByServer(t *testing.T, c net.Conn, why string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := c.Read(make([]byte, 512))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: connection still open (%v)", why, err)
	}
}

// waitFor polls cond until it holds, for at most ten seconds: for what
// the server does after a connection closes, which nothing signals.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited in vain for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTCPConnectionLimits: beyond dns.tcp.max_connections, and beyond
// max_connections_per_client for one client, a new connection is closed
// at once; the others keep working, and a closed one frees its place.
func TestTCPConnectionLimits(t *testing.T) {
	e := start(t, func(c *Config) { c.TCP = TCPLimits{MaxConnections: 3, MaxConnectionsPerClient: 2} })
	a1, a2 := e.dialTCP(frClient), e.dialTCP(frClient)
	// Answered on a1: both are accepted and counted.
	writeQuery(t, a1, query("allowed.example.", dns.TypeA))
	if _, err := readAnswer(t, a1); err != nil {
		t.Fatal(err)
	}
	a3 := e.dialTCP(frClient)
	assertClosedByServer(t, a3, "a third connection from one client")
	b1 := e.dialTCP(itClient)
	writeQuery(t, b1, query("allowed.example.", dns.TypeA))
	if _, err := readAnswer(t, b1); err != nil {
		t.Fatalf("another client's connection: %v", err)
	}
	c1 := e.dialTCP(outsideClient)
	assertClosedByServer(t, c1, "a fourth connection in all")
	m := e.srv.Metrics
	if m.tcpRejected[rejectClient].Load() != 1 || m.tcpRejected[rejectTotal].Load() != 1 || m.tcpOpen.Load() != 3 {
		t.Fatalf("rejected %d (client), %d (total); open %d", m.tcpRejected[rejectClient].Load(), m.tcpRejected[rejectTotal].Load(), m.tcpOpen.Load())
	}
	writeQuery(t, a2, query("www.motogpstream.me.", dns.TypeA))
	if resp, err := readAnswer(t, a2); err != nil {
		t.Fatal(err)
	} else {
		assertBlocked(t, resp, dns.RcodeRefused)
	}
	a1.Close()
	waitFor(t, "the closed connection to be released", func() bool { return m.tcpOpen.Load() == 2 })
	a4 := e.dialTCP(frClient)
	writeQuery(t, a4, query("allowed.example.", dns.TypeA))
	if _, err := readAnswer(t, a4); err != nil {
		t.Fatalf("a connection in the freed place: %v", err)
	}
}

// TestTCPIdleTimeout: a connection that sends nothing is closed after
// the idle timeout.
func TestTCPIdleTimeout(t *testing.T) {
	e := start(t, func(c *Config) { c.TCP = TCPLimits{IdleTimeout: 200 * time.Millisecond} })
	c := e.dialTCP(frClient)
	writeQuery(t, c, query("allowed.example.", dns.TypeA))
	if _, err := readAnswer(t, c); err != nil {
		t.Fatal(err)
	}
	assertClosedByServer(t, c, "an idle connection")
	if e.srv.Metrics.tcpSlow.Load() != 0 {
		t.Error("an idle connection counted as a slow client")
	}
}

// TestTCPSlowClient: a client that starts a query and then trickles it,
// or stops, is cut off after the read timeout, however long the idle
// timeout; so is one that never reads its answers.
func TestTCPSlowClient(t *testing.T) {
	e := start(t, func(c *Config) {
		c.TCP = TCPLimits{IdleTimeout: time.Hour, ReadTimeout: 300 * time.Millisecond}
	})
	// The first byte of the length, then nothing.
	c := e.dialTCP(frClient)
	if _, err := c.Write([]byte{0}); err != nil {
		t.Fatal(err)
	}
	assertClosedByServer(t, c, "a client stopping inside a query")

	// The length, then the query a byte at a time, each in time for the
	// idle timeout but not the query for the read timeout.
	c = e.dialTCP(frClient)
	pkt, _ := query("allowed.example.", dns.TypeA).Pack()
	msg := append(binary.BigEndian.AppendUint16(nil, uint16(len(pkt))), pkt...)
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for _, b := range msg {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond) // the client's pace, not synchronisation
		}
	}()
	assertClosedByServer(t, c, "a client trickling a query")
	<-closed
	if n := e.srv.Metrics.tcpSlow.Load(); n != 2 {
		t.Errorf("%d slow clients counted, want 2", n)
	}

	// A client that sends queries and never reads: the answers fill the
	// socket buffers, a write misses the read timeout, and the
	// connection is closed.
	// The answers are of about 50 KB, so that a few fill the server's
	// send buffer (up to 4 MB) whatever the kernel lets the client send;
	// the answer is cached first, so that they come at the server's pace.
	if m := e.query(outsideClient, "huge.example", dns.TypeTXT, overTCP); len(m.Answer) != hugeRecords {
		t.Fatalf("huge.example over TCP: %d records, want %d", len(m.Answer), hugeRecords)
	}
	c = e.dialTCP(outsideClient)
	c.(*net.TCPConn).SetReadBuffer(4096)
	big, _ := query("huge.example.", dns.TypeTXT).Pack()
	flood := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 200_000 && err == nil; i++ {
			_, err = c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(big))), big...))
		}
		flood <- err
	}()
	waitFor(t, "the connection of a client that never reads to be closed", func() bool { return e.srv.Metrics.tcpSlow.Load() == 3 })
	c.Close()
	<-flood
}

// TestTCPPipelining: the queries of one connection are answered
// concurrently, at most dns.tcp.pipeline at once: beyond it the
// connection is not read until one is answered. The answers all come,
// matched by their IDs.
func TestTCPPipelining(t *testing.T) {
	e, up := startFaulty(t, func(c *Config) {
		c.TCP = TCPLimits{Pipeline: 2}
		c.UpstreamTimeout = 10 * time.Second
	})
	assertAnswered(t, e.query(outsideClient, "cached.ok.example", dns.TypeA), upstreamAddr("cached.ok.example").String())
	up.set(faultHold)
	c := e.dialTCP(outsideClient)
	for i, name := range []string{"p1.ok.example.", "p2.ok.example.", "p3.ok.example.", "p4.ok.example.", "cached.ok.example."} {
		m := query(name, dns.TypeA)
		m.Id = uint16(i + 1)
		writeQuery(t, c, m)
	}
	up.waitHeld(t, 2)
	// Two queries wait on the upstream; were the connection read on, the
	// cached answer (query 5) would be sent at once. It cannot come before
	// a held query is answered.
	up.release()
	first, err := readAnswer(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if first.Id == 5 {
		t.Fatal("the fifth query was answered while two were in flight: pipelining is not bounded")
	}
	got := map[uint16]bool{first.Id: true}
	up.releaseAll()
	for len(got) < 5 {
		m, err := readAnswer(t, c)
		if err != nil {
			t.Fatalf("after answers %v: %v", got, err)
		}
		got[m.Id] = true
	}
	if p := up.peakHeld(); p != 2 {
		t.Errorf("the upstream held up to %d queries of one connection, want 2", p)
	}
}

// TestTCPAnswersGarbageSafely: a message that is not a query gets
// FORMERR or nothing, and the connection goes on; a length shorter than a
// header closes it.
func TestTCPAnswersGarbageSafely(t *testing.T) {
	e := start(t, nil)
	c := e.dialTCP(frClient)
	junk := []byte{0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff}
	if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(junk))), junk...)); err != nil {
		t.Fatal(err)
	}
	if m, err := readAnswer(t, c); err != nil || m.Id != 0xabcd || m.Rcode != dns.RcodeFormatError {
		t.Fatalf("answer to junk: %v, %v", m, err)
	}
	writeQuery(t, c, query("www.motogpstream.me.", dns.TypeA))
	if m, err := readAnswer(t, c); err != nil {
		t.Fatal(err)
	} else {
		assertBlocked(t, m, dns.RcodeRefused)
	}
	if _, err := c.Write([]byte{0, 3, 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	assertClosedByServer(t, c, "a 3-byte message")
}
