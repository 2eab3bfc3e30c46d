package pstest

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// call sends a raw request to the double and returns the status and the
// decoded envelope (or the text of a text answer).
func call(t *testing.T, s *Server, method, path, token, body string) (int, map[string]any, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env map[string]any
	json.Unmarshal(b, &env)
	return resp.StatusCode, env, string(b)
}

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func login(t *testing.T, s *Server) (access, refresh string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"email": s.Email(), "password": s.Password()})
	code, env, raw := call(t, s, "POST", "/authentication/login", "", string(body))
	if code != 200 || env["status"] != "success" {
		t.Fatalf("login: %d %s", code, raw)
	}
	data := env["data"].(map[string]any)
	return "Bearer " + data["access_token"].(string), data["refresh_token"].(string)
}

func TestErrorsAsThePlatformAnswersThem(t *testing.T) {
	s := start(t, Options{})
	token, _ := login(t, s)
	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"unknown route", "GET", "/nothing/here", token, "", 404, "1003"},
		{"wrong method", "GET", "/ticket/item/set/processed", token, "", 405, "1004"},
		{"no token", "GET", "/ticket/get/all", "", "", 401, "1006"},
		{"not bearer", "GET", "/ticket/get/all", "Token abc", "", 401, "1008"},
		{"forged token", "GET", "/ticket/get/all", "Bearer a.b.c", "", 401, "2002"},
		{"not JSON", "POST", "/ticket/get", token, "ticket_id=1", 400, "1010"},
		{"missing field", "POST", "/ticket/get", token, `{}`, 400, "1011"},
		{"unknown field", "POST", "/ticket/get", token, `{"ticket_id": "x", "extra": 1}`, 400, "1012"},
		{"wrong password", "POST", "/authentication/login", "", `{"email": "provider@isp.example.it", "password": "no"}`, 400, "2001"},
		{"login extra field", "POST", "/authentication/login", "", `{"email": "a", "password": "b", "otp": "c"}`, 400, "1012"},
		{"refresh without token", "POST", "/authentication/refresh", "", `{}`, 401, "1007"},
		{"refresh forged", "POST", "/authentication/refresh", "", `{"refresh_token": "a.b.c"}`, 400, "2002"},
		{"unknown ticket", "POST", "/ticket/get", token, `{"ticket_id": "00000000000000000000000000000000"}`, 400, "4017"},
		{"empty checksum", "GET", "/fqdn/get/all/txt/checksum", token, "", 400, "5011"},
		{"value missing", "POST", "/ticket/item/set/processed", token, `{"value": ""}`, 400, "5004"},
		{"value non valid", "POST", "/ticket/item/set/processed", token, `{"value": "a b"}`, 400, "5005"},
		{"timestamp non valid", "POST", "/ticket/item/set/processed", token, `{"value": "a.example.com", "timestamp": "yesterday"}`, 400, "5006"},
		{"note non valid", "POST", "/ticket/item/set/processed", token, `{"value": "a.example.com", "note": "ok: (no)"}`, 400, "5007"},
		{"reason missing", "POST", "/ticket/item/set/unprocessed", token, `{"value": "a.example.com", "reason": ""}`, 400, "5008"},
		{"reason non valid", "POST", "/ticket/item/set/unprocessed", token, `{"value": "a.example.com", "reason": "NO"}`, 400, "5009"},
		{"item not found", "POST", "/ticket/item/set/processed", token, `{"value": "a.example.com"}`, 400, "5001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, env, raw := call(t, s, tc.method, tc.path, tc.token, tc.body)
			if code != tc.status || env["status"] != "error" || env["code"] != tc.code || env["message"] == "" {
				t.Errorf("%d %s, want %d with code %s", code, raw, tc.status, tc.code)
			}
		})
	}
	if code, env, _ := call(t, s, "GET", "/ping", "", ""); code != 200 || env["data"] != "Pong!" {
		t.Errorf("ping: %d %v", code, env)
	}
}

func TestPublishValidatesAsThePlatform(t *testing.T) {
	s := start(t, Options{})
	for _, tc := range []struct {
		ticket Ticket
		code   string
	}{
		{Ticket{}, "4001"},
		{Ticket{ID: "short", FQDN: []string{"a.example.com"}}, "4002"},
		{Ticket{DDAID: "12345/24/DDA", FQDN: []string{"a.example.com"}}, "4004"},
		{Ticket{Description: "no", FQDN: []string{"a.example.com"}}, "4006"},
		{Ticket{FQDN: []string{"example.com."}}, "4008"},
		{Ticket{FQDN: []string{"example.xn--p1ai"}}, "4008"},
		{Ticket{IPv4: []string{"203.0.113.0/24"}}, "4010"},
		{Ticket{IPv4: []string{"203.0.113.256"}}, "4010"},
		{Ticket{IPv6: []string{"2001:db8::/32"}}, "4012"},
		{Ticket{IPv6: []string{"1::2:"}}, "4012"},
	} {
		var e *Error
		if _, err := s.Publish(tc.ticket); !errors.As(err, &e) || e.Code != tc.code {
			t.Errorf("Publish(%+v) = %v, want code %s", tc.ticket, err, tc.code)
		}
	}
	// What the platform lets through.
	if _, err := s.Publish(Ticket{DDAID: "12/24/DDA", FQDN: []string{"UPPER.Example.COM"}, IPv4: []string{"010.001.002.003"}, IPv6: []string{"2001:DB8::1"}}); err != nil {
		t.Errorf("valid ticket refused: %v", err)
	}
}

func TestListsChecksumsAndVisibility(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2025, 3, 1, 20, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	s := start(t, Options{RevokeWindow: 75 * time.Second, Now: clock})
	token, _ := login(t, s)
	id, err := s.Publish(Ticket{FQDN: []string{"a.example.com", "b.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	// Within the reporter's revoke window the ticket is not shown.
	if _, env, _ := call(t, s, "GET", "/ticket/get/all", token, ""); len(env["data"].([]any)) != 0 {
		t.Fatalf("ticket visible during the revoke window: %v", env)
	}
	advance(76 * time.Second)
	_, env, _ := call(t, s, "GET", "/ticket/get/all", token, "")
	tickets := env["data"].([]any)
	if len(tickets) != 1 || tickets[0].(map[string]any)["status"] != "open" || tickets[0].(map[string]any)["ticket_id"] != id {
		t.Fatalf("tickets %v", tickets)
	}
	created := tickets[0].(map[string]any)["metadata"].(map[string]any)["created_at"].(string)
	if created != "2025-03-01T21:00:00.000000+01:00" {
		t.Errorf("created_at %q", created)
	}
	code, _, text := call(t, s, "GET", "/fqdn/get/all/txt", token, "")
	if code != 200 || text != "a.example.com\nb.example.com" {
		t.Fatalf("txt list %d %q", code, text)
	}
	_, _, sum := call(t, s, "GET", "/fqdn/get/all/txt/checksum", token, "")
	if sum != checksum([]string{"a.example.com", "b.example.com"}) {
		t.Errorf("checksum %q", sum)
	}
	_, _, perTicket := call(t, s, "POST", "/ticket/get/fqdn/txt/checksum", token, `{"ticket_id": "`+id+`"}`)
	if perTicket != sum {
		t.Errorf("ticket checksum %q, list checksum %q", perTicket, sum)
	}
	// A duplicate in a later ticket is hidden; an unlisted item vanishes.
	if _, err := s.Publish(Ticket{FQDN: []string{"a.example.com", "c.example.com"}}); err != nil {
		t.Fatal(err)
	}
	advance(76 * time.Second)
	s.Unlist("b.example.com")
	if _, _, text := call(t, s, "GET", "/fqdn/get/all/txt", token, ""); text != "a.example.com\nc.example.com" {
		t.Errorf("after a duplicate and an unlisting: %q", text)
	}
	// Tickets close after 1875 seconds; their items stay listed.
	advance(1875 * time.Second)
	_, env, _ = call(t, s, "GET", "/ticket/get/all", token, "")
	if st := env["data"].([]any)[0].(map[string]any)["status"]; st != "closed" {
		t.Errorf("status %v after 1875 s", st)
	}
}

func TestTokensAndReports(t *testing.T) {
	s := start(t, Options{})
	token, refresh := login(t, s)
	if _, err := s.Publish(Ticket{FQDN: []string{"a.example.com"}}); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"value": "a.example.com", "reason": "UNDEFINED", "note": "held for review, shared CDN address", "timestamp": "2025-03-01T21:00:00+01:00"})
	if code, _, raw := call(t, s, "POST", "/ticket/item/set/unprocessed", token, string(body)); code != 200 {
		t.Fatalf("set unprocessed: %d %s", code, raw)
	}
	if it, _ := s.Item("a.example.com"); it.Status != StatusUnprocessed || it.Reason != "UNDEFINED" || it.Note != "held for review, shared CDN address" {
		t.Errorf("item %+v", it)
	}
	if r := s.Reports(); len(r) != 1 || r[0].Value != "a.example.com" {
		t.Errorf("reports %+v", r)
	}

	s.ExpireAccessTokens()
	if code, env, _ := call(t, s, "GET", "/ticket/get/all", token, ""); code != 401 || env["code"] != "2002" {
		t.Fatalf("expired access token: %d %v", code, env)
	}
	rb, _ := json.Marshal(map[string]string{"refresh_token": refresh})
	code, env, raw := call(t, s, "POST", "/authentication/refresh", "", string(rb))
	if code != 200 {
		t.Fatalf("refresh: %d %s", code, raw)
	}
	fresh := "Bearer " + env["data"].(map[string]any)["access_token"].(string)
	if code, _, _ := call(t, s, "GET", "/authentication/logout", fresh, ""); code != 200 {
		t.Fatal("logout")
	}
	if code, env, _ := call(t, s, "GET", "/ticket/get/all", fresh, ""); code != 401 || env["code"] != "1009" {
		t.Errorf("logged-out token: %d %v", code, env)
	}
	s.ExpireTokens()
	if code, env, _ := call(t, s, "POST", "/authentication/refresh", "", string(rb)); code != 400 || env["code"] != "2002" {
		t.Errorf("expired refresh token: %d %v", code, env)
	}
	if n := len(s.Requested("/ticket/item/set/unprocessed")); n != 1 {
		t.Errorf("%d requests recorded", n)
	}
	if s.Logins() != 1 || s.Refreshes() != 1 {
		t.Errorf("logins %d, refreshes %d", s.Logins(), s.Refreshes())
	}
}

func TestRules(t *testing.T) {
	for s, want := range map[string]bool{"1.2.3.4": true, "001.002.003.004": true, "1.2.3": false, "1.2.3.4.5": false, "1.2.3.x": false, "1.2.3.1000": false, "256.1.1.1": false} {
		if validIPv4(s) != want {
			t.Errorf("validIPv4(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{"::": true, "::1": true, "2001:db8::": true, "1:2:3:4:5:6:7:8": true, "1:2:3:4:5:6:7": false, "1::2::3": false, "12345::": false, "g::": false, "1:2:3:4:5:6:7:8:9": false} {
		if validIPv6(s) != want {
			t.Errorf("validIPv6(%q) = %v", s, !want)
		}
	}
	for s, want := range map[string]bool{"ok.": true, "€50 & more": true, "no": false, "colon: no": false, strings.Repeat("a", 513): false} {
		if validNote(s) != want {
			t.Errorf("validNote(%q) = %v", s, !want)
		}
	}
	if validTicketID("x") || !validTicketID("9f8e7d6c5b4a39281706f5e4d3c2b1a0") {
		t.Error("ticket ids: want 32 letters or digits")
	}
}
