package rpz_test

// Fuzz target for zone generation: orders built from fuzzed names and
// prefixes, compiled into a policy, rendered as each jurisdiction's
// response policy zone and read back with miekg/dns's zone parser.
//
//	go test ./rpz -run '^$' -fuzz '^FuzzZoneRoundTrip$' -fuzztime 30s

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/rpz"
)

var (
	fuzzNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	fuzzFR  = jurisdiction.MustParse("FR")
	fuzzIT  = jurisdiction.MustParse("IT")
)

// fuzzTargets reads a comma-separated target list: a name ("*." in
// front: with its subdomains) or an address or prefix, "!" in front for
// a target held for review. Values intake would refuse are left out, as
// intake leaves them out of every order.
func fuzzTargets(list string) []order.Target {
	var out []order.Target
	seen := map[string]bool{}
	for _, v := range strings.Split(list, ",") {
		tg := order.Target{State: order.TargetActive}
		if rest, ok := strings.CutPrefix(v, "!"); ok {
			v, tg.State, tg.HoldReason = rest, order.TargetHeld, "fuzzed hold"
		}
		if p, err := order.ParseIPTarget(v); err == nil {
			tg.IP = p.String()
		} else {
			name, sub := strings.CutPrefix(v, "*.")
			n, err := order.NormalizeName(name)
			if err != nil {
				continue
			}
			tg.FQDN, tg.Subdomains = n, sub
		}
		// Intake merges duplicates; so does this.
		if k := tg.FQDN + "|" + tg.IP; !seen[k] {
			seen[k] = true
			out = append(out, tg)
		}
	}
	return out
}

func fuzzOrder(id string, juris []string, targets []order.Target) *order.Order {
	return &order.Order{
		ID:           id,
		Authority:    order.Authority{ID: "a-" + id, Name: "Authority " + id, Kind: order.Court, Jurisdiction: juris[0]},
		LegalBasis:   order.LegalBasis{Case: "case " + id},
		Jurisdiction: juris,
		Effective:    fuzzNow.Add(-time.Hour),
		Expires:      fuzzNow.Add(time.Hour),
		Received:     fuzzNow.Add(-2 * time.Hour),
		Targets:      targets,
	}
}

// rpzLabels are the last labels by which RPZ marks triggers other than
// names.
var rpzLabels = []string{"rpz-ip", "rpz-nsip", "rpz-nsdname", "rpz-client-ip"}

// lastLabel is the last label of a name.
func lastLabel(name string) string { return name[strings.LastIndexByte(name, '.')+1:] }

// expectedZone is the content the zone at origin must have: each trigger
// owner (relative to the origin) with the sorted ids of the orders behind
// it. A name is left out when its records would not fit in a domain name
// (255 octets), or when RPZ would read it as another kind of trigger.
func expectedZone(orders []*order.Order, c jurisdiction.Code, origin string) map[string][]string {
	want := map[string][]string{}
	room := 254 - len("._orders.") - len(origin)
	add := func(owner, id string) {
		if len(owner) > room {
			return
		}
		if !slices.Contains(want[owner], id) {
			want[owner] = append(want[owner], id)
			slices.Sort(want[owner])
		}
	}
	var prefixes []netip.Prefix
	for _, o := range orders {
		for _, tg := range o.Targets {
			if p, ok := tg.Prefix(); ok && tg.State == order.TargetActive {
				prefixes = append(prefixes, p)
			}
		}
	}
	for _, o := range orders {
		if !o.Scope().Has(c) {
			continue
		}
		for _, tg := range o.Targets {
			if tg.State != order.TargetActive {
				continue
			}
			switch {
			case tg.FQDN != "":
				if slices.Contains(rpzLabels, lastLabel(tg.FQDN)) {
					continue
				}
				add(tg.FQDN, o.ID)
				if tg.Subdomains {
					add("*."+tg.FQDN, o.ID)
				}
			case tg.IP != "":
				// A prefix is published with the orders of every prefix
				// enclosing it, so that longest-prefix matching on the
				// zone decides as writ does.
				q, _ := tg.Prefix()
				for _, p := range prefixes {
					if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
						add(rpz.IPTrigger(p), o.ID)
					}
				}
			}
		}
	}
	return want
}

// parsedZone reads a zone file back: each CNAME trigger owner, relative
// to the origin, with the ids of the TXT records of the orders behind it.
func parsedZone(t *testing.T, text, origin string) map[string][]string {
	t.Helper()
	zp := dns.NewZoneParser(strings.NewReader(text), origin, "")
	got := map[string][]string{}
	ids := map[string][]string{}
	soa := 0
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		name := strings.ToLower(rr.Header().Name)
		if name == origin {
			switch rr.(type) {
			case *dns.SOA:
				soa++
			case *dns.NS:
			default:
				t.Fatalf("unexpected record at the apex: %v", rr)
			}
			continue
		}
		rel, ok := strings.CutSuffix(name, "."+origin)
		if !ok {
			t.Fatalf("record outside the zone %s: %v", origin, rr)
		}
		switch rr := rr.(type) {
		case *dns.CNAME:
			if rr.Target != "." {
				t.Fatalf("trigger %s rewrites to %s, want . (NXDOMAIN)", rel, rr.Target)
			}
			if _, dup := got[rel]; dup {
				t.Fatalf("trigger %s appears twice", rel)
			}
			got[rel] = nil
		case *dns.TXT:
			owner, ok := strings.CutSuffix(rel, "._orders")
			if !ok || len(rr.Txt) == 0 {
				t.Fatalf("TXT record outside _orders: %v", rr)
			}
			ids[owner] = append(ids[owner], rr.Txt[0])
		default:
			t.Fatalf("unexpected record %v", rr)
		}
	}
	if err := zp.Err(); err != nil {
		t.Fatalf("the zone %s does not parse: %v\n%s", origin, err, text)
	}
	if soa != 1 {
		t.Fatalf("zone %s has %d SOA records", origin, soa)
	}
	for owner, list := range ids {
		if _, ok := got[owner]; !ok {
			t.Fatalf("order records for %s, which is no trigger", owner)
		}
		slices.Sort(list)
		got[owner] = list
	}
	return got
}

// FuzzZoneRoundTrip builds a French, an Italian and an EU-wide order from
// fuzzed target lists and checks that each zone parses back to exactly
// the triggers the orders put there, each citing exactly its orders:
// nothing of an order reaches the zone of a country outside its scope,
// a held target reaches none, and every rpz-ip trigger stands for a
// prefix that was ordered.
func FuzzZoneRoundTrip(f *testing.F) {
	f.Add("*.motogpstream.me,exact.example,203.0.113.0/24,2001:db8:1::/48", "motogpstream.me,203.0.113.5", "")
	f.Add("*.tarjetarojaenvivo.lat,*.livetv821.me,!1.1.1.1", "Bücher.example,2001:db8::10,!*.held.example", "*.eu.example,198.51.100.0/24")
	f.Add("a.example,*.a.example,b.a.example", "*.example.co.uk,co.uk,com", "2001:db8::/32,2001:db8:0:1::1")
	f.Add("32.7.113.0.203.rpz-ip,*.rpz-ip.example", "24.0.113.0.203.rpz-nsip,x.rpz-nsdname", "128.1.zz.rpz-client-ip")
	f.Add(strings.Repeat("a", 63)+"."+strings.Repeat("b", 63)+"."+strings.Repeat("c", 63)+"."+strings.Repeat("d", 61), "*."+strings.Repeat("x", 63)+"."+strings.Repeat("y", 63)+"."+strings.Repeat("z", 63)+".example", "")
	f.Fuzz(func(t *testing.T, fr, it, eu string) {
		orders := []*order.Order{
			fuzzOrder("o-fr", []string{"FR"}, fuzzTargets(fr)),
			fuzzOrder("o-it", []string{"IT"}, fuzzTargets(it)),
			fuzzOrder("o-eu", []string{"EU"}, fuzzTargets(eu)),
		}
		ordered := map[netip.Prefix]bool{}
		for _, o := range orders {
			for _, tg := range o.Targets {
				if p, ok := tg.Prefix(); ok {
					ordered[p] = true
				}
			}
		}
		h := policy.NewHolder(policy.Compile(orders, fuzzNow, 1, nil))
		srv, err := rpz.New(rpz.Config{Listen: []string{"127.0.0.1:0"}, Scopes: []jurisdiction.Code{fuzzFR, fuzzIT}, FirstSerial: 1}, h)
		if err != nil {
			t.Fatal(err)
		}
		zones := map[jurisdiction.Code]map[string][]string{}
		for _, c := range []jurisdiction.Code{fuzzFR, fuzzIT} {
			var b bytes.Buffer
			origin := srv.Zone(c)
			if err := srv.WriteZone(&b, origin); err != nil {
				t.Fatal(err)
			}
			got := parsedZone(t, b.String(), origin)
			want := expectedZone(orders, c, origin)
			for owner, ids := range got {
				if !slices.Equal(ids, want[owner]) {
					t.Fatalf("zone %s: trigger %s cites %q, want %q\n%s", origin, owner, ids, want[owner], b.String())
				}
				// A resolver reads these as address or name-server
				// triggers: each must be the rpz-ip trigger of an
				// ordered prefix.
				if slices.Contains(rpzLabels, lastLabel(owner)) {
					p, err := rpz.ParseIPTrigger(owner)
					if err != nil || rpz.IPTrigger(p) != owner || !ordered[p] {
						t.Fatalf("zone %s: %s is read as an address trigger for %v (%v), which no order names", origin, owner, p, err)
					}
				}
			}
			for owner := range want {
				if _, ok := got[owner]; !ok {
					t.Fatalf("zone %s lacks the trigger %s of %q\n%s", origin, owner, want[owner], b.String())
				}
			}
			zones[c] = got
		}
		// Scope, stated on its own: what only the French order blocks is
		// not in the Italian zone, and the other way round.
		for _, tc := range []struct {
			only  *order.Order
			other jurisdiction.Code
		}{{orders[0], fuzzIT}, {orders[1], fuzzFR}} {
			for owner, ids := range zones[tc.other] {
				if slices.Equal(ids, []string{tc.only.ID}) {
					t.Fatalf("trigger %s of %s alone is in the zone of %s", owner, tc.only.ID, tc.other)
				}
			}
		}
	})
}
