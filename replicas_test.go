package pluginhost_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
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

// migrationLockKey is the key of pluginhost's migration lock, computed as
// lock.go computes it: it depends on the session's current schema, so each
// test database has its own.
const migrationLockKey = `hashtextextended('pluginhost.migrations.' || current_schema(), 0)`

// gateKey is the key of an advisory lock a test holds to stop a migration
// half-way: the migration runs gateSQL, which waits for it inside the
// migration's transaction.
const gateKey = `hashtextextended('pluginhost-test.gate.' || current_schema(), 0)`

// gateSQL waits until the test releases the gate. The transaction-level lock
// ends with the migration's transaction, so that no pooled connection keeps
// holding it afterwards.
const gateSQL = `SELECT pg_advisory_xact_lock(` + gateKey + `)`

// stuckBound is how long a test waits for something that must happen
// before it declares it stuck.
const stuckBound = 30 * time.Second

// pgSession is a PostgreSQL session of the test's own, outside every
// Manager's pool, to hold advisory locks and look at the server's state.
type pgSession struct {
	t    *testing.T
	conn *sql.Conn
}

// newPGSession takes a connection from db for the test. When the test ends
// it releases every advisory lock the session still holds: a failing test
// must not leave a Manager blocked on one.
func newPGSession(t *testing.T, db *sql.DB) *pgSession {
	t.Helper()
	conn, err := db.Conn(context.Background())
	require.NoError(t, err)
	s := &pgSession{t: t, conn: conn}
	t.Cleanup(func() {
		s.releaseAll()
		_ = conn.Close()
	})
	return s
}

// releaseAll releases every advisory lock the session holds, for cleanups:
// it does not fail the test.
func (s *pgSession) releaseAll() {
	_, _ = s.conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock_all()`)
}

// key evaluates a key expression (migrationLockKey, gateKey) in this
// session's schema.
func (s *pgSession) key(expr string) int64 {
	s.t.Helper()
	var k int64
	require.NoError(s.t, s.conn.QueryRowContext(context.Background(), `SELECT `+expr).Scan(&k))
	return k
}

func (s *pgSession) lock(key int64) {
	s.t.Helper()
	_, err := s.conn.ExecContext(context.Background(), `SELECT pg_advisory_lock($1)`, key)
	require.NoError(s.t, err)
}

func (s *pgSession) tryLock(key int64) bool {
	s.t.Helper()
	var ok bool
	require.NoError(s.t, s.conn.QueryRowContext(context.Background(), `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok))
	return ok
}

func (s *pgSession) unlock(key int64) {
	s.t.Helper()
	var ok bool
	require.NoError(s.t, s.conn.QueryRowContext(context.Background(), `SELECT pg_advisory_unlock($1)`, key).Scan(&ok))
	require.True(s.t, ok, "the test held advisory lock %d", key)
}

// lockPIDs lists the backends other than this session that hold (granted)
// or wait for (not granted) the advisory lock key, in this database.
func (s *pgSession) lockPIDs(key int64, granted bool) []int {
	s.t.Helper()
	rows, err := s.conn.QueryContext(context.Background(), `SELECT pid FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 1 AND granted = $2 AND pid <> pg_backend_pid()
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND ((classid::bigint << 32) | objid::bigint) = $1
ORDER BY pid`, key, granted)
	require.NoError(s.t, err)
	defer rows.Close()
	var pids []int
	for rows.Next() {
		var pid int
		require.NoError(s.t, rows.Scan(&pid))
		pids = append(pids, pid)
	}
	require.NoError(s.t, rows.Err())
	return pids
}

// awaitWaiter polls pg_locks until a backend waits for the advisory lock key
// and returns its pid. The server has no notification for that, so this
// observation polls, under a bound; done fails it early when the Start that
// should block has returned instead.
func (s *pgSession) awaitWaiter(key int64, done <-chan struct{}) int {
	s.t.Helper()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(stuckBound)
	for {
		if pids := s.lockPIDs(key, false); len(pids) > 0 {
			require.Len(s.t, pids, 1, "one backend waits for lock %d", key)
			return pids[0]
		}
		select {
		case <-tick.C:
		case <-done:
			s.t.Fatalf("Start returned instead of blocking on lock %d", key)
		case <-deadline:
			s.t.Fatalf("no backend waited for lock %d within %s", key, stuckBound)
		}
	}
}

// lockWatch follows the migration lock through the debug logs of several
// Managers: which of them waited for it, and how often each took it.
type lockWatch struct {
	mu      sync.Mutex
	waited  map[int]int // manager → "waiting for the migration lock" logs
	took    map[int]int // manager → "took the migration lock" logs
	changed chan struct{}
}

func newLockWatch() *lockWatch {
	return &lockWatch{waited: map[int]int{}, took: map[int]int{}, changed: make(chan struct{}, 1)}
}

// logger returns manager i's logger: Debug and up, into logs, watched.
func (w *lockWatch) logger(i int, logs *logBuffer) *slog.Logger {
	h := slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(&watchHandler{Handler: h, w: w, i: i})
}

// counts returns how many managers waited for the lock and how many took it.
func (w *lockWatch) counts() (waited, took int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.waited), len(w.took)
}

// await waits, without polling, until cond holds for the counts.
func (w *lockWatch) await(t *testing.T, what string, cond func(waited, took int) bool) {
	t.Helper()
	deadline := time.After(stuckBound)
	for {
		waited, took := w.counts()
		if cond(waited, took) {
			return
		}
		select {
		case <-w.changed:
		case <-deadline:
			t.Fatalf("timed out waiting until %s: %d managers waited for the migration lock, %d took it", what, waited, took)
		}
	}
}

type watchHandler struct {
	slog.Handler
	w *lockWatch
	i int
}

func (h *watchHandler) Handle(ctx context.Context, r slog.Record) error {
	var counter map[int]int
	switch {
	case strings.HasPrefix(r.Message, "waiting for the migration lock"):
		counter = h.w.waited
	case r.Message == "took the migration lock":
		counter = h.w.took
	}
	if counter != nil {
		h.w.mu.Lock()
		counter[h.i]++
		h.w.mu.Unlock()
		select {
		case h.w.changed <- struct{}{}:
		default:
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h *watchHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &watchHandler{Handler: h.Handler.WithAttrs(attrs), w: h.w, i: h.i}
}

func (h *watchHandler) WithGroup(name string) slog.Handler {
	return &watchHandler{Handler: h.Handler.WithGroup(name), w: h.w, i: h.i}
}

// schemaWork counts, in logs, the migrations applied ("applied migration"),
// tables created ("created table") and manifest versions recorded ("recorded
// the manifest version"), as "line/version" keys of the ledger:
// "core/0001_boots", "alpha/0001_rank", "alpha/table:items",
// "alpha/manifest-version".
func schemaWork(logs string) map[string]int {
	out := map[string]int{}
	for line := range strings.SplitSeq(logs, "\n") {
		var rest string
		var table, version bool
		if _, after, ok := strings.Cut(line, `msg="applied migration" `); ok {
			rest = after
		} else if _, after, ok := strings.Cut(line, `msg="created table" `); ok {
			rest, table = after, true
		} else if _, after, ok := strings.Cut(line, `msg="recorded the manifest version" `); ok {
			rest, version = after, true
		} else {
			continue
		}
		attrs := map[string]string{}
		for f := range strings.FieldsSeq(rest) {
			if k, v, ok := strings.Cut(f, "="); ok {
				attrs[k] = v
			}
		}
		owner := attrs["line"]
		if owner == "" {
			owner = attrs["plugin"]
		}
		switch {
		case table:
			out[owner+"/table:"+attrs["table"]]++
		case version:
			out[owner+"/manifest-version"]++
		default:
			out[owner+"/"+attrs["version"]]++
		}
	}
	return out
}

// ledgerKeys lists the ledger's rows as sorted "line/version" keys.
func (e *env) ledgerKeys() []string {
	e.t.Helper()
	keys := e.strings(`SELECT line || '/' || version FROM pluginhost_ledger`)
	slices.Sort(keys)
	return keys
}

// bootMode says how a round of TestReplicasBootTogether lines up its
// replicas, beyond starting them at the same moment.
type bootMode string

const (
	// bootFree: nothing more; the replicas race as they come.
	bootFree bootMode = "free"
	// bootRendezvous: every replica reads the ledger (empty: a fresh
	// database) before any migrates, so that all of them have work pending
	// and race for the lock (PostgreSQL) or the write lock (SQLite).
	bootRendezvous bootMode = "rendezvous"
	// bootGated (PostgreSQL): a core migration waits on an advisory lock
	// the test holds until every other replica has logged that it waits for
	// the migration lock: contention, deterministically.
	bootGated bootMode = "gated"
)

// replicaCore is the host's core migrations for the replicas: a table, a
// row that must exist once, the gate (PostgreSQL; a no-op on SQLite), an
// index.
func replicaCore() map[string]string {
	return map[string]string{
		"0001_boots.sql":         `CREATE TABLE boots (n INTEGER NOT NULL)`,
		"0002_once.sql":          `INSERT INTO boots (n) VALUES (1)`,
		"postgres/0003_gate.sql": gateSQL,
		"sqlite/0003_gate.sql":   `SELECT 1`,
		"0004_index.sql":         `CREATE INDEX boots_n ON boots (n)`,
	}
}

// replicaPlugins returns fresh instances of the replicas' plugins: tables,
// references, indexes, plugin migrations, a dependency, a config key (for
// the rendezvous) and a plugin with migrations only.
func replicaPlugins() []pluginhost.Plugin {
	alpha := &fake{
		manifest: manifest("alpha", "1.0.0", "[config.mode]", `type = "string"`, `default = "x"`),
		tables:   []pluginhost.Table{{Name: "items", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "title"}}}},
		migrations: sqlFiles(map[string]string{
			"0001_rank.sql":  `ALTER TABLE alpha__items ADD COLUMN rank INTEGER NOT NULL DEFAULT 0`,
			"0002_first.sql": `INSERT INTO alpha__items (title, rank) VALUES ('first', 1)`,
		}),
	}
	beta := &fake{
		manifest: manifest("beta", "1.0.0", "[dependencies]", `alpha = "^1.0"`),
		tables: []pluginhost.Table{
			{Name: "lists", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "name", NotNull: true, Unique: true}}},
			{
				Name: "cards",
				Columns: []pluginhost.Column{
					{Name: "id", PrimaryKey: true},
					{Name: "list_id", Type: pluginhost.Integer, NotNull: true, References: "lists.id", OnDelete: "cascade"},
					{Name: "title"},
					{Name: "created_at", DefaultNow: true},
				},
				Indexes: []pluginhost.Index{{Columns: []string{"list_id", "title"}}},
			},
		},
		migrations: sqlFiles(map[string]string{"0001_inbox.sql": `INSERT INTO beta__lists (name) VALUES ('inbox')`}),
	}
	gamma := &fake{
		manifest: manifest("gamma", "1.0.0"),
		migrations: sqlFiles(map[string]string{
			"0001_log.sql": `CREATE TABLE gamma__log (n INTEGER NOT NULL)`,
			"0002_row.sql": `INSERT INTO gamma__log (n) VALUES (42)`,
		}),
	}
	delta := &fake{
		manifest: manifest("delta", "1.0.0"),
		tables: []pluginhost.Table{{Name: "events", Columns: []pluginhost.Column{
			{Name: "id", PrimaryKey: true}, {Name: "kind", NotNull: true, Default: "info"}, {Name: "payload", Type: pluginhost.JSON},
		}}},
	}
	return []pluginhost.Plugin{alpha, beta, gamma, delta}
}

// replicaLedger is every ledger row the replicas' boot must leave, once.
var replicaLedger = []string{
	"alpha/0001_rank", "alpha/0002_first", "alpha/manifest-version", "alpha/table:items",
	"beta/0001_inbox", "beta/manifest-version", "beta/table:cards", "beta/table:lists",
	"core/0001_boots", "core/0002_once", "core/0003_gate", "core/0004_index",
	"delta/manifest-version", "delta/table:events",
	"gamma/0001_log", "gamma/0002_row", "gamma/manifest-version",
	"pluginhost/0001_init", "pluginhost/0002_jobs",
}

func TestReplicasBootTogether(t *testing.T) {
	t.Parallel()
	const rounds = 12
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		modes := []bootMode{bootFree, bootRendezvous}
		if d == testdb.Postgres {
			modes = append(modes, bootGated)
		}
		contended := map[bootMode]int{} // PostgreSQL: rounds where a replica waited for the lock
		for round := range rounds {
			mode := modes[round%len(modes)]
			t.Run(fmt.Sprintf("%02d_%s", round, mode), func(t *testing.T) {
				if waited := bootReplicas(t, d, 8, mode); waited > 0 {
					contended[mode]++
				}
			})
			if t.Failed() {
				return
			}
		}
		if d == testdb.Postgres {
			t.Logf("rounds in which replicas waited for the migration lock: %v (of %d rounds, %d per mode)", contended, rounds, rounds/len(modes))
			require.Equal(t, rounds/len(modes), contended[bootGated], "every gated round makes the replicas wait")
		}
	})
}

// bootReplicas starts n Managers, each with its own pool, on one fresh
// database at the same moment, checks that every migration and table was
// applied exactly once and that they all agree, and returns how many of
// them waited for the migration lock (always 0 on SQLite, which has none).
func bootReplicas(t *testing.T, d testdb.Dialect, n int, mode bootMode) (waited int) {
	db, dsn := testdb.Open(t, d)
	e := &env{t: t, dialect: d, db: db, dsn: dsn}
	core := sqlFiles(replicaCore())
	watch := newLockWatch()

	// The rendezvous: Config.LookupEnv runs while Start resolves the
	// plugins, after its one read of the ledger and before it migrates.
	var arrived atomic.Int32
	together := make(chan struct{})
	rendezvousMissed := make(chan int, n)

	managers := make([]*pluginhost.Manager, n)
	pools := make([]*sql.DB, n)
	logs := make([]*logBuffer, n)
	for i := range n {
		pools[i] = testdb.OpenAgain(t, d, dsn)
		logs[i] = &logBuffer{}
		cfg := pluginhost.Config{
			DB: pools[i], Registry: registry(t, replicaPlugins()...), Logger: watch.logger(i, logs[i]),
			CoreMigrations: core, RequireAll: true,
			MaxConns: 1, // each plugin's pool of one connection, within the server's max_connections
		}
		if mode == bootRendezvous {
			var once sync.Once
			cfg.LookupEnv = func(string) (string, bool) {
				once.Do(func() {
					if arrived.Add(1) == int32(n) {
						close(together)
					}
					select {
					case <-together:
					case <-time.After(stuckBound):
						rendezvousMissed <- i
					}
				})
				return "", false
			}
		}
		m, err := pluginhost.New(cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
		managers[i] = m
	}

	release := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait) // after the gate is released, before the managers shut down
	var gate *pgSession
	var gk int64
	if mode == bootGated {
		gate = newPGSession(t, db)
		gk = gate.key(gateKey)
		gate.lock(gk)
	}
	for i, m := range managers {
		wg.Go(func() {
			<-release
			ctx, cancel := context.WithTimeout(context.Background(), 2*stuckBound)
			defer cancel()
			errs[i] = m.Start(ctx)
		})
	}
	close(release)
	if gate != nil {
		// One replica holds the migration lock and is held up by the gate
		// in core migration 0003; every other one has work pending (0003 at
		// least) and so must wait for the lock.
		watch.await(t, "one replica holds the migration lock and the others wait for it", func(waited, took int) bool {
			return took == 1 && waited == n-1
		})
		gate.unlock(gk)
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	close(rendezvousMissed)
	for i := range rendezvousMissed {
		t.Errorf("replica %d gave up waiting for the others at the rendezvous", i)
	}
	if mode == bootRendezvous {
		t.Logf("all %d replicas read the ledger, empty, before any of them migrated", arrived.Load())
	}

	// Every plugin runs in every replica.
	for i, m := range managers {
		for _, st := range m.Status() {
			require.Equal(t, pluginhost.StateRunning, st.State, "replica %d, plugin %s: %s", i, st.ID, st.Reason)
		}
		require.Len(t, m.Status(), 4)
	}

	// Every migration and table applied exactly once: in the data, in the
	// ledger, and in the logs of all replicas together.
	require.Equal(t, 1, e.count(`SELECT count(*) FROM boots`), "core migration 0002 inserted its row once")
	require.Equal(t, 1, e.count(`SELECT count(*) FROM alpha__items WHERE title = 'first' AND rank = 1`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM alpha__items`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM beta__lists`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM gamma__log`))
	require.Equal(t, replicaLedger, e.ledgerKeys())
	applied := map[string]int{}
	for _, l := range logs {
		for k, c := range schemaWork(l.String()) {
			applied[k] += c
		}
	}
	want := map[string]int{}
	for _, k := range replicaLedger {
		want[k] = 1
	}
	require.Equal(t, want, applied, "each migration and table logged as applied by exactly one replica")

	// The ledger reads the same through every replica's pool.
	dump := e.ledgerDump()
	for i, pool := range pools {
		re := &env{t: t, dialect: d, db: pool}
		require.Equal(t, dump, re.ledgerDump(), "ledger read through replica %d", i)
	}

	waited, took := watch.counts()
	switch {
	case d == testdb.SQLite:
		require.Zero(t, waited+took, "no advisory lock on SQLite")
	case mode == bootGated:
		require.Equal(t, n-1, waited)
		require.Equal(t, n, took, "every replica had work pending, took the lock in turn and found it done")
	case mode == bootRendezvous:
		require.Equal(t, n, took, "every replica read an empty ledger, so every one took the lock")
	default:
		require.GreaterOrEqual(t, took, 1)
	}
	t.Logf("%s: %d of %d replicas waited for the migration lock, %d took it", mode, waited, n, took)
	return waited
}
