package order_test

// Fuzz targets for order intake: the decoding and validation an order
// goes through between the API's request body and the store, and the
// target parsers behind it. Each checks properties of what is accepted
// and of how a rejection is reported, not only that nothing panics.
// Run one with, for example:
//
//	go test ./order -run '^$' -fuzz '^FuzzSubmission$' -fuzztime 30s

import (
	"bufio"
	"encoding/json"
	"errors"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/writ-project/writ/order"
)

var fuzzNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// fuzzIntake is the intake of a server on its defaults: the embedded
// shared-infrastructure list, delegated reporters reviewed.
var fuzzIntake = &order.Intake{
	ReviewDelegated: true,
	Safeguards:      order.Safeguards{SharedInfra: order.DefaultSharedInfra()},
}

// fieldPath matches every JSON path a rejection may name.
// A type mismatch is named by its path without indexes ("targets.ip").
var fieldPath = regexp.MustCompile(`^(\(document\)|authority(\.(id|name|kind|jurisdiction))?|legal_basis(\.(statute|case|url|summary))?|jurisdiction(\[\d+\])?|issued|effective|expires|note|amending_authorities(\[\d+\])?|(targets|add|remove)((\[\d+\])?(\.(fqdn|ip|url|subdomains))?)?)$`)

// checkRejection fails unless err is an *order.InvalidError whose every
// problem names a field of the document and says something about it.
func checkRejection(t *testing.T, err error) *order.InvalidError {
	t.Helper()
	var inv *order.InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("rejection is a %T, not an *order.InvalidError: %v", err, err)
	}
	if len(inv.Fields) == 0 {
		t.Fatalf("rejection lists no field: %v", err)
	}
	for _, f := range inv.Fields {
		// An unknown field is named as it was submitted.
		unknown := strings.HasPrefix(f.Message, "is not a field of") && f.Field != ""
		if !unknown && !fieldPath.MatchString(f.Field) {
			t.Fatalf("rejection names %q, which is not a field of the document: %v", f.Field, err)
		}
		if strings.TrimSpace(f.Message) == "" {
			t.Fatalf("rejection of %s says nothing: %v", f.Field, err)
		}
	}
	return inv
}

// checkCanonicalName fails unless name is what intake promises for an
// FQDN target: lower-case letters, digits and hyphens in labels of 1 to
// 63 octets that neither start nor end with a hyphen, at least two
// labels, at most 253 octets, no trailing dot, and a fixed point of
// NormalizeName.
func checkCanonicalName(t *testing.T, name string) {
	t.Helper()
	if len(name) > 253 || strings.HasSuffix(name, ".") {
		t.Fatalf("accepted name %q: too long or has a trailing dot", name)
	}
	labels := strings.Split(name, ".")
	if len(labels) < 2 {
		t.Fatalf("accepted name %q has a single label", name)
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			t.Fatalf("accepted name %q has the invalid label %q", name, l)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				t.Fatalf("accepted name %q has %q in label %q", name, c, l)
			}
		}
	}
	if again, err := order.NormalizeName(name); err != nil || again != name {
		t.Fatalf("accepted name %q normalises again to %q, %v", name, again, err)
	}
	if _, err := netip.ParseAddr(name); err == nil {
		t.Fatalf("accepted name %q is an IP address", name)
	}
}

// checkCanonicalPrefix fails unless s is a canonical IP target: a prefix
// in netip's notation, without host bits, zone or IPv4 mapping, never
// the whole address space, and a fixed point of ParseIPTarget.
func checkCanonicalPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatalf("accepted IP target %q is not a prefix: %v", s, err)
	}
	if p.Masked() != p || p.String() != s {
		t.Fatalf("accepted IP target %q has host bits or is not canonical (%s)", s, p.Masked())
	}
	if p.Bits() == 0 || p.Addr().Zone() != "" || p.Addr().Is4In6() {
		t.Fatalf("accepted IP target %q: whole space, zone or IPv4-mapped", s)
	}
	if again, err := order.ParseIPTarget(s); err != nil || again != p {
		t.Fatalf("accepted IP target %q parses again as %v, %v", s, again, err)
	}
	return p
}

// checkCanonicalTarget checks the canonical form of whichever of name,
// prefix and URL the target is.
func checkCanonicalTarget(t *testing.T, tg order.Target) {
	t.Helper()
	switch {
	case tg.FQDN != "":
		checkCanonicalName(t, tg.FQDN)
	case tg.IP != "":
		checkCanonicalPrefix(t, tg.IP)
	default:
		checkCanonicalURL(t, tg.URL)
	}
}

// checkCanonicalURL fails unless u is an accepted URL target: http or
// https, no credentials or fragment, a canonical host name or address.
func checkCanonicalURL(t *testing.T, s string) {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("accepted URL target %q does not parse: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.User != nil || u.Fragment != "" || u.Path == "" {
		t.Fatalf("accepted URL target %q: scheme, credentials, fragment or empty path", s)
	}
	host := u.Hostname()
	if _, err := order.ParseIPTarget(host); err != nil {
		checkCanonicalName(t, host)
	}
}

// checkOrder checks the invariants of an accepted order.
func checkOrder(t *testing.T, o *order.Order) {
	t.Helper()
	if len(o.Targets) == 0 {
		t.Fatal("accepted an order without targets")
	}
	if len(o.Jurisdiction) == 0 || o.Scope().Empty() {
		t.Fatalf("accepted an order without jurisdiction: %q", o.Jurisdiction)
	}
	seen := map[string]bool{}
	for _, j := range o.Jurisdiction {
		if j != strings.ToUpper(j) || seen[j] {
			t.Fatalf("jurisdictions not upper-case and distinct: %q", o.Jurisdiction)
		}
		seen[j] = true
	}
	if !o.OpenEnded() && !o.Expires.After(o.Effective) {
		t.Fatalf("accepted an order that expires (%v) before it takes effect (%v)", o.Expires, o.Effective)
	}
	keys := map[string]bool{}
	for _, tg := range o.Targets {
		set := 0
		for _, v := range []string{tg.FQDN, tg.IP, tg.URL} {
			if v != "" {
				set++
			}
		}
		if set != 1 {
			t.Fatalf("target %+v does not have exactly one of fqdn, ip and url", tg)
		}
		checkCanonicalTarget(t, tg)
		if tg.Subdomains && tg.FQDN == "" {
			t.Fatalf("target %+v covers subdomains without being a name", tg)
		}
		switch tg.State {
		case order.TargetActive:
		case order.TargetHeld:
			if tg.HoldReason == "" {
				t.Fatalf("target %s is held without a reason", tg)
			}
		default:
			t.Fatalf("new target %s is %s", tg, tg.State)
		}
		k := tg.FQDN + "|" + tg.IP + "|" + tg.URL
		if keys[k] {
			t.Fatalf("target %s appears twice", tg)
		}
		keys[k] = true
	}
}

// resubmission is the submission an authority would send to order o
// again, written from the accepted order alone.
func resubmission(o *order.Order) *order.Submission {
	format := func(t time.Time) string { return t.Format(time.RFC3339Nano) }
	s := &order.Submission{
		Authority:           o.Authority,
		LegalBasis:          o.LegalBasis,
		Jurisdiction:        o.Jurisdiction,
		Effective:           format(o.Effective),
		Note:                o.Note,
		AmendingAuthorities: o.AmendingAuthorities,
	}
	if o.Issued != nil {
		s.Issued = format(*o.Issued)
	}
	if !o.OpenEnded() {
		s.Expires = format(o.Expires)
	}
	for _, tg := range o.Targets {
		s.Targets = append(s.Targets, order.SubmittedTarget{FQDN: tg.FQDN, Subdomains: tg.Subdomains, IP: tg.IP, URL: tg.URL})
	}
	return s
}

// acceptDocument runs the API's intake path on a request body.
func acceptDocument(t *testing.T, data []byte) (*order.Order, error) {
	t.Helper()
	sub, err := order.DecodeBytes(data)
	if err != nil {
		return nil, err
	}
	return fuzzIntake.Accept(sub, "o-fuzz", fuzzNow)
}

// FuzzSubmission feeds request bodies to the API's intake path (Decode,
// then Accept). A rejection names fields of the document; an accepted
// order is canonical, survives the JSON round trip the store makes, and
// submitted again as written is accepted as the same order.
func FuzzSubmission(f *testing.F) {
	for _, path := range []string{
		"../testdata/orders-fr-motogp-2025.json",
		"../testdata/workflow-order.json",
		"../../shared/testdata/orders-fr-motogp-2025.json",
	} {
		if b, err := os.ReadFile(path); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"authority":{"id":"agcom","name":"AGCOM","kind":"delegated_reporter","jurisdiction":"IT"},"legal_basis":{"statute":"Legge 93/2023"},"jurisdiction":["it","IT"],"expires":"2026-12-31T00:00:00+01:00","targets":[{"ip":"1.1.1.1"},{"ip":"::ffff:203.0.113.7"},{"fqdn":"Bücher.example."},{"url":"HTTPS://Stream.Example.com:8443"}]}`))
	f.Add([]byte(`{"authority":{"id":"x"},"legal_basis":{},"jurisdiction":["XX"],"expiry":"2026","targets":[{"fqdn":"co.uk","ip":"10.0.0.0/8"}]}`))
	f.Add([]byte(`{"targets":[{"fqdn":"a.example"}]} {}`))
	f.Add([]byte(`{"jurisdiction":"FR"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := acceptDocument(t, data)
		if err != nil {
			checkRejection(t, err)
			return
		}
		checkOrder(t, o)

		// What the store keeps and reads back is the same order.
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatalf("encoding the accepted order: %v", err)
		}
		var back order.Order
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("decoding the accepted order %s: %v", b, err)
		}
		if !reflect.DeepEqual(o, &back) {
			t.Fatalf("the order changed through JSON:\n got %+v\nwant %+v", &back, o)
		}

		// Written out again as a submission, it is accepted as itself:
		// normalisation is a fixed point.
		b, err = json.Marshal(resubmission(o))
		if err != nil {
			t.Fatal(err)
		}
		again, err := acceptDocument(t, b)
		if err != nil {
			t.Fatalf("the accepted order, submitted again as %s, is rejected: %v", b, err)
		}
		if !reflect.DeepEqual(o, again) {
			t.Fatalf("the accepted order, submitted again, differs:\n got %+v\nwant %+v", again, o)
		}
	})
}

// badInputs returns the values of testdata/bad-inputs.txt.
func badInputs(f *testing.F) []string {
	file, err := os.Open("../testdata/bad-inputs.txt")
	if err != nil {
		f.Fatal(err)
	}
	defer file.Close()
	var out []string
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		v, _, _ := strings.Cut(sc.Text(), "#")
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// oneTarget is a valid order whose only target is t.
func oneTarget(tg order.SubmittedTarget) *order.Submission {
	return &order.Submission{
		Authority:    order.Authority{ID: "tj-paris", Name: "Tribunal judiciaire de Paris", Kind: order.Court, Jurisdiction: "FR"},
		LegalBasis:   order.LegalBasis{Case: "Canal+ v. Cloudflare"},
		Jurisdiction: []string{"FR"},
		Expires:      "2027-01-01T00:00:00Z",
		Targets:      []order.SubmittedTarget{tg},
	}
}

// FuzzTarget checks target parsing: NormalizeName and ParseIPTarget,
// and each kind of target through a whole submission. Accepted names are
// canonical, case and a final dot do not matter, accepted prefixes have
// no host bits, and a rejected target is reported at its own field.
func FuzzTarget(f *testing.F) {
	for _, v := range badInputs(f) {
		f.Add(v, false)
	}
	for _, v := range []string{
		"MotoGPStream.ME.", "a.b.motogpstream.me", "Bücher.example", "xn--bcher-kva.example", "ドメイン.テスト",
		"example.github.io", "sub.example.co.uk", "xn--zz.example", "example.123", "1.2.3.4",
		"203.0.113.7", "203.0.113.0/24", "203.0.113.7/24", "2001:db8::1", "::ffff:203.0.113.7", "::ffff:0:0/95",
		"fe80::1%eth0", "64:ff9b::1.2.3.4", "8.0.0.0/6",
		"https://Stream.Example.com/live?x=1", "http://[2001:db8::1]:8080/a", "http://user@example.com/", "ftp://example.com/",
		"http://example.com/#frag", "https://xn--bcher-kva.example",
	} {
		f.Add(v, true)
	}
	f.Fuzz(func(t *testing.T, s string, subdomains bool) {
		name, nameErr := order.NormalizeName(s)
		if nameErr == nil {
			checkCanonicalName(t, name)
			if !strings.HasSuffix(s, ".") {
				if n2, err := order.NormalizeName(s + "."); err != nil || n2 != name {
					t.Fatalf("NormalizeName(%q) = %q but with a final dot %q, %v", s, name, n2, err)
				}
			}
			if isASCII(s) {
				if n2, err := order.NormalizeName(strings.ToUpper(s)); err != nil || n2 != name {
					t.Fatalf("NormalizeName(%q) = %q but in upper case %q, %v", s, name, n2, err)
				}
			}
		} else if nameErr.Error() == "" {
			t.Fatalf("NormalizeName(%q): empty error", s)
		}

		p, ipErr := order.ParseIPTarget(s)
		if ipErr == nil {
			checkCanonicalPrefix(t, p.String())
			if nameErr == nil {
				t.Fatalf("%q is both the name %q and the prefix %s", s, name, p)
			}
		} else if raw, err := netip.ParsePrefix(s); err == nil && raw.Masked() != raw && !raw.Addr().Is4In6() {
			if !strings.Contains(ipErr.Error(), raw.Masked().String()) {
				t.Fatalf("ParseIPTarget(%q) error %q does not give the prefix %s", s, ipErr, raw.Masked())
			}
		}

		// The same value as each kind of target of an order.
		for _, tc := range []struct {
			field  string
			target order.SubmittedTarget
			ok     bool // whether the parser above accepted it, when known
			known  bool
		}{
			{"fqdn", order.SubmittedTarget{FQDN: s, Subdomains: subdomains}, nameErr == nil, true},
			{"ip", order.SubmittedTarget{IP: s}, ipErr == nil, true},
			{"url", order.SubmittedTarget{URL: s}, false, false},
		} {
			o, err := fuzzIntake.Accept(oneTarget(tc.target), "o-fuzz", fuzzNow)
			if tc.known && (err == nil) != tc.ok {
				t.Fatalf("%s target %q: accepted = %v, but the parser says %v", tc.field, s, err == nil, tc.ok)
			}
			if err != nil {
				inv := checkRejection(t, err)
				for _, fe := range inv.Fields {
					if !strings.HasPrefix(fe.Field, "targets[0]") {
						t.Fatalf("%s target %q: rejected at %s, not at the target: %v", tc.field, s, fe.Field, err)
					}
				}
				continue
			}
			checkOrder(t, o)
			got := o.Targets[0]
			switch tc.field {
			case "fqdn":
				if got.FQDN != name || got.Subdomains != subdomains {
					t.Fatalf("fqdn target %q became %+v, want %q", s, got, name)
				}
			case "ip":
				if got.IP != p.String() {
					t.Fatalf("ip target %q became %+v, want %s", s, got, p)
				}
			case "url":
				again, err := fuzzIntake.Accept(oneTarget(order.SubmittedTarget{URL: got.URL}), "o-fuzz", fuzzNow)
				if err != nil || again.Targets[0].URL != got.URL {
					t.Fatalf("url target %q became %q, which is not accepted as itself: %+v, %v", s, got.URL, again, err)
				}
			}
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// FuzzAmendment feeds amendment bodies to the API's amendment path
// (DecodeAmendment, then Amend) on an accepted order. A rejection names
// fields; an accepted amendment leaves the original order untouched and
// the amended one canonical, with every live target once.
func FuzzAmendment(f *testing.F) {
	f.Add([]byte(`{"add":[{"fqdn":"motogpstream2.me","subdomains":true},{"ip":"104.16.1.1"}],"note":"ARCOM notice 2025-014"}`))
	f.Add([]byte(`{"remove":[{"fqdn":"bakery.example"}]}`))
	f.Add([]byte(`{"add":[{"fqdn":"MotoGPStream.me"}],"remove":[{"fqdn":"motogpstream.me"}]}`))
	f.Add([]byte(`{"add":[{"url":"https://stream.example.com/live"},{"ip":"203.0.113.0/24"}],"remove":[{"ip":"198.51.100.7"}]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"add":[],"extra":1}`))
	base, err := os.ReadFile("../testdata/workflow-order.json")
	if err != nil {
		f.Fatal(err)
	}
	sub, err := order.DecodeBytes(base)
	if err != nil {
		f.Fatal(err)
	}
	sub.Authority = order.Authority{ID: "tj-paris", Name: "Tribunal judiciaire de Paris", Kind: order.Court, Jurisdiction: "FR"}
	sub.Targets = append(sub.Targets, order.SubmittedTarget{IP: "198.51.100.7"})
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := fuzzIntake.Accept(sub, "o-fuzz", fuzzNow)
		if err != nil {
			t.Fatal(err)
		}
		before, _ := json.Marshal(o)
		a, err := order.DecodeAmendment(strings.NewReader(string(data)))
		if err != nil {
			checkRejection(t, err)
			return
		}
		amended, added, removed, err := fuzzIntake.Amend(o, a)
		if after, _ := json.Marshal(o); string(after) != string(before) {
			t.Fatalf("Amend changed the order it was given:\n%s\n%s", before, after)
		}
		if err != nil {
			checkRejection(t, err)
			return
		}
		if len(added)+len(removed) == 0 || amended.Amendments != o.Amendments+1 {
			t.Fatalf("accepted amendment added %d, removed %d, counted %d", len(added), len(removed), amended.Amendments)
		}
		keys := map[string]bool{}
		for _, tg := range amended.Targets {
			checkCanonicalTarget(t, tg)
			k := tg.FQDN + "|" + tg.IP + "|" + tg.URL
			if keys[k] {
				t.Fatalf("target %s appears twice after the amendment", tg)
			}
			keys[k] = true
		}
		for _, r := range removed {
			if r.State != order.TargetRemoved {
				t.Fatalf("removed target %s is %s", r, r.State)
			}
		}
	})
}
