package pluginhost

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/pluginhost/pluginhost/internal/dialect"
	"github.com/pluginhost/pluginhost/internal/sqlgen"
)

// Dialect names the SQL dialect of the host's database: [SQLite] ("sqlite")
// or [Postgres] ("postgres"). It is a string type, shared with pluginhost's
// internal packages.
type Dialect = dialect.Dialect

// The supported dialects.
const (
	// SQLite is "sqlite": github.com/mattn/go-sqlite3.
	SQLite = dialect.SQLite
	// Postgres is "postgres": PostgreSQL through github.com/jackc/pgx/v5/stdlib.
	Postgres = dialect.Postgres
)

// DB is a plugin's handle on the host's database. Its query methods take
// "?" placeholders on every dialect (they are rewritten to $1, $2, … for
// PostgreSQL), so one query text works on SQLite and PostgreSQL. It is safe
// for concurrent use.
type DB struct {
	sql     *sql.DB
	dialect Dialect
	prefix  string // physical table name prefix, "" for the host's own handle
}

// SQL returns the underlying *sql.DB, for what DB does not wrap. Queries
// run on it directly must use the dialect's own placeholders.
func (d *DB) SQL() *sql.DB { return d.sql }

// Dialect returns the database's dialect.
func (d *DB) Dialect() Dialect { return d.dialect }

// Table returns the physical name of the plugin's table name, as declared in
// its [Table] list or created by its migrations. It does not check that the
// table exists.
func (d *DB) Table(name string) string { return d.prefix + name }

// Rebind rewrites the "?" placeholders of query into the dialect's form.
func (d *DB) Rebind(query string) string { return sqlgen.Rebind(d.dialect, query) }

// ExecContext runs a statement; see [sql.DB.ExecContext].
func (d *DB) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return d.sql.ExecContext(ctx, d.Rebind(query), args...)
}

// QueryContext runs a query; see [sql.DB.QueryContext].
func (d *DB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return d.sql.QueryContext(ctx, d.Rebind(query), args...)
}

// QueryRowContext runs a query returning at most one row; see
// [sql.DB.QueryRowContext].
func (d *DB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return d.sql.QueryRowContext(ctx, d.Rebind(query), args...)
}

// BeginTx starts a transaction; see [sql.DB.BeginTx].
func (d *DB) BeginTx(ctx context.Context, opts *sql.TxOptions) (*Tx, error) {
	tx, err := d.sql.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &Tx{tx: tx, db: d}, nil
}

// Tx is a transaction begun with [DB.BeginTx]. Like DB, it takes "?"
// placeholders on every dialect.
type Tx struct {
	tx *sql.Tx
	db *DB
}

// SQL returns the underlying *sql.Tx.
func (t *Tx) SQL() *sql.Tx { return t.tx }

// ExecContext runs a statement in the transaction.
func (t *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.db.Rebind(query), args...)
}

// QueryContext runs a query in the transaction.
func (t *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.db.Rebind(query), args...)
}

// QueryRowContext runs a query returning at most one row in the
// transaction.
func (t *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.db.Rebind(query), args...)
}

// Commit commits the transaction.
func (t *Tx) Commit() error { return t.tx.Commit() }

// Rollback aborts the transaction.
func (t *Tx) Rollback() error { return t.tx.Rollback() }

// detectDialect names the dialect of db's driver: mattn/go-sqlite3 or pgx.
func detectDialect(db *sql.DB) (Dialect, error) {
	name := fmt.Sprintf("%T", db.Driver())
	switch {
	case strings.Contains(name, "sqlite"), strings.Contains(name, "SQLite"):
		return SQLite, nil
	case strings.Contains(name, "pgx"), strings.Contains(name, "stdlib.Driver"), strings.Contains(name, "pq."):
		return Postgres, nil
	}
	return "", fmt.Errorf("cannot tell the SQL dialect of driver %s; set Config.Dialect to %q or %q", name, SQLite, Postgres)
}
