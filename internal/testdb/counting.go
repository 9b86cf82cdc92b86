package testdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Recorder lists the statements run through a pool opened by OpenCounting.
type Recorder struct {
	mu    sync.Mutex
	stmts []string
}

// Statements returns the statements run so far, in order.
func (r *Recorder) Statements() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.stmts...)
}

// Reset forgets the statements run so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stmts = nil
}

func (r *Recorder) add(q string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stmts = append(r.stmts, q)
}

// OpenCounting opens another pool on the database of dsn whose statements
// are recorded. Its driver is a wrapper, so pluginhost cannot detect the
// dialect from it: set Config.Dialect.
func OpenCounting(t testing.TB, d Dialect, dsn string) (*sql.DB, *Recorder) {
	t.Helper()
	plain := OpenAgain(t, d, dsn)
	rec := &Recorder{}
	db := sql.OpenDB(&connector{drv: plain.Driver(), dsn: dsn, rec: rec})
	t.Cleanup(func() { _ = db.Close() })
	return db, rec
}

type connector struct {
	drv driver.Driver
	dsn string
	rec *Recorder
}

func (c *connector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &countingConn{inner: conn, rec: c.rec}, nil
}

func (c *connector) Driver() driver.Driver { return c.drv }

// countingConn records each statement and passes everything through.
type countingConn struct {
	inner driver.Conn
	rec   *Recorder
}

func (c *countingConn) Prepare(q string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), q)
}
func (c *countingConn) Close() error { return c.inner.Close() }
func (c *countingConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *countingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	c.rec.add(q)
	if e, ok := c.inner.(driver.ExecerContext); ok {
		return e.ExecContext(ctx, q, args)
	}
	return nil, driver.ErrSkip
}

func (c *countingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	c.rec.add(q)
	if e, ok := c.inner.(driver.QueryerContext); ok {
		return e.QueryContext(ctx, q, args)
	}
	return nil, driver.ErrSkip
}

func (c *countingConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	c.rec.add(q)
	if p, ok := c.inner.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, q)
	}
	return c.inner.Prepare(q)
}

func (c *countingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	c.rec.add("BEGIN")
	if b, ok := c.inner.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	//lint:ignore SA1019 the fallback database/sql itself uses for old drivers
	return c.inner.Begin()
}

func (c *countingConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.inner.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func (c *countingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *countingConn) IsValid() bool {
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// Conn exposes pgx's connection, as pgx's stdlib connection does, so that
// code that reaches for it (the change listener) keeps working.
func (c *countingConn) Conn() *pgx.Conn {
	if p, ok := c.inner.(interface{ Conn() *pgx.Conn }); ok {
		return p.Conn()
	}
	return nil
}

// authorizer is mattn/go-sqlite3's connection's authorizer, which the
// library's SQLite sandbox registers.
type authorizer interface {
	RegisterAuthorizer(func(int, string, string, string) int)
}

// RegisterAuthorizer passes the SQLite sandbox's authorizer to the wrapped
// connection.
func (c *countingConn) RegisterAuthorizer(f func(int, string, string, string) int) {
	c.inner.(authorizer).RegisterAuthorizer(f)
}
