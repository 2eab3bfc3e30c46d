// Package clientip finds the client of an HTTP request that came through
// the operator's reverse proxies: the address whose jurisdiction decides
// a block at the HTTP gate, and that rate limits count against at the
// API. Each proxy appends the address it received the request from, so
// the header is read from the right, past the operator's own proxies, to
// the first address someone else vouches for; what lies left of it was
// written by the client and is not believed.
package clientip

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// The headers proxies name the client in.
const (
	XForwardedFor = "X-Forwarded-For"
	Forwarded     = "Forwarded" // RFC 7239
)

// Header returns the canonical name of a client address header: "" is
// X-Forwarded-For; anything but the two is an error.
func Header(name string) (string, error) {
	switch strings.ToLower(name) {
	case "", "x-forwarded-for":
		return XForwardedFor, nil
	case "forwarded":
		return Forwarded, nil
	}
	return "", fmt.Errorf("%q: want X-Forwarded-For or Forwarded", name)
}

// Resolver finds clients behind a set of trusted proxies, from one
// header. Only one is read: a proxy that sets one usually passes the
// other from the client untouched.
type Resolver struct {
	trusted   []netip.Prefix
	header    string
	forwarded bool
}

// New returns a resolver trusting the proxies in trusted, reading header
// (see Header).
func New(trusted []netip.Prefix, header string) (*Resolver, error) {
	h, err := Header(header)
	if err != nil {
		return nil, err
	}
	return &Resolver{trusted: trusted, header: h, forwarded: h == Forwarded}, nil
}

// Trusted reports whether a is one of the trusted proxies.
func (c *Resolver) Trusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Client returns the client of a request that came from peer with
// header h: peer itself unless it is a trusted proxy, otherwise the
// right-most address of the header that is not a trusted proxy, or, when
// every hop is one, the first of them. ok is false when a hop a trusted
// proxy wrote names no address (RFC 7239's "unknown", an obfuscated
// identifier, garbage): the address is then the nearest one vouched for,
// which the caller may use or not.
func (c *Resolver) Client(peer netip.Addr, h http.Header) (addr netip.Addr, ok bool) {
	if !c.Trusted(peer) {
		return peer, true
	}
	values := h.Values(c.header)
	last := peer
	for i := len(values) - 1; i >= 0; i-- {
		elems := strings.Split(values[i], ",")
		for j := len(elems) - 1; j >= 0; j-- {
			var a netip.Addr
			var parsed bool
			if c.forwarded {
				a, parsed = forwardedFor(elems[j])
			} else {
				a, parsed = ParseNode(strings.TrimSpace(elems[j]))
			}
			if !parsed {
				return last, false
			}
			if !c.Trusted(a) {
				return a, true
			}
			last = a
		}
	}
	return last, true
}

// ParseNode parses one address as proxies write it: bare ("192.0.2.1",
// "2001:db8::1"), bracketed ("[2001:db8::1]"), or with a port
// ("192.0.2.1:80", "[2001:db8::1]:80"); IPv4-mapped addresses are
// unmapped, and an address with a zone is refused.
func ParseNode(s string) (netip.Addr, bool) {
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
		return ParseNode(v)
	}
	return netip.Addr{}, false
}
