package piracyshield

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/writ-project/writ/order"
)

func TestCheckValue(t *testing.T) {
	for _, tc := range []struct {
		genre Genre
		value string
		want  order.SubmittedTarget
	}{
		{FQDN, "streaming.example.com", order.SubmittedTarget{FQDN: "streaming.example.com"}},
		// The platform does not lower-case; writ does.
		{FQDN, "Calcio-Live.Example.COM", order.SubmittedTarget{FQDN: "calcio-live.example.com"}},
		{IPv4, "203.0.113.7", order.SubmittedTarget{IP: "203.0.113.7"}},
		// Leading zeros pass the platform's check and read as decimal,
		// as its validator reads them.
		{IPv4, "203.000.113.007", order.SubmittedTarget{IP: "203.0.113.7"}},
		{IPv6, "2001:DB8::7", order.SubmittedTarget{IP: "2001:db8::7"}},
	} {
		got, err := CheckValue(tc.genre, tc.value)
		if err != nil || got != tc.want {
			t.Errorf("CheckValue(%s, %q) = %+v, %v; want %+v", tc.genre, tc.value, got, err, tc.want)
		}
	}
	for _, tc := range []struct {
		genre   Genre
		value   string
		mention string
	}{
		{FQDN, "exa mple.com", "FQDN"},
		{FQDN, "example.com.", "FQDN"},       // no trailing dot on the platform
		{FQDN, "example.xn--p1ai", "FQDN"},   // punycode TLDs fail its letters-only rule
		{FQDN, "co.uk", "public suffix"},     // accepted there, never blocked here
		{IPv4, "203.0.113.0/24", "IPv4"},     // no prefixes in tickets
		{IPv4, "203.0.113.256", "IPv4"},      // octet out of range
		{IPv4, "0203.0.113.7", "IPv4"},       // four digits
		{IPv4, "10.1.2.3", "private"},        // accepted there, never a target here
		{IPv6, "2001:db8::/32", "IPv6"},      // no prefixes
		{IPv6, "::ffff:203.0.113.7", "IPv6"}, // the platform's rule refuses dotted forms
		{IPv6, "fe80::1", "link-local"},      // never a target
		{Genre("url"), "http://x.example/", "genre"},
	} {
		_, err := CheckValue(tc.genre, tc.value)
		if err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("CheckValue(%s, %q) = %v, want an error mentioning %q", tc.genre, tc.value, err, tc.mention)
		}
	}
}

func TestValidTicketID(t *testing.T) {
	if !ValidTicketID("9f8e7d6c5b4a39281706f5e4d3c2b1a0") {
		t.Error("a UUID4 without dashes is refused")
	}
	for _, bad := range []string{"", "9f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0", "9f8e7d6c5b4a39281706f5e4d3c2b1a", "9f8e7d6c5b4a39281706f5e4d3c2b1a0/"} {
		if ValidTicketID(bad) {
			t.Errorf("ValidTicketID(%q) accepted", bad)
		}
	}
}

func TestChecksum(t *testing.T) {
	// sha256 of "a.example\nb.example": the values joined by newlines.
	if got, want := Checksum([]string{"a.example", "b.example"}), "2a191a2b08b137ec8a456ced0dd264342eef15e085432e31a7c5c072c734654d"; got != want {
		t.Errorf("Checksum = %s, want %s", got, want)
	}
	if Checksum([]string{"a.example", "b.example"}) == Checksum([]string{"b.example", "a.example"}) {
		t.Error("the checksum ignores the order of the list; the platform's does not")
	}
}

func TestNote(t *testing.T) {
	for in, want := range map[string]string{
		"held for review in writ order 20260101-ab12cd34, overlaps shared infrastructure 104.16.0.0/13 (Cloudflare): blocking it could cut off unrelated services": "held for review in writ order 20260101-ab12cd34, overlaps shared infrastructure 104.16.0.0/13 Cloudflare, blocking it could cut off unrelated services",
		"l'ordine è sospeso":   "l ordine sospeso",
		"a\n\tb":               "a b",
		"":                     "...",
		"ok":                   "ok.",
		`"quoted" & $ @ / - ,`: `"quoted" & $ @ / -,`,
	} {
		if got := Note(in); got != want {
			t.Errorf("Note(%q) = %q, want %q", in, got, want)
		}
	}
	long := Note(strings.Repeat("word ", 200))
	if n := utf8.RuneCountInString(long); n > 512 || n < 400 {
		t.Errorf("a long note is %d characters", n)
	}
	if strings.HasSuffix(long, " ") {
		t.Error("a clipped note ends with a space")
	}
}
