package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
)

func (s *server) amendOrder(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readJSON(w, r)
	if !ok {
		return
	}
	a, err := order.DecodeAmendment(bytes.NewReader(body))
	if err == nil {
		var o *order.Order
		if o, err = s.reg.Amend(r.Context(), r.PathValue("id"), a, principalOf(r)); err == nil {
			writeJSON(w, http.StatusOK, s.view(o, s.reg.Now()))
			return
		}
	}
	s.fail(w, r, err)
}

// targetDecision is the body of release, reject, suspend and reinstate:
// which target (none for the whole order, where that applies) and why.
type targetDecision struct {
	Target string `json:"target"`
	Reason string `json:"reason"`
}

func (s *server) reviewTarget(do func(Registry, context.Context, string, string, string, access.Principal) (*order.Order, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req targetDecision
		if !s.readBody(w, r, &req, false) {
			return
		}
		o, err := do(s.reg, r.Context(), r.PathValue("id"), req.Target, req.Reason, principalOf(r))
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, s.view(o, s.reg.Now()))
	}
}

// contestView is a contest as the public sees it; Contact is filled only
// for reviewers and operators.
type contestView struct {
	order.Contest
	Contact   *order.ContestFiler `json:"contact,omitempty"`
	RecordURL string              `json:"record_url"`
}

func (s *server) contestView(c order.Contest, r *http.Request) contestView {
	v := contestView{Contest: c, RecordURL: s.recordURL(c.OrderID)}
	if principalOf(r).Can(access.ReadPrivate) {
		filer := c.Filer
		v.Contact = &filer
	}
	return v
}

func (s *server) fileContest(w http.ResponseWriter, r *http.Request) {
	if !s.contests.allow(clientKey(r), time.Now()) {
		w.Header().Set("Retry-After", "600")
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("too many contests from this address: at most %d an hour", s.cfg.ContestsPerHour), nil)
		return
	}
	var sub order.ContestSubmission
	if !s.readBody(w, r, &sub, false) {
		return
	}
	c, err := s.reg.FileContest(r.Context(), r.PathValue("id"), &sub)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/v1/contests/%d", c.ID))
	writeJSON(w, http.StatusCreated, s.contestView(*c, r))
}

func (s *server) orderContests(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, _, err := s.reg.Order(r.Context(), id); err != nil {
		s.fail(w, r, err)
		return
	}
	s.writeContests(w, r, id, "")
}

func (s *server) listContests(w http.ResponseWriter, r *http.Request) {
	status := r.URL.Query().Get("status")
	switch order.ContestStatus(status) {
	case "", order.ContestPending, order.ContestUpheld, order.ContestDismissed:
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("status: %q is not one of pending, upheld, dismissed", status), nil)
		return
	}
	s.writeContests(w, r, "", order.ContestStatus(status))
}

func (s *server) writeContests(w http.ResponseWriter, r *http.Request, orderID string, status order.ContestStatus) {
	list, err := s.reg.Contests(r.Context(), orderID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := []contestView{}
	for _, c := range list {
		if status == "" || c.Status == status {
			out = append(out, s.contestView(c, r))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"contests": out})
}

func contestID(w http.ResponseWriter, r *http.Request) (int64, bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		writeError(w, http.StatusNotFound, fmt.Sprintf("contest %q: no such contest", r.PathValue("id")), nil)
		return 0, false
	}
	return id, true
}

func (s *server) getContest(w http.ResponseWriter, r *http.Request) {
	id, ok := contestID(w, r)
	if !ok {
		return
	}
	c, err := s.reg.Contest(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.contestView(c, r))
}

func (s *server) decideContest(w http.ResponseWriter, r *http.Request) {
	id, ok := contestID(w, r)
	if !ok {
		return
	}
	var req struct {
		Outcome order.ContestStatus `json:"outcome"`
		Reason  string              `json:"reason"`
	}
	if !s.readBody(w, r, &req, false) {
		return
	}
	c, err := s.reg.DecideContest(r.Context(), id, req.Outcome, req.Reason, principalOf(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, s.contestView(*c, r))
}

func (s *server) orderReceipts(w http.ResponseWriter, r *http.Request) {
	rep, err := s.reg.Receipts(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *server) recordReceipt(w http.ResponseWriter, r *http.Request) {
	var rc policy.Receipt
	if !s.readBody(w, r, &rc, false) {
		return
	}
	if err := s.reg.RecordReceipt(r.Context(), rc, principalOf(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"recorded": rc})
}

func (s *server) listPoints(w http.ResponseWriter, r *http.Request) {
	points, err := s.reg.Points(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if points == nil {
		points = []policy.Receipt{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"points": points, "policy_version": s.reg.Policy().Load().Version()})
}

func (s *server) listAuthorities(w http.ResponseWriter, _ *http.Request) {
	list := s.reg.Authorities()
	if list == nil {
		list = []order.RegisteredAuthority{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"authorities": list})
}

func (s *server) registerAuthority(w http.ResponseWriter, r *http.Request) {
	var a order.RegisteredAuthority
	if !s.readBody(w, r, &a, false) {
		return
	}
	a, err := s.reg.RegisterAuthority(r.Context(), a, principalOf(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a)
}

func (s *server) listPrincipals(w http.ResponseWriter, r *http.Request) {
	list, err := s.reg.Principals(r.Context(), principalOf(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if list == nil {
		list = []access.Principal{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"principals": list})
}

func (s *server) createPrincipal(w http.ResponseWriter, r *http.Request) {
	var p access.Principal
	if !s.readBody(w, r, &p, false) {
		return
	}
	token, err := s.reg.CreatePrincipal(r.Context(), p, principalOf(r))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"principal": p, "token": token,
		"note": "the token is shown only now: store it; writ keeps only its hash"})
}

func (s *server) disablePrincipal(disabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.reg.DisablePrincipal(r.Context(), r.PathValue("id"), disabled, principalOf(r)); err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"principal": r.PathValue("id"), "disabled": disabled})
	}
}

// events streams the event log as server-sent events: every recorded
// event after ?after= (or the Last-Event-ID a reconnecting client sends),
// then each new one as it is recorded. The id of each message is the
// event's seq, so a client that reconnects misses nothing.
func (s *server) events(w http.ResponseWriter, r *http.Request) {
	var after uint64
	last := r.Header.Get("Last-Event-ID")
	if v := r.URL.Query().Get("after"); v != "" {
		last = v
	}
	if last != "" {
		n, err := strconv.ParseUint(last, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("after: %q is not an event seq", last), nil)
			return
		}
		after = n
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming is not supported here", nil)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	keepalive := time.NewTicker(30 * time.Second)
	defer keepalive.Stop()
	for {
		changed := s.reg.Changed()
		for {
			evs, err := s.reg.EventsSince(r.Context(), after, 500)
			if err != nil {
				return
			}
			for _, e := range evs {
				b, _ := json.Marshal(e)
				fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Kind, b)
				after = e.Seq
			}
			flusher.Flush()
			if len(evs) < 500 {
				break
			}
		}
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		case <-keepalive.C:
			fmt.Fprint(w, ": keep-alive\n\n")
			flusher.Flush()
		}
	}
}

// limiter is a token bucket per key: burst tokens, refilled evenly over
// per. It forgets keys whose bucket is full again, so memory stays bounded
// by the clients active in one period.
type limiter struct {
	mu      sync.Mutex
	burst   float64
	rate    float64 // tokens a second
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(burst int, per time.Duration) *limiter {
	return &limiter{burst: float64(burst), rate: float64(burst) / per.Seconds(), buckets: map[string]*bucket{}}
}

func (l *limiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buckets) > 10000 {
		for k, b := range l.buckets {
			if b.tokens+now.Sub(b.at).Seconds()*l.rate >= l.burst {
				delete(l.buckets, k)
			}
		}
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Seconds()*l.rate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// clientKey is the address a request came from, for rate limits: the
// TCP peer, without its port (proxy headers are not trusted here).
func clientKey(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		// One IPv6 client usually holds a whole /64.
		p, _ := a.Prefix(64)
		return p.String()
	}
	return host
}
