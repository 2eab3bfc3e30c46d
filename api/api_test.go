package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/registry"
	"github.com/writ-project/writ/scope"
	"github.com/writ-project/writ/store"
)

const (
	testToken       = "secret"
	testPublicURL   = "http://writ.example"
	testBlockAnswer = "REFUSED with EDE 16 (Censored)"
	franceClient    = "127.0.0.2"
	outsideClient   = "127.0.0.1"
	testdataOrder   = "../testdata/orders-fr-motogp-2025.json"
)

// stack is a whole writ node minus DNS: SQLite store, registry, scope
// resolver and the API, served over HTTP.
type stack struct {
	url  string
	h    http.Handler // what the server serves
	reg  *registry.Registry
	st   *store.SQLite
	prom *prometheus.Registry
	log  *slog.Logger
}

func newStack(t testing.TB, configure func(*Config)) *stack {
	t.Helper()
	return newStackIntake(t, order.Intake{ReviewDelegated: true, Safeguards: order.Safeguards{SharedInfra: order.DefaultSharedInfra()}}, configure)
}

// newStackIntake is newStack with the given intake rules.
func newStackIntake(t testing.TB, in order.Intake, configure func(*Config)) *stack {
	t.Helper()
	return buildStack(t, in, configure, nil)
}

// buildStack starts a stack whose HTTP handler is the API as front
// returns it (nil: the API alone).
func buildStack(t testing.TB, in order.Intake, configure func(*Config), front func(s *stack, api http.Handler) http.Handler) *stack {
	t.Helper()
	ctx := t.Context()
	st, err := store.OpenSQLite(ctx, t.TempDir()+"/writ.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// Logs go to the test's output, shown when it fails or with -v.
	// Benchmarks log nothing: their output is the figures.
	out := t.Output()
	if _, ok := t.(*testing.B); ok {
		out = io.Discard
	}
	log := slog.New(slog.NewTextHandler(out, nil))
	reg, err := registry.Open(ctx, st, registry.Options{
		Intake: in,
		Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	nets, err := scope.ParseMapping("FR=" + franceClient + "/32")
	if err != nil {
		t.Fatal(err)
	}
	resolver, err := scope.New(nets, nil)
	if err != nil {
		t.Fatal(err)
	}
	prom := prometheus.NewRegistry()
	prom.MustRegister(reg.Metrics())
	if err := reg.EnsurePrincipal(ctx, access.Principal{ID: "operator", Name: "operator", Role: access.Operator}, testToken); err != nil {
		t.Fatal(err)
	}
	cfg := Config{PublicURL: testPublicURL, BlockAnswer: testBlockAnswer, Gatherer: prom, Logger: log}
	if configure != nil {
		configure(&cfg)
	}
	h, err := New(cfg, reg, resolver)
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{reg: reg, st: st, prom: prom, log: log}
	if front != nil {
		h = front(s, h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	s.url, s.h = srv.URL, h
	return s
}

// request sends a request; a nil header map means no headers at all.
func (s *stack) request(t *testing.T, method, path string, body []byte, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

func (s *stack) get(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	return s.request(t, http.MethodGet, path, nil, nil)
}

// authJSON are the headers of an authorised JSON request.
var authJSON = map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/json"}

// orderResp is an order as the API returns it.
type orderResp struct {
	order.Order
	Status    order.Status  `json:"status"`
	Enforced  bool          `json:"enforced"`
	RecordURL string        `json:"record_url"`
	Events    []order.Event `json:"events"`
	Warnings  []string      `json:"warnings"`
}

type listResp struct {
	Orders        []orderResp `json:"orders"`
	PolicyVersion uint64      `json:"policy_version"`
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decoding %T from %s: %v", v, data, err)
	}
	return v
}

func wantStatus(t *testing.T, resp *http.Response, body []byte, code int) {
	t.Helper()
	if resp.StatusCode != code {
		t.Fatalf("%s %s: status %d, want %d; body: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, code, body)
	}
}

// testOrder returns the testdata order as a JSON object, edited by edit.
func testOrder(t testing.TB, edit func(m map[string]any)) []byte {
	t.Helper()
	b, err := os.ReadFile(testdataOrder)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(m)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// inForce moves the order's dates around now, so that it is active.
func inForce(m map[string]any) {
	now := time.Now().UTC()
	m["effective"] = now.Add(-time.Hour).Format(time.RFC3339)
	m["expires"] = now.Add(time.Hour).Format(time.RFC3339)
}

func activeOrder(t *testing.T) []byte { return testOrder(t, inForce) }

// submit posts an order, expects 201 and returns the answer.
func (s *stack) submit(t *testing.T, body []byte) orderResp {
	t.Helper()
	resp, data := s.request(t, http.MethodPost, "/v1/orders", body, authJSON)
	wantStatus(t, resp, data, http.StatusCreated)
	return decode[orderResp](t, data)
}

func (s *stack) list(t *testing.T, query string) listResp {
	t.Helper()
	resp, data := s.get(t, "/v1/orders"+query)
	wantStatus(t, resp, data, http.StatusOK)
	return decode[listResp](t, data)
}

func ids(orders []orderResp) []string {
	var out []string
	for _, o := range orders {
		out = append(out, o.ID)
	}
	return out
}

func TestSubmitActiveOrder(t *testing.T) {
	s := newStack(t, nil)
	resp, data := s.request(t, http.MethodPost, "/v1/orders", activeOrder(t), authJSON)
	wantStatus(t, resp, data, http.StatusCreated)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	o := decode[orderResp](t, data)
	if !regexp.MustCompile(`^\d{8}-[0-9a-f]{8}$`).MatchString(o.ID) {
		t.Errorf("id %q is not of the form YYYYMMDD-xxxxxxxx", o.ID)
	}
	if got, want := resp.Header.Get("Location"), "/v1/orders/"+o.ID; got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
	if o.Status != order.StatusActive || !o.Enforced {
		t.Errorf("status %q enforced %v, want active and enforced", o.Status, o.Enforced)
	}
	if want := "http://writ.example/orders/" + o.ID; o.RecordURL != want {
		t.Errorf("record_url %q, want %q", o.RecordURL, want)
	}
	if len(o.Warnings) != 0 {
		t.Errorf("warnings %q for an order in force with no held target", o.Warnings)
	}
	if len(o.Targets) != 3 || o.Targets[1].FQDN != "motogpstream.me" || !o.Targets[1].Subdomains || o.Targets[1].State != order.TargetActive {
		t.Errorf("targets %+v", o.Targets)
	}
	// Enforced before the 201: the published policy blocks the name now.
	fr := jurisdiction.MustParse("FR")
	if ref := s.reg.Policy().Load().MatchName("www.motogpstream.me", fr); ref == nil || ref.ID != o.ID {
		t.Errorf("policy does not block www.motogpstream.me for FR by %s: %v", o.ID, ref)
	}

	resp, data = s.get(t, "/v1/orders/"+o.ID)
	wantStatus(t, resp, data, http.StatusOK)
	got := decode[orderResp](t, data)
	if got.ID != o.ID || got.Status != order.StatusActive || !got.Enforced || got.RecordURL != o.RecordURL {
		t.Errorf("GET order: %+v", got)
	}
	if len(got.Events) == 0 || got.Events[0].Kind != order.EventReceived || got.Events[0].OrderID != o.ID || got.Events[0].Principal == "" {
		t.Errorf("events %+v, want a received event first", got.Events)
	}

	l := s.list(t, "")
	if !slices.Equal(ids(l.Orders), []string{o.ID}) {
		t.Errorf("list: %v, want [%s]", ids(l.Orders), o.ID)
	}
	if l.PolicyVersion == 0 || l.PolicyVersion != s.reg.Policy().Load().Version() {
		t.Errorf("list policy_version %d, published %d", l.PolicyVersion, s.reg.Policy().Load().Version())
	}
	for query, want := range map[string][]string{
		"?status=active":  {o.ID},
		"?status=expired": nil,
		"?status=revoked": nil,
	} {
		if got := ids(s.list(t, query).Orders); !slices.Equal(got, want) {
			t.Errorf("list%s: %v, want %v", query, got, want)
		}
	}
	// A misspelt status is an error, not an empty list.
	resp, data = s.get(t, "/v1/orders?status=activ")
	wantStatus(t, resp, data, http.StatusBadRequest)
	if e := decode[errorBody](t, data); !strings.Contains(e.Error, `"activ"`) {
		t.Errorf("error %q does not name the bad status", e.Error)
	}

	resp, data = s.get(t, "/v1/orders/20990101-00000000")
	wantStatus(t, resp, data, http.StatusNotFound)
	if e := decode[errorBody](t, data); e.Error == "" {
		t.Error("404 without an error message")
	}
}

func TestSubmitExpiredOrder(t *testing.T) {
	s := newStack(t, nil)
	o := s.submit(t, testOrder(t, nil))
	if o.Status != order.StatusExpired || o.Enforced {
		t.Errorf("status %q enforced %v, want expired and not enforced", o.Status, o.Enforced)
	}
	if len(o.Warnings) != 1 || !strings.Contains(o.Warnings[0], "expired") || !strings.Contains(o.Warnings[0], "2025-11-30") {
		t.Errorf("warnings %q, want one saying the order expired on 2025-11-30", o.Warnings)
	}
	if ref := s.reg.Policy().Load().MatchName("motogpstream.me", jurisdiction.MustParse("FR")); ref != nil {
		t.Errorf("an expired order blocks: %v", ref)
	}
	if got := ids(s.list(t, "?status=expired").Orders); !slices.Equal(got, []string{o.ID}) {
		t.Errorf("list?status=expired: %v", got)
	}
}

// fieldFor places a value of bad-inputs.txt where it belongs: a
// jurisdiction, an IP target or a name target.
func fieldFor(v string) (string, func(m map[string]any)) {
	switch {
	case len(v) == 2 && strings.ToUpper(v) == v && strings.Trim(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == "":
		return "jurisdiction[0]", func(m map[string]any) { m["jurisdiction"] = []any{v} }
	case strings.Trim(v, "0123456789.:/") == "":
		return "targets[0].ip", func(m map[string]any) { m["targets"] = []any{map[string]any{"ip": v}} }
	default:
		return "targets[0].fqdn", func(m map[string]any) { m["targets"] = []any{map[string]any{"fqdn": v}} }
	}
}

func TestBadInputsOverHTTP(t *testing.T) {
	s := newStack(t, nil)
	s.submit(t, activeOrder(t)) // something on record, so "unchanged" means something

	f, err := os.Open("../testdata/bad-inputs.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rejected, held int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		value, reason, _ := strings.Cut(sc.Text(), "#")
		value, reason = strings.TrimSpace(value), strings.TrimSpace(reason)
		if value == "" {
			continue
		}
		field, edit := fieldFor(value)
		t.Run(value, func(t *testing.T) {
			body := testOrder(t, func(m map[string]any) { inForce(m); edit(m) })
			before := s.list(t, "")
			resp, data := s.request(t, http.MethodPost, "/v1/orders", body, authJSON)
			after := s.list(t, "")

			if strings.Contains(reason, "hold for review") {
				held++
				wantStatus(t, resp, data, http.StatusCreated)
				o := decode[orderResp](t, data)
				if o.Status != order.StatusHeld || o.Enforced {
					t.Errorf("status %q enforced %v, want held and not enforced", o.Status, o.Enforced)
				}
				if len(o.Targets) != 1 || o.Targets[0].State != order.TargetHeld || o.Targets[0].HoldReason == "" {
					t.Errorf("targets %+v, want one held target with a hold_reason", o.Targets)
				}
				if len(o.Warnings) == 0 || !strings.Contains(strings.Join(o.Warnings, " "), "held") {
					t.Errorf("warnings %q do not say the order is held", o.Warnings)
				}
				if len(after.Orders) != len(before.Orders)+1 {
					t.Errorf("orders on record: %d before, %d after an accepted order", len(before.Orders), len(after.Orders))
				}
				return
			}

			rejected++
			wantStatus(t, resp, data, http.StatusBadRequest)
			e := decode[errorBody](t, data)
			if !slices.ContainsFunc(e.Fields, func(fe order.FieldError) bool {
				return fe.Field == field && fe.Value == value && fe.Message != ""
			}) {
				t.Errorf("fields %+v: none for %s = %q", e.Fields, field, value)
			}
			if e.Error == "" {
				t.Error("no error sentence")
			}
			if len(after.Orders) != len(before.Orders) || after.PolicyVersion != before.PolicyVersion {
				t.Errorf("a rejected order changed the record: %d orders at version %d, then %d at %d",
					len(before.Orders), before.PolicyVersion, len(after.Orders), after.PolicyVersion)
			}
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if rejected < 10 || held != 1 {
		t.Errorf("%d rejected and %d held values: is bad-inputs.txt read?", rejected, held)
	}
}

func TestAuth(t *testing.T) {
	s := newStack(t, nil)
	o := s.submit(t, activeOrder(t))
	body := activeOrder(t)
	for _, tc := range []struct {
		name, method, path string
		header             map[string]string
	}{
		{"no token", "POST", "/v1/orders", map[string]string{"Content-Type": "application/json"}},
		{"wrong token", "POST", "/v1/orders", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer wrong"}},
		{"token prefix", "POST", "/v1/orders", map[string]string{"Content-Type": "application/json", "Authorization": "Bearer secre"}},
		{"token without scheme", "POST", "/v1/orders", map[string]string{"Content-Type": "application/json", "Authorization": testToken}},
		{"basic scheme", "POST", "/v1/orders", map[string]string{"Content-Type": "application/json", "Authorization": "Basic " + testToken}},
		{"revoke without token", "POST", "/v1/orders/" + o.ID + "/revoke", map[string]string{"Content-Type": "application/json"}},
		{"revoke wrong token", "POST", "/v1/orders/" + o.ID + "/revoke", map[string]string{"Authorization": "Bearer nope"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := s.request(t, tc.method, tc.path, body, tc.header)
			wantStatus(t, resp, data, http.StatusUnauthorized)
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("WWW-Authenticate %q, want a Bearer challenge", got)
			}
			if e := decode[errorBody](t, data); !strings.Contains(e.Error, "token") {
				t.Errorf("error %q does not mention the token", e.Error)
			}
		})
	}
	if l := s.list(t, ""); len(l.Orders) != 1 || l.Orders[0].Status != order.StatusActive {
		t.Errorf("unauthorised requests changed the record: %+v", l.Orders)
	}

	// The scheme is case-insensitive (RFC 9110).
	resp, data := s.request(t, "POST", "/v1/orders", body, map[string]string{"Content-Type": "application/json", "Authorization": "bearer " + testToken})
	wantStatus(t, resp, data, http.StatusCreated)

	// Reading needs no token.
	for _, path := range []string{"/v1/orders", "/v1/orders/" + o.ID, "/v1/check?name=motogpstream.me&scope=FR",
		"/v1/openapi.yaml", "/healthz", "/metrics"} {
		resp, data := s.get(t, path)
		wantStatus(t, resp, data, http.StatusOK)
	}
}

func TestRequestBodies(t *testing.T) {
	s := newStack(t, nil)
	for _, tc := range []struct {
		name        string
		contentType string
		body        []byte
		status      int
		field       string // a field the error must name
	}{
		{"plain text", "text/plain", activeOrder(t), http.StatusUnsupportedMediaType, ""},
		{"plain text with charset", "text/plain; charset=utf-8", activeOrder(t), http.StatusUnsupportedMediaType, ""},
		{"form", "application/x-www-form-urlencoded", activeOrder(t), http.StatusUnsupportedMediaType, ""},
		{"multipart form", "multipart/form-data; boundary=x", activeOrder(t), http.StatusUnsupportedMediaType, ""},
		{"unparsable type", "application/json; =", activeOrder(t), http.StatusUnsupportedMediaType, ""},
		{"unknown field", "application/json", testOrder(t, func(m map[string]any) { inForce(m); m["expiry"] = "2030-01-01T00:00:00Z" }), http.StatusBadRequest, "expiry"},
		{"malformed JSON", "application/json", []byte(`{"authority": {`), http.StatusBadRequest, "(document)"},
		{"not an object", "application/json", []byte(`[1, 2]`), http.StatusBadRequest, "(document)"},
		{"empty body", "application/json", []byte{}, http.StatusBadRequest, "(document)"},
		{"two orders", "application/json", append(activeOrder(t), activeOrder(t)...), http.StatusBadRequest, "(document)"},
		{"wrong type", "application/json", testOrder(t, func(m map[string]any) { m["jurisdiction"] = "FR" }), http.StatusBadRequest, "jurisdiction"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := s.request(t, "POST", "/v1/orders", tc.body, map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": tc.contentType})
			wantStatus(t, resp, data, tc.status)
			e := decode[errorBody](t, data)
			if e.Error == "" {
				t.Error("no error sentence")
			}
			if tc.status == http.StatusUnsupportedMediaType && !strings.Contains(e.Error, "application/json") {
				t.Errorf("error %q does not say what to send", e.Error)
			}
			if tc.field != "" && !slices.ContainsFunc(e.Fields, func(f order.FieldError) bool { return f.Field == tc.field }) {
				t.Errorf("fields %+v do not name %s", e.Fields, tc.field)
			}
		})
	}
	if l := s.list(t, ""); len(l.Orders) != 0 {
		t.Errorf("refused requests recorded %d orders", len(l.Orders))
	}

	// JSON with parameters, and no Content-Type at all, are accepted.
	for _, ct := range []string{"application/json; charset=utf-8", ""} {
		h := map[string]string{"Authorization": "Bearer " + testToken}
		if ct != "" {
			h["Content-Type"] = ct
		}
		resp, data := s.request(t, "POST", "/v1/orders", activeOrder(t), h)
		wantStatus(t, resp, data, http.StatusCreated)
	}
}

func TestBodyLimit(t *testing.T) {
	body := activeOrder(t)
	limit := int64(len(body) - 1)
	s := newStack(t, func(c *Config) { c.MaxBodyBytes = limit })

	resp, data := s.request(t, "POST", "/v1/orders", body, authJSON)
	wantStatus(t, resp, data, http.StatusRequestEntityTooLarge)
	if e := decode[errorBody](t, data); !strings.Contains(e.Error, strconv.FormatInt(limit, 10)) {
		t.Errorf("error %q does not state the limit", e.Error)
	}
	if l := s.list(t, ""); len(l.Orders) != 0 {
		t.Errorf("an oversized order was recorded")
	}

	// A body of exactly the limit is read whole.
	compact := testOrder(t, func(m map[string]any) {
		inForce(m)
		delete(m, "note")
		delete(m, "legal_basis")
		m["legal_basis"] = map[string]any{"case": "x"}
	})
	s2 := newStack(t, func(c *Config) { c.MaxBodyBytes = int64(len(compact)) })
	s2.submit(t, compact)

	// Revocations are bounded too.
	o := s2.submit(t, compact)
	big := []byte(`{"reason": "` + strings.Repeat("x", len(compact)) + `"}`)
	resp, data = s2.request(t, "POST", "/v1/orders/"+o.ID+"/revoke", big, authJSON)
	wantStatus(t, resp, data, http.StatusRequestEntityTooLarge)
}

func TestRevoke(t *testing.T) {
	s := newStack(t, nil)
	o := s.submit(t, activeOrder(t))
	fr := jurisdiction.MustParse("FR")
	revoke := "/v1/orders/" + o.ID + "/revoke"

	// Refused revocations leave the order in force.
	for _, tc := range []struct {
		name   string
		header map[string]string
		body   string
		status int
	}{
		{"unknown field", authJSON, `{"because": "appeal"}`, http.StatusBadRequest},
		{"not JSON", authJSON, `reason=appeal`, http.StatusBadRequest},
		{"form", map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/x-www-form-urlencoded"}, `reason=appeal`, http.StatusUnsupportedMediaType},
		{"plain text", map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "text/plain"}, `{"reason": "appeal"}`, http.StatusUnsupportedMediaType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := s.request(t, "POST", revoke, []byte(tc.body), tc.header)
			wantStatus(t, resp, data, tc.status)
			if tc.name == "unknown field" {
				if e := decode[errorBody](t, data); !strings.Contains(e.Error, "because") {
					t.Errorf("error %q does not name the unknown field", e.Error)
				}
			}
			if s.reg.Policy().Load().MatchName("motogpstream.me", fr) == nil {
				t.Fatal("a refused revocation stopped the block")
			}
		})
	}

	before := s.reg.Policy().Load().Version()
	resp, data := s.request(t, "POST", revoke, []byte(`{"reason": "judgment overturned on appeal"}`), authJSON)
	wantStatus(t, resp, data, http.StatusOK)
	r := decode[orderResp](t, data)
	if r.ID != o.ID || r.Status != order.StatusRevoked || r.Enforced || r.Disposition != order.Revoked ||
		r.DispositionReason != "judgment overturned on appeal" || r.DispositionAt == nil {
		t.Errorf("revoked order: %+v", r)
	}
	snap := s.reg.Policy().Load()
	if snap.Version() <= before {
		t.Errorf("policy version %d after revocation, was %d", snap.Version(), before)
	}
	for _, name := range []string{"motogpstream.me", "www.motogpstream.me", "livetv821.me"} {
		if ref := snap.MatchName(name, fr); ref != nil {
			t.Errorf("%s still blocked after revocation by %s", name, ref.ID)
		}
	}

	resp, data = s.get(t, "/v1/orders/"+o.ID)
	wantStatus(t, resp, data, http.StatusOK)
	got := decode[orderResp](t, data)
	if got.Status != order.StatusRevoked || !slices.ContainsFunc(got.Events, func(e order.Event) bool {
		return e.Kind == order.EventRevoked && e.Detail == "judgment overturned on appeal"
	}) {
		t.Errorf("after revocation: status %q, events %+v", got.Status, got.Events)
	}

	resp, data = s.request(t, "POST", revoke, nil, authJSON)
	wantStatus(t, resp, data, http.StatusConflict)
	if e := decode[errorBody](t, data); !strings.Contains(e.Error, "already revoked") {
		t.Errorf("second revocation: %q", e.Error)
	}

	resp, data = s.request(t, "POST", "/v1/orders/20990101-00000000/revoke", nil, authJSON)
	wantStatus(t, resp, data, http.StatusNotFound)

	// An expired order cannot be revoked: it blocks nothing already.
	expired := s.submit(t, testOrder(t, nil))
	resp, data = s.request(t, "POST", "/v1/orders/"+expired.ID+"/revoke", nil, authJSON)
	wantStatus(t, resp, data, http.StatusConflict)

	// A revocation without a body (and no reason) is accepted.
	o2 := s.submit(t, activeOrder(t))
	resp, data = s.request(t, "POST", "/v1/orders/"+o2.ID+"/revoke", nil, map[string]string{"Authorization": "Bearer " + testToken})
	wantStatus(t, resp, data, http.StatusOK)
}

func TestCheck(t *testing.T) {
	s := newStack(t, nil)
	byName := s.submit(t, activeOrder(t))
	byAddr := s.submit(t, testOrder(t, func(m map[string]any) {
		inForce(m)
		m["targets"] = []any{map[string]any{"ip": "203.0.113.0/24"}}
	}))
	version := s.reg.Policy().Load().Version()

	type want struct {
		blocked     bool
		client      string
		scope       string
		source      string
		orderID     string // "" for no order
		target      string
		inScope     bool
		answerMatch string
	}
	for _, tc := range []struct {
		query string
		want  want
	}{
		{"name=www.motogpstream.me&client=127.0.0.2", want{true, franceClient, "FR", "network", byName.ID, "motogpstream.me (and subdomains)", true, testBlockAnswer}},
		{"name=WWW.MotoGPStream.me.&client=127.0.0.2", want{true, franceClient, "FR", "network", byName.ID, "motogpstream.me (and subdomains)", true, testBlockAnswer}},
		{"name=motogpstream.me&client=127.0.0.2", want{true, franceClient, "FR", "network", byName.ID, "motogpstream.me (and subdomains)", true, testBlockAnswer}},
		{"name=www.motogpstream.me&client=127.0.0.1", want{false, outsideClient, "unknown", "none", byName.ID, "motogpstream.me (and subdomains)", false, "forwarded"}},
		{"name=www.motogpstream.me&scope=IT", want{false, "", "IT", "given", byName.ID, "motogpstream.me (and subdomains)", false, "forwarded"}},
		{"name=www.motogpstream.me&scope=fr", want{true, "", "FR", "given", byName.ID, "motogpstream.me (and subdomains)", true, testBlockAnswer}},
		{"name=example.org&client=127.0.0.2", want{false, franceClient, "FR", "network", "", "", false, "forwarded"}},
		{"name=notmotogpstream.me&scope=FR", want{false, "", "FR", "given", "", "", false, "forwarded"}},
		{"name=203.0.113.7&client=127.0.0.2", want{true, franceClient, "FR", "network", byAddr.ID, "203.0.113.0/24", true, testBlockAnswer}},
		{"name=203.0.113.7&client=127.0.0.1", want{false, outsideClient, "unknown", "none", byAddr.ID, "203.0.113.0/24", false, "forwarded"}},
		{"name=203.0.114.7&scope=FR", want{false, "", "FR", "given", "", "", false, "forwarded"}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			resp, data := s.get(t, "/v1/check?"+tc.query)
			wantStatus(t, resp, data, http.StatusOK)
			if !bytes.Contains(data, []byte(`"orders": [`)) {
				t.Errorf("orders is not a JSON array: %s", data)
			}
			d := decode[Decision](t, data)
			w := tc.want
			if d.Blocked != w.blocked || d.Client != w.client || d.Scope != w.scope || d.ScopeSource != w.source {
				t.Errorf("blocked %v client %q scope %q source %q, want %v %q %q %q", d.Blocked, d.Client, d.Scope, d.ScopeSource, w.blocked, w.client, w.scope, w.source)
			}
			if !strings.Contains(d.Answer, w.answerMatch) {
				t.Errorf("answer %q, want it to contain %q", d.Answer, w.answerMatch)
			}
			if d.PolicyVersion != version {
				t.Errorf("policy_version %d, want %d", d.PolicyVersion, version)
			}
			if w.orderID == "" {
				if len(d.Orders) != 0 {
					t.Errorf("orders %+v, want none", d.Orders)
				}
				return
			}
			if len(d.Orders) != 1 {
				t.Fatalf("orders %+v, want one", d.Orders)
			}
			o := d.Orders[0]
			if o.ID != w.orderID || o.Target != w.target || o.InScope != w.inScope || o.Jurisdiction != "FR" ||
				o.Authority.Name != "Tribunal judiciaire de Paris" || !strings.Contains(o.LegalBasis.Case, "Cloudflare") ||
				o.RecordURL != testPublicURL+"/orders/"+w.orderID {
				t.Errorf("order %+v, want %s target %q in_scope %v", o, w.orderID, w.target, w.inScope)
			}
		})
	}

	for _, tc := range []struct{ query, mention string }{
		{"", "name"},
		{"client=127.0.0.2", "name"},
		{"name=%20&client=127.0.0.2", "name"},
		{"name=motogpstream.me", "client"},
		{"name=motogpstream.me&client=127.0.0.2&scope=FR", "not both"},
		{"name=motogpstream.me&client=bogus", "bogus"},
		{"name=motogpstream.me&client=127.0.0.2/32", "127.0.0.2/32"},
		{"name=motogpstream.me&scope=XX", "XX"},
		{"name=motogpstream.me&scope=FRA", "FRA"},
		{"name=motogpstream.me&scope=EU", "EU"},
	} {
		t.Run("bad "+tc.query, func(t *testing.T) {
			resp, data := s.get(t, "/v1/check?"+tc.query)
			wantStatus(t, resp, data, http.StatusBadRequest)
			if e := decode[errorBody](t, data); !strings.Contains(e.Error, tc.mention) {
				t.Errorf("error %q does not mention %q", e.Error, tc.mention)
			}
		})
	}
}

// metricValue returns the value of the sample named exactly series
// ("writ_orders{status=\"active\"}") in a text exposition.
func metricValue(t *testing.T, exposition, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in metrics:\n%s", series, exposition)
	return 0
}

func TestMetricsAndHealth(t *testing.T) {
	s := newStack(t, nil)
	resp, data := s.get(t, "/metrics")
	wantStatus(t, resp, data, http.StatusOK)
	if got := metricValue(t, string(data), `writ_orders{status="active"}`); got != 0 {
		t.Errorf("active orders %v before any order", got)
	}

	s.submit(t, activeOrder(t))
	s.submit(t, activeOrder(t))
	s.submit(t, testOrder(t, nil)) // expired
	version := s.reg.Policy().Load().Version()

	resp, data = s.get(t, "/metrics")
	wantStatus(t, resp, data, http.StatusOK)
	m := string(data)
	for series, want := range map[string]float64{
		"writ_policy_version":             float64(version),
		`writ_orders{status="active"}`:    2,
		`writ_orders{status="expired"}`:   1,
		`writ_orders{status="revoked"}`:   0,
		"writ_orders_submitted_total":     3,
		"writ_policy_names":               3,
		"writ_policy_prefixes":            0,
		`writ_orders{status="held"}`:      0,
		`writ_orders{status="scheduled"}`: 0,
	} {
		if got := metricValue(t, m, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if version == 0 {
		t.Error("policy version 0 after three orders")
	}

	resp, data = s.get(t, "/healthz")
	wantStatus(t, resp, data, http.StatusOK)
	h := decode[struct {
		Status        string `json:"status"`
		PolicyVersion uint64 `json:"policy_version"`
	}](t, data)
	if h.Status != "ok" || h.PolicyVersion != version {
		t.Errorf("healthz %+v, want ok at version %d", h, version)
	}
}

func TestNoMetricsWithoutGatherer(t *testing.T) {
	s := newStack(t, func(c *Config) { c.Gatherer = nil })
	resp, data := s.get(t, "/metrics")
	wantStatus(t, resp, data, http.StatusNotFound)
}

// muxRoutes lists the routes the API serves, method by path, from the
// table api.New registers.
func muxRoutes(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, rt := range (&server{cfg: Config{Gatherer: prometheus.NewRegistry()}}).routes() {
		method, path, ok := strings.Cut(rt.pattern, " ")
		if !ok {
			t.Fatalf("route %q has no method", rt.pattern)
		}
		path = strings.TrimSuffix(path, "{$}")
		out[path] = append(out[path], strings.ToLower(method))
	}
	return out
}

// jsonFields lists the JSON names of a struct's fields, embedded ones
// included.
func jsonFields(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			out = append(out, jsonFields(ft)...)
			continue
		}
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

func TestOpenAPI(t *testing.T) {
	s := newStack(t, nil)
	resp, data := s.get(t, "/v1/openapi.yaml")
	wantStatus(t, resp, data, http.StatusOK)
	if ct := resp.Header.Get("Content-Type"); ct != "application/yaml" {
		t.Errorf("Content-Type %q", ct)
	}
	var doc struct {
		OpenAPI    string                               `yaml:"openapi"`
		Paths      map[string]map[string]map[string]any `yaml:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `yaml:"properties"`
				AllOf      []struct {
					Ref        string         `yaml:"$ref"`
					Properties map[string]any `yaml:"properties"`
				} `yaml:"allOf"`
			} `yaml:"schemas"`
		} `yaml:"components"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("openapi.yaml does not parse: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi: %q", doc.OpenAPI)
	}

	routes := muxRoutes(t)
	for _, p := range []string{"/v1/orders", "/v1/orders/{id}", "/v1/orders/{id}/revoke", "/v1/orders/{id}/amendments", "/v1/contests/{id}/decision", "/v1/events", "/v1/check", "/v1/openapi.yaml", "/v1/openapi.json", "/healthz", "/metrics"} {
		if _, ok := routes[p]; !ok {
			t.Errorf("route %s not found in api.go: is muxRoutes broken?", p)
		}
	}
	for path, methods := range routes {
		for _, m := range methods {
			op, ok := doc.Paths[path][m]
			if !ok {
				t.Errorf("%s %s is served but not in openapi.yaml", strings.ToUpper(m), path)
				continue
			}
			if _, ok := op["responses"]; !ok {
				t.Errorf("%s %s has no responses", strings.ToUpper(m), path)
			}
		}
	}
	for path, ops := range doc.Paths {
		if ServedElsewhere(path) {
			continue
		}
		for m := range ops {
			if !slices.Contains(routes[path], m) {
				t.Errorf("openapi.yaml documents %s %s, which is not served", strings.ToUpper(m), path)
			}
		}
	}

	// The schemas name the fields the code reads and writes.
	var props func(name string) map[string]any
	props = func(name string) map[string]any {
		sc, ok := doc.Components.Schemas[name]
		if !ok {
			t.Fatalf("no schema %s", name)
		}
		out := map[string]any{}
		for k, v := range sc.Properties {
			out[k] = v
		}
		for _, a := range sc.AllOf {
			if ref, ok := strings.CutPrefix(a.Ref, "#/components/schemas/"); ok {
				for k, v := range props(ref) {
					out[k] = v
				}
			}
			for k, v := range a.Properties {
				out[k] = v
			}
		}
		return out
	}
	for schema, typ := range map[string]reflect.Type{
		"Submission":          reflect.TypeFor[order.Submission](),
		"SubmittedTarget":     reflect.TypeFor[order.SubmittedTarget](),
		"Target":              reflect.TypeFor[order.Target](),
		"Authority":           reflect.TypeFor[order.Authority](),
		"LegalBasis":          reflect.TypeFor[order.LegalBasis](),
		"Event":               reflect.TypeFor[order.Event](),
		"Order":               reflect.TypeFor[orderView](),
		"OrderSummary":        reflect.TypeFor[orderSummary](),
		"FieldError":          reflect.TypeFor[order.FieldError](),
		"Error":               reflect.TypeFor[errorBody](),
		"DecisionResult":      reflect.TypeFor[Decision](),
		"Amendment":           reflect.TypeFor[order.Amendment](),
		"TargetDecision":      reflect.TypeFor[targetDecision](),
		"ContestSubmission":   reflect.TypeFor[order.ContestSubmission](),
		"Contest":             reflect.TypeFor[contestView](),
		"Receipt":             reflect.TypeFor[policy.Receipt](),
		"OrderReceipts":       reflect.TypeFor[registry.OrderReceipts](),
		"Principal":           reflect.TypeFor[access.Principal](),
		"RegisteredAuthority": reflect.TypeFor[order.RegisteredAuthority](),
	} {
		p := props(schema)
		fields := jsonFields(typ)
		for _, f := range fields {
			if _, ok := p[f]; !ok {
				t.Errorf("schema %s lacks property %s", schema, f)
			}
		}
		for k := range p {
			if !slices.Contains(fields, k) {
				t.Errorf("schema %s has property %s, which %s does not", schema, k, typ)
			}
		}
	}
}

func TestConcurrentSubmissions(t *testing.T) {
	s := newStack(t, nil)
	const n = 8
	errs := make(chan error, n)
	body := activeOrder(t)
	for range n {
		go func() {
			req, err := http.NewRequest("POST", s.url+"/v1/orders", bytes.NewReader(body))
			if err != nil {
				errs <- err
				return
			}
			req.Header.Set("Authorization", "Bearer "+testToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	l := s.list(t, "")
	seen := map[string]bool{}
	for _, o := range l.Orders {
		seen[o.ID] = true
	}
	if len(l.Orders) != n || len(seen) != n {
		t.Errorf("%d orders with %d distinct ids, want %d", len(l.Orders), len(seen), n)
	}
}
