package pluginhost_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// A warm boot of 100 plugins (300 tables) decides from one read of the
// ledger that nothing is to be done: a handful of statements in all, no
// transaction, no migration lock. The sandbox adds one read of the catalog
// for all plugins (two on PostgreSQL, with the roles) and, on SQLite, the
// two statements of its probe for a statement cache; it grants nothing.
func TestWarmBootIsAHandfulOfQueriesAndNoLock(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		plugins := benchPlugins(100)
		cold := e.start(pluginhost.Config{DB: e.db, Registry: registry(t, plugins...), Logger: discardLogger(), RequireAll: true})
		require.NoError(t, cold.Shutdown(context.Background()))

		db, rec := testdb.OpenCounting(t, e.dialect, e.dsn)
		warm := e.start(pluginhost.Config{DB: db, Dialect: pluginhost.Dialect(e.dialect), Registry: registry(t, plugins...),
			Logger: discardLogger(), RequireAll: true})
		stmts := rec.Statements()
		t.Logf("a warm boot of 100 plugins ran %d statements: %q", len(stmts), stmts)
		require.LessOrEqual(t, len(stmts), 9, "statements of a warm boot: %q", stmts)
		for _, s := range stmts {
			require.NotContains(t, s, "advisory", "a warm boot takes no lock")
			require.NotContains(t, s, "BEGIN", "a warm boot writes nothing")
			for _, w := range []string{"GRANT", "REVOKE", "ALTER", "ROLE "} {
				require.False(t, strings.HasPrefix(strings.TrimSpace(s), w), "a warm boot changes no privilege: %s", s)
			}
			require.False(t, strings.HasPrefix(strings.TrimSpace(s), "INSERT"), "a warm boot writes nothing: %s", s)
			require.False(t, strings.HasPrefix(strings.TrimSpace(s), "CREATE"), "a warm boot creates nothing: %s", s)
		}
		for _, st := range warm.Status() {
			require.Equal(t, pluginhost.StateRunning, st.State, st.ID)
		}
	})
}
