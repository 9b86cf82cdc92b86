// Package dialect defines the SQL dialects pluginhost supports, the one
// Dialect type that the root package (as pluginhost.Dialect), internal/sqlgen,
// internal/migrate and internal/testdb share, and the few statements outside
// DDL that differ between the dialects.
//
// Dialect has no exported methods: the root package exposes the type as an
// alias, so any method would become public API. The dialect-dependent
// statements are functions instead.
package dialect

import (
	"context"
	"database/sql"
	"fmt"
)

// Dialect names an SQL dialect.
type Dialect string

// The supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// All lists the supported dialects, SQLite first.
var All = []Dialect{SQLite, Postgres}

// BeginMigration returns the statement that starts a migration transaction.
// On SQLite it takes the write lock at once ("BEGIN IMMEDIATE"), so that two
// boots against one file queue on the busy timeout instead of failing when a
// read lock is upgraded; on PostgreSQL it is "BEGIN".
func BeginMigration(d Dialect) string {
	if d == SQLite {
		return "BEGIN IMMEDIATE"
	}
	return "BEGIN"
}

// Querier runs queries: a *sql.Conn, *sql.Tx or *sql.DB.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// TableExists reports whether a table is visible (on PostgreSQL: on the
// search path).
func TableExists(ctx context.Context, d Dialect, q Querier, name string) (bool, error) {
	query := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`
	if d == Postgres {
		query = `SELECT count(*) FROM (SELECT to_regclass($1) AS t) x WHERE t IS NOT NULL`
	}
	rows, err := q.QueryContext(ctx, query, name)
	if err != nil {
		return false, fmt.Errorf("look up table %s: %w", name, err)
	}
	defer rows.Close()
	var n int
	for rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return false, err
		}
	}
	return n > 0, rows.Err()
}
