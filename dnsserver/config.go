package dnsserver

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"
)

// BlockMode is how a blocked query is answered.
type BlockMode string

// Block modes.
const (
	// Refused answers REFUSED, as Google Public DNS does for legal blocks:
	// the client learns the resolver declined, not that the name is gone.
	Refused BlockMode = "refused"
	// NXDomain answers that the name does not exist.
	NXDomain BlockMode = "nxdomain"
	// Sinkhole answers A and AAAA queries with the operator's information
	// page address, and other types with an empty answer.
	Sinkhole BlockMode = "sinkhole"
)

// ParseBlockMode parses "refused", "nxdomain" or "sinkhole".
func ParseBlockMode(s string) (BlockMode, error) {
	switch m := BlockMode(strings.ToLower(s)); m {
	case Refused, NXDomain, Sinkhole:
		return m, nil
	}
	return "", fmt.Errorf("block mode %q: want refused, nxdomain or sinkhole", s)
}

// Config configures a Server. Zero fields take the defaults documented on
// each; Validate reports what cannot work.
type Config struct {
	// Listen lists the addresses to serve on, UDP and TCP each.
	// Default: 127.0.0.1:5353.
	Listen []string
	// Upstreams are the resolvers queries are forwarded to, tried in
	// order ("host:port"; port 53 when omitted).
	Upstreams []string
	// UpstreamTimeout bounds one attempt at one upstream. Default 2s.
	UpstreamTimeout time.Duration

	// BlockMode is how blocked queries are answered. Default refused.
	BlockMode BlockMode
	// SinkholeV4 and SinkholeV6 answer A and AAAA queries in sinkhole mode.
	SinkholeV4, SinkholeV6 netip.Addr
	// BlockTTL is the TTL of sinkhole answers, shortened to the order's
	// remaining time. Default 60s.
	BlockTTL time.Duration

	// Operator names the organisation that applies the block (the "o"
	// field of the structured error).
	Operator string
	// Contact lists mailto: or tel: URIs where affected users can reach
	// the operator (the "c" field).
	Contact []string
	// Language is the language tag of the justification text. Default en.
	Language string
	// RecordURL returns the public record URL of an order, cited in the
	// justification. Nil cites the order id alone.
	RecordURL func(orderID string) string

	// ECSTrusted lists the source networks (the operator's own front-end
	// resolvers) whose EDNS Client Subnet option is believed: for their
	// queries the client's jurisdiction is that of the subnet. ECS from
	// anyone else is ignored, so a client cannot claim another country.
	ECSTrusted []netip.Prefix

	// CacheEntries bounds the response cache. Default 100,000; negative
	// disables caching.
	CacheEntries int
	// MaxCacheTTL caps how long an answer is cached. Default 1h.
	MaxCacheTTL time.Duration

	// Logger receives the server's logs. Default slog.Default().
	Logger *slog.Logger
}

// Defaults for Config fields.
const (
	DefaultListen          = "127.0.0.1:5353"
	DefaultUpstreamTimeout = 2 * time.Second
	DefaultBlockTTL        = 60 * time.Second
	DefaultCacheEntries    = 100_000
	DefaultMaxCacheTTL     = time.Hour
)

func (c *Config) fillDefaults() {
	if len(c.Listen) == 0 {
		c.Listen = []string{DefaultListen}
	}
	if c.UpstreamTimeout <= 0 {
		c.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if c.BlockMode == "" {
		c.BlockMode = Refused
	}
	if c.BlockTTL <= 0 {
		c.BlockTTL = DefaultBlockTTL
	}
	if c.Language == "" {
		c.Language = "en"
	}
	if c.CacheEntries == 0 {
		c.CacheEntries = DefaultCacheEntries
	}
	if c.MaxCacheTTL <= 0 {
		c.MaxCacheTTL = DefaultMaxCacheTTL
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	ups := make([]string, len(c.Upstreams))
	for i, u := range c.Upstreams {
		ups[i] = withDefaultPort(u)
	}
	c.Upstreams = ups
}

// Validate reports configuration that cannot work, naming the field.
// Unset fields are checked with their defaults.
func (c Config) Validate() error {
	c.fillDefaults()
	var errs []error
	if len(c.Upstreams) == 0 {
		errs = append(errs, errors.New("dns upstreams: none configured; writ forwards queries it does not block and needs at least one resolver (for example 127.0.0.1:53)"))
	}
	for _, u := range c.Upstreams {
		if _, _, err := splitHostPort(u); err != nil {
			errs = append(errs, fmt.Errorf("dns upstream %q: want host:port", u))
		}
	}
	if _, err := ParseBlockMode(string(c.BlockMode)); err != nil {
		errs = append(errs, fmt.Errorf("dns %w", err))
	}
	if c.BlockMode == Sinkhole && !c.SinkholeV4.IsValid() && !c.SinkholeV6.IsValid() {
		errs = append(errs, errors.New("dns block mode sinkhole needs a sinkhole address (sinkhole_ipv4 and/or sinkhole_ipv6)"))
	}
	if c.SinkholeV4.IsValid() && !c.SinkholeV4.Is4() {
		errs = append(errs, fmt.Errorf("dns sinkhole_ipv4 %s is not an IPv4 address", c.SinkholeV4))
	}
	if c.SinkholeV6.IsValid() && !c.SinkholeV6.Is6() {
		errs = append(errs, fmt.Errorf("dns sinkhole_ipv6 %s is not an IPv6 address", c.SinkholeV6))
	}
	for _, uri := range c.Contact {
		if !strings.HasPrefix(uri, "mailto:") && !strings.HasPrefix(uri, "tel:") {
			errs = append(errs, fmt.Errorf("dns contact %q: the structured DNS error format allows only mailto: and tel: URIs", uri))
		}
	}
	return errors.Join(errs...)
}

// withDefaultPort adds port 53 to an upstream given without one.
func withDefaultPort(u string) string {
	if a, err := netip.ParseAddr(u); err == nil {
		return netip.AddrPortFrom(a, 53).String()
	}
	if strings.HasPrefix(u, "[") || strings.Contains(u, ":") {
		return u
	}
	return u + ":53"
}

func splitHostPort(s string) (string, string, error) {
	ap, err := netip.ParseAddrPort(s)
	if err == nil {
		return ap.Addr().String(), fmt.Sprint(ap.Port()), nil
	}
	i := strings.LastIndexByte(s, ':')
	if i <= 0 || i == len(s)-1 {
		return "", "", fmt.Errorf("%q: want host:port", s)
	}
	return s[:i], s[i+1:], nil
}
