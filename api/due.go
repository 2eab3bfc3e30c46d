package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
)

func (s *server) amendOrder(w http.ResponseWriter, r *http.Request) {
	body, ok := s.readJSON(w, r, s.cfg.MaxBodyBytes)
	if !ok {
		return
	}
	a, err := order.DecodeAmendment(bytes.NewReader(body))
	if err == nil {
		err = strictKeys(body, reflect.TypeFor[order.Amendment]())
	}
	if err == nil {
		var o *order.Order
		if o, err = s.reg.Amend(r.Context(), r.PathValue("id"), a, principalOf(r)); err == nil {
			writeOrder(w, r, http.StatusOK, s.view(o, s.reg.Now()))
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
	// Filing needs no credentials, so each address may file only so many:
	// counted before the body is read, so that malformed filings count.
	if ok, wait, perHour := s.allowContest(r); !ok {
		tooMany(w, wait, fmt.Sprintf("too many contests from this address: at most %d an hour", perHour))
		return
	}
	var sub order.ContestSubmission
	if !s.readBody(w, r, &sub, false) {
		return
	}
	c, err := s.reg.FileContest(r.Context(), r.PathValue("id"), &sub, principalOf(r))
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
	retired, err := s.reg.RetiredPoints(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if retired == nil {
		retired = []policy.Retirement{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"points": points, "retired": retired, "policy_version": s.reg.Policy().Load().Version()})
}

// retirePoint takes an enforcement point out of service.
func (s *server) retirePoint(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Point string `json:"point"`
	}
	if !s.readBody(w, r, &req, false) {
		return
	}
	if strings.TrimSpace(req.Point) == "" {
		s.fail(w, r, &order.InvalidError{Fields: []order.FieldError{{Field: "point", Message: "must name the enforcement point, as GET /v1/points lists it"}}})
		return
	}
	if err := s.reg.RetirePoint(r.Context(), req.Point, principalOf(r)); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"point": req.Point, "retired": true})
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

// newPrincipal is the body of POST /v1/principals: what the operator
// chooses, and nothing the registry sets (created, disabled).
type newPrincipal struct {
	ID        string      `json:"id"`
	Name      string      `json:"name"`
	Role      access.Role `json:"role"`
	Authority string      `json:"authority"`
}

func (s *server) createPrincipal(w http.ResponseWriter, r *http.Request) {
	var req newPrincipal
	if !s.readBody(w, r, &req, false) {
		return
	}
	p := access.Principal{ID: req.ID, Name: req.Name, Role: req.Role, Authority: req.Authority}
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
// eventWriteTimeout bounds each write of an event stream, and
// eventStreamRetry is the Retry-After of a stream refused for its
// address holding too many.
const (
	eventWriteTimeout = time.Minute
	eventStreamRetry  = 30 * time.Second
)

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
	// Without credentials, an address holds a bounded number of streams:
	// each holds a connection and a goroutine for as long as it likes.
	if g := guardedOf(r); g != nil && g.principal.Role == access.Anonymous.Role {
		done, ok := g.guard.openStream(g.client)
		if !ok {
			tooMany(w, eventStreamRetry, fmt.Sprintf("too many event streams from this address: at most %d at once", g.guard.cfg.EventStreams))
			return
		}
		defer done()
	}
	// A stream outlives the server's write timeout: each write gets its
	// own deadline instead, so a client that stops reading is still cut
	// off, one that reads is not.
	rc := http.NewResponseController(w)
	deadline := func() { rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout)) }
	deadline()
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
			deadline()
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
			deadline()
			fmt.Fprint(w, ": keep-alive\n\n")
			flusher.Flush()
		}
	}
}

// allowContest spends one of the client's contests: the Guard's, or,
// without one in front, the API's own.
func (s *server) allowContest(r *http.Request) (ok bool, wait time.Duration, perHour int) {
	if g := guardedOf(r); g != nil {
		ok, wait = g.guard.allowContest(g.client)
		return ok, wait, g.guard.cfg.ContestsPerHour
	}
	ok, wait = s.contests.allow(clientAddress(r, nil))
	return ok, wait, s.cfg.ContestsPerHour
}
