package pluginhost_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// upgradedPlugins returns benchPlugins(n) at version 1.1.0, whose items
// table gains a column with a default and an index: an additive upgrade,
// with no migration written.
func upgradedPlugins(n int) []pluginhost.Plugin {
	out := benchPlugins(n)
	for _, p := range out {
		f := p.(*fake)
		f.manifest = strings.Replace(f.manifest, `version = "1.0.0"`, `version = "1.1.0"`, 1)
		items := &f.tables[0]
		items.Columns = append(items.Columns, pluginhost.Column{Name: "pinned", Type: pluginhost.Boolean, Default: false})
		items.Indexes = append(items.Indexes, pluginhost.Index{Columns: []string{"created_at"}})
	}
	return out
}

// BenchmarkUpgradeBoot measures a boot that applies an additive upgrade
// of n plugins (a new column with a default and a new index on a table
// holding rows, per plugin) against the warm boot that follows it on the
// same database, in the same iteration, and reports their ratio.
func BenchmarkUpgradeBoot(b *testing.B) {
	const n, rows = 10, 100
	for _, d := range []testdb.Dialect{testdb.SQLite, testdb.Postgres} {
		b.Run(fmt.Sprintf("%s/plugins=%d", d, n), func(b *testing.B) {
			v1, v2 := benchPlugins(n), upgradedPlugins(n)
			var upgrade, warm time.Duration
			for b.Loop() {
				b.StopTimer()
				db, _ := testdb.Open(b, d)
				cfg := func(ps []pluginhost.Plugin) pluginhost.Config {
					return pluginhost.Config{DB: db, Registry: registry(b, ps...), Logger: discardLogger(), RequireAll: true}
				}
				startStop(b, cfg(v1))
				for i := range n {
					table, err := pluginhost.PhysicalTableName(fmt.Sprintf("bench-%04d", i), "items")
					if err != nil {
						b.Fatal(err)
					}
					for r := range rows {
						if _, err := db.ExecContext(context.Background(), `INSERT INTO `+table+` (title) VALUES ('row `+fmt.Sprint(r)+`')`); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.StartTimer()
				t0 := time.Now()
				startStop(b, cfg(v2))
				t1 := time.Now()
				startStop(b, cfg(v2))
				upgrade += t1.Sub(t0)
				warm += time.Since(t1)
			}
			b.ReportMetric(float64(upgrade.Nanoseconds())/float64(b.N), "upgrade-ns/boot")
			b.ReportMetric(float64(warm.Nanoseconds())/float64(b.N), "warm-ns/boot")
			b.ReportMetric(float64(upgrade)/float64(warm), "ratio")
		})
	}
}
