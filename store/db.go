// Package store keeps writ's orders, their event history and the records
// of due process (authorities, credentials, contests, receipts), so that
// an accepted order outlives the process that accepted it: in a SQLite
// file for one node, or in a PostgreSQL database shared by several. See
// README.md for the schema and the durability guarantees.
package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

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

// Close releases the database. Readers are closed first so that the
// writer is the last connection, the one that checkpoints the WAL into
// the main file.
func (s *db) Close() error {
	return errors.Join(s.read.Close(), s.write.Close())
}

// Path returns the database file path as given to OpenSQLite, for
// messages and for operators who need to back the file up.
func (s *db) Path() string { return s.path }

// CreateOrder stores a new order and its first events in one transaction,
// so that an order is never visible without the events that explain it.
// Each event's Seq is filled in place, from a single sequence shared by
// all orders, once the transaction has committed; an event with an empty
// OrderID is taken to be about o. It returns the store version after the
// write, the highest seq, which the policy compiler uses to tell snapshots
// apart. An id already in use is ErrExists and leaves the store unchanged.
// A nil error means the order is on disk.
func (s *db) CreateOrder(ctx context.Context, o *order.Order, events []order.Event) (version uint64, err error) {
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
func (s *db) UpdateOrder(ctx context.Context, o *order.Order, events []order.Event) (version uint64, err error) {
	return s.writeOrder(ctx, "update", o, events, ErrNotFound,
		`UPDATE orders SET received_at = ?, status = ?, document = ? WHERE id = ?`,
		func(doc string) []any { return []any{formatTime(o.Received), statusColumn(o), doc, o.ID} })
}

// writeOrder writes an order's document with stmt and appends its events
// in one transaction; noRow is the error when stmt affects no row.
func (s *db) writeOrder(ctx context.Context, op string, o *order.Order, events []order.Event, noRow error, stmt string, args func(doc string) []any) (uint64, error) {
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
	version, err := s.inWriteTx(ctx, func(tx *tx) error {
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
func (s *db) AppendEvents(ctx context.Context, events []order.Event) (version uint64, err error) {
	if len(events) == 0 {
		return s.Version(ctx)
	}
	for i, e := range events {
		if e.OrderID == "" {
			return 0, fmt.Errorf("store: append events: event %d has no order id", i)
		}
	}
	var seqs []uint64
	version, err = s.inWriteTx(ctx, func(tx *tx) error {
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
func (s *db) inWriteTx(ctx context.Context, fn func(*tx) error) (version uint64, err error) {
	sqlTx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	t := &tx{Tx: sqlTx, d: s.d}
	defer func() {
		if err != nil {
			err = errors.Join(err, rollback(sqlTx))
		}
	}()
	if err := s.d.lockWriters(ctx, t); err != nil {
		return 0, fmt.Errorf("take the write lock: %w", err)
	}
	if err := fn(t); err != nil {
		return 0, err
	}
	if version, err = readVersion(ctx, t); err != nil {
		return 0, err
	}
	if err := s.d.notify(ctx, t, version); err != nil {
		return 0, err
	}
	if err := sqlTx.Commit(); err != nil {
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
// order. Seqs are allocated here, as the highest so far plus one, under
// the write lock every write transaction holds: they are dense and
// committed in order, which is what lets followers (the ledger, other
// nodes) read "everything after seq n" without missing a late commit.
// The seqs are returned rather than written into events so that a
// transaction that later rolls back leaves the caller's events untouched.
func insertEvents(ctx context.Context, tx *tx, defaultID string, events []order.Event) ([]uint64, error) {
	if len(events) == 0 {
		return nil, nil
	}
	last, err := readVersion(ctx, tx)
	if err != nil {
		return nil, err
	}
	stmt, err := tx.PrepareContext(ctx,
		`INSERT INTO events(seq, order_id, at, kind, principal, detail) VALUES (?, ?, ?, ?, ?, ?)`)
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
		seqs[i] = last + uint64(i) + 1
		if _, err := stmt.ExecContext(ctx, int64(seqs[i]), id, formatTime(e.At), string(e.Kind), e.Principal, e.Detail); err != nil {
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

// toVersion converts a seq read from the database. Seqs start at 1, so a
// negative one means the data was altered by hand and must not be turned
// into a huge uint64 version.
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
func (s *db) inReadTx(ctx context.Context, fn func(*tx) error) (err error) {
	sqlTx, err := s.read.BeginTx(ctx, s.d.readTx)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, rollback(sqlTx)) }()
	return fn(&tx{Tx: sqlTx, d: s.d})
}

// Orders returns every stored order and the version they were read at,
// from one snapshot, so that a policy compiled from them can be labelled
// with a version that matches its content exactly. They come earliest
// received first, ties broken by id, which is the order policy cites them
// in. A document that cannot be decoded is an error naming the order: an
// order dropped from the list would silently stop being enforced.
func (s *db) Orders(ctx context.Context) ([]*order.Order, uint64, error) {
	var (
		orders  []*order.Order
		version uint64
	)
	err := s.inReadTx(ctx, func(tx *tx) error {
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
func (s *db) Order(ctx context.Context, id string) (*order.Order, error) {
	var doc string
	err := s.read.QueryRowContext(ctx, s.d.rebind(`SELECT document FROM orders WHERE id = ?`), id).Scan(&doc)
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
func (s *db) Events(ctx context.Context, orderID string) ([]order.Event, error) {
	var events []order.Event
	err := s.inReadTx(ctx, func(tx *tx) error {
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
func (s *db) EventsSince(ctx context.Context, after uint64, limit int) ([]order.Event, error) {
	var events []order.Event
	err := s.inReadTx(ctx, func(tx *tx) error {
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

func scanEvents(ctx context.Context, tx *tx, query string, args ...any) ([]order.Event, error) {
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
func (s *db) Version(ctx context.Context) (uint64, error) {
	v, err := readVersion(ctx, s.read)
	if err != nil {
		return 0, fmt.Errorf("store: %w", err)
	}
	return v, nil
}
