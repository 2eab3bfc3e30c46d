package order

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode"
)

// ParseIPTarget parses an address ("203.0.113.7") or prefix
// ("203.0.113.0/24") given as a blocking target and returns it as a
// canonical prefix. It refuses anything that could never legitimately be
// blocked: the whole address space, private, loopback, link-local,
// multicast and other special-purpose ranges, and anything overlapping
// them. The error completes a sentence that starts with the quoted value.
func ParseIPTarget(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errors.New("is empty")
	}
	if strings.IndexFunc(s, unicode.IsSpace) >= 0 {
		return netip.Prefix{}, errors.New("contains whitespace")
	}
	var p netip.Prefix
	if strings.Contains(s, "/") {
		pp, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("is not an IP prefix: %v", unwrapNetip(err))
		}
		p = pp
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("is not an IP address: %v", unwrapNetip(err))
		}
		if a.Zone() != "" {
			return netip.Prefix{}, errors.New("has an IPv6 zone, which only means something on one host")
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Addr().Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			return netip.Prefix{}, errors.New("covers more than the IPv4-mapped range")
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), bits)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("has host bits set: the prefix is %s", m)
	}
	if p.Bits() == 0 {
		if p.Addr().Is4() {
			return netip.Prefix{}, errors.New("is the whole IPv4 address space")
		}
		return netip.Prefix{}, errors.New("is the whole IPv6 address space")
	}
	for _, r := range specialRanges {
		if !r.prefix.Overlaps(p) {
			continue
		}
		if r.prefix.Bits() <= p.Bits() {
			return netip.Prefix{}, fmt.Errorf("is in %s (%s): never a blocking target", r.prefix, r.what)
		}
		return netip.Prefix{}, fmt.Errorf("contains %s (%s), which is never a blocking target", r.prefix, r.what)
	}
	return p, nil
}

// unwrapNetip drops netip's repetition of the input from its errors, since
// the caller's message already quotes it.
func unwrapNetip(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "): "); i >= 0 {
		return msg[i+3:]
	}
	return msg
}

// specialRanges are the special-purpose ranges of the IANA IPv4 and IPv6
// registries (RFC 6890 and successors) that can never be a legitimate
// blocking target because they are not reachable across the Internet.
// Documentation ranges (RFC 5737, RFC 3849) are deliberately absent: they
// are what examples and tests use.
var specialRanges = func() []struct {
	prefix netip.Prefix
	what   string
} {
	list := []struct{ p, what string }{
		{"0.0.0.0/8", "\"this network\", RFC 791"},
		{"10.0.0.0/8", "a private range, RFC 1918"},
		{"100.64.0.0/10", "shared carrier-grade NAT space, RFC 6598"},
		{"127.0.0.0/8", "loopback, RFC 1122"},
		{"169.254.0.0/16", "link-local, RFC 3927"},
		{"172.16.0.0/12", "a private range, RFC 1918"},
		{"192.0.0.0/24", "IETF protocol assignments, RFC 6890"},
		{"192.168.0.0/16", "a private range, RFC 1918"},
		{"198.18.0.0/15", "benchmarking, RFC 2544"},
		{"224.0.0.0/4", "multicast, RFC 5771"},
		{"240.0.0.0/4", "reserved, RFC 1112"},
		{"::/127", "unspecified and loopback, RFC 4291"},
		{"::ffff:0:0/96", "IPv4-mapped, RFC 4291"},
		{"64:ff9b::/96", "the NAT64 well-known prefix, RFC 6052: block the IPv4 address instead"},
		{"64:ff9b:1::/48", "local-use NAT64, RFC 8215"},
		{"100::/64", "discard-only, RFC 6666"},
		{"fc00::/7", "unique local addresses, RFC 4193"},
		{"fe80::/10", "link-local, RFC 4291"},
		{"ff00::/8", "multicast, RFC 4291"},
	}
	out := make([]struct {
		prefix netip.Prefix
		what   string
	}, len(list))
	for i, r := range list {
		out[i].prefix = netip.MustParsePrefix(r.p)
		out[i].what = r.what
	}
	return out
}()
