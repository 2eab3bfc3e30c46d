package httpgate

import (
	"net/http"
	"net/netip"

	"github.com/writ-project/writ/internal/clientip"
)

// ClientAddr returns the address whose jurisdiction decides r: the
// connection's peer, unless the peer is a trusted proxy, in which case
// the right-most address in the configured client header that is not a
// trusted proxy itself. Entries left of it were written by the client
// and prove nothing. The zero Addr (no jurisdiction, never blocked) is
// returned when a trusted proxy's header names no usable address, such
// as RFC 7239's "unknown" or an obfuscated identifier.
func (g *Gate) ClientAddr(r *http.Request) netip.Addr {
	a, ok := g.clients.Client(remoteAddr(r.RemoteAddr), r.Header)
	if !ok {
		return netip.Addr{}
	}
	return a
}

func (g *Gate) isTrusted(a netip.Addr) bool { return g.clients.Trusted(a) }

// remoteAddr parses http.Request.RemoteAddr ("192.0.2.1:1234",
// "[2001:db8::1]:1234"), unmapping IPv4-mapped addresses.
func remoteAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := clientip.ParseNode(s)
	return a
}
