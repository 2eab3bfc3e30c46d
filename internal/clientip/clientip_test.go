package clientip

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestClient(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:ffff::/48")}
	for _, tc := range []struct {
		header, peer string
		values       []string
		want         string
		ok           bool
	}{
		// An untrusted peer is the client, whatever it says.
		{XForwardedFor, "192.0.2.7", []string{"198.51.100.1"}, "192.0.2.7", true},
		// From a trusted proxy: the right-most hop it did not add itself.
		{XForwardedFor, "10.1.1.1", []string{"203.0.113.9, 198.51.100.1, 10.2.2.2"}, "198.51.100.1", true},
		{XForwardedFor, "10.1.1.1", []string{"203.0.113.9", "198.51.100.1, 10.2.2.2"}, "198.51.100.1", true},
		{XForwardedFor, "10.1.1.1", []string{"[2001:db8::1]:443"}, "2001:db8::1", true},
		{XForwardedFor, "10.1.1.1", []string{"::ffff:198.51.100.1"}, "198.51.100.1", true},
		// Every hop trusted: the first of them; no header: the peer.
		{XForwardedFor, "10.1.1.1", []string{"10.3.3.3, 10.2.2.2"}, "10.3.3.3", true},
		{XForwardedFor, "10.1.1.1", nil, "10.1.1.1", true},
		// A hop that is no address: not ok, with the nearest one vouched for.
		{XForwardedFor, "10.1.1.1", []string{"198.51.100.1, garbage, 10.2.2.2"}, "10.2.2.2", false},
		{XForwardedFor, "10.1.1.1", []string{"fe80::1%eth0"}, "10.1.1.1", false},
		// Forwarded: the for= of each element, quoted or not, read the same way.
		{Forwarded, "10.1.1.1", []string{`for=203.0.113.9, for="[2001:db8:cafe::17]:4711";proto=https`}, "2001:db8:cafe::17", true},
		{Forwarded, "10.1.1.1", []string{"for=198.51.100.1;by=10.2.2.2, For=10.2.2.2"}, "198.51.100.1", true},
		{Forwarded, "10.1.1.1", []string{"for=unknown"}, "10.1.1.1", false},
		{Forwarded, "10.1.1.1", []string{"for=_hidden, for=10.2.2.2"}, "10.2.2.2", false},
		{Forwarded, "10.1.1.1", []string{"proto=https"}, "10.1.1.1", false},
	} {
		c, err := New(trusted, tc.header)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		for _, v := range tc.values {
			h.Add(tc.header, v)
		}
		got, ok := c.Client(netip.MustParseAddr(tc.peer), h)
		if got != netip.MustParseAddr(tc.want) || ok != tc.ok {
			t.Errorf("%s %q from %s: %s %v, want %s %v", tc.header, tc.values, tc.peer, got, ok, tc.want, tc.ok)
		}
	}
}

func TestHeader(t *testing.T) {
	for in, want := range map[string]string{"": XForwardedFor, "x-forwarded-for": XForwardedFor, "FORWARDED": Forwarded} {
		if got, err := Header(in); got != want || err != nil {
			t.Errorf("Header(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Header("X-Real-IP"); err == nil {
		t.Error("X-Real-IP accepted")
	}
}
