package piracyshield

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-project/writ/piracyshield/pstest"
)

func startDouble(t *testing.T, opts pstest.Options) *pstest.Server {
	t.Helper()
	ps, err := pstest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	return ps
}

func clientOf(t *testing.T, ps *pstest.Server) *Client {
	t.Helper()
	c, err := NewClient(ps.URL(), ps.Email(), ps.Password(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func publish(t *testing.T, ps *pstest.Server, tk pstest.Ticket) string {
	t.Helper()
	id, err := ps.Publish(tk)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestNewClientChecksItsSettings(t *testing.T) {
	for _, tc := range []struct{ url, email, password, mention string }{
		{"platform.example/api/v1", "a@b.it", "pw", "API base"},
		{"ftp://platform.example/api/v1", "a@b.it", "pw", "API base"},
		{"https://platform.example/api/v1", "", "pw", "e-mail and password"},
		{"https://platform.example/api/v1", "a@b.it", "", "e-mail and password"},
	} {
		if _, err := NewClient(tc.url, tc.email, tc.password, nil); err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("NewClient(%q, %q, %q) = %v, want an error mentioning %q", tc.url, tc.email, tc.password, err, tc.mention)
		}
	}
}

func TestClientLists(t *testing.T) {
	ctx := t.Context()
	ps := startDouble(t, pstest.Options{})
	c := clientOf(t, ps)
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// Empty lists: the platform has no checksum for them.
	if sum, err := c.ItemsChecksum(ctx, FQDN); err != nil || sum != "" {
		t.Fatalf("checksum of the empty list = %q, %v", sum, err)
	}
	values, sum, err := c.VerifiedItems(ctx, FQDN)
	if err != nil || len(values) != 0 || sum != "" {
		t.Fatalf("VerifiedItems of the empty list = %v, %q, %v", values, sum, err)
	}

	id := publish(t, ps, pstest.Ticket{DDAID: "1234/24/DDA", Description: "Serie A, matchday 20", FQDN: []string{"live.example.com", "Calcio.Example.net"},
		IPv4: []string{"203.0.113.7"}, IPv6: []string{"2001:db8::7"}})
	tickets, err := c.Tickets(ctx)
	if err != nil || len(tickets) != 1 {
		t.Fatalf("Tickets = %+v, %v", tickets, err)
	}
	tk := tickets[0]
	if tk.ID != id || tk.Status != "open" || !slices.Equal(tk.FQDN, []string{"live.example.com", "Calcio.Example.net"}) ||
		!slices.Equal(tk.IPv4, []string{"203.0.113.7"}) || !slices.Equal(tk.IPv6, []string{"2001:db8::7"}) || tk.Description != "Serie A, matchday 20" {
		t.Errorf("ticket %+v", tk)
	}
	if created, ok := tk.Created(); !ok || time.Since(created) > time.Minute {
		t.Errorf("created %q", tk.Metadata.CreatedAt)
	}
	one, err := c.Ticket(ctx, id)
	if err != nil || one.ID != id {
		t.Errorf("Ticket = %+v, %v", one, err)
	}
	if _, err := c.Ticket(ctx, strings.Repeat("0", 32)); !HasCode(err, CodeTicketNotFound) {
		t.Errorf("unknown ticket: %v", err)
	}

	for _, g := range Genres {
		want := tk.Items(g)
		global, err := c.Items(ctx, g)
		if err != nil || !slices.Equal(global, want) {
			t.Errorf("Items(%s) = %v, %v", g, global, err)
		}
		perTicket, err := c.TicketItems(ctx, id, g)
		if err != nil || !slices.Equal(perTicket, want) {
			t.Errorf("TicketItems(%s) = %v, %v", g, perTicket, err)
		}
		text, err := c.ItemsText(ctx, g)
		if err != nil || string(text) != strings.Join(want, "\n") {
			t.Errorf("ItemsText(%s) = %q, %v", g, text, err)
		}
		sum, err := c.ItemsChecksum(ctx, g)
		if err != nil || sum != Checksum(want) {
			t.Errorf("ItemsChecksum(%s) = %q, %v; want %s", g, sum, err, Checksum(want))
		}
		values, sum, err := c.VerifiedTicketItems(ctx, id, g)
		if err != nil || !slices.Equal(values, want) || sum != Checksum(want) {
			t.Errorf("VerifiedTicketItems(%s) = %v, %q, %v", g, values, sum, err)
		}
	}
	states, err := c.ItemStates(ctx, id)
	if err != nil || len(states) != 4 || states[0].Status != "pending" {
		t.Errorf("ItemStates = %+v, %v", states, err)
	}
}

func TestClientChecksumMismatch(t *testing.T) {
	ctx := t.Context()
	ps := startDouble(t, pstest.Options{})
	c := clientOf(t, ps)
	publish(t, ps, pstest.Ticket{FQDN: []string{"live.example.com"}})

	// One bad answer is taken for a list that changed between the two
	// requests: the second try succeeds.
	ps.CorruptChecksums(1)
	if values, _, err := c.VerifiedItems(ctx, FQDN); err != nil || !slices.Equal(values, []string{"live.example.com"}) {
		t.Fatalf("after one bad checksum: %v, %v", values, err)
	}
	// Two in a row are an error, and no list.
	ps.CorruptChecksums(2)
	values, _, err := c.VerifiedItems(ctx, FQDN)
	if !errors.Is(err, ErrChecksum) || values != nil {
		t.Fatalf("after two bad checksums: %v, %v", values, err)
	}
}

func TestClientRefreshesAndLogsInAgain(t *testing.T) {
	ctx := t.Context()
	ps := startDouble(t, pstest.Options{})
	c := clientOf(t, ps)
	if _, err := c.Tickets(ctx); err != nil {
		t.Fatal(err)
	}
	if ps.Logins() != 1 || ps.Refreshes() != 0 {
		t.Fatalf("logins %d, refreshes %d", ps.Logins(), ps.Refreshes())
	}
	// The access token expires: the platform says so (401, 2002) and the
	// client refreshes it, then repeats the request.
	ps.ExpireAccessTokens()
	if _, err := c.Tickets(ctx); err != nil {
		t.Fatal(err)
	}
	if ps.Logins() != 1 || ps.Refreshes() != 1 {
		t.Fatalf("after the access token expired: logins %d, refreshes %d", ps.Logins(), ps.Refreshes())
	}
	// Both expire: the refresh is refused and the client logs in again.
	ps.ExpireTokens()
	if _, err := c.Tickets(ctx); err != nil {
		t.Fatal(err)
	}
	if ps.Logins() != 2 {
		t.Fatalf("after both tokens expired: logins %d", ps.Logins())
	}
	// Logged out, the tokens are blacklisted; the client logs in anew.
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Tickets(ctx); err != nil {
		t.Fatal(err)
	}
	if ps.Logins() != 3 {
		t.Fatalf("after logout: logins %d", ps.Logins())
	}
}

func TestClientRefreshesBeforeExpiry(t *testing.T) {
	ctx := t.Context()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ps := startDouble(t, pstest.Options{Now: clock})
	c := clientOf(t, ps)
	c.now = clock
	if _, err := c.Tickets(ctx); err != nil {
		t.Fatal(err)
	}
	// Within the last minute of the access token's hour, the client
	// refreshes without waiting to be refused.
	mu.Lock()
	now = now.Add(time.Hour - 30*time.Second)
	mu.Unlock()
	if _, err := c.Tickets(ctx); err != nil {
		t.Fatal(err)
	}
	if ps.Refreshes() != 1 || ps.Logins() != 1 {
		t.Fatalf("logins %d, refreshes %d", ps.Logins(), ps.Refreshes())
	}
}

func TestClientErrors(t *testing.T) {
	ctx := t.Context()
	ps := startDouble(t, pstest.Options{})
	wrong, err := NewClient(ps.URL(), ps.Email(), "wrong", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.Tickets(ctx); !HasCode(err, CodeAuthFailed) || !strings.Contains(err.Error(), ps.Email()) {
		t.Errorf("wrong password: %v", err)
	}

	c := clientOf(t, ps)
	ps.Fail("/ticket/get/all", 1, http.StatusTooManyRequests, "1005", "Too many requests.")
	_, err = c.Tickets(ctx)
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.HTTPStatus != http.StatusTooManyRequests || apiErr.Code != "1005" || apiErr.Endpoint != "/ticket/get/all" {
		t.Errorf("rate limited: %#v", err)
	}
	if _, err := c.Tickets(ctx); err != nil {
		t.Errorf("after the fault: %v", err)
	}
	ps.Fail("/authentication/login", 1, http.StatusForbidden, "1015", "Your IP address is temporary blacklisted.")
	other := clientOf(t, ps)
	if _, err := other.Tickets(ctx); !HasCode(err, CodeIPBlacklisted) {
		t.Errorf("banned address: %v", err)
	}
}

func TestClientReports(t *testing.T) {
	ctx := t.Context()
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ps := startDouble(t, pstest.Options{Now: clock})
	c := clientOf(t, ps)
	c.now = clock
	id := publish(t, ps, pstest.Ticket{FQDN: []string{"live.example.com"}, IPv4: []string{"104.16.1.1"}})

	if err := c.SetProcessed(ctx, "live.example.com", now, Note("blocked by writ order 20260101-ab12cd34")); err != nil {
		t.Fatal(err)
	}
	if err := c.SetUnprocessed(ctx, "104.16.1.1", Undefined, now, Note("held for review: overlaps shared infrastructure (Cloudflare)")); err != nil {
		t.Fatal(err)
	}
	states, err := c.ItemStates(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]ItemState{}
	for _, s := range states {
		got[s.Value] = s
	}
	if s := got["live.example.com"]; s.Status != "processed" || s.Note != "blocked by writ order 20260101-ab12cd34" || s.Timestamp == "" {
		t.Errorf("processed item %+v", s)
	}
	if s := got["104.16.1.1"]; s.Status != "unprocessed" || s.Reason != "UNDEFINED" || !strings.Contains(s.Note, "Cloudflare") {
		t.Errorf("unprocessed item %+v", s)
	}

	// What the platform refuses, it refuses with its codes.
	for _, tc := range []struct {
		do   func() error
		code string
	}{
		{func() error { return c.SetProcessed(ctx, "not a value", now, "") }, CodeValueNonValid},
		{func() error { return c.SetProcessed(ctx, "other.example.com", now, "") }, CodeItemNotFound},
		{func() error { return c.SetProcessed(ctx, "live.example.com", now, "held: (not allowed)") }, CodeNoteNonValid},
		{func() error { return c.SetUnprocessed(ctx, "live.example.com", Reason("BECAUSE"), now, "") }, "5009"},
	} {
		if err := tc.do(); !HasCode(err, tc.code) {
			t.Errorf("got %v, want error %s", err, tc.code)
		}
	}
	// After 48 hours the item's status is final.
	mu.Lock()
	now = now.Add(UpdateWindow + time.Minute)
	mu.Unlock()
	if err := c.SetProcessed(ctx, "104.16.1.1", now, ""); !HasCode(err, CodeUpdateTimeExceeded) {
		t.Errorf("after the window: %v", err)
	}
}
