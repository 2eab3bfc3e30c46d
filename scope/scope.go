// Package scope maps a client IP address to the jurisdiction it is in, so
// that a national blocking order is enforced only for clients of the country
// that issued it.
//
// The operator's own declarations come first because the operator knows its
// networks better than any database; a GeoIP database fills in the rest; a
// client neither covers is Unknown, which is inside no order's scope.
package scope

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/gaissmai/bart"

	"github.com/writ-project/writ/jurisdiction"
)

// Source says how a client's jurisdiction was determined.
type Source uint8

// The sources of a jurisdiction, from none to the least authoritative.
const (
	// SourceNone means the client's jurisdiction is not known.
	SourceNone Source = iota
	// SourceNetwork means an operator-declared network covers the client.
	SourceNetwork
	// SourceGeoIP means only the GeoIP database placed the client.
	SourceGeoIP
)

// String returns the name used in logs and query traces.
func (s Source) String() string {
	switch s {
	case SourceNone:
		return "none"
	case SourceNetwork:
		return "network"
	case SourceGeoIP:
		return "geoip"
	}
	return fmt.Sprintf("Source(%d)", uint8(s))
}

// Network maps a client prefix to a jurisdiction, as the operator declared it.
type Network struct {
	Prefix netip.Prefix
	Code   jurisdiction.Code
}

// String gives the network in the operator's own notation, CODE=PREFIX.
func (n Network) String() string {
	return n.Code.String() + "=" + n.Prefix.String()
}

const mappingForm = `COUNTRY=PREFIX[,PREFIX...], e.g. "FR=192.0.2.0/24,2001:db8::/32"`

// ParseMapping parses one operator mapping of the form
// "FR=127.0.0.2/32,192.0.2.0/24". A bare address stands for itself alone
// (/32 or /128). Spaces around the parts are ignored so that mappings can be
// written readably in configuration files.
//
// Only a single country is accepted, not "EU": a client is in one country,
// and an EU-wide order already covers every member state.
func ParseMapping(s string) ([]Network, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("scope mapping %q: "+format, append([]any{s}, args...)...)
	}
	name, list, ok := strings.Cut(s, "=")
	if !ok {
		return nil, fail("missing \"=\"; expected %s", mappingForm)
	}
	name = strings.TrimSpace(name)
	if strings.EqualFold(name, jurisdiction.EU) {
		return nil, fail("%q is the European Union, not a country: a client is in one country, so map its networks to a member state", name)
	}
	code, err := jurisdiction.Parse(name)
	if err != nil {
		return nil, fail("%q is not an ISO 3166-1 alpha-2 country code", name)
	}
	if strings.TrimSpace(list) == "" {
		return nil, fail("no network after \"=\"; expected %s", mappingForm)
	}
	parts := strings.Split(list, ",")
	nets := make([]Network, 0, len(parts))
	for _, part := range parts {
		part = strings.TrimSpace(part)
		if part == "" {
			return nil, fail("empty network in the list; expected %s", mappingForm)
		}
		p, err := parsePrefix(part)
		if err != nil {
			return nil, fail("%w", err)
		}
		nets = append(nets, Network{Prefix: p, Code: code})
	}
	return nets, nil
}

// parsePrefix accepts a prefix or a bare address. It refuses host bits
// because "192.0.2.1/24" is as likely a typo for a /32 as for the /24.
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or prefix", s)
		}
		if a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q has an IPv6 zone; a client network has none", s)
		}
		return canonical(netip.PrefixFrom(a, a.BitLen())), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or prefix", s)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%q has host bits set; did you mean %q?", s, m.String())
	}
	return canonical(p), nil
}

// canonical rewrites an IPv4-mapped IPv6 prefix as the IPv4 prefix it
// stands for, because Lookup treats mapped addresses as IPv4 and would
// otherwise never match it.
func canonical(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	if a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// Resolver answers "which jurisdiction is this client in?".
// It is immutable after New, so the DNS server can share one among all its
// goroutines without a lock and replace it whole on reconfiguration.
type Resolver struct {
	nets     *bart.Table[jurisdiction.Code]
	hasNets  bool
	networks []Network
	geo      *GeoIP
}

// New builds a resolver from operator networks and an optional GeoIP
// database (nil for none). Operator networks take precedence over GeoIP,
// and among them the longest prefix wins, so an operator can carve a
// foreign subnet out of a national block. The same prefix mapped to two
// different countries is refused rather than resolved by order, since
// either choice would silently misapply some country's orders.
func New(networks []Network, geo *GeoIP) (*Resolver, error) {
	seen := make(map[netip.Prefix]jurisdiction.Code, len(networks))
	r := &Resolver{nets: new(bart.Table[jurisdiction.Code]), geo: geo}
	for _, n := range networks {
		if !n.Prefix.IsValid() {
			return nil, fmt.Errorf("scope: network %q for %s is not a valid prefix", n.Prefix.String(), n.Code)
		}
		if n.Code.String() == "" {
			return nil, fmt.Errorf("scope: network %s has no country (code %d)", n.Prefix, uint8(n.Code))
		}
		if m := n.Prefix.Masked(); m != n.Prefix {
			return nil, fmt.Errorf("scope: network %s for %s has host bits set; did you mean %s?", n.Prefix, n.Code, m)
		}
		p := canonical(n.Prefix)
		if prev, ok := seen[p]; ok {
			if prev != n.Code {
				return nil, fmt.Errorf("scope: network %s is mapped to both %s and %s", p, prev, n.Code)
			}
			continue
		}
		seen[p] = n.Code
		r.nets.Insert(p, n.Code)
		r.networks = append(r.networks, Network{Prefix: p, Code: n.Code})
	}
	r.hasNets = len(r.networks) > 0
	slices.SortFunc(r.networks, func(a, b Network) int { return a.Prefix.Compare(b.Prefix) })
	return r, nil
}

// Lookup returns the jurisdiction of client address a and how it was found;
// jurisdiction.Unknown with SourceNone when neither the operator networks
// nor the GeoIP database cover it. IPv4-mapped IPv6 addresses are treated
// as IPv4, since dual-stack sockets report IPv4 clients that way.
//
// Lookup is called for every DNS query: it takes no lock and allocates
// nothing.
func (r *Resolver) Lookup(a netip.Addr) (jurisdiction.Code, Source) {
	a = a.Unmap()
	if r.hasNets {
		if c, ok := r.nets.Lookup(a); ok {
			return c, SourceNetwork
		}
	}
	if c := r.geo.Lookup(a); c != jurisdiction.Unknown {
		return c, SourceGeoIP
	}
	return jurisdiction.Unknown, SourceNone
}

// Networks returns the operator networks, sorted, for display. The slice is
// a copy: the resolver stays immutable whatever the caller does with it.
func (r *Resolver) Networks() []Network {
	return slices.Clone(r.networks)
}

// GeoIP returns the GeoIP database the resolver falls back to, or nil.
func (r *Resolver) GeoIP() *GeoIP {
	return r.geo
}
