package pluginhost_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// The sandbox proof suite (issue 9, item 5): each escape the outside
// testing found, tried through what the library hands a plugin, refused
// with an error naming the plugin and the object; and the allowed paths
// working. Migrations and once-hooks: sandbox_schema_test.go.

// sandboxCore is the host's own schema: a users table with one row.
// On SQLite its id is AUTOINCREMENT, so that the host has a row in
// sqlite_sequence.
var sandboxCore = sqlFiles(map[string]string{
	"sqlite/0001_users.sql": "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, password_hash TEXT NOT NULL);\n" +
		"INSERT INTO users (id, password_hash) VALUES (1, 'hash-1');\n",
	"postgres/0001_users.sql": "CREATE TABLE users (id INTEGER PRIMARY KEY, password_hash TEXT NOT NULL);\n" +
		"INSERT INTO users (id, password_hash) VALUES (1, 'hash-1');\n",
})

// escape is one statement a sandboxed plugin must not get through.
type escape struct {
	name  string
	sql   string
	query bool           // run it as a query
	only  testdb.Dialect // "": on both dialects
	// txOnly: it runs only in a transaction; noTx: never in one.
	txOnly, noTx bool
	// late: in schema work, it may be refused when the work ends rather
	// than at the statement (what the engine cannot see at once).
	late bool
	// object is what the error's Object contains; pgObject on PostgreSQL
	// when it differs.
	object, pgObject string
}

// wants returns what the refusal's Object must contain on dialect d.
func (c escape) wants(d testdb.Dialect) string {
	if d == testdb.Postgres && c.pgObject != "" {
		return c.pgObject
	}
	return c.object
}

// runtimeEscapes are tried through the plugin's DB, a transaction of it,
// and from its Init.
var runtimeEscapes = []escape{
	{name: "read users", sql: `SELECT password_hash FROM users`, query: true, object: "users"},
	// On SQLite a statement that reads no column of users is allowed: see
	// sqlitePolicy.readable.
	{name: "count users", sql: `SELECT count(*) FROM users`, query: true, object: "users", only: testdb.Postgres},
	{name: "count the ledger", sql: `SELECT count(*) FROM pluginhost_ledger`, query: true, object: "pluginhost_ledger"},
	{name: "count another plugin's rows", sql: `SELECT 1 FROM victim__items`, query: true, object: "victim__items"},
	{name: "update a password hash", sql: `UPDATE users SET password_hash = 'stolen' WHERE id = 1`, object: "users"},
	{name: "copy users into its own table", sql: `INSERT INTO intruder__items (title) SELECT password_hash FROM users`, object: "users"},
	{name: "read settings", sql: `SELECT key, value FROM pluginhost_settings`, query: true, object: "pluginhost_settings"},
	{name: "rewrite settings", sql: `UPDATE pluginhost_settings SET value = '"x"'`, object: "pluginhost_settings"},
	{name: "insert a setting", sql: `INSERT INTO pluginhost_settings (key, value) VALUES ('app.name', '"x"')`, object: "pluginhost_settings"},
	{name: "delete settings", sql: `DELETE FROM pluginhost_settings`, object: "pluginhost_settings"},
	{name: "read the ledger", sql: `SELECT line, version FROM pluginhost_ledger`, query: true, object: "pluginhost_ledger"},
	{name: "delete a ledger row", sql: `DELETE FROM pluginhost_ledger WHERE line = 'victim'`, object: "pluginhost_ledger"},
	{name: "disable another plugin", sql: `INSERT INTO pluginhost_plugins (id, enabled) VALUES ('victim', false)`, object: "pluginhost_plugins"},
	{name: "read another plugin's table", sql: `SELECT title FROM victim__items`, query: true, object: "victim__items"},
	{name: "write another plugin's table", sql: `INSERT INTO victim__items (title) VALUES ('planted')`, object: "victim__items"},
	{name: "delete another plugin's rows", sql: `DELETE FROM victim__items`, object: "victim__items"},
	{name: "drop another plugin's table", sql: `DROP TABLE victim__items`, object: "victim__items"},
	{name: "create an unprefixed table", sql: `CREATE TABLE users2 (x INTEGER)`, object: "users2", pgObject: "schema"},
	{name: "create its own table outside its migrations", sql: `CREATE TABLE intruder__extra (x INTEGER)`, object: "intruder__extra", pgObject: "schema"},
	{name: "drop its own table outside its migrations", sql: `DROP TABLE intruder__items`, object: "intruder__items", only: testdb.SQLite},
	{name: "attach a database", sql: `ATTACH DATABASE ':memory:' AS x`, object: "database", only: testdb.SQLite},
	{name: "vacuum into a file", sql: `VACUUM INTO 'sandbox-escape.db'`, object: "database", only: testdb.SQLite, noTx: true},
	{name: "reset the host's sequences", sql: `DELETE FROM sqlite_sequence`, object: "sqlite_sequence", only: testdb.SQLite},
	{name: "turn foreign keys off", sql: `PRAGMA foreign_keys = OFF`, object: "PRAGMA foreign_keys", only: testdb.SQLite},
	{name: "make the schema writable", sql: `PRAGMA writable_schema = ON`, object: "PRAGMA writable_schema", only: testdb.SQLite},
	{name: "read the host's columns", sql: `PRAGMA table_info(users)`, query: true, object: "users", only: testdb.SQLite},
	{name: "temp table hiding users", sql: `CREATE TEMP TABLE users (id INTEGER, password_hash TEXT)`, object: "users", only: testdb.SQLite},
	{name: "create a schema", sql: `CREATE SCHEMA intruder_s`, object: "database", only: testdb.Postgres},
	{name: "truncate the ledger", sql: `TRUNCATE pluginhost_ledger`, object: "pluginhost_ledger", only: testdb.Postgres},
	{name: "lock users", sql: `LOCK TABLE users IN ACCESS EXCLUSIVE MODE`, object: "users", only: testdb.Postgres, txOnly: true},
}

// runner is what DB and Tx share.
type runner interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// try runs c on r; a query's rows are read to the end.
func try(ctx context.Context, r runner, c escape) error {
	if !c.query {
		_, err := r.ExecContext(ctx, c.sql)
		return err
	}
	rows, err := r.QueryContext(ctx, c.sql)
	if err != nil {
		return err
	}
	for rows.Next() {
	}
	return errors.Join(rows.Err(), rows.Close())
}

// requireRefused checks that err is the sandbox's refusal of plugin's
// statement, naming object.
func requireSandboxRefused(t *testing.T, err error, plugin, object string) {
	t.Helper()
	require.Error(t, err, "the sandbox let it through")
	require.ErrorIs(t, err, pluginhost.ErrSandbox, "%v", err)
	var se *pluginhost.SandboxError
	require.ErrorAs(t, err, &se)
	require.Equal(t, plugin, se.Plugin)
	require.Contains(t, se.Object, object, "%v", err)
	require.Contains(t, err.Error(), fmt.Sprintf("plugin %q", plugin))
}

// sandboxWorld is a host with core tables, a victim plugin with a row
// and the intruder plugin, whose Host it returns.
type sandboxWorld struct {
	e *env
	m *pluginhost.Manager
	h *pluginhost.Host
}

// intruder returns the plugin that tries the escapes: a table items.
func intruder() *fake { return itemsPlugin("intruder") }

// startWorld starts intruder p beside the victim plugin on the core
// schema; config, when not nil, changes the Config first.
func startWorld(e *env, p *fake, config func(*pluginhost.Config), others ...pluginhost.Plugin) *sandboxWorld {
	e.t.Helper()
	w := &sandboxWorld{e: e}
	init := p.init
	p.init = func(ctx context.Context, h *pluginhost.Host) error {
		w.h = h
		if init != nil {
			return init(ctx, h)
		}
		return nil
	}
	cfg := e.config(append([]pluginhost.Plugin{itemsPlugin("victim"), p}, others...)...)
	cfg.CoreMigrations = sandboxCore
	cfg.CoreSettings = []pluginhost.Setting{{Key: "app.name", Type: pluginhost.StringType, Default: "core"}}
	if config != nil {
		config(&cfg)
	}
	w.m = e.start(cfg)
	for _, id := range []string{"victim", "intruder"} {
		st := status(e.t, w.m, id)
		require.Equal(e.t, pluginhost.StateRunning, st.State, "%s: %s", id, st.Reason)
	}
	e.exec(`INSERT INTO victim__items (title) VALUES ('victim row')`)
	return w
}

// requireIntact checks, as the host, that nothing the escapes aimed at
// changed.
func (w *sandboxWorld) requireIntact(t *testing.T) {
	t.Helper()
	e := w.e
	require.Equal(t, []string{"hash-1"}, e.strings(`SELECT password_hash FROM users`), "the password hash")
	require.True(t, e.hasTable("victim__items"), "the victim's table")
	require.Equal(t, []string{"victim row"}, e.strings(`SELECT title FROM victim__items`), "the victim's rows")
	require.Zero(t, e.count(`SELECT count(*) FROM pluginhost_plugins`), "no plugin disabled")
	require.NotEmpty(t, e.ledger("victim"), "the victim's ledger rows")
	require.Equal(t, "core", mustSetting(t, w.m.Settings(), "app.name"))
	require.False(t, e.hasTable("users2"), "no unprefixed table")
	require.False(t, e.hasTable("intruder__extra"), "no table outside its migrations")
	require.Equal(t, pluginhost.StateRunning, status(t, w.m, "victim").State)
}

// Every runtime escape is refused, through the plugin's DB, through a
// transaction of it and from its Init, on both dialects; the host's data
// stays as it was.
func TestSandboxRefusesRuntimeEscapes(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		initErrs := map[string]error{}
		p := intruder()
		p.init = func(ctx context.Context, h *pluginhost.Host) error {
			for _, c := range runtimeEscapes {
				if (c.only == "" || c.only == e.dialect) && !c.txOnly {
					initErrs[c.name] = try(ctx, h.DB(), c)
				}
			}
			return nil
		}
		w := startWorld(e, p, nil)
		db := w.h.DB()
		for _, c := range runtimeEscapes {
			if c.only != "" && c.only != e.dialect {
				continue
			}
			t.Run(c.name, func(t *testing.T) {
				if !c.txOnly {
					t.Run("DB", func(t *testing.T) {
						requireSandboxRefused(t, try(ctx, db, c), "intruder", c.wants(e.dialect))
					})
					t.Run("Init", func(t *testing.T) {
						requireSandboxRefused(t, initErrs[c.name], "intruder", c.wants(e.dialect))
					})
				}
				if c.noTx {
					return
				}
				t.Run("Tx", func(t *testing.T) {
					tx, err := db.BeginTx(ctx, nil)
					require.NoError(t, err)
					defer func() { _ = tx.Rollback() }()
					requireSandboxRefused(t, try(ctx, tx, c), "intruder", c.wants(e.dialect))
				})
			})
		}
		w.requireIntact(t)
		// The connections the refused statements ran on serve the plugin
		// and the host as before.
		_, err := db.ExecContext(ctx, `INSERT INTO `+db.Table("items")+` (title) VALUES (?)`, "after")
		require.NoError(t, err)
		require.Equal(t, 1, e.count(`SELECT count(*) FROM users`))
	})
}

// QueryRowContext's error is the driver's own (see its doc): the refusal
// is still a refusal, and the statement reads nothing.
func TestSandboxRefusesQueryRow(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		w := startWorld(e, intruder(), nil)
		var hash string
		err := w.h.DB().QueryRowContext(ctx, `SELECT password_hash FROM users WHERE id = 1`).Scan(&hash)
		require.Error(t, err)
		require.Empty(t, hash)
		tx, err := w.h.DB().BeginTx(ctx, nil)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback() }()
		require.Error(t, tx.QueryRowContext(ctx, `SELECT password_hash FROM users WHERE id = 1`).Scan(&hash))
		require.Empty(t, hash)
	})
}

// The plugin's own tables: create, read, update and delete through its
// DB and through a transaction, committed and rolled back; and from a
// request handler.
func TestSandboxAllowsOwnTables(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		w := startWorld(e, intruder(), nil)
		db := w.h.DB()
		items := db.Table("items")
		titles := func() []string {
			t.Helper()
			rows, err := db.QueryContext(ctx, `SELECT title FROM `+items+` ORDER BY id`)
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
		_, err := db.ExecContext(ctx, `INSERT INTO `+items+` (title) VALUES (?), (?)`, "a", "b")
		require.NoError(t, err)
		_, err = db.ExecContext(ctx, `UPDATE `+items+` SET title = ? WHERE title = ?`, "a2", "a")
		require.NoError(t, err)
		_, err = db.ExecContext(ctx, `DELETE FROM `+items+` WHERE title = ?`, "b")
		require.NoError(t, err)
		var n int
		require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM `+items).Scan(&n))
		require.Equal(t, 1, n)
		require.Equal(t, []string{"a2"}, titles())

		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, `INSERT INTO `+items+` (title) VALUES (?)`, "in tx")
		require.NoError(t, err)
		rows, err := tx.QueryContext(ctx, `SELECT title FROM `+items+` WHERE title = ?`, "in tx")
		require.NoError(t, err)
		require.True(t, rows.Next())
		require.NoError(t, rows.Close())
		_, err = tx.ExecContext(ctx, `UPDATE `+items+` SET title = ? WHERE title = ?`, "committed", "in tx")
		require.NoError(t, err)
		require.NoError(t, tx.Commit())

		tx, err = db.BeginTx(ctx, nil)
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, `DELETE FROM `+items)
		require.NoError(t, err)
		require.NoError(t, tx.Rollback())
		require.Equal(t, []string{"a2", "committed"}, titles())

		// What the sandbox leaves a plugin besides its tables.
		rows, err = db.QueryContext(ctx, `WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n FROM r`)
		require.NoError(t, err)
		require.NoError(t, rows.Close())
		if e.dialect == testdb.SQLite {
			for _, q := range []string{`PRAGMA foreign_keys`, `PRAGMA table_info(intruder__items)`, `SELECT name FROM sqlite_master WHERE name = 'intruder__items'`} {
				rows, err := db.QueryContext(ctx, q)
				require.NoError(t, err, q)
				require.NoError(t, rows.Close())
			}
		}
		w.requireIntact(t)
	})
}

// DB.Table and TableOf accept only the plugin's tables: anything else, an
// injection attempt included, panics with a message naming the plugin,
// the name and the tables it has.
func TestSandboxTableRefusesOtherNames(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		w := startWorld(e, intruder(), nil)
		db := w.h.DB()
		require.Equal(t, "intruder__items", db.Table("items"))
		for _, tt := range []struct{ name, table, want string }{
			{"injection", "x; DROP TABLE users; --", `pluginhost: plugin "intruder": table "x; DROP TABLE users; --"`},
			{"core table", "users", `pluginhost: plugin "intruder": DB.Table("users"): not one of its tables, declared or created by its migrations (its tables: items)`},
			{"library table", "pluginhost_settings", `DB.Table("pluginhost_settings")`},
			{"undeclared", "notes", `DB.Table("notes"): not one of its tables`},
			{"physical name", "intruder__items", `pluginhost: plugin "intruder": table "intruder__items"`},
		} {
			t.Run(tt.name, func(t *testing.T) {
				require.Contains(t, panicText(t, func() { db.Table(tt.table) }), tt.want)
			})
		}
		t.Run("another plugin's table", func(t *testing.T) {
			msg := panicText(t, func() { db.TableOf("victim", "items") })
			require.Contains(t, msg, `pluginhost: plugin "intruder": DB.TableOf("victim", "items"): not a table it declared it reads`)
		})
		t.Run("a transaction's Table", func(t *testing.T) {
			tx, err := db.BeginTx(context.Background(), nil)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback() }()
			require.Contains(t, panicText(t, func() { tx.Table("x; DROP TABLE users; --") }), `plugin "intruder"`)
		})
		require.True(t, e.hasTable("users"))
	})
}

// panicText returns the text of fn's panic, an error.
func panicText(t *testing.T, fn func()) (msg string) {
	t.Helper()
	defer func() {
		r := recover()
		err, ok := r.(error)
		require.True(t, ok, "panic with an error, got %#v", r)
		msg = err.Error()
	}()
	fn()
	return ""
}

// The host's own code keeps its full access while the plugins are
// sandboxed: core migrations, the settings, the Manager's writes, and
// the host's pool.
func TestSandboxLeavesTheHostAlone(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		w := startWorld(e, intruder(), nil)
		require.Equal(t, []string{"hash-1"}, e.strings(`SELECT password_hash FROM users`), "the core migration ran")
		require.NoError(t, w.m.Settings().Set(ctx, "app.name", "renamed"))
		require.Equal(t, "renamed", mustSetting(t, w.m.Settings(), "app.name"))
		require.NoError(t, w.m.Disable(ctx, "victim"))
		require.NoError(t, w.m.Enable(ctx, "victim"))
		require.Equal(t, pluginhost.StateRunning, status(t, w.m, "victim").State)
		// The host's pool, shared with the SQLite sandbox's connections, is
		// not left with a plugin's policy: many statements of the plugin,
		// refused and allowed, then the host's on every connection.
		db := w.h.DB()
		for range 20 {
			_, _ = db.ExecContext(ctx, `UPDATE users SET password_hash = 'stolen'`)
			_, err := db.ExecContext(ctx, `INSERT INTO `+db.Table("items")+` (title) VALUES ('x')`)
			require.NoError(t, err)
		}
		e.exec(`UPDATE users SET password_hash = ? WHERE id = 1`, "hash-2")
		require.Equal(t, []string{"hash-2"}, e.strings(`SELECT password_hash FROM users`))
		_, err := db.Unsandboxed().ExecContext(ctx, `UPDATE users SET password_hash = 'via the escape hatch' WHERE id = 1`)
		require.NoError(t, err, "Unsandboxed is outside the sandbox, as its name says")
	})
}

// Config.Unsandboxed and Config.SandboxOff let the same statements
// through: the plugins left outside have the host's access.
func TestSandboxOffLetsStatementsThrough(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		config func(*pluginhost.Config)
	}{
		{"Unsandboxed", func(c *pluginhost.Config) { c.Unsandboxed = []string{"intruder"} }},
		{"SandboxOff", func(c *pluginhost.Config) { c.SandboxOff = true }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachEnv(t, func(t *testing.T, e *env) {
				ctx := context.Background()
				w := startWorld(e, intruder(), tt.config)
				db := w.h.DB()
				_, err := db.ExecContext(ctx, `UPDATE users SET password_hash = 'stolen' WHERE id = 1`)
				require.NoError(t, err)
				rows, err := db.QueryContext(ctx, `SELECT title FROM victim__items`)
				require.NoError(t, err)
				require.NoError(t, rows.Close())
				_, err = db.ExecContext(ctx, `CREATE TABLE users2 (x INTEGER)`)
				require.NoError(t, err)
				require.Equal(t, []string{"stolen"}, e.strings(`SELECT password_hash FROM users`))
				require.True(t, e.hasTable("users2"))
			})
		})
	}
	// Unsandboxed names one plugin: the others stay inside.
	eachEnv(t, func(t *testing.T, e *env) {
		var victimDB *pluginhost.DB
		victim := itemsPlugin("victim2")
		victim.init = func(_ context.Context, h *pluginhost.Host) error { victimDB = h.DB(); return nil }
		w := startWorld(e, intruder(), func(c *pluginhost.Config) { c.Unsandboxed = []string{"intruder"} }, victim)
		require.NotNil(t, w.h)
		_, err := victimDB.ExecContext(context.Background(), `UPDATE users SET password_hash = 'x'`)
		requireSandboxRefused(t, err, "victim2", "users")
	})
}

// The SQLite refusals name the action too.
func TestSandboxErrorMessage(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		w := startWorld(e, intruder(), nil)
		_, err := w.h.DB().ExecContext(context.Background(), `UPDATE users SET password_hash = 'x'`)
		var se *pluginhost.SandboxError
		require.ErrorAs(t, err, &se)
		require.True(t, strings.HasPrefix(err.Error(), `pluginhost: plugin "intruder": sandbox: may not `), err.Error())
		require.NotEmpty(t, se.Action)
		require.Error(t, se.Unwrap(), "the database's own error is kept")
	})
}
