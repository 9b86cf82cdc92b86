package pluginhost_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// versionedFake is the welcome plugin at some version with Install,
// Upgrade and SeedOnce hooks; a nil hook does nothing.
type versionedFake struct {
	*fake
	install  func(ctx context.Context, h *pluginhost.Host, tx *pluginhost.Tx) error
	upgrade  func(ctx context.Context, h *pluginhost.Host, tx *pluginhost.Tx, from string) error
	seedOnce func(ctx context.Context, h *pluginhost.Host, tx *pluginhost.Tx) error
}

var (
	_ pluginhost.Installer = (*versionedFake)(nil)
	_ pluginhost.Upgrader  = (*versionedFake)(nil)
	_ pluginhost.SeedOncer = (*versionedFake)(nil)
)

func (f *versionedFake) Install(ctx context.Context, h *pluginhost.Host, tx *pluginhost.Tx) error {
	if f.install == nil {
		return nil
	}
	return f.install(ctx, h, tx)
}

func (f *versionedFake) Upgrade(ctx context.Context, h *pluginhost.Host, tx *pluginhost.Tx, from string) error {
	if f.upgrade == nil {
		return nil
	}
	return f.upgrade(ctx, h, tx, from)
}

func (f *versionedFake) SeedOnce(ctx context.Context, h *pluginhost.Host, tx *pluginhost.Tx) error {
	if f.seedOnce == nil {
		return nil
	}
	return f.seedOnce(ctx, h, tx)
}

// hookCalls records the calls of a versionedFake's hooks, in order, across
// the Managers that share it.
type hookCalls struct {
	mu    sync.Mutex
	calls []string
}

func (c *hookCalls) add(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, s)
}

func (c *hookCalls) list() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

// welcomeAt is the welcome plugin at version, with its notes table and
// migrations, whose hooks record their calls in calls and each insert a
// note titled after the hook ("install", "upgrade from 1.0.0",
// "seed once") through the schema transaction.
func welcomeAt(version string, calls *hookCalls, migrations map[string]string) *versionedFake {
	note := func(ctx context.Context, tx *pluginhost.Tx, title string) error {
		calls.add(title)
		_, err := tx.ExecContext(ctx, `INSERT INTO `+tx.Table("notes")+` (title, body) VALUES (?, ?)`, title, version)
		return err
	}
	f := &versionedFake{fake: &fake{manifest: manifest("welcome", version, "[config.mode]", `type = "string"`, `default = "x"`), tables: welcomeTables}}
	if migrations != nil {
		f.migrations = sqlFiles(migrations)
	}
	f.install = func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx) error {
		return note(ctx, tx, "install")
	}
	f.upgrade = func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx, from string) error {
		return note(ctx, tx, "upgrade from "+from)
	}
	f.seedOnce = func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx) error {
		return note(ctx, tx, "seed once")
	}
	return f
}

// titles lists the welcome notes' titles and bodies, in insertion order.
func (e *env) titles() []string {
	e.t.Helper()
	return e.strings(`SELECT title || '@' || body FROM welcome__notes ORDER BY id`)
}

// Install runs when the plugin's schema is first created, in its schema
// transaction after its tables and migrations, before SeedOnce; neither
// runs again. Upgrade runs when the manifest version rises, with the
// recorded version as from, after the new migrations, once; the new
// version is recorded.
func TestInstallThenUpgrade(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var calls hookCalls
		v1 := welcomeAt("1.0.0", &calls, nil)
		m := e.start(e.config(v1))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State, status(t, m, "welcome").Reason)
		require.Equal(t, []string{"install", "seed once"}, calls.list(), "Install runs first, SeedOnce after it")
		require.Equal(t, []string{"install@1.0.0", "seed once@1.0.0"}, e.titles(), "both wrote through the schema transaction")
		l := e.ledger("welcome")
		require.Equal(t, []string{"hook:install", "hook:seed-once", "manifest-version", "table:notes"}, sortedKeys(l))
		require.Equal(t, "1.0.0", l["manifest-version"])
		require.Contains(t, e.logs.String(), `msg="ran a once-per-database hook" plugin=welcome hook=install ledger_version=hook:install`)
		require.NoError(t, m.Shutdown(context.Background()))

		// Same version: nothing runs, nothing is written.
		before := e.ledgerDump()
		m = e.start(e.config(v1))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State)
		require.Equal(t, []string{"install", "seed once"}, calls.list())
		require.Equal(t, before, e.ledgerDump())
		require.NoError(t, m.Shutdown(context.Background()))

		// 1.1.0 adds a column with a migration; Upgrade sees it.
		v2 := welcomeAt("1.1.0", &calls, map[string]string{"0001_pinned.sql": `ALTER TABLE welcome__notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0`})
		v2.upgrade = func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx, from string) error {
			calls.add("upgrade from " + from)
			_, err := tx.ExecContext(ctx, `UPDATE `+tx.Table("notes")+` SET pinned = 1 WHERE title = ?`, "install")
			return err
		}
		logs := e.logs.String()
		m = e.start(e.config(v2))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State, status(t, m, "welcome").Reason)
		require.Equal(t, []string{"install", "seed once", "upgrade from 1.0.0"}, calls.list())
		require.Equal(t, 1, e.count(`SELECT count(*) FROM welcome__notes WHERE pinned = 1 AND title = 'install'`), "Upgrade ran after the migration")
		l = e.ledger("welcome")
		require.Equal(t, []string{"0001_pinned", "hook:install", "hook:seed-once", "hook:upgrade:1.1.0", "manifest-version", "table:notes"}, sortedKeys(l))
		require.Equal(t, "1.1.0", l["manifest-version"])
		require.Contains(t, strings.TrimPrefix(e.logs.String(), logs), `msg="upgraded: recorded the new manifest version" plugin=welcome from=1.0.0 to=1.1.0`)
		require.NoError(t, m.Shutdown(context.Background()))

		before = e.ledgerDump()
		m = e.start(e.config(v2))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State)
		require.Len(t, calls.list(), 3, "the upgrade does not run again")
		require.Equal(t, before, e.ledgerDump())
	})
}

// A version bump with nothing else changed is work: Upgrade runs once and
// the version is recorded, under the migration lock; the next boot of the
// same version takes no lock.
func TestUpgradeOnAVersionBumpAlone(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var calls hookCalls
		m := e.start(e.config(welcomeAt("1.0.0", &calls, nil)))
		require.NoError(t, m.Shutdown(context.Background()))

		logs := e.logs.String()
		m = e.start(e.config(welcomeAt("1.0.1", &calls, nil)))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State, status(t, m, "welcome").Reason)
		require.NoError(t, m.Shutdown(context.Background()))
		require.Equal(t, []string{"install", "seed once", "upgrade from 1.0.0"}, calls.list())
		require.Equal(t, "1.0.1", e.ledger("welcome")["manifest-version"])
		require.Contains(t, e.ledger("welcome"), "hook:upgrade:1.0.1")
		if e.dialect == testdb.Postgres {
			require.Equal(t, 1, strings.Count(strings.TrimPrefix(e.logs.String(), logs), `msg="took the migration lock"`))
		}

		logs = e.logs.String()
		m = e.start(e.config(welcomeAt("1.0.1", &calls, nil)))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State)
		require.Len(t, calls.list(), 3)
		require.NotContains(t, strings.TrimPrefix(e.logs.String(), logs), `msg="took the migration lock"`, "the same version again is no work")
	})
}

// A failing or panicking Install or Upgrade fails the plugin and rolls
// back its whole schema transaction: tables, migrations, hook rows and
// the version row. The next boot does it all again.
func TestInstallAndUpgradeFailuresRollBack(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var calls hookCalls
		v1 := welcomeAt("1.0.0", &calls, nil)
		v1.install = func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx) error {
			calls.add("install")
			if _, err := tx.ExecContext(ctx, `INSERT INTO `+tx.Table("notes")+` (title) VALUES ('half')`); err != nil {
				return err
			}
			return errors.New("no install today")
		}
		m := e.start(e.config(v1, itemsPlugin("other")))
		st := status(t, m, "welcome")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Equal(t, "schema: install: no install today", st.Reason)
		require.Equal(t, pluginhost.StateRunning, status(t, m, "other").State)
		require.False(t, e.hasTable("welcome__notes"))
		require.Empty(t, e.ledger("welcome"), "no version row, no hook row, no table row")
		require.NoError(t, m.Shutdown(context.Background()))

		m = e.start(e.config(welcomeAt("1.0.0", &calls, nil)))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State, status(t, m, "welcome").Reason)
		require.Equal(t, []string{"install", "install", "seed once"}, calls.list(), "installed from the start again")
		require.NoError(t, m.Shutdown(context.Background()))

		// 1.1.0's upgrade panics after its migration and a write: all undone.
		v2 := welcomeAt("1.1.0", &calls, map[string]string{"0001_pinned.sql": `ALTER TABLE welcome__notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0`})
		v2.upgrade = func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx, from string) error {
			calls.add("upgrade from " + from)
			if _, err := tx.ExecContext(ctx, `UPDATE `+tx.Table("notes")+` SET pinned = 1`); err != nil {
				return err
			}
			panic("upgrade exploded")
		}
		ledgerBefore := e.ledgerDump()
		m = e.start(e.config(v2))
		st = status(t, m, "welcome")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, `plugin "welcome" panicked in upgrade: upgrade exploded`)
		require.Equal(t, 1, st.Panics)
		require.Equal(t, ledgerBefore, e.ledgerDump(), "still 1.0.0, migration not recorded")
		_, err := e.db.Exec(`UPDATE welcome__notes SET pinned = 0`)
		require.Error(t, err, "the migration's column was rolled back")
		require.NoError(t, m.Shutdown(context.Background()))

		m = e.start(e.config(welcomeAt("1.1.0", &calls, map[string]string{"0001_pinned.sql": `ALTER TABLE welcome__notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0`})))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State, status(t, m, "welcome").Reason)
		require.Equal(t, []string{"install", "install", "seed once", "upgrade from 1.0.0", "upgrade from 1.0.0"}, calls.list())
		require.Equal(t, "1.1.0", e.ledger("welcome")["manifest-version"])
		require.Zero(t, e.count(`SELECT count(*) FROM welcome__notes WHERE pinned = 1`), "the panicked upgrade's write was rolled back")
	})
}

// An Upgrade that overruns Config.HookTimeout fails the plugin with the
// upgrade rolled back; the version recorded stays the old one.
func TestUpgradeOverrunRollsBack(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var calls hookCalls
		m := e.start(e.config(welcomeAt("1.0.0", &calls, nil)))
		require.NoError(t, m.Shutdown(context.Background()))

		v2 := welcomeAt("2.0.0", &calls, nil)
		v2.upgrade = func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx, from string) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO `+tx.Table("notes")+` (title) VALUES ('late')`); err != nil {
				return err
			}
			<-ctx.Done()
			return ctx.Err()
		}
		cfg := e.config(v2)
		cfg.HookTimeout = 200 * time.Millisecond
		m = e.start(cfg)
		st := status(t, m, "welcome")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, "upgrade did not return within Config.HookTimeout")
		require.Equal(t, "1.0.0", e.ledger("welcome")["manifest-version"])
		require.NotContains(t, e.ledger("welcome"), "hook:upgrade:2.0.0")
		require.Zero(t, e.count(`SELECT count(*) FROM welcome__notes WHERE title = 'late'`))
	})
}

// A plugin enabled at runtime goes through the same schema path: its
// first Enable installs it, an Enable at a higher version upgrades it.
func TestInstallAndUpgradeOnEnable(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var calls hookCalls
		cfg := e.config(welcomeAt("1.0.0", &calls, nil))
		cfg.Disabled = []string{"welcome"}
		m := e.start(cfg)
		require.Empty(t, calls.list(), "a disabled plugin is not installed")
		require.NoError(t, m.Enable(context.Background(), "welcome"))
		require.Equal(t, []string{"install", "seed once"}, calls.list())
		require.NoError(t, m.Disable(context.Background(), "welcome")) // persisted: it outranks Config
		require.NoError(t, m.Shutdown(context.Background()))

		m = e.start(e.config(welcomeAt("1.2.0", &calls, nil)))
		require.Equal(t, pluginhost.StateDisabled, status(t, m, "welcome").State)
		require.Len(t, calls.list(), 2)
		require.Equal(t, "1.0.0", e.ledger("welcome")["manifest-version"])
		require.NoError(t, m.Enable(context.Background(), "welcome"))
		require.Equal(t, []string{"install", "seed once", "upgrade from 1.0.0"}, calls.list())
		require.Equal(t, "1.2.0", e.ledger("welcome")["manifest-version"])
	})
}

// Replicas booting together run Install exactly once on a fresh database,
// then, booting together at a higher version, Upgrade exactly once: 16
// Managers on PostgreSQL, 8 on one SQLite file, each with its own pool,
// over several rounds, half of them with a rendezvous that makes every
// replica read the ledger, and so plan the hook, before any of them
// migrates.
func TestInstallAndUpgradeOnceWithReplicas(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		rounds := 6
		if d == testdb.SQLite {
			rounds = 4
		}
		n := seedReplicas(d)
		db := newReplicaDB(t, d)
		for round := range rounds {
			rendezvous := round%2 == 1
			// boot boots the replicas with the welcome plugin at version.
			boot := func(dsn, version string, calls *hookCalls) roundResult {
				var config func(int, *pluginhost.Config)
				rv := newRendezvous(n)
				if rendezvous {
					config = func(_ int, cfg *pluginhost.Config) {
						var once sync.Once
						cfg.LookupEnv = func(string) (string, bool) { once.Do(rv.wait); return "", false }
					}
				}
				res := bootRound(t, d, dsn, n, func(int) []pluginhost.Plugin { return []pluginhost.Plugin{welcomeAt(version, calls, nil)} }, config)
				require.Zero(t, rv.missed.Load(), "round %d: a replica gave up waiting at the rendezvous", round)
				return res
			}
			var calls hookCalls
			dsn := db.reset(t)
			res := boot(dsn, "1.0.0", &calls)
			require.Equal(t, []string{"install", "seed once"}, calls.list(), "round %d (rendezvous %v): hook calls across %d replicas", round, rendezvous, n)
			require.Equal(t, 2, res.rows, "round %d", round)
			require.Equal(t, []string{"hook:install", "hook:seed-once", "manifest-version", "table:notes"}, res.ledgerRows, "round %d", round)

			to := fmt.Sprintf("1.%d.0", round+1)
			res = boot(dsn, to, &calls)
			require.Equal(t, []string{"install", "seed once", "upgrade from 1.0.0"}, calls.list(), "round %d (rendezvous %v): hook calls across %d replicas", round, rendezvous, n)
			require.Equal(t, 3, res.rows, "round %d", round)
			require.Equal(t, []string{"hook:install", "hook:seed-once", "hook:upgrade:" + to, "manifest-version", "table:notes"}, res.ledgerRows, "round %d", round)
		}
	})
}
