// Package api is writ's HTTP interface: order intake and revocation for
// authorities, read access to the public record, decisions ("would this
// name be blocked for this client?") and Prometheus metrics. The
// OpenAPI description is in openapi.yaml, served at /v1/openapi.yaml.
package api

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gopkg.in/yaml.v3"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/registry"
	"github.com/writ-project/writ/scope"
)

// Registry is the order registry the API drives; registry.Registry is one.
type Registry interface {
	Submit(ctx context.Context, sub *order.Submission, by access.Principal) (*order.Order, error)
	Acknowledged(id string, at time.Time)
	Revoke(ctx context.Context, id, reason string, by access.Principal) (*order.Order, error)
	Amend(ctx context.Context, id string, a *order.Amendment, by access.Principal) (*order.Order, error)
	Hold(ctx context.Context, id, target, reason string, by access.Principal) (*order.Order, error)
	Release(ctx context.Context, id, target, reason string, by access.Principal) (*order.Order, error)
	Reject(ctx context.Context, id, target, reason string, by access.Principal) (*order.Order, error)
	Suspend(ctx context.Context, id, target, reason string, by access.Principal) (*order.Order, error)
	Reinstate(ctx context.Context, id, target, reason string, by access.Principal) (*order.Order, error)
	FileContest(ctx context.Context, id string, sub *order.ContestSubmission, by access.Principal) (*order.Contest, error)
	DecideContest(ctx context.Context, id int64, outcome order.ContestStatus, reason string, by access.Principal) (*order.Contest, error)
	Contest(ctx context.Context, id int64) (order.Contest, error)
	Contests(ctx context.Context, orderID string) ([]order.Contest, error)
	Order(ctx context.Context, id string) (*order.Order, []order.Event, error)
	Orders() []*order.Order
	RegisterAuthority(ctx context.Context, a order.RegisteredAuthority, by access.Principal) (order.RegisteredAuthority, error)
	Authorities() []order.RegisteredAuthority
	CreatePrincipal(ctx context.Context, p access.Principal, by access.Principal) (string, error)
	Principals(ctx context.Context, by access.Principal) ([]access.Principal, error)
	DisablePrincipal(ctx context.Context, id string, disabled bool, by access.Principal) error
	Authenticate(ctx context.Context, token string) (access.Principal, error)
	RecordReceipt(ctx context.Context, rc policy.Receipt, by access.Principal) error
	Receipts(ctx context.Context, id string) (*registry.OrderReceipts, error)
	Points(ctx context.Context) ([]policy.Receipt, error)
	RetirePoint(ctx context.Context, point string, by access.Principal) error
	RetiredPoints(ctx context.Context) ([]policy.Retirement, error)
	EventsSince(ctx context.Context, after uint64, limit int) ([]order.Event, error)
	Changed() <-chan struct{}
	Policy() *policy.Holder
	Now() time.Time
}

// Scoper maps a client address to its jurisdiction; scope.Resolver is one.
type Scoper interface {
	Lookup(netip.Addr) (jurisdiction.Code, scope.Source)
}

// Config configures the API.
type Config struct {
	// PublicURL is the externally visible base URL, used in links to the
	// public record ("https://writ.isp.example").
	PublicURL string
	// MaxBodyBytes bounds a request body. Default 64 MiB, enough for an
	// order of a million names.
	MaxBodyBytes int64
	// BlockAnswer describes the DNS answer to a blocked query, for
	// decisions ("REFUSED with EDE 16 (Censored)").
	BlockAnswer string
	// ContestsPerHour bounds the contests one client address may file per
	// hour (a burst of that many, refilled evenly) when no Guard stands in
	// front of the API; a Guard applies its own RateLimit. Default 10.
	ContestsPerHour int
	// Gatherer supplies /metrics. Nil serves no metrics.
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
}

// DefaultMaxBodyBytes bounds request bodies unless configured.
const DefaultMaxBodyBytes = 64 << 20

// maxSmallBody bounds the bodies of every request but orders and
// amendments, which carry lists of targets: a reason, a contest, a
// principal or a receipt fits in far less.
const maxSmallBody = 64 << 10

//go:embed openapi.yaml
var openAPI []byte

type server struct {
	cfg      Config
	reg      Registry
	sc       Scoper
	contests *limiter // when no Guard is in front
	spec     []byte   // openapi.yaml as JSON
}

// New returns the API's HTTP handler.
func New(cfg Config, reg Registry, sc Scoper) (http.Handler, error) {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.ContestsPerHour <= 0 {
		cfg.ContestsPerHour = DefaultContestsPerHour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	spec, err := specJSON()
	if err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, reg: reg, sc: sc, spec: spec,
		contests: newLimiter(float64(cfg.ContestsPerHour)/3600, cfg.ContestsPerHour, DefaultMaxClients, 0, nil)}
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.HandleFunc(rt.pattern, rt.handler)
	}
	return s.logged(s.authenticated(mux)), nil
}

// route is one endpoint of the API.
type route struct {
	pattern string
	handler http.HandlerFunc
}

func (s *server) routes() []route {
	// Routes that change the record, contests apart, refuse anonymous
	// requests before reading anything.
	auth := needsCredentials
	rts := []route{
		{"POST /v1/orders", auth(s.createOrder)},
		{"GET /v1/orders", s.listOrders},
		{"GET /v1/orders/{id}", s.getOrder},
		{"POST /v1/orders/{id}/revoke", auth(s.revokeOrder)},
		{"POST /v1/orders/{id}/amendments", auth(s.amendOrder)},
		{"POST /v1/orders/{id}/hold", auth(s.reviewTarget(Registry.Hold))},
		{"POST /v1/orders/{id}/release", auth(s.reviewTarget(Registry.Release))},
		{"POST /v1/orders/{id}/reject", auth(s.reviewTarget(Registry.Reject))},
		{"POST /v1/orders/{id}/suspend", auth(s.reviewTarget(Registry.Suspend))},
		{"POST /v1/orders/{id}/reinstate", auth(s.reviewTarget(Registry.Reinstate))},
		{"POST /v1/orders/{id}/contests", s.fileContest},
		{"GET /v1/orders/{id}/contests", s.orderContests},
		{"GET /v1/orders/{id}/receipts", s.orderReceipts},
		{"GET /v1/contests", s.listContests},
		{"GET /v1/contests/{id}", s.getContest},
		{"POST /v1/contests/{id}/decision", auth(s.decideContest)},
		{"GET /v1/authorities", s.listAuthorities},
		{"POST /v1/authorities", auth(s.registerAuthority)},
		{"GET /v1/principals", auth(s.listPrincipals)},
		{"POST /v1/principals", auth(s.createPrincipal)},
		{"POST /v1/principals/{id}/disable", auth(s.disablePrincipal(true))},
		{"POST /v1/principals/{id}/enable", auth(s.disablePrincipal(false))},
		{"POST /v1/receipts", auth(s.recordReceipt)},
		{"GET /v1/points", s.listPoints},
		{"POST /v1/points/retire", auth(s.retirePoint)},
		{"GET /v1/events", s.events},
		{"GET /v1/check", s.check},
		{"GET /v1/openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/yaml")
			w.Write(openAPI)
		}},
		{"GET /v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write(s.spec)
		}},
		{"GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "policy_version": s.reg.Policy().Load().Version()})
		}},
	}
	if s.cfg.Gatherer != nil {
		rts = append(rts, route{"GET /metrics", promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{}).ServeHTTP})
	}
	return rts
}

// OpenAPI returns the OpenAPI description of a node's whole HTTP
// interface, in YAML.
func OpenAPI() []byte { return openAPI }

// specJSON converts the embedded OpenAPI YAML to JSON once, at start.
func specJSON() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(openAPI, &doc); err != nil {
		return nil, fmt.Errorf("api: openapi.yaml: %w", err)
	}
	b, err := json.Marshal(jsonCompatible(doc))
	if err != nil {
		return nil, fmt.Errorf("api: openapi.yaml: %w", err)
	}
	return b, nil
}

// jsonCompatible turns YAML's map[string]any (and, for older decoders,
// map[any]any) trees into something encoding/json accepts.
func jsonCompatible(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = jsonCompatible(e)
		}
		return t
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[fmt.Sprint(k)] = jsonCompatible(e)
		}
		return m
	case []any:
		for i, e := range t {
			t[i] = jsonCompatible(e)
		}
	}
	return v
}

// ServedElsewhere reports whether a path of openapi.yaml is served in
// front of this handler, by the public record and the ledger, rather than
// by it: the document describes the whole HTTP interface of a node.
func ServedElsewhere(path string) bool {
	return path == "/" || path == "/orders/{id}" || path == "/v1/report" ||
		strings.HasPrefix(path, "/v1/ledger/") || strings.HasSuffix(path, "/lumen") || strings.HasSuffix(path, "/dsa")
}

// RecordURL is the public record page of an order under base.
func RecordURL(base, id string) string { return strings.TrimSuffix(base, "/") + "/orders/" + id }

func (s *server) recordURL(id string) string { return RecordURL(s.cfg.PublicURL, id) }

// logged logs each mutating request, with its principal, and every
// server error.
func (s *server) logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		who := new(access.Principal)
		*who = access.Anonymous
		start := time.Now()
		h.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), whoKey{}, who)))
		if r.Method != http.MethodGet || rec.status >= 500 {
			s.cfg.Logger.Info("http request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
				"principal", who.String(), "remote", r.RemoteAddr, "duration", time.Since(start))
		}
	})
}

// whoKey carries, from logged to authenticated, where to note the
// request's principal for the log line.
type whoKey struct{}

// Flush lets server-sent events through the recorder.
func (r *statusRecorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

// Unwrap lets an http.ResponseController reach the connection: an
// event stream sets a deadline per write.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

type principalKey struct{}

// authenticated identifies the principal of each request: the one a
// Guard in front found or, without a Guard, the holder of its bearer
// token; requests without one act as the public. A token that matches
// no enabled credentials is refused outright rather than demoted to
// public, so that a mistyped token is noticed. Every answer carries the
// API's security headers.
func (s *server) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header.Get("Authorization")
		headers(w.Header(), h != "")
		p := access.Anonymous
		if g := guardedOf(r); g != nil {
			p = g.principal
		} else if h != "" {
			var err error
			if p, err = bearer(r.Context(), h, s.reg); err != nil {
				if !refusedCredentials(err) {
					s.fail(w, r, err)
					return
				}
				unauthorized(w, err.Error())
				return
			}
		}
		if who, _ := r.Context().Value(whoKey{}).(*access.Principal); who != nil {
			*who = p
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// needsCredentials refuses requests of the public with 401.
func needsCredentials(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if principalOf(r).Role == access.Public {
			unauthorized(w, "this request changes the record and needs credentials: send \"Authorization: Bearer <token>\"")
			return
		}
		next(w, r)
	}
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="writ"`)
	writeError(w, http.StatusUnauthorized, msg, nil)
}

func principalOf(r *http.Request) access.Principal {
	if p, ok := r.Context().Value(principalKey{}).(access.Principal); ok {
		return p
	}
	return access.Anonymous
}

// fail answers an error from the registry with the status it calls for.
func (s *server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var inv *order.InvalidError
	switch {
	case errors.As(err, &inv):
		writeError(w, http.StatusBadRequest, "rejected: nothing was changed", inv.Fields)
	case errors.Is(err, registry.ErrForbidden) && principalOf(r).Role == access.Public:
		unauthorized(w, err.Error())
	case errors.Is(err, registry.ErrForbidden):
		writeError(w, http.StatusForbidden, err.Error(), nil)
	case errors.Is(err, registry.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error(), nil)
	case errors.Is(err, registry.ErrConflict):
		writeError(w, http.StatusConflict, err.Error(), nil)
	default:
		s.cfg.Logger.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg := "the record could not be read: "
		if r.Method != http.MethodGet {
			msg = "the change could not be recorded; nothing was changed: "
		}
		writeError(w, http.StatusInternalServerError, msg+err.Error(), nil)
	}
}

// errorBody is every error response: a sentence, and for a rejected
// order the list of fields at fault.
type errorBody struct {
	Error  string             `json:"error"`
	Fields []order.FieldError `json:"fields,omitempty"`
}

func writeError(w http.ResponseWriter, status int, msg string, fields []order.FieldError) {
	writeJSON(w, status, errorBody{Error: msg, Fields: fields})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// readJSON checks the content type and size limit of a request body.
// Requests of other types are refused so that a browser form on another
// site cannot post to the API.
func (s *server) readJSON(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: send application/json", ct), nil)
			return nil, false
		}
	}
	limit = min(limit, s.cfg.MaxBodyBytes)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", limit), nil)
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "reading request body: "+err.Error(), nil)
		return nil, false
	}
	return body, true
}

// orderView is an order as the API shows it.
type orderView struct {
	*order.Order
	Status    order.Status  `json:"status"`
	Enforced  bool          `json:"enforced"`
	RecordURL string        `json:"record_url"`
	Events    []order.Event `json:"events,omitempty"`
	Warnings  []string      `json:"warnings,omitempty"`
}

func (s *server) view(o *order.Order, now time.Time) orderView {
	return orderView{Order: o, Status: o.StatusAt(now), Enforced: o.EnforcedAt(now), RecordURL: s.recordURL(o.ID)}
}

// orderSummary is what a submission or an amendment answers to a client
// that sent "Prefer: return=minimal" (RFC 7240): enough to know what
// became of the order without the whole of it, which for an order of
// thousands of targets costs more to encode than the change did.
type orderSummary struct {
	ID         string       `json:"id"`
	Status     order.Status `json:"status"`
	Enforced   bool         `json:"enforced"`
	Targets    int          `json:"targets"`
	Held       int          `json:"held"`
	Amendments int          `json:"amendments,omitempty"`
	RecordURL  string       `json:"record_url"`
	Warnings   []string     `json:"warnings,omitempty"`
}

// writeOrder answers a change with the order as it stands (v), or with
// its summary when the client prefers a minimal answer.
func writeOrder(w http.ResponseWriter, r *http.Request, status int, v orderView) {
	w.Header().Add("Vary", "Prefer")
	if !prefersMinimal(r) {
		writeJSON(w, status, v)
		return
	}
	sum := orderSummary{ID: v.ID, Status: v.Status, Enforced: v.Enforced, Targets: len(v.Targets),
		Amendments: v.Amendments, RecordURL: v.RecordURL, Warnings: v.Warnings}
	for _, t := range v.Targets {
		if t.State == order.TargetHeld {
			sum.Held++
		}
	}
	w.Header().Set("Preference-Applied", "return=minimal")
	writeJSON(w, status, sum)
}

// prefersMinimal reports whether a request's Prefer headers (RFC 7240:
// comma-separated preferences, each with optional parameters after ';',
// names compared without case) hold return=minimal.
func prefersMinimal(r *http.Request) bool {
	for _, h := range r.Header.Values("Prefer") {
		for _, pref := range strings.Split(h, ",") {
			pref, _, _ = strings.Cut(pref, ";")
			name, value, _ := strings.Cut(strings.TrimSpace(pref), "=")
			if strings.EqualFold(strings.TrimSpace(name), "return") && strings.EqualFold(strings.Trim(strings.TrimSpace(value), `"`), "minimal") {
				return true
			}
		}
	}
	return false
}

func (s *server) createOrder(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readJSON(w, r, s.cfg.MaxBodyBytes)
	if !ok {
		return
	}
	sub, err := order.DecodeBytes(body)
	if err == nil {
		err = strictKeys(body, reflect.TypeFor[order.Submission]())
	}
	if err == nil {
		var o *order.Order
		o, err = s.reg.Submit(r.Context(), sub, principalOf(r))
		if err == nil {
			now := s.reg.Now()
			v := s.view(o, now)
			switch v.Status {
			case order.StatusExpired:
				v.Warnings = append(v.Warnings, fmt.Sprintf("the order expired on %s: it is on record but blocks nothing", o.Expires.Format(time.RFC3339)))
			case order.StatusScheduled:
				v.Warnings = append(v.Warnings, fmt.Sprintf("the order takes effect on %s", o.Effective.Format(time.RFC3339)))
			case order.StatusHeld:
				v.Warnings = append(v.Warnings, "every target is held for review: nothing is blocked until a reviewer releases it")
			}
			for _, t := range o.Targets {
				if t.State == order.TargetHeld && v.Status != order.StatusHeld {
					v.Warnings = append(v.Warnings, fmt.Sprintf("target %s is held for review: %s", t, t.HoldReason))
				}
			}
			w.Header().Set("Location", "/v1/orders/"+o.ID)
			// The order is recorded and enforced: the acknowledgement starts
			// the propagation clock.
			s.reg.Acknowledged(o.ID, time.Now())
			writeOrder(w, r, http.StatusCreated, v)
			return
		}
	}
	var inv *order.InvalidError
	if errors.As(err, &inv) {
		writeError(w, http.StatusBadRequest, "order rejected: nothing was recorded", inv.Fields)
		return
	}
	s.fail(w, r, err)
}

func (s *server) listOrders(w http.ResponseWriter, r *http.Request) {
	now := s.reg.Now()
	want := r.URL.Query().Get("status")
	switch order.Status(want) {
	case "", order.StatusHeld, order.StatusScheduled, order.StatusActive, order.StatusExpired, order.StatusRevoked, order.StatusSuspended:
	default:
		// A misspelt status would otherwise list no orders, as if none had it.
		writeError(w, http.StatusBadRequest, fmt.Sprintf("status: %q is not one of held, scheduled, active, expired, revoked, suspended", want), nil)
		return
	}
	out := []orderView{}
	for _, o := range s.reg.Orders() {
		v := s.view(o, now)
		if want == "" || string(v.Status) == want {
			out = append(out, v)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"orders": out, "policy_version": s.reg.Policy().Load().Version()})
}

func (s *server) getOrder(w http.ResponseWriter, r *http.Request) {
	o, events, err := s.reg.Order(r.Context(), r.PathValue("id"))
	if errors.Is(err, registry.ErrNotFound) {
		writeError(w, http.StatusNotFound, err.Error(), nil)
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error(), nil)
		return
	}
	v := s.view(o, s.reg.Now())
	v.Events = events
	writeJSON(w, http.StatusOK, v)
}

func (s *server) revokeOrder(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Reason string `json:"reason"`
	}
	if !s.readBody(w, r, &req, true) {
		return
	}
	o, err := s.reg.Revoke(r.Context(), r.PathValue("id"), req.Reason, principalOf(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.view(o, s.reg.Now()))
}

// readBody decodes a small JSON request body strictly into v: one JSON
// object, no unknown field, no field given twice or in another case
// (encoding/json alone would take the last of two, and "Reason" for
// "reason"). An empty body is allowed when optional. It answers the
// error itself.
func (s *server) readBody(w http.ResponseWriter, r *http.Request, v any, optional bool) bool {
	body, ok := s.readJSON(w, r, maxSmallBody)
	if !ok {
		return false
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		if optional {
			return true
		}
		writeError(w, http.StatusBadRequest, "request body: empty; expected a JSON object", nil)
		return false
	}
	if trimmed[0] != '{' {
		writeError(w, http.StatusBadRequest, "request body: expected a JSON object", nil)
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "request body: "+err.Error(), nil)
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "request body: data after the JSON object; send one object", nil)
		return false
	}
	if err := strictKeys(body, reflect.TypeOf(v)); err != nil {
		var inv *order.InvalidError
		errors.As(err, &inv)
		writeError(w, http.StatusBadRequest, "request body rejected: nothing was changed", inv.Fields)
		return false
	}
	return true
}
