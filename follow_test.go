package pluginhost_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/admin"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// followBound is how long a replica may take to follow a change before a
// test declares it stale.
const followBound = 10 * time.Second

// stateWatch is a plugin of a replica that signals every built-in plugin
// state event the replica publishes, so that a test can wait for a state
// instead of polling Status.
type stateWatch struct {
	*fake
	changed chan struct{}
}

func newStateWatch() *stateWatch {
	w := &stateWatch{fake: &fake{manifest: manifest("watch", "1.0.0")}, changed: make(chan struct{}, 1)}
	w.init = func(_ context.Context, h *pluginhost.Host) error {
		signal := func() {
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
		pluginhost.Subscribe(h, func(context.Context, pluginhost.PluginDisabled) error { signal(); return nil })
		pluginhost.Subscribe(h, func(context.Context, pluginhost.PluginEnabled) error { signal(); return nil })
		pluginhost.Subscribe(h, func(context.Context, pluginhost.PluginStarted) error { signal(); return nil })
		pluginhost.Subscribe(h, func(context.Context, pluginhost.PluginFailed) error { signal(); return nil })
		return nil
	}
	return w
}

// await waits, without polling, until plugin id of m is in state want.
func (w *stateWatch) await(t testing.TB, m *pluginhost.Manager, id string, want pluginhost.State) {
	t.Helper()
	deadline := time.After(followBound)
	for {
		st := status(t, m, id)
		if st.State == want {
			return
		}
		select {
		case <-w.changed:
		case <-deadline:
			t.Fatalf("plugin %s is still %s (%s), want %s", id, st.State, st.Reason, want)
		}
	}
}

// followPlugins are the plugins of the replicas in the tests below: a
// setting, a plugin with a route, and the watch.
func followPlugins(w *stateWatch) []pluginhost.Plugin {
	notes := &fake{
		manifest: manifest("notes", "1.0.0", "[[settings]]", `key = "notes.max"`, `type = "number"`, `default = 1`),
		routes: func(r chi.Router, _ *pluginhost.Host) {
			r.Get("/hello", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("hello")) })
		},
	}
	return []pluginhost.Plugin{notes, w}
}

// startReplica starts a Manager on db with followPlugins and returns it
// with its watch.
func startReplica(t *testing.T, db *sql.DB, d testdb.Dialect, logger *slog.Logger) (*pluginhost.Manager, *stateWatch) {
	t.Helper()
	if logger == nil {
		logger = discardLogger()
	}
	w := newStateWatch()
	m, err := pluginhost.New(pluginhost.Config{DB: db, Dialect: d, Registry: registry(t, followPlugins(w)...), Logger: logger})
	require.NoError(t, err)
	require.NoError(t, m.Start(context.Background()))
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	return m, w
}

// withParam returns the URL dsn with query parameter key set to value.
func withParam(t testing.TB, dsn, key, value string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// killablePool opens a pool on dsn whose connections carry an application
// name of their own, which the listener the Manager opens from it carries
// too, so that killBackends finds all of them. pgx is told not to ping an
// idle connection as it hands it out, which by default it skips for one
// checked within the last second: so, however long a test takes, each
// connection that died is handed out, and fails, once. The pool keeps up
// to idle idle connections.
func killablePool(t testing.TB, dsn string, idle int) (*sql.DB, string) {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	app := "pluginhost-test-" + hex.EncodeToString(b[:])
	cfg, err := pgx.ParseConfig(withParam(t, dsn, "application_name", app))
	require.NoError(t, err)
	db := stdlib.OpenDB(*cfg, stdlib.OptionShouldPing(func(context.Context, stdlib.ShouldPingParams) bool { return false }))
	db.SetMaxIdleConns(idle)
	t.Cleanup(func() { _ = db.Close() })
	return db, app
}

// fillPool makes db hold n idle connections.
func fillPool(t testing.TB, db *sql.DB, n int) {
	t.Helper()
	conns := make([]*sql.Conn, n)
	for i := range conns {
		c, err := db.Conn(context.Background())
		require.NoError(t, err)
		require.NoError(t, c.PingContext(context.Background()))
		conns[i] = c
	}
	for _, c := range conns {
		require.NoError(t, c.Close())
	}
	require.GreaterOrEqual(t, db.Stats().Idle, n)
}

// killBackends terminates every server backend whose application name is
// app, waiting until each has exited, and returns how many there were.
// The terminations run concurrently: each waits for its backend to exit.
func killBackends(t testing.TB, db *sql.DB, app string) int {
	t.Helper()
	rows, err := db.Query(`SELECT pid FROM pg_stat_activity WHERE application_name = $1`, app)
	require.NoError(t, err)
	var pids []int
	for rows.Next() {
		var pid int
		require.NoError(t, rows.Scan(&pid))
		pids = append(pids, pid)
	}
	require.NoError(t, rows.Err())
	errs := make([]error, len(pids))
	var wg sync.WaitGroup
	for i, pid := range pids {
		wg.Go(func() {
			var exited bool
			errs[i] = db.QueryRow(`SELECT pg_terminate_backend($1, 10000)`, pid).Scan(&exited)
			if errs[i] == nil && !exited {
				errs[i] = fmt.Errorf("backend %d did not exit within 10s", pid)
			}
		})
	}
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	return len(pids)
}

func TestReplicaFollowsAfterItsBackendsAreKilled(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testdb.Postgres)
	const idle = 8
	poolA, app := killablePool(t, e.dsn, idle)
	a, watchA := startReplica(t, poolA, testdb.Postgres, nil)
	b, watchB := startReplica(t, testdb.OpenAgain(t, testdb.Postgres, e.dsn), testdb.Postgres, nil)
	ctx := context.Background()

	// Every connection of A dies: its idle pooled ones and its listener.
	// Then a setting changes and a plugin is disabled through B.
	fillPool(t, poolA, idle)
	require.Equal(t, idle+1, killBackends(t, e.db, app), "the pooled connections and the listener")
	require.NoError(t, b.Settings().Set(ctx, "notes.max", 9))
	require.NoError(t, b.Disable(ctx, "notes"))

	waitSetting(t, a, "notes.max", 9)
	watchA.await(t, a, "notes", pluginhost.StateDisabled)
	require.Equal(t, http.StatusServiceUnavailable, serve(t, a.Handler(), "GET", "/api/plugin/notes/hello", "").Code)

	// An operator's own change on A, through the admin API, right after its
	// connections died again: answered, not 500; and B follows it.
	api, err := admin.New(admin.Config{Manager: a, Insecure: true})
	require.NoError(t, err)
	fillPool(t, poolA, idle)
	require.Equal(t, idle+1, killBackends(t, e.db, app))
	rec := serve(t, api, "PUT", "/settings/notes.max", `{"value": 10}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	fillPool(t, poolA, idle)
	require.Equal(t, idle+1, killBackends(t, e.db, app))
	rec = serve(t, api, "POST", "/plugins/notes/enable", "")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	require.Equal(t, http.StatusOK, serve(t, a.Handler(), "GET", "/api/plugin/notes/hello", "").Code)
	waitSetting(t, b, "notes.max", 10)
	watchB.await(t, b, "notes", pluginhost.StateRunning)

	// And B's enabling reaches A after a kill: A runs the plugin's phases
	// live.
	require.NoError(t, b.Disable(ctx, "notes"))
	watchA.await(t, a, "notes", pluginhost.StateDisabled)
	fillPool(t, poolA, idle)
	require.Equal(t, idle+1, killBackends(t, e.db, app))
	require.NoError(t, b.Enable(ctx, "notes"))
	watchA.await(t, a, "notes", pluginhost.StateRunning)
}

func TestStartOnAPoolWhoseConnectionsDied(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testdb.Postgres)
	const idle = 4
	pool, app := killablePool(t, e.dsn, idle)
	// The host used its pool, then every connection of it died (a server
	// restart, a failover) before Start.
	fillPool(t, pool, idle)
	require.Equal(t, idle, killBackends(t, e.db, app))
	m, _ := startReplica(t, pool, testdb.Postgres, nil)
	require.Equal(t, pluginhost.StateRunning, status(t, m, "notes").State)
}

func TestChangeDuringStartIsFollowed(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		b, _ := startReplica(t, e.db, e.dialect, nil)
		poolA := e.db // SQLite: Managers of one process follow each other on one pool
		if e.dialect == testdb.Postgres {
			poolA = testdb.OpenAgain(t, e.dialect, e.dsn)
		}
		// A's Start waits in the Init of a plugin while another replica
		// disables notes, until A has heard of it.
		inInit, release := make(chan struct{}), make(chan struct{})
		gate := &fake{manifest: manifest("gate", "1.0.0"), init: func(ctx context.Context, _ *pluginhost.Host) error {
			close(inInit)
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
		heard := newLogCount("change announced by another manager")
		w := newStateWatch()
		a, err := pluginhost.New(pluginhost.Config{DB: poolA, Registry: registry(t, append(followPlugins(w), gate)...), Logger: slog.New(heard)})
		require.NoError(t, err)
		t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
		started := make(chan error, 1)
		go func() { started <- a.Start(context.Background()) }()
		<-inInit
		require.NoError(t, b.Disable(context.Background(), "notes"))
		heard.await(t, 1)
		close(release)
		require.NoError(t, <-started)
		w.await(t, a, "notes", pluginhost.StateDisabled)
	})
}

func TestFailedFollowIsRetried(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		dsn := e.dsn
		if e.dialect == testdb.SQLite {
			// Managers of one process with pools of their own follow each
			// other through a database file.
			dsn = "file:" + filepath.Join(t.TempDir(), "replicas.db") + "?_busy_timeout=10000&_foreign_keys=1&_journal_mode=WAL"
		}
		poolA, faults := testdb.OpenFaulty(t, e.dialect, dsn)
		a, watchA := startReplica(t, poolA, e.dialect, nil)
		b, _ := startReplica(t, testdb.OpenAgain(t, e.dialect, dsn), e.dialect, nil)
		ctx := context.Background()

		// A's reads of what other replicas change fail, three times each.
		faults.Fail("FROM pluginhost_settings", 3, errTest)
		faults.Fail("FROM pluginhost_plugins", 3, errTest)
		require.NoError(t, b.Settings().Set(ctx, "notes.max", 9))
		require.NoError(t, b.Disable(ctx, "notes"))

		waitSetting(t, a, "notes.max", 9)
		watchA.await(t, a, "notes", pluginhost.StateDisabled)
		require.Equal(t, 6, faults.Failed(), "every injected failure happened, and was retried")
	})
}

// logCount counts a Manager's log records with one message.
type logCount struct {
	msg     string
	n       atomic.Int32
	changed chan struct{}
}

func newLogCount(msg string) *logCount { return &logCount{msg: msg, changed: make(chan struct{}, 1)} }

func (w *logCount) Enabled(context.Context, slog.Level) bool { return true }

func (w *logCount) Handle(_ context.Context, r slog.Record) error {
	if r.Message == w.msg {
		w.n.Add(1)
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
	return nil
}

func (w *logCount) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *logCount) WithGroup(string) slog.Handler      { return w }

// await waits until the message was logged n times.
func (w *logCount) await(t testing.TB, n int32) {
	t.Helper()
	deadline := time.After(followBound)
	for w.n.Load() < n {
		select {
		case <-w.changed:
		case <-deadline:
			t.Fatalf("%q logged %d times, want %d", w.msg, w.n.Load(), n)
		}
	}
}

func TestReplicaFollowsWithinASecondOfTheServerComingBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testdb.Postgres)
	proxy, dsnA := testdb.ProxyTo(t, e.dsn)
	// Each "change listener" warning is a failure of A's listener to wait
	// for notifications or to reconnect.
	lw := newLogCount("change listener")
	a, watchA := startReplica(t, testdb.OpenAgain(t, testdb.Postgres, dsnA), testdb.Postgres, slog.New(lw))
	b, _ := startReplica(t, testdb.OpenAgain(t, testdb.Postgres, e.dsn), testdb.Postgres, nil)
	ctx := context.Background()
	ready := a.ReadinessHandler()
	rec := serve(t, ready, "GET", "/ready", "")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	// A's server becomes unreachable: its readiness says so, naming the
	// database; the database changes meanwhile.
	proxy.Down()
	rec = serve(t, ready, "GET", "/ready", "")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	body := jsonBody(t, rec)
	require.Contains(t, body["reason"], "database")
	require.NotEmpty(t, body["database"].(map[string]any)["error"])
	require.NoError(t, b.Settings().Set(ctx, "notes.max", 9))
	require.NoError(t, b.Disable(ctx, "notes"))

	// Long enough for the listener's pause between attempts to grow past
	// a second, were it not capped: ten failures.
	lw.await(t, 10)
	back := time.Now()
	proxy.Up()
	waitSetting(t, a, "notes.max", 9)
	watchA.await(t, a, "notes", pluginhost.StateDisabled)
	took := time.Since(back)
	t.Logf("A matched the database %s after the server came back", took)
	require.Less(t, took, time.Second)
	rec = serve(t, ready, "GET", "/ready", "")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}

// BenchmarkFollowAfterBackendKill measures how long a replica whose every
// connection was killed (its idle pooled connections and its listener)
// takes to follow changes made through another right after: a setting, and
// a plugin disabled or enabled. Reported in nanoseconds as p50 and p99 (and
// the maximum) timed from the moment both changes are committed until the
// replica's setting and plugin state match, and as kill-p50 and kill-p99
// timed from the kill, which includes the other replica's two writes.
func BenchmarkFollowAfterBackendKill(b *testing.B) {
	db, dsn := testdb.Open(b, testdb.Postgres)
	const idle = 4
	poolA, app := killablePool(b, dsn, idle)
	start := func(pool *sql.DB) (*pluginhost.Manager, *stateWatch) {
		w := newStateWatch()
		m, err := pluginhost.New(pluginhost.Config{DB: pool, Registry: registry(b, followPlugins(w)...), Logger: discardLogger()})
		require.NoError(b, err)
		require.NoError(b, m.Start(context.Background()))
		b.Cleanup(func() { _ = m.Shutdown(context.Background()) })
		return m, w
	}
	a, watchA := start(poolA)
	other, _ := start(testdb.OpenAgain(b, testdb.Postgres, dsn))
	ctx := context.Background()
	var sinceChange, sinceKill []time.Duration
	i := 0
	for b.Loop() {
		i++
		fillPool(b, poolA, idle)
		if killed := killBackends(b, db, app); killed != idle+1 {
			b.Fatalf("killed %d backends, want %d", killed, idle+1)
		}
		killed := time.Now()
		require.NoError(b, other.Settings().Set(ctx, "notes.max", i))
		want := pluginhost.StateDisabled
		if i%2 == 0 {
			want = pluginhost.StateRunning
			require.NoError(b, other.Enable(ctx, "notes"))
		} else {
			require.NoError(b, other.Disable(ctx, "notes"))
		}
		changed := time.Now()
		waitSetting(b, a, "notes.max", float64(i))
		watchA.await(b, a, "notes", want)
		sinceChange = append(sinceChange, time.Since(changed))
		sinceKill = append(sinceKill, time.Since(killed))
	}
	report := func(lat []time.Duration, prefix string) {
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), prefix+"p50-ns")
		b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Nanoseconds()), prefix+"p99-ns")
	}
	report(sinceChange, "")
	b.ReportMetric(float64(slices.Max(sinceChange).Nanoseconds()), "max-ns")
	report(sinceKill, "kill-")
}
