package dnsserver

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchSize is how many datagrams one system call reads or writes at
// most. Under load a socket holds many queries at once: reading them
// with one recvmmsg and sending their answers with one sendmmsg spares a
// pair of system calls and goroutine wake-ups per query, which on a
// loaded resolver cost more than answering.
const batchSize = 32

// batchConn reads and writes one UDP socket in batches.
type batchConn struct {
	conn *net.UDPConn
	rc   syscall.RawConn

	rhdrs  [batchSize]unix.Mmsghdr
	riovs  [batchSize]unix.Iovec
	names  [batchSize]unix.RawSockaddrInet6 // room for either family
	bufs   [batchSize][]byte
	nread  int
	rerr   error
	readFn func(fd uintptr) bool

	whdrs   [batchSize]unix.Mmsghdr
	wiovs   [batchSize]unix.Iovec
	out     [batchSize][]byte
	nwrite  int
	sent    int
	writeFn func(fd uintptr) bool
}

func newBatchConn(conn *net.UDPConn) (*batchConn, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	b := &batchConn{conn: conn, rc: rc}
	for i := range batchSize {
		b.bufs[i] = make([]byte, 65535)
		b.riovs[i].Base = &b.bufs[i][0]
		b.riovs[i].SetLen(len(b.bufs[i]))
		b.out[i] = make([]byte, 0, responseBuffer)
	}
	// The closures are made once: passing a new one to RawConn at each
	// call would allocate.
	b.readFn = b.recv
	b.writeFn = b.send
	return b, nil
}

func (b *batchConn) recv(fd uintptr) bool {
	for i := range batchSize {
		h := &b.rhdrs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = unix.SizeofSockaddrInet6
		h.Iov = &b.riovs[i]
		h.SetIovlen(1)
		h.Control, h.Flags = nil, 0
		h.SetControllen(0)
	}
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.rhdrs[0])), batchSize, unix.MSG_DONTWAIT, 0, 0)
	switch {
	case errno == unix.EAGAIN:
		return false // wait until readable
	case errno == unix.EINTR:
		return false
	case errno != 0:
		b.nread, b.rerr = 0, errno
	default:
		b.nread, b.rerr = int(n), nil
	}
	return true
}

// read waits for datagrams and returns how many arrived.
func (b *batchConn) read() (int, error) {
	if err := b.rc.Read(b.readFn); err != nil {
		return 0, err
	}
	return b.nread, b.rerr
}

// packet returns datagram i of the last read and its sender; false when
// it was longer than the buffer.
func (b *batchConn) packet(i int) ([]byte, netip.AddrPort, bool) {
	h := &b.rhdrs[i]
	if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
		return nil, netip.AddrPort{}, false
	}
	return b.bufs[i][:h.Len], sockaddrAddrPort(&b.names[i]), true
}

func sockaddrAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	if sa.Family == unix.AF_INET {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
}

// queue adds an answer to datagram i of the last read, sent back to its
// sender at the next flush. The answer must be in b.out[i].
func (b *batchConn) queue(i int, resp []byte) {
	b.out[i] = resp
	j := b.nwrite
	b.wiovs[j].Base = &resp[0]
	b.wiovs[j].SetLen(len(resp))
	h := &b.whdrs[j].Hdr
	h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	h.Namelen = b.rhdrs[i].Hdr.Namelen
	h.Iov = &b.wiovs[j]
	h.SetIovlen(1)
	h.Control, h.Flags = nil, 0
	h.SetControllen(0)
	b.nwrite++
}

func (b *batchConn) send(fd uintptr) bool {
	for b.sent < b.nwrite {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.whdrs[b.sent])), uintptr(b.nwrite-b.sent), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == unix.EAGAIN:
			return false // wait until writable
		case errno == unix.EINTR:
			continue
		case errno != 0:
			b.sent++ // this answer cannot be sent (its client is gone): skip it
		default:
			b.sent += int(n)
		}
	}
	return true
}

// flush sends the queued answers.
func (b *batchConn) flush() error {
	if b.nwrite == 0 {
		return nil
	}
	b.sent = 0
	err := b.rc.Write(b.writeFn)
	b.nwrite = 0
	return err
}

// serveUDP reads queries from one UDP socket, a batch at a time, until it
// is closed. The fast path answers in the reading goroutine, into the
// batch's own buffers; the answers of a batch leave in one system call.
// A query the fast path cannot answer (a cache miss, an unusual query) is
// handed to a new goroutine so that an upstream round trip never holds
// up the socket.
func (s *Server) serveUDP(conn *net.UDPConn) {
	b, err := newBatchConn(conn)
	if err != nil {
		s.cfg.Logger.Error("dns udp socket", "err", err)
		s.serveUDPSimple(conn)
		return
	}
	sc := newScratch()
	for {
		n, err := b.read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.cfg.Logger.Debug("dns read failed", "err", err)
			continue
		}
		for i := range n {
			pkt, from, ok := b.packet(i)
			if !ok {
				continue // longer than any query: nothing sensible to answer
			}
			sc.out = b.out[i][:0]
			if resp := s.dispatchUDP(conn, pkt, from, sc, true); resp != nil {
				b.queue(i, resp)
			}
		}
		s.Metrics.add(&sc.stats)
		if err := b.flush(); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.cfg.Logger.Debug("dns write failed", "err", err)
		}
	}
}
