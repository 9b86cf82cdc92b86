// Package testdb gives each test its own database: an in-memory SQLite
// database always, and a PostgreSQL schema of its own when
// PLUGINHOST_TEST_POSTGRES_URL is set. It is for tests only.
package testdb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
	_ "github.com/mattn/go-sqlite3"    // SQLite driver "sqlite3"

	"github.com/pluginhost/pluginhost/internal/dialect"
)

// Environment variables that select PostgreSQL.
const (
	PostgresURLEnv     = "PLUGINHOST_TEST_POSTGRES_URL"
	RequirePostgresEnv = "PLUGINHOST_REQUIRE_POSTGRES"
)

// Dialect is the SQL dialect, [dialect.Dialect], the type of
// pluginhost.Dialect too.
type Dialect = dialect.Dialect

// The dialects.
const (
	SQLite   = dialect.SQLite
	Postgres = dialect.Postgres
)

var counter atomic.Int64

// SQLiteDSN returns the DSN of a fresh, uniquely named in-memory SQLite
// database. Every *sql.DB opened on it, in this process, shares the same
// database (SQLite's memdb VFS), with ordinary locking and a busy timeout;
// the database disappears when its last connection closes.
func SQLiteDSN(name string) string {
	n := counter.Add(1)
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, name)
	return fmt.Sprintf("file:/%s_%d_%d?vfs=memdb&_busy_timeout=10000&_foreign_keys=1", clean, os.Getpid(), n)
}

// OpenSQLite opens a fresh in-memory SQLite database, closed when the test
// ends. One extra connection is held open for the test's lifetime so that
// the database survives the pool closing idle connections.
func OpenSQLite(t testing.TB) *sql.DB {
	t.Helper()
	dsn := SQLiteDSN(t.Name())
	anchor, err := sql.Open("sqlite3", dsn)
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	conn, err := anchor.Conn(context.Background())
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	db := OpenAgain(t, SQLite, dsn)
	t.Cleanup(func() {
		_ = conn.Close()
		_ = anchor.Close()
	})
	return db
}

// OpenAgain opens another pool on a database a test opened before, by DSN,
// closed when the test ends.
func OpenAgain(t testing.TB, d Dialect, dsn string) *sql.DB {
	t.Helper()
	driver := "sqlite3"
	if d == Postgres {
		driver = "pgx"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatalf("open %s: %v", d, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// PostgresURL returns the server URL from the environment. Without it the
// test is skipped with a message saying how to enable PostgreSQL tests, or
// fails when PLUGINHOST_REQUIRE_POSTGRES=1.
func PostgresURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(PostgresURLEnv)
	if u == "" {
		if os.Getenv(RequirePostgresEnv) == "1" {
			t.Fatalf("%s=1 but %s is not set", RequirePostgresEnv, PostgresURLEnv)
		}
		t.Skipf("PostgreSQL tests are off: set %s (for example postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run them", PostgresURLEnv)
	}
	return u
}

// OpenPostgres creates a schema of the test's own on the server from the
// environment and returns a pool whose connections use it, plus the DSN to
// open more pools on the same schema. The schema is dropped when the test
// ends.
func OpenPostgres(t testing.TB) (*sql.DB, string) {
	t.Helper()
	return NewSchema(t, PostgresURL(t))
}

// NewSchema creates a schema of the test's own on the server at base and
// returns a pool whose connections use it, plus the DSN to open more pools
// on the same schema. The schema is dropped when the test ends.
func NewSchema(t testing.TB, base string) (*sql.DB, string) {
	t.Helper()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		_ = admin.Close()
		if os.Getenv(RequirePostgresEnv) == "1" {
			t.Fatalf("PostgreSQL at %s is unreachable: %v", redact(base), err)
		}
		t.Skipf("PostgreSQL at %s is unreachable (%v); set %s=1 to make this a failure", redact(base), err, RequirePostgresEnv)
	}
	schema := fmt.Sprintf("t_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9, counter.Add(1))
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		_ = admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := admin.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		_ = admin.Close()
	})
	dsn, err := withSearchPath(base, schema)
	if err != nil {
		t.Fatalf("postgres url: %v", err)
	}
	return OpenAgain(t, Postgres, dsn), dsn
}

// Open returns a fresh database of the dialect and a DSN that opens more
// pools on it.
func Open(t testing.TB, d Dialect) (*sql.DB, string) {
	t.Helper()
	if d == Postgres {
		return OpenPostgres(t)
	}
	dsn := SQLiteDSN(t.Name())
	anchor := OpenAgain(t, SQLite, dsn)
	if err := anchor.Ping(); err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	anchor.SetMaxIdleConns(1)
	return OpenAgain(t, SQLite, dsn), dsn
}

// Each runs fn as a subtest per dialect: SQLite always, PostgreSQL when
// configured (skipped otherwise, with the reason).
func Each(t *testing.T, fn func(t *testing.T, d Dialect)) {
	t.Helper()
	for _, d := range dialect.All {
		t.Run(string(d), func(t *testing.T) {
			if d == Postgres {
				PostgresURL(t)
			}
			fn(t, d)
		})
	}
}

func withSearchPath(base, schema string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
