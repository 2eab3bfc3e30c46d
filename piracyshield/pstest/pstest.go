// Package pstest is a test double of the provider-facing HTTP API of
// Italy's Piracy Shield platform, serving on loopback. It is written from
// the platform's published behaviour: the response envelope and error
// codes, login with JWT access and refresh tokens, the ticket and item
// lists in JSON and plain text with their SHA-256 checksums, and the
// calls by which a provider sets an item processed or unprocessed, with
// the platform's validation rules and its 48-hour update window.
//
// Tests publish tickets as the platform's reporters would, inject the
// failures a real deployment shows (expired tokens, rate limiting, a
// checksum that does not match, malformed items), and read back what the
// provider reported.
package pstest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Genres of items, as the platform names them.
const (
	FQDN = "fqdn"
	IPv4 = "ipv4"
	IPv6 = "ipv6"
)

// Item statuses, as the platform reports them.
const (
	StatusPending     = "pending"
	StatusProcessed   = "processed"
	StatusUnprocessed = "unprocessed"
)

// Options configure the double. The zero value is usable.
type Options struct {
	// Email and Password are the provider account's credentials
	// (default "provider@isp.example.it" and "correct horse").
	Email, Password string
	// AccessTTL and RefreshTTL are the tokens' lifetimes (the platform's:
	// one hour and seven days).
	AccessTTL, RefreshTTL time.Duration
	// UpdateWindow is how long after an item's creation a provider may
	// still set its status (the platform's: 48 hours).
	UpdateWindow time.Duration
	// RevokeWindow hides a new ticket from providers while its reporter
	// may still withdraw it (the platform's: 75 seconds). Default zero:
	// tickets are visible at once.
	RevokeWindow time.Duration
	// Now is the double's clock (default time.Now).
	Now func() time.Time
}

// Ticket is a blocking ticket as a reporter creates it.
type Ticket struct {
	// ID is 32 letters or digits; Publish draws one when it is empty.
	ID string
	// DDAID is the regulator's authorisation, such as "1234/24/DDA".
	DDAID       string
	Description string
	FQDN        []string
	IPv4        []string
	IPv6        []string
}

// Report is one call by which the provider set an item's status.
type Report struct {
	Value     string
	Status    string // StatusProcessed or StatusUnprocessed
	Reason    string // for unprocessed: ALREADY_BLOCKED, UNDEFINED or UNKNOWN
	Note      string
	Timestamp string
	// At is when the double received the report.
	At time.Time
}

// Item is an item's state on the platform.
type Item struct {
	TicketID  string
	Value     string
	Genre     string
	Status    string
	Reason    string
	Note      string
	Timestamp string
	Created   time.Time
	// Hidden items (whitelisted, duplicate, flagged as an error or made
	// inactive) are out of every provider list: to a provider, unblocked.
	Hidden bool
}

type ticket struct {
	id, dda, description string
	created              time.Time
}

// Server is a running double.
type Server struct {
	opts       Options
	providerID string
	access     signer
	refresh    signer
	ln         net.Listener
	srv        *http.Server

	mu        sync.Mutex
	tickets   []*ticket
	items     []*Item
	blacklist map[string]bool
	// Tokens of an older generation are expired (ExpireTokens,
	// ExpireAccessTokens).
	generation, accessGeneration int
	faults                       map[string][]fault
	badChecksums                 int
	reports                      []Report
	reported                     chan struct{} // closed at each report
	logins                       int
	refreshes                    int
	// requests remembers when each path was requested.
	requests map[string][]time.Time
}

type fault struct {
	status        int
	code, message string
}

// Start serves a double on a free loopback port.
func Start(opts Options) (*Server, error) {
	if opts.Email == "" {
		opts.Email = "provider@isp.example.it"
	}
	if opts.Password == "" {
		opts.Password = "correct horse"
	}
	if opts.AccessTTL == 0 {
		opts.AccessTTL = time.Hour
	}
	if opts.RefreshTTL == 0 {
		opts.RefreshTTL = 7 * 24 * time.Hour
	}
	if opts.UpdateWindow == 0 {
		opts.UpdateWindow = 48 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("pstest: %w", err)
	}
	s := &Server{
		opts:       opts,
		providerID: newID(),
		access:     newSigner(),
		refresh:    newSigner(),
		ln:         ln,
		blacklist:  map[string]bool{},
		faults:     map[string][]fault{},
		reported:   make(chan struct{}),
		requests:   map[string][]time.Time{},
	}
	s.srv = &http.Server{Handler: s.handler(), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// URL is the base of the API, such as http://127.0.0.1:4321/api/v1.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() + "/api/v1" }

// Email is the provider account's login.
func (s *Server) Email() string { return s.opts.Email }

// Password is the provider account's password.
func (s *Server) Password() string { return s.opts.Password }

// Close stops serving.
func (s *Server) Close() error { return s.srv.Close() }

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Publish creates a ticket as the platform does: it validates every field
// with the platform's rules and rejects the ticket whole with the
// platform's error code if one is wrong. It returns the ticket id.
func (s *Server) Publish(t Ticket) (string, error) {
	if t.ID == "" {
		t.ID = newID()
	}
	switch {
	case len(t.FQDN)+len(t.IPv4)+len(t.IPv6) == 0:
		return "", &Error{Code: "4001", Message: "No data provided."}
	case !validTicketID(t.ID):
		return "", &Error{Code: "4002", Message: "Non valid ticket identifier."}
	case t.DDAID != "" && !ddaRule.MatchString(t.DDAID):
		return "", &Error{Code: "4004", Message: "Non valid DDA identifier."}
	case t.Description != "" && !validDescription(t.Description):
		return "", &Error{Code: "4006", Message: "The description should be a string between 3 and 255 characters."}
	case len(t.FQDN) > 1000:
		return "", &Error{Code: "4018", Message: "Too many ticket FQDN items."}
	case len(t.IPv4) > 1000:
		return "", &Error{Code: "4019", Message: "Too many IPv4 items."}
	case len(t.IPv6) > 1000:
		return "", &Error{Code: "4020", Message: "Too many IPv6 items."}
	}
	for _, v := range t.FQDN {
		if !validFQDN(v) {
			return "", &Error{Code: "4008", Message: "Non valid FQDN."}
		}
	}
	for _, v := range t.IPv4 {
		if !validIPv4(v) {
			return "", &Error{Code: "4010", Message: "Non valid IPv4."}
		}
	}
	for _, v := range t.IPv6 {
		if !validIPv6(v) {
			return "", &Error{Code: "4012", Message: "Non valid IPv6."}
		}
	}
	s.PublishUnchecked(t)
	return t.ID, nil
}

// PublishUnchecked creates a ticket without validating it: how a test
// gets malformed items in front of a provider, as a platform bug would.
// An item whose value is already listed for the provider is flagged a
// duplicate and hidden, as on the platform.
func (s *Server) PublishUnchecked(t Ticket) string {
	if t.ID == "" {
		t.ID = newID()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	s.tickets = append(s.tickets, &ticket{id: t.ID, dda: t.DDAID, description: t.Description, created: now})
	for _, g := range []struct {
		genre  string
		values []string
	}{{FQDN, t.FQDN}, {IPv4, t.IPv4}, {IPv6, t.IPv6}} {
		for _, v := range g.values {
			s.addItem(t.ID, g.genre, v, now)
		}
	}
	return t.ID
}

// AddItems adds items to a published ticket.
func (s *Server) AddItems(ticketID, genre string, values ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ticket(ticketID) == nil {
		return &Error{Code: "4017", Message: "Ticket not found."}
	}
	for _, v := range values {
		s.addItem(ticketID, genre, v, s.opts.Now())
	}
	return nil
}

func (s *Server) addItem(ticketID, genre, value string, now time.Time) {
	dup := false
	for _, it := range s.items {
		if it.Value == value && !it.Hidden {
			dup = true
		}
	}
	s.items = append(s.items, &Item{TicketID: ticketID, Value: value, Genre: genre, Status: StatusPending, Created: now, Hidden: dup})
}

// Unlist hides every item with value from the provider's lists, as the
// platform's whitelisting or error flag does: the provider must unblock it.
func (s *Server) Unlist(value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range s.items {
		if it.Value == value {
			it.Hidden = true
		}
	}
}

// Item returns the state of the visible item with value.
func (s *Server) Item(value string) (Item, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, it := range s.items {
		if it.Value == value && !it.Hidden {
			return *it, true
		}
	}
	return Item{}, false
}

// Reports returns every report received, oldest first.
func (s *Server) Reports() []Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reports)
}

// WaitReport returns the first report for value, waiting for it until
// ctx ends.
func (s *Server) WaitReport(ctx context.Context, value string) (Report, error) {
	for {
		s.mu.Lock()
		for _, r := range s.reports {
			if r.Value == value {
				s.mu.Unlock()
				return r, nil
			}
		}
		wait := s.reported
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return Report{}, fmt.Errorf("pstest: no report for %s: %w", value, ctx.Err())
		case <-wait:
		}
	}
}

// ExpireTokens makes every token issued so far expired, access and
// refresh alike: the provider must log in again.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.generation++
	s.accessGeneration++
}

// ExpireAccessTokens makes every access token issued so far expired: the
// provider must refresh.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.accessGeneration++
}

// Fail makes the next n requests to path (such as "/fqdn/get/all/txt")
// fail with the given HTTP status and the platform's error code.
func (s *Server) Fail(path string, n, status int, code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults[path] = append(s.faults[path], fault{status: status, code: code, message: message})
	}
}

// CorruptChecksums makes the next n checksum answers wrong, as a list
// changed or damaged between two requests would.
func (s *Server) CorruptChecksums(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.badChecksums += n
}

// Requested returns when path (such as "/ticket/get/all") was
// requested, oldest first.
func (s *Server) Requested(path string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests[path])
}

// Logins counts successful logins.
func (s *Server) Logins() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins
}

// Refreshes counts successful token refreshes.
func (s *Server) Refreshes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refreshes
}

// Error is a platform error: its code and message, as the API answers
// them.
type Error struct {
	Code    string
	Message string
}

// Error says which call failed, and how.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// The API's own error codes.
const (
	codePermissionDenied   = "1001"
	codeRouteNotFound      = "1003"
	codeMethodNotAllowed   = "1004"
	codeMissingToken       = "1006"
	codeMissingRefresh     = "1007"
	codeTokenFormat        = "1008"
	codeTokenExpired       = "1009"
	codeNonValidParameters = "1010"
	codeMissingParameters  = "1011"
	codeTooManyParameters  = "1012"
	codeAuthFailed         = "2001"
	codeTokenRejected      = "2002"
	codeTicketNotFound     = "4017"
	codeItemNotFound       = "5001"
	codeValueMissing       = "5004"
	codeValueNonValid      = "5005"
	codeTimestampNonValid  = "5006"
	codeNoteNonValid       = "5007"
	codeReasonMissing      = "5008"
	codeReasonNonValid     = "5009"
	codeUpdateTimeExceeded = "5010"
	codeEmptyChecksum      = "5011"
)

// handler routes the provider API. Routes answer only their own method,
// as the platform's handlers do.
func (s *Server) handler() http.Handler {
	type route struct {
		method string
		auth   bool
		fn     func(w http.ResponseWriter, r *request)
	}
	routes := map[string]route{
		"/ping":                        {"GET", false, s.ping},
		"/authentication/login":        {"POST", false, s.login},
		"/authentication/refresh":      {"POST", false, s.refreshToken},
		"/authentication/logout":       {"GET", true, s.logout},
		"/ticket/get/all":              {"GET", true, s.ticketsAll},
		"/ticket/get":                  {"POST", true, s.ticketOne},
		"/ticket/item/get/all":         {"POST", true, s.itemStates},
		"/ticket/item/set/processed":   {"POST", true, s.setProcessed},
		"/ticket/item/set/unprocessed": {"POST", true, s.setUnprocessed},
	}
	for _, g := range []string{FQDN, IPv4, IPv6} {
		routes["/ticket/get/"+g] = route{"POST", true, s.ticketItems(g, "json")}
		routes["/ticket/get/"+g+"/txt"] = route{"POST", true, s.ticketItems(g, "txt")}
		routes["/ticket/get/"+g+"/txt/checksum"] = route{"POST", true, s.ticketItems(g, "checksum")}
		routes["/"+g+"/get/all"] = route{"GET", true, s.allItems(g, "json")}
		routes["/"+g+"/get/all/txt"] = route{"GET", true, s.allItems(g, "txt")}
		routes["/"+g+"/get/all/txt/checksum"] = route{"GET", true, s.allItems(g, "checksum")}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, hr *http.Request) {
		w.Header().Set("Server", "piracy-shield")
		path, ok := strings.CutPrefix(hr.URL.Path, "/api/v1")
		rt, known := routes[path]
		if !ok || !known {
			writeError(w, http.StatusNotFound, codeRouteNotFound, "Route not found.")
			return
		}
		if hr.Method != rt.method {
			writeError(w, http.StatusMethodNotAllowed, codeMethodNotAllowed, "Method not allowed.")
			return
		}
		s.mu.Lock()
		s.requests[path] = append(s.requests[path], s.opts.Now())
		if q := s.faults[path]; len(q) > 0 {
			f := q[0]
			s.faults[path] = q[1:]
			s.mu.Unlock()
			writeError(w, f.status, f.code, f.message)
			return
		}
		s.mu.Unlock()
		body, _ := io.ReadAll(io.LimitReader(hr.Body, 1<<20))
		r := &request{Request: hr, body: body}
		if rt.auth && !s.authenticate(w, r) {
			return
		}
		rt.fn(w, r)
	})
}

type request struct {
	*http.Request
	body   []byte
	params map[string]any
	token  string
}

// params decodes the JSON body as the platform does: it must be JSON;
// every required field must be present; and an endpoint without optional
// fields refuses any other field.
func (r *request) decode(w http.ResponseWriter, required []string, optional bool) bool {
	if err := json.Unmarshal(r.body, &r.params); err != nil || r.params == nil {
		writeError(w, http.StatusBadRequest, codeNonValidParameters, "Expecting JSON data.")
		return false
	}
	if !optional && len(r.params) > len(required) {
		writeError(w, http.StatusBadRequest, codeTooManyParameters, "Too many parameters.")
		return false
	}
	for _, f := range required {
		if _, ok := r.params[f]; !ok {
			writeError(w, http.StatusBadRequest, codeMissingParameters, "Missing required parameters.")
			return false
		}
	}
	return true
}

// str returns a string parameter, stripped as the platform strips them.
func (r *request) str(name string) string {
	v, _ := r.params[name].(string)
	return strings.TrimSpace(v)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"status": "error", "code": code, "message": message})
}

func success(w http.ResponseWriter, data any) {
	body := map[string]any{"status": "success"}
	if data != nil {
		body["data"] = data
	}
	writeJSON(w, http.StatusOK, body)
}

func successText(w http.ResponseWriter, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, text)
}

func (s *Server) ping(w http.ResponseWriter, _ *request) { success(w, "Pong!") }

func (s *Server) issue(refresh bool) (access, refreshToken string) {
	now := s.opts.Now()
	s.mu.Lock()
	c := claims{AccountID: s.providerID, Email: s.opts.Email, Role: "provider",
		Flags: map[string]any{"change_password": false}, IssuedAt: float64(now.UnixMicro()) / 1e6}
	c.Generation = s.accessGeneration
	s.mu.Unlock()
	c.Expires = float64(now.Add(s.opts.AccessTTL).Unix())
	access = s.access.sign(c)
	if refresh {
		s.mu.Lock()
		c.Generation = s.generation
		s.mu.Unlock()
		c.Expires = float64(now.Add(s.opts.RefreshTTL).Unix())
		refreshToken = s.refresh.sign(c)
	}
	return access, refreshToken
}

func (s *Server) login(w http.ResponseWriter, r *request) {
	if !r.decode(w, []string{"email", "password"}, false) {
		return
	}
	if r.str("email") != s.opts.Email || r.params["password"] != s.opts.Password {
		writeError(w, http.StatusBadRequest, codeAuthFailed, "Unable to authenticate.")
		return
	}
	access, refresh := s.issue(true)
	s.mu.Lock()
	s.logins++
	s.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: "refresh_token", Value: refresh, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	success(w, map[string]string{"access_token": access, "refresh_token": refresh})
}

func (s *Server) refreshToken(w http.ResponseWriter, r *request) {
	if !r.decode(w, nil, true) {
		return
	}
	token := r.str("refresh_token")
	if token == "" {
		writeError(w, http.StatusUnauthorized, codeMissingRefresh, "Missing refresh token from cookie or POST parameters.")
		return
	}
	s.mu.Lock()
	revoked := s.blacklist[token]
	s.mu.Unlock()
	if revoked {
		writeError(w, http.StatusUnauthorized, codeTokenExpired, "This token is expired.")
		return
	}
	c, err := s.refresh.verify(token, s.opts.Now())
	if err == nil && s.expired(c, true) {
		err = errTokenExpired
	}
	switch {
	case errors.Is(err, errTokenExpired):
		writeError(w, http.StatusBadRequest, codeTokenRejected, "Unable to verify the token, expired.")
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, codeTokenRejected, "Unable to authenticate, token non valid.")
		return
	}
	access, _ := s.issue(false)
	s.mu.Lock()
	s.refreshes++
	s.mu.Unlock()
	success(w, map[string]string{"access_token": access})
}

// expired reports whether a token was issued before the test expired
// tokens of its kind.
func (s *Server) expired(c claims, refresh bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if refresh {
		return c.Generation < s.generation
	}
	return c.Generation < s.accessGeneration
}

func (s *Server) authenticate(w http.ResponseWriter, r *request) bool {
	h := r.Header.Get("Authorization")
	if h == "" {
		writeError(w, http.StatusUnauthorized, codeMissingToken, "Missing authentication token.")
		return false
	}
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		writeError(w, http.StatusUnauthorized, codeTokenFormat, "Token format non valid.")
		return false
	}
	s.mu.Lock()
	revoked := s.blacklist[token]
	s.mu.Unlock()
	if revoked {
		writeError(w, http.StatusUnauthorized, codeTokenExpired, "This token is expired.")
		return false
	}
	c, err := s.access.verify(token, s.opts.Now())
	if err == nil && s.expired(c, false) {
		err = errTokenExpired
	}
	switch {
	case errors.Is(err, errTokenExpired):
		writeError(w, http.StatusUnauthorized, codeTokenRejected, "Unable to verify the token, expired.")
		return false
	case err != nil:
		writeError(w, http.StatusUnauthorized, codeTokenRejected, "Unable to authenticate, token non valid.")
		return false
	}
	if c.Role != "provider" {
		writeError(w, http.StatusForbidden, codePermissionDenied, "Permission denied.")
		return false
	}
	r.token = token
	return true
}

func (s *Server) logout(w http.ResponseWriter, r *request) {
	s.mu.Lock()
	s.blacklist[r.token] = true
	s.mu.Unlock()
	success(w, nil)
}

func (s *Server) ticket(id string) *ticket {
	for _, t := range s.tickets {
		if t.id == id {
			return t
		}
	}
	return nil
}

// visible reports whether a provider sees the item: its ticket is past
// the reporter's revoke window and the item is not hidden.
func (s *Server) visible(it *Item, now time.Time) bool {
	if it.Hidden {
		return false
	}
	t := s.ticket(it.TicketID)
	return t != nil && !now.Before(t.created.Add(s.opts.RevokeWindow))
}

// values returns the distinct visible values of genre (of one ticket
// when ticketID is set), in the order they were created.
func (s *Server) values(ticketID, genre string) []string {
	now := s.opts.Now()
	out := []string{}
	for _, it := range s.items {
		if it.Genre != genre || !s.visible(it, now) || ticketID != "" && it.TicketID != ticketID || slices.Contains(out, it.Value) {
			continue
		}
		out = append(out, it.Value)
	}
	return out
}

func (s *Server) ticketView(t *ticket) (map[string]any, bool) {
	fqdn, ipv4, ipv6 := s.values(t.id, FQDN), s.values(t.id, IPv4), s.values(t.id, IPv6)
	if len(fqdn)+len(ipv4)+len(ipv6) == 0 {
		// The platform leaves out tickets with nothing left to block.
		return nil, false
	}
	now := s.opts.Now()
	status := "open"
	switch {
	case now.Before(t.created.Add(s.opts.RevokeWindow)):
		return nil, false
	case now.Sub(t.created) > 1875*time.Second:
		status = "closed"
	}
	view := map[string]any{
		"ticket_id":   t.id,
		"description": t.description,
		"fqdn":        fqdn,
		"ipv4":        ipv4,
		"ipv6":        ipv6,
		"status":      status,
		"metadata":    map[string]any{"created_at": isoformat(t.created)},
	}
	if t.description == "" {
		view["description"] = nil
	}
	return view, true
}

// isoformat writes a time as the platform does: Python's isoformat in
// Rome's winter offset.
func isoformat(t time.Time) string {
	return t.In(time.FixedZone("CET", 3600)).Format("2006-01-02T15:04:05.000000-07:00")
}

func (s *Server) ticketsAll(w http.ResponseWriter, _ *request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []map[string]any{}
	for _, t := range s.tickets {
		if v, ok := s.ticketView(t); ok {
			out = append(out, v)
		}
	}
	success(w, out)
}

func (s *Server) ticketOne(w http.ResponseWriter, r *request) {
	if !r.decode(w, []string{"ticket_id"}, false) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.ticket(r.str("ticket_id"))
	if t == nil {
		writeError(w, http.StatusBadRequest, codeTicketNotFound, "Ticket not found.")
		return
	}
	v, ok := s.ticketView(t)
	if !ok {
		writeError(w, http.StatusBadRequest, codeTicketNotFound, "Ticket not found.")
		return
	}
	success(w, v)
}

// checksum is the platform's: SHA-256 of the values joined by newlines.
func checksum(values []string) string {
	sum := sha256.Sum256([]byte(strings.Join(values, "\n")))
	return hex.EncodeToString(sum[:])
}

// answerList answers a list as JSON, text or checksum.
func (s *Server) answerList(w http.ResponseWriter, values []string, format string) {
	switch format {
	case "json":
		success(w, values)
	case "txt":
		successText(w, strings.Join(values, "\n"))
	default:
		if len(values) == 0 {
			writeError(w, http.StatusBadRequest, codeEmptyChecksum, "No ticket item available to generate a checksum.")
			return
		}
		sum := checksum(values)
		if s.badChecksums > 0 {
			s.badChecksums--
			sum = checksum(append(values, "damaged"))
		}
		successText(w, sum)
	}
}

func (s *Server) ticketItems(genre, format string) func(http.ResponseWriter, *request) {
	return func(w http.ResponseWriter, r *request) {
		if !r.decode(w, []string{"ticket_id"}, false) {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.answerList(w, s.values(r.str("ticket_id"), genre), format)
	}
}

func (s *Server) allItems(genre, format string) func(http.ResponseWriter, *request) {
	return func(w http.ResponseWriter, _ *request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.answerList(w, s.values("", genre), format)
	}
}

func (s *Server) itemStates(w http.ResponseWriter, r *request) {
	if !r.decode(w, []string{"ticket_id"}, false) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	out := []map[string]any{}
	for _, it := range s.items {
		if it.TicketID != r.str("ticket_id") || !s.visible(it, now) {
			continue
		}
		out = append(out, map[string]any{"value": it.Value, "status": it.Status, "timestamp": nullable(it.Timestamp),
			"note": nullable(it.Note), "reason": nullable(it.Reason)})
	}
	success(w, out)
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Server) setProcessed(w http.ResponseWriter, r *request) {
	if !r.decode(w, []string{"value"}, true) {
		return
	}
	s.setStatus(w, r, StatusProcessed, "")
}

func (s *Server) setUnprocessed(w http.ResponseWriter, r *request) {
	if !r.decode(w, []string{"value", "reason"}, true) {
		return
	}
	reason := r.str("reason")
	switch reason {
	case "":
		writeError(w, http.StatusBadRequest, codeReasonMissing, "Missing unprocessed reason.")
		return
	case "ALREADY_BLOCKED", "UNDEFINED", "UNKNOWN":
	default:
		writeError(w, http.StatusBadRequest, codeReasonNonValid, "Non valid unprocessed reason.")
		return
	}
	s.setStatus(w, r, StatusUnprocessed, reason)
}

// setStatus validates a report as the platform does, in its order:
// value, reason (checked by the caller), timestamp and note; then finds
// the item by value, then checks the update window.
func (s *Server) setStatus(w http.ResponseWriter, r *request, status, reason string) {
	value, note, stamp := r.str("value"), r.str("note"), r.str("timestamp")
	switch {
	case value == "":
		writeError(w, http.StatusBadRequest, codeValueMissing, "Missing ticket item value.")
		return
	case !validValue(value):
		writeError(w, http.StatusBadRequest, codeValueNonValid, "Non valid ticket item value.")
		return
	}
	if stamp != "" {
		if _, ok := parseISO8601(stamp); !ok {
			writeError(w, http.StatusBadRequest, codeTimestampNonValid, "Non valid timestamp.")
			return
		}
	}
	if note != "" && !validNote(note) {
		writeError(w, http.StatusBadRequest, codeNoteNonValid, "Non valid note.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opts.Now()
	var matched []*Item
	for _, it := range s.items {
		if it.Value == value && s.visible(it, now) {
			matched = append(matched, it)
		}
	}
	if len(matched) == 0 {
		writeError(w, http.StatusBadRequest, codeItemNotFound, "Ticket item not found.")
		return
	}
	if now.Sub(matched[0].Created) > s.opts.UpdateWindow {
		writeError(w, http.StatusBadRequest, codeUpdateTimeExceeded, "Cannot update the ticket item: max update time has been exceeded.")
		return
	}
	for _, it := range matched {
		it.Status, it.Reason, it.Note, it.Timestamp = status, reason, note, stamp
	}
	s.reports = append(s.reports, Report{Value: value, Status: status, Reason: reason, Note: note, Timestamp: stamp, At: now})
	close(s.reported)
	s.reported = make(chan struct{})
	success(w, nil)
}
