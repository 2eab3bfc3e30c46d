// Package store keeps writ's orders and their event history in a SQLite
// database file, so that an accepted order outlives the process that
// accepted it. See README.md for the schema and the durability guarantees.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/writ-project/writ/order"
)

// ErrNotFound is returned, wrapped with the order id, when an order that a
// call needs does not exist, so that callers can answer "no such order"
// rather than report a storage failure.
var ErrNotFound = errors.New("order not found")

// ErrExists is returned, wrapped with the order id, when CreateOrder is
// given an id already in use, so that a resubmitted order is told apart
// from a storage failure and never silently replaces the first one.
var ErrExists = errors.New("order already exists")

// timeLayout is RFC 3339 with a fixed nine-digit fraction. time.RFC3339Nano
// drops trailing zeros, which would make the text sort out of time order
// ("…:05Z" sorts after "…:05.5Z"); a fixed width keeps ORDER BY on the
// text columns chronological.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

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
	path  string
	write *sql.DB
	read  *sql.DB
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

	write, err := sql.Open("sqlite", dsn(abs, "_txlock=immediate"))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)

	if err := checkIntegrity(ctx, write, path); err != nil {
		return nil, errors.Join(err, write.Close())
	}
	if err := migrate(ctx, write, path); err != nil {
		return nil, errors.Join(err, write.Close())
	}

	read, err := sql.Open("sqlite", dsn(abs, "_pragma=query_only(1)"))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("store: open %s: %w", path, err), write.Close())
	}
	read.SetMaxOpenConns(4)
	read.SetMaxIdleConns(4)
	if err := read.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("store: open %s for reading: %w", path, err), read.Close(), write.Close())
	}
	return &SQLite{path: path, write: write, read: read}, nil
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

// Close releases the database. Readers are closed first so that the
// writer is the last connection, the one that checkpoints the WAL into
// the main file.
func (s *SQLite) Close() error {
	return errors.Join(s.read.Close(), s.write.Close())
}

// Path returns the database file path as given to OpenSQLite, for
// messages and for operators who need to back the file up.
func (s *SQLite) Path() string { return s.path }

// CreateOrder stores a new order and its first events in one transaction,
// so that an order is never visible without the events that explain it.
// Each event's Seq is filled in place, from a single sequence shared by
// all orders, once the transaction has committed; an event with an empty
// OrderID is taken to be about o. It returns the store version after the
// write, the highest seq, which the policy compiler uses to tell snapshots
// apart. An id already in use is ErrExists and leaves the store unchanged.
// A nil error means the order is on disk.
func (s *SQLite) CreateOrder(ctx context.Context, o *order.Order, events []order.Event) (version uint64, err error) {
	return s.writeOrder(ctx, "create", o, events, ErrExists,
		`INSERT INTO orders(id, received_at, status, document) VALUES (?, ?, ?, ?)
		 ON CONFLICT(id) DO NOTHING`,
		func(doc string) []any { return []any{o.ID, formatTime(o.Received), statusColumn(o), doc} })
}

// UpdateOrder replaces the stored document of an existing order and
// appends events in one transaction, so that the history never disagrees
// with the document it describes. Events are filled in as by CreateOrder.
// An unknown id is ErrNotFound: updates never create orders, so a typo in
// an id cannot conjure one.
func (s *SQLite) UpdateOrder(ctx context.Context, o *order.Order, events []order.Event) (version uint64, err error) {
	return s.writeOrder(ctx, "update", o, events, ErrNotFound,
		`UPDATE orders SET received_at = ?, status = ?, document = ? WHERE id = ?`,
		func(doc string) []any { return []any{formatTime(o.Received), statusColumn(o), doc, o.ID} })
}

// writeOrder writes an order's document with stmt and appends its events
// in one transaction; noRow is the error when stmt affects no row.
func (s *SQLite) writeOrder(ctx context.Context, op string, o *order.Order, events []order.Event, noRow error, stmt string, args func(doc string) []any) (uint64, error) {
	if o == nil || o.ID == "" {
		return 0, fmt.Errorf("store: %s order: order has no id", op)
	}
	doc, err := encodeOrder(o)
	if err != nil {
		return 0, fmt.Errorf("store: %s order %s: %w", op, o.ID, err)
	}
	if err := checkEventsBelong(o.ID, events); err != nil {
		return 0, fmt.Errorf("store: %s order %s: %w", op, o.ID, err)
	}
	var seqs []uint64
	version, err := s.inWriteTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, stmt, args(doc)...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return noRow
		}
		seqs, err = insertEvents(ctx, tx, o.ID, events)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: %s order %s: %w", op, o.ID, err)
	}
	fillEvents(events, o.ID, seqs)
	return version, nil
}

// AppendEvents records events about existing orders without touching
// their documents, for happenings such as expiry that change no field.
// All events are stored or none; each Seq is filled in place. An event
// for an unknown order is ErrNotFound, wrapped with its id.
func (s *SQLite) AppendEvents(ctx context.Context, events []order.Event) (version uint64, err error) {
	if len(events) == 0 {
		return s.Version(ctx)
	}
	for i, e := range events {
		if e.OrderID == "" {
			return 0, fmt.Errorf("store: append events: event %d has no order id", i)
		}
	}
	var seqs []uint64
	version, err = s.inWriteTx(ctx, func(tx *sql.Tx) error {
		seen := map[string]bool{}
		for _, e := range events {
			if seen[e.OrderID] {
				continue
			}
			seen[e.OrderID] = true
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM orders WHERE id = ?`, e.OrderID).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("order %s: %w", e.OrderID, ErrNotFound)
			}
			if err != nil {
				return fmt.Errorf("order %s: %w", e.OrderID, err)
			}
		}
		seqs, err = insertEvents(ctx, tx, "", events)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: append events: %w", err)
	}
	fillEvents(events, "", seqs)
	return version, nil
}

// inWriteTx runs fn in a write transaction and returns the version as of
// its commit. The version is read inside the transaction because another
// process sharing the file could commit between our commit and a later
// read.
func (s *SQLite) inWriteTx(ctx context.Context, fn func(*sql.Tx) error) (version uint64, err error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, rollback(tx))
		}
	}()
	if err := fn(tx); err != nil {
		return 0, err
	}
	if version, err = readVersion(ctx, tx); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("commit: %w", err)
	}
	return version, nil
}

// checkEventsBelong rejects events that name another order, which would
// otherwise be filed silently under the wrong order's history.
func checkEventsBelong(id string, events []order.Event) error {
	for i, e := range events {
		if e.OrderID != "" && e.OrderID != id {
			return fmt.Errorf("event %d is for order %s", i, e.OrderID)
		}
	}
	return nil
}

// insertEvents stores events in slice order, which is therefore their seq
// order. The seqs are returned rather than written into events so that a
// transaction that later rolls back leaves the caller's events untouched.
func insertEvents(ctx context.Context, tx *sql.Tx, defaultID string, events []order.Event) ([]uint64, error) {
	if len(events) == 0 {
		return nil, nil
	}
	stmt, err := tx.PrepareContext(ctx,
		`INSERT INTO events(order_id, at, kind, principal, detail) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return nil, err
	}
	defer stmt.Close()
	seqs := make([]uint64, len(events))
	for i, e := range events {
		id := e.OrderID
		if id == "" {
			id = defaultID
		}
		res, err := stmt.ExecContext(ctx, id, formatTime(e.At), string(e.Kind), e.Principal, e.Detail)
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		seq, err := res.LastInsertId()
		if err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
		if seqs[i], err = toVersion(seq); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
	}
	return seqs, nil
}

func fillEvents(events []order.Event, defaultID string, seqs []uint64) {
	for i := range events {
		events[i].Seq = seqs[i]
		if events[i].OrderID == "" {
			events[i].OrderID = defaultID
		}
	}
}

// toVersion converts a seq read from SQLite. Seqs come from AUTOINCREMENT
// and start at 1, so a negative one means the file was altered by hand and
// must not be turned into a huge uint64 version.
func toVersion(v int64) (uint64, error) {
	if v < 0 {
		return 0, fmt.Errorf("negative seq %d in database", v)
	}
	return uint64(v), nil
}

func readVersion(ctx context.Context, q querier) (uint64, error) {
	var v int64
	if err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read version: %w", err)
	}
	return toVersion(v)
}

// statusColumn is the queryable summary of an order's disposition; the
// document remains the source of truth.
func statusColumn(o *order.Order) string {
	if o.Disposition != "" {
		return string(o.Disposition)
	}
	return "open"
}

// encodeOrder renders the stored document with every time in UTC, so that
// what is read back does not depend on the zone of whoever wrote it.
// It copies o shallowly: only the times differ, and the caller's order is
// left alone.
func encodeOrder(o *order.Order) (string, error) {
	c := *o
	c.Effective = c.Effective.UTC()
	c.Expires = c.Expires.UTC()
	c.Received = c.Received.UTC()
	if o.Issued != nil {
		t := o.Issued.UTC()
		c.Issued = &t
	}
	if o.DispositionAt != nil {
		t := o.DispositionAt.UTC()
		c.DispositionAt = &t
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return "", fmt.Errorf("encode document: %w", err)
	}
	return string(b), nil
}

// decodeOrder turns a stored document back into an order, refusing one
// whose content does not match the row it sits in.
func decodeOrder(id, doc string) (*order.Order, error) {
	var o order.Order
	if err := json.Unmarshal([]byte(doc), &o); err != nil {
		return nil, fmt.Errorf("store: order %s: stored document is not valid: %w", id, err)
	}
	if o.ID != id {
		return nil, fmt.Errorf("store: order %s: stored document has id %q", id, o.ID)
	}
	return &o, nil
}

// inReadTx runs fn in a read transaction, so that everything fn reads
// comes from one snapshot of the database.
func (s *SQLite) inReadTx(ctx context.Context, fn func(*sql.Tx) error) (err error) {
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, rollback(tx)) }()
	return fn(tx)
}

// Orders returns every stored order and the version they were read at,
// from one snapshot, so that a policy compiled from them can be labelled
// with a version that matches its content exactly. They come earliest
// received first, ties broken by id, which is the order policy cites them
// in. A document that cannot be decoded is an error naming the order: an
// order dropped from the list would silently stop being enforced.
func (s *SQLite) Orders(ctx context.Context) ([]*order.Order, uint64, error) {
	var (
		orders  []*order.Order
		version uint64
	)
	err := s.inReadTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, document FROM orders ORDER BY received_at, id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, doc string
			if err := rows.Scan(&id, &doc); err != nil {
				return err
			}
			o, err := decodeOrder(id, doc)
			if err != nil {
				return err
			}
			orders = append(orders, o)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		version, err = readVersion(ctx, tx)
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("store: list orders: %w", err)
	}
	return orders, version, nil
}

// Order returns the order with the given id, or ErrNotFound wrapped with
// the id, so that a caller can answer a lookup of an unknown id with "no
// such order".
func (s *SQLite) Order(ctx context.Context, id string) (*order.Order, error) {
	var doc string
	err := s.read.QueryRowContext(ctx, `SELECT document FROM orders WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("store: order %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("store: order %s: %w", id, err)
	}
	return decodeOrder(id, doc)
}

// Events returns an order's history in seq order, the order in which it
// happened. An unknown order is ErrNotFound rather than an empty history,
// so that a mistyped id is not mistaken for an order nothing happened to.
func (s *SQLite) Events(ctx context.Context, orderID string) ([]order.Event, error) {
	var events []order.Event
	err := s.inReadTx(ctx, func(tx *sql.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM orders WHERE id = ?`, orderID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		events, err = scanEvents(ctx, tx,
			`SELECT seq, order_id, at, kind, principal, detail FROM events WHERE order_id = ? ORDER BY seq`, orderID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: events of order %s: %w", orderID, err)
	}
	return events, nil
}

// EventsSince returns up to limit events with a seq above after, in seq
// order, across all orders: how followers such as the ledger catch up.
func (s *SQLite) EventsSince(ctx context.Context, after uint64, limit int) ([]order.Event, error) {
	var events []order.Event
	err := s.inReadTx(ctx, func(tx *sql.Tx) error {
		var err error
		events, err = scanEvents(ctx, tx,
			`SELECT seq, order_id, at, kind, principal, detail FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, int64(after), limit)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: events after %d: %w", after, err)
	}
	return events, nil
}

func scanEvents(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]order.Event, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var events []order.Event
	for rows.Next() {
		var (
			seq  int64
			at   string
			kind string
			e    order.Event
		)
		if err := rows.Scan(&seq, &e.OrderID, &at, &kind, &e.Principal, &e.Detail); err != nil {
			return nil, err
		}
		if e.Seq, err = toVersion(seq); err != nil {
			return nil, err
		}
		if e.At, err = time.Parse(timeLayout, at); err != nil {
			return nil, fmt.Errorf("event %d: %w", seq, err)
		}
		e.Kind = order.EventKind(kind)
		events = append(events, e)
	}
	return events, rows.Err()
}

// Version returns the highest event seq, 0 for an empty store, so that a
// caller can tell whether anything changed since a snapshot it holds.
func (s *SQLite) Version(ctx context.Context) (uint64, error) {
	v, err := readVersion(ctx, s.read)
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	return v, nil
}
