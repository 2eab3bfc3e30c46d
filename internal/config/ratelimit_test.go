package config

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/writ-project/writ/api"
)

func TestRateLimitDefaults(t *testing.T) {
	c := valid()
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	want := api.RateLimit{PerSecond: 20, Burst: 100, ContestsPerHour: 10, EventStreams: 8, MaxClients: 65536}
	got := r.RateLimit
	if got.PerSecond != want.PerSecond || got.Burst != want.Burst || got.ContestsPerHour != want.ContestsPerHour ||
		got.EventStreams != want.EventStreams || got.MaxClients != want.MaxClients || len(got.TrustedProxies) != 0 || got.Now != nil {
		t.Errorf("defaults %+v, want %+v", got, want)
	}
	if d := api.DefaultRateLimit(); d.PerSecond != want.PerSecond || d.Burst != want.Burst || d.ContestsPerHour != want.ContestsPerHour || d.EventStreams != want.EventStreams || d.MaxClients != want.MaxClients {
		t.Errorf("api.DefaultRateLimit() %+v and the documented defaults differ", d)
	}
}

func TestLoadRateLimit(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       api.RateLimit
	}{
		{"empty section", "http:\n  rate_limit: {}\n", api.RateLimit{PerSecond: 20, Burst: 100, ContestsPerHour: 10, EventStreams: 8, MaxClients: 65536}},
		// The burst follows the rate unless given: five seconds' worth.
		{"rate only", "http:\n  rate_limit:\n    requests_per_second: 2.5\n", api.RateLimit{PerSecond: 2.5, Burst: 13, ContestsPerHour: 10, EventStreams: 8, MaxClients: 65536}},
		{"everything", `http:
  rate_limit:
    requests_per_second: 50
    burst: 10
    contests_per_hour: 3
    event_streams: 2
    max_clients: 1000
    trusted_proxies: [10.0.0.1, "192.0.2.0/24", "2001:db8::/64", "::ffff:198.51.100.1"]
    client_ip_header: Forwarded
`, api.RateLimit{PerSecond: 50, Burst: 10, ContestsPerHour: 3, EventStreams: 2, MaxClients: 1000, ClientIPHeader: "Forwarded", TrustedProxies: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/64"), netip.MustParsePrefix("198.51.100.1/32")}}},
		// 0 turns each limit off, and is not taken for "unset".
		{"off", "http:\n  rate_limit:\n    requests_per_second: 0\n    contests_per_hour: 0\n    event_streams: 0\n", api.RateLimit{PerSecond: 0, Burst: 0, ContestsPerHour: 0, MaxClients: 65536}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(writeFile(t, "writ.yaml", "dns:\n  upstreams: [127.0.0.1]\n"+tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.Resolve()
			if err != nil {
				t.Fatal(err)
			}
			got := r.RateLimit
			if got.PerSecond != tc.want.PerSecond || got.Burst != tc.want.Burst || got.ContestsPerHour != tc.want.ContestsPerHour ||
				got.EventStreams != tc.want.EventStreams || got.MaxClients != tc.want.MaxClients ||
				got.ClientIPHeader != cmp.Or(tc.want.ClientIPHeader, "X-Forwarded-For") || !slices.Equal(got.TrustedProxies, tc.want.TrustedProxies) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestRateLimitErrors(t *testing.T) {
	for _, tc := range []struct {
		yaml    string
		mention []string
	}{
		{"requests_per_second: -1", []string{"http.rate_limit.requests_per_second", "-1"}},
		{"requests_per_second: .nan", []string{"http.rate_limit.requests_per_second"}},
		{"burst: 0", []string{"http.rate_limit.burst", "0"}},
		{"contests_per_hour: -5", []string{"http.rate_limit.contests_per_hour", "-5"}},
		{"event_streams: -2", []string{"http.rate_limit.event_streams", "-2"}},
		{"max_clients: -1", []string{"http.rate_limit.max_clients", "-1"}},
		{"trusted_proxies: [10.0.0.0/33]", []string{"http.rate_limit.trusted_proxies[0]", "10.0.0.0/33"}},
		{"trusted_proxies: [proxy.isp.example]", []string{"http.rate_limit.trusted_proxies[0]", "proxy.isp.example"}},
		{"client_ip_header: X-Real-IP", []string{"http.rate_limit.client_ip_header", "X-Real-IP"}},
	} {
		t.Run(tc.yaml, func(t *testing.T) {
			c, err := Load(writeFile(t, "writ.yaml", "dns:\n  upstreams: [127.0.0.1]\nhttp:\n  rate_limit:\n    "+tc.yaml+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Resolve()
			if err == nil {
				t.Fatal("resolved")
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q does not mention %q", err, m)
				}
			}
		})
	}
	// A misspelt key is refused, not ignored.
	if _, err := Load(writeFile(t, "writ.yaml", "http:\n  rate_limit:\n    request_per_second: 5\n")); err == nil || !strings.Contains(err.Error(), "request_per_second") {
		t.Errorf("misspelt key: %v", err)
	}
}
