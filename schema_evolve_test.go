package pluginhost_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// tablesPlugin is plugin id at version with the given tables and
// migrations (file name → SQL; nil for none).
func tablesPlugin(id, version string, migrations map[string]string, tables ...pluginhost.Table) *fake {
	p := &fake{manifest: manifest(id, version), tables: tables}
	if migrations != nil {
		p.migrations = sqlFiles(migrations)
	}
	return p
}

// logLines returns the lines of logs with msg and all of want.
func logLines(logs *logBuffer, msg string, want ...string) []string {
	var out []string
	for line := range strings.SplitSeq(logs.String(), "\n") {
		if !strings.Contains(line, `msg="`+msg+`"`) {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(line, w)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// refusedChanges returns the status of plugin id, failed with a
// *SchemaChangeError, and that error.
func refusedChanges(t *testing.T, m *pluginhost.Manager, id string) (pluginhost.PluginStatus, *pluginhost.SchemaChangeError) {
	t.Helper()
	st := status(t, m, id)
	require.Equal(t, pluginhost.StateFailed, st.State, st.Reason)
	var sce *pluginhost.SchemaChangeError
	require.True(t, errors.As(st.Err, &sce), "not a *SchemaChangeError: %v", st.Err)
	require.Equal(t, id, sce.Plugin)
	return st, sce
}

func itemsV1() pluginhost.Table {
	return pluginhost.Table{Name: "items", Columns: []pluginhost.Column{
		{Name: "id", PrimaryKey: true},
		{Name: "title", NotNull: true},
		{Name: "code"},
		{Name: "rank", Type: pluginhost.Integer, NotNull: true, Default: 0},
	}}
}

func TestAdditiveChangesAppliedWithDataKept(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		e.start(e.config(tablesPlugin("p", "1.0.0", nil, itemsV1())))
		e.exec(`INSERT INTO p__items (title, code, rank) VALUES ('a', 'x1', 1), ('b', 'x2', 2)`)
		before := e.ledger("p")

		v2 := itemsV1()
		v2.Columns[1].NotNull = false // dropping NOT NULL
		v2.Columns[2].Unique = true   // the codes are distinct
		v2.Columns = append(v2.Columns,
			pluginhost.Column{Name: "note"},                                                       // nullable
			pluginhost.Column{Name: "color", Default: "red"},                                      // with a default
			pluginhost.Column{Name: "score", Type: pluginhost.Integer, NotNull: true, Default: 5}, // NOT NULL with a default
			pluginhost.Column{Name: "seen_at", DefaultNow: true},                                  // non-constant default
			pluginhost.Column{Name: "touched_at", NotNull: true, DefaultNow: true},                // the same, NOT NULL
			pluginhost.Column{Name: "slug", Unique: true},                                         // unique, nullable
		)
		v2.Indexes = []pluginhost.Index{{Columns: []string{"rank"}}, {Columns: []string{"title", "rank"}, Unique: true}}
		cfg, logs := withLogs(e.config(tablesPlugin("p", "1.1.0", nil, v2)))
		m := e.start(cfg)
		st := status(t, m, "p")
		require.Equal(t, pluginhost.StateRunning, st.State, st.Reason)

		// The rows are kept, with the new columns' defaults.
		require.Equal(t, []string{"a|x1|1|red|5", "b|x2|2|red|5"},
			e.strings(`SELECT title || '|' || code || '|' || rank || '|' || color || '|' || score FROM p__items ORDER BY id`))
		require.Equal(t, 2, e.count(`SELECT count(*) FROM p__items WHERE seen_at IS NOT NULL AND touched_at IS NOT NULL AND note IS NULL AND slug IS NULL`))
		// NOT NULL dropped; defaults work for new rows, DefaultNow included.
		e.exec(`INSERT INTO p__items (title, code) VALUES (NULL, 'x3')`)
		require.Equal(t, 1, e.count(`SELECT count(*) FROM p__items WHERE title IS NULL AND color = 'red' AND score = 5 AND seen_at IS NOT NULL AND touched_at IS NOT NULL`))
		// The unique constraints hold.
		require.Error(t, e.tryExec(`INSERT INTO p__items (title, code) VALUES ('c', 'x1')`), "code is unique")
		e.exec(`INSERT INTO p__items (title, slug) VALUES ('d', 's')`)
		require.Error(t, e.tryExec(`INSERT INTO p__items (title, slug) VALUES ('e', 's')`), "slug is unique")
		require.Error(t, e.tryExec(`INSERT INTO p__items (title, rank) VALUES ('a', 1)`), "(title, rank) is unique")
		require.Subset(t, e.indexes("p__items"), []string{"p__items__ix_rank", "p__items__ux_title__rank"})

		// Recorded: the new definition in the ledger.
		after := e.ledger("p")
		require.NotEqual(t, before["table:items"], after["table:items"])
		// Logged at Info with the DDL.
		require.NotEmpty(t, logLines(logs, "applied a schema change", "level=INFO", "plugin=p", "table=items", `column \"note\" added`, "ALTER TABLE"))
		require.NotEmpty(t, logLines(logs, "applied a schema change", "level=INFO", `column \"title\": not null true → false`))
		require.NotEmpty(t, logLines(logs, "applied a schema change", "level=INFO", "CREATE UNIQUE INDEX"))

		// The next boot has nothing to do.
		cfg, logs = withLogs(e.config(tablesPlugin("p", "1.1.0", nil, v2)))
		m = e.start(cfg)
		require.Equal(t, pluginhost.StateRunning, status(t, m, "p").State)
		require.Empty(t, logLines(logs, "applied a schema change"))
		require.Equal(t, after, e.ledger("p"))
	})
}

// tryExec runs a statement and returns its error.
func (e *env) tryExec(q string, args ...any) error {
	_, err := e.db.ExecContext(t0(), e.bind(q), args...)
	return err
}

func t0() context.Context { return context.Background() }

func TestRefusedChangesGiveTheSQL(t *testing.T) {
	t.Parallel()
	type tc struct {
		name   string
		rows   []string // inserted before the upgrade
		change func(tb *pluginhost.Table)
		want   string            // in the refused change
		sql    map[string]string // dialect → in its SQL
		// useSQL: the refused change's SQL, run as the plugin's migration,
		// lets the new declaration start.
		useSQL bool
	}
	two := []string{`INSERT INTO p__items (title, code, rank) VALUES ('a', '1', 1), ('b', '1', 2)`}
	tests := []tc{
		{
			name: "column removed", rows: two,
			change: func(tb *pluginhost.Table) { tb.Columns = slices.Delete(tb.Columns, 2, 3) },
			want:   `column "code" removed (its data would be lost)`,
			sql:    map[string]string{"sqlite": `ALTER TABLE "p__items" DROP COLUMN "code"`, "postgres": `ALTER TABLE "p__items" DROP COLUMN "code"`},
			useSQL: true,
		},
		{
			name: "column renamed", rows: two,
			change: func(tb *pluginhost.Table) { tb.Columns[2].Name = "ref" },
			want:   `column "code" removed`,
			sql:    map[string]string{"sqlite": `ALTER TABLE "p__items" RENAME COLUMN "code" TO "ref"`, "postgres": `ALTER TABLE "p__items" RENAME COLUMN "code" TO "ref"`},
		},
		{
			name: "type changed", rows: two,
			change: func(tb *pluginhost.Table) { tb.Columns[2].Type = pluginhost.Integer },
			want:   `column "code": type text → integer (its values would be reinterpreted)`,
			sql:    map[string]string{"sqlite": `INSERT INTO "p__items__new" ("id", "title", "code", "rank") SELECT "id", "title", CAST("code" AS INTEGER), "rank" FROM "p__items"`, "postgres": `ALTER TABLE "p__items" ALTER COLUMN "code" TYPE bigint USING "code"::bigint`},
			useSQL: true,
		},
		{
			name: "not null column without default, rows", rows: two,
			change: func(tb *pluginhost.Table) {
				tb.Columns = append(tb.Columns, pluginhost.Column{Name: "size", Type: pluginhost.Integer, NotNull: true})
			},
			want: `column "size" added: it is NOT NULL without a default and the table has rows`,
			sql:  map[string]string{"sqlite": `ALTER TABLE "p__items" ADD COLUMN "size" INTEGER NOT NULL DEFAULT <value>`, "postgres": `UPDATE "p__items" SET "size" = <value>`},
		},
		{
			name: "unique with duplicates", rows: two,
			change: func(tb *pluginhost.Table) { tb.Columns[2].Unique = true },
			want:   `column "code": unique false → true: column "code" would hold duplicate values, e.g. "1"`,
			sql:    map[string]string{"sqlite": `DELETE FROM "p__items" WHERE rowid NOT IN`, "postgres": `DELETE FROM "p__items" WHERE ctid NOT IN`},
			useSQL: true,
		},
		{
			name: "unique index with duplicates", rows: two,
			change: func(tb *pluginhost.Table) {
				tb.Indexes = []pluginhost.Index{{Columns: []string{"code", "title"}}, {Columns: []string{"code"}, Unique: true}}
			},
			want: `unique index (code) added: column "code" would hold duplicate values, e.g. "1"`,
			sql:  map[string]string{"sqlite": `GROUP BY "code"`, "postgres": `GROUP BY "code"`},
		},
		{
			name: "not null set", rows: []string{`INSERT INTO p__items (title) VALUES ('a')`},
			change: func(tb *pluginhost.Table) { tb.Columns[2].NotNull = true },
			want:   `column "code": not null false → true`,
			sql:    map[string]string{"sqlite": `ALTER TABLE "p__items__new" RENAME TO "p__items"`, "postgres": `ALTER TABLE "p__items" ALTER COLUMN "code" SET NOT NULL`},
		},
		{
			name: "primary key changed", rows: two,
			change: func(tb *pluginhost.Table) {
				tb.Columns[0].PrimaryKey = false
				tb.PrimaryKey = []string{"id", "rank"}
			},
			want: `primary key (id) → (id, rank)`,
			sql:  map[string]string{"sqlite": `PRIMARY KEY ("id", "rank")`, "postgres": `ALTER TABLE "p__items" ADD PRIMARY KEY ("id", "rank")`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachEnv(t, func(t *testing.T, e *env) {
				e.start(e.config(tablesPlugin("p", "1.0.0", nil, itemsV1())))
				for _, q := range tt.rows {
					e.exec(q)
				}
				rows := e.strings(`SELECT title || '|' || COALESCE(code, '-') FROM p__items ORDER BY id`)
				before := e.ledger("p")

				v2 := itemsV1()
				tt.change(&v2)
				cfg, logs := withLogs(e.config(tablesPlugin("p", "1.1.0", nil, v2), itemsPlugin("other")))
				m := e.start(cfg)
				st, sce := refusedChanges(t, m, "p")
				require.Equal(t, pluginhost.StateRunning, status(t, m, "other").State)
				var found *pluginhost.SchemaChange
				for i, c := range sce.Changes {
					require.True(t, c.Refused)
					require.Equal(t, "p", c.Plugin)
					require.Equal(t, "items", c.Table)
					if strings.Contains(c.Change, tt.want) {
						found = &sce.Changes[i]
					}
				}
				require.NotNil(t, found, "%q not among %+v", tt.want, sce.Changes)
				require.Contains(t, found.SQL, tt.sql[string(e.dialect)])
				for _, s := range []string{`plugin "p"`, `table "items"`, tt.want, tt.sql[string(e.dialect)], "migration"} {
					require.Contains(t, st.Reason, s)
				}
				require.Contains(t, failureLog(t, logs, "p"), "items")
				require.Empty(t, logLines(logs, "applied a schema change", "plugin=p"))

				// Nothing changed: the rows, the ledger.
				require.Equal(t, rows, e.strings(`SELECT title || '|' || COALESCE(code, '-') FROM p__items ORDER BY id`))
				require.Equal(t, before, e.ledger("p"))

				if !tt.useSQL {
					return
				}
				p := tablesPlugin("p", "1.1.0", map[string]string{"0001_change.sql": found.SQL}, v2)
				m = e.start(e.config(p))
				st = status(t, m, "p")
				require.Equal(t, pluginhost.StateRunning, st.State, st.Reason)
				require.NotEqual(t, before["table:items"], e.ledger("p")["table:items"])
			})
		})
	}
}
