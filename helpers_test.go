package pluginhost_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// fake is a configurable plugin for tests: every hook is optional.
type fake struct {
	manifest   string
	tables     []pluginhost.Table
	migrations fs.FS
	seed       func(ctx context.Context, h *pluginhost.Host) error
	init       func(ctx context.Context, h *pluginhost.Host) error
	routes     func(r chi.Router, h *pluginhost.Host)
	shutdown   func(ctx context.Context, h *pluginhost.Host) error
}

var (
	_ pluginhost.TableProvider  = (*fake)(nil)
	_ pluginhost.Migrator       = (*fake)(nil)
	_ pluginhost.Seeder         = (*fake)(nil)
	_ pluginhost.Initializer    = (*fake)(nil)
	_ pluginhost.RouteRegistrar = (*fake)(nil)
	_ pluginhost.Shutdowner     = (*fake)(nil)
)

func (f *fake) Manifest() []byte           { return []byte(f.manifest) }
func (f *fake) Tables() []pluginhost.Table { return f.tables }
func (f *fake) Migrations() fs.FS          { return f.migrations }
func (f *fake) RegisterRoutes(r chi.Router, h *pluginhost.Host) {
	if f.routes != nil {
		f.routes(r, h)
	}
}

func (f *fake) Seed(ctx context.Context, h *pluginhost.Host) error {
	if f.seed != nil {
		return f.seed(ctx, h)
	}
	return nil
}

func (f *fake) Init(ctx context.Context, h *pluginhost.Host) error {
	if f.init != nil {
		return f.init(ctx, h)
	}
	return nil
}

func (f *fake) Shutdown(ctx context.Context, h *pluginhost.Host) error {
	if f.shutdown != nil {
		return f.shutdown(ctx, h)
	}
	return nil
}

// manifest returns a minimal manifest with extra TOML appended.
func manifest(id, version string, extra ...string) string {
	return fmt.Sprintf("id = %q\nname = %q\nversion = %q\n", id, "Plugin "+id, version) + strings.Join(extra, "\n")
}

func registry(t testing.TB, plugins ...pluginhost.Plugin) *pluginhost.Registry {
	t.Helper()
	reg := pluginhost.NewRegistry()
	for _, p := range plugins {
		require.NoError(t, reg.Register(p))
	}
	return reg
}

// env is one test's database and the config to start managers on it.
type env struct {
	t       *testing.T
	dialect testdb.Dialect
	db      *sql.DB
	dsn     string
	logs    *logBuffer
}

func newEnv(t *testing.T, d testdb.Dialect) *env {
	db, dsn := testdb.Open(t, d)
	return &env{t: t, dialect: d, db: db, dsn: dsn, logs: &logBuffer{}}
}

// eachEnv runs fn as a parallel subtest per dialect (SQLite always,
// PostgreSQL when configured), each with an env of its own.
func eachEnv(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		fn(t, newEnv(t, d))
	})
}

// config returns a Config on the env's database with the given plugins.
func (e *env) config(plugins ...pluginhost.Plugin) pluginhost.Config {
	return pluginhost.Config{
		DB:       e.db,
		Registry: registry(e.t, plugins...),
		Logger:   slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// start starts a manager and shuts it down when the test ends.
func (e *env) start(cfg pluginhost.Config) *pluginhost.Manager {
	e.t.Helper()
	m, err := pluginhost.New(cfg)
	require.NoError(e.t, err)
	require.NoError(e.t, m.Start(context.Background()))
	e.t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	return m
}

func status(t testing.TB, m *pluginhost.Manager, id string) pluginhost.PluginStatus {
	t.Helper()
	for _, st := range m.Status() {
		if st.ID == id {
			return st
		}
	}
	t.Fatalf("no status for plugin %q in %+v", id, m.Status())
	return pluginhost.PluginStatus{}
}

func serve(t testing.TB, h http.Handler, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

type contextT = context.Context

var errTest = errors.New("test failure")
