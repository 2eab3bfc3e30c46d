package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/writ-project/writ/api"
	"github.com/writ-project/writ/dnsserver"
	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/scope"
	"github.com/writ-project/writ/web"
)

const examplePath = "../../writ.example.yaml"

// writeFile writes a file in a fresh temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// configKeys lists every key of the configuration file, dotted
// ("dns.block_mode"), from the struct tags of Config.
func configKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		out = append(out, key)
		if f.Type.Kind() == reflect.Struct {
			out = append(out, configKeys(f.Type, key+".")...)
		}
	}
	return out
}

// fileKeys maps the dotted keys present in a YAML document to their key
// nodes.
func fileKeys(t *testing.T, data []byte) map[string]*yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]*yaml.Node{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := prefix + n.Content[i].Value
			out[k] = n.Content[i]
			walk(n.Content[i+1], k+".")
		}
	}
	if len(doc.Content) > 0 {
		walk(doc.Content[0], "")
	}
	return out
}

const fullYAML = `
data_dir: /var/lib/writ
node: resolver-2
store:
  url: postgres://writ@db.isp.example/writ
  sync_interval: 2s
log:
  level: debug
  format: json
dns:
  listen: ["127.0.0.1:5300", "[::1]:5300"]
  upstreams: [9.9.9.9, "149.112.112.112:53"]
  upstream_timeout: 1500ms
  block_mode: sinkhole
  sinkhole_ipv4: 192.0.2.53
  sinkhole_ipv6: "2001:db8::53"
  block_ttl: 5m
  ecs_trusted: [192.0.2.1, 198.51.100.0/24, "2001:db8:1::/48"]
  cache_entries: 5000
  max_cache_ttl: 10m
  max_udp_size: 1400
  max_amplification: 0
  minimal_responses: false
  serve_stale: 1d
  stale_ttl: 10s
  rate_limit:
    responses_per_second: 200
    slip: 0
    ipv4_prefix_length: 32
    ipv6_prefix_length: 64
    max_clients: 1024
    exempt: []
  tcp:
    max_connections: 100
    max_connections_per_client: 4
    idle_timeout: 3s
    read_timeout: 2s
    pipeline: 8
http:
  listen: 0.0.0.0:8443
  public_url: https://writ.isp.example
  max_body_bytes: 1048576
  rate_limit:
    requests_per_second: 5
    burst: 20
    contests_per_hour: 3
    event_streams: 4
    max_clients: 1000
    trusted_proxies: [10.0.0.1, "192.0.2.0/24"]
    client_ip_header: forwarded
api:
  token_file: /etc/writ/token
operator:
  name: Example ISP
  contact: ["mailto:abuse@isp.example", "tel:+33123456789"]
  language: fr
scopes:
  FR: [192.0.2.0/24, "2001:db8:f::/48"]
  it: [198.51.100.0/24]
geoip_database: /var/lib/writ/country.mmdb
orders:
  default_expiry: 30d
  allow_open_ended: true
  review_delegated_reporters: false
  review_exempt_authorities: [agcom-ps, other-reporter]
  expiry_reminder: 2d
  max_targets: 5000
  shared_infrastructure_file: SHARED
  shared_infrastructure_lists: [{format: text, file: SHARED, label: Example CDN}]
  max_prefix_bits_ipv4: 22
  max_prefix_bits_ipv6: 40
  allow_names: [Bücher.Example, isp.example.]
  passive_dns_file: PDNS
  shared_names_threshold: 5
rpz:
  listen: ["127.0.0.1:5354"]
  scopes: [FR]
  zone: "{scope}.policy.isp.example."
  action: cname
  walled_garden: blocked.isp.example
  ttl: 30s
  refresh: 2m
  retry: 20s
  expire: 30d
  history: 50
  allow_transfer: [192.0.2.53, 10.53.0.0/24]
  tsig_keys: [{name: writ-xfr, algorithm: hmac-sha256, secret: "c2VjcmV0"}]
  require_tsig: true
  notify: ["192.0.2.53:53"]
gate:
  listen: 127.0.0.1:8081
  tls_listen: ""
  certificates: []
  tls_passthrough: ""
  origin: http://127.0.0.1:8000
  routes: {shop.example: "http://127.0.0.1:8001"}
  decision_listen: 127.0.0.1:8451
  trusted_proxies: [127.0.0.1, 10.0.0.0/8]
  client_ip_header: Forwarded
  blocked_by: https://isp.example/legal
  max_age: 2m
  follow: http://writ.isp.example:8080
  poll_interval: 5s
ledger:
  origin: writ.isp.example/ledger
lumen:
  url: https://lumendatabase.org
  token_file: LUMEN
console:
  enabled: false
  idle_timeout: 15m
piracyshield:
  url: https://platform.example/api/v1
  email: noc@isp.example.it
  password_file: PSPASSWORD
  ca_file: ""
  poll_interval: 30s
  max_backoff: 2m
  authority: agcom-ps
  review: all
  points: [dns, "rpz:192.0.2.53/it.rpz.writ"]
  order_expiry: 30d
  alert_after: 15m
  legal_reference: "Legge 93/2023"
`

func TestLoadFull(t *testing.T) {
	shared := writeFile(t, "shared.txt", "# Public resolvers\n192.0.2.0/24\n198.51.100.53 # a resolver\n")
	pdns := writeFile(t, "pdns.txt", "motogpstream.me 203.0.113.7\n")
	lumenToken := writeFile(t, "lumen-token", "lumen-s3cret\n")
	text := strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(fullYAML, "SHARED", shared), "PDNS", pdns), "LUMEN", lumenToken)
	psPassword := writeFile(t, "ps-password", "s3cret\n")
	text = strings.ReplaceAll(text, "PSPASSWORD", psPassword)
	for _, k := range configKeys(reflect.TypeFor[Config](), "") {
		if _, ok := fileKeys(t, []byte(text))[k]; !ok {
			t.Fatalf("the test's full configuration lacks %s", k)
		}
	}
	c, err := Load(writeFile(t, "writ.yaml", text))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		DataDir: "/var/lib/writ",
		Store:   Store{URL: "postgres://writ@db.isp.example/writ", SyncInterval: Duration(2 * time.Second)},
		Node:    "resolver-2",
		Log:     Log{Level: "debug", Format: "json"},
		DNS: DNS{
			Listen:           []string{"127.0.0.1:5300", "[::1]:5300"},
			Upstreams:        []string{"9.9.9.9", "149.112.112.112:53"},
			UpstreamTimeout:  Duration(1500 * time.Millisecond),
			BlockMode:        "sinkhole",
			SinkholeIPv4:     "192.0.2.53",
			SinkholeIPv6:     "2001:db8::53",
			BlockTTL:         Duration(5 * time.Minute),
			ECSTrusted:       []string{"192.0.2.1", "198.51.100.0/24", "2001:db8:1::/48"},
			CacheEntries:     5000,
			MaxCacheTTL:      Duration(10 * time.Minute),
			MaxUDPSize:       1400,
			MaxAmplification: ptr(0),
			MinimalResponses: ptr(false),
			ServeStale:       Duration(24 * time.Hour),
			StaleTTL:         Duration(10 * time.Second),
			RateLimit: DNSRateLimit{ResponsesPerSecond: ptr(200), Slip: ptr(0), IPv4PrefixLength: 32, IPv6PrefixLength: 64,
				MaxClients: 1024, Exempt: &[]string{}},
			TCP: DNSTCP{MaxConnections: 100, MaxConnectionsPerClient: 4, IdleTimeout: Duration(3 * time.Second),
				ReadTimeout: Duration(2 * time.Second), Pipeline: 8},
		},
		HTTP: HTTP{Listen: "0.0.0.0:8443", PublicURL: "https://writ.isp.example", MaxBodyBytes: 1 << 20,
			RateLimit: RateLimit{RequestsPerSecond: ptr(5.0), Burst: ptr(20), ContestsPerHour: ptr(3), EventStreams: ptr(4), MaxClients: 1000, TrustedProxies: []string{"10.0.0.1", "192.0.2.0/24"}, ClientIPHeader: "forwarded"}},
		API:      API{TokenFile: "/etc/writ/token"},
		Operator: Operator{Name: "Example ISP", Contact: []string{"mailto:abuse@isp.example", "tel:+33123456789"}, Language: "fr"},
		Scopes:   map[string][]string{"FR": {"192.0.2.0/24", "2001:db8:f::/48"}, "it": {"198.51.100.0/24"}},

		GeoIPDatabase: "/var/lib/writ/country.mmdb",
		Orders: Orders{
			DefaultExpiry:            Duration(30 * 24 * time.Hour),
			AllowOpenEnded:           true,
			ReviewDelegatedReporters: false,
			ReviewExemptAuthorities:  []string{"agcom-ps", "other-reporter"},
			ExpiryReminder:           Duration(2 * 24 * time.Hour),
			MaxTargets:               5000,
			SharedInfraFile:          shared,
			SharedInfraLists:         []RangeList{{Format: "text", File: shared, Label: "Example CDN"}},
			MaxPrefixBitsIPv4:        22,
			MaxPrefixBitsIPv6:        40,
			AllowNames:               []string{"Bücher.Example", "isp.example."},
			PassiveDNSFile:           pdns,
			SharedNamesThreshold:     5,
		},
		RPZ: RPZ{
			Listen: []string{"127.0.0.1:5354"}, Scopes: []string{"FR"}, Zone: "{scope}.policy.isp.example.",
			Action: "cname", WalledGarden: "blocked.isp.example",
			TTL: Duration(30 * time.Second), Refresh: Duration(2 * time.Minute), Retry: Duration(20 * time.Second), Expire: Duration(30 * 24 * time.Hour),
			History: 50, AllowTransfer: []string{"192.0.2.53", "10.53.0.0/24"},
			TSIGKeys:    []TSIGKey{{Name: "writ-xfr", Algorithm: "hmac-sha256", Secret: "c2VjcmV0"}},
			RequireTSIG: true, Notify: []string{"192.0.2.53:53"},
		},
		Gate: Gate{
			Listen: "127.0.0.1:8081", Certificates: []GateCertificate{}, Origin: "http://127.0.0.1:8000", Routes: map[string]string{"shop.example": "http://127.0.0.1:8001"},
			DecisionListen: "127.0.0.1:8451", TrustedProxies: []string{"127.0.0.1", "10.0.0.0/8"}, ClientIPHeader: "Forwarded",
			BlockedBy: "https://isp.example/legal", MaxAge: Duration(2 * time.Minute),
			Follow: "http://writ.isp.example:8080", PollInterval: Duration(5 * time.Second),
		},
		Ledger:  Ledger{Origin: "writ.isp.example/ledger"},
		Lumen:   Lumen{URL: "https://lumendatabase.org", TokenFile: lumenToken},
		Console: Console{Enabled: false, IdleTimeout: Duration(15 * time.Minute)},
		PiracyShield: PiracyShield{URL: "https://platform.example/api/v1", Email: "noc@isp.example.it", PasswordFile: psPassword,
			PollInterval: Duration(30 * time.Second), MaxBackoff: Duration(2 * time.Minute), Authority: "agcom-ps", Review: "all",
			Points: []string{"dns", "rpz:192.0.2.53/it.rpz.writ"}, OrderExpiry: Duration(30 * 24 * time.Hour), AlertAfter: Duration(15 * time.Minute),
			LegalReference: "Legge 93/2023"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Load:\n got %+v\nwant %+v", c, want)
	}

	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if tr := *r.Transparency; tr != (Transparency{LedgerOrigin: "writ.isp.example/ledger", LumenURL: "https://lumendatabase.org", LumenToken: "lumen-s3cret"}) {
		t.Errorf("transparency %+v", tr)
	}
	d := r.DNS
	if !slices.Equal(d.Listen, want.DNS.Listen) || !slices.Equal(d.Upstreams, want.DNS.Upstreams) ||
		d.UpstreamTimeout != 1500*time.Millisecond || d.BlockMode != dnsserver.Sinkhole ||
		d.SinkholeV4 != netip.MustParseAddr("192.0.2.53") || d.SinkholeV6 != netip.MustParseAddr("2001:db8::53") ||
		d.BlockTTL != 5*time.Minute || d.CacheEntries != 5000 || d.MaxCacheTTL != 10*time.Minute ||
		d.Operator != "Example ISP" || !slices.Equal(d.Contact, want.Operator.Contact) || d.Language != "fr" {
		t.Errorf("DNS config: %+v", d)
	}
	if d.MaxUDPSize != 1400 || d.MaxAmplification != -1 || !d.FullResponses || d.MaxStale != 24*time.Hour || d.StaleTTL != 10*time.Second {
		t.Errorf("DNS sizes and staleness: %+v", d)
	}
	if rl := d.RateLimit; rl.ResponsesPerSecond != 200 || rl.Slip != -1 || rl.IPv4PrefixLen != 32 || rl.IPv6PrefixLen != 64 ||
		rl.MaxClients != 1024 || rl.Exempt == nil || len(rl.Exempt) != 0 {
		t.Errorf("DNS rate limit: %+v (an empty exempt list must stay empty, not become the default)", rl)
	}
	if tc := d.TCP; tc != (dnsserver.TCPLimits{MaxConnections: 100, MaxConnectionsPerClient: 4, IdleTimeout: 3 * time.Second, ReadTimeout: 2 * time.Second, Pipeline: 8}) {
		t.Errorf("DNS TCP limits: %+v", tc)
	}
	if wantECS := []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:1::/48")}; !slices.Equal(d.ECSTrusted, wantECS) {
		t.Errorf("ECS trusted %v, want %v", d.ECSTrusted, wantECS)
	}
	nets := slices.Clone(r.Networks)
	slices.SortFunc(nets, func(a, b scope.Network) int { return a.Prefix.Compare(b.Prefix) })
	wantNets := []scope.Network{
		{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Code: jurisdiction.MustParse("FR")},
		{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Code: jurisdiction.MustParse("IT")},
		{Prefix: netip.MustParsePrefix("2001:db8:f::/48"), Code: jurisdiction.MustParse("FR")},
	}
	if !slices.Equal(nets, wantNets) {
		t.Errorf("networks %v, want %v", nets, wantNets)
	}
	in := r.Intake
	if in.DefaultExpiry != 30*24*time.Hour || in.MaxTargets != 5000 ||
		in.Safeguards.MaxPrefixBits4 != 22 || in.Safeguards.MaxPrefixBits6 != 40 {
		t.Errorf("intake %+v", in)
	}
	if want := []string{"xn--bcher-kva.example", "isp.example"}; !slices.Equal(in.Safeguards.AllowNames, want) {
		t.Errorf("allow names %q, want %q", in.Safeguards.AllowNames, want)
	}
	wantShared := []order.SharedPrefix{
		{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Label: "Public resolvers"},
		{Prefix: netip.MustParsePrefix("198.51.100.53/32"), Label: "a resolver"},
		{Prefix: netip.MustParsePrefix("192.0.2.0/24"), Label: "Example CDN"},
		{Prefix: netip.MustParsePrefix("198.51.100.53/32"), Label: "Example CDN"},
	}
	if !slices.Equal(in.Safeguards.SharedInfra, wantShared) {
		t.Errorf("shared infrastructure %+v, want %+v", in.Safeguards.SharedInfra, wantShared)
	}
	if !in.AllowOpenEnded || in.ReviewDelegated || in.Safeguards.SharedNames != 5 || r.ExpiryReminder != 48*time.Hour ||
		in.Safeguards.PassiveDNS == nil || len(in.Safeguards.PassiveDNS.NamesIn(netip.MustParsePrefix("203.0.113.7/32"))) != 1 {
		t.Errorf("due-process settings not resolved: %+v, reminder %v", in, r.ExpiryReminder)
	}
	if r.PublicURL != "https://writ.isp.example" || r.TokenFile != "/etc/writ/token" || r.GeoIPPath != "/var/lib/writ/country.mmdb" {
		t.Errorf("public URL %q, token file %q, GeoIP %q", r.PublicURL, r.TokenFile, r.GeoIPPath)
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	if c.DataDir != DefaultDataDir || c.Log != (Log{Level: "info", Format: "text"}) ||
		!slices.Equal(c.DNS.Listen, []string{dnsserver.DefaultListen}) || c.HTTP.Listen != DefaultHTTPListen ||
		c.Operator.Language != "en" || len(c.DNS.Upstreams) != 0 || c.Scopes != nil {
		t.Errorf("Default() = %+v", c)
	}

	// The defaults lack only an upstream.
	_, err := c.Resolve()
	if err == nil || !strings.Contains(err.Error(), "upstreams") {
		t.Fatalf("Resolve of the defaults: %v, want an error about upstreams", err)
	}
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 1 {
		t.Errorf("defaults have %d problems, want 1: %v", n, err)
	}

	c.DNS.Upstreams = []string{"127.0.0.1:53"}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if r.PublicURL != "http://"+DefaultHTTPListen || r.TokenFile != DefaultDataDir+"/api-token" || r.GeoIPPath != "" || len(r.Networks) != 0 {
		t.Errorf("resolved defaults: public URL %q, token file %q, GeoIP %q, networks %v", r.PublicURL, r.TokenFile, r.GeoIPPath, r.Networks)
	}
	if !reflect.DeepEqual(r.Intake.Safeguards.SharedInfra, order.DefaultSharedInfra()) {
		t.Error("without a shared-infrastructure file the built-in list does not apply")
	}
	if r.DNS.BlockMode != "" && r.DNS.BlockMode != dnsserver.Refused {
		t.Errorf("default block mode %q", r.DNS.BlockMode)
	}
}

func TestLoadKeepsDefaults(t *testing.T) {
	c, err := Load(writeFile(t, "writ.yaml", "log:\n  format: json\ndns:\n  upstreams: [127.0.0.1]\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Log.Format = "json"
	want.DNS.Upstreams = []string{"127.0.0.1"}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("a partial file does not keep the other defaults:\n got %+v\nwant %+v", c, want)
	}
}

func TestLoadEmpty(t *testing.T) {
	for name, text := range map[string]string{
		"empty":         "",
		"comments only": "# nothing set yet\n\n# really nothing\n",
		"empty doc":     "---\n",
		"whitespace":    "\n  \n",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Load(writeFile(t, "writ.yaml", text))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c, Default()) {
				t.Errorf("Load = %+v, want the defaults", c)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		mention    []string
	}{
		{"unknown top-level key", "upstreams: [127.0.0.1]\n", []string{"upstreams", "line 1"}},
		{"unknown nested key", "dns:\n  listen: [127.0.0.1:53]\n  upstream: [9.9.9.9]\n", []string{"upstream", "line 3"}},
		{"misspelt section", "orderz:\n  max_targets: 5\n", []string{"orderz"}},
		{"wrong type", "orders:\n  max_targets: lots\n", []string{"lots", "line 2"}},
		{"bad duration", "dns:\n  upstream_timeout: 2 seconds\n", []string{`"2 seconds"`, "line 2"}},
		{"bad days", "orders:\n  default_expiry: 1.5d\n", []string{`"1.5d"`, "line 2"}},
		{"duration as a list", "dns:\n  block_ttl: [1, 2]\n", []string{"line 2", "duration"}},
		{"two bad values", "dns:\n  block_ttl: soon\n  max_cache_ttl: later\n", []string{`"soon"`, `"later"`, "line 2", "line 3"}},
		{"not YAML", "dns: [unclosed\n", []string{"yaml"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, "writ.yaml", tc.text)
			_, err := Load(p)
			if err == nil {
				t.Fatal("Load accepted it")
			}
			for _, m := range append(tc.mention, p) {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}

	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("Load of a missing file: %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90d":    90 * 24 * time.Hour,
		"1d":     24 * time.Hour,
		"0d":     0,
		"12h":    12 * time.Hour,
		"30m":    30 * time.Minute,
		"90s":    90 * time.Second,
		"1h30m":  90 * time.Minute,
		"1500ms": 1500 * time.Millisecond,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if d, err := ParseDuration(""); err != nil || d != 0 {
		t.Errorf(`ParseDuration("") = %v, %v; want 0 (an empty setting)`, d, err)
	}
	for _, in := range []string{"d", "-1d", "1.5d", "d1", "90 d", "12", "twelve hours", "12x", "1h1d"} {
		_, err := ParseDuration(in)
		if err == nil {
			t.Errorf("ParseDuration(%q) accepted", in)
			continue
		}
		if !strings.Contains(err.Error(), `"`+in+`"`) || !strings.Contains(err.Error(), "90d") {
			t.Errorf("ParseDuration(%q): %q does not quote the value and give an example", in, err)
		}
	}
}

// valid returns a configuration that resolves.
func valid() Config {
	c := Default()
	c.DNS.Upstreams = []string{"127.0.0.1:53"}
	return c
}

func TestResolveErrors(t *testing.T) {
	badShared := writeFile(t, "shared.txt", "192.0.2.0/24\n192.0.2.1/24\n")
	for _, tc := range []struct {
		name    string
		edit    func(c *Config)
		mention []string
	}{
		{"data dir", func(c *Config) { c.DataDir = "" }, []string{"data_dir"}},
		{"store scheme", func(c *Config) { c.Store.URL = "mysql://db/writ" }, []string{"store.url", `"mysql://db/writ"`}},
		{"store sqlite no file", func(c *Config) { c.Store.URL = "sqlite:" }, []string{"store.url", "names no file"}},
		{"store postgres", func(c *Config) { c.Store.URL = "postgres://writ:s3cret@db:notaport/writ" }, []string{"store.url", "PostgreSQL"}},
		{"store sync interval", func(c *Config) { c.Store.SyncInterval = Duration(time.Millisecond) }, []string{"store.sync_interval", "1ms"}},
		{"node", func(c *Config) { c.Node = "resolver 2" }, []string{"node", `"resolver 2"`}},
		{"log level", func(c *Config) { c.Log.Level = "verbose" }, []string{"log.level", `"verbose"`}},
		{"log level case", func(c *Config) { c.Log.Level = "" }, []string{"log.level"}},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, []string{"log.format", `"xml"`}},
		{"block mode", func(c *Config) { c.DNS.BlockMode = "blackhole" }, []string{"dns.block_mode", "blackhole"}},
		{"sinkhole ipv4", func(c *Config) { c.DNS.SinkholeIPv4 = "192.0.2" }, []string{"dns.sinkhole_ipv4", `"192.0.2"`}},
		{"sinkhole ipv6", func(c *Config) { c.DNS.SinkholeIPv6 = "2001:db8::zz" }, []string{"dns.sinkhole_ipv6", `"2001:db8::zz"`}},
		{"sinkhole ipv4 is ipv6", func(c *Config) { c.DNS.SinkholeIPv4 = "2001:db8::1" }, []string{"sinkhole_ipv4", "2001:db8::1"}},
		{"sinkhole without address", func(c *Config) { c.DNS.BlockMode = "sinkhole" }, []string{"sinkhole"}},
		{"ecs trusted", func(c *Config) { c.DNS.ECSTrusted = []string{"bogus"} }, []string{"dns.ecs_trusted[0]", `"bogus"`}},
		{"ecs trusted second", func(c *Config) { c.DNS.ECSTrusted = []string{"192.0.2.0/24", "192.0.2.0/33"} }, []string{"dns.ecs_trusted[1]", `"192.0.2.0/33"`}},
		{"max udp size", func(c *Config) { c.DNS.MaxUDPSize = 100 }, []string{"dns.max_udp_size", "100", "512 to 4096"}},
		{"max amplification", func(c *Config) { c.DNS.MaxAmplification = ptr(-1) }, []string{"dns.max_amplification", "-1"}},
		{"serve stale", func(c *Config) { c.DNS.ServeStale = Duration(-time.Hour) }, []string{"dns.serve_stale", "-1h"}},
		{"stale ttl", func(c *Config) { c.DNS.StaleTTL = Duration(-time.Second) }, []string{"dns.stale_ttl", "-1s"}},
		{"rrl rate", func(c *Config) { c.DNS.RateLimit.ResponsesPerSecond = ptr(-5) }, []string{"dns.rate_limit.responses_per_second", "-5"}},
		{"rrl slip", func(c *Config) { c.DNS.RateLimit.Slip = ptr(-1) }, []string{"dns.rate_limit.slip", "-1"}},
		{"rrl ipv4 prefix", func(c *Config) { c.DNS.RateLimit.IPv4PrefixLength = 33 }, []string{"dns.rate_limit.ipv4_prefix_length", "33"}},
		{"rrl ipv6 prefix", func(c *Config) { c.DNS.RateLimit.IPv6PrefixLength = 129 }, []string{"dns.rate_limit.ipv6_prefix_length", "129"}},
		{"rrl table", func(c *Config) { c.DNS.RateLimit.MaxClients = -1 }, []string{"dns.rate_limit.max_clients", "-1"}},
		{"rrl exempt", func(c *Config) { c.DNS.RateLimit.Exempt = &[]string{"10.0.0.0/8", "local"} }, []string{"dns.rate_limit.exempt[1]", `"local"`}},
		{"tcp connections", func(c *Config) { c.DNS.TCP.MaxConnections = -1 }, []string{"dns.tcp.max_connections", "-1"}},
		{"tcp per client", func(c *Config) { c.DNS.TCP.MaxConnectionsPerClient = -2 }, []string{"dns.tcp.max_connections_per_client", "-2"}},
		{"tcp pipeline", func(c *Config) { c.DNS.TCP.Pipeline = -3 }, []string{"dns.tcp.pipeline", "-3"}},
		{"tcp idle", func(c *Config) { c.DNS.TCP.IdleTimeout = Duration(-time.Second) }, []string{"dns.tcp.idle_timeout", "-1s"}},
		{"tcp read", func(c *Config) { c.DNS.TCP.ReadTimeout = Duration(-time.Second) }, []string{"dns.tcp.read_timeout", "-1s"}},
		{"dns listen", func(c *Config) { c.DNS.Listen = []string{"127.0.0.1:5353", "5353"} }, []string{"dns.listen", `"5353"`}},
		{"dns listen no port", func(c *Config) { c.DNS.Listen = []string{"127.0.0.1"} }, []string{"dns.listen", `"127.0.0.1"`}},
		{"http listen", func(c *Config) { c.HTTP.Listen = "localhost" }, []string{"http.listen", `"localhost"`}},
		{"http listen port", func(c *Config) { c.HTTP.Listen = "localhost:http-alt" }, []string{"http.listen", `"localhost:http-alt"`}},
		{"public url", func(c *Config) { c.HTTP.PublicURL = "writ.isp.example" }, []string{"http.public_url", `"writ.isp.example"`}},
		{"public url scheme", func(c *Config) { c.HTTP.PublicURL = "ftp://writ.isp.example" }, []string{"http.public_url"}},
		{"scope code", func(c *Config) { c.Scopes = map[string][]string{"XX": {"192.0.2.0/24"}} }, []string{"scopes.XX", "XX"}},
		{"scope EU", func(c *Config) { c.Scopes = map[string][]string{"EU": {"192.0.2.0/24"}} }, []string{"scopes.EU"}},
		{"scope prefix", func(c *Config) { c.Scopes = map[string][]string{"FR": {"192.0.2.0/24", "192.0.2.300/32"}} }, []string{"scopes.FR", "192.0.2.300/32"}},
		{"scope host bits", func(c *Config) { c.Scopes = map[string][]string{"FR": {"192.0.2.1/24"}} }, []string{"scopes.FR", "host bits"}},
		{"scope empty", func(c *Config) { c.Scopes = map[string][]string{"FR": {}} }, []string{"scopes.FR"}},
		{"max prefix ipv4 high", func(c *Config) { c.Orders.MaxPrefixBitsIPv4 = 33 }, []string{"orders.max_prefix_bits_ipv4", "33"}},
		{"max prefix ipv4 negative", func(c *Config) { c.Orders.MaxPrefixBitsIPv4 = -1 }, []string{"orders.max_prefix_bits_ipv4", "-1"}},
		{"max prefix ipv6", func(c *Config) { c.Orders.MaxPrefixBitsIPv6 = 129 }, []string{"orders.max_prefix_bits_ipv6", "129"}},
		{"allow names", func(c *Config) { c.Orders.AllowNames = []string{"com"} }, []string{"orders.allow_names[0]", `"com"`, "public suffix"}},
		{"allow names second", func(c *Config) { c.Orders.AllowNames = []string{"isp.example", "*.isp.example"} }, []string{"orders.allow_names[1]", `"*.isp.example"`}},
		{"shared infra missing", func(c *Config) { c.Orders.SharedInfraFile = "/nonexistent/shared.txt" }, []string{"orders.shared_infrastructure_file", "/nonexistent/shared.txt"}},
		{"shared infra bad", func(c *Config) { c.Orders.SharedInfraFile = badShared }, []string{"orders.shared_infrastructure_file", badShared, "line 2"}},
		{"no upstreams", func(c *Config) { c.DNS.Upstreams = nil }, []string{"upstreams"}},
		{"bad upstream", func(c *Config) { c.DNS.Upstreams = []string{"9.9.9.9:"} }, []string{"upstream", `"9.9.9.9:"`}},
		{"contact", func(c *Config) { c.Operator.Contact = []string{"https://isp.example/contact"} }, []string{"contact", "https://isp.example/contact"}},
		{"ledger origin", func(c *Config) { c.Ledger.Origin = "writ ledger" }, []string{"ledger.origin", `"writ ledger"`}},
		{"lumen url", func(c *Config) { c.Lumen = Lumen{URL: "lumendatabase.org", TokenFile: badShared} }, []string{"lumen.url", `"lumendatabase.org"`}},
		{"lumen without token", func(c *Config) { c.Lumen.URL = "https://lumendatabase.org" }, []string{"lumen.token_file", "required"}},
		{"lumen token missing", func(c *Config) { c.Lumen = Lumen{URL: "https://lumendatabase.org", TokenFile: "/nonexistent/lumen"} }, []string{"lumen.token_file", "/nonexistent/lumen"}},
		{"lumen token without url", func(c *Config) { c.Lumen.TokenFile = badShared }, []string{"lumen.token_file", "lumen.url"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.edit(&c)
			r, err := c.Resolve()
			if err == nil {
				t.Fatal("Resolve accepted it")
			}
			if r != nil {
				t.Error("Resolve returned a configuration with its error")
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
}

func TestResolveReportsEveryProblem(t *testing.T) {
	c := valid()
	c.Log.Level = "loud"
	c.HTTP.Listen = "8080"
	c.Scopes = map[string][]string{"XX": {"192.0.2.0/24"}}
	c.Orders.AllowNames = []string{"com"}
	c.DNS.Upstreams = nil
	_, err := c.Resolve()
	if err == nil {
		t.Fatal("Resolve accepted it")
	}
	for _, m := range []string{"log.level", "http.listen", "scopes.XX", "orders.allow_names[0]", "upstreams"} {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error does not report %s:\n%v", m, err)
		}
	}
	// One problem a line, so that each can be read on its own.
	if lines := strings.Count(err.Error(), "\n") + 1; lines != 5 {
		t.Errorf("%d lines for 5 problems:\n%v", lines, err)
	}
}

func TestResolveAcceptsVariants(t *testing.T) {
	c := valid()
	c.DNS.BlockMode = "NXDOMAIN"
	c.DNS.CacheEntries = -5
	c.DNS.Listen = []string{"[::1]:5353", "0.0.0.0:53"}
	c.HTTP.PublicURL = "https://writ.isp.example/"
	c.Scopes = map[string][]string{"fr": {" 192.0.2.1 ", "2001:db8::/32"}}
	c.Orders.MaxPrefixBitsIPv4, c.Orders.MaxPrefixBitsIPv6 = 32, 128
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if r.DNS.BlockMode != dnsserver.NXDomain || r.DNS.CacheEntries != -1 || len(r.Networks) != 2 {
		t.Errorf("resolved %+v, networks %v", r.DNS, r.Networks)
	}
	if r.Networks[0].Code != jurisdiction.MustParse("FR") {
		t.Errorf("scope code %v, want FR", r.Networks[0].Code)
	}
}

func TestParseScopeFlag(t *testing.T) {
	for _, tc := range []struct {
		in   string
		code string
		list []string
	}{
		{"FR=192.0.2.0/24", "FR", []string{"192.0.2.0/24"}},
		{"fr=192.0.2.0/24,2001:db8::/32", "FR", []string{"192.0.2.0/24", "2001:db8::/32"}},
		{" it =198.51.100.7", "IT", []string{"198.51.100.7"}},
	} {
		code, list, err := ParseScopeFlag(tc.in)
		if err != nil || code != tc.code || !slices.Equal(list, tc.list) {
			t.Errorf("ParseScopeFlag(%q) = %q, %q, %v; want %q, %q", tc.in, code, list, err, tc.code, tc.list)
		}
	}
	for _, tc := range []struct{ in, mention string }{
		{"FR", "CC=prefix"},
		{"192.0.2.0/24", "CC=prefix"},
		{"XX=192.0.2.0/24", `"XX"`},
		{"FRA=192.0.2.0/24", `"FRA"`},
		{"EU=192.0.2.0/24", "European Union"},
		{"=192.0.2.0/24", "--scope"},
	} {
		_, _, err := ParseScopeFlag(tc.in)
		if err == nil {
			t.Errorf("ParseScopeFlag(%q) accepted", tc.in)
			continue
		}
		if !strings.Contains(err.Error(), tc.mention) || !strings.Contains(err.Error(), "--scope") {
			t.Errorf("ParseScopeFlag(%q): %q does not mention --scope and %q", tc.in, err, tc.mention)
		}
	}
}

func TestExampleFile(t *testing.T) {
	c, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Resolve()
	if err != nil {
		t.Fatalf("the example does not resolve: %v", err)
	}

	// It shows every key, each with a comment saying what it does.
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	keys := fileKeys(t, data)
	for _, k := range configKeys(reflect.TypeFor[Config](), "") {
		n, ok := keys[k]
		if !ok {
			t.Errorf("writ.example.yaml lacks %s", k)
			continue
		}
		if strings.TrimSpace(n.HeadComment+n.LineComment) == "" {
			t.Errorf("writ.example.yaml: %s (line %d) has no comment", k, n.Line)
		}
	}

	// It shows the defaults: the values it states are those that apply
	// when the key is left out.
	def := Default()
	if c.DataDir != def.DataDir || c.Log != def.Log || !slices.Equal(c.DNS.Listen, def.DNS.Listen) ||
		c.HTTP.Listen != def.HTTP.Listen || c.Operator.Language != def.Operator.Language {
		t.Errorf("example differs from Default(): %+v", c)
	}
	for name, pair := range map[string][2]any{
		"dns.upstream_timeout":                {time.Duration(c.DNS.UpstreamTimeout), dnsserver.DefaultUpstreamTimeout},
		"dns.block_mode":                      {r.DNS.BlockMode, dnsserver.Refused},
		"dns.block_ttl":                       {time.Duration(c.DNS.BlockTTL), dnsserver.DefaultBlockTTL},
		"dns.cache_entries":                   {c.DNS.CacheEntries, dnsserver.DefaultCacheEntries},
		"dns.max_cache_ttl":                   {time.Duration(c.DNS.MaxCacheTTL), dnsserver.DefaultMaxCacheTTL},
		"dns.ecs_trusted":                     {len(c.DNS.ECSTrusted), 0},
		"dns.sinkhole_ipv4":                   {c.DNS.SinkholeIPv4, ""},
		"dns.sinkhole_ipv6":                   {c.DNS.SinkholeIPv6, ""},
		"dns.max_udp_size":                    {r.DNS.MaxUDPSize, dnsserver.DefaultMaxUDPSize},
		"dns.max_amplification":               {r.DNS.MaxAmplification, dnsserver.DefaultMaxAmplification},
		"dns.minimal_responses":               {r.DNS.FullResponses, false},
		"dns.serve_stale":                     {r.DNS.MaxStale, time.Duration(0)},
		"dns.stale_ttl":                       {r.DNS.StaleTTL, dnsserver.DefaultStaleTTL},
		"dns.rate_limit.responses_per_second": {r.DNS.RateLimit.ResponsesPerSecond, dnsserver.DefaultRateLimit},
		"dns.rate_limit.slip":                 {r.DNS.RateLimit.Slip, dnsserver.DefaultSlip},
		"dns.rate_limit.ipv4_prefix_length":   {r.DNS.RateLimit.IPv4PrefixLen, dnsserver.DefaultIPv4PrefixLen},
		"dns.rate_limit.ipv6_prefix_length":   {r.DNS.RateLimit.IPv6PrefixLen, dnsserver.DefaultIPv6PrefixLen},
		"dns.rate_limit.max_clients":          {r.DNS.RateLimit.MaxClients, dnsserver.DefaultRateLimitTable},
		"dns.rate_limit.exempt":               {fmt.Sprint(r.DNS.RateLimit.Exempt), "[127.0.0.0/8 ::1/128]"},
		"dns.tcp.max_connections":             {r.DNS.TCP.MaxConnections, dnsserver.DefaultTCPMaxConnections},
		"dns.tcp.max_connections_per_client":  {r.DNS.TCP.MaxConnectionsPerClient, dnsserver.DefaultTCPMaxConnectionsPerClient},
		"dns.tcp.idle_timeout":                {r.DNS.TCP.IdleTimeout, dnsserver.DefaultTCPIdleTimeout},
		"dns.tcp.read_timeout":                {r.DNS.TCP.ReadTimeout, dnsserver.DefaultTCPReadTimeout},
		"dns.tcp.pipeline":                    {r.DNS.TCP.Pipeline, dnsserver.DefaultTCPPipeline},
		"http.public_url":                     {c.HTTP.PublicURL, ""},
		"http.max_body_bytes":                 {c.HTTP.MaxBodyBytes, int64(api.DefaultMaxBodyBytes)},
		"http.rate_limit":                     {r.RateLimit.PerSecond, float64(api.DefaultRequestsPerSecond)},
		"http.rate_limit.burst":               {r.RateLimit.Burst, api.DefaultBurst},
		"http.rate_limit.contests_per_hour":   {r.RateLimit.ContestsPerHour, api.DefaultContestsPerHour},
		"http.rate_limit.event_streams":       {r.RateLimit.EventStreams, api.DefaultEventStreams},
		"http.rate_limit.max_clients":         {r.RateLimit.MaxClients, api.DefaultMaxClients},
		"http.rate_limit.trusted_proxies":     {len(r.RateLimit.TrustedProxies), 0},
		"http.rate_limit.client_ip_header":    {r.RateLimit.ClientIPHeader, "X-Forwarded-For"},
		"api.token_file":                      {c.API.TokenFile, ""},
		"operator.name":                       {c.Operator.Name, ""},
		"operator.contact":                    {len(c.Operator.Contact), 0},
		"scopes":                              {len(c.Scopes), 0},
		"geoip_database":                      {c.GeoIPDatabase, ""},
		"orders.default_expiry":               {time.Duration(c.Orders.DefaultExpiry), time.Duration(0)},
		"orders.allow_open_ended":             {c.Orders.AllowOpenEnded, false},
		"orders.review_delegated_reporters":   {c.Orders.ReviewDelegatedReporters, true},
		"orders.review_exempt_authorities":    {len(c.Orders.ReviewExemptAuthorities), 0},
		"ledger.origin":                       {c.Ledger.Origin, ""},
		"lumen.url":                           {c.Lumen.URL, ""},
		"lumen.token_file":                    {c.Lumen.TokenFile, ""},
		"orders.expiry_reminder":              {time.Duration(c.Orders.ExpiryReminder), DefaultExpiryReminder},
		"orders.shared_infrastructure_lists":  {len(c.Orders.SharedInfraLists), 0},
		"orders.passive_dns_file":             {c.Orders.PassiveDNSFile, ""},
		"orders.shared_names_threshold":       {c.Orders.SharedNamesThreshold, 0},
		"orders.max_targets":                  {c.Orders.MaxTargets, order.DefaultMaxTargets},
		"orders.shared_infrastructure_file":   {c.Orders.SharedInfraFile, ""},
		"orders.max_prefix_bits_ipv4":         {c.Orders.MaxPrefixBitsIPv4, order.DefaultMaxPrefixBits4},
		"orders.max_prefix_bits_ipv6":         {c.Orders.MaxPrefixBitsIPv6, order.DefaultMaxPrefixBits6},
		"orders.allow_names":                  {len(c.Orders.AllowNames), 0},
		"console.enabled":                     {c.Console.Enabled, true},
		"node":                                {c.Node, ""},
		"store.url":                           {c.Store.URL, ""},
		"store.sync_interval":                 {r.Store.SyncInterval, DefaultSyncInterval},
		"console.idle_timeout":                {time.Duration(c.Console.IdleTimeout), web.DefaultIdleTimeout},
	} {
		if pair[0] != pair[1] {
			t.Errorf("writ.example.yaml: %s is %v, but the default is %v", name, pair[0], pair[1])
		}
	}
	if !slices.Equal(c.DNS.Upstreams, []string{"127.0.0.1:53"}) {
		t.Errorf("example upstreams %q", c.DNS.Upstreams)
	}
}

// Listen addresses take what net.Listen takes: all interfaces, names.
func TestListenAddressesLikeNetListen(t *testing.T) {
	c := Default()
	c.DNS.Upstreams = []string{"127.0.0.1:53"}
	c.DNS.Listen = []string{":53", "localhost:5353", "[::1]:5353"}
	c.HTTP.Listen = ":8080"
	if _, err := c.Resolve(); err != nil {
		t.Fatalf("Resolve: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }
