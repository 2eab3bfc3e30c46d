package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/writ-project/writ/internal/sqlitecache"
)

// Connection settings. busy_timeout comes first in modernc's order of
// application, so the others wait for locks rather than fail. WAL with
// synchronous=FULL syncs the log on every commit, which is what makes a
// returned CreateOrder survive power loss and not only a killed process.
var basePragmas = []string{
	"busy_timeout(5000)",
	"foreign_keys(ON)",
	"journal_mode(WAL)",
	"synchronous(FULL)",
}

// SQLite is writ's order store on one SQLite database file. It is safe for
// concurrent use, because intake, the API and the policy compiler all
// reach it from their own goroutines.
//
// It holds two pools on the same file. Writes go through a pool of exactly
// one connection that begins its transactions IMMEDIATE: writers of this
// process queue in database/sql instead of meeting SQLITE_BUSY, and the
// write lock is taken before anything is read, so a transaction never has
// to be retried because another writer got in between. Reads use a
// separate query-only pool: in WAL mode readers neither block the writer
// nor are blocked by it, so listing every order for a policy compile does
// not hold up intake, and each read transaction sees one consistent
// snapshot that includes every commit that had returned when it began.
type SQLite struct {
	*db
}

// db is the part of a store common to SQLite and PostgreSQL: the same
// schema and queries, with the differences in a dialect.
type db struct {
	path  string // for messages: the file, or the DSN without its password
	write *sql.DB
	read  *sql.DB
	d     dialect
}

// OpenSQLite opens the database at path, creating it if absent, and
// refuses to return a store that cannot be trusted: a file that is not a
// SQLite database, is damaged, or was written by a newer writ is an error
// here rather than wrong answers later. The file is created 0600 because
// orders can name parties whose blocking is not yet public; SQLite gives
// its -wal and -shm files the same mode.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := createFile(abs); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}

	write := sqlitecache.Open(dsn(abs, "_txlock=immediate"))
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	if err := checkIntegrity(ctx, write, path); err != nil {
		return nil, errors.Join(err, write.Close())
	}
	if err := migrate(ctx, write, path, sqliteDialect); err != nil {
		return nil, errors.Join(err, write.Close())
	}

	read := sqlitecache.Open(dsn(abs, "_pragma=query_only(1)"))
	read.SetMaxOpenConns(4)
	read.SetMaxIdleConns(4)
	if err := read.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("store: open %s for reading: %w", path, err), read.Close(), write.Close())
	}
	return &SQLite{&db{path: path, write: write, read: read, d: sqliteDialect}}, nil
}

// createFile creates the database file with mode 0600 unless it exists,
// before SQLite can create it with its default 0644. A new file's
// directory entry is synced: SQLite syncs the file's contents, but only
// the directory makes the file itself survive power loss.
func createFile(abs string) error {
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		f, err = os.OpenFile(abs, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		return f.Close()
	}
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	dir, err := os.Open(filepath.Dir(abs))
	if err != nil {
		return err
	}
	return errors.Join(dir.Sync(), dir.Close())
}

// dsn builds a modernc DSN for the absolute path abs. The path is escaped
// because SQLite reads it as a URI, where '?', '#' and '%' are syntax.
func dsn(abs string, extra ...string) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(abs)
	params := make([]string, 0, len(basePragmas)+len(extra))
	for _, p := range basePragmas {
		params = append(params, "_pragma="+p)
	}
	params = append(params, extra...)
	return "file:" + esc + "?" + strings.Join(params, "&")
}

// checkIntegrity makes the first use of the file, so that a damaged or
// foreign file fails here, loudly and naming the file, instead of
// producing partial order lists later.
func checkIntegrity(ctx context.Context, db *sql.DB, path string) error {
	corrupt := func(err error) error {
		return fmt.Errorf("store: database file %s is corrupt or unreadable; writ will not serve from it: %w", path, err)
	}
	// The connection's pragmas, journal_mode among them, run here and read
	// the file header: a file that is not a database fails at this point.
	if err := db.PingContext(ctx); err != nil {
		return corrupt(err)
	}
	rows, err := db.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		return corrupt(err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return corrupt(err)
		}
		problems = append(problems, line)
	}
	if err := rows.Err(); err != nil {
		return corrupt(err)
	}
	if len(problems) == 1 && problems[0] == "ok" {
		return nil
	}
	const shown = 5
	more := ""
	if len(problems) > shown {
		more = fmt.Sprintf(" (and %d more)", len(problems)-shown)
		problems = problems[:shown]
	}
	return corrupt(fmt.Errorf("quick_check: %s%s", strings.Join(problems, "; "), more))
}
