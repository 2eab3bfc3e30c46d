package store

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/writ-project/writ/internal/pgtest"
)

// pg is the PostgreSQL server the package's tests share; each test gets
// a fresh database on it.
var pg *pgtest.Server

func TestMain(m *testing.M) {
	// The helper process of TestKillDurability needs no server.
	if os.Getenv(helperEnv) == "" {
		s, err := pgtest.New()
		if err != nil {
			fmt.Fprintln(os.Stderr, "store tests need PostgreSQL:", err)
			os.Exit(1)
		}
		pg = s
	}
	code := m.Run()
	if pg != nil {
		pg.Stop()
	}
	os.Exit(code)
}

// forEachStore runs a test against SQLite and against PostgreSQL: the two
// stores must behave alike.
func forEachStore(t *testing.T, test func(t *testing.T, s *db)) {
	t.Run("sqlite", func(t *testing.T) {
		s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "writ.db"))
		if err != nil {
			t.Fatalf("OpenSQLite: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		test(t, s.db)
	})
	t.Run("postgres", func(t *testing.T) {
		s, err := OpenPostgres(t.Context(), pg.FreshDatabase(t))
		if err != nil {
			t.Fatalf("OpenPostgres: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		test(t, s.db)
	})
}
