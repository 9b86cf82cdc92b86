package pluginhost_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// Migrate applies the core's and the plugins' schema, once-hooks included,
// and stops: no settings phase, no Seed, no Init. The Manager is shut down
// afterwards. A Start on another Manager then finds the schema work done:
// its plan lists none, and its statements take no lock and create nothing.
func TestMigrateAppliesTheSchemaAndStops(t *testing.T) {
	t.Parallel()
	eachPlanEnv(t, func(t *testing.T, e *planEnv) {
		ctx := context.Background()
		var c calls
		m, err := pluginhost.New(e.config(2, memo(2, &c)[:2]...)) // memo and off
		require.NoError(t, err)
		require.NoError(t, m.Migrate(ctx))

		require.True(t, e.hasTable("app_roles"), "core migrations applied")
		require.True(t, e.hasTable("memo__items"))
		require.True(t, e.hasTable("memo__tags"))
		require.Contains(t, e.ledger("memo"), "0002_tags_index")
		require.Equal(t, int32(1), c.seedOnce.Load(), "the once-hook belongs to the schema")
		require.Equal(t, 1, e.count(`SELECT count(*) FROM memo__items`), "its row committed")
		require.Zero(t, c.seed.Load(), "Migrate runs no Seed")
		require.Zero(t, c.init.Load(), "Migrate runs no Init")
		require.Zero(t, e.count(`SELECT count(*) FROM pluginhost_settings`), "no settings phase: no default is stored")
		require.False(t, e.hasTable("off__items"), "a disabled plugin's schema is not touched")

		st := status(t, m, "memo")
		require.Equal(t, pluginhost.StateStopped, st.State)
		require.Contains(t, st.Reason, "migrate only")
		require.Empty(t, st.Routes)
		require.Equal(t, pluginhost.StateDisabled, status(t, m, "off").State)
		require.ErrorIs(t, m.Start(ctx), pluginhost.ErrClosed, "the Manager is shut down after Migrate")
		require.ErrorIs(t, m.Migrate(ctx), pluginhost.ErrClosed)
		require.ErrorIs(t, m.Settings().Set(ctx, "memo.limit", 3), pluginhost.ErrClosed)
		require.NoError(t, m.Shutdown(ctx))

		// Another Manager's Start finds the schema done.
		cfg := e.config(2, memo(2, &c)[:2]...) // memo and off
		p := e.plan(cfg)
		require.Empty(t, p.Core.LibraryMigrations)
		require.Empty(t, p.Core.Migrations)
		memo := pluginPlan(t, p, "memo")
		require.True(t, memo.Start)
		require.Empty(t, memo.Tables)
		require.Empty(t, memo.Migrations)
		require.Empty(t, memo.OnceHooks)
		require.NotEmpty(t, memo.Settings, "the settings are Start's to add")

		db, rec := testdb.OpenCounting(t, e.dialect, e.dsn)
		cfg.DB, cfg.Dialect = db, pluginhost.Dialect(e.dialect)
		warm := e.start(cfg)
		require.Equal(t, pluginhost.StateRunning, status(t, warm, "memo").State)
		for _, s := range rec.Statements() {
			require.NotContains(t, s, "advisory", "no schema work: no lock")
			require.NotContains(t, s, "pluginhost_ledger (", "no schema work: no ledger row")
			for _, w := range []string{"CREATE", "ALTER", "GRANT", "DROP"} {
				require.False(t, strings.HasPrefix(strings.TrimSpace(s), w), "no schema work: %s", s)
			}
		}
		require.Equal(t, int32(1), c.seedOnce.Load(), "the once-hook ran once")
		require.Equal(t, int32(1), c.seed.Load(), "Start seeds")
		require.Equal(t, int32(1), c.init.Load())
		require.Equal(t, 1, e.count(`SELECT count(*) FROM pluginhost_settings WHERE key = 'memo.limit'`), "Start stored the defaults")
	})
}

// A plugin whose schema fails fails Migrate, which names it, after the
// other plugins' schema is applied; so does a manifest that does not
// parse. Migrate after Start is refused.
func TestMigrateFailsWhenAPluginFails(t *testing.T) {
	t.Parallel()
	eachPlanEnv(t, func(t *testing.T, e *planEnv) {
		ctx := context.Background()
		var c calls
		bad := &fake{manifest: manifest("bad", "1.0.0"), migrations: sqlFiles(map[string]string{"0001_oops.sql": `CREATE TABLE bad__x (`})}
		m, err := pluginhost.New(e.config(1, append(memo(1, &c), bad)...))
		require.NoError(t, err)
		err = m.Migrate(ctx)
		require.ErrorIs(t, err, pluginhost.ErrStartFailed)
		require.Contains(t, err.Error(), `plugin "bad" failed: schema: migration 0001_oops`)
		require.Contains(t, err.Error(), `plugin "orphan" failed`, "a plugin that fails to resolve fails Migrate too")
		require.NotContains(t, err.Error(), `"memo"`)
		require.True(t, e.hasTable("memo__items"), "the other plugins are migrated")
		require.Equal(t, pluginhost.StateFailed, status(t, m, "bad").State)

		started := e.start(e.config(1, memo(1, &c)...))
		require.ErrorIs(t, started.Migrate(ctx), pluginhost.ErrAlreadyStarted)
		require.Equal(t, pluginhost.StateRunning, status(t, started, "memo").State)
	})
}

// A required plugin that does not make it through its schema fails
// Migrate with ErrRequired, as it fails Start.
func TestMigrateRequiredPlugin(t *testing.T) {
	t.Parallel()
	eachPlanEnv(t, func(t *testing.T, e *planEnv) {
		bad := &fake{manifest: manifest("bad", "1.0.0"), migrations: sqlFiles(map[string]string{"0001_oops.sql": `CREATE TABLE bad__x (`})}
		cfg := e.config(1, bad)
		cfg.Required = []string{"bad"}
		m, err := pluginhost.New(cfg)
		require.NoError(t, err)
		err = m.Migrate(context.Background())
		require.ErrorIs(t, err, pluginhost.ErrRequired)
		require.True(t, errors.Is(err, pluginhost.ErrRequired))
		require.NoError(t, m.Shutdown(context.Background()))
	})
}
