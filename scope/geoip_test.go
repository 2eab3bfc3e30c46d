package scope

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/writ-project/writ/jurisdiction"
)

var testBuild = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func country(iso string) mmdbtype.Map {
	return mmdbtype.Map{"iso_code": mmdbtype.String(iso)}
}

// testRecords are the networks of the test database. The XK, ZZ and
// continent-only records are not countries and must be skipped.
var testRecords = []struct {
	prefix string
	record mmdbtype.Map
}{
	{"81.0.0.0/16", mmdbtype.Map{"country": country("FR"), "registered_country": country("FR")}},
	{"2001:db8:f::/48", mmdbtype.Map{"country": country("FR"), "registered_country": country("FR")}}, // same record as above
	{"93.0.0.0/16", mmdbtype.Map{"country": country("IT")}},
	{"8.8.8.0/24", mmdbtype.Map{"country": country("US"), "continent": mmdbtype.Map{"code": mmdbtype.String("NA")}}},
	{"2001:db8:5::/48", mmdbtype.Map{"country": country("us")}},
	{"9.9.9.0/24", mmdbtype.Map{"registered_country": country("DE")}},
	{"94.0.0.0/16", mmdbtype.Map{"country": country("IT"), "registered_country": country("US")}},
	{"95.0.0.0/16", mmdbtype.Map{"country": country("XK"), "registered_country": country("RS")}},
	{"96.0.0.0/16", mmdbtype.Map{"country": country("ZZ")}},
	{"2001:db8:e::/48", mmdbtype.Map{"continent": mmdbtype.Map{"code": mmdbtype.String("EU")}}},
}

const (
	testLoaded  = 7
	testSkipped = 3
)

// writeTestMMDB writes the test database with the real MaxMind writer, so
// OpenGeoIP is exercised against the format as MaxMind produces it.
func writeTestMMDB(t testing.TB, ipVersion int) string {
	t.Helper()
	w, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "Test-Country",
		BuildEpoch:              testBuild.Unix(),
		IPVersion:               ipVersion,
		RecordSize:              24,
		IncludeReservedNetworks: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range testRecords {
		_, n, err := net.ParseCIDR(r.prefix)
		if err != nil {
			t.Fatal(err)
		}
		if ipVersion == 4 && n.IP.To4() == nil {
			continue
		}
		if err := w.Insert(n, r.record); err != nil {
			t.Fatalf("insert %s: %v", r.prefix, err)
		}
	}
	path := filepath.Join(t.TempDir(), "test-country.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func openTestGeoIP(t testing.TB) *GeoIP {
	t.Helper()
	g, err := OpenGeoIP(writeTestMMDB(t, 6))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGeoIP(t *testing.T) {
	g := openTestGeoIP(t)
	want := GeoIPInfo{DatabaseType: "Test-Country", BuildTime: testBuild, Networks: testLoaded, Skipped: testSkipped}
	if got := g.Info(); got != want {
		t.Errorf("Info() = %+v, want %+v", got, want)
	}
	for _, c := range []struct {
		addr string
		want jurisdiction.Code
	}{
		{"81.0.1.2", fr},
		{"::ffff:81.0.1.2", fr},
		{"2001:db8:f::1", fr},
		{"93.0.255.255", it},
		{"8.8.8.8", us},
		{"2001:db8:5:1::1", us},
		{"9.9.9.9", de},  // registered country only
		{"94.0.0.1", it}, // country wins over registered country
		{"95.0.0.1", jurisdiction.Unknown},
		{"96.0.0.1", jurisdiction.Unknown},
		{"2001:db8:e::1", jurisdiction.Unknown},
		{"81.1.0.0", jurisdiction.Unknown},
		{"2001:db8:6::1", jurisdiction.Unknown},
		// The writer aliases IPv4 into 2002::/16 (6to4); such clients are
		// not IPv4 clients to us and stay unknown.
		{"2002:5100:0102::1", jurisdiction.Unknown},
	} {
		if got := g.Lookup(netip.MustParseAddr(c.addr)); got != c.want {
			t.Errorf("GeoIP.Lookup(%s) = %q, want %q", c.addr, got, c.want)
		}
	}
	var nilGeo *GeoIP
	if got := nilGeo.Lookup(netip.MustParseAddr("81.0.1.2")); got != jurisdiction.Unknown {
		t.Errorf("nil GeoIP Lookup = %q, want Unknown", got)
	}
}

func TestGeoIPv4Database(t *testing.T) {
	g, err := OpenGeoIP(writeTestMMDB(t, 4))
	if err != nil {
		t.Fatal(err)
	}
	if info := g.Info(); info.Networks != 5 || info.Skipped != 2 {
		t.Errorf("Info() = %+v, want 5 networks and 2 skipped", info)
	}
	for addr, want := range map[string]jurisdiction.Code{
		"81.0.1.2":        fr,
		"::ffff:93.0.0.1": it,
		"9.9.9.9":         de,
		"95.0.0.1":        jurisdiction.Unknown,
		"2001:db8:f::1":   jurisdiction.Unknown,
	} {
		if got := g.Lookup(netip.MustParseAddr(addr)); got != want {
			t.Errorf("GeoIP.Lookup(%s) = %q, want %q", addr, got, want)
		}
	}
}

func TestResolverWithGeoIP(t *testing.T) {
	g := openTestGeoIP(t)
	r, err := New(nets(t,
		"FR=8.8.8.8",           // operator overrides GeoIP US
		"DE=81.0.128.0/17",     // operator carves a subnet out of GeoIP FR
		"IT=2001:db8:5:1::/64", // and in IPv6
		"US=95.0.0.0/24",       // operator covers what GeoIP skipped
	), g)
	if err != nil {
		t.Fatal(err)
	}
	if r.GeoIP() != g {
		t.Error("GeoIP() is not the database given to New")
	}
	checkLookups(t, r, []lookupCase{
		{"8.8.8.8", fr, SourceNetwork},
		{"::ffff:8.8.8.8", fr, SourceNetwork},
		{"8.8.8.9", us, SourceGeoIP},
		{"::ffff:8.8.8.9", us, SourceGeoIP},
		{"81.0.200.1", de, SourceNetwork},
		{"81.0.1.1", fr, SourceGeoIP},
		{"2001:db8:5:1::1", it, SourceNetwork},
		{"2001:db8:5:2::1", us, SourceGeoIP},
		{"95.0.0.1", us, SourceNetwork},
		{"95.0.1.1", jurisdiction.Unknown, SourceNone},
		{"9.9.9.9", de, SourceGeoIP},
		{"192.0.2.1", jurisdiction.Unknown, SourceNone},
		{"2001:db8:e::1", jurisdiction.Unknown, SourceNone},
	})
}

func TestOpenGeoIPErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.mmdb")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a MaxMind database\n", 100)), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.mmdb")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A truncated real database: metadata intact is not enough.
	whole, err := os.ReadFile(writeTestMMDB(t, 6))
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.mmdb")
	if err := os.WriteFile(truncated, whole[:len(whole)/3], 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		filepath.Join(dir, "missing.mmdb"),
		garbage,
		empty,
		truncated,
	} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			g, err := OpenGeoIP(path)
			if err == nil {
				t.Fatalf("OpenGeoIP(%s) = %+v, want error", path, g.Info())
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			if strings.Count(err.Error(), path) != 1 {
				t.Errorf("error %q names %s more than once", err, path)
			}
		})
	}
}

// hotAddrs cover every path through Resolver.Lookup: operator network,
// GeoIP, unknown, IPv4, IPv6 and IPv4-mapped IPv6.
var hotAddrs = []netip.Addr{
	netip.MustParseAddr("100.0.2.1"),        // operator network
	netip.MustParseAddr("2001:db8:1003::1"), // operator network, IPv6
	netip.MustParseAddr("::ffff:100.0.4.9"), // operator network, mapped
	netip.MustParseAddr("81.0.1.2"),         // GeoIP
	netip.MustParseAddr("2001:db8:f::1"),    // GeoIP, IPv6
	netip.MustParseAddr("::ffff:8.8.8.8"),   // GeoIP, mapped
	netip.MustParseAddr("192.0.2.1"),        // unknown
	netip.MustParseAddr("2001:db9::1"),      // unknown, IPv6
	netip.MustParseAddr("95.0.0.1"),         // skipped by GeoIP: unknown
}

func TestLookupAllocs(t *testing.T) {
	r, err := New(benchNetworks(1000), openTestGeoIP(t))
	if err != nil {
		t.Fatal(err)
	}
	var sources [3]int
	for _, a := range hotAddrs {
		_, src := r.Lookup(a)
		sources[src]++
	}
	if sources[SourceNetwork] == 0 || sources[SourceGeoIP] == 0 || sources[SourceNone] == 0 {
		t.Fatalf("test addresses do not cover every source: %v", sources)
	}
	allocs := testing.AllocsPerRun(100, func() {
		for _, a := range hotAddrs {
			r.Lookup(a)
		}
	})
	if allocs != 0 {
		t.Errorf("Resolver.Lookup allocates %v times per run, want 0", allocs)
	}
}

func BenchmarkLookup(b *testing.B) {
	r, err := New(benchNetworks(1000), openTestGeoIP(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var i int
	for b.Loop() {
		r.Lookup(hotAddrs[i%len(hotAddrs)])
		i++
	}
}
