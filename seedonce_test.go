package pluginhost_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
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
// names a new file, in WAL mode as a host would open it.
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
	return "file:" + filepath.Join(r.dir, fmt.Sprintf("round%02d.db", r.rounds)) +
		"?_busy_timeout=30000&_foreign_keys=1&_journal_mode=WAL"
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
		cfg := pluginhost.Config{DB: pool, Registry: registry(t, plugins(i)...), Logger: discardLogger(), RequireAll: true}
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
