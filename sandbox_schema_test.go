package pluginhost_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// The sandbox proof suite, continued: the plugin's schema work (its
// migrations and its SeedOnce hook, which run in the host's schema
// transaction) reaches only its own tables. An escape fails the plugin's
// schema phase naming the plugin and the object, and nothing of its work
// stays.

// schemaEscapes are tried from a migration of the intruder and from its
// SeedOnce hook.
var schemaEscapes = []escape{
	{name: "read users", sql: `CREATE TABLE intruder__copy AS SELECT * FROM users`, object: "users"},
	{name: "count users", sql: `INSERT INTO intruder__items (title) SELECT count(*) FROM users`, object: "users", only: testdb.Postgres},
	{name: "count another plugin's rows", sql: `INSERT INTO intruder__items (title) SELECT count(*) FROM victim__items`, object: "victim__items"},
	{name: "update a password hash", sql: `UPDATE users SET password_hash = 'stolen' WHERE id = 1`, object: "users"},
	{name: "read settings", sql: `INSERT INTO intruder__items (title) SELECT value FROM pluginhost_settings`, object: "pluginhost_settings"},
	{name: "rewrite settings", sql: `UPDATE pluginhost_settings SET value = '"x"'`, object: "pluginhost_settings"},
	{name: "delete a ledger row", sql: `DELETE FROM pluginhost_ledger WHERE line = 'victim'`, object: "pluginhost_ledger"},
	{name: "disable another plugin", sql: `INSERT INTO pluginhost_plugins (id, enabled) VALUES ('victim', false)`, object: "pluginhost_plugins"},
	{name: "read another plugin's table", sql: `INSERT INTO intruder__items (title) SELECT title FROM victim__items`, object: "victim__items"},
	{name: "write another plugin's table", sql: `INSERT INTO victim__items (title) VALUES ('planted')`, object: "victim__items"},
	{name: "drop another plugin's table", sql: `DROP TABLE victim__items`, object: "victim__items"},
	{name: "alter another plugin's table", sql: `ALTER TABLE victim__items ADD COLUMN planted TEXT`, object: "victim__items"},
	{name: "rename another plugin's table", sql: `ALTER TABLE victim__items RENAME TO intruder__stolen`, object: "victim__items"},
	{name: "create an unprefixed table", sql: `CREATE TABLE users2 (x INTEGER)`, object: "users2", late: true},
	{name: "rename its table out of its namespace", sql: `ALTER TABLE intruder__items RENAME TO users2`, object: "users2", late: true},
	{name: "index on users", sql: `CREATE INDEX intruder__ix ON users (password_hash)`, object: "users"},
	{name: "trigger on users", sql: `CREATE TRIGGER intruder__tr AFTER INSERT ON users BEGIN DELETE FROM users; END`, object: "users", only: testdb.SQLite},
	{name: "rewrite the host's sequences", sql: `UPDATE sqlite_sequence SET seq = 0 WHERE name = 'users'`, object: "sqlite_sequence", only: testdb.SQLite, late: true},
	{name: "attach a database", sql: `ATTACH DATABASE ':memory:' AS x`, object: "database", only: testdb.SQLite},
	{name: "turn foreign keys off", sql: `PRAGMA foreign_keys = OFF`, object: "PRAGMA foreign_keys", only: testdb.SQLite},
	{name: "make the schema writable", sql: `PRAGMA writable_schema = ON`, object: "PRAGMA writable_schema", only: testdb.SQLite},
	{name: "temp table hiding users", sql: `CREATE TEMP TABLE users (id INTEGER, password_hash TEXT)`, object: "users", late: true},
	{name: "temp table hiding the ledger", sql: `CREATE TEMP TABLE pluginhost_ledger (line TEXT)`, object: "pluginhost_ledger", late: true},
	{name: "create a schema", sql: `CREATE SCHEMA intruder_s`, object: "database", only: testdb.Postgres},
}

// seedEscapes are tried from the SeedOnce hook (the first only there: a
// migration file with a COMMIT is refused before it runs). A hook's Tx
// refuses transaction control and role changes before they reach the
// database: on PostgreSQL a COMMIT would end the schema transaction and
// its SET LOCAL ROLE, and the hook's next statements would run as the
// host.
var seedEscapes = []escape{
	{name: "commit the schema transaction, then update users", sql: `COMMIT`, object: "transaction"},
	{name: "reset its role, then update users", sql: `RESET ROLE`, object: "RESET ROLE", only: testdb.Postgres},
}

// requireSchemaRefused checks that the intruder failed its schema phase
// with the sandbox's refusal naming object, and that nothing of its
// schema work stayed, nor of what it aimed at.
func requireSchemaRefused(t *testing.T, e *env, m *pluginhost.Manager, object string) {
	t.Helper()
	st := status(t, m, "intruder")
	require.Equal(t, pluginhost.StateFailed, st.State, "the sandbox let it through")
	require.Contains(t, st.Reason, "schema")
	requireSandboxRefused(t, st.Err, "intruder", object)
	require.Empty(t, e.tablesLike("intruder__"), "no table of its failed schema work stays")
	require.Empty(t, e.ledger("intruder"), "no ledger row of its failed schema work stays")
	require.False(t, e.hasTable("users2"))
	require.Equal(t, []string{"hash-1"}, e.strings(`SELECT password_hash FROM users`))
	require.Equal(t, []string{"victim row"}, e.strings(`SELECT title FROM victim__items`))
	require.Zero(t, e.count(`SELECT count(*) FROM pluginhost_plugins`))
	require.NotEmpty(t, e.ledger("victim"))
	require.Equal(t, pluginhost.StateRunning, status(t, m, "victim").State)
	if e.dialect == testdb.SQLite {
		require.Equal(t, 1, e.count(`SELECT seq FROM sqlite_sequence WHERE name = 'users'`))
	}
}

// startSchemaWorld starts the victim alone first (its row inserted), then
// the intruder beside it, and returns the second Manager.
func startSchemaWorld(e *env, p pluginhost.Plugin) *pluginhost.Manager {
	e.t.Helper()
	cfg := e.config(itemsPlugin("victim"))
	cfg.CoreMigrations = sandboxCore
	m := e.start(cfg)
	e.exec(`INSERT INTO victim__items (title) VALUES ('victim row')`)
	require.NoError(e.t, m.Shutdown(context.Background()))
	cfg = e.config(itemsPlugin("victim"), p)
	cfg.CoreMigrations = sandboxCore
	return e.start(cfg)
}

// Every schema escape fails the plugin's schema phase, from a migration
// and from a SeedOnce hook, on both dialects, and leaves nothing.
func TestSandboxRefusesSchemaEscapes(t *testing.T) {
	t.Parallel()
	for _, c := range append(append([]escape(nil), schemaEscapes...), seedEscapes...) {
		seedOnly := c.name == seedEscapes[0].name
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if !seedOnly {
				t.Run("migration", func(t *testing.T) {
					t.Parallel()
					eachEnv(t, func(t *testing.T, e *env) {
						if c.only != "" && c.only != e.dialect {
							return // the other dialect's escape
						}
						p := intruder()
						p.migrations = sqlFiles(map[string]string{"0001_escape.sql": c.sql})
						requireSchemaRefused(t, e, startSchemaWorld(e, p), c.wants(e.dialect))
					})
				})
			}
			t.Run("seed once", func(t *testing.T) {
				t.Parallel()
				eachEnv(t, func(t *testing.T, e *env) {
					if c.only != "" && c.only != e.dialect {
						return // the other dialect's escape
					}
					var hookErr error
					p := &seedOnceFake{fake: intruder(), seedOnce: func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx) error {
						if _, err := tx.ExecContext(ctx, `INSERT INTO `+tx.Table("items")+` (title) VALUES ('seeded')`); err != nil {
							return err
						}
						_, hookErr = tx.ExecContext(ctx, c.sql)
						if seedOnly && hookErr == nil {
							_, hookErr = tx.ExecContext(ctx, `UPDATE users SET password_hash = 'stolen' WHERE id = 1`)
						}
						return hookErr
					}}
					m := startSchemaWorld(e, p)
					if hookErr != nil || !c.late {
						// Refused at once; some only when the schema work
						// ends, which the plugin's status shows.
						requireSandboxRefused(t, hookErr, "intruder", c.wants(e.dialect))
					}
					requireSchemaRefused(t, e, m, c.wants(e.dialect))
				})
			})
		})
	}
}

// A view over users, created in a migration, reads nothing: it fails
// where it is created, or where it is read. So does a trigger on the
// plugin's own table that writes users.
func TestSandboxRefusesViewsAndTriggersOverCoreTables(t *testing.T) {
	t.Parallel()
	const view = `CREATE VIEW intruder__v AS SELECT * FROM users`
	for _, tt := range []struct {
		name      string
		migration map[string]string
		use       string
	}{
		{"view", map[string]string{"0001_v.sql": view}, `SELECT * FROM intruder__v`},
		{"count over a view", map[string]string{"0001_v.sql": view}, `SELECT count(*) FROM intruder__v`},
		{"trigger", map[string]string{
			"sqlite/0001_t.sql": "CREATE TRIGGER intruder__tr AFTER INSERT ON intruder__items BEGIN UPDATE users SET password_hash = 'stolen'; END",
			"postgres/0001_t.sql": "CREATE FUNCTION intruder__f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN UPDATE users SET password_hash = 'stolen'; RETURN NEW; END $$;\n" +
				"CREATE TRIGGER intruder__tr AFTER INSERT ON intruder__items FOR EACH ROW EXECUTE FUNCTION intruder__f();",
		}, `INSERT INTO intruder__items (title) VALUES ('fire')`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachEnv(t, func(t *testing.T, e *env) {
				var h *pluginhost.Host
				p := intruder()
				p.migrations = sqlFiles(tt.migration)
				p.init = func(_ context.Context, host *pluginhost.Host) error { h = host; return nil }
				m := startSchemaWorld(e, p)
				if st := status(t, m, "intruder"); st.State == pluginhost.StateFailed {
					requireSchemaRefused(t, e, m, "users")
					return
				}
				c := escape{sql: tt.use, query: tt.name != "trigger"}
				requireSandboxRefused(t, try(context.Background(), h.DB(), c), "intruder", "users")
				require.Equal(t, []string{"hash-1"}, e.strings(`SELECT password_hash FROM users`))
			})
		})
	}
}

// The allowed schema work: a migration creates, alters, renames and
// indexes the plugin's own tables, and the SeedOnce hook writes them;
// DB.Table then knows the tables the migration created.
func TestSandboxAllowsOwnSchemaWork(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var h *pluginhost.Host
		p := &seedOnceFake{fake: intruder(), seedOnce: func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO `+tx.Table("items")+` (title, note) VALUES (?, ?)`, "seeded", "n"); err != nil {
				return err
			}
			// intruder__tags: tx.Table("tags") panics in the first boot's
			// hook, which runs before the tables its migrations created are
			// recorded.
			_, err := tx.ExecContext(ctx, `INSERT INTO intruder__tags (label) VALUES (?)`, "seeded tag")
			return err
		}}
		p.init = func(_ context.Context, host *pluginhost.Host) error { h = host; return nil }
		p.migrations = sqlFiles(map[string]string{
			"0001_tags.sql":   "CREATE TABLE intruder__tags_new (name TEXT);\nCREATE INDEX intruder__tags_name ON intruder__tags_new (name);",
			"0002_alter.sql":  "ALTER TABLE intruder__items ADD COLUMN note TEXT;\nCREATE INDEX intruder__items_note ON intruder__items (note);",
			"0003_rename.sql": "ALTER TABLE intruder__tags_new RENAME TO intruder__tags;\nALTER TABLE intruder__tags RENAME COLUMN name TO label;",
			"0004_view.sql":   "CREATE VIEW intruder__labels AS SELECT label FROM intruder__tags;\nDROP INDEX intruder__items_note;",
			"0005_scratch.sql": "CREATE TABLE intruder__scratch (x INTEGER);\nINSERT INTO intruder__scratch (x) VALUES (1);\n" +
				"UPDATE intruder__scratch SET x = 2;\nDELETE FROM intruder__scratch;\nDROP TABLE intruder__scratch;",
		})
		m := startSchemaWorld(e, p)
		st := status(t, m, "intruder")
		require.Equal(t, pluginhost.StateRunning, st.State, st.Reason)
		require.Equal(t, []string{"intruder__items", "intruder__tags"}, e.tablesLike("intruder__"))
		require.Equal(t, []string{"seeded"}, e.strings(`SELECT title FROM intruder__items`))
		db := h.DB()
		ctx := context.Background()
		rows, err := db.QueryContext(ctx, `SELECT label FROM `+db.Table("labels"))
		require.NoError(t, err)
		require.True(t, rows.Next())
		require.NoError(t, errors.Join(rows.Err(), rows.Close()))
		_, err = db.ExecContext(ctx, `INSERT INTO `+db.Table("tags")+` (label) VALUES (?)`, "at run time")
		require.NoError(t, err)
		require.Equal(t, 2, e.count(`SELECT count(*) FROM intruder__tags`))
		if e.dialect == testdb.SQLite {
			rows, err = db.QueryContext(ctx, `SELECT key, value FROM json_each('[1, 2]')`)
			require.NoError(t, err, "a table-valued function reads no table")
			require.NoError(t, rows.Close())
		}
		require.Equal(t, []string{"hash-1"}, e.strings(`SELECT password_hash FROM users`))
	})
}
