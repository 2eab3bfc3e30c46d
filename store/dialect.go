package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// dialect is what differs between SQLite and PostgreSQL: everything else
// is one set of queries, written with "?" placeholders.
type dialect struct {
	name string
	// rebind turns "?" placeholders into the database's own.
	rebind func(query string) string
	// lockWriters serialises write transactions: SQLite's writers are
	// already serialised by its IMMEDIATE transactions; PostgreSQL's, which
	// may run on several writ nodes, take an advisory lock, so that event
	// seqs are allocated and committed in order.
	lockWriters func(ctx context.Context, t *tx) error
	// lockMigrations serialises schema migrations of nodes starting at once.
	lockMigrations func(ctx context.Context, t *sql.Tx) error
	// notify tells other nodes of a new version, delivered at commit.
	notify func(ctx context.Context, t *tx, version uint64) error
	// least is the scalar minimum of two values.
	least string
	// readTx are the options of read transactions: each reads one
	// consistent snapshot.
	readTx *sql.TxOptions
	// migrations is the schema history of this database.
	migrations func() []string
	// detachWrites runs write transactions in a context that is not
	// cancelled (see inWriteTx): for a local database only, whose writes
	// cannot hang on a network.
	detachWrites bool
}

// tx is a transaction whose queries are written with "?" placeholders.
type tx struct {
	*sql.Tx
	d dialect
	// lastSeq is the seq of the last event the transaction inserted, if
	// any: the store version at its commit.
	lastSeq uint64
}

func (t *tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.Tx.ExecContext(ctx, t.d.rebind(query), args...)
}

func (t *tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.Tx.QueryContext(ctx, t.d.rebind(query), args...)
}

func (t *tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return t.Tx.QueryRowContext(ctx, t.d.rebind(query), args...)
}

func (t *tx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return t.Tx.PrepareContext(ctx, t.d.rebind(query))
}

func noLock(context.Context, *tx) error              { return nil }
func noNotify(context.Context, *tx, uint64) error    { return nil }
func noMigrationLock(context.Context, *sql.Tx) error { return nil }
func sameQuery(q string) string                      { return q }
func sqliteMigrations() []string                     { return migrations }
func postgresMigrations() []string                   { return pgMigrations }
func advisoryLock(ctx context.Context, t *sql.Tx, key int64) error {
	_, err := t.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, key)
	return err
}

var sqliteDialect = dialect{
	name:           "sqlite",
	rebind:         sameQuery,
	lockWriters:    noLock,
	lockMigrations: noMigrationLock,
	notify:         noNotify,
	least:          "MIN",
	readTx:         &sql.TxOptions{ReadOnly: true},
	migrations:     sqliteMigrations,
	detachWrites:   true,
}

// Advisory lock keys of writ's PostgreSQL schema.
const (
	writersLock    = 0x77726974 // "writ"
	migrationsLock = 0x77726975
)

// NotifyChannel is the PostgreSQL channel on which every committed change
// announces the new store version.
const NotifyChannel = "writ_changes"

var postgresDialect = dialect{
	name:   "postgres",
	rebind: dollarPlaceholders,
	lockWriters: func(ctx context.Context, t *tx) error {
		return advisoryLock(ctx, t.Tx, writersLock)
	},
	lockMigrations: func(ctx context.Context, t *sql.Tx) error {
		return advisoryLock(ctx, t, migrationsLock)
	},
	notify: func(ctx context.Context, t *tx, version uint64) error {
		_, err := t.Tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, NotifyChannel, strconv.FormatUint(version, 10))
		return err
	},
	least:      "LEAST",
	readTx:     &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead},
	migrations: postgresMigrations,
}

// dollarPlaceholders rewrites "?" as "$1", "$2", …; writ's queries hold no
// "?" in literals.
func dollarPlaceholders(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
