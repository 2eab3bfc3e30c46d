package order

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gaissmai/bart"
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
	// PassiveDNS, when set, holds an IP target into which at least
	// SharedNames names of the sample resolve (names the same order
	// targets excepted): blocking it would cut off those sites too.
	PassiveDNS *PassiveDNS
	// SharedNames is the threshold for PassiveDNS. Zero means 2: a single
	// other site behind the address is enough to ask a human.
	SharedNames int
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

// PassiveDNS is a sample of name-to-address resolutions, as passive DNS
// services and resolver logs provide, used to tell how many sites share
// an address.
type PassiveDNS struct {
	names []string
	table *bart.Table[[]int32] // address → indexes into names
}

// ParsePassiveDNS reads "name address" lines (whitespace or comma
// separated, "#" comments), one resolution a line. Errors name the line.
func ParsePassiveDNS(r io.Reader) (*PassiveDNS, error) {
	p := &PassiveDNS{table: new(bart.Table[[]int32])}
	byName := map[string]int32{}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("line %d: want \"name address\", got %q", line, strings.TrimSpace(text))
		}
		name, err := NormalizeName(fields[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %q %v", line, fields[0], err)
		}
		a, err := netip.ParseAddr(fields[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %q is not an IP address", line, fields[1])
		}
		a = a.Unmap()
		idx, ok := byName[name]
		if !ok {
			idx = int32(len(p.names))
			byName[name] = idx
			p.names = append(p.names, name)
		}
		pfx := netip.PrefixFrom(a, a.BitLen())
		list, _ := p.table.Get(pfx)
		if !slices.Contains(list, idx) {
			p.table.Insert(pfx, append(list, idx))
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", line+1, err)
	}
	return p, nil
}

// NamesIn returns the distinct names of the sample that resolve into p,
// sorted.
func (d *PassiveDNS) NamesIn(p netip.Prefix) []string {
	seen := map[int32]bool{}
	for _, list := range d.table.Subnets(p) {
		for _, i := range list {
			seen[i] = true
		}
	}
	out := make([]string, 0, len(seen))
	for i := range seen {
		out = append(out, d.names[i])
	}
	slices.Sort(out)
	return out
}

// holdSharedAddresses holds the active IP targets into which other sites
// of the passive-DNS sample resolve; names the same order targets (and
// their subdomains) do not count, since blocking them is the point.
func (g *Safeguards) holdSharedAddresses(targets []Target) {
	if g.PassiveDNS == nil {
		return
	}
	threshold := g.SharedNames
	if threshold <= 0 {
		threshold = 2
	}
	covered := func(name string) bool {
		for _, t := range targets {
			if t.FQDN != "" && (t.FQDN == name || t.Subdomains && strings.HasSuffix(name, "."+t.FQDN)) {
				return true
			}
		}
		return false
	}
	for i := range targets {
		t := &targets[i]
		p, ok := t.Prefix()
		if !ok || t.State != TargetActive {
			continue
		}
		var others []string
		for _, n := range g.PassiveDNS.NamesIn(p) {
			if !covered(n) {
				others = append(others, n)
			}
		}
		if len(others) < threshold {
			continue
		}
		examples := others
		if len(examples) > 3 {
			examples = examples[:3]
		}
		t.State = TargetHeld
		t.HoldReason = fmt.Sprintf("%d other names resolve into it in the passive-DNS sample (%s%s): blocking it would cut them off too",
			len(others), strings.Join(examples, ", "), map[bool]string{true: ", …", false: ""}[len(others) > 3])
	}
}

// CDN range list formats ParseRangeList reads.
const (
	// RangesText is one prefix a line, as Cloudflare publishes
	// (https://www.cloudflare.com/ips-v4 and ips-v6).
	RangesText = "text"
	// RangesAWS is AWS's ip-ranges.json (prefixes[].ip_prefix,
	// ipv6_prefixes[].ipv6_prefix).
	RangesAWS = "aws"
	// RangesGoogle is Google's goog.json or cloud.json
	// (prefixes[].ipv4Prefix / ipv6Prefix).
	RangesGoogle = "google"
	// RangesFastly is Fastly's public-ip-list (addresses[],
	// ipv6_addresses[]).
	RangesFastly = "fastly"
)

// ParseRangeList reads a published list of CDN or cloud ranges in the
// given format and labels every prefix with label. Errors name the
// format and the bad value.
func ParseRangeList(format, label string, r io.Reader) ([]SharedPrefix, error) {
	var raw []string
	switch format {
	case RangesText:
		list, err := ParseSharedInfra(r)
		if err != nil {
			return nil, err
		}
		for i := range list {
			list[i].Label = label
		}
		return list, nil
	case RangesAWS:
		var doc struct {
			Prefixes []struct {
				IPPrefix string `json:"ip_prefix"`
			} `json:"prefixes"`
			IPv6Prefixes []struct {
				IPv6Prefix string `json:"ipv6_prefix"`
			} `json:"ipv6_prefixes"`
		}
		if err := json.NewDecoder(r).Decode(&doc); err != nil {
			return nil, fmt.Errorf("aws ip-ranges.json: %w", err)
		}
		for _, p := range doc.Prefixes {
			raw = append(raw, p.IPPrefix)
		}
		for _, p := range doc.IPv6Prefixes {
			raw = append(raw, p.IPv6Prefix)
		}
	case RangesGoogle:
		var doc struct {
			Prefixes []struct {
				IPv4Prefix string `json:"ipv4Prefix"`
				IPv6Prefix string `json:"ipv6Prefix"`
			} `json:"prefixes"`
		}
		if err := json.NewDecoder(r).Decode(&doc); err != nil {
			return nil, fmt.Errorf("google ranges: %w", err)
		}
		for _, p := range doc.Prefixes {
			raw = append(raw, p.IPv4Prefix+p.IPv6Prefix)
		}
	case RangesFastly:
		var doc struct {
			Addresses     []string `json:"addresses"`
			IPv6Addresses []string `json:"ipv6_addresses"`
		}
		if err := json.NewDecoder(r).Decode(&doc); err != nil {
			return nil, fmt.Errorf("fastly public-ip-list: %w", err)
		}
		raw = append(doc.Addresses, doc.IPv6Addresses...)
	default:
		return nil, fmt.Errorf("range list format %q: want text, aws, google or fastly", format)
	}
	out := make([]SharedPrefix, 0, len(raw))
	for _, v := range raw {
		p, err := netip.ParsePrefix(v)
		if err != nil || p.Masked() != p {
			return nil, fmt.Errorf("%s range list: %q is not a canonical prefix", format, v)
		}
		out = append(out, SharedPrefix{Prefix: p, Label: label})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s range list has no prefixes", format)
	}
	return out, nil
}
