package httpgate

import (
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddr returns the address whose jurisdiction decides r: the
// connection's peer, unless the peer is a trusted proxy, in which case
// the right-most address in the configured client header that is not a
// trusted proxy itself. Entries left of it were written by the client
// and prove nothing. The zero Addr (no jurisdiction, never blocked) is
// returned when a trusted proxy's header names no usable address, such
// as RFC 7239's "unknown" or an obfuscated identifier.
func (g *Gate) ClientAddr(r *http.Request) netip.Addr {
	peer := remoteAddr(r.RemoteAddr)
	if !g.isTrusted(peer) {
		return peer
	}
	values := r.Header.Values(g.cfg.ClientIPHeader)
	if len(values) == 0 {
		return peer
	}
	forwarded := g.cfg.ClientIPHeader == HeaderForwarded
	var last netip.Addr
	for i := len(values) - 1; i >= 0; i-- {
		elems := strings.Split(values[i], ",")
		for j := len(elems) - 1; j >= 0; j-- {
			var a netip.Addr
			var ok bool
			if forwarded {
				a, ok = forwardedFor(elems[j])
			} else {
				a, ok = parseNode(strings.TrimSpace(elems[j]))
			}
			if !ok {
				return netip.Addr{}
			}
			if !g.isTrusted(a) {
				return a
			}
			last = a
		}
	}
	// Every hop is a trusted proxy: the client is the first of them.
	return last
}

func (g *Gate) isTrusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range g.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// remoteAddr parses http.Request.RemoteAddr ("192.0.2.1:1234",
// "[2001:db8::1]:1234"), unmapping IPv4-mapped addresses.
func remoteAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := parseNode(s)
	return a
}

// parseNode parses one address as proxies write it: bare ("192.0.2.1",
// "2001:db8::1"), bracketed ("[2001:db8::1]"), or with a port
// ("192.0.2.1:80", "[2001:db8::1]:80").
func parseNode(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), a.Zone() == ""
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), ap.Addr().Zone() == ""
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil && a.Is6() && a.Zone() == "" {
			return a.Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// forwardedFor returns the address of the for= parameter of one
// forwarded-element of RFC 7239 (`for=192.0.2.60;proto=http`,
// `For="[2001:db8:cafe::17]:4711"`). An element without for=, or with
// "unknown" or an obfuscated identifier, has no usable address.
func forwardedFor(elem string) (netip.Addr, bool) {
	for _, pair := range strings.Split(elem, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "for") {
			continue
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = strings.ReplaceAll(v[1:len(v)-1], `\`, "")
		}
		return parseNode(v)
	}
	return netip.Addr{}, false
}
