package api

// Due process through the HTTP API of a real server: roles, safeguards,
// review, amendments, contests with suspension, expiry and receipts. Every
// request and response of these tests is checked against openapi.yaml,
// and the test fails if an operation the document describes was never
// exercised.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/registry"
)

// specChecker validates exchanges against openapi.yaml and remembers
// which operations were exercised.
type specChecker struct {
	doc    *openapi3.T
	router routers.Router
	mu     sync.Mutex
	seen   map[string]bool // "GET /v1/orders/{id}"
}

// Pages, the YAML document and metrics are text to the validator.
func init() {
	for _, ct := range []string{"text/html", "application/yaml", "text/plain", "text/event-stream", "text/csv"} {
		openapi3filter.RegisterBodyDecoder(ct, func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			b, err := io.ReadAll(body)
			return string(b), err
		})
	}
}

func newSpecChecker(t *testing.T, serverURL string) *specChecker {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(openAPI)
	if err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI 3 document: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: serverURL}}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &specChecker{doc: doc, router: router, seen: map[string]bool{}}
}

var (
	checkerMu sync.Mutex
	checkers  []*specChecker
)

// client sends requests as one principal (token "" for the public).
type client struct {
	t     *testing.T
	s     *stack
	spec  *specChecker
	token string
}

func (c *client) do(method, path string, body any) (int, []byte) {
	c.t.Helper()
	code, data, _ := c.doHeader(method, path, body)
	return code, data
}

// doHeader is do, with the answer's headers.
func (c *client) doHeader(method, path string, body any) (int, []byte, http.Header) {
	c.t.Helper()
	var raw []byte
	if body != nil {
		var err error
		if b, ok := body.([]byte); ok {
			raw = b
		} else if raw, err = json.Marshal(body); err != nil {
			c.t.Fatal(err)
		}
	}
	req, err := http.NewRequestWithContext(c.t.Context(), method, c.s.url+path, bytes.NewReader(raw))
	if err != nil {
		c.t.Fatal(err)
	}
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil }
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	route, params, err := c.spec.router.FindRoute(req)
	if err != nil {
		c.t.Fatalf("%s %s is not in openapi.yaml: %v", method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var data []byte
	// An event stream does not end: its status and headers are the answer.
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		if data, err = io.ReadAll(resp.Body); err != nil {
			c.t.Fatal(err)
		}
	}
	// Requests the server refuses may be invalid on purpose; those it
	// accepts must match the document, and every answer must.
	if resp.StatusCode < 400 {
		req.Body, _ = req.GetBody()
		if err := openapi3filter.ValidateRequest(c.t.Context(), in); err != nil {
			c.t.Errorf("%s %s: the server accepted a request openapi.yaml does not allow: %v", method, path, err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(data)), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(c.t.Context(), out); err != nil {
		c.t.Errorf("%s %s → %d does not match openapi.yaml: %v\n%s", method, path, resp.StatusCode, err, data)
	}
	c.spec.mu.Lock()
	c.spec.seen[method+" "+route.Path] = true
	c.spec.mu.Unlock()
	return resp.StatusCode, data, resp.Header
}

func (c *client) want(code int, method, path string, body any) []byte {
	c.t.Helper()
	got, data := c.do(method, path, body)
	if got != code {
		c.t.Fatalf("%s %s as %s: status %d, want %d: %s", method, path, c.who(), got, code, data)
	}
	return data
}

func (c *client) who() string {
	if c.token == "" {
		return "the public"
	}
	return "token " + c.token[:min(10, len(c.token))]
}

// world is a server with an operator, a reviewer, two authorities of
// France (a court and the regulator it entrusts with amendments), a
// delegated reporter of Italy, and the public.
type world struct {
	s                                   *stack
	spec                                *specChecker
	op, rev, court, regulator, sky, pub *client
}

func newWorld(t *testing.T, configure func(*Config)) *world {
	t.Helper()
	return newWorldIntake(t, order.Intake{ReviewDelegated: true, Safeguards: order.Safeguards{SharedInfra: order.DefaultSharedInfra()}}, configure)
}

func newWorldIntake(t *testing.T, in order.Intake, configure func(*Config)) *world {
	t.Helper()
	s := newStackIntake(t, in, configure)
	w := &world{s: s, spec: newSpecChecker(t, s.url)}
	w.op = &client{t: t, s: s, spec: w.spec, token: testToken}
	w.pub = &client{t: t, s: s, spec: w.spec}
	for _, a := range []order.RegisteredAuthority{
		{Authority: order.Authority{ID: "tj-paris", Name: "Tribunal judiciaire de Paris", Kind: order.Court, Jurisdiction: "FR"}, DeadlineSeconds: 1800},
		{Authority: order.Authority{ID: "arcom", Name: "ARCOM", Kind: order.Regulator, Jurisdiction: "FR"}},
		{Authority: order.Authority{ID: "sky-it", Name: "Sky Italia (reporter)", Kind: order.DelegatedReporter, Jurisdiction: "IT"}},
	} {
		w.op.want(http.StatusOK, "POST", "/v1/authorities", a)
	}
	mk := func(id, role, authority string) *client {
		data := w.op.want(http.StatusCreated, "POST", "/v1/principals", map[string]string{"id": id, "role": role, "authority": authority})
		var r struct{ Token string }
		json.Unmarshal(data, &r)
		if !strings.HasPrefix(r.Token, "writ_") {
			t.Fatalf("token %q", r.Token)
		}
		return &client{t: t, s: s, spec: w.spec, token: r.Token}
	}
	w.rev = mk("rev-alice", "reviewer", "")
	w.court = mk("paris-clerk", "authority", "tj-paris")
	w.regulator = mk("arcom-agent", "authority", "arcom")
	w.sky = mk("sky-agent", "authority", "sky-it")
	checkerMu.Lock()
	checkers = append(checkers, w.spec)
	checkerMu.Unlock()
	return w
}

func courtOrder(targets ...map[string]any) map[string]any {
	now := time.Now().UTC()
	return map[string]any{
		"authority":            map[string]any{"id": "tj-paris"},
		"legal_basis":          map[string]any{"case": "Canal+ v. Cloudflare, 28 March 2025", "statute": "Code du sport L.333-10"},
		"jurisdiction":         []string{"FR"},
		"effective":            now.Add(-time.Minute).Format(time.RFC3339),
		"expires":              now.Add(24 * time.Hour).Format(time.RFC3339),
		"targets":              targets,
		"amending_authorities": []string{"arcom"},
	}
}

func fqdn(name string) map[string]any { return map[string]any{"fqdn": name, "subdomains": true} }

func (w *world) blocked(name string) bool {
	return w.s.reg.Policy().Load().MatchName(name, jurisdiction.MustParse("FR")) != nil
}

func orderOf(t *testing.T, data []byte) orderResp { return decode[orderResp](t, data) }

func targetState(o orderResp, s string) order.TargetState {
	t, ok := o.Order.FindTarget(s)
	if !ok {
		return ""
	}
	return t.State
}

func TestAuthoritySubmitsOnlyItsOwnWithinItsJurisdiction(t *testing.T) {
	w := newWorld(t, nil)
	o := orderOf(t, w.court.want(http.StatusCreated, "POST", "/v1/orders", courtOrder(fqdn("motogpstream.me"))))
	if o.Status != order.StatusActive || o.Authority.Name != "Tribunal judiciaire de Paris" || !w.blocked("www.motogpstream.me") {
		t.Fatalf("court order: %+v", o)
	}
	// The authority is cited as registered, not as self-described.
	m := courtOrder(fqdn("a.example"))
	m["authority"] = map[string]any{"id": "tj-paris", "name": "Tribunal de Bobigny"}
	w.court.want(http.StatusBadRequest, "POST", "/v1/orders", m)
	// Not for another authority, not outside its jurisdiction.
	m = courtOrder(fqdn("b.example"))
	m["authority"] = map[string]any{"id": "arcom"}
	w.court.want(http.StatusForbidden, "POST", "/v1/orders", m)
	m = courtOrder(fqdn("c.example"))
	m["jurisdiction"] = []string{"FR", "IT"}
	w.court.want(http.StatusForbidden, "POST", "/v1/orders", m)
	// The same order entered by an operator is held, not refused: a human
	// looks at why a French court orders in Italy.
	o = orderOf(t, w.op.want(http.StatusCreated, "POST", "/v1/orders", m))
	if o.Status != order.StatusHeld || !strings.Contains(o.Targets[0].HoldReason, "outside the jurisdiction") {
		t.Fatalf("operator-entered order outside jurisdiction: %+v", o)
	}
	// Reviewers, the public: not at all.
	w.rev.want(http.StatusForbidden, "POST", "/v1/orders", courtOrder(fqdn("d.example")))
	w.pub.want(http.StatusUnauthorized, "POST", "/v1/orders", courtOrder(fqdn("d.example")))
	// Nothing refused left a trace.
	for _, n := range []string{"a.example", "b.example", "c.example", "d.example"} {
		if w.blocked(n) {
			t.Errorf("%s blocked by a refused or held order", n)
		}
	}
}

func TestOrdersNeedAnExpiry(t *testing.T) {
	w := newWorld(t, nil)
	m := courtOrder(fqdn("motogpstream.me"))
	delete(m, "expires")
	data := w.court.want(http.StatusBadRequest, "POST", "/v1/orders", m)
	if !strings.Contains(string(data), `"field": "expires"`) {
		t.Fatalf("error does not name expires: %s", data)
	}
}

func TestDelegatedReporterOrdersWaitForReview(t *testing.T) {
	w := newWorld(t, nil)
	now := time.Now().UTC()
	o := orderOf(t, w.sky.want(http.StatusCreated, "POST", "/v1/orders", map[string]any{
		"authority":    map[string]any{"id": "sky-it"},
		"legal_basis":  map[string]any{"statute": "Legge 93/2023", "case": "ticket 0f3a"},
		"jurisdiction": []string{"IT"},
		"expires":      now.Add(time.Hour).Format(time.RFC3339),
		"targets":      []map[string]any{{"fqdn": "calcio-live.example"}},
	}))
	if o.Status != order.StatusHeld || w.s.reg.Policy().Load().MatchName("calcio-live.example", jurisdiction.MustParse("IT")) != nil {
		t.Fatalf("delegated reporter's order enforced without review: %+v", o)
	}
	// The reporter cannot release its own order; the reviewer can.
	w.sky.want(http.StatusForbidden, "POST", "/v1/orders/"+o.ID+"/release", map[string]string{"target": "calcio-live.example", "reason": "mine"})
	w.rev.want(http.StatusBadRequest, "POST", "/v1/orders/"+o.ID+"/release", map[string]string{"target": "calcio-live.example"})
	o = orderOf(t, w.rev.want(http.StatusOK, "POST", "/v1/orders/"+o.ID+"/release", map[string]string{"target": "calcio-live.example", "reason": "checked: serves only pirated streams"}))
	if o.Status != order.StatusActive || w.s.reg.Policy().Load().MatchName("calcio-live.example", jurisdiction.MustParse("IT")) == nil {
		t.Fatalf("released order not enforced: %+v", o)
	}
	// Releasing twice is a conflict.
	w.rev.want(http.StatusConflict, "POST", "/v1/orders/"+o.ID+"/release", map[string]string{"target": "calcio-live.example", "reason": "again"})
}

func TestSafeguardsHoldUntilReleased(t *testing.T) {
	w := newWorld(t, nil)
	o := orderOf(t, w.court.want(http.StatusCreated, "POST", "/v1/orders", courtOrder(
		fqdn("motogpstream.me"),
		map[string]any{"ip": "104.16.1.1"},   // CDN range
		map[string]any{"ip": "45.12.0.0/16"}, // wider than /24
		map[string]any{"ip": "203.0.113.9"},  // fine
	)))
	snap := w.s.reg.Policy().Load()
	fr := jurisdiction.MustParse("FR")
	for _, tc := range []struct {
		target, reason string
		addr           string
	}{{"104.16.1.1", "shared infrastructure", "104.16.1.1"}, {"45.12.0.0/16", "wider than /24", "45.12.3.4"}} {
		tg, _ := o.Order.FindTarget(tc.target)
		if tg.State != order.TargetHeld || !strings.Contains(tg.HoldReason, tc.reason) {
			t.Errorf("%s: %+v", tc.target, tg)
		}
		if snap.MatchAddr(netip.MustParseAddr(tc.addr), fr) != nil {
			t.Errorf("held %s is enforced", tc.target)
		}
	}
	if snap.MatchAddr(netip.MustParseAddr("203.0.113.9"), fr) == nil {
		t.Error("unheld address not enforced")
	}
	// Released, it blocks; rejected, it never will.
	w.rev.want(http.StatusOK, "POST", "/v1/orders/"+o.ID+"/release", map[string]string{"target": "45.12.0.0/16", "reason": "the whole /16 hosts the site"})
	o = orderOf(t, w.rev.want(http.StatusOK, "POST", "/v1/orders/"+o.ID+"/reject", map[string]string{"target": "104.16.1.1", "reason": "Cloudflare anycast: thousands of sites"}))
	snap = w.s.reg.Policy().Load()
	if snap.MatchAddr(netip.MustParseAddr("45.12.3.4"), fr) == nil || snap.MatchAddr(netip.MustParseAddr("104.16.1.1"), fr) != nil {
		t.Fatal("release or reject not applied")
	}
	if targetState(o, "104.16.1.1") != order.TargetRejected {
		t.Fatalf("rejected target: %+v", o.Targets)
	}
	w.rev.want(http.StatusConflict, "POST", "/v1/orders/"+o.ID+"/release", map[string]string{"target": "104.16.1.1", "reason": "changed my mind"})
	// A target found risky after the fact is held again, and blocks no more.
	w.court.want(http.StatusForbidden, "POST", "/v1/orders/"+o.ID+"/hold", map[string]string{"target": "203.0.113.9", "reason": "x"})
	o = orderOf(t, w.op.want(http.StatusOK, "POST", "/v1/orders/"+o.ID+"/hold", map[string]string{"target": "203.0.113.9", "reason": "passive DNS shows 40 other sites"}))
	if targetState(o, "203.0.113.9") != order.TargetHeld || w.s.reg.Policy().Load().MatchAddr(netip.MustParseAddr("203.0.113.9"), fr) != nil {
		t.Fatalf("hold not applied: %+v", o.Targets)
	}
	w.op.want(http.StatusConflict, "POST", "/v1/orders/"+o.ID+"/hold", map[string]string{"target": "203.0.113.9", "reason": "again"})
	w.rev.want(http.StatusNotFound, "POST", "/v1/orders/"+o.ID+"/release", map[string]string{"target": "nothere.example", "reason": "x"})
}

func TestAllowListAndSharedAddressesAreHeld(t *testing.T) {
	pd, err := order.ParsePassiveDNS(strings.NewReader("bakery.example 203.0.113.7\nschool.example 203.0.113.7\nmotogpstream.me 203.0.113.7\n"))
	if err != nil {
		t.Fatal(err)
	}
	w := newWorldIntake(t, order.Intake{Safeguards: order.Safeguards{AllowNames: []string{"www.elysee.fr"}, PassiveDNS: pd}}, nil)
	o := orderOf(t, w.court.want(http.StatusCreated, "POST", "/v1/orders", courtOrder(
		fqdn("elysee.fr"), fqdn("motogpstream.me"), map[string]any{"ip": "203.0.113.7"})))
	for target, reason := range map[string]string{"elysee.fr": "allow-list", "203.0.113.7": "2 other names resolve into it"} {
		tg, _ := o.Order.FindTarget(target)
		if tg.State != order.TargetHeld || !strings.Contains(tg.HoldReason, reason) {
			t.Errorf("%s: %+v", target, tg)
		}
	}
	fr := jurisdiction.MustParse("FR")
	snap := w.s.reg.Policy().Load()
	if snap.MatchName("www.elysee.fr", fr) != nil || snap.MatchAddr(netip.MustParseAddr("203.0.113.7"), fr) != nil || snap.MatchName("motogpstream.me", fr) == nil {
		t.Fatal("held targets enforced, or the rest not")
	}
	w.rev.want(http.StatusOK, "POST", "/v1/orders/"+o.ID+"/release", map[string]string{"target": "203.0.113.7", "reason": "the other names are the same operator's"})
	if w.s.reg.Policy().Load().MatchAddr(netip.MustParseAddr("203.0.113.7"), fr) == nil {
		t.Fatal("released address not enforced")
	}
}

func TestAmendments(t *testing.T) {
	w := newWorld(t, nil)
	o := orderOf(t, w.court.want(http.StatusCreated, "POST", "/v1/orders", courtOrder(fqdn("motogpstream.me"), fqdn("livetv821.me"))))
	// The regulator the court named adds a mirror and removes a dead site.
	o = orderOf(t, w.regulator.want(http.StatusOK, "POST", "/v1/orders/"+o.ID+"/amendments", map[string]any{
		"add":    []map[string]any{fqdn("motogpstream2.me"), {"ip": "1.1.1.1"}},
		"remove": []map[string]any{{"fqdn": "livetv821.me"}},
		"note":   "ARCOM notification 2025-014",
	}))
	if !w.blocked("www.motogpstream2.me") || w.blocked("livetv821.me") || !w.blocked("motogpstream.me") {
		t.Fatal("amendment not applied to the policy")
	}
	if targetState(o, "1.1.1.1") != order.TargetHeld || targetState(o, "livetv821.me") != order.TargetRemoved || o.Amendments != 1 {
		t.Fatalf("targets after amendment: %+v", o.Targets)
	}
	full := orderOf(t, w.pub.want(http.StatusOK, "GET", "/v1/orders/"+o.ID, nil))
	var amended *order.Event
	for i, e := range full.Events {
		if e.Kind == order.EventAmended {
			amended = &full.Events[i]
		}
	}
	if amended == nil || amended.Principal != "authority:arcom-agent" || !strings.Contains(amended.Detail, "motogpstream2.me") || !strings.Contains(amended.Detail, "ARCOM notification 2025-014") {
		t.Fatalf("amendment not in the history: %+v", full.Events)
	}
	// Others may not amend; bad targets are refused whole.
	w.sky.want(http.StatusForbidden, "POST", "/v1/orders/"+o.ID+"/amendments", map[string]any{"add": []map[string]any{fqdn("x.example")}})
	w.rev.want(http.StatusForbidden, "POST", "/v1/orders/"+o.ID+"/amendments", map[string]any{"add": []map[string]any{fqdn("x.example")}})
	w.regulator.want(http.StatusBadRequest, "POST", "/v1/orders/"+o.ID+"/amendments", map[string]any{"add": []map[string]any{fqdn("y.example"), fqdn("co.uk")}})
	if w.blocked("y.example") {
		t.Fatal("half an amendment applied")
	}
	w.regulator.want(http.StatusNotFound, "POST", "/v1/orders/20990101-00000000/amendments", map[string]any{"add": []map[string]any{fqdn("x.example")}})
	// Revoked orders are closed to amendment.
	w.court.want(http.StatusOK, "POST", "/v1/orders/"+o.ID+"/revoke", map[string]string{"reason": "season over"})
	w.regulator.want(http.StatusConflict, "POST", "/v1/orders/"+o.ID+"/amendments", map[string]any{"add": []map[string]any{fqdn("x.example")}})
	// And the regulator, an amender, may not revoke the court's order.
	o2 := orderOf(t, w.court.want(http.StatusCreated, "POST", "/v1/orders", courtOrder(fqdn("tarjetarojaenvivo.lat"))))
	w.regulator.want(http.StatusForbidden, "POST", "/v1/orders/"+o2.ID+"/revoke", map[string]string{"reason": "not mine"})
}

func TestContestsWithSuspension(t *testing.T) {
	w := newWorld(t, nil)
	o := orderOf(t, w.court.want(http.StatusCreated, "POST", "/v1/orders", courtOrder(fqdn("motogpstream.me"), fqdn("bakery.example"), fqdn("school.example"))))
	contest := func(target, grounds string) order.Contest {
		data := w.pub.want(http.StatusCreated, "POST", "/v1/orders/"+o.ID+"/contests", map[string]any{
			"target": target, "grounds": grounds, "contact": map[string]string{"name": "Marie Dupont", "email": "marie@bakery.example"}})
		return decode[order.Contest](t, data)
	}
	c1 := contest("bakery.example", "This is my bakery's site; it has never streamed anything.")
	c2 := contest("school.example", "A school's site, listed by mistake in the annex.")
	// The public sees the grounds, not who filed them; reviewers see both.
	pub := string(w.pub.want(http.StatusOK, "GET", fmt.Sprintf("/v1/contests/%d", c1.ID), nil))
	rev := string(w.rev.want(http.StatusOK, "GET", fmt.Sprintf("/v1/contests/%d", c1.ID), nil))
	if strings.Contains(pub, "marie@bakery.example") || !strings.Contains(pub, "never streamed") || !strings.Contains(rev, "marie@bakery.example") {
		t.Fatalf("contact exposure wrong:\npublic %s\nreviewer %s", pub, rev)
	}
	hist := string(w.pub.want(http.StatusOK, "GET", "/v1/orders/"+o.ID, nil))
	if strings.Contains(hist, "marie") || !strings.Contains(hist, "contested") {
		t.Fatalf("history: %s", hist)
	}
	// Suspended while examined: it stops blocking at once.
	w.court.want(http.StatusForbidden, "POST", "/v1/orders/"+o.ID+"/suspend", map[string]string{"target": "bakery.example", "reason": "x"})
	w.op.want(http.StatusOK, "POST", "/v1/orders/"+o.ID+"/suspend", map[string]string{"target": "bakery.example", "reason": fmt.Sprintf("contest %d under examination", c1.ID)})
	w.op.want(http.StatusOK, "POST", "/v1/orders/"+o.ID+"/suspend", map[string]string{"target": "school.example", "reason": fmt.Sprintf("contest %d under examination", c2.ID)})
	if w.blocked("bakery.example") || w.blocked("school.example") || !w.blocked("motogpstream.me") {
		t.Fatal("suspension not applied")
	}
	w.op.want(http.StatusConflict, "POST", "/v1/orders/"+o.ID+"/suspend", map[string]string{"target": "bakery.example", "reason": "again"})
	// Upheld: the target is lifted for good. Dismissed: the suspension ends.
	w.court.want(http.StatusForbidden, "POST", fmt.Sprintf("/v1/contests/%d/decision", c1.ID), map[string]string{"outcome": "upheld", "reason": "x"})
	dec := decode[order.Contest](t, w.rev.want(http.StatusOK, "POST", fmt.Sprintf("/v1/contests/%d/decision", c1.ID),
		map[string]string{"outcome": "upheld", "reason": "an ordinary bakery, wrongly listed"}))
	if dec.Status != order.ContestUpheld || dec.Decided == nil {
		t.Fatalf("decision %+v", dec)
	}
	w.rev.want(http.StatusOK, "POST", fmt.Sprintf("/v1/contests/%d/decision", c2.ID), map[string]string{"outcome": "dismissed", "reason": "the site relays the streams"})
	w.rev.want(http.StatusConflict, "POST", fmt.Sprintf("/v1/contests/%d/decision", c2.ID), map[string]string{"outcome": "upheld", "reason": "again"})
	w.rev.want(http.StatusBadRequest, "POST", fmt.Sprintf("/v1/contests/%d/decision", c1.ID), map[string]string{"outcome": "maybe", "reason": "x"})
	o = orderOf(t, w.pub.want(http.StatusOK, "GET", "/v1/orders/"+o.ID, nil))
	if targetState(o, "bakery.example") != order.TargetRemoved || targetState(o, "school.example") != order.TargetActive {
		t.Fatalf("after decisions: %+v", o.Targets)
	}
	if w.blocked("bakery.example") || !w.blocked("school.example") {
		t.Fatal("decisions not applied to the policy")
	}
	list := decode[struct{ Contests []order.Contest }](t, w.pub.want(http.StatusOK, "GET", "/v1/orders/"+o.ID+"/contests", nil))
	if len(list.Contests) != 2 || list.Contests[0].Status != order.ContestUpheld {
		t.Fatalf("contests %+v", list.Contests)
	}
	pending := decode[struct{ Contests []order.Contest }](t, w.pub.want(http.StatusOK, "GET", "/v1/contests?status=pending", nil))
	if len(pending.Contests) != 0 {
		t.Fatalf("pending %+v", pending.Contests)
	}
	// A whole order can be suspended and reinstated.
	w.rev.want(http.StatusOK, "POST", "/v1/orders/"+o.ID+"/suspend", map[string]string{"reason": "appeal lodged"})
	if w.blocked("motogpstream.me") {
		t.Fatal("suspended order enforced")
	}
	w.op.want(http.StatusOK, "POST", "/v1/orders/"+o.ID+"/reinstate", map[string]string{"reason": "appeal dismissed"})
	if !w.blocked("motogpstream.me") {
		t.Fatal("reinstated order not enforced")
	}
	// Bad contests are refused with reasons.
	data := w.pub.want(http.StatusBadRequest, "POST", "/v1/orders/"+o.ID+"/contests", map[string]any{"target": "nothere.example", "grounds": "short", "contact": map[string]string{"name": "", "email": "nope"}})
	for _, f := range []string{"grounds", "contact.name", "contact.email", "target"} {
		if !strings.Contains(string(data), `"field": "`+f+`"`) {
			t.Errorf("contest error does not name %s: %s", f, data)
		}
	}
}

func TestContestsAreRateLimited(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.ContestsPerHour = 2 })
	o := orderOf(t, w.court.want(http.StatusCreated, "POST", "/v1/orders", courtOrder(fqdn("motogpstream.me"))))
	body := map[string]any{"grounds": "This order blocks my legitimate site.", "contact": map[string]string{"name": "A", "email": "a@example.org"}}
	w.pub.want(http.StatusCreated, "POST", "/v1/orders/"+o.ID+"/contests", body)
	w.pub.want(http.StatusCreated, "POST", "/v1/orders/"+o.ID+"/contests", body)
	w.pub.want(http.StatusTooManyRequests, "POST", "/v1/orders/"+o.ID+"/contests", body)
}

func TestReceiptsAndDeadlines(t *testing.T) {
	w := newWorld(t, nil)
	o := orderOf(t, w.court.want(http.StatusCreated, "POST", "/v1/orders", courtOrder(fqdn("motogpstream.me"))))
	version := w.s.reg.Policy().Load().Version()
	// A prompt enforcement point, a late one, and one that never reports.
	w.op.want(http.StatusAccepted, "POST", "/v1/receipts", map[string]any{"point": "dns", "version": version})
	w.op.want(http.StatusAccepted, "POST", "/v1/receipts", map[string]any{"point": "rpz:192.0.2.53", "version": version,
		"at": o.Received.Add(45 * time.Minute).Format(time.RFC3339Nano)})
	w.op.want(http.StatusAccepted, "POST", "/v1/receipts", map[string]any{"point": "gate:lyon", "version": 1})
	// A point that serves only Italy does not answer for a French order.
	w.op.want(http.StatusAccepted, "POST", "/v1/receipts", map[string]any{"point": "rpz:192.0.2.53/it.rpz.writ", "version": version, "scope": "it"})
	w.op.want(http.StatusBadRequest, "POST", "/v1/receipts", map[string]any{"point": "rpz:x", "version": version, "scope": "XX"})
	w.op.want(http.StatusBadRequest, "POST", "/v1/receipts", map[string]any{"point": "gate:lyon", "version": version + 1})
	w.court.want(http.StatusForbidden, "POST", "/v1/receipts", map[string]any{"point": "dns", "version": version})
	w.op.want(http.StatusBadRequest, "POST", "/v1/receipts", map[string]any{"point": "", "version": version})
	rep := decode[registry.OrderReceipts](t, w.pub.want(http.StatusOK, "GET", "/v1/orders/"+o.ID+"/receipts", nil))
	if !rep.InForce || rep.DeadlineSeconds != 1800 || len(rep.Points) != 3 {
		t.Fatalf("receipts %+v", rep)
	}
	by := map[string]registry.PointReceipt{}
	for _, p := range rep.Points {
		by[p.Point] = p
	}
	if p := by["dns"]; !p.Met || p.Pending || p.Applied == nil {
		t.Errorf("dns: %+v", p)
	}
	if p := by["rpz:192.0.2.53"]; p.Met || p.Pending || p.Seconds < 2700 {
		t.Errorf("late rpz: %+v", p)
	}
	if p := by["gate:lyon"]; !p.Pending || p.Met || p.Overdue {
		t.Errorf("gate that applied only older versions: %+v", p)
	}
	if _, ok := by["rpz:192.0.2.53/it.rpz.writ"]; ok {
		t.Errorf("an Italian zone's receipt is listed for a French order")
	}
	points := decode[struct {
		Points []struct{ Point, Scope string }
	}](t, w.pub.want(http.StatusOK, "GET", "/v1/points", nil))
	if len(points.Points) != 4 || points.Points[3].Scope != "IT" {
		t.Errorf("points %+v", points)
	}
	// The Lyon gate is decommissioned: the order no longer waits for it.
	w.court.want(http.StatusForbidden, "POST", "/v1/points/retire", map[string]string{"point": "gate:lyon"})
	w.op.want(http.StatusBadRequest, "POST", "/v1/points/retire", map[string]string{"point": " "})
	w.op.want(http.StatusBadRequest, "POST", "/v1/points/retire", map[string]string{"name": "gate:lyon"})
	w.op.want(http.StatusNotFound, "POST", "/v1/points/retire", map[string]string{"point": "gate:nowhere"})
	w.op.want(http.StatusOK, "POST", "/v1/points/retire", map[string]string{"point": "gate:lyon"})
	w.op.want(http.StatusNotFound, "POST", "/v1/points/retire", map[string]string{"point": "gate:lyon"})
	rep = decode[registry.OrderReceipts](t, w.pub.want(http.StatusOK, "GET", "/v1/orders/"+o.ID+"/receipts", nil))
	if len(rep.Points) != 2 {
		t.Errorf("receipts after retiring gate:lyon: %+v", rep.Points)
	}
	after := decode[struct {
		Points  []struct{ Point, Scope string }
		Retired []policy.Retirement
	}](t, w.pub.want(http.StatusOK, "GET", "/v1/points", nil))
	if len(after.Points) != 3 || slices.ContainsFunc(after.Points, func(p struct{ Point, Scope string }) bool { return p.Point == "gate:lyon" }) {
		t.Errorf("points after retiring gate:lyon: %+v", after.Points)
	}
	if len(after.Retired) != 1 || after.Retired[0].Point != "gate:lyon" || after.Retired[0].By != "operator" || after.Retired[0].At.IsZero() {
		t.Errorf("retired points: %+v", after.Retired)
	}
	// A held order has nothing to receipt.
	m := courtOrder(map[string]any{"ip": "1.1.1.1"})
	held := orderOf(t, w.court.want(http.StatusCreated, "POST", "/v1/orders", m))
	rep = decode[registry.OrderReceipts](t, w.pub.want(http.StatusOK, "GET", "/v1/orders/"+held.ID+"/receipts", nil))
	if rep.InForce || len(rep.Points) != 0 {
		t.Errorf("held order receipts %+v", rep)
	}
	w.pub.want(http.StatusNotFound, "GET", "/v1/orders/20990101-00000000/receipts", nil)
}

func TestPrincipals(t *testing.T) {
	w := newWorld(t, nil)
	list := string(w.op.want(http.StatusOK, "GET", "/v1/principals", nil))
	if strings.Contains(list, "token") || !strings.Contains(list, "rev-alice") {
		t.Fatalf("principals: %s", list)
	}
	w.rev.want(http.StatusForbidden, "GET", "/v1/principals", nil)
	w.pub.want(http.StatusUnauthorized, "GET", "/v1/principals", nil)
	w.op.want(http.StatusConflict, "POST", "/v1/principals", map[string]string{"id": "rev-alice", "role": "reviewer"})
	w.op.want(http.StatusBadRequest, "POST", "/v1/principals", map[string]string{"id": "x", "role": "king"})
	w.op.want(http.StatusNotFound, "POST", "/v1/principals", map[string]string{"id": "y", "role": "authority", "authority": "nobody"})
	// Disabled credentials stop working at once, and can be restored.
	w.op.want(http.StatusOK, "POST", "/v1/principals/rev-alice/disable", nil)
	w.rev.want(http.StatusUnauthorized, "POST", "/v1/orders/20990101-00000000/release", map[string]string{"target": "x.example", "reason": "r"})
	w.op.want(http.StatusOK, "POST", "/v1/principals/rev-alice/enable", nil)
	w.rev.want(http.StatusNotFound, "POST", "/v1/orders/20990101-00000000/release", map[string]string{"target": "x.example", "reason": "r"})
	w.op.want(http.StatusNotFound, "POST", "/v1/principals/nobody/disable", nil)
	auths := string(w.pub.want(http.StatusOK, "GET", "/v1/authorities", nil))
	if !strings.Contains(auths, "arcom") || !strings.Contains(auths, `"deadline_seconds": 1800`) {
		t.Fatalf("authorities %s", auths)
	}
	w.rev.want(http.StatusForbidden, "POST", "/v1/authorities", map[string]any{"id": "x", "name": "X", "kind": "court", "jurisdiction": "FR"})
	w.op.want(http.StatusBadRequest, "POST", "/v1/authorities", map[string]any{"id": "x", "name": "X", "kind": "judge", "jurisdiction": "XX"})
}

func TestEventStream(t *testing.T) {
	w := newWorld(t, nil)
	o := orderOf(t, w.court.want(http.StatusCreated, "POST", "/v1/orders", courtOrder(fqdn("motogpstream.me"))))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", w.s.url+"/v1/events?after=0", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	w.spec.mu.Lock()
	w.spec.seen["GET /v1/events"] = true
	w.spec.mu.Unlock()
	sc := bufio.NewScanner(resp.Body)
	next := func() (id, kind string, e order.Event) {
		t.Helper()
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				id = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				kind = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &e)
			case line == "" && kind != "":
				return id, kind, e
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return
	}
	if _, kind, e := next(); kind != "received" || e.OrderID != o.ID {
		t.Fatalf("first event %s %+v", kind, e)
	}
	if _, kind, _ := next(); kind != "activated" {
		t.Fatalf("second event %s", kind)
	}
	// A change made now arrives on the open stream.
	w.court.want(http.StatusOK, "POST", "/v1/orders/"+o.ID+"/revoke", map[string]string{"reason": "judgment overturned"})
	id, kind, e := next()
	if kind != "revoked" || e.Detail != "judgment overturned" || id != fmt.Sprint(e.Seq) {
		t.Fatalf("live event %s %s %+v", id, kind, e)
	}
	w.pub.want(http.StatusBadRequest, "GET", "/v1/events?after=x", nil)
}

// TestMain checks, after a full run of the package's tests, that they
// exercised every operation openapi.yaml documents.
func TestMain(m *testing.M) {
	code := m.Run()
	if code != 0 || !fullRun() {
		os.Exit(code)
	}
	seen := map[string]bool{}
	var doc *openapi3.T
	for _, c := range checkers {
		doc = c.doc
		for k := range c.seen {
			seen[k] = true
		}
	}
	if doc == nil {
		fmt.Fprintln(os.Stderr, "no request was checked against openapi.yaml")
		os.Exit(1)
	}
	for path, item := range doc.Paths.Map() {
		if ServedElsewhere(path) {
			continue
		}
		for method := range item.Operations() {
			if !seen[method+" "+path] {
				fmt.Fprintf(os.Stderr, "FAIL: %s %s is documented in openapi.yaml but no test exercised it\n", method, path)
				code = 1
			}
		}
	}
	os.Exit(code)
}

// fullRun reports whether every test ran: no -run or -skip filter.
func fullRun() bool {
	for _, name := range []string{"test.run", "test.skip"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return true
}

func TestReadOperations(t *testing.T) {
	w := newWorld(t, nil)
	o := orderOf(t, w.op.want(http.StatusCreated, "POST", "/v1/orders", courtOrder(fqdn("motogpstream.me"))))
	w.pub.want(http.StatusOK, "GET", "/v1/orders", nil)
	w.pub.want(http.StatusOK, "GET", "/v1/orders?status=active", nil)
	w.pub.want(http.StatusOK, "GET", "/v1/orders/"+o.ID, nil)
	w.pub.want(http.StatusOK, "GET", "/v1/check?name=motogpstream.me&scope=FR", nil)
	w.pub.want(http.StatusOK, "GET", "/v1/openapi.yaml", nil)
	spec := w.pub.want(http.StatusOK, "GET", "/v1/openapi.json", nil)
	var asJSON map[string]any
	if err := json.Unmarshal(spec, &asJSON); err != nil || asJSON["openapi"] == nil || asJSON["paths"] == nil {
		t.Fatalf("openapi.json: %v", err)
	}
	w.pub.want(http.StatusOK, "GET", "/healthz", nil)
	w.pub.want(http.StatusOK, "GET", "/metrics", nil)
	w.pub.want(http.StatusNotFound, "GET", "/v1/contests/12345", nil)
	w.pub.want(http.StatusBadRequest, "GET", "/v1/contests?status=lost", nil)
}
