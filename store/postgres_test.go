package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writ-project/writ/order"
)

// Several nodes writing to one PostgreSQL database at once get dense,
// distinct seqs, committed in order.
func TestPostgresNodesShareOneSequence(t *testing.T) {
	dsn := pg.FreshDatabase(t)
	ctx := t.Context()
	var nodes []*Postgres
	for range 3 {
		s, err := OpenPostgres(ctx, dsn) // the nodes migrate concurrently below too
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		nodes = append(nodes, s)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3*40)
	for n, s := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 40 {
				o := &order.Order{ID: fmt.Sprintf("n%d-%d", n, i), Received: time.Now()}
				if _, err := s.CreateOrder(ctx, o, []order.Event{{Kind: order.EventReceived, At: time.Now()}, {Kind: order.EventActivated, At: time.Now()}}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all, err := nodes[0].EventsSince(ctx, 0, 1000)
	if err != nil || len(all) != 240 {
		t.Fatalf("%d events, %v", len(all), err)
	}
	for i, e := range all {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: seqs are not dense", i, e.Seq)
		}
		// An order's two events were written in one transaction: adjacent.
		if i%2 == 1 && all[i-1].OrderID != e.OrderID {
			t.Fatalf("events of one transaction interleaved with another's at seq %d", e.Seq)
		}
	}
}

func TestPostgresMigratesOnceFromConcurrentStarts(t *testing.T) {
	dsn := pg.FreshDatabase(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := OpenPostgres(t.Context(), dsn)
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	s, err := OpenPostgres(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	if err := s.read.QueryRowContext(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(pgMigrations) {
		t.Fatalf("%d migrations recorded, want %d (%v)", n, len(pgMigrations), err)
	}
	if len(pgMigrations) != len(migrations) {
		t.Fatalf("PostgreSQL has %d migrations, SQLite %d: the schemas must advance together", len(pgMigrations), len(migrations))
	}
}

func TestPostgresNewerSchemaRefused(t *testing.T) {
	dsn := pg.FreshDatabase(t)
	s, err := OpenPostgres(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.write.ExecContext(t.Context(), `INSERT INTO schema_migrations(version, applied_at) VALUES (99, 'x')`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = OpenPostgres(t.Context(), dsn)
	if err == nil || !strings.Contains(err.Error(), "created by a newer writ") || !strings.Contains(err.Error(), "99") {
		t.Fatalf("newer schema: %v", err)
	}
	if _, err := OpenPostgres(t.Context(), "postgres://writ@127.0.0.1:1/writ?sslmode=disable&connect_timeout=2"); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("unreachable server: %v", err)
	}
}

// Every commit, from any node, is announced with the new version.
func TestPostgresListen(t *testing.T) {
	dsn := pg.FreshDatabase(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	a, err := OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenPostgres(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	versions := a.Listen(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	// The listener is connected once a notification makes it through;
	// commit until one does.
	var seen []uint64
	deadline := time.After(10 * time.Second)
	for i := 0; len(seen) == 0; i++ {
		if _, err := b.CreateOrder(ctx, &order.Order{ID: fmt.Sprintf("w%d", i)}, []order.Event{{Kind: order.EventReceived}}); err != nil {
			t.Fatal(err)
		}
		select {
		case v := <-versions:
			seen = append(seen, v)
		case <-deadline:
			t.Fatal("no notification in 10s")
		case <-time.After(100 * time.Millisecond):
		}
	}
	// From now on each commit is announced.
	last, _ := b.Version(ctx)
	if _, err := b.AppendEvents(ctx, []order.Event{{OrderID: "w0", Kind: order.EventHeld}}); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case v := <-versions:
			if v == last+1 {
				return
			}
			seen = append(seen, v)
			if slices.Max(seen) > last+1 {
				t.Fatalf("versions %v skipped %d", seen, last+1)
			}
		case <-deadline:
			t.Fatalf("version %d not announced; saw %v", last+1, seen)
		}
	}
}

func TestRedactDSN(t *testing.T) {
	for dsn, want := range map[string]string{
		"postgres://writ:s3cret@db.example/writ":           "postgres://writ:xxxxx@db.example/writ",
		"postgres://writ@db.example/writ":                  "postgres://writ@db.example/writ",
		"host=db.example password=s3cret dbname=writ":      "host=db.example password=xxxxx dbname=writ",
		"host=db.example password = 'a b\\'c' dbname=writ": "host=db.example password = xxxxx dbname=writ",
	} {
		if got := redactDSN(dsn); got != want {
			t.Errorf("redactDSN(%q) = %q, want %q", dsn, got, want)
		}
	}
}
