package order

import (
	"bufio"
	_ "embed"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// Safeguards decide which targets are held for a human reviewer instead
// of being enforced at once. A held target never blocks.
type Safeguards struct {
	// SharedInfra lists networks shared by many unrelated services (public
	// resolvers, CDN and cloud ranges). An IP target overlapping one is held:
	// blocking it would cut off every service behind it.
	SharedInfra []SharedPrefix
	// MaxPrefixBits4 and MaxPrefixBits6 hold IP prefixes wider than this
	// many bits (shorter prefixes). Zero means the defaults, /24 and /48.
	MaxPrefixBits4, MaxPrefixBits6 int
	// AllowNames lists names the operator never blocks without review
	// (its own services, critical public services); a target equal to one,
	// or covering one with its subdomains, is held.
	AllowNames []string
}

// SharedPrefix is one shared-infrastructure network and what it is.
type SharedPrefix struct {
	Prefix netip.Prefix
	Label  string
}

// Default widest prefixes enforced without review.
const (
	DefaultMaxPrefixBits4 = 24
	DefaultMaxPrefixBits6 = 48
)

func (g *Safeguards) holdPrefix(p netip.Prefix) (string, bool) {
	for _, s := range g.SharedInfra {
		if s.Prefix.Overlaps(p) {
			reason := fmt.Sprintf("overlaps shared infrastructure %s", s.Prefix)
			if s.Label != "" {
				reason += " (" + s.Label + ")"
			}
			return reason + ": blocking it could cut off unrelated services", true
		}
	}
	limit := g.MaxPrefixBits4
	if limit == 0 {
		limit = DefaultMaxPrefixBits4
	}
	if p.Addr().Is6() {
		limit = g.MaxPrefixBits6
		if limit == 0 {
			limit = DefaultMaxPrefixBits6
		}
	}
	if p.Bits() < limit {
		return fmt.Sprintf("is wider than /%d, the widest prefix this operator enforces without review", limit), true
	}
	return "", false
}

func (g *Safeguards) holdName(name string) (string, bool) {
	for _, a := range g.AllowNames {
		if a == name || strings.HasSuffix(a, "."+name) {
			return fmt.Sprintf("covers %s, which is on the operator's allow-list", a), true
		}
	}
	return "", false
}

// ParseSharedInfra reads a shared-infrastructure list: one address or
// prefix per line, with "#" comments. A comment on its own line labels the
// prefixes that follow it; a comment after a prefix labels that prefix.
// Errors name the line.
func ParseSharedInfra(r io.Reader) ([]SharedPrefix, error) {
	var (
		out   []SharedPrefix
		label string
		line  int
	)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		if strings.HasPrefix(text, "#") {
			label = strings.TrimSpace(strings.TrimPrefix(text, "#"))
			continue
		}
		value, comment, _ := strings.Cut(text, "#")
		value = strings.TrimSpace(value)
		l := label
		if c := strings.TrimSpace(comment); c != "" {
			l = c
		}
		p, err := netip.ParsePrefix(value)
		if err != nil {
			a, aerr := netip.ParseAddr(value)
			if aerr != nil {
				return nil, fmt.Errorf("line %d: %q is not an IP address or prefix", line, value)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("line %d: %q has host bits set: the prefix is %s", line, value, p.Masked())
		}
		out = append(out, SharedPrefix{Prefix: p, Label: l})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return out, nil
}

func isValidUTF8(s string) bool { return utf8.ValidString(s) }

//go:embed shared-infra-default.txt
var defaultSharedInfra string

// DefaultSharedInfra returns the shared-infrastructure list writ uses when
// the operator supplies none: the well-known public resolvers and a sample
// of large CDN ranges. Operators should supply their own, complete list.
func DefaultSharedInfra() []SharedPrefix {
	list, err := ParseSharedInfra(strings.NewReader(defaultSharedInfra))
	if err != nil {
		panic("embedded shared-infrastructure list: " + err.Error())
	}
	return list
}
