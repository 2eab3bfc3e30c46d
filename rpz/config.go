package rpz

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/jurisdiction"
)

// Defaults.
const (
	// DefaultZoneTemplate names each jurisdiction's zone; {scope} is the
	// lower-case ISO 3166-1 code.
	DefaultZoneTemplate = "{scope}.rpz.writ."
	// DefaultTTL is the TTL of every record of a policy zone, which
	// resolvers give the answers they rewrite.
	DefaultTTL = 60 * time.Second
	// DefaultRefresh is the SOA refresh: how often a secondary that missed
	// a NOTIFY checks the serial.
	DefaultRefresh = 60 * time.Second
	// DefaultRetry is the SOA retry: how soon a secondary retries a failed
	// refresh.
	DefaultRetry = 15 * time.Second
	// DefaultExpire is the SOA expire: how long a secondary that cannot
	// reach writ keeps enforcing its copy before dropping the zone.
	DefaultExpire = 7 * 24 * time.Hour
	// DefaultHistory is the number of changes kept per zone for IXFR.
	DefaultHistory = 100
)

// TSIGKey is a shared secret that authenticates zone transfers (RFC 8945).
type TSIGKey struct {
	// Name is the key's name, as the secondaries know it.
	Name string
	// Algorithm is hmac-sha256 (the default), hmac-sha384, hmac-sha512
	// or hmac-sha1.
	Algorithm string
	// Secret is the key, base64-encoded.
	Secret string
}

// Config configures the RPZ feed.
type Config struct {
	// Listen lists the addresses the authoritative endpoint serves on,
	// UDP and TCP each.
	Listen []string
	// Scopes lists the jurisdictions that get a zone each.
	Scopes []jurisdiction.Code
	// ZoneTemplate names each jurisdiction's zone; "{scope}" is replaced
	// by the lower-case code. Default DefaultZoneTemplate.
	ZoneTemplate string
	// Action is what triggers make resolvers answer. Default NXDomain.
	Action Action
	// WalledGarden is the CNAME target of the WalledGarden action: the
	// name of a server showing the information page.
	WalledGarden string
	// TTL, Refresh, Retry and Expire set the records' TTL and the SOA's
	// timers; zero means the default.
	TTL, Refresh, Retry, Expire time.Duration
	// History is the number of changes kept per zone for IXFR; zero means
	// DefaultHistory, a negative number none (every transfer is full).
	History int
	// AllowTransfer lists the networks allowed to transfer the zones.
	// Empty: loopback only.
	AllowTransfer []netip.Prefix
	// TSIGKeys are the keys transfers may be signed with. A transfer
	// signed with another key, or with a bad signature, is refused.
	TSIGKeys []TSIGKey
	// RequireTSIG refuses unsigned transfers, even from allowed networks.
	RequireTSIG bool
	// Notify lists the secondaries (host:port) told of every new serial.
	Notify []string
	// StateFile keeps each zone's serial across restarts, so that a
	// secondary never sees the serial go back. Empty: not kept.
	StateFile string
	// FirstSerial is the serial of a zone that has no saved state; zero
	// means the current Unix time.
	FirstSerial uint32
	// RecordURL returns the public record URL of an order, quoted in the
	// order records beside its id. Nil: the id only.
	RecordURL func(id string) string
	// OnTransfer, if set, is called after a secondary at peer has received
	// serial of zone, by an incremental (IXFR) or a full transfer; policy
	// is the newest policy version that serial enforces (for receipts).
	OnTransfer func(zone string, serial uint32, policy uint64, peer netip.Addr, incremental bool)
	// Logger receives transfers, refusals and notifications.
	Logger *slog.Logger
}

// ZoneName returns the name of jurisdiction c's zone under template
// (DefaultZoneTemplate if empty), fully qualified and in lower case.
func ZoneName(template string, c jurisdiction.Code) string {
	if template == "" {
		template = DefaultZoneTemplate
	}
	return dns.Fqdn(strings.ToLower(strings.ReplaceAll(template, "{scope}", c.String())))
}

// Validate fills in the defaults and checks c, reporting every problem,
// each named by its setting in writ's configuration file (rpz.*). New
// calls it.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("rpz."+key+": "+format, args...))
	}
	if len(c.Listen) == 0 {
		bad("listen", "no address")
	}
	for _, l := range c.Listen {
		if _, _, err := net.SplitHostPort(l); err != nil {
			bad("listen", "%q: want host:port, such as 127.0.0.1:5354", l)
		}
	}
	if c.ZoneTemplate == "" {
		c.ZoneTemplate = DefaultZoneTemplate
	}
	if !strings.Contains(c.ZoneTemplate, "{scope}") {
		bad("zone", "%q lacks {scope}: every jurisdiction needs its own zone", c.ZoneTemplate)
	} else if _, ok := dns.IsDomainName(ZoneName(c.ZoneTemplate, jurisdiction.MustParse("FR"))); !ok {
		bad("zone", "%q does not make a domain name", c.ZoneTemplate)
	}
	seen := map[jurisdiction.Code]bool{}
	for _, code := range c.Scopes {
		if code == jurisdiction.Unknown || seen[code] {
			bad("scopes", "unknown or repeated jurisdiction %q", code.String())
		}
		seen[code] = true
	}
	if c.Action == "" {
		c.Action = NXDomain
	}
	if _, err := ParseAction(string(c.Action)); err != nil {
		bad("action", "%v", err)
	}
	if c.Action == WalledGarden {
		if _, ok := dns.IsDomainName(c.WalledGarden); !ok || strings.Trim(c.WalledGarden, ".") == "" {
			bad("walled_garden", "the cname action needs the host name of an information page, got %q", c.WalledGarden)
		}
		c.WalledGarden = dns.Fqdn(strings.ToLower(c.WalledGarden))
	}
	def := func(d *time.Duration, v time.Duration, name string) {
		if *d == 0 {
			*d = v
		}
		if *d < time.Second || *d > (1<<31-1)*time.Second {
			bad(name, "%v: want between 1s and 68 years", *d)
		}
	}
	def(&c.TTL, DefaultTTL, "ttl")
	def(&c.Refresh, DefaultRefresh, "refresh")
	def(&c.Retry, DefaultRetry, "retry")
	def(&c.Expire, DefaultExpire, "expire")
	switch {
	case c.History == 0:
		c.History = DefaultHistory
	case c.History < 0:
		c.History = 0
	}
	if len(c.AllowTransfer) == 0 {
		c.AllowTransfer = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	names := map[string]bool{}
	for i := range c.TSIGKeys {
		k := &c.TSIGKeys[i]
		k.Name = dns.Fqdn(strings.ToLower(k.Name))
		if _, ok := dns.IsDomainName(k.Name); !ok || k.Name == "." || names[k.Name] {
			bad(fmt.Sprintf("tsig_keys[%d].name", i), "missing, invalid or repeated name %q", k.Name)
		}
		names[k.Name] = true
		alg, err := tsigAlgorithm(k.Algorithm)
		if err != nil {
			bad(fmt.Sprintf("tsig_keys[%d].algorithm", i), "%v", err)
		}
		k.Algorithm = alg
		if b, err := base64.StdEncoding.DecodeString(k.Secret); err != nil || len(b) == 0 {
			bad(fmt.Sprintf("tsig_keys[%d].secret", i), "key %s: the secret is not base64 (generate one with: tsig-keygen -a hmac-sha256 NAME)", k.Name)
		}
	}
	if c.RequireTSIG && len(c.TSIGKeys) == 0 {
		bad("require_tsig", "TSIG is required but no key is configured in rpz.tsig_keys")
	}
	for _, n := range c.Notify {
		if _, _, err := net.SplitHostPort(n); err != nil {
			bad("notify", "%q: want host:port, such as 192.0.2.53:53", n)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return errors.Join(errs...)
}

// tsigAlgorithm maps an algorithm's configured name to its DNS name.
func tsigAlgorithm(s string) (string, error) {
	switch strings.TrimSuffix(strings.ToLower(s), ".") {
	case "", "hmac-sha256":
		return dns.HmacSHA256, nil
	case "hmac-sha384":
		return dns.HmacSHA384, nil
	case "hmac-sha512":
		return dns.HmacSHA512, nil
	case "hmac-sha1":
		return dns.HmacSHA1, nil
	}
	return "", fmt.Errorf("algorithm %q: want hmac-sha256, hmac-sha384, hmac-sha512 or hmac-sha1", s)
}

// target returns the CNAME target of the action.
func (c *Config) target() string {
	switch c.Action {
	case NoData:
		return "*."
	case WalledGarden:
		return c.WalledGarden
	}
	return "."
}
