package pluginhost_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// checked is a fake plugin with a health check.
type checked struct {
	*fake
	check func(ctx context.Context) error
}

var _ pluginhost.HealthChecker = (*checked)(nil)

func (c *checked) CheckHealth(ctx context.Context) error { return c.check(ctx) }

func withCheck(id string, check func(ctx context.Context) error, extra ...string) *checked {
	return &checked{fake: &fake{manifest: manifest(id, "1.0.0", extra...)}, check: check}
}

func pluginHealth(t *testing.T, r pluginhost.HealthReport, id string) pluginhost.PluginHealth {
	t.Helper()
	for _, ph := range r.Plugins {
		if ph.ID == id {
			return ph
		}
	}
	t.Fatalf("no plugin %q in %+v", id, r.Plugins)
	return pluginhost.PluginHealth{}
}

func TestHealthRunsChecksConcurrently(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testdb.SQLite)
	aStarted, bStarted := make(chan struct{}), make(chan struct{})
	// Each check waits for the other to have started: run one after the
	// other, the first would wait until its deadline.
	meet := func(mine, other chan struct{}) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			close(mine)
			select {
			case <-other:
				return nil
			case <-ctx.Done():
				return errors.New("the other check never started")
			}
		}
	}
	cfg := e.config(withCheck("a", meet(aStarted, bStarted)), withCheck("b", meet(bStarted, aStarted)))
	cfg.HealthTimeout = time.Minute
	m := e.start(cfg)

	report := m.Health(context.Background())
	require.Len(t, report.Plugins, 2)
	for _, id := range []string{"a", "b"} {
		ph := pluginHealth(t, report, id)
		require.Equal(t, pluginhost.StateRunning, ph.State, id)
		require.True(t, ph.Checked, id)
		require.Empty(t, ph.Error, id)
		require.Positive(t, ph.Latency, id)
		require.False(t, ph.LastChecked.IsZero(), id)
	}
}

func TestHealthCheckThatOverrunsIsReportedOnTime(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testdb.SQLite)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	var calls atomic.Int32
	// The check ignores its context: Health must not wait for it.
	hung := withCheck("hung", func(context.Context) error {
		calls.Add(1)
		<-release
		return nil
	})
	fine := withCheck("fine", func(context.Context) error { return nil })
	cfg := e.config(hung, fine)
	cfg.HealthTimeout = 50 * time.Millisecond
	m := e.start(cfg)

	began := time.Now()
	report := m.Health(context.Background())
	require.Less(t, time.Since(began), 5*time.Second, "Health waits for the timeout, not for the check")
	ph := pluginHealth(t, report, "hung")
	require.True(t, ph.Checked)
	require.Equal(t, "did not answer within 50ms", ph.Error)
	require.GreaterOrEqual(t, ph.Latency, 50*time.Millisecond)
	require.Empty(t, pluginHealth(t, report, "fine").Error)
	require.False(t, report.Ready)

	// While the first check still hangs, a second Health call waits for it
	// instead of starting another.
	again := m.Health(context.Background())
	require.Equal(t, "did not answer within 50ms", pluginHealth(t, again, "hung").Error)
	require.Equal(t, ph.LastChecked, pluginHealth(t, again, "hung").LastChecked)
	require.Equal(t, int32(1), calls.Load())
}

func TestHealthReturnsWhenItsContextEnds(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testdb.SQLite)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	started := make(chan struct{})
	cfg := e.config(withCheck("slow", func(context.Context) error {
		close(started)
		<-release
		return nil
	}))
	cfg.HealthTimeout = time.Minute
	m := e.start(cfg)

	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	report := m.Health(ctx)
	ph := pluginHealth(t, report, "slow")
	require.Contains(t, ph.Error, "no answer before the health request ended")
	require.False(t, report.Ready)
}

func TestHealthCheckPanicIsRecoveredAndLogged(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testdb.SQLite)
	m := e.start(e.config(withCheck("shaky", func(context.Context) error { panic("boom") })))

	report := m.Health(context.Background())
	ph := pluginHealth(t, report, "shaky")
	require.True(t, ph.Checked)
	require.Equal(t, "health check panicked: boom", ph.Error)
	require.False(t, report.Ready)
	require.Equal(t, pluginhost.StateRunning, status(t, m, "shaky").State, "one panic does not trip the breaker")

	logs := e.logs.String()
	require.Contains(t, logs, "plugin=shaky")
	require.Contains(t, logs, `where="health check"`)
	require.Contains(t, logs, "panic=boom")
	require.Contains(t, logs, "health.go", "the stack is logged")
}

func TestHealthListsPluginsThatAreNotRunning(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testdb.SQLite)
	mustNotRun := func(context.Context) error {
		t.Error("the check of a plugin that is not running was called")
		return nil
	}
	off := withCheck("off", mustNotRun)
	broken := withCheck("broken", mustNotRun)
	broken.init = func(context.Context, *pluginhost.Host) error { return errTest }
	plain := &fake{manifest: manifest("plain", "1.0.0")}
	cfg := e.config(off, broken, plain)
	cfg.Disabled = []string{"off"}
	m := e.start(cfg)

	report := m.Health(context.Background())
	require.Equal(t, []string{"broken", "off", "plain"}, healthIDs(report), "every plugin, by id")

	ph := pluginHealth(t, report, "off")
	require.Equal(t, pluginhost.StateDisabled, ph.State)
	require.False(t, ph.Checked)
	require.Equal(t, status(t, m, "off").Reason, ph.Error)
	require.NotEmpty(t, ph.Error)

	ph = pluginHealth(t, report, "broken")
	require.Equal(t, pluginhost.StateFailed, ph.State)
	require.False(t, ph.Checked)
	require.Contains(t, ph.Error, "init: test failure")

	ph = pluginHealth(t, report, "plain")
	require.Equal(t, pluginhost.PluginHealth{ID: "plain", State: pluginhost.StateRunning}, ph,
		"a running plugin without a check is healthy and unchecked")

	require.True(t, report.Ready, "disabled and failed plugins do not make the host unready")
}

func healthIDs(r pluginhost.HealthReport) []string {
	var ids []string
	for _, ph := range r.Plugins {
		ids = append(ids, ph.ID)
	}
	return ids
}

func TestHealthBeforeStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testdb.SQLite)
	m, err := pluginhost.New(e.config(withCheck("a", func(context.Context) error { return nil })))
	require.NoError(t, err)
	report := m.Health(context.Background())
	require.False(t, report.Ready)
	require.Empty(t, report.Plugins)
}

func TestReadinessHandler(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testdb.SQLite)
	var failing atomic.Bool
	db := withCheck("db", func(context.Context) error {
		if failing.Load() {
			return errors.New("connection refused")
		}
		return nil
	})
	m, err := pluginhost.New(e.config(db, &fake{manifest: manifest("plain", "1.0.0")}))
	require.NoError(t, err)
	h := m.ReadinessHandler()

	t.Run("before Start", func(t *testing.T) {
		rec := serve(t, h, "GET", "/readyz", "")
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		body := jsonBody(t, rec)
		require.Equal(t, false, body["ready"])
		require.Equal(t, []any{}, body["failing"])
		require.Contains(t, body["reason"], "Start has not finished")
		require.Equal(t, "no-store", rec.Header().Get("Cache-Control"))
	})

	require.NoError(t, m.Start(context.Background()))
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })

	t.Run("after Start", func(t *testing.T) {
		rec := serve(t, h, "GET", "/readyz", "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.Equal(t, map[string]any{"ready": true, "failing": []any{}}, jsonBody(t, rec))
	})

	t.Run("a failing check names the plugin", func(t *testing.T) {
		failing.Store(true)
		defer failing.Store(false)
		rec := serve(t, h, "GET", "/readyz", "")
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.Equal(t, map[string]any{"ready": false, "failing": []any{"db"}}, jsonBody(t, rec))

		rec = serve(t, h, "GET", "/readyz?verbose", "")
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		body := jsonBody(t, rec)
		require.Equal(t, []any{"db"}, body["failing"])
		plugins := body["plugins"].([]any)
		require.Len(t, plugins, 2)
		dbHealth := plugins[0].(map[string]any)
		require.Equal(t, "db", dbHealth["id"])
		require.Equal(t, "running", dbHealth["state"])
		require.Equal(t, true, dbHealth["checked"])
		require.Equal(t, "connection refused", dbHealth["error"])
		require.Contains(t, dbHealth, "latency_ns")
		require.Contains(t, dbHealth, "last_checked")
		require.Equal(t, map[string]any{"id": "plain", "state": "running", "checked": false}, plugins[1])
	})

	t.Run("verbose takes any value", func(t *testing.T) {
		rec := serve(t, h, "GET", "/readyz?verbose=0", "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.Len(t, jsonBody(t, rec)["plugins"], 2)
	})

	t.Run("after Shutdown", func(t *testing.T) {
		require.NoError(t, m.Shutdown(context.Background()))
		rec := serve(t, h, "GET", "/readyz", "")
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.Equal(t, false, jsonBody(t, rec)["ready"])
	})
}

func TestReadinessNamesAnUnreachableDatabase(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		pool := testdb.OpenAgain(t, e.dialect, e.dsn)
		cfg := e.config(&fake{manifest: manifest("plain", "1.0.0")})
		cfg.DB = pool
		m := e.start(cfg)
		h := m.ReadinessHandler()
		rec := serve(t, h, "GET", "/readyz", "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

		require.NoError(t, pool.Close())
		report := m.Health(context.Background())
		require.False(t, report.Ready)
		rec = serve(t, h, "GET", "/readyz", "")
		require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
		body := jsonBody(t, rec)
		require.Equal(t, false, body["ready"])
		require.Equal(t, []any{}, body["failing"], "no plugin failed")
		require.Contains(t, body["reason"], "the database does not answer")
		require.Contains(t, body["database"].(map[string]any)["error"], "database is closed")
	})
}

func TestReadinessWaitsForTheDatabaseWithinHealthTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testdb.Postgres)
	proxy, dsn := testdb.ProxyTo(t, e.dsn)
	cfg := e.config(&fake{manifest: manifest("plain", "1.0.0")})
	cfg.DB = testdb.OpenAgain(t, testdb.Postgres, dsn)
	cfg.HealthTimeout = 100 * time.Millisecond
	m := e.start(cfg)
	h := m.ReadinessHandler()

	// The server accepts connections and never answers.
	proxy.Stall()
	began := time.Now()
	rec := serve(t, h, "GET", "/readyz", "")
	require.Less(t, time.Since(began), 5*time.Second, "the ping gives up at HealthTimeout")
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, rec.Body.String())
	body := jsonBody(t, rec)
	require.Contains(t, body["reason"], "the database does not answer")
	dbHealth := body["database"].(map[string]any)
	require.NotEmpty(t, dbHealth["error"])
	require.GreaterOrEqual(t, dbHealth["latency_ns"], float64(100*time.Millisecond))

	// It answers again: ready again.
	proxy.Up()
	rec = serve(t, h, "GET", "/readyz", "")
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
}
