package publicrecord

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/writ-project/writ/order"
)

var t0 = time.Date(2025, 3, 28, 9, 0, 0, 0, time.UTC)

// records is an in-memory order record.
type records struct {
	now    time.Time
	orders []*order.Order
	events map[string][]order.Event
	fail   map[string]bool
}

func (r *records) Orders() []*order.Order { return r.orders }
func (r *records) Now() time.Time         { return r.now }
func (r *records) Order(_ context.Context, id string) (*order.Order, []order.Event, error) {
	if r.fail[id] {
		return nil, nil, errors.New("disk on fire")
	}
	for _, o := range r.orders {
		if o.ID == id {
			return o, r.events[id], nil
		}
	}
	return nil, nil, fmt.Errorf("order %s: no such order", id)
}

// sample is a record of three orders: the Paris court's, active since
// receipt; an AGCOM order held in part, then released; and a revoked one
// that was contested.
func sample() *records {
	issued := t0.Add(-48 * time.Hour)
	revokedAt := t0.Add(50 * time.Hour)
	paris := &order.Order{
		ID:           "20250328-0a1b2c3d",
		Authority:    order.Authority{ID: "tj-paris", Name: "Tribunal judiciaire de Paris", Kind: order.Court, Jurisdiction: "FR"},
		LegalBasis:   order.LegalBasis{Statute: "Code du sport L.333-10", Case: "Canal+ v. Cloudflare, judgment of 28 March 2025", URL: "https://www.courdecassation.fr/decision/example", Summary: "Blocking of sites retransmitting MotoGP."},
		Jurisdiction: []string{"FR"},
		Issued:       &issued,
		Effective:    t0.Add(-time.Hour),
		Expires:      t0.Add(240 * 24 * time.Hour),
		Received:     t0,
		Targets: []order.Target{
			{FQDN: "motogpstream.me", Subdomains: true, State: order.TargetActive},
			{FQDN: "tarjetarojaenvivo.lat", Subdomains: true, State: order.TargetActive},
			{IP: "203.0.113.0/24", State: order.TargetActive},
		},
	}
	agcom := &order.Order{
		ID:           "20250329-11111111",
		Authority:    order.Authority{ID: "agcom", Name: "AGCOM", Kind: order.Regulator, Jurisdiction: "IT"},
		LegalBasis:   order.LegalBasis{Statute: "Legge 93/2023"},
		Jurisdiction: []string{"IT"},
		Effective:    t0.Add(24 * time.Hour),
		Expires:      t0.Add(30 * 24 * time.Hour),
		Received:     t0.Add(24 * time.Hour),
		Targets: []order.Target{
			{FQDN: "calcio-live.example", State: order.TargetActive},
			{IP: "198.51.100.7", State: order.TargetActive, Decision: "released after review: not shared"},
		},
	}
	revoked := &order.Order{
		ID:                "20250330-22222222",
		Authority:         order.Authority{ID: "tj-paris", Name: "Tribunal judiciaire de Paris", Kind: order.Court, Jurisdiction: "FR"},
		LegalBasis:        order.LegalBasis{Case: "RG 25/01234"},
		Jurisdiction:      []string{"FR"},
		Effective:         t0.Add(48 * time.Hour),
		Expires:           t0.Add(90 * 24 * time.Hour),
		Received:          t0.Add(48 * time.Hour),
		Targets:           []order.Target{{URL: "https://video.example/match/123", State: order.TargetActive}},
		Disposition:       order.Revoked,
		DispositionAt:     &revokedAt,
		DispositionReason: "judgment overturned on appeal",
	}
	ev := func(seq uint64, id string, at time.Time, kind order.EventKind, detail string) order.Event {
		return order.Event{Seq: seq, OrderID: id, At: at, Kind: kind, Principal: "alice@operator.example", Detail: detail}
	}
	return &records{
		now:    t0.Add(72 * time.Hour),
		orders: []*order.Order{paris, agcom, revoked},
		events: map[string][]order.Event{
			paris.ID: {ev(1, paris.ID, t0, order.EventReceived, "3 targets for FR from Tribunal judiciaire de Paris")},
			agcom.ID: {
				ev(2, agcom.ID, agcom.Received, order.EventReceived, "2 targets for IT from AGCOM"),
				ev(3, agcom.ID, agcom.Received, order.EventHeld, "198.51.100.7 inside shared infrastructure"),
				ev(4, agcom.ID, agcom.Received.Add(20*time.Minute), "released", "198.51.100.7: not shared"),
			},
			revoked.ID: {
				ev(5, revoked.ID, revoked.Received, order.EventReceived, "1 target for FR"),
				ev(6, revoked.ID, revoked.Received.Add(time.Hour), "contested", "contest 1 against the whole order: the video is the rights holder's own"),
				ev(7, revoked.ID, revoked.Received.Add(2*time.Hour), "contest_decided", "contest 1 upheld: order revoked"),
				ev(8, revoked.ID, revokedAt, order.EventRevoked, "judgment overturned on appeal"),
			},
		},
	}
}

func newServer(rec *records) *Server {
	return New(Config{PublicURL: "https://writ.isp.example/", Operator: "Example ISP", Logger: slog.New(slog.DiscardHandler)}, rec)
}

func get(t *testing.T, h http.Handler, target string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest("GET", target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestIndexSearchAndFilters(t *testing.T) {
	s := newServer(sample())
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"20250328-0a1b2c3d", "20250329-11111111", "20250330-22222222"}},
		{"q=motogp", []string{"20250328-0a1b2c3d"}},
		{"q=203.0.113", []string{"20250328-0a1b2c3d"}},
		{"q=AGCOM", []string{"20250329-11111111"}},
		{"q=20250330", []string{"20250330-22222222"}},
		{"q=video.example", []string{"20250330-22222222"}},
		{"status=revoked", []string{"20250330-22222222"}},
		{"status=active", []string{"20250328-0a1b2c3d", "20250329-11111111"}},
		{"jurisdiction=fr", []string{"20250328-0a1b2c3d", "20250330-22222222"}},
		{"kind=regulator", []string{"20250329-11111111"}},
		{"kind=court&status=active&q=tarjeta", []string{"20250328-0a1b2c3d"}},
		{"q=nothing-like-this", nil},
	} {
		w := get(t, s, "/?"+tc.query)
		if w.Code != 200 {
			t.Fatalf("%s: %d", tc.query, w.Code)
		}
		body := w.Body.String()
		for _, o := range sample().orders {
			listed := strings.Contains(body, `href="/orders/`+o.ID+`"`)
			if listed != slices.Contains(tc.want, o.ID) {
				t.Errorf("?%s: order %s listed=%v", tc.query, o.ID, listed)
			}
		}
		if tc.want == nil && !strings.Contains(body, "No order matches.") {
			t.Errorf("?%s: no empty-result message", tc.query)
		}
	}
	body := get(t, s, "/?status=revoked").Body.String()
	for _, want := range []string{`<option value="revoked" selected>`, `<option value="FR">`, `<option value="regulator">`, `1 of 3 orders match`} {
		if !strings.Contains(body, want) {
			t.Errorf("index lacks %q", want)
		}
	}
	// Newest first.
	all := get(t, s, "/").Body.String()
	if !(strings.Index(all, "/orders/20250330-22222222") < strings.Index(all, "/orders/20250329-11111111") &&
		strings.Index(all, "/orders/20250329-11111111") < strings.Index(all, "/orders/20250328-0a1b2c3d")) {
		t.Error("orders are not listed newest first")
	}
}

func TestPagesArePlainAndSafe(t *testing.T) {
	rec := sample()
	rec.orders[0].Note = `<script>alert("x")</script>`
	s := newServer(rec)
	for _, path := range []string{"/", "/orders/20250328-0a1b2c3d"} {
		w := get(t, s, path)
		h := w.Header()
		if ct := h.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("%s: Content-Type %q", path, ct)
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
			t.Errorf("%s: CSP %q", path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: headers %v", path, h)
		}
		body := w.Body.String()
		if strings.Contains(body, "<script") {
			t.Errorf("%s: a script element reached the page", path)
		}
		if strings.Contains(body, "alice@operator.example") {
			t.Errorf("%s: the page shows who acted", path)
		}
	}
	if !strings.Contains(get(t, s, "/orders/20250328-0a1b2c3d").Body.String(), "&lt;script&gt;") {
		t.Error("the note is not shown escaped")
	}
}

func TestOrderPage(t *testing.T) {
	s := newServer(sample())
	body := get(t, s, "/orders/20250328-0a1b2c3d").Body.String()
	for _, want := range []string{
		"Tribunal judiciaire de Paris", "court, jurisdiction FR", "Code du sport L.333-10", "Canal&#43; v. Cloudflare",
		`href="https://www.courdecassation.fr/decision/example" rel="noreferrer noopener"`,
		"Status: <span class=\"status\">active</span>", "Enforced now, for users in FR only.",
		"<code>motogpstream.me (and subdomains)</code>", "domain name and its subdomains", "<code>203.0.113.0/24</code>", "IP prefix",
		"2025-03-26 09:00 UTC", "2025-03-28 08:00 UTC", // issued, effective
		"No contest has been filed", `href="/v1/ledger/proof/inclusion?index=0"`,
		`href="/v1/orders/20250328-0a1b2c3d/lumen"`, `href="/v1/orders/20250328-0a1b2c3d/dsa"`, `href="/v1/ledger/documents/20250328-0a1b2c3d"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("order page lacks %q", want)
		}
	}

	body = get(t, s, "/orders/20250330-22222222").Body.String()
	for _, want := range []string{
		"Status: <span class=\"status\">revoked</span>", "Not enforced now.", "Revoked</th><td>2025-03-30 11:00 UTC: judgment overturned on appeal",
		"<td>contested</td><td>contest 1 against the whole order: the video is the rights holder&#39;s own</td>",
		"<td>contest_decided</td><td>contest 1 upheld: order revoked</td>", "URL",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("revoked order page lacks %q", want)
		}
	}
	body = get(t, s, "/orders/20250329-11111111").Body.String()
	for _, want := range []string{"released after review: not shared", "<td>released</td>", "IP address"} {
		if !strings.Contains(body, want) {
			t.Errorf("AGCOM order page lacks %q", want)
		}
	}

	if w := get(t, s, "/orders/nope"); w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "No order with this id") {
		t.Errorf("unknown order: %d %s", w.Code, w.Body)
	}
	rec := sample()
	rec.fail = map[string]bool{"20250328-0a1b2c3d": true}
	if w := get(t, newServer(rec), "/orders/20250328-0a1b2c3d"); w.Code != http.StatusInternalServerError {
		t.Errorf("unreadable order: %d", w.Code)
	}
}

func TestReport(t *testing.T) {
	s := newServer(sample())
	w := get(t, s, "/v1/report")
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("report: %d %v", w.Code, w.Header())
	}
	var r Report
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if r.Orders != 3 || r.Targets != 6 {
		t.Errorf("orders %d targets %d, want 3 and 6", r.Orders, r.Targets)
	}
	want := map[string][]Count{
		"authority":      {{Key: "tj-paris", Name: "Tribunal judiciaire de Paris", Orders: 2, Targets: 4}, {Key: "agcom", Name: "AGCOM", Orders: 1, Targets: 2}},
		"jurisdiction":   {{Key: "FR", Orders: 2, Targets: 4}, {Key: "IT", Orders: 1, Targets: 2}},
		"authority_kind": {{Key: "court", Orders: 2, Targets: 4}, {Key: "regulator", Orders: 1, Targets: 2}},
		"target_kind":    {{Key: "fqdn", Orders: 2, Targets: 3}, {Key: "ip", Orders: 2, Targets: 2}, {Key: "url", Orders: 1, Targets: 1}},
		"outcome":        {{Key: "active", Orders: 2, Targets: 5}, {Key: "revoked", Orders: 1, Targets: 1}},
	}
	got := map[string][]Count{"authority": r.ByAuthority, "jurisdiction": r.ByJurisdiction, "authority_kind": r.ByAuthorityKind, "target_kind": r.ByTargetKind, "outcome": r.ByOutcome}
	for dim, w := range want {
		if !slices.Equal(got[dim], w) {
			t.Errorf("%s: %+v, want %+v", dim, got[dim], w)
		}
	}
	// Paris: enforced at receipt (0 s). AGCOM: one target held at receipt,
	// the other active, effective at receipt: 0 s. The revoked order took
	// effect at receipt: 0 s. Median 0, three orders.
	if r.EnforcedOrders != 3 || r.MedianSecondsToEnforce == nil || *r.MedianSecondsToEnforce != 0 {
		t.Errorf("enforced %d, median %v", r.EnforcedOrders, r.MedianSecondsToEnforce)
	}
	if !slices.Contains(r.Events, EventCount{Kind: "contested", Count: 1}) || !slices.Contains(r.Events, EventCount{Kind: "received", Count: 3}) {
		t.Errorf("events %+v", r.Events)
	}

	// A period holding only the AGCOM order.
	w = get(t, s, "/v1/report?from=2025-03-29&to=2025-03-30T00:00:00Z")
	json.Unmarshal(w.Body.Bytes(), &r)
	if r.Orders != 1 || r.ByAuthority[0].Key != "agcom" || r.From == nil || !r.From.Equal(t0.Truncate(24*time.Hour).Add(24*time.Hour)) {
		t.Errorf("period report: %+v", r)
	}

	// CSV, by parameter or by Accept.
	for _, req := range [][]string{{"/v1/report?format=csv"}, {"/v1/report", "Accept", "text/csv"}} {
		w := get(t, s, req[0], req[1:]...)
		if w.Header().Get("Content-Type") != "text/csv; charset=utf-8" {
			t.Fatalf("%v: Content-Type %q", req, w.Header().Get("Content-Type"))
		}
		rows, err := csv.NewReader(w.Body).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rows[0], []string{"figure", "dimension", "key", "name", "value"}) {
			t.Fatalf("header %v", rows[0])
		}
		for _, want := range [][]string{
			{"orders", "all", "", "", "3"},
			{"targets", "authority", "tj-paris", "Tribunal judiciaire de Paris", "4"},
			{"orders", "outcome", "revoked", "", "1"},
			{"median_seconds_to_enforce", "all", "", "", "0"},
			{"events", "event_kind", "contest_decided", "", "1"},
		} {
			if !slices.ContainsFunc(rows, func(r []string) bool { return slices.Equal(r, want) }) {
				t.Errorf("CSV lacks row %v", want)
			}
		}
	}

	for _, bad := range []string{"from=yesterday", "to=2025-13-01", "from=2025-04-01&to=2025-03-01", "format=xml"} {
		if w := get(t, s, "/v1/report?"+bad); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "error") {
			t.Errorf("?%s: %d %s", bad, w.Code, w.Body)
		}
	}
}

func TestTimeToEnforce(t *testing.T) {
	received := t0
	o := &order.Order{Effective: t0.Add(2 * time.Hour), Received: received, Targets: []order.Target{{FQDN: "a.example", State: order.TargetActive}}}
	ev := []order.Event{{Kind: order.EventReceived, At: received}, {Kind: order.EventActivated, At: t0.Add(2 * time.Hour)}}
	if d, ok := timeToEnforce(o, ev); !ok || d != 2*time.Hour {
		t.Errorf("scheduled order: %v %v", d, ok)
	}
	// Every target held at receipt, one released 40 minutes later.
	o = &order.Order{Effective: t0, Received: received, Targets: []order.Target{{IP: "198.51.100.7", State: order.TargetActive}}}
	ev = []order.Event{{Kind: order.EventReceived, At: received}, {Kind: order.EventHeld, At: received}, {Kind: "released", At: t0.Add(40 * time.Minute)}}
	if d, ok := timeToEnforce(o, ev); !ok || d != 40*time.Minute {
		t.Errorf("released order: %v %v", d, ok)
	}
	// Held and never released: never enforced.
	if _, ok := timeToEnforce(o, ev[:2]); ok {
		t.Error("a held order counted as enforced")
	}
	if m, _ := median([]float64{5, 1, 3, 100}); m != 4 {
		t.Errorf("median %v", m)
	}
}

// schema compiles one of the schemas kept in schemas/.
func schema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	abs, err := filepath.Abs(filepath.Join("schemas", name))
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(abs)
	if err != nil {
		t.Fatalf("schema %s: %v", name, err)
	}
	return s
}

func validate(t *testing.T, s *jsonschema.Schema, doc []byte) error {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(string(doc)))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(v)
}

func TestExportsMeetTheirSchemas(t *testing.T) {
	lumen := schema(t, "lumen-notice.schema.json")
	dsa := schema(t, "dsa-statement-of-reasons.schema.json")
	s := newServer(sample())
	for _, o := range sample().orders {
		w := get(t, s, "/v1/orders/"+o.ID+"/lumen")
		if w.Code != 200 {
			t.Fatalf("lumen %s: %d %s", o.ID, w.Code, w.Body)
		}
		if err := validate(t, lumen, w.Body.Bytes()); err != nil {
			t.Errorf("Lumen notice of %s does not meet the schema: %v\n%s", o.ID, err, w.Body)
		}
		w = get(t, s, "/v1/orders/"+o.ID+"/dsa")
		if w.Code != 200 {
			t.Fatalf("dsa %s: %d %s", o.ID, w.Code, w.Body)
		}
		if err := validate(t, dsa, w.Body.Bytes()); err != nil {
			t.Errorf("DSA statement of %s does not meet the schema: %v\n%s", o.ID, err, w.Body)
		}
	}

	// The schemas bite: documents that break the documented rules fail.
	for _, bad := range []string{
		`{"notice":{"title":"t","type":"CourtOrder","entity_notice_roles_attributes":[],"works_attributes":[{"description":"d"}]}}`,
		`{"notice":{"title":"t","type":"Court Order","entity_notice_roles_attributes":[{"name":"sender","entity_attributes":{"name":"x"}}],"works_attributes":[{}]}}`,
		`{"notice":{"title":"t","type":"GovernmentRequest","entity_notice_roles_attributes":[{"name":"issuing_court","entity_attributes":{"name":"x"}}],"works_attributes":[{}]}}`,
		`{"notice":{"title":"t","type":"CourtOrder","entity_notice_roles_attributes":[{"name":"sender","entity_attributes":{"name":"x","kind":"company"}}],"works_attributes":[{}]}}`,
		`{"notice":{"title":"t","type":"CourtOrder","jurisdiction":"FR","entity_notice_roles_attributes":[{"name":"sender","entity_attributes":{"name":"x"}}],"works_attributes":[{}]}}`,
	} {
		if validate(t, lumen, []byte(bad)) == nil {
			t.Errorf("Lumen schema accepted %s", bad)
		}
	}
	good := get(t, s, "/v1/orders/20250328-0a1b2c3d/dsa").Body.Bytes()
	for name, edit := range map[string]func(m map[string]any){
		"no legal ground":      func(m map[string]any) { delete(m, "illegal_content_legal_ground") },
		"US in scope":          func(m map[string]any) { m["territorial_scope"] = []string{"US"} },
		"bad puid":             func(m map[string]any) { m["puid"] = "has space" },
		"date before 2020":     func(m map[string]any) { m["application_date"] = "2019-12-31" },
		"no decision":          func(m map[string]any) { delete(m, "decision_visibility") },
		"other without text":   func(m map[string]any) { delete(m, "content_type_other") },
		"facts too long":       func(m map[string]any) { m["decision_facts"] = strings.Repeat("x", 5001) },
		"unknown field":        func(m map[string]any) { m["decision_ground_url"] = "https://x" },
		"automated yes":        func(m map[string]any) { m["automated_decision"] = "Yes" },
		"end date not a date":  func(m map[string]any) { m["end_date_visibility_restriction"] = "2025-11-31T00:00:00Z" },
		"category of old list": func(m map[string]any) { m["category"] = "STATEMENT_CATEGORY_PIRACY" },
	} {
		var m map[string]any
		json.Unmarshal(good, &m)
		edit(m)
		b, _ := json.Marshal(m)
		if validate(t, dsa, b) == nil {
			t.Errorf("DSA schema accepted a statement with %s", name)
		}
	}
}

func TestExportContent(t *testing.T) {
	rec := sample()
	paris := rec.orders[0]
	n := NoticeFor(paris, "Example ISP", "https://writ.isp.example/orders/"+paris.ID).Notice
	if n.Type != "CourtOrder" || n.Roles[0].Name != "issuing_court" || n.Roles[0].Entity.Name != "Tribunal judiciaire de Paris" ||
		n.Roles[0].Entity.CountryCode != "FR" || n.Roles[1].Name != "sender" || n.Roles[2].Name != "recipient" || n.Roles[2].Entity.Name != "Example ISP" {
		t.Errorf("court order notice roles: %+v", n)
	}
	if n.JurisdictionList != "FR" || n.ActionTaken != "Yes" || n.DateSent != "2025-03-26" || n.DateReceived != "2025-03-28" ||
		len(n.Works) != 1 || !slices.Equal(n.Works[0].InfringingURLs, []LumenURL{{"*.motogpstream.me"}, {"*.tarjetarojaenvivo.lat"}, {"203.0.113.0/24"}}) {
		t.Errorf("court order notice: %+v", n)
	}
	if !strings.Contains(n.Body, "https://writ.isp.example/orders/"+paris.ID) {
		t.Error("the notice does not link the public record")
	}
	g := NoticeFor(rec.orders[1], "Example ISP", "x").Notice
	if g.Type != "GovernmentRequest" || g.Roles[0].Name != "sender" || len(g.Roles) != 2 {
		t.Errorf("regulator notice: %+v", g)
	}

	sor, err := StatementFor(paris, "Example ISP", "https://writ.isp.example/orders/"+paris.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sor.DecisionVisibility, []string{"DECISION_VISIBILITY_CONTENT_DISABLED"}) || sor.DecisionGround != "DECISION_GROUND_ILLEGAL_CONTENT" ||
		sor.IllegalContentLegalGround != "Code du sport L.333-10" || sor.IllegalContentExplanation != "Blocking of sites retransmitting MotoGP." ||
		!slices.Equal(sor.TerritorialScope, []string{"FR"}) || sor.ApplicationDate != "2025-03-28" || sor.EndDateVisibilityRestriction != "2025-11-23" ||
		sor.PUID != paris.ID || sor.DecisionGroundReferenceURL != paris.LegalBasis.URL {
		t.Errorf("statement: %+v", sor)
	}
	if !strings.Contains(sor.DecisionFacts, "motogpstream.me (and subdomains)") || !strings.Contains(sor.DecisionFacts, "for users in FR only") {
		t.Errorf("facts: %s", sor.DecisionFacts)
	}
	rev, _ := StatementFor(rec.orders[2], "Example ISP", "x")
	if rev.EndDateVisibilityRestriction != "2025-03-30" {
		t.Errorf("a revoked order's restriction ends at revocation, got %q", rev.EndDateVisibilityRestriction)
	}
	eu := *paris
	eu.Jurisdiction = []string{"EU"}
	if sor, _ := StatementFor(&eu, "x", "x"); len(sor.TerritorialScope) != 27 || !slices.Contains(sor.TerritorialScope, "GR") {
		t.Errorf("EU scope: %v", sor.TerritorialScope)
	}
	open := *paris
	open.Expires = time.Time{}
	if sor, _ := StatementFor(&open, "x", "x"); sor.EndDateVisibilityRestriction != "" {
		t.Errorf("open-ended order has end date %q", sor.EndDateVisibilityRestriction)
	}

	// Outside the EEA the DSA has nothing to say.
	us := *paris
	us.Jurisdiction = []string{"US"}
	us.Authority.Jurisdiction = "US"
	rec.orders = append(rec.orders, &us)
	us.ID = "20250401-33333333"
	w := get(t, newServer(rec), "/v1/orders/"+us.ID+"/dsa")
	if w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), "outside the EU and the EEA") {
		t.Errorf("US order DSA export: %d %s", w.Code, w.Body)
	}
	if w := get(t, newServer(rec), "/v1/orders/none/lumen"); w.Code != http.StatusNotFound {
		t.Errorf("unknown order Lumen export: %d", w.Code)
	}
}

// fakeLumen is a Lumen database that accepts notices with the right
// token.
type fakeLumen struct {
	mu       sync.Mutex
	received [][]byte
	fail     bool
}

func (f *fakeLumen) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method != "POST" || r.URL.Path != "/notices" || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if r.Header.Get("X-Authentication-Token") != "s3cret" {
		http.Error(w, `{"documentation_link":"…"}`, http.StatusUnauthorized)
		return
	}
	if f.fail {
		http.Error(w, `{"notices":{"title":["can't be blank"]}}`, http.StatusUnprocessableEntity)
		return
	}
	b, _ := io.ReadAll(r.Body)
	f.received = append(f.received, b)
	w.Header().Set("Location", fmt.Sprintf("/notices/%d", 1000+len(f.received)))
	w.WriteHeader(http.StatusCreated)
}

func TestLumenPush(t *testing.T) {
	fake := &fakeLumen{fail: true}
	ts := httptest.NewServer(fake)
	defer ts.Close()
	state := filepath.Join(t.TempDir(), "lumen-notices.json")
	l, err := OpenLumen(LumenConfig{URL: ts.URL, Token: "s3cret", StateFile: state, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rec := sample()
	s := New(Config{PublicURL: "https://writ.isp.example", Operator: "Example ISP", Lumen: l, Logger: slog.New(slog.DiscardHandler)}, rec)

	// A refusal is reported and nothing is recorded as pushed.
	if n, err := s.PushAll(context.Background()); err == nil || n != 0 || !strings.Contains(err.Error(), "422") {
		t.Fatalf("push to a refusing Lumen: %d, %v", n, err)
	}
	fake.fail = false
	n, err := s.PushAll(context.Background())
	if err != nil || n != 3 {
		t.Fatalf("PushAll = %d, %v", n, err)
	}
	lumen := schema(t, "lumen-notice.schema.json")
	for _, b := range fake.received {
		if err := validate(t, lumen, b); err != nil {
			t.Errorf("pushed notice does not meet the schema: %v", err)
		}
		if strings.Contains(string(b), "s3cret") {
			t.Error("the token is in the notice body")
		}
	}
	want := ts.URL + "/notices/1001"
	if got := l.NoticeURL(rec.orders[0].ID); got != want {
		t.Errorf("notice URL %q, want %q", got, want)
	}
	if !strings.Contains(get(t, s, "/orders/"+rec.orders[0].ID).Body.String(), `published at <a href="`+want+`"`) {
		t.Error("the order page does not link the Lumen notice")
	}

	// Nothing is pushed twice, also after a restart.
	if n, err := s.PushAll(context.Background()); err != nil || n != 0 {
		t.Fatalf("second PushAll = %d, %v", n, err)
	}
	l2, err := OpenLumen(LumenConfig{URL: ts.URL, Token: "s3cret", StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	s2 := New(Config{PublicURL: "https://writ.isp.example", Lumen: l2}, rec)
	if n, err := s2.PushAll(context.Background()); err != nil || n != 0 || len(fake.received) != 3 {
		t.Fatalf("PushAll after restart = %d, %v (%d received)", n, err, len(fake.received))
	}
	if fi, err := os.Stat(state); err != nil || fi.Size() == 0 {
		t.Fatalf("state file: %v", err)
	}

	// A wrong token is an error naming the status.
	bad, _ := OpenLumen(LumenConfig{URL: ts.URL, Token: "wrong", StateFile: filepath.Join(t.TempDir(), "s.json")})
	if _, err := bad.Push(context.Background(), "x", NoticeFor(rec.orders[0], "x", "x")); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: %v", err)
	}
}
