package config

import (
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Store says where writ keeps its orders: a SQLite file of this node's
// own, or a PostgreSQL database that several nodes share.
type Store struct {
	// URL is empty for <data_dir>/writ.db, "sqlite:PATH" for another
	// SQLite file, or a PostgreSQL connection string: a postgres:// URL
	// or "host=… dbname=…" keywords. Leave the password out and set
	// PGPASSWORD or a ~/.pgpass file instead.
	URL string `yaml:"url"`
	// SyncInterval is how often a node sharing a PostgreSQL store reads
	// what the others wrote even when no notification came (a dropped
	// connection loses them). Default 5s.
	SyncInterval Duration `yaml:"sync_interval"`
}

// ResolvedStore is the store `writ serve` opens.
type ResolvedStore struct {
	// SQLitePath is the SQLite file; empty when the store is PostgreSQL.
	SQLitePath string
	// PostgresDSN is the PostgreSQL connection string, when shared.
	PostgresDSN  string
	SyncInterval time.Duration
}

// Shared reports whether several nodes may share the store.
func (s ResolvedStore) Shared() bool { return s.PostgresDSN != "" }

// DefaultSyncInterval is Store.SyncInterval's default.
const DefaultSyncInterval = 5 * time.Second

// resolveStore checks the store and node settings.
func (c *Config) resolveStore(bad func(key, format string, args ...any)) (ResolvedStore, string) {
	r := ResolvedStore{SyncInterval: time.Duration(c.Store.SyncInterval)}
	if r.SyncInterval == 0 {
		r.SyncInterval = DefaultSyncInterval
	}
	if r.SyncInterval < 100*time.Millisecond || r.SyncInterval > time.Hour {
		bad("store.sync_interval", "%v: want from 100ms to 1h", r.SyncInterval)
	}
	u := strings.TrimSpace(c.Store.URL)
	switch {
	case u == "":
		r.SQLitePath = filepath.Join(c.DataDir, "writ.db")
	case strings.HasPrefix(u, "sqlite:"):
		r.SQLitePath = strings.TrimPrefix(strings.TrimPrefix(u, "sqlite:"), "//")
		if r.SQLitePath == "" {
			bad("store.url", "%q names no file: write sqlite:/var/lib/writ/writ.db", u)
		}
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"), strings.Contains(u, "="):
		if _, err := pgx.ParseConfig(u); err != nil {
			// pgx's message quotes the string; keep a password out of it.
			bad("store.url", "not a PostgreSQL connection string (%s)", redactPassword(err.Error(), u))
		}
		r.PostgresDSN = u
	default:
		bad("store.url", "%q: want empty (SQLite in data_dir), sqlite:PATH, postgres://user@host/db or \"host=… dbname=…\"", u)
	}

	node := c.Node
	if node == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "writ"
		}
		node = h
	}
	if !validNodeName(node) {
		bad("node", "%q: want 1 to 63 letters, digits, '.', '-' or '_'", node)
	}
	return r, node
}

func validNodeName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// redactPassword removes the password of dsn from msg.
func redactPassword(msg, dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err == nil && cfg.Password != "" {
		return strings.ReplaceAll(msg, cfg.Password, "xxxxx")
	}
	// Unparseable: hide anything between "://user:" and "@".
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		if at := strings.Index(rest, "@"); at >= 0 {
			if colon := strings.Index(rest[:at], ":"); colon >= 0 {
				return strings.ReplaceAll(msg, rest[colon+1:at], "xxxxx")
			}
		}
	}
	return msg
}
