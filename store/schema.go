package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// migrations is the schema history, oldest first: migrations[i] brings the
// database to schema version i+1. Entries are never edited once released,
// because databases in the field have already run them; a change to the
// schema is a new string appended here, and nothing else needs to change.
var migrations = []string{
	// 1: orders and their events.
	`CREATE TABLE orders (
		id          TEXT PRIMARY KEY,
		received_at TEXT NOT NULL,
		status      TEXT NOT NULL,
		document    TEXT NOT NULL
	);
	CREATE TABLE events (
		seq       INTEGER PRIMARY KEY AUTOINCREMENT,
		order_id  TEXT NOT NULL REFERENCES orders(id),
		at        TEXT NOT NULL,
		kind      TEXT NOT NULL,
		principal TEXT NOT NULL,
		detail    TEXT NOT NULL
	);
	CREATE INDEX events_order_seq ON events(order_id, seq);`,

	// 2: due process: registered authorities, credentials, contests and
	// enforcement receipts.
	`CREATE TABLE authorities (
		id               TEXT PRIMARY KEY,
		name             TEXT NOT NULL,
		kind             TEXT NOT NULL,
		jurisdiction     TEXT NOT NULL,
		deadline_seconds INTEGER NOT NULL,
		registered_at    TEXT NOT NULL
	);
	CREATE TABLE principals (
		id         TEXT PRIMARY KEY,
		name       TEXT NOT NULL,
		role       TEXT NOT NULL,
		authority  TEXT NOT NULL,
		token_hash TEXT NOT NULL UNIQUE,
		created_at TEXT NOT NULL,
		disabled   INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE contests (
		id          INTEGER PRIMARY KEY AUTOINCREMENT,
		order_id    TEXT NOT NULL REFERENCES orders(id),
		target      TEXT NOT NULL,
		grounds     TEXT NOT NULL,
		filer_name  TEXT NOT NULL,
		filer_email TEXT NOT NULL,
		filed_at    TEXT NOT NULL,
		status      TEXT NOT NULL,
		decided_at  TEXT NOT NULL,
		decision    TEXT NOT NULL
	);
	CREATE INDEX contests_order ON contests(order_id, id);
	CREATE TABLE receipts (
		point      TEXT NOT NULL,
		version    INTEGER NOT NULL,
		applied_at TEXT NOT NULL,
		PRIMARY KEY (point, version)
	);`,

	// 3: the jurisdiction an enforcement point serves, if only one.
	`ALTER TABLE receipts ADD COLUMN scope TEXT NOT NULL DEFAULT '';`,
}

// The bookkeeping table lives outside the migrations so that the version
// can be read, and a too-new database refused, before anything is changed.
const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	applied_at TEXT NOT NULL
)`

// migrate brings the database at path up to the newest schema this code
// knows, one transaction per migration, so a crash between two migrations
// leaves a database at a well-defined version that the next open resumes.
func migrate(ctx context.Context, db *sql.DB, path string) error {
	if _, err := db.ExecContext(ctx, createMigrationsTable); err != nil {
		return fmt.Errorf("store: %s: create schema_migrations: %w", path, err)
	}
	current, err := schemaVersion(ctx, db)
	if err != nil {
		return fmt.Errorf("store: %s: read schema version: %w", path, err)
	}
	if err := checkNotNewer(path, current); err != nil {
		return err
	}
	for v := current + 1; v <= int64(len(migrations)); v++ {
		if err := applyMigration(ctx, db, path, v); err != nil {
			return err
		}
	}
	return nil
}

func checkNotNewer(path string, version int64) error {
	if version > int64(len(migrations)) {
		return fmt.Errorf("store: %s was created by a newer writ: its schema version is %d, this writ knows versions up to %d; upgrade writ or use another database",
			path, version, len(migrations))
	}
	return nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func schemaVersion(ctx context.Context, q querier) (int64, error) {
	var v int64
	err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// applyMigration runs migration v unless it is already recorded. The check
// is repeated inside the write transaction because another process may
// have opened the same file and migrated it since migrate looked.
func applyMigration(ctx context.Context, db *sql.DB, path string, v int64) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %s: migrate to schema version %d: %w", path, v, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, rollback(tx))
		}
	}()
	current, err := schemaVersion(ctx, tx)
	if err != nil {
		return fmt.Errorf("store: %s: migrate to schema version %d: %w", path, v, err)
	}
	if err := checkNotNewer(path, current); err != nil {
		return err
	}
	if current >= v {
		return tx.Rollback()
	}
	if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
		return fmt.Errorf("store: %s: migrate to schema version %d: %w", path, v, err)
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations(version, applied_at) VALUES (?, ?)`,
		v, formatTime(time.Now())); err != nil {
		return fmt.Errorf("store: %s: record schema version %d: %w", path, v, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: %s: commit schema version %d: %w", path, v, err)
	}
	return nil
}

// rollback undoes a failed transaction; a transaction that already ended
// is not a second failure.
func rollback(tx *sql.Tx) error {
	if err := tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}
