package pluginhost_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/pluginhost/pluginhost"
)

// BenchmarkPlanWarm100 measures Manager.Plan of 100 plugins, each with a
// table and a migration, on an SQLite file whose schema is already
// applied: the plan finds nothing to do.
func BenchmarkPlanWarm100(b *testing.B) {
	const n = 100
	plugins := make([]pluginhost.Plugin, n)
	for i := range plugins {
		id := fmt.Sprintf("plan-%03d", i)
		prefix := fmt.Sprintf("plan_%03d__", i)
		plugins[i] = &fake{
			manifest: manifest(id, "1.0.0"),
			tables: []pluginhost.Table{{Name: "items", Columns: []pluginhost.Column{
				{Name: "id", PrimaryKey: true}, {Name: "title", NotNull: true}, {Name: "created_at", DefaultNow: true},
			}}},
			migrations: sqlFiles(map[string]string{"0001_title.sql": `CREATE INDEX ` + prefix + `items_title ON ` + prefix + `items (title)`}),
		}
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(b.TempDir(), "plan.db")+"?_busy_timeout=5000&_foreign_keys=1&_journal_mode=WAL")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	cfg := pluginhost.Config{DB: db, Registry: registry(b, plugins...), Logger: discardLogger(), RequireAll: true}
	ctx := context.Background()
	m, err := pluginhost.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := m.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	m, err = pluginhost.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		p, err := m.Plan(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Plugins) != n || !p.Plugins[0].Start || len(p.Plugins[0].Migrations) > 0 || len(p.Plugins[0].Tables) > 0 {
			b.Fatalf("not a warm plan: %+v", p.Plugins[0])
		}
	}
}
