package sqlitecache

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

// kept returns the queries the pool's one connection keeps prepared.
func kept(t *testing.T, db *sql.DB) map[string]bool {
	t.Helper()
	c, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out := map[string]bool{}
	if err := c.Raw(func(dc any) error {
		for q := range dc.(*cachingConn).stmts {
			out[q] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConnectionsKeepStatements: a query is prepared once per connection
// and reused, in and out of transactions; a query run again while its
// rows are open is parsed afresh and both read their own rows; a script
// of several statements runs whole and is not kept; a failing statement
// leaves the kept one usable.
func TestConnectionsKeepStatements(t *testing.T) {
	ctx := context.Background()
	db := Open("file:" + filepath.Join(t.TempDir(), "cache.db"))
	defer db.Close()
	db.SetMaxOpenConns(1)

	if _, err := db.ExecContext(ctx, `CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL); CREATE TABLE u (k INTEGER)`); err != nil {
		t.Fatal(err)
	}
	if k := kept(t, db); len(k) != 0 {
		t.Errorf("a script was kept: %v", k)
	}
	const insert = `INSERT INTO t (k, v) VALUES (?, ?)`
	for i, v := range []string{"a", "b", "c"} {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, insert, i, v); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// A constraint failure, then the same statement again.
	if _, err := db.ExecContext(ctx, insert, 0, "dup"); err == nil {
		t.Error("a duplicate key was inserted")
	}
	if _, err := db.ExecContext(ctx, insert, 3, "d"); err != nil {
		t.Fatalf("the kept statement after a failure: %v", err)
	}

	// The same query again while its rows are open, on one connection:
	// each reads its own rows.
	const sel = `SELECT v FROM t WHERE k >= ? ORDER BY k`
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	outer, err := conn.QueryContext(ctx, sel, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got, inner []string
	for i := 0; outer.Next(); i++ {
		var v, w string
		if err := outer.Scan(&v); err != nil {
			t.Fatal(err)
		}
		if err := conn.QueryRowContext(ctx, sel, i+1).Scan(&w); err != nil && err != sql.ErrNoRows {
			t.Fatal(err)
		}
		got, inner = append(got, v), append(inner, w)
	}
	if err := outer.Err(); err != nil {
		t.Fatal(err)
	}
	outer.Close()
	conn.Close()
	if want := "a b c d"; strings.Join(got, " ") != want {
		t.Errorf("outer rows %q, want %s", got, want)
	}
	if want := "b c d "; strings.Join(inner, " ") != want {
		t.Errorf("inner rows %q, want %q", inner, want)
	}
	// Kept and free again: it runs on its own.
	var v string
	if err := db.QueryRowContext(ctx, sel, 2).Scan(&v); err != nil || v != "c" {
		t.Errorf("the kept select after nesting: %q, %v", v, err)
	}

	k := kept(t, db)
	if !k[insert] || !k[sel] || len(k) != 2 {
		t.Errorf("kept %v, want the insert and the select", k)
	}
}
