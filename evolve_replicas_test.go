package pluginhost_test

import (
	"database/sql"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// Replicas booting together onto an additive upgrade: one of them applies
// it, under the migration lock; the others find it done, and every one
// runs. The rows are kept, the new column has its default, and the
// table's ledger row holds the new definition once.
func TestAdditiveUpgradeWithReplicas(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		n := seedReplicas(d)
		db := newReplicaDB(t, d)
		dsn := db.reset(t)
		v1 := func(int) []pluginhost.Plugin {
			return []pluginhost.Plugin{welcomeSeedOnce(nil)}
		}
		res := bootRound(t, d, dsn, 1, v1, nil)
		require.Equal(t, 1, res.rows)

		upgraded := []pluginhost.Table{{Name: "notes", Columns: append(append([]pluginhost.Column(nil), welcomeTables[0].Columns...),
			pluginhost.Column{Name: "pinned", Type: pluginhost.Boolean, NotNull: true, Default: false}),
			Indexes: []pluginhost.Index{{Columns: []string{"title"}}}}}
		v2 := func(int) []pluginhost.Plugin {
			p := welcomeSeedOnce(nil)
			p.manifest = manifest("welcome", "1.1.0", "[config.mode]", `type = "string"`, `default = "x"`)
			p.tables = upgraded
			return []pluginhost.Plugin{p}
		}
		res = bootRound(t, d, dsn, n, v2, nil)
		require.Equal(t, 1, res.rows, "the welcome note is kept, and seeded once")
		require.Equal(t, []string{"hook:seed-once", "manifest-version", "table:notes"}, res.ledgerRows)

		driver := "sqlite3"
		if d == testdb.Postgres {
			driver = "pgx"
		}
		q, err := sql.Open(driver, dsn)
		require.NoError(t, err)
		defer q.Close()
		var title string
		var pinned bool
		require.NoError(t, q.QueryRow(`SELECT title, pinned FROM welcome__notes`).Scan(&title, &pinned))
		require.Equal(t, "Welcome", title)
		require.False(t, pinned, "the new column has its default on the old row")
		var version, definition string
		require.NoError(t, q.QueryRow(`SELECT (SELECT checksum FROM pluginhost_ledger WHERE line = 'welcome' AND version = 'manifest-version'),
			definition FROM pluginhost_ledger WHERE line = 'welcome' AND version = 'table:notes'`).Scan(&version, &definition))
		require.Equal(t, "1.1.0", version)
		require.Contains(t, definition, `"pinned"`)
	})
}
