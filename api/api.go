// Package api is writ's HTTP interface: order intake and revocation for
// authorities, read access to the public record, decisions ("would this
// name be blocked for this client?") and Prometheus metrics. The
// OpenAPI description is in openapi.yaml, served at /v1/openapi.yaml.
package api

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/writ-project/writ/jurisdiction"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/registry"
	"github.com/writ-project/writ/scope"
)

// Registry is the order registry the API drives; registry.Registry is one.
type Registry interface {
	Submit(ctx context.Context, sub *order.Submission, principal string) (*order.Order, error)
	Acknowledged(id string, at time.Time)
	Revoke(ctx context.Context, id, reason, principal string) (*order.Order, error)
	Order(ctx context.Context, id string) (*order.Order, []order.Event, error)
	Orders() []*order.Order
	Policy() *policy.Holder
	Now() time.Time
}

// Scoper maps a client address to its jurisdiction; scope.Resolver is one.
type Scoper interface {
	Lookup(netip.Addr) (jurisdiction.Code, scope.Source)
}

// Config configures the API.
type Config struct {
	// Token is the bearer token that authorises changes. Required.
	Token string
	// PublicURL is the externally visible base URL, used in links to the
	// public record ("https://writ.isp.example").
	PublicURL string
	// MaxBodyBytes bounds a request body. Default 64 MiB, enough for an
	// order of a million names.
	MaxBodyBytes int64
	// BlockAnswer describes the DNS answer to a blocked query, for
	// decisions ("REFUSED with EDE 16 (Censored)").
	BlockAnswer string
	// Gatherer supplies /metrics. Nil serves no metrics.
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
}

// DefaultMaxBodyBytes bounds request bodies unless configured.
const DefaultMaxBodyBytes = 64 << 20

//go:embed openapi.yaml
var openAPI []byte

type server struct {
	cfg Config
	reg Registry
	sc  Scoper
}

// New returns the API's HTTP handler.
func New(cfg Config, reg Registry, sc Scoper) (http.Handler, error) {
	if cfg.Token == "" {
		return nil, errors.New("api: no bearer token configured")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	s := &server{cfg: cfg, reg: reg, sc: sc}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/orders", s.authorized(s.createOrder))
	mux.HandleFunc("GET /v1/orders", s.listOrders)
	mux.HandleFunc("GET /v1/orders/{id}", s.getOrder)
	mux.HandleFunc("POST /v1/orders/{id}/revoke", s.authorized(s.revokeOrder))
	mux.HandleFunc("GET /v1/check", s.check)
	mux.HandleFunc("GET /v1/openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(openAPI)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "policy_version": s.reg.Policy().Load().Version()})
	})
	if cfg.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	}
	mux.HandleFunc("GET /orders/{id}", s.recordPage)
	mux.HandleFunc("GET /{$}", s.indexPage)
	return s.logged(mux), nil
}

// RecordURL is the public record page of an order under base.
func RecordURL(base, id string) string { return strings.TrimSuffix(base, "/") + "/orders/" + id }

func (s *server) recordURL(id string) string { return RecordURL(s.cfg.PublicURL, id) }

// logged logs each mutating request and every server error.
func (s *server) logged(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		start := time.Now()
		h.ServeHTTP(rec, r)
		if r.Method != http.MethodGet || rec.status >= 500 {
			s.cfg.Logger.Info("http request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
				"remote", r.RemoteAddr, "duration", time.Since(start))
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// authorized admits requests bearing the configured token. Comparison
// takes constant time, so response timing does not reveal the token.
func (s *server) authorized(next func(http.ResponseWriter, *http.Request, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// The scheme is case-insensitive (RFC 9110, section 11.1).
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(token)), []byte(s.cfg.Token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="writ"`)
			writeError(w, http.StatusUnauthorized, "this request changes the record and needs the API token: send \"Authorization: Bearer <token>\"", nil)
			return
		}
		next(w, r, "operator")
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
func (s *server) readJSON(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("Content-Type %q: send application/json", ct), nil)
			return nil, false
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body exceeds %d bytes", s.cfg.MaxBodyBytes), nil)
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

func (s *server) createOrder(w http.ResponseWriter, r *http.Request, principal string) {
	body, ok := s.readJSON(w, r)
	if !ok {
		return
	}
	sub, err := order.DecodeBytes(body)
	if err == nil {
		var o *order.Order
		o, err = s.reg.Submit(r.Context(), sub, principal)
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
			writeJSON(w, http.StatusCreated, v)
			return
		}
	}
	var inv *order.InvalidError
	if errors.As(err, &inv) {
		writeError(w, http.StatusBadRequest, "order rejected: nothing was recorded", inv.Fields)
		return
	}
	s.cfg.Logger.Error("order submission failed", "err", err)
	writeError(w, http.StatusInternalServerError, "the order could not be recorded; nothing was enforced: "+err.Error(), nil)
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

func (s *server) revokeOrder(w http.ResponseWriter, r *http.Request, principal string) {
	body, ok := s.readJSON(w, r)
	if !ok {
		return
	}
	var req struct {
		Reason string `json:"reason"`
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			writeError(w, http.StatusBadRequest, "revocation body: "+err.Error()+` (expected {"reason": "..."})`, nil)
			return
		}
	}
	o, err := s.reg.Revoke(r.Context(), r.PathValue("id"), req.Reason, principal)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error(), nil)
	case errors.Is(err, registry.ErrConflict):
		writeError(w, http.StatusConflict, err.Error(), nil)
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error(), nil)
	default:
		writeJSON(w, http.StatusOK, s.view(o, s.reg.Now()))
	}
}
