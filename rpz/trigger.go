package rpz

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// ipLabel is the label under a policy zone's origin that holds the
// response IP address triggers (rpz-ip).
const ipLabel = "rpz-ip"

// IPTrigger returns the owner name, relative to the policy zone's origin,
// of the rpz-ip trigger for prefix p: the prefix length, then the address
// in reverse order, then "rpz-ip" ("24.0.113.0.203.rpz-ip" for
// 203.0.113.0/24). IPv6 addresses are written as 16-bit groups in
// hexadecimal, with "zz" standing for the longest run of zero groups
// ("48.zz.1.db8.2001.rpz-ip" for 2001:db8:1::/48), as RFC 5952 would
// write "::".
func IPTrigger(p netip.Prefix) string {
	p = p.Masked()
	a := p.Addr().Unmap()
	bits := p.Bits()
	if p.Addr().Is4In6() {
		bits -= 96
	}
	var labels []string
	if a.Is4() {
		b := a.As4()
		labels = []string{strconv.Itoa(int(b[0])), strconv.Itoa(int(b[1])), strconv.Itoa(int(b[2])), strconv.Itoa(int(b[3]))}
	} else {
		// netip writes the RFC 5952 form: the longest run of two or more
		// zero groups, the first of equal runs, becomes "::".
		s := a.WithZone("").String()
		head, tail, compressed := strings.Cut(s, "::")
		if head != "" {
			labels = strings.Split(head, ":")
		}
		if compressed {
			labels = append(labels, "zz")
			if tail != "" {
				labels = append(labels, strings.Split(tail, ":")...)
			}
		}
	}
	slices.Reverse(labels)
	return strconv.Itoa(bits) + "." + strings.Join(labels, ".") + "." + ipLabel
}

// ParseIPTrigger is the inverse of IPTrigger: it returns the prefix that
// an rpz-ip owner name (relative to the zone's origin, with or without the
// final "rpz-ip" label) stands for. It accepts any placement of "zz" and
// groups with leading zeros, as resolvers do, and rejects a prefix with
// host bits set.
func ParseIPTrigger(owner string) (netip.Prefix, error) {
	s := strings.TrimSuffix(strings.ToLower(owner), ".")
	s = strings.TrimSuffix(s, "."+ipLabel)
	labels := strings.Split(s, ".")
	bad := func(why string) (netip.Prefix, error) {
		return netip.Prefix{}, fmt.Errorf("rpz-ip trigger %q: %s", owner, why)
	}
	if len(labels) < 2 {
		return bad("want <prefix length>.<reversed address>")
	}
	bits, err := strconv.Atoi(labels[0])
	if err != nil || bits < 1 {
		return bad("the first label is not a prefix length")
	}
	addr := slices.Clone(labels[1:])
	slices.Reverse(addr)
	var a netip.Addr
	if len(addr) == 4 && !slices.Contains(addr, "zz") && !strings.ContainsAny(strings.Join(addr, ""), "abcdef") {
		a, err = netip.ParseAddr(strings.Join(addr, "."))
	} else {
		text := strings.Join(addr, ":")
		text = strings.Replace(text, "zz", "", 1)
		switch {
		case text == "":
			text = "::"
		case strings.HasPrefix(text, ":") && !strings.HasPrefix(text, "::"):
			text = ":" + text
		case strings.HasSuffix(text, ":") && !strings.HasSuffix(text, "::"):
			text += ":"
		}
		a, err = netip.ParseAddr(text)
		if err == nil && !a.Is6() {
			err = fmt.Errorf("not an IPv6 address")
		}
	}
	if err != nil {
		return bad("the address is not valid")
	}
	p, err := a.Prefix(bits)
	if err != nil || bits > a.BitLen() {
		return bad(fmt.Sprintf("prefix length %d is too long for the address", bits))
	}
	if p.Addr() != a {
		return bad("the address has bits set beyond the prefix length")
	}
	return p, nil
}
