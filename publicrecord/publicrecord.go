// Package publicrecord is writ's public account of the orders it
// enforces: a plain HTML page per order and an index with search and
// filters, the transparency report (counts per authority, jurisdiction,
// kind and outcome, and the median time to enforce), and each order as a
// Lumen notice and as a DSA statement of reasons, with an optional push
// of the notices to a Lumen database.
//
// Everything here is public. It shows an order's public fields and its
// events' public text, never who acted (an event's principal) nor who
// filed a contest.
package publicrecord

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/writ-project/writ/order"
)

// Records is the order record the public pages read; registry.Registry
// is one.
type Records interface {
	// Orders returns every order.
	Orders() []*order.Order
	// Order returns one order and its history in seq order.
	Order(ctx context.Context, id string) (*order.Order, []order.Event, error)
	// Now is the time statuses are computed at.
	Now() time.Time
}

// Config configures the public record.
type Config struct {
	// PublicURL is the externally visible base URL of the server, used in
	// links that leave the page (exports, notices).
	PublicURL string
	// Operator names who applies the blocks: the recipient of the orders
	// in Lumen notices and DSA statements. Empty: "the operator of
	// <public URL>".
	Operator string
	// Lumen, if set, pushes every order to a Lumen database and links
	// each page to its notice.
	Lumen  *Lumen
	Logger *slog.Logger
}

// Server serves the public record. Create it with New.
type Server struct {
	cfg Config
	rec Records
	mux *http.ServeMux
}

// New returns the public record's HTTP handler over rec.
func New(cfg Config, rec Records) *Server {
	cfg.PublicURL = strings.TrimSuffix(cfg.PublicURL, "/")
	if cfg.Operator == "" {
		cfg.Operator = "the operator of " + cfg.PublicURL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, rec: rec, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /{$}", s.indexPage)
	s.mux.HandleFunc("GET /orders/{id}", s.orderPage)
	s.mux.HandleFunc("GET /v1/report", s.report)
	s.mux.HandleFunc("GET /v1/orders/{id}/lumen", s.lumenExport)
	s.mux.HandleFunc("GET /v1/orders/{id}/dsa", s.dsaExport)
	return s
}

// Routes lists the method and path patterns the Server answers, for a
// caller that mounts it beside other handlers.
func Routes() []string {
	return []string{"GET /{$}", "GET /orders/{id}", "GET /v1/report", "GET /v1/orders/{id}/lumen", "GET /v1/orders/{id}/dsa"}
}

// ServeHTTP serves the public record. Every answer carries the security
// headers, the exports and the mux's own 404 and 405 as well as the
// pages.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w.Header())
	if strings.HasPrefix(s.cfg.PublicURL, "https://") {
		// Served over HTTPS, the record asks browsers to come back only
		// that way: a downgraded page could be altered on the wire.
		w.Header().Set("Strict-Transport-Security", "max-age=31536000")
	}
	s.mux.ServeHTTP(w, r)
}

// RecordURL is the public page of order id under base: the URL block
// notices point to.
func RecordURL(base, id string) string { return strings.TrimSuffix(base, "/") + "/orders/" + id }

// errNoOrder says that no order has the requested id.
var errNoOrder = errors.New("no order with this id is on record")

// lookup returns an order and its history. Records says nothing about why
// a lookup failed, so an id absent from the list is "not found" and any
// other failure is the server's.
func (s *Server) lookup(ctx context.Context, id string) (*order.Order, []order.Event, error) {
	o, events, err := s.rec.Order(ctx, id)
	if err == nil {
		return o, events, nil
	}
	if !slices.ContainsFunc(s.rec.Orders(), func(o *order.Order) bool { return o.ID == id }) {
		return nil, nil, errNoOrder
	}
	s.cfg.Logger.Error("reading an order for the public record", "order", id, "err", err)
	return nil, nil, err
}

// securityHeaders are sent with every answer: nothing but a page's own
// inline style may load and no script at all, nothing may frame it (the
// record cannot be dressed up inside another site), no type is sniffed,
// no referrer leaks to the sites an order's legal basis links to, and no
// other window keeps a handle on it.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}
