package scope_test

// Fuzz target for the operator's client-network mappings, the syntax of
// --scope and of the scopes section of the configuration file:
//
//	go test ./scope -run '^$' -fuzz '^FuzzParseMapping$' -fuzztime 30s

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/writ-project/writ/scope"
)

// FuzzParseMapping checks that a mapping is either refused with an error
// quoting it, or parsed into canonical networks of one country that
// written out again parse the same, and that a resolver built from them
// places each network's addresses in that country.
func FuzzParseMapping(f *testing.F) {
	for _, s := range []string{
		"FR=127.0.0.2/32", "FR=192.0.2.0/24,2001:db8::/32", "fr = 192.0.2.1 , 2001:db8::1 ", "IT=198.51.100.0/22,2001:db8:1000::/36",
		"FR=::ffff:192.0.2.0/120", "FR=::ffff:0:0/95", "FR=::/0", "FR=0.0.0.0/0",
		"EU=192.0.2.0/24", "XX=192.0.2.0/24", "FR", "FR=", "FR=192.0.2.0/24,", "FR=192.0.2.1/24", "FR=fe80::1%eth0", "=192.0.2.0/24",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		nets, err := scope.ParseMapping(s)
		if err != nil {
			if !strings.Contains(err.Error(), "scope mapping "+strconv.Quote(s)) {
				t.Fatalf("ParseMapping(%q): error %q does not quote the mapping", s, err)
			}
			return
		}
		_, list, _ := strings.Cut(s, "=")
		if len(nets) == 0 || len(nets) != len(strings.Split(list, ",")) {
			t.Fatalf("ParseMapping(%q) = %d networks", s, len(nets))
		}
		code := nets[0].Code
		written := make([]string, len(nets))
		for i, n := range nets {
			c := n.Code.String()
			if n.Code != code || len(c) != 2 || c != strings.ToUpper(c) {
				t.Fatalf("ParseMapping(%q): network %d is in %q, the first in %q", s, i, c, code)
			}
			p := n.Prefix
			if !p.IsValid() || p.Masked() != p || p.Addr().Zone() != "" || (p.Addr().Is4In6() && p.Bits() >= 96) {
				t.Fatalf("ParseMapping(%q): network %s is not canonical", s, p)
			}
			written[i] = p.String()
		}
		again, err := scope.ParseMapping(code.String() + "=" + strings.Join(written, ","))
		if err != nil {
			t.Fatalf("ParseMapping(%q) written out again does not parse: %v", s, err)
		}
		for i := range nets {
			if again[i] != nets[i] {
				t.Fatalf("ParseMapping(%q) written out again: %v, want %v", s, again, nets)
			}
		}
		r, err := scope.New(nets, nil)
		if err != nil {
			t.Fatalf("scope.New refuses what ParseMapping(%q) returned: %v", s, err)
		}
		for _, n := range nets {
			for _, a := range []netip.Addr{n.Prefix.Addr(), lastAddr(n.Prefix)} {
				if a.Is4In6() {
					continue // clients are looked up unmapped
				}
				if got, src := r.Lookup(a); got != code || src != scope.SourceNetwork {
					t.Fatalf("mapping %q: %s is in %v (%v), want %v", s, a, got, src, code)
				}
			}
		}
	})
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
