package order

import (
	"bufio"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func intake() *Intake {
	return &Intake{Safeguards: Safeguards{SharedInfra: DefaultSharedInfra()}}
}

func validSubmission() *Submission {
	return &Submission{
		Authority:    Authority{ID: "tj-paris", Name: "Tribunal judiciaire de Paris", Kind: Court, Jurisdiction: "FR"},
		LegalBasis:   LegalBasis{Statute: "Code du sport L.333-10", Case: "Canal+ v. Cloudflare"},
		Jurisdiction: []string{"FR"},
		Effective:    "2026-11-01T00:00:00Z",
		Expires:      "2027-01-01T00:00:00Z",
		Targets:      []SubmittedTarget{{FQDN: "motogpstream.me", Subdomains: true}},
	}
}

func TestSampleOrderIsAcceptedAsIs(t *testing.T) {
	f, err := os.Open("../testdata/orders-fr-motogp-2025.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := Decode(f)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	o, err := intake().Accept(s, "o1", now)
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	if len(o.Targets) != 3 || o.Targets[1].FQDN != "motogpstream.me" || !o.Targets[1].Subdomains {
		t.Fatalf("targets = %+v", o.Targets)
	}
	if o.Authority.Kind != Court || o.JurisdictionString() != "FR" {
		t.Fatalf("authority/jurisdiction = %+v %v", o.Authority, o.Jurisdiction)
	}
	// The sample expired on 2025-11-30: accepted for the record, not enforced.
	if got := o.StatusAt(now); got != StatusExpired {
		t.Fatalf("status now = %s, want expired", got)
	}
	if got := o.StatusAt(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)); got != StatusActive {
		t.Fatalf("status in June 2025 = %s, want active", got)
	}
}

// fieldFor places a value from bad-inputs.txt in the field where a
// careless submitter would put it.
func fieldFor(v string) string {
	switch {
	case len(v) == 2 && strings.ToUpper(v) == v:
		return "jurisdiction"
	case strings.Trim(v, "0123456789abcdef.:/") == "":
		return "ip"
	default:
		return "fqdn"
	}
}

func TestEveryBadInputIsRejectedOrHeld(t *testing.T) {
	f, err := os.Open("../testdata/bad-inputs.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	lines := 0
	for sc.Scan() {
		value, reason, _ := strings.Cut(sc.Text(), "#")
		value, reason = strings.TrimSpace(value), strings.TrimSpace(reason)
		if value == "" {
			continue
		}
		lines++
		t.Run(value, func(t *testing.T) {
			s := validSubmission()
			var wantField string
			switch fieldFor(value) {
			case "jurisdiction":
				s.Jurisdiction = []string{value}
				wantField = "jurisdiction[0]"
			case "ip":
				s.Targets = []SubmittedTarget{{IP: value}}
				wantField = "targets[0].ip"
			default:
				s.Targets = []SubmittedTarget{{FQDN: value}}
				wantField = "targets[0].fqdn"
			}
			o, err := intake().Accept(s, "o1", now)
			if strings.Contains(reason, "hold for review") {
				if err != nil {
					t.Fatalf("want held, got error %v", err)
				}
				if o.Targets[0].State != TargetHeld || o.Targets[0].HoldReason == "" {
					t.Fatalf("target %+v is not held with a reason", o.Targets[0])
				}
				if o.StatusAt(now) != StatusHeld || o.EnforcedAt(now) {
					t.Fatalf("order with only a held target has status %s", o.StatusAt(now))
				}
				return
			}
			var inv *InvalidError
			if !errors.As(err, &inv) {
				t.Fatalf("accepted (%v); want rejection because: %s", o, reason)
			}
			found := false
			for _, fe := range inv.Fields {
				if fe.Field == wantField && fe.Value == value && fe.Message != "" {
					found = true
				}
			}
			if !found || !strings.Contains(err.Error(), wantField) || !strings.Contains(err.Error(), value) {
				t.Fatalf("error does not name field %s and value %q: %v", wantField, value, err)
			}
			t.Logf("%v", err)
		})
	}
	if lines < 14 {
		t.Fatalf("read only %d bad inputs", lines)
	}
}

func TestNormalizeName(t *testing.T) {
	good := map[string]string{
		"MotoGPStream.ME.":                   "motogpstream.me",
		"a.b.motogpstream.me":                "a.b.motogpstream.me",
		"Bücher.example":                     "xn--bcher-kva.example",
		"xn--bcher-kva.example":              "xn--bcher-kva.example",
		"ドメイン.テスト":                           "xn--eckwd4c7c.xn--zckzah",
		"tarjetarojaenvivo.lat":              "tarjetarojaenvivo.lat",
		"sub.example.co.uk":                  "sub.example.co.uk",
		"example.github.io":                  "example.github.io",
		strings.Repeat("a", 63) + ".example": strings.Repeat("a", 63) + ".example",
	}
	for in, want := range good {
		got, err := NormalizeName(in)
		if err != nil || got != want {
			t.Errorf("NormalizeName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := map[string]string{
		"com":                                "public suffix",
		"co.uk":                              "public suffix",
		"github.io":                          "private section",
		"localhost":                          "single label",
		"*.example.com":                      "wildcard",
		"exa mple.com":                       "whitespace",
		"-bad.example":                       "starts with a hyphen",
		"bad-.example":                       "ends with a hyphen",
		"example..com":                       "empty label",
		".example.com":                       "empty label",
		"http://example.com/":                "URL",
		"example.com/path":                   "URL",
		"under_score.example":                "character",
		"1.2.3.4":                            "IP address",
		"example.123":                        "all-numeric",
		"xn--zz.example":                     "internationalised",
		"":                                   "empty",
		strings.Repeat("a", 64) + ".example": "63",
		strings.Repeat(strings.Repeat("a", 60)+".", 5) + "com": "253",
	}
	for in, want := range bad {
		_, err := NormalizeName(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NormalizeName(%q) error = %v; want one mentioning %q", in, err, want)
		}
	}
}

func TestParseIPTarget(t *testing.T) {
	good := map[string]string{
		"203.0.113.7":        "203.0.113.7/32",
		"203.0.113.0/24":     "203.0.113.0/24",
		"2001:db8::1":        "2001:db8::1/128",
		"::ffff:203.0.113.7": "203.0.113.7/32",
		"45.12.0.0/16":       "45.12.0.0/16",
	}
	for in, want := range good {
		p, err := ParseIPTarget(in)
		if err != nil || p.String() != want {
			t.Errorf("ParseIPTarget(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	bad := map[string]string{
		"0.0.0.0/0":        "whole IPv4",
		"::/0":             "whole IPv6",
		"10.1.2.3":         "private",
		"8.0.0.0/6":        "contains 10.0.0.0/8",
		"127.0.0.1":        "loopback",
		"fe80::1":          "link-local",
		"fd00::1":          "unique local",
		"224.0.0.1":        "multicast",
		"100.64.1.1":       "carrier-grade",
		"203.0.113.7/24":   "host bits",
		"300.1.1.1":        "not an IP address",
		"1.2.3.4/33":       "not an IP prefix",
		"fe80::1%eth0":     "zone",
		"64:ff9b::1.2.3.4": "NAT64",
	}
	for in, want := range bad {
		_, err := ParseIPTarget(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseIPTarget(%q) error = %v; want one mentioning %q", in, err, want)
		}
	}
}

func TestAcceptNormalisesAndMerges(t *testing.T) {
	s := validSubmission()
	s.Jurisdiction = []string{"fr", "FR"}
	s.Targets = []SubmittedTarget{
		{FQDN: "MotoGPStream.me."},
		{FQDN: "motogpstream.me", Subdomains: true},
		{IP: "203.0.113.7"},
		{IP: "203.0.113.7/32"},
		{URL: "HTTPS://Stream.Example.com/live"},
	}
	o, err := intake().Accept(s, "o1", now)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Targets) != 3 {
		t.Fatalf("targets not merged: %+v", o.Targets)
	}
	if !o.Targets[0].Subdomains || o.Targets[0].FQDN != "motogpstream.me" {
		t.Fatalf("merged name target = %+v", o.Targets[0])
	}
	if o.Targets[1].IP != "203.0.113.7/32" || o.Targets[2].URL != "https://stream.example.com/live" {
		t.Fatalf("targets = %+v", o.Targets)
	}
	if o.JurisdictionString() != "FR" {
		t.Fatalf("jurisdiction = %v", o.Jurisdiction)
	}
}

func TestAcceptDefaultsAndTimes(t *testing.T) {
	s := validSubmission()
	s.Effective, s.Expires = "", ""
	o, err := (&Intake{DefaultExpiry: 48 * time.Hour}).Accept(s, "o1", now)
	if err != nil {
		t.Fatal(err)
	}
	if !o.Effective.Equal(now) || !o.Expires.Equal(now.Add(48*time.Hour)) {
		t.Fatalf("effective %v expires %v", o.Effective, o.Expires)
	}
	if next, ok := o.NextChange(now); !ok || !next.Equal(o.Expires) {
		t.Fatalf("NextChange = %v %v", next, ok)
	}

	s = validSubmission()
	s.Expires = "2026-10-01T00:00:00Z"
	s.Effective = "yesterday"
	_, err = intake().Accept(s, "o1", now)
	if err == nil || !strings.Contains(err.Error(), `effective: "yesterday" is not an RFC 3339 time`) {
		t.Fatalf("err = %v", err)
	}

	s = validSubmission()
	s.Expires = "2026-10-01T00:00:00Z"
	_, err = intake().Accept(s, "o1", now)
	if err == nil || !strings.Contains(err.Error(), "expires") {
		t.Fatalf("expiry before effective accepted: %v", err)
	}
}

func TestAcceptReportsEveryProblem(t *testing.T) {
	s := &Submission{Authority: Authority{Kind: "judge"}, Jurisdiction: []string{"FR", "XX"}, Targets: []SubmittedTarget{{FQDN: "com"}, {IP: "10.0.0.1"}, {FQDN: "a.example", IP: "203.0.113.1"}}}
	_, err := intake().Accept(s, "o1", now)
	var inv *InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("err = %v", err)
	}
	want := []string{"authority.id", "authority.name", "authority.kind", "authority.jurisdiction", "legal_basis", "jurisdiction[1]", "targets[0].fqdn", "targets[1].ip", "targets[2]"}
	for _, w := range want {
		found := false
		for _, f := range inv.Fields {
			found = found || f.Field == w
		}
		if !found {
			t.Errorf("no error for %s in %v", w, err)
		}
	}
}

func TestJurisdictionOutsideAuthorityIsHeld(t *testing.T) {
	s := validSubmission()
	s.Jurisdiction = []string{"FR", "IT"}
	o, err := intake().Accept(s, "o1", now)
	if err != nil {
		t.Fatal(err)
	}
	if o.Targets[0].State != TargetHeld || !strings.Contains(o.Targets[0].HoldReason, "IT, outside the jurisdiction of its authority (FR)") {
		t.Fatalf("target %+v", o.Targets[0])
	}
	if o.StatusAt(now) != StatusHeld {
		t.Fatalf("status %s", o.StatusAt(now))
	}
	// An EU authority may order in any member state, and in the EU as a whole.
	s.Authority.Jurisdiction = "EU"
	s.Jurisdiction = []string{"FR", "IT", "EU"}
	if o, err := intake().Accept(s, "o1", now); err != nil || o.Targets[0].State != TargetActive {
		t.Fatalf("EU authority in member states: %v %+v", err, o)
	}
	s.Jurisdiction = []string{"US"}
	if o, err := intake().Accept(s, "o1", now); err != nil || o.Targets[0].State != TargetHeld {
		t.Fatalf("EU authority ordering in the US was not held: %v %+v", err, o)
	}
}

func TestExpiryIsRequired(t *testing.T) {
	s := validSubmission()
	s.Expires = ""
	_, err := intake().Accept(s, "o1", now)
	if err == nil || !strings.Contains(err.Error(), "expires: is missing") {
		t.Fatalf("order without expiry: %v", err)
	}
	o, err := (&Intake{DefaultExpiry: 24 * time.Hour}).Accept(s, "o1", now)
	if err != nil || !o.Expires.Equal(o.Effective.Add(24*time.Hour)) {
		t.Fatalf("default expiry: %v %v", err, o)
	}
	o, err = (&Intake{AllowOpenEnded: true}).Accept(s, "o1", now)
	if err != nil || !o.OpenEnded() {
		t.Fatalf("open-ended: %v %v", err, o)
	}
	if o.StatusAt(now.AddDate(50, 0, 0)) != StatusActive {
		t.Fatal("open-ended order expired")
	}
	if _, ok := o.NextChange(now); ok {
		t.Fatal("open-ended order in force has a next change")
	}
}

func TestDelegatedReportersAreReviewed(t *testing.T) {
	s := validSubmission()
	s.Authority.Kind = DelegatedReporter
	in := intake()
	o, err := in.Accept(s, "o1", now)
	if err != nil || o.Targets[0].State != TargetActive {
		t.Fatalf("without review policy: %v %+v", err, o)
	}
	in.ReviewDelegated = true
	o, err = in.Accept(s, "o1", now)
	if err != nil || o.Targets[0].State != TargetHeld || !strings.Contains(o.Targets[0].HoldReason, "delegated reporters") {
		t.Fatalf("with review policy: %v %+v", err, o)
	}
	s.Authority.Kind = Court
	if o, err = in.Accept(s, "o1", now); err != nil || o.Targets[0].State != TargetActive {
		t.Fatalf("court order held: %v %+v", err, o)
	}
}

// An exempt delegated reporter's targets apply at once, its amendments
// too, but the safeguards still hold what they find risky; reporters not
// on the list are still reviewed.
func TestReviewExemptReporter(t *testing.T) {
	s := validSubmission()
	s.Authority.Kind = DelegatedReporter
	s.Targets = append(s.Targets, SubmittedTarget{IP: "104.16.1.1"}) // Cloudflare sample range
	in := intake()
	in.ReviewDelegated, in.ReviewExempt = true, []string{s.Authority.ID}
	o, err := in.Accept(s, "o1", now)
	if err != nil {
		t.Fatal(err)
	}
	last := len(o.Targets) - 1
	if o.Targets[0].State != TargetActive || o.Targets[last].State != TargetHeld || o.Targets[last].HoldReason == DelegatedReviewReason {
		t.Fatalf("exempt reporter: first %s, shared address %s (%q)", o.Targets[0].State, o.Targets[last].State, o.Targets[last].HoldReason)
	}
	amended, _, _, err := in.Amend(o, &Amendment{Add: []SubmittedTarget{{FQDN: "mirror.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	if tg, _ := amended.FindTarget("mirror.example"); tg.State != TargetActive {
		t.Fatalf("exempt reporter's amendment: %s (%q)", tg.State, tg.HoldReason)
	}
	in.ReviewExempt = []string{"another-reporter"}
	if o, err = in.Accept(s, "o2", now); err != nil || o.Targets[0].State != TargetHeld || o.Targets[0].HoldReason != DelegatedReviewReason {
		t.Fatalf("reporter not exempt: %v %+v", err, o)
	}
}

func TestSafeguardsHold(t *testing.T) {
	in := intake()
	in.Safeguards.AllowNames = []string{"www.elysee.fr"}
	s := validSubmission()
	s.Targets = []SubmittedTarget{
		{IP: "104.16.1.1"},                    // Cloudflare sample range
		{IP: "2606:4700:4700::1111"},          // public resolver
		{IP: "45.12.0.0/16"},                  // wider than /24
		{IP: "2001:db8::/32"},                 // wider than /48
		{FQDN: "elysee.fr", Subdomains: true}, // covers an allow-listed name
		{IP: "203.0.113.0/24"},                // fine
		{FQDN: "motogpstream.me"},             // fine
	}
	o, err := in.Accept(s, "o1", now)
	if err != nil {
		t.Fatal(err)
	}
	for i, tg := range o.Targets {
		wantHeld := i < 5
		if (tg.State == TargetHeld) != wantHeld || wantHeld && tg.HoldReason == "" {
			t.Errorf("target %d %s: state %s reason %q", i, tg, tg.State, tg.HoldReason)
		}
	}
	if !strings.Contains(o.Targets[0].HoldReason, "104.16.0.0/13") {
		t.Errorf("reason does not name the shared prefix: %s", o.Targets[0].HoldReason)
	}
	if o.StatusAt(now) != StatusActive {
		t.Errorf("order with some active targets: status %s", o.StatusAt(now))
	}
}

func TestDecodeStrict(t *testing.T) {
	cases := map[string]string{
		`{"authority":{},"expiry":"2026-01-01T00:00:00Z"}`:      "expiry: is not a field",
		`{"targets":[{"fqdn":"a.example","subdomains":"yes"}]}`: "targets.subdomains",
		`{"targets":[`:              "ends before",
		``:                          "is empty",
		`{"note":"x"} {"note":"y"}`: "one order per request",
		`{"note": x}`:               "not valid JSON",
	}
	for in, want := range cases {
		_, err := DecodeBytes([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%s) error = %v; want %q", in, err, want)
		}
	}
}

func TestLifecycle(t *testing.T) {
	o, err := intake().Accept(validSubmission(), "o1", now)
	if err != nil {
		t.Fatal(err)
	}
	if o.StatusAt(o.Effective.Add(-time.Second)) != StatusScheduled {
		t.Error("not scheduled before effective")
	}
	if !o.EnforcedAt(o.Effective) || !o.EnforcedAt(o.Expires.Add(-time.Nanosecond)) {
		t.Error("not enforced on [effective, expires)")
	}
	if o.EnforcedAt(o.Expires) || o.StatusAt(o.Expires) != StatusExpired {
		t.Error("enforced at expiry")
	}
	c := o.Clone()
	c.Disposition = Revoked
	c.Targets[0].FQDN = "changed.example"
	if c.StatusAt(now) != StatusRevoked || o.StatusAt(now) != StatusActive || o.Targets[0].FQDN == "changed.example" {
		t.Error("revocation or clone wrong")
	}
	if _, ok := c.NextChange(now); ok {
		t.Error("revoked order still has a next change")
	}
}

func TestParseSharedInfra(t *testing.T) {
	list, err := ParseSharedInfra(strings.NewReader("# Resolvers\n1.1.1.0/24\n9.9.9.9 # Quad9\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Label != "Resolvers" || list[1].Prefix.String() != "9.9.9.9/32" || list[1].Label != "Quad9" {
		t.Fatalf("list = %+v", list)
	}
	if _, err := ParseSharedInfra(strings.NewReader("1.1.1.0/24\nbogus\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("err = %v", err)
	}
	if len(DefaultSharedInfra()) < 10 {
		t.Fatal("default shared-infrastructure list is short")
	}
}

func TestAmend(t *testing.T) {
	in := intake()
	o, err := in.Accept(validSubmission(), "o1", now)
	if err != nil {
		t.Fatal(err)
	}
	a := &Amendment{
		Add:    []SubmittedTarget{{FQDN: "Mirror1.example", Subdomains: true}, {IP: "104.16.0.1"}},
		Remove: []SubmittedTarget{{FQDN: "MOTOGPSTREAM.me"}},
		Note:   "ARCOM notification 12",
	}
	c, added, removed, err := in.Amend(o, a)
	if err != nil {
		t.Fatal(err)
	}
	if len(added) != 2 || len(removed) != 1 || c.Amendments != 1 {
		t.Fatalf("added %v removed %v", added, removed)
	}
	if c.Targets[0].State != TargetRemoved || c.Targets[1].FQDN != "mirror1.example" || c.Targets[1].Amendment != 1 || c.Targets[2].State != TargetHeld {
		t.Fatalf("targets %+v", c.Targets)
	}
	if o.Targets[0].State != TargetActive || len(o.Targets) != 1 {
		t.Fatal("Amend changed the original order")
	}
	// Removing it again, or adding a live target again, is an error.
	_, _, _, err = in.Amend(c, &Amendment{Remove: []SubmittedTarget{{FQDN: "motogpstream.me"}}, Add: []SubmittedTarget{{FQDN: "mirror1.example"}}})
	if err == nil || !strings.Contains(err.Error(), `remove[0]: "motogpstream.me" is not a live target`) || !strings.Contains(err.Error(), `add[0]: "mirror1.example" is already a target`) {
		t.Fatalf("err = %v", err)
	}
	// A removed target can be ordered again.
	d, _, _, err := in.Amend(c, &Amendment{Add: []SubmittedTarget{{FQDN: "motogpstream.me"}}})
	if err != nil || d.Targets[0].State != TargetActive || d.Targets[0].Amendment != 2 || len(d.Targets) != 3 {
		t.Fatalf("re-add: %v %+v", err, d)
	}
	if _, _, _, err := in.Amend(c, &Amendment{}); err == nil {
		t.Fatal("empty amendment accepted")
	}
	if _, _, _, err := in.Amend(c, &Amendment{Add: []SubmittedTarget{{FQDN: "co.uk"}}}); err == nil || !strings.Contains(err.Error(), "add[0].fqdn") {
		t.Fatalf("bad added target: %v", err)
	}
	if _, err := DecodeAmendment(strings.NewReader(`{"add":[],"remov":[]}`)); err == nil || !strings.Contains(err.Error(), "remov") {
		t.Fatalf("unknown field: %v", err)
	}
}

func TestTargetStatesAndStatus(t *testing.T) {
	o, err := intake().Accept(validSubmission(), "o1", now)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		state TargetState
		want  Status
	}{{TargetSuspended, StatusSuspended}, {TargetRejected, StatusWithdrawn}, {TargetRemoved, StatusWithdrawn}, {TargetHeld, StatusHeld}, {TargetActive, StatusActive}} {
		o.Targets[0].State = tc.state
		if got := o.StatusAt(now); got != tc.want {
			t.Errorf("only target %s: status %s, want %s", tc.state, got, tc.want)
		}
	}
}

func TestPassiveDNSHoldsSharedAddresses(t *testing.T) {
	pd, err := ParsePassiveDNS(strings.NewReader(`# sample
motogpstream.me 203.0.113.7
www.motogpstream.me 203.0.113.7
bakery.example, 203.0.113.7
school.example 203.0.113.7
other.example 203.0.113.99
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := pd.NamesIn(netip.MustParsePrefix("203.0.113.0/24")); len(got) != 5 {
		t.Fatalf("NamesIn /24 = %v", got)
	}
	in := intake()
	in.Safeguards.PassiveDNS = pd
	s := validSubmission()
	s.Targets = []SubmittedTarget{{FQDN: "motogpstream.me", Subdomains: true}, {IP: "203.0.113.7"}, {IP: "203.0.113.99"}}
	o, err := in.Accept(s, "o1", now)
	if err != nil {
		t.Fatal(err)
	}
	// Two unrelated sites share .7 (the order's own names do not count).
	if o.Targets[1].State != TargetHeld || !strings.Contains(o.Targets[1].HoldReason, "2 other names") || !strings.Contains(o.Targets[1].HoldReason, "bakery.example") {
		t.Fatalf(".7: %+v", o.Targets[1])
	}
	// One other name is below the default threshold of two.
	if o.Targets[2].State != TargetActive {
		t.Fatalf(".99: %+v", o.Targets[2])
	}
	if _, err := ParsePassiveDNS(strings.NewReader("a.example\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("bad line: %v", err)
	}
}

func TestParseRangeList(t *testing.T) {
	cases := []struct {
		format, doc string
		want        int
	}{
		{RangesText, "173.245.48.0/20\n2400:cb00::/32\n", 2},
		{RangesAWS, `{"prefixes":[{"ip_prefix":"3.5.140.0/22","service":"AMAZON"}],"ipv6_prefixes":[{"ipv6_prefix":"2600:1f00::/24"}]}`, 2},
		{RangesGoogle, `{"prefixes":[{"ipv4Prefix":"8.8.4.0/24"},{"ipv6Prefix":"2001:4860::/32"}]}`, 2},
		{RangesFastly, `{"addresses":["23.235.32.0/20"],"ipv6_addresses":["2a04:4e40::/32"]}`, 2},
	}
	for _, tc := range cases {
		list, err := ParseRangeList(tc.format, "CDN", strings.NewReader(tc.doc))
		if err != nil || len(list) != tc.want || list[0].Label != "CDN" {
			t.Errorf("%s: %v %v", tc.format, list, err)
		}
	}
	if _, err := ParseRangeList("akamai", "x", strings.NewReader("")); err == nil {
		t.Error("unknown format accepted")
	}
	if _, err := ParseRangeList(RangesAWS, "x", strings.NewReader(`{"prefixes":[{"ip_prefix":"3.5.140.1/22"}]}`)); err == nil || !strings.Contains(err.Error(), "3.5.140.1/22") {
		t.Errorf("non-canonical prefix: %v", err)
	}
}

// A URL target's query must parse: it is what decides which requests the
// target blocks. One that parses is kept as given.
func TestURLTargetQuery(t *testing.T) {
	for _, c := range []struct {
		url string
		ok  bool
	}{
		{"https://tube.example/watch?v=abc&list=x", true},
		{"https://tube.example/watch?v=a%20b", true},
		{"https://tube.example/watch?v=%zz", false},
		{"https://tube.example/watch?v=1;list=x", false},
	} {
		got, err := normalizeURL(c.url)
		if c.ok && (err != nil || !strings.Contains(got, "?"+strings.SplitN(c.url, "?", 2)[1])) {
			t.Errorf("%s: %q, %v; want it kept", c.url, got, err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "query")) {
			t.Errorf("%s: %q, %v; want an error naming the query", c.url, got, err)
		}
	}
}
