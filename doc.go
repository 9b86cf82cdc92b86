// Package pluginhost hosts plugins in-process: Go packages compiled into a
// service that register themselves at init, the way database/sql drivers
// do. A [Manager] validates their manifests, migrates the database, gives
// each plugin its own tables, merges their settings with the host's and
// serves each plugin's HTTP routes under /api/plugin/<id>/.
//
// # Quick start
//
// A plugin is a type with a Manifest method returning its plugin.toml:
//
//	//go:embed plugin.toml
//	var manifest []byte
//
//	type Plugin struct{}
//
//	func init() { pluginhost.Register(&Plugin{}) }
//
//	func (*Plugin) Manifest() []byte { return manifest }
//
//	func (*Plugin) RegisterRoutes(r chi.Router, h *pluginhost.Host) {
//		r.Get("/hello", func(w http.ResponseWriter, r *http.Request) {
//			w.Write([]byte("hello from " + h.ID()))
//		})
//	}
//
// The host imports the plugin packages, starts a Manager and mounts its
// handler:
//
//	m, err := pluginhost.New(pluginhost.Config{DB: db})
//	if err != nil { ... }
//	if err := m.Start(ctx); err != nil { ... }
//	defer m.Shutdown(context.Background())
//	router.Mount("/api/plugin", m.Handler())
//
// # Capabilities
//
// Plugin has one method; everything else is an optional interface the
// Manager finds by type assertion: [TableProvider] (declared tables),
// [Migrator] (SQL migrations per dialect), [Installer] and [Upgrader]
// (work once per database when the plugin is installed, or when its
// version rises), [SeedOncer] (data written once per database), [Seeder]
// (work on every boot), [Initializer],
// [RouteRegistrar], [Shutdowner], [HealthChecker] and [ConsoleAssets]
// (pages for the admin console). Every hook receives the plugin's
// [Host]: its id and manifest, a [DB] that knows its table names, a logger,
// the [Settings], its [PluginConfig] and its dependencies.
//
// # Lifecycle
//
// [Manager.Start] runs these phases in order:
//
//  1. Discover: snapshot the registry; every manifest was parsed at
//     Register, and one that failed is reported, not fatal.
//  2. Resolve: apply Config.Disabled and the persisted enable flags, check
//     each manifest's host constraint against [APIVersion], resolve config
//     values, and order the plugins by dependency (ties by id); a missing,
//     incompatible, cyclic, failed or disabled dependency skips the plugin.
//  3. Core: the library's tables, then Config.CoreMigrations, each
//     migration in one transaction with its ledger row. A failure fails
//     Start; no plugin code has run yet.
//  4. Schema: per plugin, its declared tables, then its migrations, then
//     its SeedOnce hook if the ledger shows it has not run on this database,
//     in one transaction under the migration lock, recorded in the ledger in
//     that transaction: it runs once per database, however many replicas
//     boot together. A failure rolls back that plugin's work only.
//  5. Settings: from here on the Manager hears the changes other replicas
//     announce; then core definitions first, then each plugin's; defaults
//     are written only where no value exists.
//  6. Seed (every boot), 7. Init, 8. Routes: each plugin's hooks, in
//     order.
//  9. Running: the plugins that finished every phase are served, and
//     runtime operations ([Manager.Enable], [Manager.Disable]) are
//     accepted.
//
// A plugin that fails a phase is marked failed with the reason, together
// with its dependents, and nothing of it is mounted; the others go on.
// Panics in hooks and handlers are recovered and logged with the plugin id
// and stack. [Manager.Shutdown] calls the Shutdown hooks in reverse order.
// [Manager.Status] reports each plugin's state, reason, warnings, missing
// required settings, routes and phase timings.
//
// # Database
//
// The host passes its *sql.DB: SQLite (github.com/mattn/go-sqlite3) or
// PostgreSQL (github.com/jackc/pgx/v5/stdlib). A plugin's declared table
// "items" is created as "<id>__items" (hyphens in the id become
// underscores), so plugins cannot collide with each other or the core and
// hand-written SQL needs no quoting. Every applied step is recorded in the
// ledger table pluginhost_ledger with a checksum. A declared table that
// changed is brought up to date when nothing is lost (a new column, index,
// dropped NOT NULL, …) and refused otherwise with a [*SchemaChangeError]
// giving the SQL a migration needs; a migration that changed after it was
// applied is refused. Queries through [DB] take "?" placeholders on both
// dialects, and run in the plugin's database sandbox.
//
// [Manager.Plan] reports what Start would do without doing it;
// [Manager.Migrate] applies the schema and stops, for a release job. A
// plugin that is no longer registered is listed as removed;
// [Manager.Export] writes its rows as JSON lines and [Manager.Purge]
// removes what it left.
//
// # Settings
//
// Global settings are typed (string, number, boolean), grouped, and
// persisted in pluginhost_settings. Core settings always win; a plugin key
// or group id that already exists is ignored with a warning. Reads come
// from an in-memory snapshot and do not allocate. Encrypted settings are
// sealed with AES-256-GCM under Config.SecretKey.
//
// # Runtime control
//
// [Manager.Disable] and [Manager.Enable] switch plugins off and on without
// a restart; the choice is persisted and the other replicas follow it.
// Panics in plugin code are recovered and counted: Config.PanicLimit of
// them within Config.PanicWindow fail the plugin until it is enabled again.
// Hooks run within Config.HookTimeout. [Host.Go] and [Host.Every] start
// goroutines and periodic jobs the Manager supervises: recovered, canceled
// when the plugin stops, and, for [OncePerFleet] jobs, run once per period
// across the replicas.
//
// # Events and extension points
//
// [Publish] and [Subscribe] make a typed event bus: only running plugins
// receive, in plugin order, synchronously or through a bounded queue
// ([Async]). [DeclareExtensionPoint] and [Provide] let the host or a plugin
// offer an interface that plugins implement.
//
// # Health
//
// [Manager.Health] pings the database and runs the plugins' [HealthChecker]
// checks; [Manager.ReadinessHandler] serves a readiness probe.
// [Manager.Metrics] counts each plugin's requests, responses, latencies,
// faults, hooks, events and extension calls; package
// [github.com/pluginhost/pluginhost/otel] exports them to OpenTelemetry.
// Package [github.com/pluginhost/pluginhost/admin] is an HTTP API and a web
// console for operators.
//
// # Testing plugins
//
// Package [github.com/pluginhost/pluginhost/pluginhosttest] starts plugins
// against a fresh in-memory SQLite database per test.
package pluginhost
