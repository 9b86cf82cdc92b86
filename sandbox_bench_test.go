package pluginhost_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// BenchmarkSandbox measures what the database sandbox costs a plugin's
// statements: a primary-key SELECT and an INSERT through the plugin's
// sandboxed DB against the same statements on the host's raw *sql.DB, per
// dialect. Each iteration runs a block of each, one after the other, so
// that both see the same machine; it reports their times per statement and
// the ratio (sandboxed/raw), which the issue bounds at 1.10.
//
// SQLite runs twice: on an in-memory database, where a statement costs
// least and the sandbox's share is largest, and on a file in WAL mode with
// synchronous=NORMAL, as services commonly run it (the example host's
// default is a file).
func BenchmarkSandbox(b *testing.B) {
	open := map[string]func(b *testing.B) *sql.DB{
		"sqlite-memory": func(b *testing.B) *sql.DB { db, _ := testdb.Open(b, testdb.SQLite); return db },
		"sqlite-file": func(b *testing.B) *sql.DB {
			dsn := "file:" + filepath.Join(b.TempDir(), "bench.db") + "?_journal_mode=WAL&_synchronous=NORMAL&_busy_timeout=10000"
			return testdb.OpenAgain(b, testdb.SQLite, dsn)
		},
		"postgres": func(b *testing.B) *sql.DB { db, _ := testdb.Open(b, testdb.Postgres); return db },
	}
	for _, name := range []string{"sqlite-memory", "sqlite-file", "postgres"} {
		b.Run(name, func(b *testing.B) {
			db := open[name](b)
			h := sandboxedHost(b, db)
			plugin, raw := h.DB(), db
			table := plugin.Table("items")
			ctx := context.Background()
			_, err := plugin.ExecContext(ctx, `INSERT INTO `+table+` (title) VALUES ('first')`)
			require.NoError(b, err)
			selectQ := `SELECT id, title FROM ` + table + ` WHERE id = ?`
			insertQ := `INSERT INTO ` + table + ` (title) VALUES (?)`
			b.Run("select", func(b *testing.B) {
				var id int64
				var title string
				compare(b,
					func() error { return raw.QueryRowContext(ctx, plugin.Rebind(selectQ), 1).Scan(&id, &title) },
					func() error { return plugin.QueryRowContext(ctx, selectQ, 1).Scan(&id, &title) })
			})
			b.Run("insert", func(b *testing.B) {
				compare(b,
					func() error { _, err := raw.ExecContext(ctx, plugin.Rebind(insertQ), "x"); return err },
					func() error { _, err := plugin.ExecContext(ctx, insertQ, "x"); return err })
			})
		})
	}
}

// compare runs raw and sandboxed in alternating blocks of compareBlock
// statements and reports their mean times and the ratio of the sandboxed
// to the raw. Blocks, rather than one statement of each in turn: on an
// SQLite file a write that follows another connection's write pays for
// that, which alternating one by one would charge to whichever runs
// second; blocks still share the machine's ups and downs.
func compare(b *testing.B, raw, sandboxed func() error) {
	var tRaw, tBox time.Duration
	nRaw, nBox := 0, 0
	run := func(f func() error, total *time.Duration, n *int) {
		start := time.Now()
		for range compareBlock {
			if err := f(); err != nil {
				b.Fatal(err)
			}
		}
		*total += time.Since(start)
		*n += compareBlock
	}
	for b.Loop() {
		run(raw, &tRaw, &nRaw)
		run(sandboxed, &tBox, &nBox)
	}
	perRaw := float64(tRaw.Nanoseconds()) / float64(nRaw)
	perBox := float64(tBox.Nanoseconds()) / float64(nBox)
	b.ReportMetric(perRaw, "raw-ns/stmt")
	b.ReportMetric(perBox, "sandboxed-ns/stmt")
	b.ReportMetric(perBox/perRaw, "ratio")
}

// compareBlock is the number of statements compare runs of each kind in
// turn.
const compareBlock = 200

// sandboxedHost starts a plugin with one table, in the sandbox, and
// returns its Host.
func sandboxedHost(b *testing.B, db *sql.DB) *pluginhost.Host {
	var h *pluginhost.Host
	p := &fake{manifest: manifest("bench-box", "1.0.0"), tables: []pluginhost.Table{
		{Name: "items", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "title"}}},
	}, init: func(_ context.Context, host *pluginhost.Host) error { h = host; return nil }}
	m, err := pluginhost.New(pluginhost.Config{DB: db, Registry: registry(b, p), Logger: discardLogger(), RequireAll: true})
	require.NoError(b, err)
	require.NoError(b, m.Start(context.Background()))
	b.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	require.Equal(b, "running", string(status(b, m, "bench-box").State))
	require.NotEqual(b, "", status(b, m, "bench-box").Sandbox)
	return h
}
