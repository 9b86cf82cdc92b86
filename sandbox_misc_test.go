package pluginhost_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// SQLite connections that cache compiled statements would run a cached
// statement without asking the sandbox's authorizer: Start refuses them,
// saying which DSN parameter, unless the sandbox is off.
func TestSandboxRefusesSQLiteStatementCache(t *testing.T) {
	t.Parallel()
	dsn := testdb.SQLiteDSN(t.Name()) + "&_stmt_cache_size=16"
	anchor := testdb.OpenAgain(t, testdb.SQLite, dsn)
	_, err := anchor.Exec(`SELECT 1`) // keeps the in-memory database alive
	require.NoError(t, err)
	p := &fake{manifest: manifest("cached", "1.0.0"), tables: []pluginhost.Table{{Name: "t", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}}}}}
	cfg := pluginhost.Config{DB: testdb.OpenAgain(t, testdb.SQLite, dsn), Registry: registry(t, p), Logger: discardLogger()}
	m, err := pluginhost.New(cfg)
	require.NoError(t, err)
	err = m.Start(context.Background())
	require.ErrorContains(t, err, "_stmt_cache_size")
	require.NoError(t, m.Shutdown(context.Background()))

	p = &fake{manifest: manifest("cached", "1.0.0"), tables: p.tables}
	cfg = pluginhost.Config{DB: testdb.OpenAgain(t, testdb.SQLite, dsn), Registry: registry(t, p), Logger: discardLogger(), SandboxOff: true}
	m, err = pluginhost.New(cfg)
	require.NoError(t, err)
	require.NoError(t, m.Start(context.Background()))
	defer m.Shutdown(context.Background())
	require.Equal(t, "off: Config.SandboxOff", status(t, m, "cached").Sandbox)
}

// A temporary table left by a plugin's schema work would outlive its
// transaction on the host's connection, and hide a host table of the same
// name: the plugin fails and its migration rolls back. On SQLite the
// authorizer refuses the TEMP table itself.
func TestSandboxRefusesTemporaryTablesInMigrations(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := &fake{manifest: manifest("tmp", "1.0.0"), migrations: sqlFiles(map[string]string{
			"0001_tmp.sql": "CREATE TABLE tmp__kept (id INTEGER PRIMARY KEY);\nCREATE TEMP TABLE users (id INTEGER);",
		})}
		m := e.start(e.config(p))
		st := status(t, m, "tmp")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.ErrorIs(t, st.Err, pluginhost.ErrSandbox)
		require.Contains(t, st.Reason, `plugin "tmp": sandbox`)
		require.True(t, strings.Contains(st.Reason, `temporary`) || strings.Contains(st.Reason, `"users"`), st.Reason)
		var n int
		q := `SELECT count(*) FROM sqlite_master WHERE name = 'tmp__kept'`
		if e.dialect == testdb.Postgres {
			q = `SELECT count(*) FROM pg_class WHERE relname = 'tmp__kept' AND relnamespace = current_schema()::regnamespace`
		}
		require.NoError(t, e.db.QueryRow(q).Scan(&n))
		require.Zero(t, n, "the migration rolled back whole")
	})
}

// On PostgreSQL a function a plugin's migration creates outside its
// namespace could take a name the host needs: the plugin fails, and the
// migration rolls back.
func TestSandboxRefusesFunctionsOutsideTheNamespace(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		if e.dialect != testdb.Postgres {
			return // SQLite has no SQL functions to create
		}
		p := &fake{manifest: manifest("fn", "1.0.0"), migrations: sqlFiles(map[string]string{
			"postgres/0001_fn.sql": "CREATE FUNCTION now_plus() RETURNS int LANGUAGE sql AS 'SELECT 1'",
			"sqlite/0001_fn.sql":   "SELECT 1",
		})}
		m := e.start(e.config(p))
		st := status(t, m, "fn")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.ErrorIs(t, st.Err, pluginhost.ErrSandbox)
		require.Contains(t, st.Reason, "function now_plus")
		var n int
		require.NoError(t, e.db.QueryRow(`SELECT count(*) FROM pg_proc WHERE proname = 'now_plus'`).Scan(&n))
		require.Zero(t, n)
	})
}

// A transaction's QueryRowContext explains a refusal at Scan, as DB's
// does: in a plugin's own transaction, the engine's refusal of another
// table; in a hook's, a statement that would end it, refused before it
// runs.
func TestSandboxTxQueryRowExplainsRefusals(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var hookErr error
		var h *pluginhost.Host
		p := &seedOnceFake{fake: &fake{manifest: manifest("rows", "1.0.0"),
			tables: []pluginhost.Table{{Name: "t", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}}}},
			init:   func(_ context.Context, host *pluginhost.Host) error { h = host; return nil }},
			seedOnce: func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx) error {
				var n int
				hookErr = tx.QueryRowContext(ctx, `COMMIT`).Scan(&n)
				return nil
			}}
		e.start(e.config(p))
		var se *pluginhost.SandboxError
		require.ErrorAs(t, hookErr, &se)
		require.Equal(t, "rows", se.Plugin)
		require.Contains(t, se.Object, "COMMIT in the transaction of")

		ctx := context.Background()
		tx, err := h.DB().BeginTx(ctx, nil)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback() }()
		var n int
		require.NoError(t, tx.QueryRowContext(ctx, `SELECT count(*) FROM `+tx.Table("t")).Scan(&n))
		err = tx.QueryRowContext(ctx, `SELECT count(*) FROM pluginhost_settings`).Scan(&n)
		require.ErrorAs(t, err, &se)
		require.Contains(t, se.Object, "pluginhost_settings")
	})
}

// DB.Table's error for a name that is no table name says so once, naming
// the plugin.
func TestSandboxTableErrorNamesThePlugin(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var h *pluginhost.Host
		p := &fake{manifest: manifest("names", "1.0.0"), init: func(_ context.Context, host *pluginhost.Host) error { h = host; return nil }}
		e.start(e.config(p))
		defer func() {
			msg := fmt.Sprint(recover())
			require.True(t, strings.HasPrefix(msg, `pluginhost: plugin "names": table "x; DROP TABLE users; --": `), msg)
			require.Equal(t, 1, strings.Count(msg, `table "x; DROP`), msg)
		}()
		h.DB().Table("x; DROP TABLE users; --")
	})
}
