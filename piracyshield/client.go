package piracyshield

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Error codes of the platform that the client acts on.
const (
	CodeTokenExpired       = "1009" // a blacklisted (logged out) token
	CodeChangePassword     = "1014" // the account must change its password on the web interface
	CodeIPBlacklisted      = "1015" // this address is banned for a while
	CodeAuthFailed         = "2001" // wrong e-mail or password
	CodeTokenRejected      = "2002" // an expired or invalid token
	CodeTooManyLogins      = "2003"
	CodeTicketNotFound     = "4017"
	CodeItemNotFound       = "5001"
	CodeValueNonValid      = "5005"
	CodeNoteNonValid       = "5007"
	CodeUpdateTimeExceeded = "5010" // the 48-hour window to report an item has passed
	CodeEmptyChecksum      = "5011" // the list is empty: there is nothing to checksum
)

// APIError is an error answer of the platform.
type APIError struct {
	// Endpoint is the path called, such as "/ticket/item/set/processed".
	Endpoint string
	// HTTPStatus is 400 for application errors, 401 for authentication,
	// 403 for permissions and banned addresses, 429 for rate limiting.
	HTTPStatus int
	// Code is the platform's error code, such as "5010".
	Code    string
	Message string
}

// Error says which call failed, and how.
func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("piracy shield %s: HTTP %d", e.Endpoint, e.HTTPStatus)
	}
	return fmt.Sprintf("piracy shield %s: error %s: %s (HTTP %d)", e.Endpoint, e.Code, e.Message, e.HTTPStatus)
}

// HasCode reports whether err is an APIError with code.
func HasCode(err error, code string) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == code
}

// ErrChecksum is returned when a text list does not match its checksum.
var ErrChecksum = errors.New("list does not match its checksum")

// Client speaks the platform's provider API. It logs in on first use,
// refreshes its access token before it expires (and when the platform
// says it has), logs in again when the refresh token is refused, and is
// safe for concurrent use.
type Client struct {
	base            string
	email, password string
	http            *http.Client
	now             func() time.Time

	mu                sync.Mutex
	access, refresh   string
	accessExp, refExp time.Time
}

// NewClient returns a client of the platform whose API base is baseURL
// ("https://<host>/api/v1"). hc carries the transport (a VPN route, a
// private CA); nil means a client with a one-minute timeout.
func NewClient(baseURL, email, password string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("piracy shield URL %q: want the API base, such as https://platform.example/api/v1", baseURL)
	}
	if email == "" || password == "" {
		return nil, errors.New("piracy shield: the provider account's e-mail and password are required")
	}
	if hc == nil {
		hc = &http.Client{Timeout: time.Minute}
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), email: email, password: password, http: hc, now: time.Now}, nil
}

// envelope is every JSON answer of the platform.
type envelope struct {
	Status  string          `json:"status"`
	Data    json.RawMessage `json:"data"`
	Note    string          `json:"note"`
	Code    flexString      `json:"code"`
	Message string          `json:"message"`
}

// flexString accepts a code written as a string or as a number.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*f = flexString(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*f = flexString(n.String())
	return nil
}

// raw sends one request and returns the body of a 200 answer; any other
// answer becomes an *APIError.
func (c *Client) raw(ctx context.Context, method, path string, body any, token string) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("piracy shield %s: %w", path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("piracy shield %s: reading the answer: %w", path, err)
	}
	if resp.StatusCode == http.StatusOK {
		return data, nil
	}
	e := &APIError{Endpoint: path, HTTPStatus: resp.StatusCode}
	var env envelope
	if json.Unmarshal(data, &env) == nil {
		e.Code, e.Message = string(env.Code), env.Message
	}
	return nil, e
}

// call sends an authenticated request. When the platform refuses the
// access token as expired, it gets a new one and tries once more.
func (c *Client) call(ctx context.Context, method, path string, body any) ([]byte, error) {
	token, err := c.token(ctx)
	if err != nil {
		return nil, err
	}
	data, err := c.raw(ctx, method, path, body, token)
	var e *APIError
	if errors.As(err, &e) && e.HTTPStatus == http.StatusUnauthorized {
		switch e.Code {
		case CodeTokenRejected, CodeTokenExpired:
			c.forget(token)
			if token, err = c.token(ctx); err != nil {
				return nil, err
			}
			return c.raw(ctx, method, path, body, token)
		case CodeChangePassword:
			return nil, fmt.Errorf("%w: the platform requires a new password for %s: log in on its web interface, then update the connector's password", err, c.email)
		}
	}
	return data, err
}

// callJSON sends an authenticated request and decodes the data of a
// success envelope into out.
func (c *Client) callJSON(ctx context.Context, method, path string, body, out any) error {
	data, err := c.call(ctx, method, path, body)
	if err != nil {
		return err
	}
	return decodeEnvelope(path, data, out)
}

func decodeEnvelope(path string, data []byte, out any) error {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return fmt.Errorf("piracy shield %s: the answer is not JSON: %w", path, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("piracy shield %s: status %q, want success", path, env.Status)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		return fmt.Errorf("piracy shield %s: unexpected data: %w", path, err)
	}
	return nil
}

// refreshMargin is how long before its expiry a token is replaced, so
// that a request never carries one that expires on the way.
const refreshMargin = time.Minute

// token returns a valid access token: the current one, a refreshed one,
// or one from a new login.
func (c *Client) token(ctx context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.access != "" && (c.accessExp.IsZero() || now.Before(c.accessExp.Add(-refreshMargin))) {
		return c.access, nil
	}
	if c.refresh != "" && (c.refExp.IsZero() || now.Before(c.refExp.Add(-refreshMargin))) {
		var out struct {
			AccessToken string `json:"access_token"`
		}
		data, err := c.raw(ctx, "POST", "/authentication/refresh", map[string]string{"refresh_token": c.refresh}, "")
		if err == nil {
			err = decodeEnvelope("/authentication/refresh", data, &out)
		}
		if err == nil && out.AccessToken != "" {
			c.access, c.accessExp = out.AccessToken, tokenExpiry(out.AccessToken)
			return c.access, nil
		}
		var e *APIError
		if !errors.As(err, &e) {
			return "", err // the platform is unreachable: logging in would fail too
		}
		// The refresh token was refused: log in again.
		c.refresh = ""
	}
	return c.loginLocked(ctx)
}

func (c *Client) loginLocked(ctx context.Context) (string, error) {
	var out struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
	}
	data, err := c.raw(ctx, "POST", "/authentication/login", map[string]string{"email": c.email, "password": c.password}, "")
	if err == nil {
		err = decodeEnvelope("/authentication/login", data, &out)
	}
	if err != nil {
		if HasCode(err, CodeAuthFailed) {
			return "", fmt.Errorf("%w: check the provider account's e-mail (%s) and password", err, c.email)
		}
		return "", err
	}
	if out.AccessToken == "" {
		return "", errors.New("piracy shield /authentication/login: no access token in the answer")
	}
	c.access, c.accessExp = out.AccessToken, tokenExpiry(out.AccessToken)
	c.refresh, c.refExp = out.RefreshToken, tokenExpiry(out.RefreshToken)
	return c.access, nil
}

// forget drops an access token the platform refused, unless another
// request has replaced it already.
func (c *Client) forget(token string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.access == token {
		c.access = ""
	}
}

// tokenExpiry reads the exp claim of a JWT without verifying it (the
// platform holds the key); the zero time when it cannot be read, in
// which case the token is used until the platform refuses it.
func tokenExpiry(token string) time.Time {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp float64 `json:"exp"`
	}
	if json.Unmarshal(b, &claims) != nil || claims.Exp <= 0 {
		return time.Time{}
	}
	return time.Unix(int64(claims.Exp), 0)
}

// Login authenticates now, replacing any tokens held.
func (c *Client) Login(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := c.loginLocked(ctx)
	return err
}

// Logout ends the session on the platform: its tokens are blacklisted.
func (c *Client) Logout(ctx context.Context) error {
	c.mu.Lock()
	token := c.access
	c.access, c.refresh = "", ""
	c.mu.Unlock()
	if token == "" {
		return nil
	}
	_, err := c.raw(ctx, "GET", "/authentication/logout", nil, token)
	return err
}

// Ping checks that the platform answers.
func (c *Client) Ping(ctx context.Context) error {
	data, err := c.raw(ctx, "GET", "/ping", nil, "")
	if err != nil {
		return err
	}
	return decodeEnvelope("/ping", data, nil)
}

// Tickets returns every ticket assigned to the provider that still lists
// items for it.
func (c *Client) Tickets(ctx context.Context) ([]Ticket, error) {
	var out []Ticket
	return out, c.callJSON(ctx, "GET", "/ticket/get/all", nil, &out)
}

// Ticket returns one ticket.
func (c *Client) Ticket(ctx context.Context, id string) (Ticket, error) {
	var out Ticket
	return out, c.callJSON(ctx, "POST", "/ticket/get", map[string]string{"ticket_id": id}, &out)
}

// TicketItems returns a ticket's items of one genre (the JSON list).
func (c *Client) TicketItems(ctx context.Context, id string, g Genre) ([]string, error) {
	var out []string
	return out, c.callJSON(ctx, "POST", "/ticket/get/"+string(g), map[string]string{"ticket_id": id}, &out)
}

// TicketItemsText returns a ticket's items of one genre as the platform's
// text list: one value a line.
func (c *Client) TicketItemsText(ctx context.Context, id string, g Genre) ([]byte, error) {
	return c.call(ctx, "POST", "/ticket/get/"+string(g)+"/txt", map[string]string{"ticket_id": id})
}

// TicketItemsChecksum returns the checksum of a ticket's text list of one
// genre; "" when the list is empty.
func (c *Client) TicketItemsChecksum(ctx context.Context, id string, g Genre) (string, error) {
	return c.checksum(ctx, "POST", "/ticket/get/"+string(g)+"/txt/checksum", map[string]string{"ticket_id": id})
}

// Items returns every item of one genre assigned to the provider (the
// JSON list).
func (c *Client) Items(ctx context.Context, g Genre) ([]string, error) {
	var out []string
	return out, c.callJSON(ctx, "GET", "/"+string(g)+"/get/all", nil, &out)
}

// ItemsText returns every item of one genre as the text list.
func (c *Client) ItemsText(ctx context.Context, g Genre) ([]byte, error) {
	return c.call(ctx, "GET", "/"+string(g)+"/get/all/txt", nil)
}

// ItemsChecksum returns the checksum of the text list of one genre; ""
// when the list is empty.
func (c *Client) ItemsChecksum(ctx context.Context, g Genre) (string, error) {
	return c.checksum(ctx, "GET", "/"+string(g)+"/get/all/txt/checksum", nil)
}

func (c *Client) checksum(ctx context.Context, method, path string, body any) (string, error) {
	data, err := c.call(ctx, method, path, body)
	if HasCode(err, CodeEmptyChecksum) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	sum := strings.ToLower(strings.TrimSpace(string(data)))
	if len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
		return "", fmt.Errorf("piracy shield %s: %q is not a SHA-256 checksum", path, clip(sum, 80))
	}
	return sum, nil
}

// VerifiedItems returns every item of one genre from the text list,
// checked against the list's checksum, and the checksum. A mismatch is
// tried once more, since the list may have changed between the two
// requests; a second one is ErrChecksum.
func (c *Client) VerifiedItems(ctx context.Context, g Genre) ([]string, string, error) {
	return c.verified(ctx, string(g), func() ([]byte, error) { return c.ItemsText(ctx, g) },
		func() (string, error) { return c.ItemsChecksum(ctx, g) })
}

// VerifiedTicketItems is VerifiedItems for one ticket.
func (c *Client) VerifiedTicketItems(ctx context.Context, id string, g Genre) ([]string, string, error) {
	return c.verified(ctx, string(g)+" of ticket "+id, func() ([]byte, error) { return c.TicketItemsText(ctx, id, g) },
		func() (string, error) { return c.TicketItemsChecksum(ctx, id, g) })
}

func (c *Client) verified(ctx context.Context, what string, text func() ([]byte, error), sum func() (string, error)) ([]string, string, error) {
	var lastGot, lastWant string
	for range 2 {
		want, err := sum()
		if err != nil {
			return nil, "", err
		}
		body, err := text()
		if err != nil {
			return nil, "", err
		}
		values := ParseList(body)
		got := Checksum(values)
		if len(values) == 0 {
			got = ""
		}
		if got == want {
			return values, want, nil
		}
		lastGot, lastWant = got, want
	}
	return nil, "", fmt.Errorf("piracy shield %s list: %w (computed %q, the platform says %q)", what, ErrChecksum, lastGot, lastWant)
}

// ParseList reads a text list: one value a line, blank lines and
// surrounding spaces ignored.
func ParseList(body []byte) []string {
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		if v := strings.TrimSpace(line); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// ItemStates returns the status the provider set for each item of a
// ticket.
func (c *Client) ItemStates(ctx context.Context, ticketID string) ([]ItemState, error) {
	var raw []struct {
		Value     string  `json:"value"`
		Status    string  `json:"status"`
		Reason    *string `json:"reason"`
		Note      *string `json:"note"`
		Timestamp *string `json:"timestamp"`
	}
	if err := c.callJSON(ctx, "POST", "/ticket/item/get/all", map[string]string{"ticket_id": ticketID}, &raw); err != nil {
		return nil, err
	}
	out := make([]ItemState, len(raw))
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	for i, r := range raw {
		out[i] = ItemState{Value: r.Value, Status: r.Status, Reason: deref(r.Reason), Note: deref(r.Note), Timestamp: deref(r.Timestamp)}
	}
	return out, nil
}

// Timestamp formats a time as the platform reads ISO 8601, with an
// explicit offset.
func Timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05-07:00") }

// SetProcessed reports an item blocked. The note, if any, must be one
// the platform accepts (see Note).
func (c *Client) SetProcessed(ctx context.Context, value string, at time.Time, note string) error {
	body := map[string]string{"value": value, "timestamp": Timestamp(at)}
	if note != "" {
		body["note"] = note
	}
	return c.callJSON(ctx, "POST", "/ticket/item/set/processed", body, nil)
}

// SetUnprocessed reports an item not blocked, with the reason.
func (c *Client) SetUnprocessed(ctx context.Context, value string, reason Reason, at time.Time, note string) error {
	body := map[string]string{"value": value, "reason": string(reason), "timestamp": Timestamp(at)}
	if note != "" {
		body["note"] = note
	}
	return c.callJSON(ctx, "POST", "/ticket/item/set/unprocessed", body, nil)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
