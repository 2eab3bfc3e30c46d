//go:build !linux

package dnsserver

import "net"

// serveUDP reads queries from one UDP socket until it is closed.
func (s *Server) serveUDP(conn *net.UDPConn) { s.serveUDPSimple(conn) }
