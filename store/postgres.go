package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// Postgres is writ's store on a PostgreSQL database, shared by every writ
// node of an operator. It keeps the same schema and answers as SQLite;
// writes from all nodes are serialised by an advisory lock, so event seqs
// are dense and commit in order, and each commit announces the new
// version on NotifyChannel for the other nodes to follow (Listen).
type Postgres struct {
	*db
	dsn string
}

// OpenPostgres connects to the database at dsn ("postgres://user@host/db"),
// bringing its schema up to date. A database written by a newer writ is
// refused.
func OpenPostgres(ctx context.Context, dsn string) (*Postgres, error) {
	shown := redactDSN(dsn)
	pool, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", shown, err)
	}
	pool.SetMaxOpenConns(16)
	pool.SetConnMaxIdleTime(5 * time.Minute)
	if err := pool.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("store: connect to %s: %w", shown, err), pool.Close())
	}
	if err := migrate(ctx, pool, shown, postgresDialect); err != nil {
		return nil, errors.Join(err, pool.Close())
	}
	return &Postgres{db: &db{path: shown, write: pool, read: pool, d: postgresDialect}, dsn: dsn}, nil
}

// Close releases the connections.
func (s *Postgres) Close() error { return s.write.Close() }

// redactDSN hides the password of a DSN, URL or keywords, for messages.
func redactDSN(dsn string) string {
	if !strings.Contains(dsn, "://") {
		return keywordPassword.ReplaceAllString(dsn, "${1}xxxxx")
	}
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// keywordPassword matches the password of a "host=… password=…" DSN,
// quoted or not.
var keywordPassword = regexp.MustCompile(`(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// Listen reports each new store version that any node commits, until ctx
// ends. A dropped connection is re-established with backoff; versions
// committed meanwhile are not announced, so followers also catch up by
// version on a timer. The channel keeps only the latest version when the
// reader falls behind: followers read everything since their version.
func (s *Postgres) Listen(ctx context.Context, log *slog.Logger) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		defer close(out)
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			err := s.listen(ctx, out)
			if ctx.Err() != nil {
				return
			}
			log.Warn("store: change notifications interrupted; reconnecting", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 10*time.Second)
		}
	}()
	return out
}

func (s *Postgres) listen(ctx context.Context, out chan uint64) error {
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return err
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		v, err := strconv.ParseUint(n.Payload, 10, 64)
		if err != nil {
			continue
		}
		select {
		case out <- v:
		default:
			// The reader has a version to catch up to already; it will read
			// everything after it.
			select {
			case <-out:
			default:
			}
			out <- v
		}
	}
}
