// Package config reads writ's configuration file (YAML), fills in the
// defaults in one place and validates everything once, with errors that
// name the setting at fault.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/writ-project/writ/api"
	"github.com/writ-project/writ/dnsserver"
	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/piracyshield"
	"github.com/writ-project/writ/rpz"
	"github.com/writ-project/writ/scope"
)

// Config is the whole configuration of `writ serve`. The YAML keys are
// the snake_case names in the struct tags; see writ.example.yaml.
type Config struct {
	// DataDir holds the database, the generated API token and other state.
	DataDir string `yaml:"data_dir"`
	// Store is where orders are kept (see store.go).
	Store Store `yaml:"store"`
	// Node names this writ process among the nodes sharing a store, in
	// its receipts and logs. Default: the host name.
	Node string `yaml:"node"`
	Log  Log    `yaml:"log"`
	DNS  DNS    `yaml:"dns"`
	HTTP HTTP   `yaml:"http"`
	API  API    `yaml:"api"`
	// Operator identifies who applies the blocks, in every block notice.
	Operator Operator `yaml:"operator"`
	// Scopes maps jurisdictions to client networks: {FR: [192.0.2.0/24]}.
	Scopes map[string][]string `yaml:"scopes"`
	// GeoIPDatabase is an optional MaxMind-format country database for
	// clients outside every declared network.
	GeoIPDatabase string `yaml:"geoip_database"`
	Orders        Orders `yaml:"orders"`
	// RPZ is the RPZ feed for resolvers (see rpz.go).
	RPZ RPZ `yaml:"rpz"`
	// Gate is the HTTP 451 gate (see gate.go).
	Gate Gate `yaml:"gate"`
	// Ledger and Lumen configure the public record (see transparency.go).
	Ledger Ledger `yaml:"ledger"`
	Lumen  Lumen  `yaml:"lumen"`
	// Console is the web console (see console.go).
	Console Console `yaml:"console"`
	// PiracyShield is the connector to Italy's Piracy Shield platform
	// (see piracyshield.go).
	PiracyShield PiracyShield `yaml:"piracyshield"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text or json
}

// DNS configures the DNS enforcement point.
type DNS struct {
	Listen          []string `yaml:"listen"`
	Upstreams       []string `yaml:"upstreams"`
	UpstreamTimeout Duration `yaml:"upstream_timeout"`
	BlockMode       string   `yaml:"block_mode"`
	SinkholeIPv4    string   `yaml:"sinkhole_ipv4"`
	SinkholeIPv6    string   `yaml:"sinkhole_ipv6"`
	BlockTTL        Duration `yaml:"block_ttl"`
	ECSTrusted      []string `yaml:"ecs_trusted"`
	CacheEntries    int      `yaml:"cache_entries"`
	MaxCacheTTL     Duration `yaml:"max_cache_ttl"`
	// Hardening (see dnsharden.go).
	MaxUDPSize       int          `yaml:"max_udp_size"`
	MaxAmplification *int         `yaml:"max_amplification"`
	MinimalResponses *bool        `yaml:"minimal_responses"`
	ServeStale       Duration     `yaml:"serve_stale"`
	StaleTTL         Duration     `yaml:"stale_ttl"`
	RateLimit        DNSRateLimit `yaml:"rate_limit"`
	TCP              DNSTCP       `yaml:"tcp"`
}

// HTTP configures the API and public record server.
type HTTP struct {
	Listen string `yaml:"listen"`
	// PublicURL is how clients reach this server; block notices link to
	// the public record under it. Default http://<listen>.
	PublicURL    string `yaml:"public_url"`
	MaxBodyBytes int64  `yaml:"max_body_bytes"`
	// RateLimit limits requests without credentials (see ratelimit.go).
	RateLimit RateLimit `yaml:"rate_limit"`
}

// API configures access to the API.
type API struct {
	// TokenFile holds the bearer token. Default <data_dir>/api-token,
	// generated at first start.
	TokenFile string `yaml:"token_file"`
}

// Operator identifies the operator in block notices.
type Operator struct {
	Name     string   `yaml:"name"`
	Contact  []string `yaml:"contact"`
	Language string   `yaml:"language"`
}

// Orders sets the intake rules.
type Orders struct {
	// DefaultExpiry is given to orders that state no expiry. Empty: such
	// orders are rejected (unless AllowOpenEnded).
	DefaultExpiry Duration `yaml:"default_expiry"`
	// AllowOpenEnded accepts orders without an expiry as open-ended.
	AllowOpenEnded bool `yaml:"allow_open_ended"`
	// ReviewDelegatedReporters holds every target of an order from a
	// delegated reporter until a reviewer releases it.
	ReviewDelegatedReporters bool `yaml:"review_delegated_reporters"`
	// ReviewExemptAuthorities are delegated reporters, by authority id,
	// whose orders apply without that review (safeguards still hold).
	ReviewExemptAuthorities []string `yaml:"review_exempt_authorities"`
	// ExpiryReminder records an "expiring" event this long before an order
	// expires. Empty or 0s: no reminders.
	ExpiryReminder    Duration    `yaml:"expiry_reminder"`
	MaxTargets        int         `yaml:"max_targets"`
	SharedInfraFile   string      `yaml:"shared_infrastructure_file"`
	SharedInfraLists  []RangeList `yaml:"shared_infrastructure_lists"`
	MaxPrefixBitsIPv4 int         `yaml:"max_prefix_bits_ipv4"`
	MaxPrefixBitsIPv6 int         `yaml:"max_prefix_bits_ipv6"`
	AllowNames        []string    `yaml:"allow_names"`
	// PassiveDNSFile is a sample of "name address" resolutions; an IP
	// target behind which SharedNamesThreshold other names resolve is held.
	PassiveDNSFile       string `yaml:"passive_dns_file"`
	SharedNamesThreshold int    `yaml:"shared_names_threshold"`
}

// RangeList is a published list of CDN or cloud ranges, saved to a file:
// every prefix in it counts as shared infrastructure.
type RangeList struct {
	// Format is text (one prefix a line, as Cloudflare publishes), aws
	// (ip-ranges.json), google (goog.json, cloud.json) or fastly.
	Format string `yaml:"format"`
	File   string `yaml:"file"`
	// Label names the provider in hold reasons.
	Label string `yaml:"label"`
}

// Duration is a time.Duration written as "90s", "30m", "12h" or "90d".
type Duration time.Duration

// UnmarshalYAML parses a duration, accepting a "d" suffix for days.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: want a duration such as 90d, 12h or 30m", n.Line)}}
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		// As a yaml.TypeError the message carries the line, like yaml's
		// own errors, and decoding goes on to report every bad value.
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*d = Duration(v)
	return nil
}

// ParseDuration parses Go durations plus whole days ("90d"); "" is zero.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q is not a duration such as 90d, 12h or 30m", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 90d, 12h or 30m", s)
	}
	return v, nil
}

// Defaults.
const (
	DefaultDataDir    = "./writ-data"
	DefaultHTTPListen = "127.0.0.1:8080"
)

// Default returns the configuration used when no file is given.
func Default() Config {
	return Config{
		DataDir: DefaultDataDir,
		Log:     Log{Level: "info", Format: "text"},
		DNS:     DNS{Listen: []string{dnsserver.DefaultListen}},
		HTTP:    HTTP{Listen: DefaultHTTPListen},
		Operator: Operator{
			Language: "en",
		},
		Orders: Orders{
			ReviewDelegatedReporters: true,
			ExpiryReminder:           Duration(DefaultExpiryReminder),
		},
		Console: defaultConsole(),
	}
}

// DefaultExpiryReminder is how long before expiry a reminder is recorded.
const DefaultExpiryReminder = 7 * 24 * time.Hour

// Load reads a YAML configuration file over the defaults. Unknown keys
// are errors, so that a misspelt setting is not silently ignored.
func Load(path string) (Config, error) {
	c := Default()
	b, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	// An empty file is a valid, empty configuration.
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// Resolved is a validated configuration in the types writ's components
// take.
type Resolved struct {
	Store ResolvedStore
	// Node is this process's name among the nodes sharing the store.
	Node     string
	DNS      dnsserver.Config
	Networks []scope.Network
	Intake   order.Intake
	// ExpiryReminder is how long before expiry an "expiring" event is
	// recorded; zero for none.
	ExpiryReminder time.Duration
	PublicURL      string
	TokenFile      string
	GeoIPPath      string
	// RPZ is the RPZ feed's configuration; nil when it is off.
	RPZ *rpz.Config
	// Gate is the HTTP gate's configuration; Gate.Enabled says if it is on.
	Gate *ResolvedGate
	// Transparency configures the ledger and the Lumen push.
	Transparency *Transparency
	// Console configures the web console.
	Console *ResolvedConsole
	// PiracyShield is the Piracy Shield connector's configuration; nil
	// when it is off.
	PiracyShield *piracyshield.Config
	// RateLimit is the HTTP server's rate limits per client address.
	RateLimit api.RateLimit
}

// Resolve validates c and converts it. Every problem is reported, each
// naming its setting.
func (c *Config) Resolve() (*Resolved, error) {
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf(key+": "+format, args...))
	}
	r := &Resolved{GeoIPPath: c.GeoIPDatabase}

	if c.DataDir == "" {
		bad("data_dir", "is empty")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q: want text or json", c.Log.Format)
	}

	d := dnsserver.Config{
		Listen:          c.DNS.Listen,
		Upstreams:       c.DNS.Upstreams,
		UpstreamTimeout: time.Duration(c.DNS.UpstreamTimeout),
		BlockTTL:        time.Duration(c.DNS.BlockTTL),
		CacheEntries:    c.DNS.CacheEntries,
		MaxCacheTTL:     time.Duration(c.DNS.MaxCacheTTL),
		Operator:        c.Operator.Name,
		Contact:         c.Operator.Contact,
		Language:        c.Operator.Language,
	}
	if c.DNS.BlockMode != "" {
		m, err := dnsserver.ParseBlockMode(c.DNS.BlockMode)
		if err != nil {
			bad("dns.block_mode", "%v", err)
		}
		d.BlockMode = m
	}
	parseAddr := func(key, raw string) netip.Addr {
		if raw == "" {
			return netip.Addr{}
		}
		a, err := netip.ParseAddr(raw)
		if err != nil {
			bad(key, "%q is not an IP address", raw)
		}
		return a
	}
	d.SinkholeV4 = parseAddr("dns.sinkhole_ipv4", c.DNS.SinkholeIPv4)
	d.SinkholeV6 = parseAddr("dns.sinkhole_ipv6", c.DNS.SinkholeIPv6)
	d.ECSTrusted = parseNetworks("dns.ecs_trusted", c.DNS.ECSTrusted, bad)
	if c.DNS.CacheEntries < 0 {
		d.CacheEntries = -1
	}
	c.resolveDNSHardening(&d, bad)
	r.DNS = d
	for _, l := range c.DNS.Listen {
		if !validListen(l) {
			bad("dns.listen", "%q: want host:port, such as 127.0.0.1:5353 or :53", l)
		}
	}
	if !validListen(c.HTTP.Listen) {
		bad("http.listen", "%q: want host:port, such as 127.0.0.1:8080 or :8080", c.HTTP.Listen)
	}
	r.PublicURL = c.HTTP.PublicURL
	if r.PublicURL == "" {
		r.PublicURL = "http://" + c.HTTP.Listen
	}
	if !strings.HasPrefix(r.PublicURL, "http://") && !strings.HasPrefix(r.PublicURL, "https://") {
		bad("http.public_url", "%q: want an http:// or https:// URL", r.PublicURL)
	}
	r.TokenFile = c.API.TokenFile
	if r.TokenFile == "" {
		r.TokenFile = c.DataDir + "/api-token"
	}

	for code, list := range c.Scopes {
		nets, err := scope.ParseMapping(code + "=" + strings.Join(list, ","))
		if err != nil {
			bad("scopes."+code, "%v", err)
			continue
		}
		r.Networks = append(r.Networks, nets...)
	}

	in := order.Intake{
		DefaultExpiry:   time.Duration(c.Orders.DefaultExpiry),
		AllowOpenEnded:  c.Orders.AllowOpenEnded,
		ReviewDelegated: c.Orders.ReviewDelegatedReporters,
		ReviewExempt:    slices.Clone(c.Orders.ReviewExemptAuthorities),
		MaxTargets:      c.Orders.MaxTargets,
		Safeguards: order.Safeguards{
			MaxPrefixBits4: c.Orders.MaxPrefixBitsIPv4,
			MaxPrefixBits6: c.Orders.MaxPrefixBitsIPv6,
			SharedNames:    c.Orders.SharedNamesThreshold,
		},
	}
	r.ExpiryReminder = time.Duration(c.Orders.ExpiryReminder)
	if c.Orders.SharedNamesThreshold < 0 {
		bad("orders.shared_names_threshold", "%d: want 1 or more (0: the default, 2)", c.Orders.SharedNamesThreshold)
	}
	if b := c.Orders.MaxPrefixBitsIPv4; b < 0 || b > 32 {
		bad("orders.max_prefix_bits_ipv4", "%d: want 1 to 32", b)
	}
	if b := c.Orders.MaxPrefixBitsIPv6; b < 0 || b > 128 {
		bad("orders.max_prefix_bits_ipv6", "%d: want 1 to 128", b)
	}
	for i, n := range c.Orders.AllowNames {
		name, err := order.NormalizeName(n)
		if err != nil {
			bad(fmt.Sprintf("orders.allow_names[%d]", i), "%q %v", n, err)
			continue
		}
		in.Safeguards.AllowNames = append(in.Safeguards.AllowNames, name)
	}
	if c.Orders.SharedInfraFile == "" {
		in.Safeguards.SharedInfra = order.DefaultSharedInfra()
	} else {
		f, err := os.Open(c.Orders.SharedInfraFile)
		if err != nil {
			bad("orders.shared_infrastructure_file", "%v", err)
		} else {
			list, err := order.ParseSharedInfra(f)
			f.Close()
			if err != nil {
				bad("orders.shared_infrastructure_file", "%s: %v", c.Orders.SharedInfraFile, err)
			}
			in.Safeguards.SharedInfra = list
		}
	}
	for i, l := range c.Orders.SharedInfraLists {
		key := fmt.Sprintf("orders.shared_infrastructure_lists[%d]", i)
		f, err := os.Open(l.File)
		if err != nil {
			bad(key, "%v", err)
			continue
		}
		label := l.Label
		if label == "" {
			label = l.Format + " ranges from " + l.File
		}
		list, err := order.ParseRangeList(l.Format, label, f)
		f.Close()
		if err != nil {
			bad(key, "%s: %v", l.File, err)
			continue
		}
		in.Safeguards.SharedInfra = append(in.Safeguards.SharedInfra, list...)
	}
	if c.Orders.PassiveDNSFile != "" {
		f, err := os.Open(c.Orders.PassiveDNSFile)
		if err != nil {
			bad("orders.passive_dns_file", "%v", err)
		} else {
			pd, err := order.ParsePassiveDNS(f)
			f.Close()
			if err != nil {
				bad("orders.passive_dns_file", "%s: %v", c.Orders.PassiveDNSFile, err)
			}
			in.Safeguards.PassiveDNS = pd
		}
	}
	r.Intake = in
	r.Store, r.Node = c.resolveStore(bad)
	r.RPZ = c.resolveRPZ(bad)
	r.Transparency = c.resolveTransparency(bad)
	r.Console = c.resolveConsole(bad)
	r.PiracyShield = c.resolvePiracyShield(bad)
	r.RateLimit = c.resolveRateLimit(bad)
	if ps := r.PiracyShield; ps != nil && ps.Review == piracyshield.ReviewSafeguards && !slices.Contains(r.Intake.ReviewExempt, ps.Authority) {
		// AGCOM's notices bind within thirty minutes: only what the
		// safeguards hold waits for a reviewer.
		r.Intake.ReviewExempt = append(r.Intake.ReviewExempt, ps.Authority)
	}
	if g, err := c.Gate.Resolve(c.Operator, r.PublicURL); err != nil {
		errs = append(errs, err)
	} else {
		r.Gate = g
	}

	if err := r.DNS.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// validListen accepts what net.Listen does: a host (name or address, or
// empty for all) and a port number.
func validListen(s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

// ParseScopeFlag is the --scope flag's parser: "FR=192.0.2.0/24,…".
func ParseScopeFlag(s string) (string, []string, error) {
	code, list, ok := strings.Cut(s, "=")
	if !ok {
		return "", nil, fmt.Errorf("--scope %q: want CC=prefix[,prefix…], such as FR=192.0.2.0/24", s)
	}
	if _, err := jurisdiction.Parse(strings.TrimSpace(code)); err != nil {
		return "", nil, fmt.Errorf("--scope %q: %v", s, err)
	}
	return strings.ToUpper(strings.TrimSpace(code)), strings.Split(list, ","), nil
}
