package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/writ-project/writ/internal/config"
	"github.com/writ-project/writ/ledger"
	"github.com/writ-project/writ/registry"
	"github.com/writ-project/writ/store"
)

// nodeStore is what `writ serve` needs of its store, SQLite or
// PostgreSQL.
type nodeStore interface {
	registry.Store
	EnsureSetting(ctx context.Context, name, value string) (string, error)
	Close() error
}

// openStore opens the configured store. For a shared PostgreSQL store it
// also returns the store itself, for follow.
func openStore(ctx context.Context, rs config.ResolvedStore, log *slog.Logger) (nodeStore, *store.Postgres, error) {
	if !rs.Shared() {
		st, err := store.OpenSQLite(ctx, rs.SQLitePath)
		if err != nil {
			return nil, nil, err
		}
		log.Info("store open", "sqlite", st.Path())
		return st, nil, nil
	}
	st, err := store.OpenPostgres(ctx, rs.PostgresDSN)
	if err != nil {
		return nil, nil, err
	}
	log.Info("store open", "postgres", st.Path())
	return st, st, nil
}

// followStore keeps reg in step with what other nodes write to the shared
// store: at each notification, and every interval in case one was lost.
func followStore(ctx context.Context, pg *store.Postgres, reg *registry.Registry, interval time.Duration, log *slog.Logger) {
	versions := pg.Listen(ctx, log)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-versions:
		case <-tick.C:
		}
		if err := reg.Sync(ctx); err != nil && ctx.Err() == nil {
			log.Error("reading the shared store failed; will retry", "err", err)
		}
	}
}

// ledgerKeySetting is the store setting holding the key that signs the
// ledger checkpoints of every node sharing the store.
const ledgerKeySetting = "ledger.signer_key"

// sharedLedgerKey returns the ledger signing key the nodes of a shared
// store agree on: the first node to start offers its own key (the one in
// its data directory, or a new one named origin) and the others take it.
// A node whose data directory holds another key is stopped with advice,
// since its ledger was signed by that key.
func sharedLedgerKey(ctx context.Context, st nodeStore, dataDir, origin string) (string, error) {
	local, err := ledger.LocalKey(dataDir)
	if err != nil {
		return "", err
	}
	offer := local
	if offer == "" {
		if offer, err = ledger.GenerateKey(origin); err != nil {
			return "", err
		}
	}
	shared, err := st.EnsureSetting(ctx, ledgerKeySetting, offer)
	if err != nil {
		return "", err
	}
	if local != "" && local != shared {
		return "", fmt.Errorf("ledger: the key in %s is not the one the nodes of this store sign with: this node's ledger is a copy of the store's, so move %s and %s aside and start again to rebuild it under the shared key",
			filepath.Join(dataDir, ledger.KeyFile), filepath.Join(dataDir, ledger.KeyFile), filepath.Join(dataDir, ledger.DatabaseFile))
	}
	return shared, nil
}
