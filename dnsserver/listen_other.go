//go:build !linux

package dnsserver

import (
	"fmt"
	"net"
)

// listen binds addr for UDP, with one socket, and for TCP.
func listen(addr string, _ int) ([]*net.UDPConn, net.Listener, error) {
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dns listen %s/udp: %w", addr, err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			if _, port, _ := net.SplitHostPort(addr); port == "0" && attempt < 10 {
				continue
			}
			return nil, nil, fmt.Errorf("dns listen %s/tcp: %w", pc.LocalAddr(), err)
		}
		return []*net.UDPConn{pc.(*net.UDPConn)}, ln, nil
	}
}
