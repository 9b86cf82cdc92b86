package pluginhost_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// The manifest version is recorded with the plugin's schema, in the
// "manifest-version" ledger row, and a boot of the same version writes
// nothing; a plugin with no schema of its own gets its version recorded
// too.
func TestManifestVersionIsRecorded(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		bare := &fake{manifest: manifest("bare", "0.3.0")}
		m := e.start(e.config(itemsPlugin("p"), bare))
		require.NoError(t, m.Shutdown(context.Background()))
		require.Equal(t, "1.0.0", e.ledger("p")["manifest-version"])
		require.Equal(t, map[string]string{"manifest-version": "0.3.0"}, e.ledger("bare"))

		before := e.ledgerDump()
		m = e.start(e.config(itemsPlugin("p"), bare))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "bare").State)
		require.Equal(t, before, e.ledgerDump(), "the same version again writes nothing")
	})
}

// A plugin whose ledger has rows but no version row (installed before
// versions were recorded) gets the row written, whatever its version, and
// neither Install nor Upgrade runs; the boot after that is a warm boot
// again: no transaction, no lock, no write.
func TestVersionRowWrittenForAnEarlierInstall(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		m := e.start(e.config(&fake{manifest: welcomeManifest, tables: welcomeTables}, itemsPlugin("other")))
		require.NoError(t, m.Shutdown(context.Background()))
		e.exec(`DELETE FROM pluginhost_ledger WHERE version = 'manifest-version'`)
		require.Equal(t, []string{"table:notes"}, sortedKeys(e.ledger("welcome")), "the ledger of an install from before versions")

		var calls hookCalls
		p := welcomeAt("1.4.0", &calls, nil)
		m = e.start(e.config(p, itemsPlugin("other")))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State, status(t, m, "welcome").Reason)
		require.NoError(t, m.Shutdown(context.Background()))
		require.Equal(t, []string{"seed once"}, calls.list(), "no Install (its schema exists), no Upgrade (from what?); SeedOnce, new to it, runs")
		require.Equal(t, map[string]string{"table:notes": e.ledger("welcome")["table:notes"], "hook:seed-once": "", "manifest-version": "1.4.0"}, e.ledger("welcome"))
		require.Equal(t, "1.0.0", e.ledger("other")["manifest-version"])

		db, rec := testdb.OpenCounting(t, e.dialect, e.dsn)
		cfg := e.config(p, itemsPlugin("other"))
		cfg.DB, cfg.Dialect = db, pluginhost.Dialect(e.dialect)
		m = e.start(cfg)
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State)
		for _, s := range rec.Statements() {
			s = strings.TrimSpace(s)
			require.NotContains(t, s, "advisory", "a warm boot takes no lock")
			require.NotContains(t, s, "BEGIN", "a warm boot writes nothing")
			require.False(t, strings.HasPrefix(s, "INSERT"), "a warm boot writes nothing: %s", s)
		}
		require.Len(t, calls.list(), 1)
	})
}

// A manifest version lower than the recorded one fails the plugin, with an
// error naming both versions and wrapping ErrDowngrade, and changes
// nothing; Config.AllowDowngrade lets it boot, recording the lower
// version, logged at Warn, with no hook run. A later upgrade runs Upgrade
// from the lower version.
func TestDowngradeIsRefusedUnlessAllowed(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var calls hookCalls
		m := e.start(e.config(welcomeAt("1.2.0", &calls, nil), itemsPlugin("other")))
		require.NoError(t, m.Shutdown(context.Background()))
		rows := e.titles()

		before := e.ledgerDump()
		m = e.start(e.config(welcomeAt("1.1.9", &calls, nil), itemsPlugin("other")))
		st := status(t, m, "welcome")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.ErrorIs(t, st.Err, pluginhost.ErrDowngrade)
		require.Contains(t, st.Reason, "manifest version 1.1.9 is lower than 1.2.0")
		require.Contains(t, st.Reason, `list "welcome" in Config.AllowDowngrade`)
		require.Equal(t, pluginhost.StateRunning, status(t, m, "other").State)
		require.Equal(t, before, e.ledgerDump(), "a refused downgrade writes nothing")
		require.Equal(t, rows, e.titles())
		require.NoError(t, m.Shutdown(context.Background()))

		// A Required plugin's downgrade fails Start with it.
		cfg := e.config(welcomeAt("1.1.9", &calls, nil))
		cfg.Required = []string{"welcome"}
		_, err := e.tryStart(cfg)
		require.ErrorIs(t, err, pluginhost.ErrDowngrade)
		require.ErrorIs(t, err, pluginhost.ErrRequired)

		// Allowed: it boots on the data as it is, and records 1.1.9.
		logs := e.logs.String()
		cfg = e.config(welcomeAt("1.1.9", &calls, nil), itemsPlugin("other"))
		cfg.AllowDowngrade = []string{"welcome"}
		m = e.start(cfg)
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State, status(t, m, "welcome").Reason)
		require.NoError(t, m.Shutdown(context.Background()))
		require.Equal(t, "1.1.9", e.ledger("welcome")["manifest-version"])
		require.Contains(t, strings.TrimPrefix(e.logs.String(), logs),
			`level=WARN msg="downgraded: recorded the lower manifest version, as Config.AllowDowngrade allows" plugin=welcome from=1.2.0 to=1.1.9`)
		require.Equal(t, []string{"install", "seed once"}, calls.list(), "a downgrade runs no hook")
		require.Equal(t, rows, e.titles(), "its data is kept")

		// Equal version, still allowed: nothing.
		before = e.ledgerDump()
		m = e.start(cfg)
		require.NoError(t, m.Shutdown(context.Background()))
		require.Equal(t, before, e.ledgerDump())

		// Up again: 1.3.0 upgrades from 1.1.9; 1.2.0 again would not run
		// its upgrade a second time (no upgrade to 1.2.0 ran: it was the
		// install's version).
		m = e.start(e.config(welcomeAt("1.3.0", &calls, nil)))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State, status(t, m, "welcome").Reason)
		require.Equal(t, []string{"install", "seed once", "upgrade from 1.1.9"}, calls.list())
		require.NoError(t, m.Shutdown(context.Background()))
	})
}

// An Upgrade runs once per database per version upgraded to: after a
// downgrade Config.AllowDowngrade let through, upgrading again to that
// version records it but does not run its Upgrade again.
func TestUpgradeToAVersionRunsOnceEvenAfterADowngrade(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var calls hookCalls
		for _, v := range []string{"1.0.0", "2.0.0"} {
			m := e.start(e.config(welcomeAt(v, &calls, nil)))
			require.NoError(t, m.Shutdown(context.Background()))
		}
		cfg := e.config(welcomeAt("1.0.0", &calls, nil))
		cfg.AllowDowngrade = []string{"welcome"}
		m := e.start(cfg)
		require.NoError(t, m.Shutdown(context.Background()))
		require.Equal(t, "1.0.0", e.ledger("welcome")["manifest-version"])

		m = e.start(e.config(welcomeAt("2.0.0", &calls, nil)))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State, status(t, m, "welcome").Reason)
		require.Equal(t, []string{"install", "seed once", "upgrade from 1.0.0"}, calls.list())
		require.Equal(t, "2.0.0", e.ledger("welcome")["manifest-version"])
	})
}

// Versions compare by semantic-version precedence, not as text: 1.10.0 is
// higher than 1.9.0, a pre-release lower than its release, and build
// metadata does not count (1.0.0+build.2 equals 1.0.0: nothing runs).
func TestVersionsCompareAsSemver(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var calls hookCalls
		boot := func(v string) pluginhost.PluginStatus {
			t.Helper()
			m := e.start(e.config(welcomeAt(v, &calls, nil)))
			st := status(t, m, "welcome")
			require.NoError(t, m.Shutdown(context.Background()))
			return st
		}
		require.Equal(t, pluginhost.StateRunning, boot("1.9.0").State)
		require.Equal(t, pluginhost.StateRunning, boot("1.10.0-rc.1").State)
		require.Equal(t, pluginhost.StateRunning, boot("1.10.0").State)
		before := e.ledgerDump()
		require.Equal(t, pluginhost.StateRunning, boot("1.10.0+build.2").State)
		require.Equal(t, before, e.ledgerDump(), "build metadata is no version change")
		st := boot("1.10.0-rc.2")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.ErrorIs(t, st.Err, pluginhost.ErrDowngrade)
		require.Equal(t, []string{"install", "seed once", "upgrade from 1.9.0", "upgrade from 1.10.0-rc.1"}, calls.list())
	})
}

// Enable goes through the same schema path: a downgraded plugin enabled at
// runtime is refused with ErrDowngrade and fails, unless
// Config.AllowDowngrade names it.
func TestDowngradeOnEnable(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var calls hookCalls
		m := e.start(e.config(welcomeAt("2.0.0", &calls, nil)))
		require.NoError(t, m.Disable(context.Background(), "welcome")) // persisted
		require.NoError(t, m.Shutdown(context.Background()))

		m = e.start(e.config(welcomeAt("1.0.0", &calls, nil)))
		require.Equal(t, pluginhost.StateDisabled, status(t, m, "welcome").State)
		err := m.Enable(context.Background(), "welcome")
		require.ErrorIs(t, err, pluginhost.ErrDowngrade)
		require.ErrorContains(t, err, "manifest version 1.0.0 is lower than 2.0.0")
		require.Equal(t, pluginhost.StateFailed, status(t, m, "welcome").State)
		require.Equal(t, "2.0.0", e.ledger("welcome")["manifest-version"])
		require.NoError(t, m.Shutdown(context.Background()))

		cfg := e.config(welcomeAt("1.0.0", &calls, nil))
		cfg.AllowDowngrade = []string{"welcome"}
		m = e.start(cfg)
		// The operator's Enable was persisted: this Start runs it.
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State, status(t, m, "welcome").Reason)
		require.Equal(t, "1.0.0", e.ledger("welcome")["manifest-version"])
	})
}

// Config.AllowDowngrade takes plugin ids; anything else is refused by New,
// naming the field and the entry.
func TestAllowDowngradeIsChecked(t *testing.T) {
	t.Parallel()
	db := testdb.OpenSQLite(t)
	_, err := pluginhost.New(pluginhost.Config{DB: db, Registry: pluginhost.NewRegistry(), AllowDowngrade: []string{"notes", "My_Plugin", ""}})
	require.ErrorContains(t, err, `pluginhost: Config.AllowDowngrade[1]: "My_Plugin" is not a valid plugin id`)
	require.ErrorContains(t, err, `pluginhost: Config.AllowDowngrade[2]: must not be empty`)
	require.NotContains(t, err.Error(), "AllowDowngrade[0]")
}

// Install and Upgrade written as the issue wrote them, without the *Tx,
// are never called: each is a warning naming the signature wanted.
type txlessHooks struct{ fake }

func (p *txlessHooks) Install(ctx context.Context, h *pluginhost.Host) error              { return nil }
func (p *txlessHooks) Upgrade(ctx context.Context, h *pluginhost.Host, from string) error { return nil }
func (p *txlessHooks) Manifest() []byte                                                   { return []byte(manifest("txless", "1.0.0")) }

func TestTxlessInstallAndUpgradeAreWarnings(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		m := e.start(e.config(&txlessHooks{}))
		st := status(t, m, "txless")
		require.Equal(t, pluginhost.StateRunning, st.State)
		require.ElementsMatch(t, []string{
			"method Install(context.Context, *pluginhost.Host) error does not match pluginhost.Installer, so it is never called: want Install(context.Context, *pluginhost.Host, *pluginhost.Tx) error",
			"method Upgrade(context.Context, *pluginhost.Host, string) error does not match pluginhost.Upgrader, so it is never called: want Upgrade(context.Context, *pluginhost.Host, *pluginhost.Tx, string) error",
		}, st.Warnings)
		require.NotContains(t, e.ledger("txless"), "hook:install")
	})
}

// A downgrade Config.AllowDowngrade lets through boots the lower version on
// the tables as the higher one left them, even when that one added a
// column, an index and a table: nothing is altered or refused, the tables
// are warnings, the next boot has nothing to do, and upgrading again finds
// its tables as it made them.
func TestAllowedDowngradeKeepsTheHigherVersionsTables(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		v1 := itemsV1()
		v2 := itemsV1()
		v2.Columns = append(v2.Columns, pluginhost.Column{Name: "note"})
		v2.Indexes = []pluginhost.Index{{Columns: []string{"rank"}}}
		extra := pluginhost.Table{Name: "extra", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "v"}}}
		boot := func(cfg pluginhost.Config) pluginhost.PluginStatus {
			t.Helper()
			m := e.start(cfg)
			st := status(t, m, "p")
			require.Equal(t, pluginhost.StateRunning, st.State, st.Reason)
			require.NoError(t, m.Shutdown(context.Background()))
			return st
		}
		boot(e.config(tablesPlugin("p", "1.0.0", nil, v1)))
		boot(e.config(tablesPlugin("p", "1.1.0", nil, v2, extra)))
		e.exec(`INSERT INTO p__items (title, note) VALUES ('a', 'n')`)
		e.exec(`INSERT INTO p__extra (v) VALUES ('x')`)
		indexes := e.indexes("p__items")
		require.Contains(t, indexes, "p__items__ix_rank")

		down := e.config(tablesPlugin("p", "1.0.0", nil, v1))
		down.AllowDowngrade = []string{"p"}
		cfg, logs := withLogs(down)
		st := boot(cfg)
		require.Empty(t, logLines(logs, "applied a schema change"), "a downgrade changes no table")
		require.Contains(t, st.Warnings, `table "items" is declared differently by this version; the downgrade from 1.1.0 kept it as it is`)
		require.Contains(t, st.Warnings, `table "extra" is not declared by this version; it was left in place with its data by the downgrade from 1.1.0`)
		require.Equal(t, "1.0.0", e.ledger("p")["manifest-version"])
		require.Equal(t, []string{"a|n"}, e.strings(`SELECT title || '|' || note FROM p__items`))
		require.Equal(t, []string{"x"}, e.strings(`SELECT v FROM p__extra`))
		require.Equal(t, indexes, e.indexes("p__items"))

		// The next boot of 1.0.0 has nothing to do, and says the same.
		before := e.ledgerDump()
		cfg, logs = withLogs(down)
		st = boot(cfg)
		require.Equal(t, before, e.ledgerDump())
		require.Empty(t, logLines(logs, "applied a schema change"))
		require.Contains(t, st.Warnings, `table "extra" is not declared by this version; it was left in place with its data by the downgrade from 1.1.0`)

		// Up again to 1.2.0 with 1.1.0's tables: they are as it made them.
		cfg, logs = withLogs(e.config(tablesPlugin("p", "1.2.0", nil, v2, extra)))
		st = boot(cfg)
		require.Empty(t, logLines(logs, "applied a schema change"))
		require.Empty(t, st.Warnings)
		require.Equal(t, []string{"a|n"}, e.strings(`SELECT title || '|' || note FROM p__items`))
		require.Equal(t, []string{"x"}, e.strings(`SELECT v FROM p__extra`))
		before = e.ledgerDump()
		boot(e.config(tablesPlugin("p", "1.2.0", nil, v2, extra)))
		require.Equal(t, before, e.ledgerDump(), "a warm boot after")
	})
}

// Config.Unsandboxed lists plugin ids too: one that is not an id is an
// error naming the field and the entry, not a plugin silently left in the
// sandbox.
func TestUnsandboxedIsChecked(t *testing.T) {
	t.Parallel()
	db := testdb.OpenSQLite(t)
	_, err := pluginhost.New(pluginhost.Config{DB: db, Registry: pluginhost.NewRegistry(), Unsandboxed: []string{"notes", "my_plugin"}})
	require.ErrorContains(t, err, `pluginhost: Config.Unsandboxed[1]: "my_plugin" is not a valid plugin id`)
	require.NotContains(t, err.Error(), "Unsandboxed[0]")
}
