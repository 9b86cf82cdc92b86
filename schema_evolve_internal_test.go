package pluginhost

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost/internal/dialect"
	"github.com/pluginhost/pluginhost/internal/migrate"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// tablesOnly is a plugin that declares tables.
type tablesOnly struct {
	version string
	tables  []Table
}

func (p *tablesOnly) Manifest() []byte {
	return fmt.Appendf(nil, "id = \"p\"\nname = \"P\"\nversion = %q\n", p.version)
}
func (p *tablesOnly) Tables() []Table { return p.tables }

// catalogAndRows is everything planning could change: the catalog and the
// plugin's rows.
func catalogAndRows(t *testing.T, db *sql.DB, d Dialect) []string {
	t.Helper()
	queries := []string{`SELECT type || ' ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master ORDER BY name`}
	if d == Postgres {
		queries = []string{
			`SELECT table_name || ' ' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || COALESCE(column_default, '') FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY 1`,
			`SELECT indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1`,
		}
	}
	queries = append(queries, `SELECT line || ' ' || version || ' ' || checksum FROM pluginhost_ledger ORDER BY 1`,
		`SELECT id || ' ' || COALESCE(code, '') FROM p__items ORDER BY id`)
	var out []string
	for _, q := range queries {
		rows, err := db.Query(q)
		require.NoError(t, err, q)
		for rows.Next() {
			var s string
			require.NoError(t, rows.Scan(&s))
			out = append(out, s)
		}
		require.NoError(t, rows.Err())
		rows.Close()
	}
	return out
}

// TestPlanPluginSchemaChangesNothing: planning reports the additive and
// refused changes, running only reads, without a transaction.
func TestPlanPluginSchemaChangesNothing(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		ctx := context.Background()
		db, _ := testdb.Open(t, d)
		v1 := &tablesOnly{"1.0.0", []Table{{Name: "items", Columns: []Column{{Name: "id", PrimaryKey: true}, {Name: "code"}}}}}
		reg := NewRegistry()
		require.NoError(t, reg.Register(v1))
		m, err := New(Config{DB: db, Registry: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		require.NoError(t, err)
		require.NoError(t, m.Start(ctx))
		require.NoError(t, m.Shutdown(ctx))
		_, err = db.Exec(`INSERT INTO p__items (code) VALUES ('a'), ('a')`)
		require.NoError(t, err)
		before := catalogAndRows(t, db, d)

		plan := func(tables ...Table) (*schemaPlan, error) {
			conn, err := db.Conn(ctx)
			require.NoError(t, err)
			defer conn.Close()
			l, _, err := migrate.Load(ctx, conn, func(ctx context.Context, name string) (bool, error) {
				return dialect.TableExists(ctx, d, conn, name)
			})
			require.NoError(t, err)
			decl, err := declare(&plugin{id: "p", plugin: &tablesOnly{"1.1.0", tables}}, d)
			require.NoError(t, err)
			return planPluginSchema(ctx, conn, d, "p", decl, l, false)
		}
		items := v1.tables[0]
		additive := items
		additive.Columns = append([]Column{}, items.Columns...)
		additive.Columns = append(additive.Columns, Column{Name: "note", Default: "n"})
		pl, err := plan(additive, Table{Name: "more", Columns: []Column{{Name: "id", PrimaryKey: true}}})
		require.NoError(t, err)
		require.Equal(t, []string{"table added", `column "note" added`}, changeTexts(pl.changes))
		require.False(t, pl.changes[1].Refused)

		refused := additive
		refused.Columns = append([]Column{}, additive.Columns...)
		refused.Columns[1].Unique = true // 'a' twice
		pl, err = plan(refused)
		var sce *SchemaChangeError
		require.True(t, errors.As(err, &sce), "%v", err)
		require.Equal(t, []string{`column "code": unique false → true: column "code" would hold duplicate values, e.g. "a"`, `column "note" added`}, changeTexts(pl.changes))
		require.Len(t, sce.Changes, 1)

		require.Equal(t, before, catalogAndRows(t, db, d), "planning changed nothing")
	})
}

func changeTexts(cs []SchemaChange) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Change)
	}
	return out
}
