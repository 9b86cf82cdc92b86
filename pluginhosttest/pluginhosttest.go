// Package pluginhosttest starts plugins in tests: a Manager on a fresh
// in-memory SQLite database of the test's own, with an httptest server in
// front of it, all cleaned up when the test ends.
//
//	func TestNotes(t *testing.T) {
//		t.Parallel()
//		inst := pluginhosttest.Start(t, pluginhosttest.Options{}, notes.New())
//		resp := inst.Do(t, "GET", "/api/plugin/notes/notes", nil)
//		...
//	}
//
// Every Start gets its own database, so parallel tests never share state.
// Options.PostgresURL runs on a fresh PostgreSQL schema instead, and
// EachDatabase runs a test on both.
// Run your tests with -race: the host calls plugin code from many
// goroutines, and the race detector is the way to find what a plugin does
// not guard.
package pluginhosttest

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// Options configure Start. The zero value starts the plugins with no core
// migrations or settings, every plugin required, and logs sent to the
// test's log.
type Options struct {
	// Config is the template of the Manager's config. DB and Registry are
	// set by Start; Logger defaults to one that writes to t.Log.
	Config pluginhost.Config

	// AllowFailures lets Start succeed when a plugin fails, to test
	// failure handling; by default every plugin is required, so a failing
	// plugin fails the test with the reason.
	AllowFailures bool

	// PostgresURL, when set, runs the plugins on that PostgreSQL server
	// instead of SQLite, in a schema created for the test and dropped when
	// it ends, for example
	// postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
	PostgresURL string
}

// Instance is a started Manager with its database and server.
type Instance struct {
	// Manager is the started manager, shut down when the test ends.
	Manager *pluginhost.Manager
	// DB is the test's database.
	DB *sql.DB
	// Server serves the Manager's Handler under /api/plugin/.
	Server *httptest.Server

	opts    Options
	plugins []pluginhost.Plugin
	logDone *atomic.Bool
}

// Start registers plugins in a registry of their own, opens a fresh
// in-memory SQLite database (or a fresh PostgreSQL schema, see
// Options.PostgresURL), starts a Manager on it and an httptest server in
// front of it. A failure to start fails the test. Everything is closed
// with t.Cleanup.
func Start(t testing.TB, opts Options, plugins ...pluginhost.Plugin) *Instance {
	t.Helper()
	// Registered first, so it runs last: log lines from goroutines a
	// plugin left behind must not reach a finished test.
	var logDone atomic.Bool
	t.Cleanup(func() { logDone.Store(true) })
	var db *sql.DB
	if opts.PostgresURL != "" {
		db, _ = testdb.NewSchema(t, opts.PostgresURL)
	} else {
		db = testdb.OpenSQLite(t)
	}
	inst := &Instance{DB: db, opts: opts, plugins: plugins, logDone: &logDone}
	inst.start(t)
	return inst
}

func (inst *Instance) start(t testing.TB) {
	t.Helper()
	reg := pluginhost.NewRegistry()
	for _, p := range inst.plugins {
		if err := reg.Register(p); err != nil {
			t.Fatalf("pluginhosttest: %v", err)
		}
	}
	cfg := inst.opts.Config
	cfg.DB, cfg.Registry = inst.DB, reg
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t, inst.logDone}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg.RequireAll = cfg.RequireAll || !inst.opts.AllowFailures
	m, err := pluginhost.New(cfg)
	if err != nil {
		t.Fatalf("pluginhosttest: %v", err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatalf("pluginhosttest: start: %v", err)
	}
	r := chi.NewRouter()
	r.Mount("/api/plugin", m.Handler())
	srv := httptest.NewServer(r)
	inst.Manager, inst.Server = m, srv
	t.Cleanup(func() {
		srv.Close()
		if err := m.Shutdown(context.Background()); err != nil {
			t.Errorf("pluginhosttest: shutdown: %v", err)
		}
	})
}

// Restart shuts the Manager down and starts a new one with the same plugins
// and options on the same database, as a host restart would.
func (inst *Instance) Restart(t testing.TB) {
	t.Helper()
	inst.Server.Close()
	if err := inst.Manager.Shutdown(context.Background()); err != nil {
		t.Fatalf("pluginhosttest: shutdown: %v", err)
	}
	inst.start(t)
}

// Do sends a request to the server: body, when not nil, is sent as JSON
// (or as is when it is a string or []byte). The response body is read and
// closed; decode it with Response.JSON.
func (inst *Instance) Do(t testing.TB, method, path string, body any) *Response {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("pluginhosttest: encode body: %v", err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, inst.Server.URL+path, r)
	if err != nil {
		t.Fatalf("pluginhosttest: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := inst.Server.Client().Do(req)
	if err != nil {
		t.Fatalf("pluginhosttest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("pluginhosttest: read response: %v", err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// Response is a response read by Instance.Do.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v, failing the test if it is not JSON.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("pluginhosttest: response %d is not JSON (%v): %s", r.Status, err, r.Body)
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct {
	t    testing.TB
	done *atomic.Bool
}

func (w testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// PostgresURLEnv names the environment variable with the URL of a
// PostgreSQL server for tests; EachDatabase runs on it when it is set.
const PostgresURLEnv = testdb.PostgresURLEnv

// EachDatabase runs fn as a subtest on SQLite and, when the environment
// variable PLUGINHOST_TEST_POSTGRES_URL is set, on PostgreSQL, with Options
// that select the database: pass them to Start. Without the variable the
// PostgreSQL subtest is skipped with a message saying how to enable it (a
// failure when PLUGINHOST_REQUIRE_POSTGRES=1).
func EachDatabase(t *testing.T, fn func(t *testing.T, opts Options)) {
	t.Helper()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		var opts Options
		if d == testdb.Postgres {
			opts.PostgresURL = testdb.PostgresURL(t)
		}
		fn(t, opts)
	})
}
