package pluginhost_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// The replica rounds: n Managers, each with a pool of its own, boot at the
// same moment on one fresh database (a PostgreSQL schema dropped and
// created again, or a new SQLite file), each with a plugin "welcome" that
// seeds one row into its table "notes"; the round counts the rows.

// welcomeTables is the table of the welcome plugins, as the notes example
// declares it.
var welcomeTables = []pluginhost.Table{{Name: "notes", Columns: []pluginhost.Column{
	{Name: "id", PrimaryKey: true}, {Name: "title", NotNull: true}, {Name: "body"},
}}}

// welcomeManifest has a config key so that Config.LookupEnv runs while
// Start resolves the plugins, which the rendezvous uses.
var welcomeManifest = manifest("welcome", "1.0.0", "[config.mode]", `type = "string"`, `default = "x"`)

// countThenInsert is the README's former advice, "seed only into an empty
// table", as the notes example wrote it: count the rows, insert when there
// are none. between, when not nil, runs after the count.
func countThenInsert(ctx context.Context, db *pluginhost.DB, between func()) error {
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+db.Table("notes")).Scan(&n); err != nil {
		return err
	}
	if between != nil {
		between()
	}
	if n > 0 {
		return nil
	}
	_, err := db.ExecContext(ctx, `INSERT INTO `+db.Table("notes")+` (title, body) VALUES (?, ?)`, "Welcome", "seeded")
	return err
}

// rendezvous holds each of n callers of wait until all n have arrived, or
// until stuckBound has passed; missed counts the callers that gave up.
type rendezvous struct {
	n       int32
	arrived atomic.Int32
	all     chan struct{}
	missed  atomic.Int32
}

func newRendezvous(n int) *rendezvous { return &rendezvous{n: int32(n), all: make(chan struct{})} }

func (r *rendezvous) wait() {
	if r.arrived.Add(1) == r.n {
		close(r.all)
	}
	select {
	case <-r.all:
	case <-time.After(stuckBound):
		r.missed.Add(1)
	}
}

// replicaDB is the database of a series of rounds: reset gives each round
// a fresh one and returns its DSN.
type replicaDB struct {
	d      testdb.Dialect
	admin  *sql.DB // PostgreSQL: the test's own pool on the series' schema
	schema string
	dsn    string // PostgreSQL: the DSN of the schema
	dir    string // SQLite: where the rounds' files go
	rounds int
}

func newReplicaDB(t testing.TB, d testdb.Dialect) *replicaDB {
	r := &replicaDB{d: d}
	if d == testdb.Postgres {
		r.admin, r.dsn = testdb.OpenPostgres(t)
		require.NoError(t, r.admin.QueryRow(`SELECT current_schema()`).Scan(&r.schema))
	} else {
		r.dir = t.TempDir()
	}
	return r
}

// reset empties the database: on PostgreSQL it drops the schema and
// creates it again (same name, same migration lock key); on SQLite it
// creates a new file, in WAL mode as a host would open it.
func (r *replicaDB) reset(t testing.TB) (dsn string) {
	t.Helper()
	r.rounds++
	if r.d == testdb.Postgres {
		_, err := r.admin.Exec(`DROP SCHEMA ` + r.schema + ` CASCADE`)
		require.NoError(t, err)
		_, err = r.admin.Exec(`CREATE SCHEMA ` + r.schema)
		require.NoError(t, err)
		return r.dsn
	}
	dsn = "file:" + filepath.Join(r.dir, fmt.Sprintf("round%02d.db", r.rounds)) +
		"?_busy_timeout=30000&_foreign_keys=1&_journal_mode=WAL"
	// The file is created, in WAL mode, before the replicas open it: SQLite
	// answers "database is locked", without waiting for the busy timeout,
	// to connections that switch a new file to WAL while others do.
	first, err := sql.Open("sqlite3", dsn)
	require.NoError(t, err)
	require.NoError(t, first.Ping())
	require.NoError(t, first.Close())
	return dsn
}

// roundResult is what one round of replicas left.
type roundResult struct {
	rows       int      // rows in welcome__notes
	ledgerRows []string // the welcome plugin's ledger versions
}

// bootRound starts n Managers, each on a pool of its own on dsn, with the
// plugins plugins(i) returns, at the same moment; checks that each started
// with every plugin running; counts what the welcome plugin left; and shuts
// them down and closes their pools before returning.
func bootRound(t testing.TB, d testdb.Dialect, dsn string, n int, plugins func(i int) []pluginhost.Plugin,
	config func(i int, cfg *pluginhost.Config)) roundResult {
	t.Helper()
	managers := make([]*pluginhost.Manager, n)
	pools := make([]*sql.DB, n)
	closeAll := func() {
		for i := range n {
			if managers[i] != nil {
				_ = managers[i].Shutdown(context.Background())
			}
			if pools[i] != nil {
				_ = pools[i].Close()
			}
		}
	}
	defer closeAll()
	for i := range n {
		driver := "sqlite3"
		if d == testdb.Postgres {
			driver = "pgx"
		}
		pool, err := sql.Open(driver, dsn)
		require.NoError(t, err)
		pool.SetMaxOpenConns(2) // 16 replicas within the server's max_connections, shared with other tests
		pools[i] = pool
		// MaxConns: each plugin's pool of one connection (on PostgreSQL
		// the sandbox gives each plugin a pool of its own).
		cfg := pluginhost.Config{DB: pool, Registry: registry(t, plugins(i)...), Logger: discardLogger(), RequireAll: true, MaxConns: 1}
		if config != nil {
			config(i, &cfg)
		}
		m, err := pluginhost.New(cfg)
		require.NoError(t, err)
		managers[i] = m
	}
	release := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, m := range managers {
		wg.Go(func() {
			<-release
			ctx, cancel := context.WithTimeout(context.Background(), 2*stuckBound)
			defer cancel()
			errs[i] = m.Start(ctx)
		})
	}
	close(release)
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	for i, m := range managers {
		for _, st := range m.Status() {
			require.Equal(t, pluginhost.StateRunning, st.State, "replica %d, plugin %s: %s", i, st.ID, st.Reason)
		}
	}
	var res roundResult
	q := pools[0]
	require.NoError(t, q.QueryRow(`SELECT count(*) FROM welcome__notes`).Scan(&res.rows))
	rows, err := q.Query(`SELECT version FROM pluginhost_ledger WHERE line = 'welcome' ORDER BY version`)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var v string
		require.NoError(t, rows.Scan(&v))
		res.ledgerRows = append(res.ledgerRows, v)
	}
	require.NoError(t, rows.Err())
	return res
}

// seedReplicas is how many Managers boot together per round: 16 on PostgreSQL,
// as the outside testing ran; 8 on one SQLite file.
func seedReplicas(d testdb.Dialect) int {
	if d == testdb.Postgres {
		return 16
	}
	return 8
}

// The harness catches duplicate seeds: with the README's former
// count-then-insert pattern, once every replica has counted before any
// inserts (the interleaving nothing in that pattern prevents), every
// replica inserts.
func TestReplicaHarnessCatchesCountThenInsert(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		db := newReplicaDB(t, d)
		n := seedReplicas(d)
		rv := newRendezvous(n)
		res := bootRound(t, d, db.reset(t), n, func(int) []pluginhost.Plugin {
			return []pluginhost.Plugin{&fake{manifest: welcomeManifest, tables: welcomeTables,
				seed: func(ctx context.Context, h *pluginhost.Host) error { return countThenInsert(ctx, h.DB(), rv.wait) }}}
		}, nil)
		require.Zero(t, rv.missed.Load(), "every replica counted before any inserted")
		require.Equal(t, n, res.rows, "every replica saw an empty table and inserted")
	})
}

// seedPatterns are the ways of seeding the rounds compare, each returning
// the welcome plugin of one replica.
var seedPatterns = []struct {
	name   string
	plugin func() pluginhost.Plugin
}{
	{"count-then-insert", func() pluginhost.Plugin {
		return &fake{manifest: welcomeManifest, tables: welcomeTables,
			seed: func(ctx context.Context, h *pluginhost.Host) error { return countThenInsert(ctx, h.DB(), nil) }}
	}},
	{"seed-once", func() pluginhost.Plugin { return welcomeSeedOnce(nil) }},
}

// BenchmarkReplicaSeeding runs one round of replicas booting together,
// free-running, per iteration, on a fresh database each, and reports the
// welcome rows per round and the share of rounds that seeded more than
// once, per seeding pattern: run it with -benchtime=20x for 20 rounds.
func BenchmarkReplicaSeeding(b *testing.B) {
	for _, d := range []testdb.Dialect{testdb.SQLite, testdb.Postgres} {
		b.Run(string(d), func(b *testing.B) {
			for _, sp := range seedPatterns {
				b.Run(sp.name, func(b *testing.B) {
					db := newReplicaDB(b, d)
					n := seedReplicas(d)
					rows, duplicated, most := 0, 0, 0
					for b.Loop() {
						res := bootRound(b, d, db.reset(b), n, func(int) []pluginhost.Plugin { return []pluginhost.Plugin{sp.plugin()} }, nil)
						rows += res.rows
						most = max(most, res.rows)
						if res.rows != 1 {
							duplicated++
						}
					}
					b.ReportMetric(float64(rows)/float64(b.N), "rows/round")
					b.ReportMetric(float64(duplicated)/float64(b.N), "dup-rounds/round")
					b.ReportMetric(float64(most), "max-rows")
				})
			}
		})
	}
}

// seedOnceFake is a fake with a SeedOnce hook. (fake itself has none: a
// SeedOnce hook writes a ledger row, which tests of the ledger do not
// expect.)
type seedOnceFake struct {
	*fake
	seedOnce func(ctx context.Context, h *pluginhost.Host, tx *pluginhost.Tx) error
}

var _ pluginhost.SeedOncer = (*seedOnceFake)(nil)

func (f *seedOnceFake) SeedOnce(ctx context.Context, h *pluginhost.Host, tx *pluginhost.Tx) error {
	return f.seedOnce(ctx, h, tx)
}

// insertWelcome writes the welcome row through tx.
func insertWelcome(ctx context.Context, tx *pluginhost.Tx) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO `+tx.Table("notes")+` (title, body) VALUES (?, ?)`, "Welcome", "seeded once")
	return err
}

// welcomeSeedOnce is the welcome plugin seeding with SeedOnce; calls, when
// not nil, counts the calls of its hook.
func welcomeSeedOnce(calls *atomic.Int32) *seedOnceFake {
	return &seedOnceFake{
		fake: &fake{manifest: welcomeManifest, tables: welcomeTables},
		seedOnce: func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx) error {
			if calls != nil {
				calls.Add(1)
			}
			return insertWelcome(ctx, tx)
		},
	}
}

// Replicas booting together on a fresh database seed exactly once: 16
// Managers on PostgreSQL over 20 rounds, 8 on one SQLite file over 10. Half
// the rounds free-running, half with a rendezvous that makes every replica
// read the empty ledger, and so plan to seed, before any of them migrates.
func TestSeedOnceWithReplicas(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		rounds := 20
		if d == testdb.SQLite {
			rounds = 10
		}
		n := seedReplicas(d)
		db := newReplicaDB(t, d)
		for round := range rounds {
			rendezvous := round%2 == 1
			var calls atomic.Int32
			var config func(i int, cfg *pluginhost.Config)
			rv := newRendezvous(n)
			if rendezvous {
				// Config.LookupEnv runs while Start resolves the plugins: after its
				// one read of the ledger, before it migrates.
				config = func(_ int, cfg *pluginhost.Config) {
					var once sync.Once
					cfg.LookupEnv = func(string) (string, bool) { once.Do(rv.wait); return "", false }
				}
			}
			res := bootRound(t, d, db.reset(t), n, func(int) []pluginhost.Plugin {
				return []pluginhost.Plugin{welcomeSeedOnce(&calls)}
			}, config)
			require.Zero(t, rv.missed.Load(), "round %d: a replica gave up waiting at the rendezvous", round)
			require.Equal(t, 1, res.rows, "round %d (rendezvous %v): welcome rows after %d replicas booted together", round, rendezvous, n)
			require.EqualValues(t, 1, calls.Load(), "round %d: SeedOnce calls across the replicas", round)
			require.Equal(t, []string{"hook:seed-once", "manifest-version", "table:notes"}, res.ledgerRows, "round %d", round)
		}
		t.Logf("%d rounds of %d replicas: one welcome row each", rounds, n)
	})
}

// A SeedOnce hook's work commits or rolls back with the plugin's schema: a
// failure leaves nothing of the plugin (tables, rows, ledger rows) and the
// next boot does it all again; once it succeeded it never runs again.
func TestSeedOnceFailureRollsBackTheSchema(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		fail := errors.New("no welcome today")
		var calls atomic.Int32
		p := welcomeSeedOnce(nil)
		p.migrations = sqlFiles(map[string]string{"0001_pinned.sql": `ALTER TABLE welcome__notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0`})
		p.seedOnce = func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx) error {
			calls.Add(1)
			if _, err := tx.ExecContext(ctx, `INSERT INTO `+tx.Table("notes")+` (title, pinned) VALUES (?, ?)`, "Welcome", 1); err != nil {
				return err
			}
			if calls.Load() == 1 {
				return fail
			}
			return nil
		}
		other := itemsPlugin("other")

		m := e.start(e.config(p, other))
		st := status(t, m, "welcome")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Equal(t, "schema: seed once: no welcome today", st.Reason)
		require.Equal(t, pluginhost.StateRunning, status(t, m, "other").State, "the other plugin is not affected")
		require.False(t, e.hasTable("welcome__notes"), "the table created in the failed transaction is gone")
		require.Empty(t, e.ledger("welcome"), "no ledger row of the failed plugin stays")
		require.NoError(t, m.Shutdown(context.Background()))

		m = e.start(e.config(p, other))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State, status(t, m, "welcome").Reason)
		require.Equal(t, 1, e.count(`SELECT count(*) FROM welcome__notes WHERE pinned = 1`), "the hook saw the migrated table")
		require.Equal(t, []string{"0001_pinned", "hook:seed-once", "manifest-version", "table:notes"}, sortedKeys(e.ledger("welcome")))
		require.NoError(t, m.Shutdown(context.Background()))

		e.exec(`DELETE FROM welcome__notes`)
		m = e.start(e.config(p, other))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State)
		require.EqualValues(t, 2, calls.Load(), "not called again once it succeeded")
		require.Zero(t, e.count(`SELECT count(*) FROM welcome__notes`), "a deleted seed is not written again")
	})
}

// A panic in SeedOnce is contained: the plugin fails, its schema work is
// rolled back, the Manager goes on.
func TestSeedOncePanicRollsBack(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := welcomeSeedOnce(nil)
		p.seedOnce = func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx) error {
			if err := insertWelcome(ctx, tx); err != nil {
				return err
			}
			panic("seed exploded")
		}
		m := e.start(e.config(p, itemsPlugin("other")))
		st := status(t, m, "welcome")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, `plugin "welcome" panicked in seed once: seed exploded`)
		require.Equal(t, 1, st.Panics)
		require.False(t, e.hasTable("welcome__notes"))
		require.Empty(t, e.ledger("welcome"))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "other").State)
	})
}

// A SeedOnce hook that overruns Config.HookTimeout fails its plugin with
// everything rolled back, and what it tries to write afterwards fails
// instead of landing outside the transaction.
func TestSeedOnceOverrunIsRolledBackAndItsLateWritesFail(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		proceed := make(chan struct{}) // closed once Start has returned
		late := make(chan error, 1)
		p := welcomeSeedOnce(nil)
		p.seedOnce = func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx) error {
			if err := insertWelcome(ctx, tx); err != nil {
				return err
			}
			<-ctx.Done()
			<-proceed
			late <- insertWelcome(context.Background(), tx)
			return nil
		}
		cfg := e.config(p, itemsPlugin("other"))
		cfg.HookTimeout = 200 * time.Millisecond
		m := e.start(cfg)
		close(proceed)
		st := status(t, m, "welcome")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, "seed once did not return within Config.HookTimeout")
		require.Equal(t, pluginhost.StateRunning, status(t, m, "other").State)

		var err error
		select {
		case err = <-late:
		case <-time.After(stuckBound):
			t.Fatal("the overrunning hook never tried its late write")
		}
		require.ErrorIs(t, err, sql.ErrTxDone)
		require.ErrorContains(t, err, `pluginhost: plugin "welcome": seed once: its transaction is over`)
		require.False(t, e.hasTable("welcome__notes"))
		require.Empty(t, e.ledger("welcome"))
	})
}

// The transaction a SeedOnce hook gets is the plugin's schema transaction:
// it knows the plugin's table names, sees the tables just created, and
// only the Manager ends it.
func TestSeedOnceTxIsTheManagers(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		type seen struct {
			table, rebound         string
			dialect                pluginhost.Dialect
			nilSQL                 bool
			commitErr, rollbackErr error
			tables                 int
		}
		got := make(chan seen, 1)
		p := welcomeSeedOnce(nil)
		p.seedOnce = func(ctx context.Context, h *pluginhost.Host, tx *pluginhost.Tx) error {
			s := seen{table: tx.Table("notes"), rebound: tx.Rebind("a = ? AND b = ?"), dialect: tx.Dialect(), nilSQL: tx.SQL() == nil,
				commitErr: tx.Commit(), rollbackErr: tx.Rollback()}
			if err := insertWelcome(ctx, tx); err != nil {
				return err
			}
			err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+tx.Table("notes")).Scan(&s.tables)
			got <- s
			return err
		}
		m := e.start(e.config(p))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State, status(t, m, "welcome").Reason)
		s := <-got
		require.Equal(t, "welcome__notes", s.table)
		require.Equal(t, pluginhost.Dialect(e.dialect), s.dialect)
		if e.dialect == testdb.Postgres {
			require.Equal(t, "a = $1 AND b = $2", s.rebound)
		} else {
			require.Equal(t, "a = ? AND b = ?", s.rebound)
		}
		require.True(t, s.nilSQL, "the hook cannot reach the *sql.Tx to end it")
		require.ErrorContains(t, s.commitErr, `pluginhost: plugin "welcome": seed once: the Manager commits this transaction`)
		require.ErrorContains(t, s.rollbackErr, `pluginhost: plugin "welcome": seed once: the Manager rolls this transaction back`)
		require.Equal(t, 1, s.tables, "the hook reads its own write")
		require.Equal(t, 1, e.count(`SELECT count(*) FROM welcome__notes`), "refused Commit and Rollback ended nothing")
	})
}

// A warm boot of plugins with SeedOnce runs exactly the statements a warm
// boot of the same plugins without it runs: the ledger read Start makes
// anyway shows that the hooks ran.
func TestSeedOnceCostsAWarmBootNothing(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var calls atomic.Int32
		withSeed := func() []pluginhost.Plugin {
			plugins := benchPlugins(50)
			for i, p := range plugins {
				plugins[i] = &seedOnceFake{fake: p.(*fake), seedOnce: func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx) error {
					calls.Add(1)
					_, err := tx.ExecContext(ctx, `INSERT INTO `+tx.Table("items")+` (title) VALUES (?)`, "first")
					return err
				}}
			}
			return plugins
		}
		warmStatements := func(dsn string, plugins func() []pluginhost.Plugin) []string {
			cold := e.start(pluginhost.Config{DB: testdb.OpenAgain(t, e.dialect, dsn), Registry: registry(t, plugins()...), Logger: discardLogger(), RequireAll: true})
			require.NoError(t, cold.Shutdown(context.Background()))
			db, rec := testdb.OpenCounting(t, e.dialect, dsn)
			warm := e.start(pluginhost.Config{DB: db, Dialect: pluginhost.Dialect(e.dialect), Registry: registry(t, plugins()...),
				Logger: discardLogger(), RequireAll: true})
			stmts := rec.Statements()
			require.NoError(t, warm.Shutdown(context.Background()))
			return stmts
		}
		seeded := warmStatements(e.dsn, withSeed)
		require.EqualValues(t, 50, calls.Load(), "each hook ran once, at the cold boot")
		require.Equal(t, 50, e.count(`SELECT count(*) FROM pluginhost_ledger WHERE version = 'hook:seed-once'`))
		_, plainDSN := testdb.Open(t, e.dialect)
		plain := warmStatements(plainDSN, func() []pluginhost.Plugin { return benchPlugins(50) })
		require.Equal(t, plain, seeded, "a warm boot with SeedOnce hooks runs the statements of one without")
		t.Logf("a warm boot of 50 plugins with SeedOnce ran %d statements", len(seeded))
	})
}

// A plugin that gains a SeedOnce hook in an upgrade seeds once into its
// existing table; one enabled at runtime for the first time seeds then.
func TestSeedOnceLaterAndOnEnable(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var calls atomic.Int32
		m := e.start(e.config(&fake{manifest: welcomeManifest, tables: welcomeTables}))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State)
		require.NoError(t, m.Shutdown(context.Background()))

		m = e.start(e.config(welcomeSeedOnce(&calls)))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "welcome").State, status(t, m, "welcome").Reason)
		require.EqualValues(t, 1, calls.Load())
		require.Equal(t, 1, e.count(`SELECT count(*) FROM welcome__notes`))
		require.Equal(t, []string{"hook:seed-once", "manifest-version", "table:notes"}, sortedKeys(e.ledger("welcome")))

		var lateCalls atomic.Int32
		late := welcomeSeedOnce(&lateCalls)
		late.manifest = manifest("late", "1.0.0")
		cfg := e.config(late)
		cfg.Disabled = []string{"late"}
		m = e.start(cfg)
		require.Equal(t, pluginhost.StateDisabled, status(t, m, "late").State)
		require.Zero(t, lateCalls.Load(), "a disabled plugin does not seed")
		require.NoError(t, m.Enable(context.Background(), "late"))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "late").State, status(t, m, "late").Reason)
		require.EqualValues(t, 1, lateCalls.Load())
		require.Equal(t, 1, e.count(`SELECT count(*) FROM late__notes`))
		require.NoError(t, m.Disable(context.Background(), "late"))
		require.NoError(t, m.Enable(context.Background(), "late"))
		require.EqualValues(t, 1, lateCalls.Load(), "enabled again: not seeded again")
	})
}

// sortedKeys returns the keys of m, sorted.
func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

// A SeedOnce hook that overruns Config.HookTimeout in the middle of a
// statement fails only its own plugin: the statement is canceled with the
// hook's context, which on PostgreSQL closes the schema session's
// connection; the session opens another, takes the migration lock again,
// and the next plugin's schema work goes on.
func TestSeedOnceOverrunInAStatementFailsOnlyItsPlugin(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := welcomeSeedOnce(nil)
		p.seedOnce = func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx) error {
			if err := insertWelcome(ctx, tx); err != nil {
				return err
			}
			long := `SELECT pg_sleep(60)`
			if e.dialect == testdb.SQLite {
				long = `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c`
			}
			_, err := tx.ExecContext(ctx, long)
			return err
		}
		after := itemsPlugin("zzz") // schema work after welcome's: plugins of equal rank go by id
		cfg := e.config(p, after)
		cfg.HookTimeout = 200 * time.Millisecond
		m := e.start(cfg)
		st := status(t, m, "welcome")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, "seed once did not return within Config.HookTimeout")
		require.Equal(t, pluginhost.StateRunning, status(t, m, "zzz").State, status(t, m, "zzz").Reason)
		if e.dialect == testdb.Postgres {
			logs := e.logs.String()
			require.Contains(t, logs, "the schema session's connection broke; opening another")
			require.Equal(t, 2, strings.Count(logs, `msg="took the migration lock"`), "taken again on the new connection")
		}
		require.True(t, e.hasTable("zzz__items"))
		require.False(t, e.hasTable("welcome__notes"))
		require.Empty(t, e.ledger("welcome"))
	})
}
