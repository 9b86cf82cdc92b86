package pluginhost_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
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
		cfg, logs := withLogs(e.config(tablesPlugin("p", "1.0.0", nil, itemsV1())))
		e.start(cfg)
		require.NotEmpty(t, logLines(logs, "created table", "level=DEBUG", "table=items"), "a first install's tables are logged at Debug")
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
			pluginhost.Column{Name: "tag", Unique: true},                                          // unique, with a declared unique index too
		)
		v2.Indexes = []pluginhost.Index{{Columns: []string{"rank"}}, {Columns: []string{"title", "rank"}, Unique: true}, {Columns: []string{"tag"}, Unique: true}}
		extra := pluginhost.Table{Name: "extra", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}}}
		cfg, logs = withLogs(e.config(tablesPlugin("p", "1.1.0", nil, v2, extra)))
		m := e.start(cfg)
		st := status(t, m, "p")
		require.Equal(t, pluginhost.StateRunning, st.State, st.Reason)
		require.NotEmpty(t, logLines(logs, "created table", "level=INFO", "table=extra", "CREATE TABLE"), "an upgrade's new table is logged at Info with its DDL")

		// The rows are kept, with the new columns' defaults.
		require.Equal(t, []string{"a|x1|1|red|5", "b|x2|2|red|5"},
			e.strings(`SELECT title || '|' || code || '|' || rank || '|' || color || '|' || score FROM p__items ORDER BY id`))
		require.Equal(t, 2, e.count(`SELECT count(*) FROM p__items WHERE seen_at IS NOT NULL AND touched_at IS NOT NULL AND note IS NULL AND slug IS NULL`))
		// NOT NULL dropped; defaults work for new rows, DefaultNow included.
		e.exec(`INSERT INTO p__items (title, code) VALUES (NULL, 'x3')`)
		require.Equal(t, 1, e.count(`SELECT count(*) FROM p__items WHERE title IS NULL AND color = 'red' AND score = 5 AND seen_at IS NOT NULL AND touched_at IS NOT NULL`))
		// The unique constraints hold.
		require.Error(t, e.tryExec(`INSERT INTO p__items (title, code) VALUES ('c', 'x1')`), "code is unique")
		e.exec(`INSERT INTO p__items (title, slug, tag) VALUES ('d', 's', 't')`)
		require.Error(t, e.tryExec(`INSERT INTO p__items (title, tag) VALUES ('e', 't')`), "tag is unique")
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
		cfg, logs = withLogs(e.config(tablesPlugin("p", "1.1.0", nil, v2, extra)))
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

// listsAndItems are a parent table and a child that references it with
// ON DELETE CASCADE; grand references items with ON DELETE SET NULL.
func listsAndItems(listName pluginhost.Column, itemCols ...pluginhost.Column) []pluginhost.Table {
	return []pluginhost.Table{
		{Name: "lists", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, listName}},
		{Name: "items", Columns: append([]pluginhost.Column{
			{Name: "id", PrimaryKey: true},
			{Name: "list_id", Type: pluginhost.Integer, NotNull: true, References: "lists.id", OnDelete: "cascade"},
			{Name: "title", NotNull: true},
		}, itemCols...)},
		{Name: "marks", Columns: []pluginhost.Column{
			{Name: "id", PrimaryKey: true},
			{Name: "item_id", Type: pluginhost.Integer, References: "items.id", OnDelete: "set null"},
		}},
	}
}

func TestDropNotNullKeepsEveryRowOfEveryTable(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		v1 := listsAndItems(pluginhost.Column{Name: "name", NotNull: true})
		e.start(e.config(tablesPlugin("p", "1.0.0", nil, v1...)))
		e.exec(`INSERT INTO p__lists (id, name) VALUES (1, 'one'), (2, 'two')`)
		e.exec(`INSERT INTO p__items (id, list_id, title) VALUES (10, 1, 'a'), (11, 1, 'b'), (12, 2, 'c')`)
		e.exec(`INSERT INTO p__marks (id, item_id) VALUES (100, 10), (101, 12)`)

		// NOT NULL dropped on the parent (lists.name) and on the child
		// (items.title), which both have tables referencing them.
		v2 := listsAndItems(pluginhost.Column{Name: "name"})
		v2[1].Columns[2].NotNull = false
		m := e.start(e.config(tablesPlugin("p", "1.1.0", nil, v2...)))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "p").State, status(t, m, "p").Reason)

		require.Equal(t, []string{"1|one", "2|two"}, e.strings(`SELECT id || '|' || name FROM p__lists ORDER BY id`))
		require.Equal(t, []string{"10|1|a", "11|1|b", "12|2|c"}, e.strings(`SELECT id || '|' || list_id || '|' || title FROM p__items ORDER BY id`))
		require.Equal(t, []string{"100|10", "101|12"}, e.strings(`SELECT id || '|' || item_id FROM p__marks ORDER BY id`))

		// NULL is accepted now; the foreign keys still hold and act.
		e.exec(`INSERT INTO p__lists (id, name) VALUES (3, NULL)`)
		e.exec(`INSERT INTO p__items (id, list_id, title) VALUES (13, 3, NULL)`)
		require.Error(t, e.tryExec(`INSERT INTO p__items (id, list_id, title) VALUES (14, 99, 'x')`), "the foreign key is enforced")
		require.Error(t, e.tryExec(`INSERT INTO p__items (id, list_id, title) VALUES (14, NULL, 'x')`), "list_id is still NOT NULL")
		e.exec(`DELETE FROM p__lists WHERE id = 1`)
		require.Equal(t, []string{"12", "13"}, e.strings(`SELECT id FROM p__items ORDER BY id`), "ON DELETE CASCADE still runs")
		require.Equal(t, 1, e.count(`SELECT count(*) FROM p__marks WHERE item_id IS NULL AND id = 100`), "ON DELETE SET NULL still runs")
	})
}

func TestNotNullColumnWithoutDefault(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		e.start(e.config(tablesPlugin("p", "1.0.0", nil, itemsV1())))
		v2 := itemsV1()
		v2.Columns = append(v2.Columns, pluginhost.Column{Name: "size", Type: pluginhost.Integer, NotNull: true})

		// On an empty table it is added.
		m := e.start(e.config(tablesPlugin("p", "1.1.0", nil, v2)))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "p").State, status(t, m, "p").Reason)
		e.exec(`INSERT INTO p__items (title, size) VALUES ('a', 3)`)
		require.Error(t, e.tryExec(`INSERT INTO p__items (title) VALUES ('b')`), "NOT NULL without a default")
		require.Equal(t, 3, e.count(`SELECT size FROM p__items`))

		// On a table with rows it is refused.
		v3 := v2
		v3.Columns = append(slices.Clone(v2.Columns), pluginhost.Column{Name: "weight", Type: pluginhost.Integer, NotNull: true})
		m = e.start(e.config(tablesPlugin("p", "1.2.0", nil, v3)))
		_, sce := refusedChanges(t, m, "p")
		require.Len(t, sce.Changes, 1)
		require.Equal(t, `column "weight" added: it is NOT NULL without a default and the table has rows`, sce.Changes[0].Change)
	})
}

func TestForeignKeyChanges(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		tables := func(itemCols ...pluginhost.Column) []pluginhost.Table {
			return []pluginhost.Table{
				{Name: "lists", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "name"}}},
				{Name: "items", Columns: append([]pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "list_ref", Type: pluginhost.Integer}}, itemCols...)},
			}
		}
		e.start(e.config(tablesPlugin("p", "1.0.0", nil, tables()...)))
		e.exec(`INSERT INTO p__lists (id, name) VALUES (1, 'one')`)
		e.exec(`INSERT INTO p__items (id, list_ref) VALUES (10, 1), (11, 7)`)

		// A foreign key on list_ref: row 11 references list 7, missing.
		v2 := tables()
		v2[1].Columns[1].References = "lists.id"
		m := e.start(e.config(tablesPlugin("p", "1.1.0", nil, v2...)))
		_, sce := refusedChanges(t, m, "p")
		require.Len(t, sce.Changes, 1)
		require.Equal(t, `column "list_ref": references none → lists.id: rows reference lists.id values that "lists" does not hold, e.g. 7`, sce.Changes[0].Change)
		require.Contains(t, sce.Changes[0].SQL, `UPDATE "p__items" SET "list_ref" = NULL WHERE`)

		// Once the row is mended, the same declaration applies it, and a
		// new column with a foreign key (and a default that exists).
		e.exec(`UPDATE p__items SET list_ref = 1 WHERE id = 11`)
		v2[1].Columns = append(v2[1].Columns, pluginhost.Column{Name: "other_list", Type: pluginhost.Integer, References: "lists.id", Default: 1})
		m = e.start(e.config(tablesPlugin("p", "1.1.0", nil, v2...)))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "p").State, status(t, m, "p").Reason)
		require.Equal(t, 2, e.count(`SELECT count(*) FROM p__items WHERE other_list = 1`))
		require.Error(t, e.tryExec(`INSERT INTO p__items (id, list_ref) VALUES (12, 7)`), "list_ref's foreign key is enforced")
		require.Error(t, e.tryExec(`INSERT INTO p__items (id, other_list) VALUES (12, 7)`), "other_list's foreign key is enforced")
		e.exec(`INSERT INTO p__items (id) VALUES (12)`)
		require.Equal(t, 1, e.count(`SELECT other_list FROM p__items WHERE id = 12`))

		// A new column whose default no list holds is refused.
		v3 := tables()
		v3[1].Columns[1].References = "lists.id"
		v3[1].Columns = append(v3[1].Columns, v2[1].Columns[2], pluginhost.Column{Name: "third", Type: pluginhost.Integer, References: "lists.id", Default: 5})
		m = e.start(e.config(tablesPlugin("p", "1.2.0", nil, v3...)))
		_, sce = refusedChanges(t, m, "p")
		require.Len(t, sce.Changes, 1)
		require.Equal(t, `column "third" added: rows reference lists.id values that "lists" does not hold, e.g. 5`, sce.Changes[0].Change)
	})
}

func TestMigrationReconcilesARefusedChange(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		e.start(e.config(tablesPlugin("p", "1.0.0", nil, itemsV1())))
		e.exec(`INSERT INTO p__items (title, code, rank) VALUES ('a', 'x1', 1), ('b', 'x2', 2)`)

		// 1.1.0 renames code to ref (a removal and an addition, refused
		// alone), ships the migration that renames it, and adds a column
		// and an index, which are applied after the migration.
		v2 := itemsV1()
		v2.Columns[2].Name = "ref"
		v2.Columns = append(v2.Columns, pluginhost.Column{Name: "note", Default: "n"})
		v2.Indexes = []pluginhost.Index{{Columns: []string{"ref"}}}
		rename := map[string]string{"0001_rename.sql": `ALTER TABLE p__items RENAME COLUMN code TO ref`}
		cfg, logs := withLogs(e.config(tablesPlugin("p", "1.1.0", rename, v2)))
		m := e.start(cfg)
		require.Equal(t, pluginhost.StateRunning, status(t, m, "p").State, status(t, m, "p").Reason)

		require.Equal(t, []string{"a|x1|n", "b|x2|n"}, e.strings(`SELECT title || '|' || ref || '|' || note FROM p__items ORDER BY id`))
		require.Contains(t, e.indexes("p__items"), "p__items__ix_ref")
		l := e.ledger("p")
		require.Contains(t, l, "0001_rename")
		require.NotEmpty(t, logLines(logs, "applied a schema change", `column \"note\" added`))
		require.Empty(t, logLines(logs, "applied a schema change", `column \"ref\" added`), "the migration made it")

		// The next boot is warm; the ledger's definition is the new one.
		cfg, logs = withLogs(e.config(tablesPlugin("p", "1.1.0", rename, v2)))
		e.start(cfg)
		require.Empty(t, logLines(logs, "applied a schema change"))
		require.Equal(t, l, e.ledger("p"))
	})
}

func TestMigrationThatDoesNotReconcileIsRolledBack(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		e.start(e.config(tablesPlugin("p", "1.0.0", nil, itemsV1())))
		e.exec(`INSERT INTO p__items (title, code, rank) VALUES ('a', 'x1', 1)`)
		before := e.ledger("p")

		// The migration runs, then the table is compared: code is still
		// there, so the rename is refused and the migration rolled back.
		v2 := itemsV1()
		v2.Columns[2].Name = "ref"
		other := map[string]string{"0001_other.sql": `CREATE TABLE p__extra (x INTEGER); UPDATE p__items SET title = 'changed'`}
		m := e.start(e.config(tablesPlugin("p", "1.1.0", other, v2)))
		st, sce := refusedChanges(t, m, "p")
		require.True(t, sce.AfterMigrations)
		require.Contains(t, st.Reason, "compared after its pending migrations")
		require.Equal(t, `column "code" removed (its data would be lost)`, sce.Changes[0].Change)
		require.False(t, e.hasTable("p__extra"), "the migration is rolled back")
		require.Equal(t, []string{"a"}, e.strings(`SELECT title FROM p__items`))
		require.Equal(t, before, e.ledger("p"))
	})
}

func TestDefaultChangedAndIndexDropped(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		v1 := itemsV1()
		v1.Indexes = []pluginhost.Index{{Columns: []string{"code"}}}
		e.start(e.config(tablesPlugin("p", "1.0.0", nil, v1)))
		e.exec(`INSERT INTO p__items (title) VALUES ('a')`)
		require.Contains(t, e.indexes("p__items"), "p__items__ix_code")

		v2 := itemsV1()
		v2.Columns[3].Default = 7      // rank: 0 → 7
		v2.Columns[2].Default = "none" // code: none → 'none'
		v2.Indexes = nil               // the index on code goes
		cfg, logs := withLogs(e.config(tablesPlugin("p", "1.1.0", nil, v2)))
		m := e.start(cfg)
		require.Equal(t, pluginhost.StateRunning, status(t, m, "p").State, status(t, m, "p").Reason)
		require.NotEmpty(t, logLines(logs, "applied a schema change", `column \"rank\": default → 7`))
		require.NotEmpty(t, logLines(logs, "applied a schema change", "index (code) removed", "DROP INDEX"))
		require.NotContains(t, e.indexes("p__items"), "p__items__ix_code")
		e.exec(`INSERT INTO p__items (title) VALUES ('b')`)
		require.Equal(t, []string{"a|0|-", "b|7|none"}, e.strings(`SELECT title || '|' || rank || '|' || COALESCE(code, '-') FROM p__items ORDER BY id`))
	})
}

// A real default with a fraction or an exponent (1.5, -0.25, 1e-05) is one
// literal: on SQLite the edit of the CREATE statement replaces all of it.
func TestRealDefaultChanged(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		table := func(w, x float64) pluginhost.Table {
			return pluginhost.Table{Name: "m", Columns: []pluginhost.Column{
				{Name: "id", PrimaryKey: true},
				{Name: "w", Type: pluginhost.Real, NotNull: true, Default: w},
				{Name: "x", Type: pluginhost.Real, Default: x},
			}}
		}
		e.start(e.config(tablesPlugin("p", "1.0.0", nil, table(1.5, -0.25))))
		e.exec(`INSERT INTO p__m (w, x) VALUES (3, 4)`)
		e.exec(`INSERT INTO p__m (id) VALUES (2)`)
		m := e.start(e.config(tablesPlugin("p", "1.1.0", nil, table(2.5, 1e-05))))
		st := status(t, m, "p")
		require.Equal(t, pluginhost.StateRunning, st.State, st.Reason)
		e.exec(`INSERT INTO p__m (id) VALUES (3)`)
		require.Equal(t, 1, e.count(`SELECT count(*) FROM p__m WHERE id = 1 AND w = 3 AND x = 4`))
		require.Equal(t, 1, e.count(`SELECT count(*) FROM p__m WHERE id = 2 AND w = 1.5 AND x = -0.25`))
		require.Equal(t, 1, e.count(`SELECT count(*) FROM p__m WHERE id = 3 AND w = 2.5 AND x = 0.00001`))

		// And back, with nothing left to do on the boot after.
		m = e.start(e.config(tablesPlugin("p", "1.2.0", nil, table(1.5, -0.25))))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "p").State, status(t, m, "p").Reason)
		e.exec(`INSERT INTO p__m (id) VALUES (4)`)
		require.Equal(t, 1, e.count(`SELECT count(*) FROM p__m WHERE id = 4 AND w = 1.5 AND x = -0.25`))
	})
}

// On SQLite a row written before ADD COLUMN holds no value for the column
// and reads its default as the schema states it: a changed or dropped
// default keeps the values the existing rows held (both dialects alike).
func TestChangedDefaultKeepsTheValuesOfRowsOlderThanTheColumn(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		table := func(cols ...pluginhost.Column) pluginhost.Table {
			return pluginhost.Table{Name: "m", Columns: append([]pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "title"}}, cols...)}
		}
		boot := func(version string, cols ...pluginhost.Column) {
			t.Helper()
			m := e.start(e.config(tablesPlugin("p", version, nil, table(cols...))))
			require.Equal(t, pluginhost.StateRunning, status(t, m, "p").State, status(t, m, "p").Reason)
			require.NoError(t, m.Shutdown(t0()))
		}
		boot("1.0.0")
		e.exec(`INSERT INTO p__m (title) VALUES ('a')`)
		boot("1.1.0", pluginhost.Column{Name: "color", Default: "red"}, pluginhost.Column{Name: "size", Type: pluginhost.Integer})
		e.exec(`INSERT INTO p__m (title) VALUES ('b')`)
		values := `SELECT title || '|' || COALESCE(color, '-') || '|' || COALESCE(CAST(size AS TEXT), '-') FROM p__m ORDER BY id`
		require.Equal(t, []string{"a|red|-", "b|red|-"}, e.strings(values))

		boot("1.2.0", pluginhost.Column{Name: "color", Default: "blue"}, pluginhost.Column{Name: "size", Type: pluginhost.Integer, Default: 3})
		require.Equal(t, []string{"a|red|-", "b|red|-"}, e.strings(values), "a changed default changes no row")
		boot("1.3.0", pluginhost.Column{Name: "color"}, pluginhost.Column{Name: "size", Type: pluginhost.Integer, Default: 3})
		require.Equal(t, []string{"a|red|-", "b|red|-"}, e.strings(values), "a dropped default changes no row")
		e.exec(`INSERT INTO p__m (title) VALUES ('c')`)
		require.Equal(t, []string{"a|red|-", "b|red|-", "c|-|3"}, e.strings(values))
	})
}

// A migration that adds a self-referencing column without naming the
// referenced column (REFERENCES t, its primary key), reconciled with a
// declaration that says nodes.id: the catalog is read once for the table,
// not again for each table it references, itself included.
func TestReconcileASelfReferenceWithoutAColumn(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		v1 := pluginhost.Table{Name: "nodes", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "title"}}}
		e.start(e.config(tablesPlugin("p", "1.0.0", nil, v1)))
		e.exec(`INSERT INTO p__nodes (title) VALUES ('root')`)

		// 1.1.0 renames title to name (refused alone, so the migration
		// runs first) and adds parent, referencing the table itself.
		v2 := pluginhost.Table{Name: "nodes", Columns: []pluginhost.Column{
			{Name: "id", PrimaryKey: true}, {Name: "name"},
			{Name: "parent", Type: pluginhost.Integer, References: "nodes.id"},
		}}
		parentType := "INTEGER"
		if e.dialect == testdb.Postgres {
			parentType = "bigint"
		}
		migration := map[string]string{"0001_tree.sql": `ALTER TABLE p__nodes RENAME COLUMN title TO name;
ALTER TABLE p__nodes ADD COLUMN parent ` + parentType + ` REFERENCES p__nodes`}
		m := e.start(e.config(tablesPlugin("p", "1.1.0", migration, v2)))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "p").State, status(t, m, "p").Reason)
		require.Equal(t, []string{"root"}, e.strings(`SELECT name FROM p__nodes`))
	})
}
