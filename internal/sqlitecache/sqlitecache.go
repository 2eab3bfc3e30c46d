// Package sqlitecache opens database/sql pools on SQLite (modernc, pure
// Go) whose connections keep their prepared statements.
//
// SQLite in pure Go parses a statement in about the time it takes to run
// a small one, and writ's queries are a fixed set: parsing each again on
// every request was a third of the processor time of an amendment's
// store write. database/sql cannot keep statements prepared across the
// transactions of a one-connection pool (preparing on the pool needs a
// free connection, which the transaction holds), so the connections
// themselves keep them: each connection prepares a query the first time
// it runs it, and reuses the statement after.
package sqlitecache

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"

	"modernc.org/sqlite"
)

// Open opens a database/sql pool on the SQLite database named by dsn (a
// modernc DSN) whose connections keep their prepared statements.
func Open(dsn string) *sql.DB {
	return sql.OpenDB(cachingConnector{dsn: dsn})
}

type cachingConnector struct{ dsn string }

func (c cachingConnector) Connect(context.Context) (driver.Conn, error) {
	cn, err := (&sqlite.Driver{}).Open(c.dsn)
	if err != nil {
		return nil, err
	}
	inner, ok := cn.(sqliteConn)
	if !ok {
		cn.Close()
		return nil, errors.New("sqlite: the driver's connections lack a needed interface")
	}
	return &cachingConn{sqliteConn: inner, stmts: map[string]*cachedStmt{}}, nil
}

func (c cachingConnector) Driver() driver.Driver { return &sqlite.Driver{} }

// sqliteConn is what writ uses of a modernc connection.
type sqliteConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// maxCachedStmts bounds the statements one connection keeps: writ's
// queries are far fewer; beyond it a query is parsed for each use.
const maxCachedStmts = 128

// cachingConn is a connection that keeps a statement per query text.
// database/sql uses a connection from one goroutine at a time, so the
// map needs no lock.
type cachingConn struct {
	sqliteConn
	stmts map[string]*cachedStmt
}

type cachedStmt struct {
	st driver.Stmt
	// busy is set while rows of the statement are open: SQLite steps a
	// statement through one result at a time, so a second query of the
	// same text meanwhile is parsed afresh.
	busy bool
}

// cacheable reports whether query is one statement worth keeping: a
// script of several is run as it is.
func cacheable(query string) bool {
	q := strings.TrimSpace(query)
	q = strings.TrimSuffix(q, ";")
	return !strings.Contains(q, ";")
}

// stmt returns the connection's statement for query, preparing it the
// first time, or nil when it is in use or not to be kept.
func (c *cachingConn) stmt(ctx context.Context, query string) (*cachedStmt, error) {
	if s, ok := c.stmts[query]; ok {
		if s.busy {
			return nil, nil
		}
		return s, nil
	}
	if len(c.stmts) >= maxCachedStmts || !cacheable(query) {
		return nil, nil
	}
	st, err := c.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s := &cachedStmt{st: st}
	c.stmts[query] = s
	return s, nil
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	s, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.sqliteConn.ExecContext(ctx, query, args)
	}
	return s.st.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	s, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	if s == nil {
		return c.sqliteConn.QueryContext(ctx, query, args)
	}
	rows, err := s.st.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	s.busy = true
	return &cachedRows{Rows: rows, s: s}, nil
}

// Close finalises the kept statements, then closes the connection:
// SQLite does not close a connection with statements left open.
func (c *cachingConn) Close() error {
	var errs []error
	for q, s := range c.stmts {
		errs = append(errs, s.st.Close())
		delete(c.stmts, q)
	}
	return errors.Join(append(errs, c.sqliteConn.Close())...)
}

// cachedRows frees its statement for the next query when closed.
type cachedRows struct {
	driver.Rows
	s *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.s.busy = false
	return err
}
