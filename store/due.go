package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/policy"
)

// PutAuthority registers an authority, or updates a registered one.
func (s *db) PutAuthority(ctx context.Context, a order.RegisteredAuthority) error {
	_, err := s.inWriteTx(ctx, func(ctx context.Context, tx *tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO authorities(id, name, kind, jurisdiction, deadline_seconds, registered_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT(id) DO UPDATE SET name = excluded.name, kind = excluded.kind,
				jurisdiction = excluded.jurisdiction, deadline_seconds = excluded.deadline_seconds`,
			a.ID, a.Name, string(a.Kind), a.Jurisdiction, a.DeadlineSeconds, formatTime(a.Registered))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: register authority %s: %w", a.ID, err)
	}
	return nil
}

// Authorities returns every registered authority, by id.
func (s *db) Authorities(ctx context.Context) ([]order.RegisteredAuthority, error) {
	var out []order.RegisteredAuthority
	err := s.inReadTx(ctx, func(tx *tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id, name, kind, jurisdiction, deadline_seconds, registered_at FROM authorities ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			a, err := scanAuthority(rows)
			if err != nil {
				return err
			}
			out = append(out, a)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("store: authorities: %w", err)
	}
	return out, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanAuthority(r scanner) (order.RegisteredAuthority, error) {
	var (
		a    order.RegisteredAuthority
		kind string
		at   string
	)
	if err := r.Scan(&a.ID, &a.Name, &kind, &a.Jurisdiction, &a.DeadlineSeconds, &at); err != nil {
		return a, err
	}
	a.Kind = order.AuthorityKind(kind)
	var err error
	a.Registered, err = time.Parse(timeLayout, at)
	return a, err
}

// CreatePrincipal stores new credentials. An id or token hash already in
// use is ErrExists.
func (s *db) CreatePrincipal(ctx context.Context, p access.Principal) error {
	_, err := s.inWriteTx(ctx, func(ctx context.Context, tx *tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO principals(id, name, role, authority, token_hash, created_at, disabled)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			p.ID, p.Name, string(p.Role), p.Authority, p.TokenHash, formatTime(p.Created), boolInt(p.Disabled))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return ErrExists
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("store: create principal %s: %w", p.ID, err)
	}
	return nil
}

const principalColumns = `id, name, role, authority, token_hash, created_at, disabled`

func scanPrincipal(r scanner) (access.Principal, error) {
	var (
		p    access.Principal
		role string
		at   string
	)
	if err := r.Scan(&p.ID, &p.Name, &role, &p.Authority, &p.TokenHash, &at, &p.Disabled); err != nil {
		return p, err
	}
	p.Role = access.Role(role)
	var err error
	p.Created, err = time.Parse(timeLayout, at)
	return p, err
}

// PrincipalByTokenHash finds the principal holding a token, by its hash.
func (s *db) PrincipalByTokenHash(ctx context.Context, hash string) (access.Principal, error) {
	var p access.Principal
	err := s.inReadTx(ctx, func(tx *tx) error {
		var err error
		p, err = scanPrincipal(tx.QueryRowContext(ctx, `SELECT `+principalColumns+` FROM principals WHERE token_hash = ?`, hash))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
	if err != nil {
		return access.Principal{}, fmt.Errorf("store: principal by token: %w", err)
	}
	return p, nil
}

// Principals returns every principal, by id.
func (s *db) Principals(ctx context.Context) ([]access.Principal, error) {
	var out []access.Principal
	err := s.inReadTx(ctx, func(tx *tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+principalColumns+` FROM principals ORDER BY id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			p, err := scanPrincipal(rows)
			if err != nil {
				return err
			}
			out = append(out, p)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("store: principals: %w", err)
	}
	return out, nil
}

// SetPrincipalDisabled disables or re-enables a principal's credentials.
func (s *db) SetPrincipalDisabled(ctx context.Context, id string, disabled bool) error {
	_, err := s.inWriteTx(ctx, func(ctx context.Context, tx *tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE principals SET disabled = ? WHERE id = ?`, boolInt(disabled), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("store: principal %s: %w", id, err)
	}
	return nil
}

// CreateContest stores a new contest, assigning its id, and appends the
// events that events returns for that id, in one transaction.
func (s *db) CreateContest(ctx context.Context, c *order.Contest, events func(id int64) []order.Event) (uint64, error) {
	var (
		id   int64
		evs  []order.Event
		seqs []uint64
	)
	version, err := s.inWriteTx(ctx, func(ctx context.Context, tx *tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO contests(order_id, target, grounds, filer_name, filer_email, filed_at, status, decided_at, decision)
			VALUES (?, ?, ?, ?, ?, ?, ?, '', '') RETURNING id`,
			c.OrderID, c.Target, c.Grounds, c.Filer.Name, c.Filer.Email, formatTime(c.Filed), string(c.Status)).Scan(&id)
		if err != nil {
			return err
		}
		evs = events(id)
		seqs, err = insertEvents(ctx, tx, c.OrderID, evs, nil)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: file contest against %s: %w", c.OrderID, err)
	}
	c.ID = id
	fillEvents(evs, c.OrderID, seqs)
	return version, nil
}

// DecideContest records a contest's outcome, with the order as changed by
// it (nil when unchanged) and events, in one transaction. The contest must
// still be pending and the order unchanged since store version since;
// otherwise nothing is written and the error is ErrStale.
func (s *db) DecideContest(ctx context.Context, c *order.Contest, o *order.Order, events []order.Event, since uint64) (uint64, error) {
	var doc string
	if o != nil {
		var err error
		if doc, err = encodeOrder(o); err != nil {
			return 0, fmt.Errorf("store: decide contest %d: %w", c.ID, err)
		}
	}
	var seqs []uint64
	version, err := s.inWriteTx(ctx, func(ctx context.Context, tx *tx) error {
		decided := ""
		if c.Decided != nil {
			decided = formatTime(*c.Decided)
		}
		if o != nil {
			if err := unchangedSince(ctx, tx, o.ID, since); err != nil {
				return err
			}
		}
		res, err := tx.ExecContext(ctx, `UPDATE contests SET status = ?, decided_at = ?, decision = ? WHERE id = ? AND status = ?`,
			string(c.Status), decided, c.Decision, c.ID, string(order.ContestPending))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			var one int
			if err := tx.QueryRowContext(ctx, `SELECT 1 FROM contests WHERE id = ?`, c.ID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return fmt.Errorf("contest %d was decided already: %w", c.ID, ErrStale)
		}
		if o != nil {
			if _, err := tx.ExecContext(ctx, `UPDATE orders SET status = ?, document = ? WHERE id = ?`, statusColumn(o), doc, o.ID); err != nil {
				return err
			}
		}
		seqs, err = insertEvents(ctx, tx, c.OrderID, events, o)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("store: decide contest %d: %w", c.ID, err)
	}
	fillEvents(events, c.OrderID, seqs)
	return version, nil
}

const contestColumns = `id, order_id, target, grounds, filer_name, filer_email, filed_at, status, decided_at, decision`

func scanContest(r scanner) (order.Contest, error) {
	var (
		c              order.Contest
		filed, decided string
		status         string
	)
	if err := r.Scan(&c.ID, &c.OrderID, &c.Target, &c.Grounds, &c.Filer.Name, &c.Filer.Email, &filed, &status, &decided, &c.Decision); err != nil {
		return c, err
	}
	c.Status = order.ContestStatus(status)
	var err error
	if c.Filed, err = time.Parse(timeLayout, filed); err != nil {
		return c, err
	}
	if decided != "" {
		t, err := time.Parse(timeLayout, decided)
		if err != nil {
			return c, err
		}
		c.Decided = &t
	}
	return c, nil
}

// Contest returns one contest.
func (s *db) Contest(ctx context.Context, id int64) (order.Contest, error) {
	var c order.Contest
	err := s.inReadTx(ctx, func(tx *tx) error {
		var err error
		c, err = scanContest(tx.QueryRowContext(ctx, `SELECT `+contestColumns+` FROM contests WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
	if err != nil {
		return order.Contest{}, fmt.Errorf("store: contest %d: %w", id, err)
	}
	return c, nil
}

// Contests returns the contests against an order ("" for all), oldest
// first.
func (s *db) Contests(ctx context.Context, orderID string) ([]order.Contest, error) {
	var out []order.Contest
	err := s.inReadTx(ctx, func(tx *tx) error {
		q, args := `SELECT `+contestColumns+` FROM contests ORDER BY id`, []any{}
		if orderID != "" {
			q, args = `SELECT `+contestColumns+` FROM contests WHERE order_id = ? ORDER BY id`, []any{orderID}
		}
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanContest(rows)
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("store: contests: %w", err)
	}
	return out, nil
}

// AddReceipt records that an enforcement point applied a policy version.
// A repeated receipt keeps the earliest time: enforcement began then.
func (s *db) AddReceipt(ctx context.Context, r policy.Receipt) error {
	if strings.TrimSpace(r.Point) == "" {
		return errors.New("store: receipt without an enforcement point")
	}
	_, err := s.inWriteTx(ctx, func(ctx context.Context, tx *tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO receipts(point, version, applied_at, scope) VALUES (?, ?, ?, ?)
			ON CONFLICT(point, version) DO UPDATE SET applied_at = `+s.d.least+`(receipts.applied_at, excluded.applied_at)`,
			r.Point, int64(r.Version), formatTime(r.At), r.Scope)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: receipt of %s for version %d: %w", r.Point, r.Version, err)
	}
	return nil
}

// RetirePoint takes an enforcement point out of service: Points leaves it
// out until it sends a receipt for a policy version later than its last
// one. Its receipts are kept. A point that never sent a receipt, or is
// already retired, is ErrNotFound.
func (s *db) RetirePoint(ctx context.Context, point string, at time.Time, by string) error {
	_, err := s.inWriteTx(ctx, func(ctx context.Context, tx *tx) error {
		var last sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(version) FROM receipts WHERE point = ?`, point).Scan(&last); err != nil {
			return err
		}
		if !last.Valid {
			return fmt.Errorf("no enforcement point %q has sent a receipt: %w", point, ErrNotFound)
		}
		var retired sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT version FROM retired_points WHERE point = ?`, point).Scan(&retired)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if retired.Valid && retired.Int64 >= last.Int64 {
			return fmt.Errorf("enforcement point %q is already retired: %w", point, ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO retired_points(point, version, retired_at, retired_by) VALUES (?, ?, ?, ?)
			ON CONFLICT(point) DO UPDATE SET version = excluded.version, retired_at = excluded.retired_at, retired_by = excluded.retired_by`,
			point, last.Int64, formatTime(at), by)
		return err
	})
	if err != nil {
		return fmt.Errorf("store: retire point %s: %w", point, err)
	}
	return nil
}

// RetiredPoints returns the enforcement points retired and not back in
// service, by name.
func (s *db) RetiredPoints(ctx context.Context) ([]policy.Retirement, error) {
	rows, err := s.pointRows(ctx, `SELECT x.point, x.version, x.retired_at, x.retired_by FROM retired_points x
		WHERE x.version >= (SELECT MAX(version) FROM receipts WHERE point = x.point) ORDER BY x.point`)
	if err != nil {
		return nil, fmt.Errorf("store: retired points: %w", err)
	}
	var out []policy.Retirement
	for _, r := range rows {
		out = append(out, policy.Retirement{Point: r.point, Version: r.version, At: r.at, By: r.text})
	}
	return out, nil
}

// FirstReceipts returns, for every enforcement point, its first receipt
// for a version at or above version: when that point began enforcing a
// change made at that version.
func (s *db) FirstReceipts(ctx context.Context, version uint64) ([]policy.Receipt, error) {
	out, err := s.receipts(ctx, `SELECT r.point, r.version, r.applied_at, r.scope FROM receipts r
		WHERE r.version = (SELECT MIN(version) FROM receipts WHERE point = r.point AND version >= ?)
		ORDER BY r.point`, int64(version))
	if err != nil {
		return nil, fmt.Errorf("store: receipts from version %d: %w", version, err)
	}
	return out, nil
}

// Points returns every enforcement point in service, with its latest
// receipt: each point that ever sent a receipt, unless it was retired
// and has sent none for a later version since.
func (s *db) Points(ctx context.Context) ([]policy.Receipt, error) {
	out, err := s.receipts(ctx, `SELECT r.point, r.version, r.applied_at, r.scope FROM receipts r
		WHERE r.version = (SELECT MAX(version) FROM receipts WHERE point = r.point)
		AND NOT EXISTS (SELECT 1 FROM retired_points x WHERE x.point = r.point AND x.version >= r.version)
		ORDER BY r.point`)
	if err != nil {
		return nil, fmt.Errorf("store: enforcement points: %w", err)
	}
	return out, nil
}

// receipts runs a query of receipt rows (point, version, applied_at,
// scope) in a read transaction.
func (s *db) receipts(ctx context.Context, query string, args ...any) ([]policy.Receipt, error) {
	rows, err := s.pointRows(ctx, query, args...)
	var out []policy.Receipt
	for _, r := range rows {
		out = append(out, policy.Receipt{Point: r.point, Version: r.version, At: r.at, Scope: r.text})
	}
	return out, err
}

// pointRow is a row about an enforcement point: its name, a policy
// version, a time and one more text column.
type pointRow struct {
	point   string
	version uint64
	at      time.Time
	text    string
}

// pointRows runs a query of (point, version, time, text) rows in a read
// transaction.
func (s *db) pointRows(ctx context.Context, query string, args ...any) ([]pointRow, error) {
	var out []pointRow
	err := s.inReadTx(ctx, func(tx *tx) error {
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				r  pointRow
				v  int64
				at string
			)
			if err := rows.Scan(&r.point, &v, &at, &r.text); err != nil {
				return err
			}
			if r.version, err = toVersion(v); err != nil {
				return err
			}
			if r.at, err = time.Parse(timeLayout, at); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	return out, err
}

// boolInt stores a flag as 0 or 1, the same in both databases.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
