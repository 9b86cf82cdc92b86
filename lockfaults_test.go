package pluginhost_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

func TestKilledMigrationIsRolledBackAndReapplied(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testdb.Postgres)
	core := sqlFiles(map[string]string{
		"0001_victim.sql": `CREATE TABLE victim (x integer NOT NULL);
INSERT INTO victim (x) VALUES (1);
` + gateSQL,
	})
	s := newPGSession(t, e.db)
	gk, lk := s.key(gateKey), s.key(migrationLockKey)
	s.lock(gk)

	pool := testdb.OpenAgain(t, testdb.Postgres, e.dsn)
	cfg, logs := withLogs(e.config(itemsPlugin("p")))
	cfg.DB, cfg.CoreMigrations = pool, core
	m, err := pluginhost.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	done := make(chan struct{})
	var startErr error
	go func() {
		defer close(done)
		startErr = m.Start(context.Background())
	}()
	t.Cleanup(func() { s.releaseAll(); <-done })

	// The migration is blocked half-way, on the connection that holds the
	// migration lock.
	blocked := s.awaitWaiter(gk, done)
	holders := s.lockPIDs(lk, true)
	require.Equal(t, []int{blocked}, holders, "the blocked migration runs on the session that holds the migration lock")
	var terminated bool
	require.NoError(t, s.conn.QueryRowContext(context.Background(), `SELECT pg_terminate_backend($1, 10000)`, blocked).Scan(&terminated))
	require.True(t, terminated, "the backend ended within 10s")

	select {
	case <-done:
	case <-time.After(stuckBound):
		t.Fatal("Start did not return after its connection was killed")
	}
	require.Error(t, startErr)
	require.Contains(t, startErr.Error(), "0001_victim", "the error names the migration")
	require.NotContains(t, logs.String(), `msg="applied migration" line=core`)

	// Nothing of the half-done migration is left, and the lock is free.
	require.False(t, e.hasTable("victim"), "the table created by the killed migration was rolled back")
	require.Empty(t, e.ledger("core"))
	require.False(t, e.hasTable("p__items"))
	require.True(t, s.tryLock(lk), "the migration lock is free")
	s.unlock(lk)
	require.NotEqual(t, pluginhost.StateRunning, status(t, m, "p").State)

	// The next boot, on a new pool, applies it cleanly.
	s.unlock(gk)
	cfg = e.config(itemsPlugin("p"))
	cfg.DB, cfg.CoreMigrations = testdb.OpenAgain(t, testdb.Postgres, e.dsn), core
	m2 := e.start(cfg)
	require.Equal(t, pluginhost.StateRunning, status(t, m2, "p").State)
	require.Equal(t, []string{"1"}, e.strings(`SELECT CAST(x AS TEXT) FROM victim`))
	require.Equal(t, map[string]string{"0001_victim": checksum(string(core["postgres/0001_victim.sql"].Data))}, e.ledger("core"))
	require.True(t, s.tryLock(lk), "the migration lock is free after the second boot")
	s.unlock(lk)
}

func TestLockReleasedWhenAMigrationFails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		core    map[string]string
		plugins func() []pluginhost.Plugin
		check   func(t *testing.T, e *env, m *pluginhost.Manager, err error)
	}{
		{
			name: "core migration",
			core: map[string]string{
				"0001_ok.sql":  `CREATE TABLE core_ok (x integer)`,
				"0002_bad.sql": gateSQL + `; INSERT INTO no_such_table VALUES (1)`,
			},
			plugins: func() []pluginhost.Plugin { return []pluginhost.Plugin{itemsPlugin("p")} },
			check: func(t *testing.T, e *env, m *pluginhost.Manager, err error) {
				require.Error(t, err)
				require.Contains(t, err.Error(), "0002_bad")
				require.Contains(t, err.Error(), "no_such_table")
				require.Equal(t, []string{"0001_ok"}, slices.Collect(maps.Keys(e.ledger("core"))))
				require.False(t, e.hasTable("p__items"))
			},
		},
		{
			name: "plugin migration",
			plugins: func() []pluginhost.Plugin {
				bad := itemsPlugin("bad")
				bad.migrations = sqlFiles(map[string]string{"0001_bad.sql": gateSQL + `; INSERT INTO no_such_table VALUES (1)`})
				return []pluginhost.Plugin{bad, itemsPlugin("ok")}
			},
			check: func(t *testing.T, e *env, m *pluginhost.Manager, err error) {
				require.NoError(t, err)
				st := status(t, m, "bad")
				require.Equal(t, pluginhost.StateFailed, st.State)
				require.Contains(t, st.Reason, "no_such_table")
				require.Equal(t, pluginhost.StateRunning, status(t, m, "ok").State)
				require.Empty(t, e.ledger("bad"))
				require.Empty(t, e.tablesLike("bad__"))
			},
		},
		{
			name: "plugin panics",
			plugins: func() []pluginhost.Plugin {
				ok := itemsPlugin("ok")
				ok.migrations = sqlFiles(map[string]string{"0001_gate.sql": gateSQL})
				return []pluginhost.Plugin{ok, &panicTables{fake: itemsPlugin("zz")}}
			},
			check: func(t *testing.T, e *env, m *pluginhost.Manager, err error) {
				require.NoError(t, err)
				st := status(t, m, "zz")
				require.Equal(t, pluginhost.StateFailed, st.State)
				require.Contains(t, st.Reason, "panicked")
				require.Equal(t, pluginhost.StateRunning, status(t, m, "ok").State)
				require.Empty(t, e.ledger("zz"))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, testdb.Postgres)
			s := newPGSession(t, e.db)
			gk, lk := s.key(gateKey), s.key(migrationLockKey)
			watch := newLockWatch()
			managers := make([]*pluginhost.Manager, 2)
			for i := range managers {
				cfg := e.config(tt.plugins()...)
				cfg.DB = testdb.OpenAgain(t, testdb.Postgres, e.dsn)
				cfg.Logger = watch.logger(i, &logBuffer{})
				if tt.core != nil {
					cfg.CoreMigrations = sqlFiles(tt.core)
				}
				m, err := pluginhost.New(cfg)
				require.NoError(t, err)
				t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
				managers[i] = m
			}

			// Both start at once; the gate holds the first in a migration,
			// with the lock, until the second waits for the lock.
			s.lock(gk)
			release := make(chan struct{})
			errs := make([]error, len(managers))
			var wg sync.WaitGroup
			for i, m := range managers {
				wg.Go(func() {
					<-release
					ctx, cancel := context.WithTimeout(context.Background(), 2*stuckBound)
					defer cancel()
					errs[i] = m.Start(ctx)
				})
			}
			allDone := make(chan struct{})
			go func() { wg.Wait(); close(allDone) }()
			t.Cleanup(func() { s.releaseAll(); <-allDone })
			close(release)
			watch.await(t, "one manager holds the lock and the other waits", func(waited, took int) bool {
				return took == 1 && waited == 1
			})
			s.unlock(gk)
			select {
			case <-allDone:
			case <-time.After(stuckBound):
				t.Fatal("a manager is stuck after the other's migration failed")
			}

			_, took := watch.counts()
			require.Equal(t, 2, took, "the waiting manager took the lock after the failure")
			for i, m := range managers {
				if errs[i] != nil {
					require.NotContains(t, errs[i].Error(), "migration lock", "manager %d", i)
				}
				tt.check(t, e, m, errs[i])
			}
			require.True(t, s.tryLock(lk), "the migration lock is free after the failures")
			s.unlock(lk)
			require.Empty(t, s.lockPIDs(lk, true))
		})
	}
}

// panicTables is a plugin whose Tables panics.
type panicTables struct{ *fake }

func (p *panicTables) Tables() []pluginhost.Table { panic("tables exploded") }

func TestLockWaitRespectsDeadline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		before  []string // plugins booted before the lock is taken; nil: a fresh database
		pending bool     // the boot under test has migrations pending
	}{
		{name: "fresh database", pending: true},
		{name: "new plugin on a warm database", before: []string{"old"}, pending: true},
		{name: "warm boot with nothing pending takes no lock", before: []string{"old", "new"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, testdb.Postgres)
			if tt.before != nil {
				var ps []pluginhost.Plugin
				for _, id := range tt.before {
					ps = append(ps, itemsPlugin(id))
				}
				e.start(e.config(ps...))
			}
			s := newPGSession(t, e.db)
			lk := s.key(migrationLockKey)
			s.lock(lk) // another replica migrating, forever
			ledgerBefore := e.hasTable("pluginhost_ledger")

			cfg := e.config(itemsPlugin("old"), itemsPlugin("new"))
			cfg.DB = testdb.OpenAgain(t, testdb.Postgres, e.dsn)
			m, err := pluginhost.New(cfg)
			require.NoError(t, err)
			t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
			// Long enough for a boot that needs no lock; a boot that needs
			// it waits until the deadline, since the lock stays held.
			deadline := time.Second
			if !tt.pending {
				deadline = 10 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- m.Start(ctx) }()
			select {
			case err = <-done:
			case <-time.After(stuckBound):
				s.unlock(lk)
				<-done
				t.Fatal("Start did not return after its context's deadline")
			}
			if !tt.pending {
				require.NoError(t, err, "one read of the ledger decides; no lock is needed")
				require.Equal(t, pluginhost.StateRunning, status(t, m, "new").State)
				return
			}
			require.Error(t, err)
			t.Logf("Start: %v", err)
			require.ErrorIs(t, err, context.DeadlineExceeded)
			require.Contains(t, err.Error(), "migration lock")
			require.Equal(t, ledgerBefore, e.hasTable("pluginhost_ledger"), "nothing is written without the lock")
			require.False(t, e.hasTable("new__items"))

			// Nothing is left waiting: with the lock free, a boot goes
			// through.
			s.unlock(lk)
			cfg = e.config(itemsPlugin("old"), itemsPlugin("new"))
			cfg.DB = testdb.OpenAgain(t, testdb.Postgres, e.dsn)
			m = e.start(cfg)
			require.Equal(t, pluginhost.StateRunning, status(t, m, "new").State)
		})
	}
}

// trippingConnector opens pgx connections whose first pg_try_advisory_lock
// runs on the server and then fails as if the caller's context had ended
// after the server replied and before the row was read (database/sql then
// reports the context's error): the lock may be held although taking it
// "failed".
type trippingConnector struct {
	driver.Connector
	cancel  context.CancelFunc // ends the caller's context when tripping
	tripped atomic.Bool
	granted atomic.Bool // what the server answered when tripping
}

func (c *trippingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &trippingConn{Conn: conn.(*stdlib.Conn), c: c}, nil
}

type trippingConn struct {
	*stdlib.Conn
	c *trippingConnector
}

func (tc *trippingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if !strings.Contains(query, "pg_try_advisory_lock") || !tc.c.tripped.CompareAndSwap(false, true) {
		return tc.Conn.QueryContext(ctx, query, args)
	}
	rows, err := tc.Conn.QueryContext(ctx, query, args)
	if err != nil {
		return nil, err
	}
	dest := make([]driver.Value, len(rows.Columns()))
	if rows.Next(dest) == nil {
		ok, _ := dest[0].(bool)
		tc.c.granted.Store(ok)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	tc.c.cancel()
	return nil, ctx.Err()
}

func TestLockNotLeakedWhenTakingItFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testdb.Postgres)
	inner, err := stdlib.GetDefaultDriver().(driver.DriverContext).OpenConnector(e.dsn)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn := &trippingConnector{Connector: inner, cancel: cancel}
	pool := sql.OpenDB(conn)
	t.Cleanup(func() { _ = pool.Close() })

	cfg := e.config(itemsPlugin("p"))
	cfg.DB = pool
	m, err := pluginhost.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	err = m.Start(ctx)
	require.Error(t, err)
	require.ErrorIs(t, err, context.Canceled)
	require.Contains(t, err.Error(), "migration lock")
	require.True(t, conn.tripped.Load())
	require.True(t, conn.granted.Load(), "the server granted the lock before the failure")

	// The lock must not stay with a connection of the failed Manager's
	// pool, which lives on: the session that took it ends, and with it the
	// lock. The server releases it as the backend exits, shortly after;
	// that has no notification, so this observation polls, under a bound.
	s := newPGSession(t, e.db)
	lk := s.key(migrationLockKey)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(stuckBound)
	for !s.tryLock(lk) {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("the migration lock is still held, by backends %v", s.lockPIDs(lk, true))
		}
	}
	s.unlock(lk)
}

func TestPostgresRejectsPluginDDL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		migration string
		sqliteOK  bool     // the migration is valid SQLite
		want      []string // in the failure reason on PostgreSQL: its own message
	}{
		{
			name:      "sqlite-only syntax",
			migration: `CREATE TABLE bad__extra (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT)`,
			sqliteOK:  true,
			want:      []string{`syntax error at or near "AUTOINCREMENT"`, "SQLSTATE 42601"},
		},
		{
			name:      "missing table",
			migration: `CREATE INDEX bad__missing_x ON bad__missing (x)`,
			want:      []string{`relation "bad__missing" does not exist`, "SQLSTATE 42P01"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachEnv(t, func(t *testing.T, e *env) {
				bad := itemsPlugin("bad")
				bad.migrations = sqlFiles(map[string]string{
					"0001_rank.sql": `ALTER TABLE bad__items ADD COLUMN rank INTEGER`,
					"0002_ddl.sql":  tt.migration,
				})
				child := itemsPlugin("child")
				child.manifest = manifest("child", "1.0.0", "[dependencies]", `bad = "^1.0"`)
				cfg, logs := withLogs(e.config(bad, child, itemsPlugin("good")))
				m := e.start(cfg)
				require.Equal(t, pluginhost.StateRunning, status(t, m, "good").State)
				require.True(t, e.hasTable("good__items"))

				st := status(t, m, "bad")
				if e.dialect == testdb.SQLite && tt.sqliteOK {
					require.Equal(t, pluginhost.StateRunning, st.State, "valid on SQLite: %s", st.Reason)
					return
				}
				require.Equal(t, pluginhost.StateFailed, st.State)
				require.Contains(t, st.Reason, pluginhost.PhaseSchema)
				require.Contains(t, st.Reason, "migration 0002_ddl")
				if e.dialect == testdb.Postgres {
					for _, w := range tt.want {
						require.Contains(t, st.Reason, w)
					}
					require.Contains(t, failureLog(t, logs, "bad"), "SQLSTATE")
				}
				require.Equal(t, pluginhost.StateFailed, status(t, m, "child").State)
				require.Contains(t, status(t, m, "child").Reason, "dependency bad failed")

				// Nothing of the plugin is left: not its table, not the
				// column its first migration added, not a ledger row.
				require.Empty(t, e.tablesLike("bad__"))
				require.Empty(t, e.ledger("bad"))
				require.Empty(t, e.tablesLike("child__"))
			})
		})
	}
}

// The wait for the migration lock has a bound of its own,
// Config.LockTimeout, even when Start's context has none: a replica
// frozen while it holds the lock (SIGSTOP) does not hold the others
// forever.
func TestLockWaitHasADefaultBound(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testdb.Postgres)
	s := newPGSession(t, e.db)
	lk := s.key(migrationLockKey)
	s.lock(lk) // another replica, frozen while it migrates
	t.Cleanup(func() { s.unlock(lk) })

	cfg := e.config(itemsPlugin("p"))
	cfg.DB = testdb.OpenAgain(t, testdb.Postgres, e.dsn)
	cfg.LockTimeout = 300 * time.Millisecond
	m, err := pluginhost.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	done := make(chan error, 1)
	go func() { done <- m.Start(context.Background()) }() // no deadline of its own
	err = receiveWithin(t, done, 10*time.Second)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.ErrorContains(t, err, "Config.LockTimeout (300ms)")
}
