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
// EachDatabase runs a test on both (or on the one dialect it is given);
// Options.Config.DB brings a database of your own.
//
// From a test, Instance.Host gives the plugin's own *pluginhost.Host, the one
// its hooks receive: its DB knows the physical names of its tables
// (Host(t, "notes").DB().Table("notes")). Instance.Restart starts a new
// Manager on the same database, with the same plugins or with others, such
// as a newer version of the plugin, to test its upgrade.
//
// The Manager's log lines go to the test's output, each located at the code
// that logged it (notes.go:80, not a line of this package), as t.Log
// locates its callers.
//
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
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// Options configure Start. The zero value starts the plugins on a fresh
// in-memory SQLite database with no core migrations or settings, every
// plugin required, and logs sent to the test's output.
type Options struct {
	// Config is the template of the Manager's config. Registry is set by
	// Start, to a registry of the plugins passed to it. DB, when set, is
	// the database to start on, used as is and not closed: bring your own
	// pool (an SQLite file, a wrapped driver; set Config.Dialect when its
	// driver is neither sqlite3 nor pgx). When nil, Start opens a fresh
	// database. Logger defaults to one that writes to the test's output at
	// Debug level.
	Config pluginhost.Config

	// AllowFailures lets Start succeed when a plugin fails, to test
	// failure handling; by default every plugin is required, so a failing
	// plugin fails the test with the reason.
	AllowFailures bool

	// PostgresURL, when set, runs the plugins on that PostgreSQL server
	// instead of SQLite, in a schema created for the test and dropped when
	// it ends, for example
	// postgres://postgres@127.0.0.1:5432/test?sslmode=disable. It cannot be
	// combined with Config.DB.
	PostgresURL string
}

// Instance is a started Manager with its database and server.
type Instance struct {
	// Manager is the started manager, shut down when the test ends.
	Manager *pluginhost.Manager
	// DB is the test's database: the one Start opened, or Config.DB.
	DB *sql.DB
	// Server serves the Manager's Handler under /api/plugin/.
	Server *httptest.Server

	opts    Options
	plugins []pluginhost.Plugin
	out     *testOutput
}

// Start registers plugins in a registry of their own, opens a fresh
// in-memory SQLite database (or a fresh PostgreSQL schema, see
// Options.PostgresURL, or takes Options.Config.DB), starts a Manager on it
// and an httptest server in front of it. A failure to start fails the
// test. Everything is closed with t.Cleanup.
func Start(t testing.TB, opts Options, plugins ...pluginhost.Plugin) *Instance {
	t.Helper()
	// Registered first, so it runs last: log lines from goroutines a
	// plugin left behind must not reach a finished test.
	out := &testOutput{w: t.Output()}
	t.Cleanup(out.close)
	var db *sql.DB
	switch {
	case opts.Config.DB != nil && opts.PostgresURL != "":
		t.Fatalf("pluginhosttest: Options.Config.DB and Options.PostgresURL are both set; set one")
	case opts.Config.DB != nil:
		db = opts.Config.DB
	case opts.PostgresURL != "":
		db, _ = testdb.NewSchema(t, opts.PostgresURL)
	default:
		db = testdb.OpenSQLite(t)
	}
	inst := &Instance{DB: db, opts: opts, plugins: plugins, out: out}
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
		cfg.Logger = slog.New(&logHandler{out: inst.out, level: slog.LevelDebug})
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

// Restart shuts the Manager down and starts a new one on the same database
// with the same options, as a host restart would. Without plugins it
// starts the same plugins again; with plugins, those instead, from then on:
// a newer version of a plugin tests its upgrade (its migrations run on the
// data the old version wrote), a set without a plugin tests its removal.
func (inst *Instance) Restart(t testing.TB, plugins ...pluginhost.Plugin) {
	t.Helper()
	inst.Server.Close()
	if err := inst.Manager.Shutdown(context.Background()); err != nil {
		t.Fatalf("pluginhosttest: shutdown: %v", err)
	}
	if len(plugins) > 0 {
		inst.plugins = plugins
	}
	inst.start(t)
}

// Host returns the *pluginhost.Host of plugin id's current run, the one
// its hooks receive, failing the test when there is none (see
// pluginhost.Manager.Host). Its DB reaches the plugin's tables by their
// declared names:
//
//	db := inst.Host(t, "notes").DB()
//	db.QueryRowContext(ctx, "SELECT count(*) FROM "+db.Table("notes")).Scan(&n)
func (inst *Instance) Host(t testing.TB, id string) *pluginhost.Host {
	t.Helper()
	h, err := inst.Manager.Host(id)
	if err != nil {
		t.Fatalf("pluginhosttest: %v", err)
	}
	return h
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

// testOutput writes whole lines to a test's output until the test ends.
type testOutput struct {
	mu   sync.Mutex
	w    io.Writer // the test's Output()
	done bool
}

func (o *testOutput) write(line []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.done {
		_, _ = o.w.Write(line)
	}
}

func (o *testOutput) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.done = true
}

// logHandler writes each record as one line of the test's output, in
// slog's text format without the time, prefixed with the file and line of
// the code that logged it, as t.Log prefixes its caller's.
type logHandler struct {
	out   *testOutput
	level slog.Leveler
	with  []func(slog.Handler) slog.Handler // WithAttrs and WithGroup, in order
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	var buf bytes.Buffer
	buf.WriteString(source(r.PC))
	buf.WriteString(": ")
	var th slog.Handler = slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: h.level, ReplaceAttr: dropTime})
	for _, with := range h.with {
		th = with(th)
	}
	if err := th.Handle(ctx, r); err != nil {
		return err
	}
	h.out.write(buf.Bytes())
	return nil
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.and(func(th slog.Handler) slog.Handler { return th.WithAttrs(attrs) })
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	return h.and(func(th slog.Handler) slog.Handler { return th.WithGroup(name) })
}

func (h *logHandler) and(with func(slog.Handler) slog.Handler) *logHandler {
	return &logHandler{out: h.out, level: h.level, with: append(slices.Clip(h.with), with)}
}

// source is file:line of pc, the base name of the file as t.Log writes it.
func source(pc uintptr) string {
	if pc == 0 {
		return "???:1"
	}
	f, _ := runtime.CallersFrames([]uintptr{pc}).Next()
	return filepath.Base(f.File) + ":" + strconv.Itoa(f.Line)
}

func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// PostgresURLEnv names the environment variable with the URL of a
// PostgreSQL server for tests; EachDatabase runs on it when it is set.
const PostgresURLEnv = testdb.PostgresURLEnv

// EachDatabase runs fn as a subtest per database, named after its
// dialect, with Options that select the database: pass them to Start. It
// runs on SQLite and, when the environment variable
// PLUGINHOST_TEST_POSTGRES_URL is set, on PostgreSQL; given dialects, on
// those only (pluginhost.Postgres for a test of PostgreSQL behaviour).
// Without the variable the PostgreSQL subtest is skipped with a message
// saying how to enable it (a failure when PLUGINHOST_REQUIRE_POSTGRES=1).
func EachDatabase(t *testing.T, fn func(t *testing.T, opts Options), dialects ...pluginhost.Dialect) {
	t.Helper()
	for _, d := range dialects {
		if d != pluginhost.SQLite && d != pluginhost.Postgres {
			t.Fatalf("pluginhosttest: EachDatabase: unknown dialect %q; want %q or %q", d, pluginhost.SQLite, pluginhost.Postgres)
		}
	}
	if len(dialects) == 0 {
		dialects = []pluginhost.Dialect{pluginhost.SQLite, pluginhost.Postgres}
	}
	for _, d := range dialects {
		t.Run(string(d), func(t *testing.T) {
			var opts Options
			if d == pluginhost.Postgres {
				opts.PostgresURL = testdb.PostgresURL(t)
			}
			fn(t, opts)
		})
	}
}
