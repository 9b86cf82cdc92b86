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
//	curl -H "Authorization: Bearer $T" localhost:8080/metrics
//
// Ctrl-C (SIGINT) or SIGTERM shuts it down cleanly. Under go run, Ctrl-C
// reaches the host (the terminal signals go run and its child alike), but
// killing go run's PID leaves the compiled child serving: to run the host
// in the background, build it and run the binary.
//
// Flags:
//
//	-addr ADDR             address to serve on (:8080)
//	-db DSN                SQLite file or postgres:// URL (pluginhost-example.db)
//	-max-conns N           most database connections the host's pool holds,
//	                       open or idle (3); on PostgreSQL the host holds one
//	                       more, the connection that listens for other
//	                       replicas' changes
//	-plugin-conns N        most connections each plugin's statements hold at
//	                       once (1; Config.MaxConns); on PostgreSQL each
//	                       sandboxed plugin has a pool of its own, of as many
//	-start-timeout D       longest the start may take (2m): waiting for the
//	                       migration lock another replica holds, the
//	                       migrations, the plugins' hooks; then the host exits
//	                       with an error saying so, for its supervisor to
//	                       restart it
//	-plan                  print what a start would do (Manager.Plan) as
//	                       indented JSON on standard output and exit 0,
//	                       changing nothing: no table, ledger or key file is
//	                       created (an SQLite file that does not exist is
//	                       planned as an empty database and not created)
//	-migrate-only          apply the core's and the plugins' schema
//	                       (Manager.Migrate) and exit: no settings, Seed,
//	                       Init or serving; for a release job that migrates
//	                       before the new replicas roll out. A plugin that
//	                       fails makes it exit 1
//
// Sixteen hosts with the defaults hold at most 16 × (3 + 2×1 + 1) = 96
// connections on one PostgreSQL server, within its default max_connections
// of 100: the host's pool, the pools of its two plugins and the listener
// (TestManyHostsUnderLoadHoldTheirPoolsOnly counts them in
// pg_stat_activity under load, with -max-conns 2).
//
// The start timeout is the deadline of Start's context, which bounds
// pluginhost's wait for the PostgreSQL migration lock while another replica
// migrates (or is frozen holding it); raise it for migrations that take
// longer. On SQLite the migration lock is the database's write lock, waited
// for as long as the busy timeout (5 s per statement) allows.
//
// The admin API at /api/admin takes the bearer token in
// PLUGINHOST_ADMIN_TOKEN; when that is unset, the host makes one and prints
// it at start. The web console is at /admin/: open
// http://localhost:8080/admin/ and paste the token.
// /metrics, behind the same token, serves the plugins' metrics
// as Prometheus text through the OpenTelemetry Prometheus exporter
// (package github.com/pluginhost/pluginhost/otel); the host also starts a
// span for each plugin request and hook, on a tracer provider without an
// exporter (see telemetry.go).
//
// Encrypted settings are sealed with the key in PLUGINHOST_SECRET_KEY (64
// hex digits), or on SQLite with a key kept in the file DB.key beside the
// database, made on first start (mode 0600). Keep that file with the
// database: without it the encrypted values cannot be read, so the host
// refuses to start when it is missing while sealed values exist, or when it
// is empty or corrupt.
package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
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
	if err := runTo(ctx, os.Args[1:], os.Stdout, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "host:", err)
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	addr, db     string
	maxConns     int
	pluginConns  int
	startTimeout time.Duration
	plan         bool // -plan
	migrateOnly  bool // -migrate-only
}

// Defaults of the flags that bound what the host holds and waits for.
const (
	defaultMaxConns     = 3
	defaultPluginConns  = 1
	defaultStartTimeout = 2 * time.Minute
)

// parseOptions parses the command line.
func parseOptions(args []string) (options, error) {
	fsFlags := flag.NewFlagSet("host", flag.ContinueOnError)
	var opts options
	fsFlags.StringVar(&opts.addr, "addr", ":8080", "address to serve on")
	fsFlags.StringVar(&opts.db, "db", "pluginhost-example.db", "SQLite file, or a postgres:// URL")
	fsFlags.IntVar(&opts.maxConns, "max-conns", defaultMaxConns,
		"most database connections the pool holds, open or idle (on PostgreSQL the change listener holds one more)")
	fsFlags.IntVar(&opts.pluginConns, "plugin-conns", defaultPluginConns,
		"most database connections each plugin's statements hold at once (on PostgreSQL, the size of its own pool)")
	fsFlags.DurationVar(&opts.startTimeout, "start-timeout", defaultStartTimeout,
		"longest the start may take, waiting for the migration lock of another replica included")
	fsFlags.BoolVar(&opts.plan, "plan", false, "print what a start would do, as JSON, and exit; changes nothing")
	fsFlags.BoolVar(&opts.migrateOnly, "migrate-only", false, "apply the core's and the plugins' schema, then exit")
	if err := fsFlags.Parse(args); err != nil {
		return opts, err
	}
	if opts.plan && opts.migrateOnly {
		return opts, errors.New("-plan and -migrate-only: give one")
	}
	if opts.maxConns < 1 {
		return opts, fmt.Errorf("-max-conns %d: the pool needs at least 1 connection", opts.maxConns)
	}
	if opts.pluginConns < 1 {
		return opts, fmt.Errorf("-plugin-conns %d: a plugin needs at least 1 connection", opts.pluginConns)
	}
	if opts.startTimeout <= 0 {
		return opts, fmt.Errorf("-start-timeout %s: give a positive duration, such as %s", opts.startTimeout, defaultStartTimeout)
	}
	return opts, nil
}

// run is runTo with the standard output.
func run(ctx context.Context, args []string, logOut io.Writer, ready chan<- string) error {
	return runTo(ctx, args, os.Stdout, logOut, ready)
}

// runTo serves until ctx is done, then shuts down; with -plan it writes the
// plan to out, with -migrate-only it migrates, and returns. ready, when not
// nil, receives the address the server listens on.
func runTo(ctx context.Context, args []string, out, logOut io.Writer, ready chan<- string) error {
	opts, err := parseOptions(args)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(logOut, nil))
	if opts.plan || opts.migrateOnly {
		return oneShot(ctx, opts, pluginhost.DefaultRegistry, out, logger)
	}

	token, err := adminToken(logger)
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, opts.startTimeout)
	app, err := newApp(startCtx, opts, pluginhost.DefaultRegistry, logger, token, newTelemetry())
	timedOut := startCtx.Err() != nil && ctx.Err() == nil
	cancel() // the Manager keeps running: Start's context bounds Start only
	if err != nil {
		if timedOut && errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("the start did not finish within -start-timeout %s "+
				"(another replica may hold the migration lock, or a migration or hook is slow; raise -start-timeout if it needs longer): %w",
				opts.startTimeout, err)
		}
		return err
	}
	defer app.close()

	ln, err := net.Listen("tcp", opts.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: app.handler, ReadHeaderTimeout: 10 * time.Second}
	logger.Info("serving", "addr", ln.Addr().String(), "db", redact(opts.db), "max_conns", opts.maxConns)
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
	return errors.Join(srv.Shutdown(shutdownCtx), app.manager.Shutdown(shutdownCtx), app.telemetry.shutdown(shutdownCtx))
}

// app is the started host: its database, manager and routes.
type app struct {
	db        *sql.DB
	manager   *pluginhost.Manager
	handler   http.Handler
	telemetry *telemetry
}

// newApp opens the database, starts the plugins of reg with the spans and
// metrics of tel and builds the host's router.
func newApp(ctx context.Context, opts options, reg *pluginhost.Registry, logger *slog.Logger, token string, tel *telemetry) (*app, error) {
	db, err := openDB(opts.db, opts.maxConns)
	if err != nil {
		return nil, err
	}
	key, err := secretKey(ctx, opts.db, db, logger)
	if err != nil {
		db.Close()
		return nil, err
	}
	cfg := hostConfig(opts, db, reg, logger, key)
	tel.configure(&cfg)
	m, err := pluginhost.New(cfg)
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
	metrics, err := tel.metricsHandler(m)
	if err != nil {
		_ = m.Shutdown(context.Background())
		db.Close()
		return nil, err
	}

	console, err := admin.Console(admin.ConsoleConfig{API: "/api/admin"})
	if err != nil {
		_ = m.Shutdown(context.Background())
		db.Close()
		return nil, err
	}

	r := chi.NewRouter()
	// The web console: a page that holds no data and operates the admin
	// API with the token the operator types.
	r.Get("/admin", http.RedirectHandler("/admin/", http.StatusMovedPermanently).ServeHTTP)
	r.Handle("/admin/*", http.StripPrefix("/admin", console))
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
		st := db.Stats()
		pool := map[string]any{"max_open": st.MaxOpenConnections, "open": st.OpenConnections, "in_use": st.InUse,
			"wait_count": st.WaitCount, "wait_ms": st.WaitDuration.Milliseconds()}
		fmt.Fprintf(w, "%s\n", mustJSON(map[string]any{"status": "ok", "app": name, "plugins": plugins, "reports": reports, "db_pool": pool}))
	})
	r.Handle("/api/ready", m.ReadinessHandler())
	r.Mount("/api/admin", adminAPI)
	r.Mount("/api/plugin", m.Handler())
	// The plugins' metrics as Prometheus text, behind the admin token.
	r.With(bearer(token)).Handle("/metrics", metrics)
	return &app{db: db, manager: m, handler: r, telemetry: tel}, nil
}

// hostConfig is the Manager's Config of the host.
func hostConfig(opts options, db *sql.DB, reg *pluginhost.Registry, logger *slog.Logger, key []byte) pluginhost.Config {
	core, _ := fs.Sub(migrations, "migrations")
	return pluginhost.Config{
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
		MaxConns:  opts.pluginConns,
	}
}

// oneShot runs -plan (the plan, as indented JSON, to out) or -migrate-only,
// within -start-timeout.
func oneShot(ctx context.Context, opts options, reg *pluginhost.Registry, out io.Writer, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, opts.startTimeout)
	defer cancel()
	dsn, conns := opts.db, opts.maxConns
	if opts.plan && !isPostgres(dsn) {
		if _, err := os.Stat(dsn); errors.Is(err, fs.ErrNotExist) {
			// Opening it would create it: plan on an empty database, in
			// memory, on one connection (each has a database of its own).
			dsn, conns = ":memory:", 1
		}
	}
	db, err := openDB(dsn, conns)
	if err != nil {
		return err
	}
	defer db.Close()
	var key []byte
	if opts.plan {
		key, err = existingKey(opts.db)
	} else {
		key, err = secretKey(ctx, opts.db, db, logger)
	}
	if err != nil {
		return err
	}
	m, err := pluginhost.New(hostConfig(opts, db, reg, logger, key))
	if err != nil {
		return err
	}
	defer m.Shutdown(context.Background())
	if opts.migrateOnly {
		return m.Migrate(ctx)
	}
	plan, err := m.Plan(ctx)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(plan, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}

// existingKey is secretKey for -plan, which makes no key file: the key of
// PLUGINHOST_SECRET_KEY or of the key file, none when there is neither.
func existingKey(dsn string) ([]byte, error) {
	if os.Getenv(keyEnv) != "" || isPostgres(dsn) {
		return secretKey(context.Background(), dsn, nil, slog.New(slog.DiscardHandler))
	}
	key, err := readKeyFile(dsn + ".key")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return key, err
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
	_ = a.telemetry.shutdown(context.Background())
	_ = a.db.Close()
}

// openDB opens an SQLite file, or PostgreSQL for a postgres:// URL, with a
// pool of at most maxConns connections, all of them kept when idle: under
// load the pool neither grows past the bound nor closes and reopens
// connections between requests. A request that finds every connection busy
// waits for one, within its context.
func openDB(dsn string, maxConns int) (*sql.DB, error) {
	var db *sql.DB
	var err error
	if isPostgres(dsn) {
		db, err = sql.Open("pgx", dsn)
	} else {
		// WAL lets readers and the writer work at once; the busy timeout
		// makes concurrent writers wait instead of failing; foreign keys
		// are off in SQLite unless asked for.
		db, err = sql.Open("sqlite3", "file:"+dsn+"?_busy_timeout=5000&_foreign_keys=1&_journal_mode=WAL")
	}
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	return db, nil
}

func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

func redact(dsn string) string {
	if i := strings.Index(dsn, "@"); i >= 0 && strings.Contains(dsn, "://") {
		return dsn[:strings.Index(dsn, "://")+3] + "…" + dsn[i:]
	}
	return dsn
}
