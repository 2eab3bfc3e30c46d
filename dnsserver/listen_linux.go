package dnsserver

import (
	"context"
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// listen binds addr for TCP and, n times with SO_REUSEPORT, for UDP, so
// that the kernel spreads queries over n sockets, each read by its own
// goroutine on its own processor. A first, exclusive UDP bind checks that
// nobody else serves the address (and picks the port when addr's is 0):
// SO_REUSEPORT alone would let a second server share it silently.
func listen(addr string, n int) ([]*net.UDPConn, net.Listener, error) {
	for attempt := 0; ; attempt++ {
		probe, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns listen %s/udp: %w", addr, err)
		}
		bound := probe.LocalAddr().String()
		ln, err := net.Listen("tcp", bound)
		if err != nil {
			probe.Close()
			// Port 0 gave a UDP port taken on TCP: draw another.
			if _, port, _ := net.SplitHostPort(addr); port == "0" && attempt < 10 {
				continue
			}
			return nil, nil, fmt.Errorf("dns listen %s/tcp: %w", bound, err)
		}
		probe.Close()
		lc := net.ListenConfig{Control: reusePort}
		conns := make([]*net.UDPConn, 0, n)
		for range n {
			pc, err := lc.ListenPacket(context.Background(), "udp", bound)
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				ln.Close()
				return nil, nil, fmt.Errorf("dns listen %s/udp: %w", bound, err)
			}
			conns = append(conns, pc.(*net.UDPConn))
		}
		return conns, ln, nil
	}
}

func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}
