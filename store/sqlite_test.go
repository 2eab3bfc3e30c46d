package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-project/writ/order"
)

func openTest(t *testing.T) *SQLite {
	t.Helper()
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "writ.db"))
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

var (
	paris = time.FixedZone("CEST", 2*60*60)
	base  = time.Date(2026, 3, 28, 9, 30, 0, 123456789, paris)
)

func ptr[T any](v T) *T { return &v }

// fullOrder returns an order with every field set, its times in a zone
// other than UTC so that normalisation is exercised.
func fullOrder(id string, received time.Time) *order.Order {
	return &order.Order{
		ID: id,
		Authority: order.Authority{
			ID:           "fr-tj-paris",
			Name:         "Tribunal judiciaire de Paris",
			Kind:         order.Court,
			Jurisdiction: "FR",
		},
		LegalBasis: order.LegalBasis{
			Statute: "L.333-10 code du sport",
			Case:    "RG 25/01234",
			URL:     "https://example.org/decision",
			Summary: "live sport piracy",
		},
		Jurisdiction: []string{"FR", "MC"},
		Issued:       ptr(base.Add(-48 * time.Hour)),
		Effective:    base.Add(time.Hour),
		Expires:      base.Add(90 * 24 * time.Hour),
		Targets: []order.Target{
			{FQDN: "stream.example", Subdomains: true, State: order.TargetActive},
			{IP: "192.0.2.0/24", State: order.TargetActive},
			{FQDN: "cdn.example", State: order.TargetHeld, HoldReason: "shared infrastructure"},
			{URL: "https://video.example/live/1", State: order.TargetActive},
		},
		Note:     "amendments expected",
		Received: received,
	}
}

// inUTC is what the store hands back for o: the same order with every
// time in UTC.
func inUTC(o *order.Order) *order.Order {
	c := o.Clone()
	c.Targets = o.Targets // Clone turns an empty slice into nil
	c.Jurisdiction = o.Jurisdiction
	c.Effective, c.Expires, c.Received = c.Effective.UTC(), c.Expires.UTC(), c.Received.UTC()
	if c.Issued != nil {
		*c.Issued = c.Issued.UTC()
	}
	if c.DispositionAt != nil {
		*c.DispositionAt = c.DispositionAt.UTC()
	}
	return c
}

func events(id string, at time.Time, kinds ...order.EventKind) []order.Event {
	var es []order.Event
	for i, k := range kinds {
		es = append(es, order.Event{
			OrderID:   id,
			At:        at.Add(time.Duration(i) * time.Second),
			Kind:      k,
			Principal: "intake@example",
			Detail:    fmt.Sprintf("%s %d", k, i),
		})
	}
	return es
}

func wantEvents(es []order.Event) []order.Event {
	out := slices.Clone(es)
	for i := range out {
		out[i].At = out[i].At.UTC()
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *db) {
		ctx := t.Context()

		a := fullOrder("20260328-aaaa", base)
		aEvents := events(a.ID, base, order.EventReceived, order.EventActivated)
		v, err := s.CreateOrder(ctx, a, aEvents)
		if err != nil {
			t.Fatalf("CreateOrder: %v", err)
		}
		if v != 2 || aEvents[0].Seq != 1 || aEvents[1].Seq != 2 {
			t.Fatalf("version %d, seqs %d %d; want 2, 1 2", v, aEvents[0].Seq, aEvents[1].Seq)
		}

		// b: revoked, received earlier than a; its events have no OrderID,
		// which CreateOrder fills in.
		b := fullOrder("20260327-bbbb", base.Add(-24*time.Hour))
		b.Issued = nil
		b.Disposition = order.Revoked
		b.DispositionAt = ptr(base.Add(time.Minute))
		b.DispositionReason = "appeal granted"
		b.Targets = []order.Target{}
		bEvents := events("", base, order.EventReceived, order.EventRevoked)
		if v, err = s.CreateOrder(ctx, b, bEvents); err != nil || v != 4 {
			t.Fatalf("CreateOrder b: version %d, err %v; want 4, nil", v, err)
		}
		if bEvents[0].OrderID != b.ID || bEvents[1].Seq != 4 {
			t.Fatalf("b events not filled in: %+v", bEvents)
		}

		for _, want := range []*order.Order{a, b} {
			got, err := s.Order(ctx, want.ID)
			if err != nil {
				t.Fatalf("Order(%s): %v", want.ID, err)
			}
			if !reflect.DeepEqual(got, inUTC(want)) {
				t.Errorf("Order(%s) =\n%+v\nwant\n%+v", want.ID, got, inUTC(want))
			}
		}

		list, version, err := s.Orders(ctx)
		if err != nil {
			t.Fatalf("Orders: %v", err)
		}
		if version != 4 {
			t.Errorf("Orders version %d, want 4", version)
		}
		if !reflect.DeepEqual(list, []*order.Order{inUTC(b), inUTC(a)}) {
			t.Errorf("Orders = %+v", list)
		}

		// Update a: revoke it and hold a target.
		a2 := a.Clone()
		a2.Disposition = order.Revoked
		a2.DispositionAt = ptr(base.Add(2 * time.Hour))
		a2.DispositionReason = "order withdrawn"
		a2.Targets[0].State = order.TargetHeld
		a2.Targets[0].HoldReason = "contested"
		upd := events(a.ID, base.Add(2*time.Hour), order.EventRevoked)
		if v, err = s.UpdateOrder(ctx, a2, upd); err != nil || v != 5 || upd[0].Seq != 5 {
			t.Fatalf("UpdateOrder: version %d, seq %d, err %v; want 5, 5, nil", v, upd[0].Seq, err)
		}
		got, err := s.Order(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, inUTC(a2)) {
			t.Errorf("after update Order = %+v, want %+v", got, inUTC(a2))
		}
		var status string
		if err := s.read.QueryRowContext(ctx, s.d.rebind(`SELECT status FROM orders WHERE id = ?`), a.ID).Scan(&status); err != nil || status != "revoked" {
			t.Errorf("status column %q, %v; want revoked", status, err)
		}
		if err := s.read.QueryRowContext(ctx, s.d.rebind(`SELECT status FROM orders WHERE id = ?`), "20260327-bbbb").Scan(&status); err != nil || status != "revoked" {
			t.Errorf("status column of b %q, %v; want revoked", status, err)
		}

		gotEvents, err := s.Events(ctx, a.ID)
		if err != nil {
			t.Fatalf("Events: %v", err)
		}
		if want := wantEvents(append(aEvents, upd...)); !reflect.DeepEqual(gotEvents, want) {
			t.Errorf("Events(a) =\n%+v\nwant\n%+v", gotEvents, want)
		}
		gotEvents, err = s.Events(ctx, b.ID)
		if err != nil || !reflect.DeepEqual(gotEvents, wantEvents(bEvents)) {
			t.Errorf("Events(b) = %+v, %v; want %+v", gotEvents, err, wantEvents(bEvents))
		}
	})
}

func TestOrdersSortedByReceivedThenID(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *db) {
		ctx := t.Context()
		t0 := time.Date(2026, 1, 1, 0, 0, 5, 0, time.UTC)
		// Created out of order; "c" and "b" share a received time, and "a" is
		// half a second after them, which a text column holding
		// time.RFC3339Nano would sort first ("…:05.5Z" < "…:05Z").
		for _, o := range []*order.Order{
			fullOrder("a", t0.Add(500*time.Millisecond)),
			fullOrder("d", t0.Add(-time.Hour).In(paris)),
			fullOrder("c", t0),
			fullOrder("b", t0.In(paris)),
		} {
			if _, err := s.CreateOrder(ctx, o, nil); err != nil {
				t.Fatal(err)
			}
		}
		list, version, err := s.Orders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, o := range list {
			ids = append(ids, o.ID)
		}
		if want := []string{"d", "b", "c", "a"}; !slices.Equal(ids, want) || version != 0 {
			t.Errorf("Orders ids %v version %d; want %v version 0", ids, version, want)
		}
	})
}

func TestSeqAndVersion(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *db) {
		ctx := t.Context()
		if v, err := s.Version(ctx); err != nil || v != 0 {
			t.Fatalf("Version of empty store = %d, %v; want 0", v, err)
		}
		if list, v, err := s.Orders(ctx); err != nil || v != 0 || len(list) != 0 {
			t.Fatalf("Orders of empty store = %v, %d, %v", list, v, err)
		}
		if v, err := s.AppendEvents(ctx, nil); err != nil || v != 0 {
			t.Fatalf("AppendEvents(nil) = %d, %v; want 0", v, err)
		}

		var all []order.Event
		steps := []struct {
			name string
			run  func() (uint64, []order.Event, error)
		}{
			{"create without events", func() (uint64, []order.Event, error) {
				v, err := s.CreateOrder(ctx, fullOrder("o1", base), nil)
				return v, nil, err
			}},
			{"create with three", func() (uint64, []order.Event, error) {
				es := events("o2", base, order.EventReceived, order.EventHeld, order.EventActivated)
				v, err := s.CreateOrder(ctx, fullOrder("o2", base), es)
				return v, es, err
			}},
			{"append to two orders", func() (uint64, []order.Event, error) {
				es := append(events("o1", base, order.EventActivated), events("o2", base, order.EventExpired)...)
				v, err := s.AppendEvents(ctx, es)
				return v, es, err
			}},
			{"update with one", func() (uint64, []order.Event, error) {
				es := events("o1", base, order.EventRevoked)
				v, err := s.UpdateOrder(ctx, fullOrder("o1", base), es)
				return v, es, err
			}},
			{"update without events", func() (uint64, []order.Event, error) {
				v, err := s.UpdateOrder(ctx, fullOrder("o2", base), nil)
				return v, nil, err
			}},
		}
		for _, step := range steps {
			v, es, err := step.run()
			if err != nil {
				t.Fatalf("%s: %v", step.name, err)
			}
			all = append(all, es...)
			var last uint64
			if len(all) > 0 {
				last = all[len(all)-1].Seq
			}
			if v != last {
				t.Errorf("%s: version %d, last seq %d", step.name, v, last)
			}
			if got, err := s.Version(ctx); err != nil || got != v {
				t.Errorf("%s: Version() = %d, %v; want %d", step.name, got, err, v)
			}
		}
		for i, e := range all {
			if e.Seq != uint64(i+1) {
				t.Errorf("event %d has seq %d; want %d", i, e.Seq, i+1)
			}
		}
	})
}

func TestNotFoundAndExists(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *db) {
		ctx := t.Context()
		orig := fullOrder("20261123-ab12", base)
		if _, err := s.CreateOrder(ctx, orig, events(orig.ID, base, order.EventReceived)); err != nil {
			t.Fatal(err)
		}

		cases := []struct {
			name    string
			call    func() ([]order.Event, error)
			wantErr error // nil: any error
			wantID  string
		}{
			{"create duplicate", func() ([]order.Event, error) {
				dup := fullOrder(orig.ID, base.Add(time.Hour))
				dup.Note = "second submission"
				es := events(orig.ID, base, order.EventReceived, order.EventActivated)
				_, err := s.CreateOrder(ctx, dup, es)
				return es, err
			}, ErrExists, orig.ID},
			{"update unknown", func() ([]order.Event, error) {
				es := events("", base, order.EventRevoked)
				_, err := s.UpdateOrder(ctx, fullOrder("nope", base), es)
				return es, err
			}, ErrNotFound, "nope"},
			{"append for unknown among known", func() ([]order.Event, error) {
				es := append(events(orig.ID, base, order.EventExpired), events("ghost", base, order.EventExpired)...)
				_, err := s.AppendEvents(ctx, es)
				return es, err
			}, ErrNotFound, "ghost"},
			{"create with another order's event", func() ([]order.Event, error) {
				es := events(orig.ID, base, order.EventReceived)
				_, err := s.CreateOrder(ctx, fullOrder("other", base), es)
				return es, err
			}, nil, "other"},
			{"append without order id", func() ([]order.Event, error) {
				es := events("", base, order.EventExpired)
				_, err := s.AppendEvents(ctx, es)
				return es, err
			}, nil, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				es, err := c.call()
				if err == nil || (c.wantErr != nil && !errors.Is(err, c.wantErr)) {
					t.Fatalf("err = %v; want %v", err, c.wantErr)
				}
				if !strings.Contains(err.Error(), c.wantID) {
					t.Errorf("error %q does not name %q", err, c.wantID)
				}
				for _, e := range es {
					if e.Seq != 0 {
						t.Errorf("failed call assigned seq %d", e.Seq)
					}
				}
				// Nothing half-written: one order, one event, as before.
				if v, err := s.Version(ctx); err != nil || v != 1 {
					t.Errorf("Version = %d, %v; want 1", v, err)
				}
				list, _, err := s.Orders(ctx)
				if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], inUTC(orig)) {
					t.Errorf("Orders = %+v, %v; want only the original", list, err)
				}
			})
		}

		if _, err := s.Order(ctx, "missing-1"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "missing-1") {
			t.Errorf("Order(missing) err = %v", err)
		}
		if _, err := s.Events(ctx, "missing-2"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "missing-2") {
			t.Errorf("Events(missing) err = %v", err)
		}
		if _, err := s.CreateOrder(ctx, &order.Order{}, nil); err == nil {
			t.Error("CreateOrder without id succeeded")
		}
	})
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "writ.db")
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if s.Path() != path {
		t.Errorf("Path() = %q, want %q", s.Path(), path)
	}
	o := fullOrder("keep-me", base)
	es := events(o.ID, base, order.EventReceived, order.EventActivated)
	if _, err := s.CreateOrder(ctx, o, es); err != nil {
		t.Fatal(err)
	}
	applied := migrationRows(t, s)
	if len(applied) != len(migrations) {
		t.Fatalf("schema_migrations has %d rows, want %d", len(applied), len(migrations))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = OpenSQLite(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if got := migrationRows(t, s); !reflect.DeepEqual(got, applied) {
		t.Errorf("migrations after reopen %v, before %v: re-applied?", got, applied)
	}
	got, err := s.Order(ctx, o.ID)
	if err != nil || !reflect.DeepEqual(got, inUTC(o)) {
		t.Errorf("Order after reopen = %+v, %v", got, err)
	}
	gotEvents, err := s.Events(ctx, o.ID)
	if err != nil || !reflect.DeepEqual(gotEvents, wantEvents(es)) {
		t.Errorf("Events after reopen = %+v, %v", gotEvents, err)
	}
	if v, err := s.Version(ctx); err != nil || v != 2 {
		t.Errorf("Version after reopen = %d, %v", v, err)
	}
	// The sequence continues rather than restarting.
	more := events(o.ID, base, order.EventExpired)
	if v, err := s.AppendEvents(ctx, more); err != nil || v != 3 || more[0].Seq != 3 {
		t.Errorf("AppendEvents after reopen = %d (seq %d), %v; want 3", v, more[0].Seq, err)
	}
}

// migrationRows returns schema_migrations as "version applied_at" lines.
func migrationRows(t *testing.T, s *SQLite) []string {
	t.Helper()
	rows, err := s.read.QueryContext(t.Context(), `SELECT version, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v int64
		var at string
		if err := rows.Scan(&v, &at); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(v, " ", at))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLaterMigration shows that a new migration is picked up by an
// existing database on its next open, once, and that older code then
// refuses that database.
func TestLaterMigration(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "writ.db")
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateOrder(ctx, fullOrder("x", base), nil); err != nil {
		t.Fatal(err)
	}
	s.Close()

	known := migrations
	t.Cleanup(func() { migrations = known })
	migrations = append(slices.Clip(known), `CREATE INDEX orders_status ON orders(status)`)
	newer := len(migrations)

	for range 2 { // the second open must not apply it again
		s, err = OpenSQLite(ctx, path)
		if err != nil {
			t.Fatalf("open with migration %d: %v", newer, err)
		}
		if rows := migrationRows(t, s); len(rows) != newer {
			t.Errorf("schema_migrations = %v; want %d rows", rows, newer)
		}
		var n int
		if err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'orders_status'`).Scan(&n); err != nil || n != 1 {
			t.Errorf("index from migration %d: %d, %v", newer, n, err)
		}
		if _, err := s.Order(ctx, "x"); err != nil {
			t.Error(err)
		}
		s.Close()
	}

	migrations = known
	_, err = OpenSQLite(ctx, path)
	if err == nil {
		t.Fatal("older code opened a database migrated by newer code")
	}
	for _, want := range []string{path, "newer writ", fmt.Sprint("schema version is ", newer), fmt.Sprint("up to ", len(known))} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "writ.db")
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	future := len(migrations) + 5
	if _, err := s.write.ExecContext(ctx, `INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`, future, formatTime(base)); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = OpenSQLite(ctx, path)
	if err == nil {
		s.Close()
		t.Fatal("opened a database from a newer writ")
	}
	for _, want := range []string{path, "created by a newer writ", fmt.Sprint(future), fmt.Sprint("up to ", len(migrations))} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestPragmas(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	cases := []struct {
		pool   string
		pragma string
		want   string
	}{
		{"write", "journal_mode", "wal"},
		{"write", "synchronous", "2"},
		{"write", "foreign_keys", "1"},
		{"write", "busy_timeout", "5000"},
		{"write", "query_only", "0"},
		{"read", "journal_mode", "wal"},
		{"read", "synchronous", "2"},
		{"read", "busy_timeout", "5000"},
		{"read", "query_only", "1"},
	}
	for _, c := range cases {
		db := s.write
		if c.pool == "read" {
			db = s.read
		}
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
			t.Errorf("%s PRAGMA %s: %v", c.pool, c.pragma, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s PRAGMA %s = %q, want %q", c.pool, c.pragma, got, c.want)
		}
	}
	if _, err := s.read.ExecContext(ctx, `INSERT INTO orders VALUES ('x', '', '', '{}')`); err == nil {
		t.Error("read pool accepted a write")
	}
	// The foreign key is enforced: no event without its order.
	if _, err := s.write.ExecContext(ctx, `INSERT INTO events(order_id, at, kind, principal, detail) VALUES ('none', '', '', '', '')`); err == nil {
		t.Error("event without an order was accepted")
	}
}

func TestFileMode(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	if _, err := s.CreateOrder(ctx, fullOrder("m", base), events("m", base, order.EventReceived)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{s.Path(), s.Path() + "-wal"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %o, want 600", p, mode)
		}
	}
	if _, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "no-such-dir", "writ.db")); err == nil {
		t.Error("OpenSQLite created a missing parent directory")
	}
}

func TestAwkwardPath(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "a?b#c%20d e.db")
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateOrder(ctx, fullOrder("p", base), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at %q: %v", path, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), filepath.Base(path)) {
			t.Errorf("stray file %q next to %q", e.Name(), path)
		}
	}
}

func TestConcurrentCreate(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *db) {
		ctx := t.Context()
		const workers, each = 8, 50
		seqs := make([][]uint64, workers)
		errs := make(chan error, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					id := fmt.Sprintf("w%d-%03d", w, i)
					es := events(id, base, order.EventReceived, order.EventActivated)
					v, err := s.CreateOrder(ctx, fullOrder(id, base.Add(time.Duration(i)*time.Millisecond)), es)
					if err != nil {
						errs <- err
						return
					}
					if v < es[1].Seq {
						errs <- fmt.Errorf("%s: version %d below its own seq %d", id, v, es[1].Seq)
						return
					}
					seqs[w] = append(seqs[w], es[0].Seq, es[1].Seq)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}

		seen := map[uint64]bool{}
		for _, ws := range seqs {
			for _, q := range ws {
				if seen[q] {
					t.Errorf("seq %d assigned twice", q)
				}
				seen[q] = true
			}
		}
		list, version, err := s.Orders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != workers*each || len(seen) != 2*workers*each || version != 2*workers*each {
			t.Errorf("%d orders, %d seqs, version %d; want %d, %d, %d",
				len(list), len(seen), version, workers*each, 2*workers*each, 2*workers*each)
		}
	})
}

func TestEventsSince(t *testing.T) {
	forEachStore(t, func(t *testing.T, s *db) {
		ctx := context.Background()
		for i := range 3 {
			o := &order.Order{ID: fmt.Sprintf("o%d", i), Received: time.Now()}
			evs := []order.Event{{Kind: order.EventReceived, At: time.Now()}, {Kind: order.EventHeld, At: time.Now()}}
			if _, err := s.CreateOrder(ctx, o, evs); err != nil {
				t.Fatal(err)
			}
		}
		all, err := s.EventsSince(ctx, 0, 100)
		if err != nil || len(all) != 6 || all[0].Seq != 1 || all[5].Seq != 6 || all[2].OrderID != "o1" {
			t.Fatalf("EventsSince(0) = %+v, %v", all, err)
		}
		page, err := s.EventsSince(ctx, 2, 3)
		if err != nil || len(page) != 3 || page[0].Seq != 3 || page[2].Seq != 5 {
			t.Fatalf("EventsSince(2, 3) = %+v, %v", page, err)
		}
		none, err := s.EventsSince(ctx, 6, 10)
		if err != nil || len(none) != 0 {
			t.Fatalf("EventsSince(6) = %+v, %v", none, err)
		}
	})
}
