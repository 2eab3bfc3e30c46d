package config

import (
	"math"

	"github.com/writ-project/writ/api"
	"github.com/writ-project/writ/internal/clientip"
)

// RateLimit limits, per client address, what may be asked of the HTTP
// server without credentials: the API's public routes, the public record
// and the ledger (http.rate_limit). Absent settings take their defaults;
// 0 turns a limit off. See api/README.md, "Security".
type RateLimit struct {
	// RequestsPerSecond is the sustained rate of requests without
	// credentials, or with credentials that fail, from one address.
	// Default 20; 0: no limit.
	RequestsPerSecond *float64 `yaml:"requests_per_second"`
	// Burst is how many such requests an address may make at once.
	// Default: five seconds' worth (100).
	Burst *int `yaml:"burst"`
	// ContestsPerHour is how many contests one address may file an hour.
	// Default 10; 0: no limit.
	ContestsPerHour *int `yaml:"contests_per_hour"`
	// EventStreams is how many event streams (GET /v1/events) one
	// address may hold open at once. Default 8; 0: no limit.
	EventStreams *int `yaml:"event_streams"`
	// MaxClients bounds the addresses each limit remembers (about 100
	// bytes each). Default 65536.
	MaxClients int `yaml:"max_clients"`
	// TrustedProxies lists the reverse proxies (addresses or prefixes) in
	// front of writ, whose client_ip_header names the client. Default
	// none: the TCP peer is the client.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ClientIPHeader is the header those proxies set: X-Forwarded-For
	// (default) or Forwarded (RFC 7239).
	ClientIPHeader string `yaml:"client_ip_header"`
}

// resolveRateLimit checks the http.rate_limit section and fills in the
// defaults.
func (c *Config) resolveRateLimit(bad func(key, format string, args ...any)) api.RateLimit {
	in := c.HTTP.RateLimit
	out := api.DefaultRateLimit()
	if v := in.RequestsPerSecond; v != nil {
		if *v < 0 || math.IsNaN(*v) || math.IsInf(*v, 0) {
			bad("http.rate_limit.requests_per_second", "%v: want 0 (no limit) or more", *v)
		} else {
			out.PerSecond = *v
			out.Burst = int(math.Ceil(5 * *v))
		}
	}
	if v := in.Burst; v != nil {
		if *v < 1 {
			bad("http.rate_limit.burst", "%d: want 1 or more", *v)
		} else {
			out.Burst = *v
		}
	}
	if v := in.ContestsPerHour; v != nil {
		if *v < 0 {
			bad("http.rate_limit.contests_per_hour", "%d: want 0 (no limit) or more", *v)
		} else {
			out.ContestsPerHour = *v
		}
	}
	if v := in.EventStreams; v != nil {
		if *v < 0 {
			bad("http.rate_limit.event_streams", "%d: want 0 (no limit) or more", *v)
		} else {
			out.EventStreams = *v
		}
	}
	switch {
	case in.MaxClients < 0:
		bad("http.rate_limit.max_clients", "%d: want 1 or more (0: the default, %d)", in.MaxClients, api.DefaultMaxClients)
	case in.MaxClients > 0:
		out.MaxClients = in.MaxClients
	}
	out.TrustedProxies = parseNetworks("http.rate_limit.trusted_proxies", in.TrustedProxies, bad)
	if h, err := clientip.Header(in.ClientIPHeader); err != nil {
		bad("http.rate_limit.client_ip_header", "%v", err)
	} else {
		out.ClientIPHeader = h
	}
	return out
}
