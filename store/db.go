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
	"math"
	"slices"
	"time"

	"github.com/writ-project/writ/order"
)

// ErrNotFound is returned, wrapped with the order id, when an order that a
// call needs does not exist, so that callers can answer "no such order"
// rather than report a storage failure.
var ErrNotFound = errors.New("order not found")

// ErrStale is returned when a write was based on a state of an order
// that another writer (another writ node) has changed since: the caller
// reads the order again and retries, so that no change is lost.
var ErrStale = errors.New("changed since it was read")

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
		func(doc string) []any { return []any{o.ID, formatTime(o.Received), statusColumn(o), doc} }, nil)
}

// UpdateOrder replaces the stored document of an existing order and
// appends events in one transaction, so that the history never disagrees
// with the document it describes. Events are filled in as by CreateOrder.
// An unknown id is ErrNotFound: updates never create orders, so a typo in
// an id cannot conjure one.
func (s *db) UpdateOrder(ctx context.Context, o *order.Order, events []order.Event) (version uint64, err error) {
	return s.UpdateOrderSince(ctx, o, events, math.MaxUint64)
}

// UpdateOrderSince is UpdateOrder for a writer that read the order at
// store version since: if another writer recorded an event of the order
// after that, nothing is written and the error is ErrStale.
func (s *db) UpdateOrderSince(ctx context.Context, o *order.Order, events []order.Event, since uint64) (version uint64, err error) {
	return s.writeOrder(ctx, "update", o, events, ErrNotFound,
		`UPDATE orders SET received_at = ?, status = ?, document = ? WHERE id = ?`,
		func(doc string) []any { return []any{formatTime(o.Received), statusColumn(o), doc, o.ID} },
		func(ctx context.Context, t *tx) error { return unchangedSince(ctx, t, o.ID, since) })
}

// ModifyOrder changes an order in one transaction holding the write lock:
// it reads the order as it stands, lets change modify it and return the
// events that record the change, and writes both. No other writer, on any
// node, can change the order in between, so concurrent changes are never
// lost. An error from change writes nothing and is returned as is. It
// returns the order as written, its events with their seqs, and the
// store version.
func (s *db) ModifyOrder(ctx context.Context, id string, change func(o *order.Order) ([]order.Event, error)) (*order.Order, []order.Event, uint64, error) {
	return s.modifyOrder(ctx, id, nil, 0, change)
}

// ModifyOrderFrom is ModifyOrder for a caller that holds the order as
// the store had it after the event with seq last (the last of a write
// it made): if no event of the order was recorded since, change is given
// a copy of cur rather than the stored document read and decoded again,
// which for an order of many targets is most of the cost of a change.
// Otherwise, or with last 0, it reads the document, as ModifyOrder.
func (s *db) ModifyOrderFrom(ctx context.Context, cur *order.Order, last uint64, change func(o *order.Order) ([]order.Event, error)) (*order.Order, []order.Event, uint64, error) {
	if cur == nil {
		return nil, nil, 0, errors.New("store: change order: no order given")
	}
	return s.modifyOrder(ctx, cur.ID, cur, last, change)
}

func (s *db) modifyOrder(ctx context.Context, id string, cur *order.Order, last uint64, change func(o *order.Order) ([]order.Event, error)) (*order.Order, []order.Event, uint64, error) {
	var (
		o      *order.Order
		events []order.Event
		seqs   []uint64
	)
	version, err := s.inWriteTx(ctx, func(ctx context.Context, t *tx) error {
		if cur != nil && last > 0 {
			var seq int64
			if err := t.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events WHERE order_id = ?`, id).Scan(&seq); err != nil {
				return err
			}
			if uint64(seq) == last {
				o = storedForm(cur)
			}
		}
		if o == nil {
			var doc string
			err := t.QueryRowContext(ctx, `SELECT document FROM orders WHERE id = ?`, id).Scan(&doc)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("order %s: %w", id, ErrNotFound)
			}
			if err != nil {
				return err
			}
			if o, err = decodeOrder(id, doc); err != nil {
				return err
			}
		}
		var err error
		if events, err = change(o); err != nil {
			return changeError{err}
		}
		if o.ID != id {
			return fmt.Errorf("order %s: a change may not alter the id", id)
		}
		if err := checkEventsBelong(id, events); err != nil {
			return err
		}
		doc, err := encodeOrder(o)
		if err != nil {
			return err
		}
		if _, err := t.ExecContext(ctx, `UPDATE orders SET received_at = ?, status = ?, document = ? WHERE id = ?`,
			formatTime(o.Received), statusColumn(o), doc, id); err != nil {
			return err
		}
		seqs, err = insertEvents(ctx, t, id, events, o)
		return err
	})
	var ce changeError
	if errors.As(err, &ce) {
		return nil, nil, 0, ce.err
	}
	if err != nil {
		return nil, nil, 0, fmt.Errorf("store: change order %s: %w", id, err)
	}
	fillEvents(events, id, seqs)
	return o, events, version, nil
}

// changeError carries the error of a ModifyOrder change function out of
// the transaction unwrapped.
type changeError struct{ err error }

func (e changeError) Error() string { return e.err.Error() }

// unchangedSince fails with ErrStale if an event of order id has a seq
// above since.
func unchangedSince(ctx context.Context, t *tx, id string, since uint64) error {
	if since == math.MaxUint64 {
		return nil
	}
	var last int64
	if err := t.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM events WHERE order_id = ?`, id).Scan(&last); err != nil {
		return err
	}
	if uint64(last) > since {
		return fmt.Errorf("order %s was changed at version %d, after %d: %w", id, last, since, ErrStale)
	}
	return nil
}

// writeOrder writes an order's document with stmt and appends its events
// in one transaction; noRow is the error when stmt affects no row.
func (s *db) writeOrder(ctx context.Context, op string, o *order.Order, events []order.Event, noRow error, stmt string, args func(doc string) []any, check func(context.Context, *tx) error) (uint64, error) {
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
	version, err := s.inWriteTx(ctx, func(ctx context.Context, tx *tx) error {
		if check != nil {
			if err := check(ctx, tx); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, stmt, args(doc)...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return noRow
		}
		seqs, err = insertEvents(ctx, tx, o.ID, events, o)
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
// for an unknown order is ErrNotFound, wrapped with its id. Lifecycle
// events that happen once to an order (it took effect, is about to
// expire, expired) are skipped, with Seq left zero, when the order
// already has one: several nodes may notice the same expiry.
func (s *db) AppendEvents(ctx context.Context, events []order.Event) (version uint64, err error) {
	if len(events) == 0 {
		return s.Version(ctx)
	}
	for i, e := range events {
		if e.OrderID == "" {
			return 0, fmt.Errorf("store: append events: event %d has no order id", i)
		}
	}
	var (
		seqs   []uint64
		stored []int         // indexes into events of those written
		fresh  []order.Event // copies of those, filled by insertEvents
	)
	version, err = s.inWriteTx(ctx, func(ctx context.Context, tx *tx) error {
		stored, fresh = stored[:0], fresh[:0]
		for i, e := range events {
			if onceKinds[e.Kind] {
				var n int
				if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM events WHERE order_id = ? AND kind = ?`, e.OrderID, string(e.Kind)).Scan(&n); err != nil {
					return err
				}
				if n > 0 {
					continue
				}
			}
			stored = append(stored, i)
			fresh = append(fresh, e)
		}
		var err error
		seqs, err = insertEvents(ctx, tx, "", fresh, nil)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: append events: %w", err)
	}
	for k, i := range stored {
		events[i].Seq = seqs[k]
		events[i].DocumentSHA256, events[i].DocumentSeq = fresh[k].DocumentSHA256, fresh[k].DocumentSeq
	}
	return version, nil
}

// onceKinds are the lifecycle events an order has at most once.
var onceKinds = map[order.EventKind]bool{order.EventActivated: true, order.EventExpiring: true, order.EventExpired: true}

// inWriteTx runs fn in a write transaction and returns the version as of
// its commit. The version is read inside the transaction because another
// process sharing the file could commit between our commit and a later
// read. fn is given the context its statements run in: on SQLite, one
// that is not cancelled, so that a local write is never torn off by a
// client that hangs up (it would only roll back) and its statements are
// spared the driver's watch for cancellation.
func (s *db) inWriteTx(ctx context.Context, fn func(context.Context, *tx) error) (version uint64, err error) {
	if s.d.detachWrites {
		ctx = context.WithoutCancel(ctx)
	}
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
	if err := fn(ctx, t); err != nil {
		return 0, err
	}
	if version = t.lastSeq; version == 0 {
		if version, err = readVersion(ctx, t); err != nil {
			return 0, err
		}
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
//
// Each event is stored with the hash of its order's public document as
// this transaction leaves it and the seq of the order's last event in
// the transaction, after which that document stands. An event for an
// unknown order is ErrNotFound. written, when not nil, is an order whose
// document the transaction has just written: its hash is taken from it
// rather than from the document read back. The
// seqs are returned rather than written into events so that a
// transaction that later rolls back leaves the caller's events
// untouched, but for the document fields, which depend on nothing else.
func insertEvents(ctx context.Context, tx *tx, defaultID string, events []order.Event, written *order.Order) ([]uint64, error) {
	if len(events) == 0 {
		return nil, nil
	}
	last, err := readVersion(ctx, tx)
	if err != nil {
		return nil, err
	}
	seqs := make([]uint64, len(events))
	lastOf := map[string]uint64{}
	for i := range events {
		if events[i].OrderID == "" {
			events[i].OrderID = defaultID
		}
		seqs[i] = last + uint64(i) + 1
		lastOf[events[i].OrderID] = seqs[i]
	}
	docs := map[string]string{}
	for id := range lastOf {
		if written != nil && written.ID == id {
			docs[id] = order.PublicDocumentSHA256(written)
			continue
		}
		var doc string
		err := tx.QueryRowContext(ctx, `SELECT document FROM orders WHERE id = ?`, id).Scan(&doc)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("order %s: %w", id, ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("order %s: %w", id, err)
		}
		o, err := decodeOrder(id, doc)
		if err != nil {
			return nil, err
		}
		docs[id] = order.PublicDocumentSHA256(o)
	}
	for i := range events {
		e := &events[i]
		e.DocumentSHA256, e.DocumentSeq = docs[e.OrderID], lastOf[e.OrderID]
		if _, err := tx.ExecContext(ctx, `INSERT INTO events(seq, order_id, at, kind, principal, detail, doc_sha256, doc_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			int64(seqs[i]), e.OrderID, formatTime(e.At), string(e.Kind), e.Principal, e.Detail, e.DocumentSHA256, int64(e.DocumentSeq)); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
	}
	tx.lastSeq = seqs[len(seqs)-1]
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

// storedForm returns a copy of o as the store would hand it back: every
// time in UTC, without a monotonic clock reading, and no list nil that
// a document holds.
func storedForm(o *order.Order) *order.Order {
	c := o.Clone()
	utc := func(t time.Time) time.Time { return t.Round(0).UTC() }
	c.Effective, c.Expires, c.Received = utc(c.Effective), utc(c.Expires), utc(c.Received)
	if c.Issued != nil {
		*c.Issued = utc(*c.Issued)
	}
	if c.DispositionAt != nil {
		*c.DispositionAt = utc(*c.DispositionAt)
	}
	if c.Jurisdiction == nil {
		c.Jurisdiction = []string{}
	}
	if c.Targets == nil {
		c.Targets = []order.Target{}
	}
	for i := range c.Targets {
		if a := c.Targets[i].Added; a != nil {
			t := utc(*a)
			c.Targets[i].Added = &t
		}
	}
	return c
}

// encodeOrder renders the stored document with every time in UTC, so that
// what is read back does not depend on the zone of whoever wrote it.
// It copies o shallowly (and its targets if one's time is not in UTC):
// only the times differ, and the caller's order is left alone.
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
	cloned := false // the targets, before one is changed
	for i := range c.Targets {
		if a := c.Targets[i].Added; a != nil && a.Location() != time.UTC {
			if !cloned {
				c.Targets, cloned = slices.Clone(c.Targets), true
			}
			u := a.UTC()
			c.Targets[i].Added = &u
		}
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
			`SELECT seq, order_id, at, kind, principal, detail, doc_sha256, doc_seq FROM events WHERE order_id = ? ORDER BY seq`, orderID)
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
			`SELECT seq, order_id, at, kind, principal, detail, doc_sha256, doc_seq FROM events WHERE seq > ? ORDER BY seq LIMIT ?`, int64(after), limit)
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
			seq, docSeq int64
			at, kind    string
			e           order.Event
		)
		if err := rows.Scan(&seq, &e.OrderID, &at, &kind, &e.Principal, &e.Detail, &e.DocumentSHA256, &docSeq); err != nil {
			return nil, err
		}
		if e.DocumentSeq, err = toVersion(docSeq); err != nil {
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
