package piracyshield

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
	"github.com/writ-project/writ/registry"
)

// Writ is what the connector needs of writ: recording orders and
// amendments, the fallback release of targets held only for review (see
// Review), reading orders back, and which policy version each
// enforcement point applies. InProcess and OverHTTP are the two.
type Writ interface {
	// EnsureAuthority returns the registered authority a.ID, registering
	// a as given when it is missing and the credentials allow it.
	EnsureAuthority(ctx context.Context, a order.RegisteredAuthority) (order.RegisteredAuthority, error)
	Submit(ctx context.Context, s *order.Submission) (*order.Order, error)
	Amend(ctx context.Context, id string, a *order.Amendment) (*order.Order, error)
	// Release lets a held target be enforced; ErrNoReviewer when these
	// credentials may not.
	Release(ctx context.Context, id, target, reason string) (*order.Order, error)
	// Order returns an order and its history: the seq of each event is
	// the policy version that recorded it.
	Order(ctx context.Context, id string) (*order.Order, []order.Event, error)
	// Orders lists the orders of an authority.
	Orders(ctx context.Context, authority string) ([]*order.Order, error)
	// Enforcement returns the policy version in force and the latest
	// receipt of every enforcement point.
	Enforcement(ctx context.Context) (uint64, []policy.Receipt, error)
}

// ErrNoReviewer is returned by Writ.Release when the connector has no
// reviewer's credentials.
var ErrNoReviewer = errors.New("the connector has no reviewer credentials")

// Registry is the part of *registry.Registry that InProcess uses.
type Registry interface {
	Submit(ctx context.Context, sub *order.Submission, by access.Principal) (*order.Order, error)
	Acknowledged(id string, at time.Time)
	Amend(ctx context.Context, id string, a *order.Amendment, by access.Principal) (*order.Order, error)
	Release(ctx context.Context, id, target, reason string, by access.Principal) (*order.Order, error)
	Order(ctx context.Context, id string) (*order.Order, []order.Event, error)
	Orders() []*order.Order
	Authority(id string) (order.RegisteredAuthority, bool)
	RegisterAuthority(ctx context.Context, a order.RegisteredAuthority, by access.Principal) (order.RegisteredAuthority, error)
	Points(ctx context.Context) ([]policy.Receipt, error)
	Policy() *policy.Holder
}

// ConnectorID is the principal id under which the connector acts in
// process: events it causes name "authority:piracyshield" (orders,
// amendments), "reviewer:piracyshield" (fallback releases) or
// "operator:piracyshield" (registering AGCOM).
const ConnectorID = "piracyshield"

// InProcess is the registry of the same writ process, which the
// connector drives with its own principals: an authority principal for
// the authority EnsureAuthority names, a reviewer, an operator. Every
// order it records is acknowledged to the registry, so that propagation
// is measured for it as for an order submitted through the API.
func InProcess(reg Registry) Writ {
	return &inProcess{reg: reg,
		as:       access.Principal{ID: ConnectorID, Name: "Piracy Shield connector", Role: access.Authority},
		reviewer: access.Principal{ID: ConnectorID, Name: "Piracy Shield connector", Role: access.Reviewer},
		operator: access.Principal{ID: ConnectorID, Name: "Piracy Shield connector", Role: access.Operator},
	}
}

type inProcess struct {
	reg                    Registry
	as, reviewer, operator access.Principal
}

func (w *inProcess) EnsureAuthority(ctx context.Context, a order.RegisteredAuthority) (order.RegisteredAuthority, error) {
	w.as.Authority = a.ID
	if got, ok := w.reg.Authority(a.ID); ok {
		return got, nil
	}
	return w.reg.RegisterAuthority(ctx, a, w.operator)
}

func (w *inProcess) Submit(ctx context.Context, s *order.Submission) (*order.Order, error) {
	o, err := w.reg.Submit(ctx, s, w.as)
	if err == nil {
		w.reg.Acknowledged(o.ID, time.Now())
	}
	return o, err
}

func (w *inProcess) Amend(ctx context.Context, id string, a *order.Amendment) (*order.Order, error) {
	return w.reg.Amend(ctx, id, a, w.as)
}

func (w *inProcess) Release(ctx context.Context, id, target, reason string) (*order.Order, error) {
	return w.reg.Release(ctx, id, target, reason, w.reviewer)
}

func (w *inProcess) Order(ctx context.Context, id string) (*order.Order, []order.Event, error) {
	return w.reg.Order(ctx, id)
}

func (w *inProcess) Orders(_ context.Context, authority string) ([]*order.Order, error) {
	var out []*order.Order
	for _, o := range w.reg.Orders() {
		if o.Authority.ID == authority {
			out = append(out, o)
		}
	}
	return out, nil
}

func (w *inProcess) Enforcement(ctx context.Context) (uint64, []policy.Receipt, error) {
	// The version is read first: a point's receipt read after it can only
	// be as recent or more.
	v := w.reg.Policy().Load().Version()
	points, err := w.reg.Points(ctx)
	return v, points, err
}

// OverHTTP is a writ server's API, reached with an authority principal's
// token for AGCOM (or the operator's) and, optionally, a reviewer's token
// for the fallback release of targets held only for review.
func OverHTTP(baseURL, token, reviewerToken string, hc *http.Client) (Writ, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("writ server URL %q: want such as http://127.0.0.1:8080", baseURL)
	}
	if token == "" {
		return nil, errors.New("the writ server needs a token: the credentials of an authority principal for AGCOM")
	}
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Minute}
	}
	return &overHTTP{base: strings.TrimSuffix(baseURL, "/"), token: token, reviewer: reviewerToken, http: hc}, nil
}

type overHTTP struct {
	base, token, reviewer string
	http                  *http.Client
}

// HTTPError is an error answer of the writ API that is not a rejected
// submission (that one is an *order.InvalidError).
type HTTPError struct {
	Method, Path string
	Status       int
	Message      string
}

// Error says which call failed, and how.
func (e *HTTPError) Error() string {
	return fmt.Sprintf("writ %s %s: %d %s", e.Method, e.Path, e.Status, e.Message)
}

func (w *overHTTP) do(ctx context.Context, method, path, token string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, w.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return fmt.Errorf("writ server %s: %w", w.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("writ %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error  string             `json:"error"`
			Fields []order.FieldError `json:"fields"`
		}
		json.Unmarshal(data, &e)
		if resp.StatusCode == http.StatusBadRequest && len(e.Fields) > 0 {
			return &order.InvalidError{Fields: e.Fields}
		}
		if e.Error == "" {
			e.Error = http.StatusText(resp.StatusCode)
		}
		return &HTTPError{Method: method, Path: path, Status: resp.StatusCode, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("writ %s %s: unexpected answer: %w", method, path, err)
	}
	return nil
}

func (w *overHTTP) EnsureAuthority(ctx context.Context, a order.RegisteredAuthority) (order.RegisteredAuthority, error) {
	var list struct {
		Authorities []order.RegisteredAuthority `json:"authorities"`
	}
	if err := w.do(ctx, "GET", "/v1/authorities", "", nil, &list); err != nil {
		return a, err
	}
	for _, got := range list.Authorities {
		if got.ID == a.ID {
			return got, nil
		}
	}
	var got order.RegisteredAuthority
	err := w.do(ctx, "POST", "/v1/authorities", w.token, a, &got)
	var he *HTTPError
	if errors.As(err, &he) && (he.Status == http.StatusForbidden || he.Status == http.StatusUnauthorized) {
		return a, fmt.Errorf("authority %s is not registered on the writ server and these credentials may not register it; as the operator, run: writ authority add %s --name %q --kind %s --jurisdiction %s --deadline 30m",
			a.ID, a.ID, a.Name, a.Kind, a.Jurisdiction)
	}
	return got, err
}

func (w *overHTTP) Submit(ctx context.Context, s *order.Submission) (*order.Order, error) {
	var o order.Order
	if err := w.do(ctx, "POST", "/v1/orders", w.token, s, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

func (w *overHTTP) Amend(ctx context.Context, id string, a *order.Amendment) (*order.Order, error) {
	var o order.Order
	if err := w.do(ctx, "POST", "/v1/orders/"+url.PathEscape(id)+"/amendments", w.token, a, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

func (w *overHTTP) Release(ctx context.Context, id, target, reason string) (*order.Order, error) {
	if w.reviewer == "" {
		return nil, ErrNoReviewer
	}
	var o order.Order
	err := w.do(ctx, "POST", "/v1/orders/"+url.PathEscape(id)+"/release", w.reviewer, map[string]string{"target": target, "reason": reason}, &o)
	if err != nil {
		return nil, err
	}
	return &o, nil
}

func (w *overHTTP) Order(ctx context.Context, id string) (*order.Order, []order.Event, error) {
	var out struct {
		order.Order
		Events []order.Event `json:"events"`
	}
	if err := w.do(ctx, "GET", "/v1/orders/"+url.PathEscape(id), "", nil, &out); err != nil {
		return nil, nil, err
	}
	return &out.Order, out.Events, nil
}

func (w *overHTTP) Orders(ctx context.Context, authority string) ([]*order.Order, error) {
	var list struct {
		Orders []*order.Order `json:"orders"`
	}
	if err := w.do(ctx, "GET", "/v1/orders", "", nil, &list); err != nil {
		return nil, err
	}
	var out []*order.Order
	for _, o := range list.Orders {
		if o.Authority.ID == authority {
			out = append(out, o)
		}
	}
	return out, nil
}

func (w *overHTTP) Enforcement(ctx context.Context) (uint64, []policy.Receipt, error) {
	var out struct {
		Points        []policy.Receipt `json:"points"`
		PolicyVersion uint64           `json:"policy_version"`
	}
	if err := w.do(ctx, "GET", "/v1/points", "", nil, &out); err != nil {
		return 0, nil, err
	}
	return out.PolicyVersion, out.Points, nil
}

// notFound reports whether err says an order does not exist, in either
// Writ.
func notFound(err error) bool {
	var he *HTTPError
	return errors.Is(err, registry.ErrNotFound) || errors.As(err, &he) && he.Status == http.StatusNotFound
}

// conflict reports whether err says an order can no longer change
// (revoked, expired) or a target is not in the state the change needs.
func conflict(err error) bool {
	var he *HTTPError
	return errors.Is(err, registry.ErrConflict) || errors.As(err, &he) && he.Status == http.StatusConflict
}
