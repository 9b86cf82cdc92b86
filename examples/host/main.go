// Command host is an example service that hosts the example plugins notes
// and audit. It serves on -addr (default :8080) with the database -db: an
// SQLite file (default pluginhost-example.db) or a postgres:// URL.
//
//	go run ./examples/host
//	curl localhost:8080/api/health
//	curl localhost:8080/api/plugin/notes/notes
//	curl -d '{"title":"hi","body":"there"}' localhost:8080/api/plugin/notes/notes
//	curl localhost:8080/api/plugin/audit/events
//	curl localhost:8080/api/ready
//	curl -X POST -H "Authorization: Bearer $T" localhost:8080/api/admin/plugins/notes/disable
//
// The admin API at /api/admin takes the bearer token in
// PLUGINHOST_ADMIN_TOKEN; when that is unset, the host makes one and prints
// it at start.
package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
	_ "github.com/mattn/go-sqlite3"    // SQLite driver "sqlite3"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/admin"
	"github.com/pluginhost/pluginhost/examples/hostapi"
	// The example plugins register themselves when imported.
	_ "github.com/pluginhost/pluginhost/examples/plugins/audit"
	_ "github.com/pluginhost/pluginhost/examples/plugins/notes"
)

//go:embed migrations
var migrations embed.FS

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "host:", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	addr, db string
}

// run serves until ctx is done, then shuts down. ready, when not nil,
// receives the address the server listens on.
func run(ctx context.Context, args []string, logOut io.Writer, ready chan<- string) error {
	fsFlags := flag.NewFlagSet("host", flag.ContinueOnError)
	var opts options
	fsFlags.StringVar(&opts.addr, "addr", ":8080", "address to serve on")
	fsFlags.StringVar(&opts.db, "db", "pluginhost-example.db", "SQLite file, or a postgres:// URL")
	if err := fsFlags.Parse(args); err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(logOut, nil))

	token, err := adminToken(logger)
	if err != nil {
		return err
	}
	app, err := newApp(ctx, opts.db, pluginhost.DefaultRegistry, logger, token)
	if err != nil {
		return err
	}
	defer app.close()

	ln, err := net.Listen("tcp", opts.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: app.handler, ReadHeaderTimeout: 10 * time.Second}
	logger.Info("serving", "addr", ln.Addr().String(), "db", redact(opts.db))
	if ready != nil {
		ready <- ln.Addr().String()
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return errors.Join(srv.Shutdown(shutdownCtx), app.manager.Shutdown(shutdownCtx))
}

// app is the started host: its database, manager and routes.
type app struct {
	db      *sql.DB
	manager *pluginhost.Manager
	handler http.Handler
}

// newApp opens the database, starts the plugins of reg and builds the
// host's router.
func newApp(ctx context.Context, dsn string, reg *pluginhost.Registry, logger *slog.Logger, token string) (*app, error) {
	db, err := openDB(dsn)
	if err != nil {
		return nil, err
	}
	key, err := secretKey(dsn, logger)
	if err != nil {
		db.Close()
		return nil, err
	}
	core, _ := fs.Sub(migrations, "migrations")
	m, err := pluginhost.New(pluginhost.Config{
		DB:             db,
		Registry:       reg,
		Logger:         logger,
		CoreMigrations: core,
		CoreSettingGroups: []pluginhost.SettingGroup{
			{ID: "general", Name: "General", SortOrder: 0},
		},
		CoreSettings: []pluginhost.Setting{
			{Key: "app.name", Type: pluginhost.StringType, Default: "pluginhost example", Group: "general",
				Description: "The name the service shows."},
		},
		SecretKey: key,
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	// Plugins add sections to /api/health through this extension point.
	reporters, err := pluginhost.DeclareExtensionPoint[hostapi.StatusReporter](m, hostapi.StatusReporters)
	if err != nil {
		db.Close()
		return nil, err
	}
	if err := m.Start(ctx); err != nil {
		db.Close()
		return nil, err
	}
	adminAPI, err := admin.New(admin.Config{Manager: m, Authorize: bearer(token)})
	if err != nil {
		_ = m.Shutdown(context.Background())
		db.Close()
		return nil, err
	}

	r := chi.NewRouter()
	r.Get("/api/health", func(w http.ResponseWriter, r *http.Request) {
		name, _ := m.Settings().String("app.name")
		plugins := map[string]string{}
		for _, st := range m.Status() {
			plugins[st.ID] = string(st.State)
		}
		reports := map[string]any{}
		_ = reporters.Each(r.Context(), func(ctx context.Context, p pluginhost.Provider[hostapi.StatusReporter]) error {
			report, err := p.Impl.Status(ctx)
			if err != nil {
				report = map[string]string{"error": err.Error()}
			}
			reports[p.Name] = report
			return nil
		})
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "%s\n", mustJSON(map[string]any{"status": "ok", "app": name, "plugins": plugins, "reports": reports}))
	})
	r.Handle("/api/ready", m.ReadinessHandler())
	r.Mount("/api/admin", adminAPI)
	r.Mount("/api/plugin", m.Handler())
	return &app{db: db, manager: m, handler: r}, nil
}

// adminToken returns the admin API's bearer token: PLUGINHOST_ADMIN_TOKEN,
// or a new random one, printed.
func adminToken(logger *slog.Logger) (string, error) {
	if t := os.Getenv("PLUGINHOST_ADMIN_TOKEN"); t != "" {
		return t, nil
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	t := hex.EncodeToString(b)
	logger.Info("PLUGINHOST_ADMIN_TOKEN is not set; made an admin token for this run", "token", t)
	return t, nil
}

// bearer lets through requests that carry the token as a bearer token.
func bearer(token string) func(http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="pluginhost admin"`)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"error":"unauthorized"}` + "\n"))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func (a *app) close() {
	_ = a.manager.Shutdown(context.Background())
	_ = a.db.Close()
}

// openDB opens an SQLite file, or PostgreSQL for a postgres:// URL.
func openDB(dsn string) (*sql.DB, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return sql.Open("pgx", dsn)
	}
	// WAL lets readers and the writer work at once; the busy timeout makes
	// concurrent writers wait instead of failing.
	return sql.Open("sqlite3", "file:"+dsn+"?_busy_timeout=5000&_foreign_keys=1&_journal_mode=WAL")
}

// secretKey returns the key that seals encrypted settings: hex from
// PLUGINHOST_SECRET_KEY, or for SQLite a key kept in a file beside the
// database, made on first start. A real service takes it from its secret
// store.
func secretKey(dsn string, logger *slog.Logger) ([]byte, error) {
	if v := os.Getenv("PLUGINHOST_SECRET_KEY"); v != "" {
		key, err := hex.DecodeString(v)
		if err != nil || len(key) != 32 {
			return nil, errors.New("PLUGINHOST_SECRET_KEY must be 64 hex digits (32 bytes)")
		}
		return key, nil
	}
	if strings.Contains(dsn, "://") {
		logger.Warn("PLUGINHOST_SECRET_KEY is not set: encrypted settings cannot be written")
		return nil, nil
	}
	path := dsn + ".key"
	if data, err := os.ReadFile(path); err == nil {
		return hex.DecodeString(strings.TrimSpace(string(data)))
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, err
	}
	logger.Info("made a secret key for encrypted settings", "file", path)
	return key, nil
}

func redact(dsn string) string {
	if i := strings.Index(dsn, "@"); i >= 0 && strings.Contains(dsn, "://") {
		return dsn[:strings.Index(dsn, "://")+3] + "…" + dsn[i:]
	}
	return dsn
}
