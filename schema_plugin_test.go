package pluginhost_test

import (
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// failureLog returns the log line that reports a plugin's failure.
func failureLog(t *testing.T, logs *logBuffer, id string) string {
	t.Helper()
	for line := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(line, `msg="plugin failed"`) && strings.Contains(line, " plugin="+id+" ") {
			return line
		}
	}
	t.Fatalf("no failure logged for plugin %q in:\n%s", id, logs.String())
	return ""
}

func TestPluginMigrationsRunAfterTables(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		files := map[string]string{
			"0001_rank.sql":  `ALTER TABLE p__items ADD COLUMN rank INTEGER NOT NULL DEFAULT 0`,
			"0002_first.sql": `INSERT INTO p__items (title, rank) VALUES ('from migration', 7)`,
		}
		p := itemsPlugin("p")
		p.migrations = sqlFiles(files)
		m := e.start(e.config(p))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "p").State, status(t, m, "p").Reason)
		require.Equal(t, 7, e.count(`SELECT rank FROM p__items WHERE title = 'from migration'`))

		l := e.ledger("p")
		require.Len(t, l, 4)
		require.Contains(t, l, "table:items")
		require.Equal(t, "1.0.0", l["manifest-version"])
		require.Equal(t, checksum(files["0001_rank.sql"]), l["0001_rank"])
		require.Equal(t, checksum(files["0002_first.sql"]), l["0002_first"])
		require.Empty(t, e.ledger("core"), "plugin migrations are on the plugin's line")

		// The next boot applies nothing again.
		m = e.start(e.config(p))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "p").State, status(t, m, "p").Reason)
		require.Equal(t, 1, e.count(`SELECT count(*) FROM p__items`))
	})
}

func TestChangedPluginMigrationFailsPlugin(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := itemsPlugin("p")
		p.migrations = sqlFiles(map[string]string{"0001_rank.sql": `ALTER TABLE p__items ADD COLUMN rank INTEGER`})
		e.start(e.config(p))
		before := e.ledger("p")

		p = itemsPlugin("p")
		p.migrations = sqlFiles(map[string]string{
			"0001_rank.sql": `ALTER TABLE p__items ADD COLUMN rank BIGINT`,
			"0002_more.sql": `CREATE TABLE p__more (x INTEGER)`,
		})
		cfg, logs := withLogs(e.config(p, itemsPlugin("other")))
		m := e.start(cfg)
		st := status(t, m, "p")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, "migration 0001_rank")
		require.Contains(t, st.Reason, "changed")
		line := failureLog(t, logs, "p")
		require.Contains(t, line, "0001_rank")
		require.Equal(t, pluginhost.StateRunning, status(t, m, "other").State)

		require.False(t, e.hasTable("p__more"), "nothing of the plugin is applied")
		require.Equal(t, before, e.ledger("p"), "the ledger keeps the applied checksum")
	})
}

func TestPluginSchemaIsAtomic(t *testing.T) {
	t.Parallel()
	tables := []pluginhost.Table{
		{Name: "a", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}}},
		{Name: "b", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "title"}}, Indexes: []pluginhost.Index{{Columns: []string{"title"}}}},
	}
	tests := []struct {
		name       string
		prepare    func(e *env)      // breaks the plugin's schema
		migrations map[string]string // the plugin's migrations
		want       []string          // in the failure reason
		check      func(e *env)      // after the failure
	}{
		{
			name: "second table fails",
			// A host table takes the name of the second table's index.
			prepare: func(e *env) { e.exec(`CREATE TABLE p__b__ix_title (x INTEGER)`) },
			want:    []string{`create table "b"`, "p__b__ix_title", "already"},
		},
		{
			name: "migration fails",
			migrations: map[string]string{
				"0001_c.sql":   `CREATE TABLE p__c (x INTEGER); INSERT INTO p__a (id) VALUES (1)`,
				"0002_bad.sql": `ALTER TABLE p__a ADD COLUMN extra INTEGER; SELEKT 1`,
			},
			want:  []string{"migration 0002_bad", "SELEKT", "syntax error"},
			check: func(e *env) { require.False(e.t, e.hasTable("p__c")) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachEnv(t, func(t *testing.T, e *env) {
				core := sqlFiles(map[string]string{"0001_core.sql": `CREATE TABLE core_t (x INTEGER)`})
				cfg := e.config()
				cfg.CoreMigrations = core
				e.start(cfg)
				e.exec(`INSERT INTO core_t (x) VALUES (1)`)
				coreLedger := e.ledger("core")
				if tt.prepare != nil {
					tt.prepare(e)
				}

				p := &fake{manifest: manifest("p", "1.0.0"), tables: tables}
				if tt.migrations != nil {
					p.migrations = sqlFiles(tt.migrations)
				}
				dep := itemsPlugin("dep")
				dep.manifest = manifest("dep", "1.0.0", "[dependencies]", `p = "^1.0"`)
				cfg = e.config(p, dep, itemsPlugin("other"))
				cfg.CoreMigrations = core
				m := e.start(cfg)

				st := status(t, m, "p")
				require.Equal(t, pluginhost.StateFailed, st.State)
				require.Contains(t, st.Reason, "schema")
				for _, w := range tt.want {
					require.Contains(t, st.Reason, w)
				}
				require.False(t, e.hasTable("p__a"), "the first table is rolled back")
				require.False(t, e.hasTable("p__b"))
				require.Empty(t, e.ledger("p"), "no ledger rows for the plugin")
				if tt.check != nil {
					tt.check(e)
				}

				require.Equal(t, pluginhost.StateFailed, status(t, m, "dep").State)
				require.Contains(t, status(t, m, "dep").Reason, "dependency p failed")
				require.False(t, e.hasTable("dep__items"), "a dependent's schema is not created")
				require.Equal(t, pluginhost.StateRunning, status(t, m, "other").State)
				require.True(t, e.hasTable("other__items"))
				require.Equal(t, coreLedger, e.ledger("core"))
				require.Equal(t, 1, e.count(`SELECT count(*) FROM core_t`))
			})
		})
	}
}

func TestChangedTableFailsPlugin(t *testing.T) {
	t.Parallel()
	base := func() []pluginhost.Column {
		return []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "title"}, {Name: "body"}}
	}
	tests := []struct {
		name   string
		change func(cols []pluginhost.Column) []pluginhost.Column
		want   string
	}{
		{"column added", func(c []pluginhost.Column) []pluginhost.Column {
			return append(c, pluginhost.Column{Name: "extra"})
		}, `column "extra" added`},
		{"type changed", func(c []pluginhost.Column) []pluginhost.Column {
			c[2].Type = pluginhost.Integer
			return c
		}, `column "body": type text → integer`},
		{"not null toggled", func(c []pluginhost.Column) []pluginhost.Column {
			c[1].NotNull = true
			return c
		}, `column "title": not null false → true`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachEnv(t, func(t *testing.T, e *env) {
				keep := pluginhost.Table{Name: "keep", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}}}
				p := &fake{manifest: manifest("p", "1.0.0"), tables: []pluginhost.Table{{Name: "items", Columns: base()}, keep}}
				e.start(e.config(p))
				e.exec(`INSERT INTO p__items (title, body) VALUES ('t', 'b')`)
				before := e.ledgerDump()

				p = &fake{manifest: manifest("p", "1.0.0"), tables: []pluginhost.Table{{Name: "items", Columns: tt.change(base())}, keep}}
				cfg, logs := withLogs(e.config(p))
				m := e.start(cfg)
				st := status(t, m, "p")
				require.Equal(t, pluginhost.StateFailed, st.State)
				require.Contains(t, st.Reason, `table "items"`)
				require.Contains(t, st.Reason, tt.want)
				require.Contains(t, st.Reason, "DevMode", "the message says what to do")
				line := failureLog(t, logs, "p")
				require.Contains(t, line, "items")
				require.NotContains(t, logs.String(), "level=WARN msg=\"development mode")

				require.Equal(t, before, e.ledgerDump())
				require.Equal(t, []string{"t|b"}, e.strings(`SELECT title || '|' || body FROM p__items`), "data untouched")
			})
		})
	}
}

func TestDevModeRecreatesChangedTables(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		tables := func(listCols ...pluginhost.Column) []pluginhost.Table {
			return []pluginhost.Table{
				{Name: "lists", Columns: append([]pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "name"}}, listCols...)},
				{Name: "items", Columns: []pluginhost.Column{
					{Name: "id", PrimaryKey: true},
					{Name: "list_id", Type: pluginhost.Integer, References: "lists.id", OnDelete: "cascade"},
					{Name: "title"},
				}},
				{Name: "notes", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "body"}}},
			}
		}
		p := &fake{manifest: manifest("p", "1.0.0"), tables: tables()}
		e.start(e.config(p))
		e.exec(`INSERT INTO p__lists (id, name) VALUES (1, 'l')`)
		e.exec(`INSERT INTO p__items (list_id, title) VALUES (1, 'i')`)
		e.exec(`INSERT INTO p__notes (body) VALUES ('n')`)
		before := e.ledger("p")

		p = &fake{manifest: manifest("p", "1.0.0"), tables: tables(pluginhost.Column{Name: "color"})}
		cfg, logs := withLogs(e.config(p))
		cfg.DevMode = true
		m := e.start(cfg)
		require.Equal(t, pluginhost.StateRunning, status(t, m, "p").State, status(t, m, "p").Reason)

		require.Zero(t, e.count(`SELECT count(*) FROM p__lists`), "the changed table is recreated empty")
		require.Zero(t, e.count(`SELECT count(*) FROM p__items`), "so is the table referencing it")
		require.Equal(t, 1, e.count(`SELECT count(*) FROM p__notes`), "unchanged tables keep their data")
		e.exec(`INSERT INTO p__lists (id, name, color) VALUES (1, 'l', 'red')`)

		after := e.ledger("p")
		require.NotEqual(t, before["table:lists"], after["table:lists"], "new checksum in the ledger")
		require.Equal(t, before["table:items"], after["table:items"])
		require.Equal(t, before["table:notes"], after["table:notes"])

		var warns []string
		for line := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "development mode") {
				require.Contains(t, line, "plugin=p")
				warns = append(warns, line)
			}
		}
		require.Len(t, warns, 2, logs.String())
		require.Contains(t, strings.Join(warns, "\n"), "table=lists")
		require.Contains(t, strings.Join(warns, "\n"), `column \"color\" added`)
		require.Contains(t, strings.Join(warns, "\n"), "table=items")

		// The next development boot drops nothing.
		cfg, logs = withLogs(e.config(p))
		cfg.DevMode = true
		e.start(cfg)
		require.Equal(t, 1, e.count(`SELECT count(*) FROM p__lists`))
		require.NotContains(t, logs.String(), "development mode")
	})
}

func TestWarmBootAppliesNothing(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var seeds atomic.Int32
		p := itemsPlugin("p")
		p.migrations = sqlFiles(map[string]string{"0001_rank.sql": `ALTER TABLE p__items ADD COLUMN rank INTEGER`})
		p.seed = func(ctx contextT, h *pluginhost.Host) error {
			seeds.Add(1)
			var n int
			if err := h.DB().QueryRowContext(ctx, `SELECT count(*) FROM `+h.DB().Table("items")).Scan(&n); err != nil || n > 0 {
				return err
			}
			_, err := h.DB().ExecContext(ctx, `INSERT INTO `+h.DB().Table("items")+` (title, rank) VALUES (?, ?)`, "seeded", 1)
			return err
		}
		boot := func() (*pluginhost.Manager, *logBuffer) {
			cfg, logs := withLogs(e.config(p))
			cfg.CoreMigrations = sqlFiles(map[string]string{"0001_core.sql": `CREATE TABLE core_t (x INTEGER)`})
			return e.start(cfg), logs
		}
		m, logs := boot()
		require.Equal(t, pluginhost.StateRunning, status(t, m, "p").State, status(t, m, "p").Reason)
		require.Contains(t, logs.String(), "applied migration")
		e.exec(`INSERT INTO p__items (title, rank) VALUES ('mine', 2)`)
		e.exec(`INSERT INTO core_t (x) VALUES (1)`)
		before := e.ledgerDump()

		for range 2 {
			m, logs = boot()
			require.Equal(t, pluginhost.StateRunning, status(t, m, "p").State, status(t, m, "p").Reason)
			require.NotContains(t, logs.String(), "applied migration")
			require.NotContains(t, logs.String(), "level=WARN")
			require.Equal(t, before, e.ledgerDump(), "the ledger is unchanged")
		}
		require.Equal(t, int32(3), seeds.Load(), "the seed hook runs on each boot")
		require.Equal(t, []string{"mine", "seeded"}, e.strings(`SELECT title FROM p__items ORDER BY title`))
		require.Equal(t, 1, e.count(`SELECT count(*) FROM core_t`))
	})
}

func TestUndeclaredTableIsKeptWithOneWarning(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		table := func(name string) pluginhost.Table {
			return pluginhost.Table{Name: name, Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}}}
		}
		e.start(e.config(&fake{manifest: manifest("p", "1.0.0"), tables: []pluginhost.Table{table("a"), table("b")}}))
		e.exec(`INSERT INTO p__b (id) VALUES (1)`)

		// "b" is gone from the declaration and "c" is new, so there is work.
		m := e.start(e.config(&fake{manifest: manifest("p", "1.0.0"), tables: []pluginhost.Table{table("a"), table("c")}}))
		st := status(t, m, "p")
		require.Equal(t, pluginhost.StateRunning, st.State, st.Reason)
		require.Equal(t, []string{`table "b" is no longer declared; it was left in place with its data`}, st.Warnings)
		require.True(t, e.hasTable("p__c"))
		require.Equal(t, 1, e.count(`SELECT count(*) FROM p__b`))
	})
}
