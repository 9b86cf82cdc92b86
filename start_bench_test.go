package pluginhost_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/sqlgen"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// benchPlugins returns n plugins with 3 tables, 2 settings and 2 routes
// each.
func benchPlugins(n int) []pluginhost.Plugin {
	out := make([]pluginhost.Plugin, n)
	for i := range out {
		id := fmt.Sprintf("bench-%04d", i)
		out[i] = &fake{
			manifest: manifest(id, "1.0.0", fmt.Sprintf(`
[[settings]]
key = "%[1]s.limit"
type = "number"
default = 10

[[settings]]
key = "%[1]s.title"
type = "string"
default = "hello"
`, id)),
			tables: []pluginhost.Table{
				{Name: "items", Columns: []pluginhost.Column{
					{Name: "id", PrimaryKey: true}, {Name: "title", NotNull: true}, {Name: "created_at", DefaultNow: true},
				}},
				{Name: "tags", Columns: []pluginhost.Column{
					{Name: "id", PrimaryKey: true}, {Name: "name", Unique: true},
				}},
				{Name: "item_tags", PrimaryKey: []string{"item_id", "tag_id"}, Columns: []pluginhost.Column{
					{Name: "item_id", Type: pluginhost.Integer, References: "items.id", OnDelete: "cascade"},
					{Name: "tag_id", Type: pluginhost.Integer, References: "tags.id", OnDelete: "cascade"},
				}},
			},
			routes: func(r chi.Router, h *pluginhost.Host) {
				r.Get("/items", func(http.ResponseWriter, *http.Request) {})
				r.Get("/items/{id}", func(http.ResponseWriter, *http.Request) {})
			},
		}
	}
	return out
}

// BenchmarkStart measures Start (and Shutdown) of n plugins: cold on a new
// database, warm on one that already has every table.
func BenchmarkStart(b *testing.B) {
	for _, d := range []testdb.Dialect{testdb.SQLite, testdb.Postgres} {
		for _, n := range []int{10, 100, 1000} {
			if d == testdb.Postgres && n == 1000 {
				continue // 3,000 tables per iteration: too slow to be worth it
			}
			plugins := benchPlugins(n)
			b.Run(fmt.Sprintf("%s/cold/plugins=%d", d, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					db, _ := testdb.Open(b, d)
					cfg := pluginhost.Config{DB: db, Registry: registry(b, plugins...), Logger: discardLogger(), RequireAll: true}
					b.StartTimer()
					startStop(b, cfg)
				}
				perPlugin(b, n)
			})
			b.Run(fmt.Sprintf("%s/ddl-only/plugins=%d", d, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					b.StopTimer()
					db, _ := testdb.Open(b, d)
					b.StartTimer()
					rawDDL(b, db, d, plugins)
				}
				perPlugin(b, n)
			})
			b.Run(fmt.Sprintf("%s/warm/plugins=%d", d, n), func(b *testing.B) {
				db, _ := testdb.Open(b, d)
				cfg := pluginhost.Config{DB: db, Registry: registry(b, plugins...), Logger: discardLogger(), RequireAll: true}
				startStop(b, cfg)
				b.ReportAllocs()
				b.ResetTimer()
				for b.Loop() {
					startStop(b, cfg)
				}
				perPlugin(b, n)
			})
		}
	}
}

// rawDDL runs only the statements that create the plugins' tables, one
// transaction per plugin: the database's own share of a cold Start, the
// baseline pluginhost's overhead is measured against.
func rawDDL(b *testing.B, db *sql.DB, d testdb.Dialect, plugins []pluginhost.Plugin) {
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	begin := "BEGIN"
	if d == testdb.SQLite {
		begin = "BEGIN IMMEDIATE"
	}
	for _, p := range plugins {
		f := p.(*fake)
		var tables []sqlgen.Table
		for _, t := range f.tables {
			st := sqlgen.Table{Name: t.Name, PrimaryKey: t.PrimaryKey}
			for _, c := range t.Columns {
				st.Columns = append(st.Columns, sqlgen.Column{Name: c.Name, Type: string(c.Type), PrimaryKey: c.PrimaryKey,
					NotNull: c.NotNull, Unique: c.Unique, DefaultNow: c.DefaultNow, References: c.References, OnDelete: c.OnDelete})
			}
			tables = append(tables, st)
		}
		id, _, _ := strings.Cut(strings.TrimPrefix(f.manifest, `id = "`), `"`)
		schema, err := sqlgen.Build(sqlgen.PluginPrefix(id), tables)
		if err != nil {
			b.Fatal(err)
		}
		stmts := append([]string{begin}, schema.Create(sqlgen.Dialect(d))...)
		for _, stmt := range append(stmts, "COMMIT") {
			if _, err := conn.ExecContext(ctx, stmt); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func startStop(b *testing.B, cfg pluginhost.Config) {
	m, err := pluginhost.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	if err := m.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
}

func perPlugin(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/plugin")
}
