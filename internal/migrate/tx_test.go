package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost/internal/dialect"
	"github.com/pluginhost/pluginhost/internal/migrate"
	"github.com/pluginhost/pluginhost/internal/sqlgen"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// txDB is one test's connection with the dialect's statements.
type txDB struct {
	d     testdb.Dialect
	db    *sql.DB
	conn  *sql.Conn
	begin string // the statement that begins a migration transaction
}

func openConn(t *testing.T, d testdb.Dialect) *txDB {
	t.Helper()
	db, _ := testdb.Open(t, d)
	conn, err := db.Conn(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	_, err = conn.ExecContext(t.Context(), `CREATE TABLE things (name TEXT NOT NULL)`)
	require.NoError(t, err)
	return &txDB{d: d, db: db, conn: conn, begin: dialect.BeginMigration(d)}
}

func (x *txDB) bind(q string) string { return sqlgen.Rebind(x.d, q) }

// names lists the rows of the test table, read through the pool (another
// connection) so that only committed rows count.
func (x *txDB) names(t *testing.T) []string {
	t.Helper()
	rows, err := x.db.QueryContext(t.Context(), `SELECT name FROM things ORDER BY name`)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}

// assertNoOpenTx checks that InTx left the connection out of any
// transaction: a row written on it is at once visible to other connections.
// The row is removed again.
func (x *txDB) assertNoOpenTx(t *testing.T) {
	t.Helper()
	ctx := t.Context()
	_, err := x.conn.ExecContext(ctx, x.bind(`INSERT INTO things (name) VALUES (?)`), "probe")
	require.NoError(t, err)
	require.Contains(t, x.names(t), "probe", "the connection is still inside a transaction")
	_, err = x.conn.ExecContext(ctx, `DELETE FROM things WHERE name = 'probe'`)
	require.NoError(t, err)
}

func TestInTxCommits(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		x := openConn(t, d)
		err := migrate.InTx(t.Context(), x.conn, x.begin, func(ex migrate.Execer) error {
			_, err := ex.ExecContext(t.Context(), x.bind(`INSERT INTO things (name) VALUES (?)`), "a")
			return err
		})
		require.NoError(t, err)
		require.Equal(t, []string{"a"}, x.names(t))
		x.assertNoOpenTx(t)
	})
}

func TestInTxRollsBackOnError(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		x := openConn(t, d)
		boom := errors.New("boom")
		err := migrate.InTx(t.Context(), x.conn, x.begin, func(ex migrate.Execer) error {
			if _, err := ex.ExecContext(t.Context(), `CREATE TABLE half (x INTEGER)`); err != nil {
				return err
			}
			if _, err := ex.ExecContext(t.Context(), x.bind(`INSERT INTO things (name) VALUES (?)`), "a"); err != nil {
				return err
			}
			return boom
		})
		require.ErrorIs(t, err, boom)
		require.Empty(t, x.names(t))
		require.False(t, exists(t, x, "half"), "DDL is rolled back too")
		x.assertNoOpenTx(t)
	})
}

func TestInTxRollsBackOnSQLError(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		x := openConn(t, d)
		err := migrate.InTx(t.Context(), x.conn, x.begin, func(ex migrate.Execer) error {
			if _, err := ex.ExecContext(t.Context(), x.bind(`INSERT INTO things (name) VALUES (?)`), "a"); err != nil {
				return err
			}
			_, err := ex.ExecContext(t.Context(), `INSERT INTO no_such_table VALUES (1)`)
			return err
		})
		require.ErrorContains(t, err, "no_such_table")
		require.Empty(t, x.names(t))
		x.assertNoOpenTx(t)
	})
}

func TestInTxRollsBackOnPanicAndRepanics(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		x := openConn(t, d)
		require.PanicsWithValue(t, "kaboom", func() {
			_ = migrate.InTx(t.Context(), x.conn, x.begin, func(ex migrate.Execer) error {
				if _, err := ex.ExecContext(t.Context(), x.bind(`INSERT INTO things (name) VALUES (?)`), "a"); err != nil {
					return err
				}
				panic("kaboom")
			})
		})
		require.Empty(t, x.names(t))
		x.assertNoOpenTx(t)
	})
}

func TestInTxRollsBackAfterCancel(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		x := openConn(t, d)
		ctx, cancel := context.WithCancel(t.Context())
		err := migrate.InTx(ctx, x.conn, x.begin, func(ex migrate.Execer) error {
			if _, err := ex.ExecContext(ctx, x.bind(`INSERT INTO things (name) VALUES (?)`), "a"); err != nil {
				return err
			}
			cancel()
			return ctx.Err()
		})
		require.ErrorIs(t, err, context.Canceled)
		require.Empty(t, x.names(t))
	})
}

func TestInTxBeginFails(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		x := openConn(t, d)
		called := false
		err := migrate.InTx(t.Context(), x.conn, "BEGIN NONSENSE", func(migrate.Execer) error {
			called = true
			return nil
		})
		require.ErrorContains(t, err, "begin transaction")
		require.False(t, called)
	})
}

func exists(t *testing.T, x *txDB, name string) bool {
	t.Helper()
	ok, err := tableExists(x)(t.Context(), name)
	require.NoError(t, err)
	return ok
}

func tableExists(x *txDB) func(context.Context, string) (bool, error) {
	return func(ctx context.Context, name string) (bool, error) {
		return dialect.TableExists(ctx, x.d, x.db, name)
	}
}

func TestLedgerLoadAndRecord(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		x := openConn(t, d)
		ctx := t.Context()

		l, ok, err := migrate.Load(ctx, x.conn, tableExists(x))
		require.NoError(t, err)
		require.False(t, ok)
		require.Empty(t, l)

		_, err = x.conn.ExecContext(ctx, migrate.LedgerDDL(d))
		require.NoError(t, err)
		a := migrate.Entry{Line: "core", Version: "0001_a", Checksum: "aaa"}
		b := migrate.Entry{Line: "notes", Version: "table:notes", Checksum: "bbb", Definition: `{"name":"notes"}`}
		require.NoError(t, migrate.Record(ctx, x.conn, x.bind, a))
		require.NoError(t, migrate.Record(ctx, x.conn, x.bind, b))
		b.Checksum = "ccc" // replaces the row of the same line and version
		require.NoError(t, migrate.Record(ctx, x.conn, x.bind, b))

		l, ok, err = migrate.Load(ctx, x.conn, tableExists(x))
		require.NoError(t, err)
		require.True(t, ok)
		require.Equal(t, migrate.Ledger{
			"core":  {"0001_a": a},
			"notes": {"table:notes": b},
		}, l)

		var appliedAt sql.NullTime
		require.NoError(t, x.db.QueryRowContext(ctx, `SELECT applied_at FROM `+migrate.LedgerTable+` WHERE line = 'core'`).Scan(&appliedAt))
		require.True(t, appliedAt.Valid)
	})
}

func TestLedgerRefresh(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		x := openConn(t, d)
		ctx := t.Context()
		_, err := x.conn.ExecContext(ctx, migrate.LedgerDDL(d))
		require.NoError(t, err)

		// l was loaded before another process applied "0002_b" and the
		// ledger row of "0001_a" changed; other lines are left alone.
		l := migrate.Ledger{}
		l.Put(migrate.Entry{Line: "core", Version: "0001_a", Checksum: "old"})
		l.Put(migrate.Entry{Line: "notes", Version: "0001_n", Checksum: "n"})
		a := migrate.Entry{Line: "core", Version: "0001_a", Checksum: "new"}
		b := migrate.Entry{Line: "core", Version: "0002_b", Checksum: "b", Definition: "def"}
		require.NoError(t, migrate.Record(ctx, x.conn, x.bind, a))
		require.NoError(t, migrate.Record(ctx, x.conn, x.bind, b))

		require.NoError(t, l.Refresh(ctx, x.conn, x.bind, "core"))
		require.Equal(t, migrate.Ledger{
			"core":  {"0001_a": a, "0002_b": b},
			"notes": {"0001_n": {Line: "notes", Version: "0001_n", Checksum: "n"}},
		}, l)

		// A line without rows reads as empty.
		require.NoError(t, l.Refresh(ctx, x.conn, x.bind, "notes"))
		_, ok := l.Get("notes", "0001_n")
		require.False(t, ok)
	})
}
