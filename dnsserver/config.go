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

	// MaxUDPSize caps UDP responses, in bytes, whatever buffer size the
	// client's EDNS record advertises; a response that would not fit is
	// sent truncated (TC), without records, so that the client asks again
	// over TCP. Default 1232 (the DNS flag day 2020 size, which avoids IP
	// fragmentation, as Unbound's and BIND's max-udp-size); 512 to 4096.
	MaxUDPSize int
	// MaxAmplification bounds a UDP response to this many times the size
	// of its query: UDP clients have not proved their address, so every
	// byte sent beyond the query's could be sent to a victim whose address
	// was forged. A larger response is sent truncated (TC). Default 30;
	// negative: no bound but MaxUDPSize.
	MaxAmplification int
	// FullResponses keeps the upstream's authority and additional
	// records in answers. By default responses are minimal (as Unbound's
	// minimal-responses): the authority section keeps only what negative
	// and signed answers need (SOA, NSEC, NSEC3 and their signatures) and
	// the additional section is dropped.
	FullResponses bool

	// RateLimit limits UDP responses per client prefix (RRL).
	RateLimit RateLimit
	// TCP bounds connections and what each may ask.
	TCP TCPLimits

	// MaxStale is how long past its expiry an answer may still be served
	// when no upstream answers (RFC 8767). Default 0: never; a SERVFAIL is
	// sent instead. RFC 8767 suggests 1 to 3 days.
	MaxStale time.Duration
	// StaleTTL is the TTL of a stale answer, and how long it is served
	// before the upstreams are tried again. Default 30s (RFC 8767).
	StaleTTL time.Duration

	// Logger receives the server's logs. Default slog.Default().
	Logger *slog.Logger
}

// RateLimit is response rate limiting (RRL) over UDP: the responses sent
// to each client prefix are counted per second; beyond the limit, every
// Slip-th response is sent truncated (TC, no records: no larger than the
// query), so that a genuine client asks again over TCP, and the others
// are dropped. A forged source address thus draws at most the limit, and
// then little more than what the forger sent. TCP, whose clients proved
// their address, is not rate-limited. Zero fields take their defaults.
type RateLimit struct {
	// ResponsesPerSecond is the most responses a client prefix gets in
	// one second. Default 1000; negative: no limit.
	ResponsesPerSecond int
	// Slip sends every Slip-th limited response truncated and drops the
	// others: 1 truncates them all. Default 2 (as BIND); negative: drop
	// them all.
	Slip int
	// IPv4PrefixLen and IPv6PrefixLen group client addresses into the
	// prefixes counted together. Defaults 24 and 56 (as BIND).
	IPv4PrefixLen, IPv6PrefixLen int
	// MaxClients is the number of prefixes counted at once (16 bytes
	// each, a fixed table). Default 65536.
	MaxClients int
	// Exempt lists networks never limited. Nil: loopback (a forged
	// loopback source cannot come from the network); empty: none.
	Exempt []netip.Prefix
}

// TCPLimits bounds the server's TCP connections. Zero fields take their
// defaults.
type TCPLimits struct {
	// MaxConnections bounds open connections; beyond it new ones are
	// closed at once. Default 512.
	MaxConnections int
	// MaxConnectionsPerClient bounds the open connections of one client:
	// an IPv4 address or an IPv6 /64. Default 16.
	MaxConnectionsPerClient int
	// IdleTimeout closes a connection that sends no query for this long.
	// Default 10s.
	IdleTimeout time.Duration
	// ReadTimeout is the time a client has to send a whole query once it
	// has started (so that a client sending a byte at a time cannot hold
	// a connection), and to take each answer. Default 5s.
	ReadTimeout time.Duration
	// Pipeline is how many queries of one connection are answered at
	// once; the connection is read no further until one is answered.
	// Default 16.
	Pipeline int
}

// Defaults for Config fields.
const (
	DefaultListen           = "127.0.0.1:5353"
	DefaultUpstreamTimeout  = 2 * time.Second
	DefaultBlockTTL         = 60 * time.Second
	DefaultCacheEntries     = 100_000
	DefaultMaxCacheTTL      = time.Hour
	DefaultMaxUDPSize       = 1232
	DefaultMaxAmplification = 30
	DefaultStaleTTL         = 30 * time.Second

	DefaultRateLimit      = 1000
	DefaultSlip           = 2
	DefaultIPv4PrefixLen  = 24
	DefaultIPv6PrefixLen  = 56
	DefaultRateLimitTable = 65536

	DefaultTCPMaxConnections          = 512
	DefaultTCPMaxConnectionsPerClient = 16
	DefaultTCPIdleTimeout             = 10 * time.Second
	DefaultTCPReadTimeout             = 5 * time.Second
	DefaultTCPPipeline                = 16
)

// Bounds of MaxUDPSize.
const (
	minUDPSize = 512
	maxUDPSize = 4096
)

// loopback is the default of RateLimit.Exempt.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// orDefault sets *v to def when it is zero (unset).
func orDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

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
	orDefault(&c.MaxUDPSize, DefaultMaxUDPSize)
	orDefault(&c.MaxAmplification, DefaultMaxAmplification)
	if c.StaleTTL <= 0 {
		c.StaleTTL = DefaultStaleTTL
	}
	rl := &c.RateLimit
	orDefault(&rl.ResponsesPerSecond, DefaultRateLimit)
	orDefault(&rl.Slip, DefaultSlip)
	orDefault(&rl.IPv4PrefixLen, DefaultIPv4PrefixLen)
	orDefault(&rl.IPv6PrefixLen, DefaultIPv6PrefixLen)
	orDefault(&rl.MaxClients, DefaultRateLimitTable)
	if rl.Exempt == nil {
		rl.Exempt = loopback
	}
	t := &c.TCP
	orDefault(&t.MaxConnections, DefaultTCPMaxConnections)
	orDefault(&t.MaxConnectionsPerClient, DefaultTCPMaxConnectionsPerClient)
	orDefault(&t.IdleTimeout, DefaultTCPIdleTimeout)
	orDefault(&t.ReadTimeout, DefaultTCPReadTimeout)
	orDefault(&t.Pipeline, DefaultTCPPipeline)
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
	if c.MaxUDPSize < minUDPSize || c.MaxUDPSize > maxUDPSize {
		errs = append(errs, fmt.Errorf("dns.max_udp_size %d: want %d to %d bytes", c.MaxUDPSize, minUDPSize, maxUDPSize))
	}
	if c.MaxStale < 0 {
		errs = append(errs, fmt.Errorf("dns.serve_stale %v: want 0 (never) or more", c.MaxStale))
	}
	rl := c.RateLimit
	if rl.IPv4PrefixLen < 1 || rl.IPv4PrefixLen > 32 {
		errs = append(errs, fmt.Errorf("dns.rate_limit.ipv4_prefix_length %d: want 1 to 32", rl.IPv4PrefixLen))
	}
	if rl.IPv6PrefixLen < 1 || rl.IPv6PrefixLen > 128 {
		errs = append(errs, fmt.Errorf("dns.rate_limit.ipv6_prefix_length %d: want 1 to 128", rl.IPv6PrefixLen))
	}
	if rl.MaxClients < 0 {
		errs = append(errs, fmt.Errorf("dns.rate_limit.max_clients %d: want 1 or more", rl.MaxClients))
	}
	t := c.TCP
	for _, v := range []struct {
		key string
		n   int
	}{{"max_connections", t.MaxConnections}, {"max_connections_per_client", t.MaxConnectionsPerClient}, {"pipeline", t.Pipeline}} {
		if v.n < 0 {
			errs = append(errs, fmt.Errorf("dns.tcp.%s %d: want 1 or more", v.key, v.n))
		}
	}
	for _, v := range []struct {
		key string
		d   time.Duration
	}{{"idle_timeout", t.IdleTimeout}, {"read_timeout", t.ReadTimeout}} {
		if v.d < 0 {
			errs = append(errs, fmt.Errorf("dns.tcp.%s %v: want a positive duration", v.key, v.d))
		}
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
