package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// EnsureSetting stores value under name unless the store holds a value
// for name already, and returns the value held: the first caller's. It is
// how the nodes of one store agree on a value that must be the same on all
// of them, such as the key that signs the ledger's checkpoints, however
// many of them start at once.
func (s *db) EnsureSetting(ctx context.Context, name, value string) (string, error) {
	if name == "" {
		return "", errors.New("store: setting has no name")
	}
	var held string
	_, err := s.inWriteTx(ctx, func(ctx context.Context, t *tx) error {
		err := t.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&held)
		if err == nil {
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		held = value
		_, err = t.ExecContext(ctx, `INSERT INTO settings(name, value) VALUES (?, ?)`, name, value)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("store: setting %s: %w", name, err)
	}
	return held, nil
}
