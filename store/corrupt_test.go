package store

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writ-project/writ/order"
)

// populated returns the path of a closed database holding enough orders to
// span many pages.
func populated(t *testing.T) string {
	t.Helper()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "writ.db")
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		id := fmt.Sprintf("o-%03d", i)
		if _, err := s.CreateOrder(ctx, fullOrder(id, base), events(id, base, order.EventReceived)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); err == nil {
		t.Fatalf("%s-wal left behind after Close; damaging the main file alone would not test anything", path)
	}
	return path
}

func randomBytes(n int) []byte {
	r := rand.NewChaCha8([32]byte{'w', 'r', 'i', 't'})
	b := make([]byte, n)
	r.Read(b)
	return b
}

func TestCorruptFilesRefused(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T) string // returns the path to open
	}{
		{"random bytes", func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "writ.db")
			if err := os.WriteFile(path, randomBytes(64<<10), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"truncated to half", func(t *testing.T) string {
			path := populated(t)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"truncated inside the header", func(t *testing.T) string {
			path := populated(t)
			if err := os.Truncate(path, 50); err != nil {
				t.Fatal(err)
			}
			return path
		}},
		{"page overwritten", func(t *testing.T) string {
			path := populated(t)
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			// Page 3 onwards holds table data; keep page 1 (header and
			// schema) intact so that only the check can notice.
			if _, err := f.WriteAt(randomBytes(4096), 2*4096); err != nil {
				t.Fatal(err)
			}
			return path
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := c.damage(t)
			s, err := OpenSQLite(t.Context(), path)
			if err == nil {
				s.Close()
				t.Fatal("OpenSQLite accepted a damaged file")
			}
			for _, want := range []string{path, "corrupt or unreadable", "writ will not serve from it"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			t.Log(err)
		})
	}
}

// TestZeroLengthFileIsNew: SQLite treats an empty file as an empty
// database, and so does writ. It is what a crash between creating the file
// and the first write leaves behind, and it holds no orders to lose.
func TestZeroLengthFileIsNew(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "writ.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatalf("OpenSQLite on an empty file: %v", err)
	}
	defer s.Close()
	if v, err := s.Version(ctx); err != nil || v != 0 {
		t.Errorf("Version = %d, %v; want 0", v, err)
	}
	if _, err := s.CreateOrder(ctx, fullOrder("first", base), events("first", base, order.EventReceived)); err != nil {
		t.Fatal(err)
	}
}

func TestBadDocument(t *testing.T) {
	ctx := t.Context()
	s := openTest(t)
	if _, err := s.CreateOrder(ctx, fullOrder("good", base), nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		id, doc string
	}{
		{"bad-json", `{"id": "bad-json", "targets": [`},
		{"bad-type", `{"id": "bad-type", "effective": 42}`},
		{"wrong-id", `{"id": "someone-else"}`},
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			if _, err := s.write.ExecContext(ctx,
				`INSERT INTO orders(id, received_at, status, document) VALUES (?, ?, 'open', ?)`,
				c.id, formatTime(base), c.doc); err != nil {
				t.Fatal(err)
			}
			defer s.write.ExecContext(ctx, `DELETE FROM orders WHERE id = ?`, c.id)

			list, _, err := s.Orders(ctx)
			if err == nil {
				t.Fatalf("Orders returned %d orders and no error", len(list))
			}
			if !strings.Contains(err.Error(), c.id) {
				t.Errorf("Orders error %q does not name %s", err, c.id)
			}
			if _, err := s.Order(ctx, c.id); err == nil || !strings.Contains(err.Error(), c.id) {
				t.Errorf("Order(%s) error %v", c.id, err)
			}
		})
	}
	if list, _, err := s.Orders(ctx); err != nil || len(list) != 1 {
		t.Errorf("after cleanup Orders = %d, %v", len(list), err)
	}
}
