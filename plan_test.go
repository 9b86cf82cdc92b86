package pluginhost_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// planEnv is an env for the tests of Plan and Migrate, and the prefix of
// its sandbox roles: on PostgreSQL the schema belongs to a role of the
// test's own (with CREATEROLE), whose prefix the plugins' roles get, so
// that the roles a snapshot lists are this test's alone and are dropped
// with it.
type planEnv struct {
	*env
	rolePrefix string
}

// eachPlanEnv runs fn as a parallel subtest per dialect, each with a
// planEnv of its own.
func eachPlanEnv(t *testing.T, fn func(t *testing.T, e *planEnv)) {
	t.Helper()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		if d == testdb.Postgres {
			e, r := roleEnv(t, "CREATEROLE")
			fn(t, &planEnv{env: e, rolePrefix: r.Prefix})
			return
		}
		fn(t, &planEnv{env: newEnv(t, d)})
	})
}

// config is env.config with the env's role prefix, the core's migrations
// and settings of version (1 or 2) and Config.Disabled naming "off".
func (e *planEnv) config(version int, plugins ...pluginhost.Plugin) pluginhost.Config {
	cfg := e.env.config(plugins...)
	cfg.SandboxRolePrefix = e.rolePrefix
	core := map[string]string{"0001_users.sql": `CREATE TABLE app_users (id INTEGER PRIMARY KEY, name TEXT)`}
	if version >= 2 {
		core["0002_roles.sql"] = `CREATE TABLE app_roles (id INTEGER PRIMARY KEY)`
	}
	cfg.CoreMigrations = sqlFiles(core)
	cfg.CoreSettings = []pluginhost.Setting{{Key: "app.name", Type: pluginhost.StringType, Default: "example"}}
	cfg.Disabled = []string{"off"}
	return cfg
}

// calls counts the calls of a memo plugin's hooks.
type calls struct{ seedOnce, seed, init atomic.Int32 }

// memo returns plugin "memo" at version 1 or 2, and two plugins that do
// not start: "off" (disabled by Config) and "orphan" (its dependency is
// not registered). Version 2 adds a table, a migration, a SeedOnce hook
// and two settings.
func memo(version int, c *calls) []pluginhost.Plugin {
	items := pluginhost.Table{Name: "items", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "title"}}}
	migs := map[string]string{"0001_title_index.sql": `CREATE INDEX memo__items_title ON memo__items (title)`}
	f := &fake{
		manifest:   manifest("memo", "1.0.0", "[[settings]]", `key = "memo.limit"`, `type = "number"`, `default = 10`),
		tables:     []pluginhost.Table{items},
		migrations: sqlFiles(migs),
		seed:       func(context.Context, *pluginhost.Host) error { c.seed.Add(1); return nil },
		init:       func(context.Context, *pluginhost.Host) error { c.init.Add(1); return nil },
	}
	var p pluginhost.Plugin = f
	if version >= 2 {
		f.manifest = manifest("memo", "1.1.0",
			"[[settings]]", `key = "memo.limit"`, `type = "number"`, `default = 10`,
			"[[settings]]", `key = "memo.title"`, `type = "string"`, `default = "Memos"`,
			"[[settings]]", `key = "memo.token"`, `type = "string"`, `required = true`)
		f.tables = append(f.tables, pluginhost.Table{Name: "tags", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "name"}}})
		migs["0002_tags_index.sql"] = `CREATE INDEX memo__tags_name ON memo__tags (name)`
		f.migrations = sqlFiles(migs)
		p = &seedOnceFake{fake: f, seedOnce: func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx) error {
			c.seedOnce.Add(1)
			_, err := tx.ExecContext(ctx, `INSERT INTO `+tx.Table("items")+` (title) VALUES (?)`, "Welcome")
			return err
		}}
	}
	off := &fake{manifest: manifest("off", "1.0.0"), tables: []pluginhost.Table{items}}
	orphan := &fake{manifest: manifest("orphan", "1.0.0", "[dependencies]", `gone = "^1"`), tables: []pluginhost.Table{items}}
	return []pluginhost.Plugin{p, off, orphan}
}

// snapshot lists everything a Plan could change: on SQLite the schema
// (sqlite_schema) and every row of every table; on PostgreSQL, in the
// test's schema, the relations with their owners and privileges, the
// columns, the indexes, the schema's privileges, every row of every table
// and sequence with its physical identity (ctid, xmin: a row written
// again with the same values changes them), and the roles of the test's
// prefix with their memberships.
func (e *planEnv) snapshot() []string {
	e.t.Helper()
	var out []string
	add := func(what string, q string, args ...any) {
		for _, row := range e.rows(q, args...) {
			out = append(out, what+": "+row)
		}
	}
	var tables []string
	if e.dialect == testdb.SQLite {
		add("schema", `SELECT type, name, tbl_name, COALESCE(sql, '') FROM sqlite_schema ORDER BY type, name`)
		tables = e.strings(`SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name`)
	} else {
		add("relation", `SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner), COALESCE(c.relacl::text, '')
			FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace ORDER BY 1`)
		add("column", `SELECT table_name, column_name, data_type, is_nullable, COALESCE(column_default, '')
			FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY 1, 2`)
		add("index", `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1`)
		add("schema", `SELECT nspname, pg_get_userbyid(nspowner), COALESCE(nspacl::text, '') FROM pg_namespace WHERE oid = current_schema()::regnamespace`)
		add("role", `SELECT rolname, rolcanlogin, rolinherit FROM pg_roles WHERE starts_with(rolname, ?) ORDER BY 1`, e.rolePrefix)
		add("member", `SELECT pg_get_userbyid(roleid), pg_get_userbyid(member) FROM pg_auth_members
			WHERE starts_with(pg_get_userbyid(roleid), ?) OR starts_with(pg_get_userbyid(member), ?) ORDER BY 1, 2`, e.rolePrefix, e.rolePrefix)
		tables = e.strings(`SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'S') ORDER BY 1`)
	}
	for _, table := range tables {
		q := `SELECT * FROM "` + table + `"`
		if e.dialect == testdb.Postgres {
			q = `SELECT ctid, xmin, t.* FROM "` + table + `" t`
		}
		add("row "+table, q)
	}
	return out
}

// rows runs a query and returns each row's columns joined by " | ",
// sorted as the query sorts them, or by their text.
func (e *planEnv) rows(q string, args ...any) []string {
	e.t.Helper()
	rows, err := e.db.QueryContext(context.Background(), e.bind(q), args...)
	require.NoError(e.t, err, q)
	defer rows.Close()
	cols, err := rows.Columns()
	require.NoError(e.t, err)
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(e.t, rows.Scan(ptrs...))
		parts := make([]string, len(cols))
		for i, v := range vals {
			parts[i] = fmt.Sprintf("%s=%v", cols[i], v)
		}
		out = append(out, strings.Join(parts, " | "))
	}
	require.NoError(e.t, rows.Err())
	return out
}

// plan makes a Plan on a new Manager of cfg, on a pool whose statements are
// recorded, and checks that none of them writes or takes a lock.
func (e *planEnv) plan(cfg pluginhost.Config) *pluginhost.Plan {
	e.t.Helper()
	db, rec := testdb.OpenCounting(e.t, e.dialect, e.dsn)
	cfg.DB, cfg.Dialect = db, pluginhost.Dialect(e.dialect)
	m, err := pluginhost.New(cfg)
	require.NoError(e.t, err)
	p, err := m.Plan(context.Background())
	require.NoError(e.t, err)
	requireReadOnly(e.t, rec.Statements())
	return p
}

// requireReadOnly fails unless every statement of stmts only reads.
func requireReadOnly(t *testing.T, stmts []string) {
	t.Helper()
	require.NotEmpty(t, stmts)
	for _, s := range stmts {
		first := strings.ToUpper(strings.Fields(s)[0])
		require.Contains(t, []string{"SELECT", "PRAGMA"}, first, "Plan only reads: %s", s)
		require.NotContains(t, s, "advisory", "Plan takes no lock: %s", s)
	}
}

// pluginPlan returns plugin id's part of p.
func pluginPlan(t *testing.T, p *pluginhost.Plan, id string) pluginhost.PluginPlan {
	t.Helper()
	for _, pp := range p.Plugins {
		if pp.ID == id {
			return pp
		}
	}
	t.Fatalf("no plugin %q in the plan %+v", id, p.Plugins)
	return pluginhost.PluginPlan{}
}

// Plan reports what Start would do and changes nothing: on a fresh
// database (not even the ledger is created, nor a sandbox role), and on
// one with pending work for the core and a plugin (a new table, a new
// migration, a SeedOnce hook, new settings). Each time the Start that
// follows does what the plan said, and a plan after it finds nothing.
func TestPlanChangesNothing(t *testing.T) {
	t.Parallel()
	eachPlanEnv(t, func(t *testing.T, e *planEnv) {
		ctx := context.Background()
		var c calls

		// A fresh database.
		before := e.snapshot()
		p := e.plan(e.config(1, memo(1, &c)...))
		require.Equal(t, before, e.snapshot(), "Plan changed the fresh database")
		require.True(t, p.Work)
		require.Empty(t, p.Error)
		require.Equal(t, pluginhost.Dialect(e.dialect), p.Dialect)
		require.NotEmpty(t, p.Core.LibraryMigrations, "the library's own tables are to be created")
		require.Equal(t, []string{"0001_users"}, p.Core.Migrations)
		require.Equal(t, []pluginhost.PlanSetting{{Key: "app.name", Type: pluginhost.StringType, WritesDefault: true}}, p.Core.Settings)
		require.Equal(t, []string{"memo", "off", "orphan"}, []string{p.Plugins[0].ID, p.Plugins[1].ID, p.Plugins[2].ID})
		require.Equal(t, pluginhost.PluginPlan{
			ID: "memo", Version: "1.0.0", Start: true,
			Tables:     []string{"items"},
			Migrations: []string{"0001_title_index"},
			Settings:   []pluginhost.PlanSetting{{Key: "memo.limit", Type: pluginhost.NumberType, WritesDefault: true}},
		}, pluginPlan(t, p, "memo"))
		off := pluginPlan(t, p, "off")
		require.False(t, off.Start)
		require.Equal(t, pluginhost.StateDisabled, off.State)
		require.Equal(t, "disabled by Config.Disabled", off.Reason)
		require.Empty(t, off.Tables, "a disabled plugin's schema is not planned")
		orphan := pluginPlan(t, p, "orphan")
		require.False(t, orphan.Start)
		require.Equal(t, pluginhost.StateFailed, orphan.State)
		require.Contains(t, orphan.Reason, `dependency "gone" is not registered`)
		require.Zero(t, c.seed.Load()+c.init.Load(), "Plan runs no Seed nor Init")

		// Start does what the plan said.
		m := e.start(e.config(1, memo(1, &c)...))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "memo").State)
		require.True(t, e.hasTable("memo__items"))
		require.Equal(t, 1, e.count(`SELECT count(*) FROM pluginhost_settings WHERE key = 'memo.limit'`))
		require.NoError(t, m.Shutdown(ctx))
		require.False(t, e.plan(e.config(1, memo(1, &c)...)).Work, "after Start, nothing is left to do")

		// Pending work for the core and for memo.
		before = e.snapshot()
		p = e.plan(e.config(2, memo(2, &c)...))
		require.Equal(t, before, e.snapshot(), "Plan changed a database with pending work")
		require.True(t, p.Work)
		require.Empty(t, p.Core.LibraryMigrations)
		require.Equal(t, []string{"0002_roles"}, p.Core.Migrations)
		require.Empty(t, p.Core.Settings, "app.name is stored")
		require.Equal(t, pluginhost.PluginPlan{
			ID: "memo", Version: "1.1.0", Start: true,
			Tables:     []string{"tags"},
			Migrations: []string{"0002_tags_index"},
			OnceHooks:  []string{"seed once"},
			Settings: []pluginhost.PlanSetting{
				{Key: "memo.title", Type: pluginhost.StringType, WritesDefault: true},
				{Key: "memo.token", Type: pluginhost.StringType, Required: true},
			},
		}, pluginPlan(t, p, "memo"))
		require.Zero(t, c.seedOnce.Load(), "Plan runs no once-hook")

		m = e.start(e.config(2, memo(2, &c)...))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "memo").State)
		require.Equal(t, int32(1), c.seedOnce.Load())
		require.True(t, e.hasTable("memo__tags"))
		require.True(t, e.hasTable("app_roles"))
		p = e.plan(e.config(2, memo(2, &c)...))
		require.False(t, p.Work, "after Start, nothing is left to do: %+v", p)
		require.Equal(t, pluginhost.PluginPlan{
			ID: "memo", Version: "1.1.0", Start: true,
			// Not stored (it has no default), and not defined in the
			// registry of this plan's Manager, which has not started.
			Settings: []pluginhost.PlanSetting{{Key: "memo.token", Type: pluginhost.StringType, Required: true}},
		}, pluginPlan(t, p, "memo"))
	})
}

// Plan on a running Manager leaves it alone: its plugins' states are
// unchanged, it still serves, the settings its registry defines are not
// reported again, and a later Plan still works. Plan before Start leaves
// the Start to run as it would have.
func TestPlanOnARunningManager(t *testing.T) {
	t.Parallel()
	eachPlanEnv(t, func(t *testing.T, e *planEnv) {
		ctx := context.Background()
		var c calls
		m, err := pluginhost.New(e.config(2, memo(2, &c)...))
		require.NoError(t, err)
		t.Cleanup(func() { _ = m.Shutdown(ctx) })
		p, err := m.Plan(ctx)
		require.NoError(t, err)
		require.True(t, p.Work)
		require.Empty(t, m.Status(), "Plan before Start: the Manager still knows no plugin")
		require.Zero(t, c.seedOnce.Load())

		require.NoError(t, m.Start(ctx), "Start after Plan")
		require.Equal(t, int32(1), c.seedOnce.Load())
		require.Equal(t, int32(1), c.init.Load())
		before := m.Status()
		snap := e.snapshot()
		p, err = m.Plan(ctx)
		require.NoError(t, err)
		require.Equal(t, snap, e.snapshot())
		require.False(t, p.Work)
		memo := pluginPlan(t, p, "memo")
		require.True(t, memo.Start)
		require.Empty(t, memo.Settings, "memo.token is defined in the running Manager's registry")
		require.Equal(t, before, m.Status(), "Plan left the running Manager's plugins alone")
		require.Equal(t, int32(1), c.init.Load())
		// Still running: a setting can be written.
		require.NoError(t, m.Settings().Set(ctx, "memo.token", "t"))

		// An operator's choice, persisted, is what a Start would read.
		require.NoError(t, m.Disable(ctx, "memo"))
		p, err = m.Plan(ctx)
		require.NoError(t, err)
		memo = pluginPlan(t, p, "memo")
		require.False(t, memo.Start)
		require.Equal(t, pluginhost.StateDisabled, memo.State)
		require.Equal(t, "disabled by an operator", memo.Reason)
	})
}

// A plugin whose declared table changed: Plan reports the error and that
// the plugin would fail, with the reason Start then gives it.
func TestPlanReportsASchemaStartWouldRefuse(t *testing.T) {
	t.Parallel()
	eachPlanEnv(t, func(t *testing.T, e *planEnv) {
		var c calls
		m := e.start(e.config(1, memo(1, &c)...))
		require.NoError(t, m.Shutdown(context.Background()))

		changed := memo(1, &c)
		changed[0].(*fake).tables[0].Columns[1].Type = pluginhost.Integer // title: text → integer
		before := e.snapshot()
		p := e.plan(e.config(1, changed...))
		require.Equal(t, before, e.snapshot())
		pp := pluginPlan(t, p, "memo")
		require.False(t, pp.Start)
		require.Equal(t, pluginhost.StateFailed, pp.State)
		require.Contains(t, pp.Error, `table "items"`)

		m2, err := e.tryStart(e.config(1, changed...))
		require.NoError(t, err)
		st := status(t, m2, "memo")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Equal(t, st.Reason, pp.Reason, "Plan foretold Start's reason")
	})
}

// A required plugin that would not start: Start would fail, and the plan
// says why.
func TestPlanSaysWhyStartWouldFail(t *testing.T) {
	t.Parallel()
	eachPlanEnv(t, func(t *testing.T, e *planEnv) {
		var c calls
		cfg := e.config(1, memo(1, &c)...)
		cfg.Required = []string{"orphan"}
		p := e.plan(cfg)
		require.Contains(t, p.Error, `plugin "orphan"`)
		require.Contains(t, p.Error, pluginhost.ErrRequired.Error())
	})
}

// Every field of a Plan has a JSON name.
func TestPlanJSON(t *testing.T) {
	t.Parallel()
	p := pluginhost.Plan{
		Dialect: pluginhost.SQLite, Work: true, Error: "e",
		Core: pluginhost.CorePlan{LibraryMigrations: []string{"l"}, Migrations: []string{"c"},
			Settings: []pluginhost.PlanSetting{{Key: "app.x", Type: pluginhost.StringType, WritesDefault: true, Required: true}}, Error: "e"},
		Plugins: []pluginhost.PluginPlan{{ID: "a", Version: "1", RecordedVersion: "0", Start: true, State: pluginhost.StateFailed, Reason: "r",
			Migrations: []string{"m"}, Tables: []string{"t"}, Recreated: []string{"x"}, Changes: []pluginhost.SchemaChange{{Plugin: "a", Table: "t", Change: "c", SQL: "s", Refused: true}},
			OnceHooks: []string{"seed once"}, Settings: []pluginhost.PlanSetting{{Key: "a.x"}}, Warnings: []string{"w"}, Error: "e"}},
	}
	b, err := json.Marshal(p)
	require.NoError(t, err)
	var keys map[string]any
	require.NoError(t, json.Unmarshal(b, &keys))
	require.ElementsMatch(t, []string{"dialect", "work", "error", "core", "plugins"}, mapKeys(keys))
	core := keys["core"].(map[string]any)
	require.ElementsMatch(t, []string{"library_migrations", "migrations", "settings_to_add", "error"}, mapKeys(core))
	require.ElementsMatch(t, []string{"key", "type", "writes_default", "required"}, mapKeys(core["settings_to_add"].([]any)[0].(map[string]any)))
	plugin := keys["plugins"].([]any)[0].(map[string]any)
	require.ElementsMatch(t, []string{"id", "version", "recorded_version", "start", "state", "reason", "migrations", "tables_to_create",
		"tables_to_recreate", "schema_changes", "once_hooks", "settings_to_add", "warnings", "error"}, mapKeys(plugin))
}

func mapKeys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
