package scope

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/writ-project/writ/jurisdiction"
)

var (
	fr = jurisdiction.MustParse("FR")
	it = jurisdiction.MustParse("IT")
	us = jurisdiction.MustParse("US")
	de = jurisdiction.MustParse("DE")
)

func nets(t testing.TB, mappings ...string) []Network {
	t.Helper()
	var out []Network
	for _, m := range mappings {
		n, err := ParseMapping(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, n...)
	}
	return out
}

func TestSourceString(t *testing.T) {
	for s, want := range map[Source]string{
		SourceNone:    "none",
		SourceNetwork: "network",
		SourceGeoIP:   "geoip",
		Source(9):     "Source(9)",
	} {
		if got := s.String(); got != want {
			t.Errorf("Source(%d).String() = %q, want %q", uint8(s), got, want)
		}
	}
}

func TestParseMapping(t *testing.T) {
	pfx := netip.MustParsePrefix
	tests := []struct {
		in   string
		want []Network
	}{
		{"FR=127.0.0.2/32,192.0.2.0/24", []Network{{pfx("127.0.0.2/32"), fr}, {pfx("192.0.2.0/24"), fr}}},
		{"  it = 192.0.2.1 , 2001:db8::/32 ", []Network{{pfx("192.0.2.1/32"), it}, {pfx("2001:db8::/32"), it}}},
		{"US=2001:db8::1", []Network{{pfx("2001:db8::1/128"), us}}},
		{"DE=0.0.0.0/0", []Network{{pfx("0.0.0.0/0"), de}}},
		// Mapped addresses are looked up as IPv4, so they are stored as such.
		{"FR=::ffff:192.0.2.0/120,::ffff:198.51.100.7", []Network{{pfx("192.0.2.0/24"), fr}, {pfx("198.51.100.7/32"), fr}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMapping(tt.in)
			if err != nil {
				t.Fatalf("ParseMapping(%q): %v", tt.in, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("ParseMapping(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseMappingErrors(t *testing.T) {
	tests := []struct {
		in   string
		want []string // substrings the error must contain
	}{
		{"FR=300.1.1.1", []string{`scope mapping "FR=300.1.1.1"`, `"300.1.1.1" is not an IP address or prefix`}},
		{"FR=192.0.2.0/33", []string{`"192.0.2.0/33" is not an IP address or prefix`}},
		{"FR=example.com", []string{`"example.com" is not an IP address or prefix`}},
		{"XX=1.2.3.0/24", []string{`scope mapping "XX=1.2.3.0/24"`, `"XX" is not an ISO 3166-1 alpha-2 country code`}},
		{"FRA=1.2.3.0/24", []string{`"FRA" is not an ISO 3166-1 alpha-2 country code`}},
		{"=1.2.3.0/24", []string{`"" is not an ISO 3166-1 alpha-2 country code`}},
		{"EU=1.2.3.0/24", []string{`"EU" is the European Union, not a country`, "one country", "member state"}},
		{"eu=1.2.3.0/24", []string{`"eu" is the European Union`}},
		{"FR 1.2.3.0/24", []string{`scope mapping "FR 1.2.3.0/24"`, `missing "="`, "COUNTRY=PREFIX"}},
		{"", []string{`scope mapping ""`, `missing "="`}},
		{"FR=", []string{`scope mapping "FR="`, "no network", "COUNTRY=PREFIX"}},
		{"FR=  ", []string{"no network"}},
		{"FR=1.2.3.4,,5.6.7.8", []string{`scope mapping "FR=1.2.3.4,,5.6.7.8"`, "empty network"}},
		{"FR=1.2.3.4,", []string{"empty network"}},
		{"FR=192.0.2.1/24", []string{`"192.0.2.1/24" has host bits set`, `did you mean "192.0.2.0/24"?`}},
		{"FR=2001:db8::1/32", []string{`"2001:db8::1/32" has host bits set`, `did you mean "2001:db8::/32"?`}},
		{"FR=fe80::1%eth0", []string{`"fe80::1%eth0" has an IPv6 zone`}},
		{"FR=1.2.3.4=5", []string{`"1.2.3.4=5" is not an IP address or prefix`}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseMapping(tt.in)
			if err == nil {
				t.Fatalf("ParseMapping(%q) = %v, want error", tt.in, got)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseMapping(%q) error %q does not contain %q", tt.in, err, w)
				}
			}
		})
	}
}

type lookupCase struct {
	addr string
	code jurisdiction.Code
	src  Source
}

func checkLookups(t *testing.T, r *Resolver, cases []lookupCase) {
	t.Helper()
	for _, c := range cases {
		code, src := r.Lookup(netip.MustParseAddr(c.addr))
		if code != c.code || src != c.src {
			t.Errorf("Lookup(%s) = %q, %v; want %q, %v", c.addr, code, src, c.code, c.src)
		}
	}
}

func TestResolverNetworks(t *testing.T) {
	r, err := New(nets(t,
		"FR=192.0.2.0/24, 2001:db8::/32",
		"IT=192.0.2.128/25, 2001:db8:1::/48",
		"US=192.0.2.200, 2001:db8:1::53",
		"DE=198.51.100.0/24",
	), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkLookups(t, r, []lookupCase{
		{"192.0.2.1", fr, SourceNetwork},
		{"192.0.2.127", fr, SourceNetwork},
		{"192.0.2.128", it, SourceNetwork}, // longest prefix wins
		{"192.0.2.255", it, SourceNetwork},
		{"192.0.2.200", us, SourceNetwork},
		{"192.0.2.201", it, SourceNetwork},
		{"::ffff:192.0.2.1", fr, SourceNetwork}, // IPv4-mapped is IPv4
		{"::ffff:192.0.2.129", it, SourceNetwork},
		{"::ffff:192.0.2.200", us, SourceNetwork},
		{"198.51.100.77", de, SourceNetwork},
		{"2001:db8::1", fr, SourceNetwork},
		{"2001:db8:ffff::1", fr, SourceNetwork},
		{"2001:db8:1::1", it, SourceNetwork},
		{"2001:db8:1::53", us, SourceNetwork},
		{"fe80::1%eth0", jurisdiction.Unknown, SourceNone},
		{"203.0.113.1", jurisdiction.Unknown, SourceNone},
		{"192.0.3.0", jurisdiction.Unknown, SourceNone},
		{"2001:db9::1", jurisdiction.Unknown, SourceNone},
		{"::192.0.2.1", jurisdiction.Unknown, SourceNone}, // IPv4-compatible is not mapped
	})
	if code, src := r.Lookup(netip.Addr{}); code != jurisdiction.Unknown || src != SourceNone {
		t.Errorf("Lookup(invalid) = %q, %v; want Unknown, none", code, src)
	}
}

func TestResolverEmpty(t *testing.T) {
	r, err := New(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkLookups(t, r, []lookupCase{
		{"192.0.2.1", jurisdiction.Unknown, SourceNone},
		{"2001:db8::1", jurisdiction.Unknown, SourceNone},
	})
	if n := r.Networks(); len(n) != 0 {
		t.Errorf("Networks() = %v, want none", n)
	}
	if r.GeoIP() != nil {
		t.Error("GeoIP() is not nil")
	}
}

func TestNetworksSortedAndCopied(t *testing.T) {
	r, err := New(nets(t,
		"IT=2001:db8::/32, 192.0.2.128/25",
		"FR=192.0.2.0/24, 10.0.0.0/8",
		"IT=192.0.2.128/25", // same prefix, same country: harmless repeat
		"FR=::ffff:10.0.0.0/104",
	), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := r.Networks()
	want := nets(t, "FR=10.0.0.0/8,192.0.2.0/24", "IT=192.0.2.128/25,2001:db8::/32")
	if !slices.Equal(got, want) {
		t.Fatalf("Networks() = %v, want %v", got, want)
	}
	got[0].Code = us
	if r.Networks()[0].Code != fr {
		t.Error("changing the slice from Networks changed the resolver")
	}
	if s := want[0].String(); s != "FR=10.0.0.0/8" {
		t.Errorf("Network.String() = %q", s)
	}
}

func TestNewErrors(t *testing.T) {
	pfx := netip.MustParsePrefix
	tests := []struct {
		name string
		nets []Network
		want []string
	}{
		{"conflict", nets(t, "FR=192.0.2.0/24", "IT=192.0.2.0/24"),
			[]string{"192.0.2.0/24", "FR", "IT"}},
		{"conflict via mapped", nets(t, "FR=2001:db8::/32, 192.0.2.0/24", "US=::ffff:192.0.2.0/120"),
			[]string{"192.0.2.0/24", "FR", "US"}},
		{"conflict IPv6", nets(t, "DE=2001:db8::/32", "IT=2001:db8::/32"),
			[]string{"2001:db8::/32", "DE", "IT"}},
		{"invalid prefix", []Network{{Code: fr}}, []string{"not a valid prefix"}},
		{"unknown code", []Network{{Prefix: pfx("192.0.2.0/24")}}, []string{"192.0.2.0/24", "no country"}},
		{"out of range code", []Network{{Prefix: pfx("192.0.2.0/24"), Code: 255}}, []string{"192.0.2.0/24", "no country"}},
		{"host bits", []Network{{Prefix: pfx("192.0.2.1/24"), Code: fr}}, []string{"192.0.2.1/24", "host bits", "192.0.2.0/24"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.nets, nil)
			if err == nil {
				t.Fatalf("New = %v, want error", r.Networks())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestResolverConcurrent(t *testing.T) {
	r, err := New(nets(t, "FR=192.0.2.0/24", "IT=192.0.2.128/25"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range 1000 {
				a := netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
				want := fr
				if byte(i) >= 128 {
					want = it
				}
				if c, _ := r.Lookup(a); c != want {
					t.Errorf("Lookup(%s) = %q, want %q", a, c, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// benchNetworks returns n distinct operator networks, /24s in 100.0.0.0/8
// and /48s in 2001:db8:1000::/36, cycling through a few countries.
func benchNetworks(n int) []Network {
	codes := []jurisdiction.Code{fr, it, us, de}
	out := make([]Network, 0, n)
	for i := range n {
		var p netip.Prefix
		if i%2 == 0 {
			p = netip.PrefixFrom(netip.AddrFrom4([4]byte{100, byte(i >> 8), byte(i), 0}), 24)
		} else {
			p = netip.MustParsePrefix(fmt.Sprintf("2001:db8:%x::/48", 0x1000+i))
		}
		out = append(out, Network{Prefix: p, Code: codes[i%len(codes)]})
	}
	return out
}
