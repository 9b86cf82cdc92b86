package testdb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Faults makes statements of a pool opened by OpenFaulty fail.
type Faults struct {
	mu     sync.Mutex
	rules  []*faultRule
	failed int
}

type faultRule struct {
	substr string
	left   int
	err    error
}

// Fail makes the next n statements whose text contains substr fail with
// err, without running them.
func (f *Faults) Fail(substr string, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = append(f.rules, &faultRule{substr: substr, left: n, err: err})
}

// Failed returns how many statements failed so far.
func (f *Faults) Failed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// check returns the error statement q is to fail with, or nil.
func (f *Faults) check(q string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.rules {
		if r.left > 0 && strings.Contains(q, r.substr) {
			r.left--
			f.failed++
			return r.err
		}
	}
	return nil
}

// OpenFaulty opens another pool on the database of dsn whose statements
// fail as its Faults say. Its driver is a wrapper, so pluginhost cannot
// detect the dialect from it: set Config.Dialect.
func OpenFaulty(t testing.TB, d Dialect, dsn string) (*sql.DB, *Faults) {
	t.Helper()
	plain := OpenAgain(t, d, dsn)
	f := &Faults{}
	db := sql.OpenDB(&faultyConnector{drv: plain.Driver(), dsn: dsn, f: f})
	t.Cleanup(func() { _ = db.Close() })
	return db, f
}

type faultyConnector struct {
	drv driver.Driver
	dsn string
	f   *Faults
}

func (c *faultyConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &faultyConn{inner: conn, f: c.f}, nil
}

func (c *faultyConnector) Driver() driver.Driver { return c.drv }

// faultyConn fails the statements its Faults name and passes everything
// else through.
type faultyConn struct {
	inner driver.Conn
	f     *Faults
}

func (c *faultyConn) Prepare(q string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), q)
}
func (c *faultyConn) Close() error { return c.inner.Close() }
func (c *faultyConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *faultyConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	if err := c.f.check(q); err != nil {
		return nil, err
	}
	if e, ok := c.inner.(driver.ExecerContext); ok {
		return e.ExecContext(ctx, q, args)
	}
	return nil, driver.ErrSkip
}

func (c *faultyConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	if err := c.f.check(q); err != nil {
		return nil, err
	}
	if e, ok := c.inner.(driver.QueryerContext); ok {
		return e.QueryContext(ctx, q, args)
	}
	return nil, driver.ErrSkip
}

func (c *faultyConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	if err := c.f.check(q); err != nil {
		return nil, err
	}
	if p, ok := c.inner.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, q)
	}
	return c.inner.Prepare(q)
}

func (c *faultyConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if err := c.f.check("BEGIN"); err != nil {
		return nil, err
	}
	if b, ok := c.inner.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	//lint:ignore SA1019 the fallback database/sql itself uses for old drivers
	return c.inner.Begin()
}

func (c *faultyConn) Ping(ctx context.Context) error {
	if p, ok := c.inner.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *faultyConn) CheckNamedValue(nv *driver.NamedValue) error {
	if ch, ok := c.inner.(driver.NamedValueChecker); ok {
		return ch.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

func (c *faultyConn) ResetSession(ctx context.Context) error {
	if r, ok := c.inner.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *faultyConn) IsValid() bool {
	if v, ok := c.inner.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

// Conn exposes pgx's connection, as pgx's stdlib connection does, so that
// code that reaches for it (the change listener) keeps working.
func (c *faultyConn) Conn() *pgx.Conn {
	if p, ok := c.inner.(interface{ Conn() *pgx.Conn }); ok {
		return p.Conn()
	}
	return nil
}

// RegisterAuthorizer passes the SQLite sandbox's authorizer to the wrapped
// connection.
func (c *faultyConn) RegisterAuthorizer(f func(int, string, string, string) int) {
	c.inner.(authorizer).RegisterAuthorizer(f)
}
