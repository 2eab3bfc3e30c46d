package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
)

func openDue(t *testing.T) *SQLite {
	t.Helper()
	s, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "writ.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestAuthoritiesAndPrincipals(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *db) {
		ctx := context.Background()
		now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
		a := order.RegisteredAuthority{Authority: order.Authority{ID: "arcom", Name: "ARCOM", Kind: order.Regulator, Jurisdiction: "FR"}, DeadlineSeconds: 600, Registered: now}
		if err := s.PutAuthority(ctx, a); err != nil {
			t.Fatal(err)
		}
		a.Name = "Autorité de régulation de la communication audiovisuelle et numérique"
		if err := s.PutAuthority(ctx, a); err != nil {
			t.Fatal(err)
		}
		list, err := s.Authorities(ctx)
		if err != nil || len(list) != 1 || list[0] != a {
			t.Fatalf("authorities %+v %v", list, err)
		}
		p := access.Principal{ID: "alice", Name: "Alice", Role: access.Reviewer, Created: now, TokenHash: access.HashToken("t1")}
		if err := s.CreatePrincipal(ctx, p); err != nil {
			t.Fatal(err)
		}
		// The same id, or the same token, again: refused.
		if err := s.CreatePrincipal(ctx, p); !errors.Is(err, ErrExists) {
			t.Fatalf("duplicate id: %v", err)
		}
		q := access.Principal{ID: "bob", Role: access.Operator, Created: now, TokenHash: p.TokenHash}
		if err := s.CreatePrincipal(ctx, q); !errors.Is(err, ErrExists) {
			t.Fatalf("duplicate token hash: %v", err)
		}
		got, err := s.PrincipalByTokenHash(ctx, access.HashToken("t1"))
		if err != nil || got != p {
			t.Fatalf("by token: %+v %v", got, err)
		}
		if _, err := s.PrincipalByTokenHash(ctx, access.HashToken("nope")); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown token: %v", err)
		}
		if err := s.SetPrincipalDisabled(ctx, "alice", true); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.PrincipalByTokenHash(ctx, p.TokenHash); !got.Disabled {
			t.Fatal("not disabled")
		}
		if err := s.SetPrincipalDisabled(ctx, "nobody", true); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown principal: %v", err)
		}
	})
}

func TestContestsAndReceipts(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *db) {
		ctx := context.Background()
		now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
		o := &order.Order{ID: "o1", Received: now, Targets: []order.Target{{FQDN: "a.example", State: order.TargetActive}}}
		if _, err := s.CreateOrder(ctx, o, []order.Event{{Kind: order.EventReceived, At: now}}); err != nil {
			t.Fatal(err)
		}
		c := &order.Contest{OrderID: "o1", Target: "a.example", Grounds: "wrongly listed", Filed: now, Status: order.ContestPending,
			Filer: order.ContestFiler{Name: "M", Email: "m@example.org"}}
		version, err := s.CreateContest(ctx, c, func(id int64) []order.Event {
			return []order.Event{{Kind: order.EventContested, At: now, Detail: fmt.Sprintf("contest %d", id)}}
		})
		if err != nil || c.ID != 1 || version != 2 {
			t.Fatalf("create contest: id %d version %d %v", c.ID, version, err)
		}
		evs, _ := s.Events(ctx, "o1")
		if len(evs) != 2 || evs[1].Detail != "contest 1" {
			t.Fatalf("events %+v", evs)
		}
		decided := now.Add(time.Hour)
		c.Status, c.Decided, c.Decision = order.ContestUpheld, &decided, "indeed"
		o.Targets[0].State = order.TargetRemoved
		if _, err := s.DecideContest(ctx, c, o, []order.Event{{Kind: order.EventDecided, At: decided}}, version); err != nil {
			t.Fatal(err)
		}
		got, err := s.Contest(ctx, 1)
		if err != nil || got.Status != order.ContestUpheld || !got.Decided.Equal(decided) || got.Filer.Email != "m@example.org" {
			t.Fatalf("contest %+v %v", got, err)
		}
		if stored, err := s.Order(ctx, "o1"); err != nil || stored.Targets[0].State != order.TargetRemoved {
			t.Log(err)
			t.Fatal("the decision's change to the order was not stored")
		}
		if _, err := s.Contest(ctx, 99); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown contest: %v", err)
		}

		// Receipts: the first receipt at or after a version, per point; a
		// repeated receipt keeps the earliest time.
		for _, r := range []policy.Receipt{
			{Point: "dns", Version: 1, At: now}, {Point: "dns", Version: 3, At: now.Add(time.Minute)},
			{Point: "dns", Version: 3, At: now.Add(time.Hour)}, {Point: "rpz:a", Version: 5, At: now.Add(2 * time.Minute)},
		} {
			if err := s.AddReceipt(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		first, err := s.FirstReceipts(ctx, 2)
		if err != nil || len(first) != 2 || first[0].Point != "dns" || first[0].Version != 3 || !first[0].At.Equal(now.Add(time.Minute)) || first[1].Version != 5 {
			t.Fatalf("first receipts %+v %v", first, err)
		}
		points, err := s.Points(ctx)
		if err != nil || len(points) != 2 || points[0].Version != 3 {
			t.Fatalf("points %+v %v", points, err)
		}
		if err := s.AddReceipt(ctx, policy.Receipt{Version: 1}); err == nil {
			t.Fatal("receipt without a point accepted")
		}
	})
}

// A retired enforcement point is left out of the points in service, with
// its receipts kept, until it sends a receipt for a later version.
func TestRetiredPoints(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *db) {
		ctx := t.Context()
		now := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
		names := func() []string {
			t.Helper()
			points, err := s.Points(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, p := range points {
				out = append(out, fmt.Sprintf("%s@%d", p.Point, p.Version))
			}
			return out
		}
		for _, r := range []policy.Receipt{{Point: "dns@a", Version: 4, At: now}, {Point: "gate@old", Version: 3, At: now}} {
			if err := s.AddReceipt(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.RetirePoint(ctx, "gate@old", now, "operator"); err != nil {
			t.Fatal(err)
		}
		if got := names(); !slices.Equal(got, []string{"dns@a@4"}) {
			t.Errorf("points after retiring gate@old: %v", got)
		}
		retired, err := s.RetiredPoints(ctx)
		if err != nil || len(retired) != 1 || retired[0].Point != "gate@old" || retired[0].Version != 3 || retired[0].By != "operator" || !retired[0].At.Equal(now) {
			t.Errorf("retired points %+v %v", retired, err)
		}
		if first, err := s.FirstReceipts(ctx, 1); err != nil || len(first) != 2 {
			t.Errorf("receipts of the retired point were not kept: %+v %v", first, err)
		}
		for _, p := range []string{"gate@old", "never-seen"} {
			if err := s.RetirePoint(ctx, p, now, "operator"); !errors.Is(err, ErrNotFound) {
				t.Errorf("retiring %s: %v, want ErrNotFound", p, err)
			}
		}
		// The same version again: still retired. A later one: in service.
		if err := s.AddReceipt(ctx, policy.Receipt{Point: "gate@old", Version: 3, At: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if got := names(); !slices.Equal(got, []string{"dns@a@4"}) {
			t.Errorf("points after a repeated receipt of the retired point: %v", got)
		}
		if err := s.AddReceipt(ctx, policy.Receipt{Point: "gate@old", Version: 5, At: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if got := names(); !slices.Equal(got, []string{"dns@a@4", "gate@old@5"}) {
			t.Errorf("points after a new receipt of the retired point: %v", got)
		}
		if retired, err := s.RetiredPoints(ctx); err != nil || len(retired) != 0 {
			t.Errorf("retired points once gate@old is back: %+v %v", retired, err)
		}
		// Retired again, at its new version.
		if err := s.RetirePoint(ctx, "gate@old", now.Add(2*time.Hour), "operator"); err != nil {
			t.Fatal(err)
		}
		if got := names(); !slices.Equal(got, []string{"dns@a@4"}) {
			t.Errorf("points after retiring gate@old again: %v", got)
		}
	})
}

// Writers that read an order before another changed it are refused, not
// silently overwriting; lifecycle events are recorded once per order.
func TestStaleWritesAndOnceEvents(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *db) {
		ctx := context.Background()
		now := time.Now()
		o := &order.Order{ID: "o1", Received: now}
		v0, err := s.CreateOrder(ctx, o, []order.Event{{Kind: order.EventReceived, At: now}})
		if err != nil {
			t.Fatal(err)
		}
		// Another writer changes the order.
		v1, err := s.UpdateOrderSince(ctx, o, []order.Event{{Kind: order.EventAmended, At: now}}, v0)
		if err != nil || v1 != v0+1 {
			t.Fatalf("first update: %d %v", v1, err)
		}
		// This one read it at v0: refused, nothing written.
		if _, err := s.UpdateOrderSince(ctx, o, []order.Event{{Kind: order.EventRevoked, At: now}}, v0); !errors.Is(err, ErrStale) {
			t.Fatalf("stale update: %v", err)
		}
		if v, _ := s.Version(ctx); v != v1 {
			t.Fatalf("a refused write moved the version to %d", v)
		}
		// Expired twice (two nodes noticing): recorded once.
		for range 2 {
			evs := []order.Event{{OrderID: "o1", Kind: order.EventExpired, At: now}, {OrderID: "o1", Kind: order.EventHeld, At: now}}
			if _, err := s.AppendEvents(ctx, evs); err != nil {
				t.Fatal(err)
			}
		}
		all, _ := s.Events(ctx, "o1")
		kinds := []string{}
		for _, e := range all {
			kinds = append(kinds, string(e.Kind))
		}
		if fmt.Sprint(kinds) != "[received amended expired held held]" {
			t.Fatalf("events %v", kinds)
		}
		// A contest decided twice: the second is stale.
		c := &order.Contest{OrderID: "o1", Grounds: "wrongly listed here", Filed: now, Status: order.ContestPending}
		if _, err := s.CreateContest(ctx, c, func(int64) []order.Event { return nil }); err != nil {
			t.Fatal(err)
		}
		v, _ := s.Version(ctx)
		c.Status, c.Decision = order.ContestDismissed, "no"
		if _, err := s.DecideContest(ctx, c, nil, nil, v); err != nil {
			t.Fatal(err)
		}
		if _, err := s.DecideContest(ctx, c, nil, nil, v); !errors.Is(err, ErrStale) {
			t.Fatalf("second decision: %v", err)
		}
	})
}
