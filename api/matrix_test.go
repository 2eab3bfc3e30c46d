package api

// The authorisation matrix: every operation openapi.yaml documents, the
// API's own and those the ledger and the public record serve beside it,
// tried by every kind of caller, each cell with the status it must get.
// An operation added to the document without a row here fails the test.

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
)

// caller is a kind of principal the matrix tries.
type caller string

const (
	anonymous    caller = "anonymous"     // no credentials
	badToken     caller = "bad-token"     // a token no credentials hold
	disabledOp   caller = "disabled"      // an operator's credentials, disabled
	ownAuthority caller = "own-authority" // the order's authority (Paris court, FR)
	amender      caller = "amender"       // an authority the order names as amender (ARCOM, FR)
	sameCountry  caller = "same-country"  // another authority of the order's jurisdiction (Lyon court, FR)
	foreign      caller = "foreign"       // an authority of another jurisdiction (AGCOM, IT)
	reviewer     caller = "reviewer"
	operatorRole caller = "operator"
)

var callers = []caller{anonymous, badToken, disabledOp, ownAuthority, amender, sameCountry, foreign, reviewer, operatorRole}

// fixture is what a request of the matrix acts on: an order of the Paris
// court for France naming ARCOM as amender, with an active target
// (a.example), a suspended one (b.example) and a held one (1.1.1.1:
// shared infrastructure); a pending contest against it; and a reviewer's
// credentials to disable or enable.
type fixture struct {
	order     string
	contest   int64
	principal string
	version   uint64
	fresh     string // an unused principal id
	point     string // an enforcement point in service
}

var fixtureSeq atomic.Int64

func (n *node) fixture(t *testing.T) fixture {
	t.Helper()
	ctx := t.Context()
	o := n.submit(t, fqdn("a.example"), fqdn("b.example"), map[string]any{"ip": "1.1.1.1"})
	if _, err := n.reg.Suspend(ctx, o.ID, "b.example", "contest under examination", operator); err != nil {
		t.Fatal(err)
	}
	c, err := n.reg.FileContest(ctx, o.ID, &order.ContestSubmission{Target: "a.example", Grounds: "This is a bakery's site, not a streaming one.",
		Contact: order.ContestFiler{Name: "Marie Dupont", Email: "marie@bakery.example"}}, access.Anonymous)
	if err != nil {
		t.Fatal(err)
	}
	seq := fixtureSeq.Add(1)
	id := fmt.Sprintf("victim-%d", seq)
	n.principal(t, id, access.Reviewer, "")
	point := fmt.Sprintf("gate:matrix-%d", seq)
	if err := n.reg.Receipt(ctx, policy.Receipt{Point: point, Version: n.reg.Policy().Load().Version()}); err != nil {
		t.Fatal(err)
	}
	return fixture{order: o.ID, contest: c.ID, principal: id, version: n.reg.Policy().Load().Version(), fresh: fmt.Sprintf("new-%d", seq), point: point}
}

// request is one request of a row, on a fixture.
type request struct {
	path string
	body any
}

// row is one operation: the request, whether it needs a fixture of its
// own in each cell (it changes what it acts on), and the status each
// caller must get.
type row struct {
	op      string // "POST /v1/orders/{id}/revoke", as in openapi.yaml
	changes bool
	req     func(fx fixture) request
	want    map[caller]int
}

// readable: anyone reads; credentials that fail are refused.
func readable() map[caller]int {
	m := map[caller]int{}
	for _, c := range callers {
		m[c] = http.StatusOK
	}
	m[badToken], m[disabledOp] = http.StatusUnauthorized, http.StatusUnauthorized
	return m
}

// only: the callers named get success, other principals 403, the
// anonymous and failed credentials 401.
func only(success int, allowed ...caller) map[caller]int {
	m := map[caller]int{}
	for _, c := range callers {
		switch {
		case slices.Contains(allowed, c):
			m[c] = success
		case c == anonymous || c == badToken || c == disabledOp:
			m[c] = http.StatusUnauthorized
		default:
			m[c] = http.StatusForbidden
		}
	}
	return m
}

func get(path string) func(fixture) request {
	return func(fixture) request { return request{path: path} }
}

func matrixRows() []row {
	reason := func(target string) map[string]string {
		return map[string]string{"target": target, "reason": "the matrix says so"}
	}
	contest := map[string]any{"target": "a.example", "grounds": "This is a school's site, listed by mistake.", "contact": map[string]string{"name": "A", "email": "a@example.org"}}
	withOrder := func(suffix string, body func(fx fixture) any) func(fixture) request {
		return func(fx fixture) request { return request{"/v1/orders/" + fx.order + suffix, body(fx)} }
	}
	none := func(fixture) any { return nil }
	return []row{
		{"POST /v1/orders", false, func(fixture) request { return request{"/v1/orders", courtOrder(fqdn("new.example"))} },
			only(http.StatusCreated, ownAuthority, operatorRole)},
		{"GET /v1/orders", false, get("/v1/orders?status=active"), readable()},
		{"GET /v1/orders/{id}", false, withOrder("", none), readable()},
		{"POST /v1/orders/{id}/revoke", true, withOrder("/revoke", func(fixture) any { return map[string]string{"reason": "season over"} }),
			only(http.StatusOK, ownAuthority, operatorRole)},
		{"POST /v1/orders/{id}/amendments", true, withOrder("/amendments", func(fixture) any { return map[string]any{"add": []any{fqdn("mirror.example")}} }),
			only(http.StatusOK, ownAuthority, amender, operatorRole)},
		{"POST /v1/orders/{id}/hold", true, withOrder("/hold", func(fixture) any { return reason("a.example") }),
			only(http.StatusOK, reviewer, operatorRole)},
		{"POST /v1/orders/{id}/release", true, withOrder("/release", func(fixture) any { return reason("1.1.1.1") }),
			only(http.StatusOK, reviewer)},
		{"POST /v1/orders/{id}/reject", true, withOrder("/reject", func(fixture) any { return reason("1.1.1.1") }),
			only(http.StatusOK, reviewer)},
		{"POST /v1/orders/{id}/suspend", true, withOrder("/suspend", func(fixture) any { return reason("a.example") }),
			only(http.StatusOK, reviewer, operatorRole)},
		{"POST /v1/orders/{id}/reinstate", true, withOrder("/reinstate", func(fixture) any { return reason("b.example") }),
			only(http.StatusOK, reviewer, operatorRole)},
		{"POST /v1/orders/{id}/contests", false, withOrder("/contests", func(fixture) any { return contest }),
			only(http.StatusCreated, anonymous, ownAuthority, amender, sameCountry, foreign, reviewer, operatorRole)},
		{"GET /v1/orders/{id}/contests", false, withOrder("/contests", none), readable()},
		{"GET /v1/orders/{id}/receipts", false, withOrder("/receipts", none), readable()},
		{"GET /v1/contests", false, get("/v1/contests?status=pending"), readable()},
		{"GET /v1/contests/{id}", false, func(fx fixture) request { return request{path: fmt.Sprintf("/v1/contests/%d", fx.contest)} }, readable()},
		{"POST /v1/contests/{id}/decision", true, func(fx fixture) request {
			return request{fmt.Sprintf("/v1/contests/%d/decision", fx.contest), map[string]string{"outcome": "dismissed", "reason": "the site streams"}}
		}, only(http.StatusOK, reviewer)},
		{"GET /v1/authorities", false, get("/v1/authorities"), readable()},
		{"POST /v1/authorities", false, func(fixture) request {
			return request{"/v1/authorities", map[string]any{"id": "tj-marseille", "name": "Tribunal judiciaire de Marseille", "kind": "court", "jurisdiction": "FR"}}
		}, only(http.StatusOK, operatorRole)},
		{"GET /v1/principals", false, get("/v1/principals"), only(http.StatusOK, operatorRole)},
		{"POST /v1/principals", true, func(fx fixture) request {
			return request{"/v1/principals", map[string]string{"id": fx.fresh, "role": "authority", "authority": "tj-paris"}}
		}, only(http.StatusCreated, operatorRole)},
		{"POST /v1/principals/{id}/disable", true, func(fx fixture) request { return request{path: "/v1/principals/" + fx.principal + "/disable"} },
			only(http.StatusOK, operatorRole)},
		{"POST /v1/principals/{id}/enable", true, func(fx fixture) request { return request{path: "/v1/principals/" + fx.principal + "/enable"} },
			only(http.StatusOK, operatorRole)},
		{"POST /v1/receipts", false, func(fx fixture) request {
			return request{"/v1/receipts", map[string]any{"point": "gate:lyon", "version": fx.version}}
		}, only(http.StatusAccepted, operatorRole)},
		{"GET /v1/points", false, get("/v1/points"), readable()},
		{"POST /v1/points/retire", true, func(fx fixture) request { return request{"/v1/points/retire", map[string]string{"point": fx.point}} },
			only(http.StatusOK, operatorRole)},
		{"GET /v1/events", false, get("/v1/events?after=0"), readable()},
		{"GET /v1/check", false, get("/v1/check?name=a.example&scope=FR"), readable()},
		{"GET /v1/openapi.yaml", false, get("/v1/openapi.yaml"), readable()},
		{"GET /v1/openapi.json", false, get("/v1/openapi.json"), readable()},
		{"GET /healthz", false, get("/healthz"), readable()},
		{"GET /metrics", false, get("/metrics"), readable()},
		// Served beside the API by the ledger and the public record.
		{"GET /v1/ledger/checkpoint", false, get("/v1/ledger/checkpoint"), readable()},
		{"GET /v1/ledger/key", false, get("/v1/ledger/key"), readable()},
		{"GET /v1/ledger/entries", false, get("/v1/ledger/entries?start=0"), readable()},
		{"GET /v1/ledger/proof/inclusion", false, get("/v1/ledger/proof/inclusion?index=0"), readable()},
		{"GET /v1/ledger/proof/consistency", false, get("/v1/ledger/proof/consistency?first=1&second=2"), readable()},
		{"GET /v1/ledger/documents/{id}", false, withOrder("", none), readable()},
		{"GET /", false, get("/?jurisdiction=FR"), readable()},
		{"GET /orders/{id}", false, func(fx fixture) request { return request{path: "/orders/" + fx.order} }, readable()},
		{"GET /v1/report", false, get("/v1/report"), readable()},
		{"GET /v1/orders/{id}/lumen", false, withOrder("/lumen", none), readable()},
		{"GET /v1/orders/{id}/dsa", false, withOrder("/dsa", none), readable()},
	}
}

func TestAuthzMatrix(t *testing.T) {
	clock := newFakeClock()
	// Limits on, as served, but wide enough never to refuse here.
	n := newNode(t, RateLimit{PerSecond: 1000, Burst: 1 << 20, ContestsPerHour: 1 << 20, Now: clock.Now})

	tokens := map[caller]string{
		anonymous:    "",
		badToken:     "writ_" + strings.Repeat("q", 52),
		ownAuthority: n.principal(t, "paris-clerk", access.Authority, "tj-paris"),
		amender:      n.principal(t, "arcom-agent", access.Authority, "arcom"),
		sameCountry:  n.principal(t, "lyon-clerk", access.Authority, "tj-lyon"),
		foreign:      n.principal(t, "agcom-agent", access.Authority, "agcom"),
		reviewer:     n.principal(t, "rev-alice", access.Reviewer, ""),
		operatorRole: testToken,
		disabledOp:   n.principal(t, "ex-operator", access.Operator, ""),
	}
	if err := n.reg.DisablePrincipal(t.Context(), "ex-operator", true, operator); err != nil {
		t.Fatal(err)
	}
	shared := n.fixture(t)
	n.syncLedger(t)

	rows := matrixRows()
	documented := documentedOperations(n.spec.doc)
	seen := map[string]bool{}
	for _, rw := range rows {
		if seen[rw.op] {
			t.Errorf("%s has two rows", rw.op)
		}
		seen[rw.op] = true
		if !slices.Contains(documented, rw.op) {
			t.Errorf("%s has a row but is not in openapi.yaml", rw.op)
		}
		for _, c := range callers {
			if _, ok := rw.want[c]; !ok {
				t.Errorf("%s: no expected status for %s", rw.op, c)
			}
		}
	}
	// A route added to the document without a row cannot pass unseen.
	for _, op := range documented {
		if !seen[op] {
			t.Errorf("%s is in openapi.yaml but has no row in the authorisation matrix", op)
		}
	}

	for _, rw := range rows {
		method, _, _ := strings.Cut(rw.op, " ")
		for _, c := range callers {
			t.Run(rw.op+"/"+string(c), func(t *testing.T) {
				fx := shared
				if rw.changes {
					fx = n.fixture(t)
				}
				rq := rw.req(fx)
				before := n.history(t, fx.order)
				code, data := n.client(t, tokens[c]).do(method, rq.path, rq.body)
				if want := rw.want[c]; code != want {
					t.Fatalf("status %d, want %d: %s", code, want, data)
				}
				// A refused request leaves no trace in the order's history.
				if code == http.StatusUnauthorized || code == http.StatusForbidden {
					if after := n.history(t, fx.order); after != before {
						t.Errorf("refused, yet the order's history grew from %d to %d events", before, after)
					}
				}
			})
		}
	}
}

// history is the number of events of an order.
func (n *node) history(t *testing.T, id string) int {
	t.Helper()
	_, events, err := n.reg.Order(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return len(events)
}

// documentedOperations lists "METHOD /path" for every operation of the
// document.
func documentedOperations(doc *openapi3.T) []string {
	var out []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			out = append(out, method+" "+path)
		}
	}
	slices.Sort(out)
	return out
}

// TestAmenderActsOnlyWithinItsJurisdiction: an order may name amenders,
// but an amender acts only where its own law applies: a French court
// cannot hand the Italian regulator the blocking of French clients.
func TestAmenderActsOnlyWithinItsJurisdiction(t *testing.T) {
	n := newNode(t, RateLimit{})
	if _, err := n.reg.RegisterAuthority(t.Context(), order.RegisteredAuthority{Authority: order.Authority{ID: "eu-body", Name: "An EU body", Kind: order.Regulator, Jurisdiction: "EU"}}, operator); err != nil {
		t.Fatal(err)
	}
	court := n.client(t, n.principal(t, "paris-clerk", access.Authority, "tj-paris"))
	m := courtOrder(fqdn("motogpstream.me"))
	m["amending_authorities"] = []string{"arcom", "agcom", "eu-body"}
	o := orderOf(t, court.want(http.StatusCreated, "POST", "/v1/orders", m))
	add := func(name string) map[string]any { return map[string]any{"add": []any{fqdn(name)}} }

	before := n.history(t, o.ID)
	italian := n.client(t, n.principal(t, "agcom-agent", access.Authority, "agcom"))
	data := italian.want(http.StatusForbidden, "POST", "/v1/orders/"+o.ID+"/amendments", add("calcio.example"))
	if !strings.Contains(string(data), "jurisdiction") {
		t.Errorf("the refusal does not say why: %s", data)
	}
	if n.history(t, o.ID) != before || n.reg.Policy().Load().MatchName("calcio.example", jurisdiction.MustParse("FR")) != nil {
		t.Fatal("the refused amendment changed the order")
	}
	// Amenders whose jurisdiction covers the order's may.
	n.client(t, n.principal(t, "arcom-agent", access.Authority, "arcom")).want(http.StatusOK, "POST", "/v1/orders/"+o.ID+"/amendments", add("mirror1.example"))
	n.client(t, n.principal(t, "eu-agent", access.Authority, "eu-body")).want(http.StatusOK, "POST", "/v1/orders/"+o.ID+"/amendments", add("mirror2.example"))
	// The order's own authority and the operator are not amenders.
	court.want(http.StatusOK, "POST", "/v1/orders/"+o.ID+"/amendments", add("mirror3.example"))
	n.client(t, testToken).want(http.StatusOK, "POST", "/v1/orders/"+o.ID+"/amendments", add("mirror4.example"))
}
