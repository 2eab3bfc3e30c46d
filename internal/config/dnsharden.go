package config

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/writ-project/writ/dnsserver"
)

// DNSRateLimit is response rate limiting over UDP (dns.rate_limit): per
// client prefix and second, responses beyond the limit are dropped, but
// every slip-th is sent truncated so that a genuine client retries over
// TCP. See dnsserver/README.md, "Hardening".
type DNSRateLimit struct {
	// ResponsesPerSecond per client prefix. Default 1000; 0: no limit.
	ResponsesPerSecond *int `yaml:"responses_per_second"`
	// Slip sends every slip-th limited response truncated and drops the
	// others. Default 2; 1: truncate them all; 0: drop them all.
	Slip *int `yaml:"slip"`
	// IPv4PrefixLength and IPv6PrefixLength group client addresses that
	// are counted together. Defaults 24 and 56.
	IPv4PrefixLength int `yaml:"ipv4_prefix_length"`
	IPv6PrefixLength int `yaml:"ipv6_prefix_length"`
	// MaxClients is the number of prefixes counted at once. Default 65536.
	MaxClients int `yaml:"max_clients"`
	// Exempt lists networks never limited. Default: loopback; [] for none.
	Exempt *[]string `yaml:"exempt"`
}

// DNSTCP bounds the DNS server's TCP connections (dns.tcp).
type DNSTCP struct {
	MaxConnections          int      `yaml:"max_connections"`
	MaxConnectionsPerClient int      `yaml:"max_connections_per_client"`
	IdleTimeout             Duration `yaml:"idle_timeout"`
	ReadTimeout             Duration `yaml:"read_timeout"`
	Pipeline                int      `yaml:"pipeline"`
}

// resolveDNSHardening checks the size, rate, TCP and serve-stale
// settings of the dns section into d.
func (c *Config) resolveDNSHardening(d *dnsserver.Config, bad func(key, format string, args ...any)) {
	in := c.DNS
	if in.MaxUDPSize != 0 {
		d.MaxUDPSize = in.MaxUDPSize // Validate names the bounds
	}
	offOrValue("dns.max_amplification", in.MaxAmplification, "no bound but max_udp_size", &d.MaxAmplification, bad)
	if v := in.MinimalResponses; v != nil {
		d.FullResponses = !*v
	}
	d.MaxStale = time.Duration(in.ServeStale)
	if in.StaleTTL < 0 {
		bad("dns.stale_ttl", "%v: want a positive duration", time.Duration(in.StaleTTL))
	}
	d.StaleTTL = time.Duration(in.StaleTTL)

	rl := in.RateLimit
	offOrValue("dns.rate_limit.responses_per_second", rl.ResponsesPerSecond, "no limit", &d.RateLimit.ResponsesPerSecond, bad)
	offOrValue("dns.rate_limit.slip", rl.Slip, "drop every limited response", &d.RateLimit.Slip, bad)
	d.RateLimit.IPv4PrefixLen = rl.IPv4PrefixLength
	d.RateLimit.IPv6PrefixLen = rl.IPv6PrefixLength
	d.RateLimit.MaxClients = rl.MaxClients
	if rl.Exempt != nil {
		d.RateLimit.Exempt = parseNetworks("dns.rate_limit.exempt", *rl.Exempt, bad)
		if d.RateLimit.Exempt == nil {
			d.RateLimit.Exempt = []netip.Prefix{} // none, not the default
		}
	}

	t := in.TCP // dnsserver.Config.Validate checks the values
	d.TCP = dnsserver.TCPLimits{
		MaxConnections:          t.MaxConnections,
		MaxConnectionsPerClient: t.MaxConnectionsPerClient,
		IdleTimeout:             time.Duration(t.IdleTimeout),
		ReadTimeout:             time.Duration(t.ReadTimeout),
		Pipeline:                t.Pipeline,
	}
}

// offOrValue sets *into from a setting where 0 turns something off (zero
// meaning, in dnsserver.Config, the default, so off is -1). Absent, *into
// is left to its default.
func offOrValue(key string, v *int, off string, into *int, bad func(key, format string, args ...any)) {
	switch {
	case v == nil:
	case *v < 0:
		bad(key, "%d: want 0 (%s) or more", *v, off)
	case *v == 0:
		*into = -1
	default:
		*into = *v
	}
}

// parseNetworks parses a list of addresses and prefixes, naming each bad
// one by its key and index. An address stands for itself alone.
func parseNetworks(key string, list []string, bad func(key, format string, args ...any)) []netip.Prefix {
	var out []netip.Prefix
	for i, s := range list {
		p, err := parsePrefixOrAddr(s)
		if err != nil {
			bad(fmt.Sprintf("%s[%d]", key, i), "%q is not an IP address or prefix", s)
			continue
		}
		out = append(out, p)
	}
	return out
}
