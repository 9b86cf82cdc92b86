package pluginhost

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"reflect"
	"slices"

	"github.com/go-chi/chi/v5"
)

// Plugin is the one method every plugin implements: it returns the plugin's
// manifest, the contents of its plugin.toml, usually embedded with go:embed.
//
// Everything else a plugin can do is an optional interface found by type
// assertion: [TableProvider], [Migrator], [Installer], [Upgrader],
// [SeedOncer], [Seeder], [Initializer], [RouteRegistrar], [Shutdowner],
// [HealthChecker] and [ConsoleAssets]. A method named like one of theirs whose signature differs is never called;
// it is reported as a warning on the plugin's status, naming the signature
// wanted. Manifest is called once, when the plugin is registered; it must
// return the same bytes every time.
type Plugin interface {
	Manifest() []byte
}

// TableProvider is implemented by plugins that declare tables. The Manager
// creates them, inside the plugin's own schema transaction, before the
// plugin's migrations run. See [Table] for the declaration rules.
type TableProvider interface {
	Tables() []Table
}

// Migrator is implemented by plugins that ship versioned SQL migrations.
// The returned file system holds one folder per dialect at its root,
// "sqlite" and "postgres", each with files named NNNN_name.sql; they are
// applied in order, after the plugin's declared tables, and recorded in the
// ledger under the plugin's id. With //go:embed migrations, return
// fs.Sub(files, "migrations"): SQL files but no folder for the current
// dialect fail the plugin.
//
// A plugin's schema work runs in one transaction, so a migration must not
// control it: a statement BEGIN, START TRANSACTION, COMMIT, END, ROLLBACK,
// ABORT, SAVEPOINT, RELEASE or PREPARE TRANSACTION (outside strings,
// comments and bodies such as a trigger's) fails the plugin before any of
// its schema work runs, naming the file and line. Of a goose migration
// only the Up section runs ("-- +goose Up" up to "-- +goose Down");
// StatementBegin and StatementEnd are accepted, and NO TRANSACTION, ENVSUB
// or any other annotation fails the plugin.
type Migrator interface {
	Migrations() fs.FS
}

// SeedOncer is implemented by plugins that put initial data into their
// tables once per database: a welcome note, default categories. SeedOnce
// runs exactly once per database, however many replicas boot together, and
// its work commits or rolls back with the plugin's schema work:
//
//   - It runs in the schema phase, inside the plugin's own schema
//     transaction, after its tables are created and its migrations applied,
//     under the migration lock (a PostgreSQL advisory lock; on SQLite the
//     transaction holds the write lock from its first statement).
//   - It runs only when the ledger has no seed row for the plugin
//     (line: the plugin id, version "hook:seed-once"), and that row is
//     written in the same transaction. Once the row exists — the next
//     boot, the other replicas — it does not run again, even if the data
//     was deleted since or Config.DevMode recreated a table; deleting the
//     row makes the next boot run it again. A warm boot costs nothing: the
//     ledger Start reads anyway shows the row.
//   - It must write through tx, whose Table knows the plugin's table names.
//     A write through h.DB() is outside the transaction, not rolled back
//     with it, and fails or waits: on PostgreSQL the tables created in the
//     transaction are not visible to other connections yet; on SQLite the
//     transaction holds the write lock (the write waits for the busy
//     timeout, then fails). tx is the Manager's: its Commit and Rollback
//     are refused and its SQL is nil.
//   - An error or a panic fails the plugin, and its dependents, and rolls
//     back everything: its new tables, its migrations, its rows, the
//     ledger rows. The next boot tries again from the start.
//   - It is bounded by Config.HookTimeout; a hook that overruns fails the
//     same way, and the statements it tries afterwards fail, since its
//     transaction is over. Statements must use ctx, so that one in flight
//     at the deadline is canceled.
//   - The plugin's own settings are not merged yet (that is the next
//     phase): seed from constants or the plugin's config values
//     (h.Config()), not from h.Settings().
//
// A plugin enabled at runtime ([Manager.Enable]) for the first time seeds
// then, the same way.
type SeedOncer interface {
	SeedOnce(ctx context.Context, h *Host, tx *Tx) error
}

// Installer is implemented by plugins that have work to do once, when their
// schema is first created on a database: the ledger has no row for the
// plugin yet. Install is a once-hook like [SeedOncer.SeedOnce], with the
// same rules: it runs in the plugin's schema transaction, after its tables
// are created and its migrations applied, under the migration lock,
// exactly once per database however many replicas boot together, bounded
// by Config.HookTimeout, with panics contained; its ledger row (version
// "hook:install") is written in the same transaction; an error or a panic
// fails the plugin and rolls back all of its schema work, and the next
// boot tries again. It runs before SeedOnce.
//
// It receives the schema transaction, tx, and must write through it: on
// SQLite that transaction holds the database's write lock, so a statement
// on the pool (h.DB()) would wait for it and fail at the busy timeout, and
// on PostgreSQL the tables just created are not visible outside it.
//
// A plugin whose ledger rows predate the recording of manifest versions is
// installed already: it does not run Install, even if it gains one.
type Installer interface {
	Install(ctx context.Context, h *Host, tx *Tx) error
}

// Upgrader is implemented by plugins that have work to do when their
// manifest version rises: from is the version the plugin's schema was last
// brought to on this database, recorded in the ledger (version
// "manifest-version" on the plugin's line). Upgrade runs when the manifest
// version is higher, by semantic-version precedence, than the recorded
// one, even when nothing else changed; it runs after the plugin's new
// tables and migrations, in the same transaction, with the rules of a
// once-hook (see [Installer]: tx, the lock, exactly once per database,
// HookTimeout, panics, rollback of everything on failure). Its ledger row
// is "hook:upgrade:" and the version upgraded to, so an upgrade to a given
// version runs once per database: after a downgrade that
// Config.AllowDowngrade let through, upgrading again to a version whose
// Upgrade already ran does not run it again. It runs before SeedOnce. The
// first boot of a plugin records its version and runs no Upgrade.
//
// A manifest version lower than the recorded one fails the plugin with an
// error wrapping [ErrDowngrade] that names both versions, unless
// Config.AllowDowngrade lists the plugin; an equal one does nothing.
type Upgrader interface {
	Upgrade(ctx context.Context, h *Host, tx *Tx, from string) error
}

// Seeder is implemented by plugins that have work to do on every boot,
// after the plugin's schema and the settings are in place, such as
// refreshing a cache table. For data that must be written once per
// database, implement [SeedOncer] instead: checking first that a table is
// empty is not safe when replicas boot together (two of them can both see
// it empty and both insert).
type Seeder interface {
	Seed(ctx context.Context, h *Host) error
}

// Initializer is implemented by plugins that prepare state before their
// routes are registered: connect to a dependency, start a worker. Init runs
// after Seed, in dependency order.
type Initializer interface {
	Init(ctx context.Context, h *Host) error
}

// RouteRegistrar is implemented by plugins that serve HTTP. RegisterRoutes
// receives a fresh router that the Manager mounts at /api/plugin/<id>/; a
// pattern "/items" registered on it is served at /api/plugin/<id>/items.
type RouteRegistrar interface {
	RegisterRoutes(r chi.Router, h *Host)
}

// Shutdowner is implemented by plugins that hold resources. Shutdown runs
// when the Manager shuts down, in reverse dependency order, within the
// deadline of the context passed to [Manager.Shutdown].
type Shutdowner interface {
	Shutdown(ctx context.Context, h *Host) error
}

// HealthChecker is implemented by plugins that can tell whether they work:
// an upstream they need is reachable, a worker keeps up. CheckHealth
// returns nil when the plugin is healthy, or an error saying what is wrong.
//
// [Manager.Health] calls it only while the plugin is running, concurrently
// with the plugin's handlers and with other plugins' checks, with a context
// whose deadline is Config.HealthTimeout. A check that overruns is reported
// as failing without waiting for it; it should return when its context is
// done. A panic is recovered and counted against the plugin's circuit
// breaker, like a panic in a handler.
type HealthChecker interface {
	CheckHealth(ctx context.Context) error
}

// ConsoleAssets is implemented by plugins that contribute pages to the
// host's web console (the admin package's Console): ConsoleAssets returns
// a file system of static files (HTML, CSS, JavaScript, images), usually
// embedded with go:embed and narrowed with fs.Sub. The Manager serves them
// under the plugin's own namespace, at /api/plugin/<id>/_console/<file>
// (see [ConsolePath]), through the plugin's mount: like its other routes,
// they answer 503 while the plugin is disabled or failed, and pass through
// Config.Middleware. A directory serves its index.html; there are no
// directory listings. Each response carries a Content-Security-Policy that
// allows only the host's own origin (default-src 'self'), so a page loads
// its scripts and styles from its own files, not inline.
//
// The manifest's [[nav]] entries ([NavEntry]) name the pages the console
// lists in its navigation while the plugin runs.
//
// ConsoleAssets is called once per run, in the routes phase, bounded by
// Config.HookTimeout like RegisterRoutes; a nil file system serves
// nothing. The plugin must not also register routes under /_console/: the
// duplicate fails the plugin.
type ConsoleAssets interface {
	ConsoleAssets() fs.FS
}

// Host is one plugin's handle on the host: its id and manifest, its database
// handle, logger, settings, config values and the plugins it depends on.
// Every hook receives the same *Host; it is safe for concurrent use and may
// be kept for the plugin's lifetime.
type Host struct {
	id       string
	manifest *Manifest
	db       *DB
	logger   *slog.Logger
	settings *Settings
	config   *PluginConfig
	m        *Manager
	run      uint64     // the run of the plugin this Host was made for
	perms    *hostPerms // Require's state
	work     *runWork   // the run's goroutines and jobs: Go, Every
}

// ID returns the plugin's id.
func (h *Host) ID() string { return h.id }

// Manifest returns the plugin's parsed manifest. It must not be modified.
func (h *Host) Manifest() *Manifest { return h.manifest }

// DB returns the plugin's database handle, which knows the physical names of
// the plugin's tables.
func (h *Host) DB() *DB { return h.db }

// Logger returns the plugin's logger: the host's logger with a "plugin"
// attribute.
func (h *Host) Logger() *slog.Logger { return h.logger }

// Settings returns the plugin's view of the global settings: it reads the
// core's settings and the plugin's own (see [PluginSettings]) and writes
// only the plugin's own. The host's code reads and writes every setting
// through [Manager.Settings].
func (h *Host) Settings() PluginSettings {
	return PluginSettings{s: h.settings, id: h.id, manifest: h.manifest}
}

// PluginSettings is a plugin's view of the global settings, bound to the
// plugin (see [Host.Settings]). It reads the core's settings, the settings
// the plugin owns and those its manifest's [[reads]] grant it (see
// [ReadGrant]), and writes only the plugin's own. Any other plugin's
// setting is refused with an error wrapping ErrSettingAccess, and so is an
// encrypted setting of another plugin even when granted: a plugin never
// reads another's secret. A grant is read-only: Set refuses a granted key
// like any other plugin's. A plugin owns the keys of its namespace that its
// manifest declares: those whose first dot-separated segment is its id or
// the id's camelCase form ("myAwesomePlugin." for "my-awesome-plugin").
// Reads do not allocate, like those of [Settings]; a PluginSettings is safe
// for concurrent use.
type PluginSettings struct {
	s        *Settings
	id       string
	manifest *Manifest // for its [[reads]] grants, read-only
}

// String returns the value of a string setting, as [Settings.String] does,
// when the plugin may read it.
func (p PluginSettings) String(key string) (string, error) {
	if err := p.readable(key); err != nil {
		return "", err
	}
	return p.s.String(key)
}

// Number returns the value of a number setting, as [Settings.Number] does,
// when the plugin may read it.
func (p PluginSettings) Number(key string) (float64, error) {
	if err := p.readable(key); err != nil {
		return 0, err
	}
	return p.s.Number(key)
}

// Int returns the value of a number setting as an int64, as [Settings.Int]
// does, when the plugin may read it.
func (p PluginSettings) Int(key string) (int64, error) {
	if err := p.readable(key); err != nil {
		return 0, err
	}
	return p.s.Int(key)
}

// Bool returns the value of a boolean setting, as [Settings.Bool] does,
// when the plugin may read it.
func (p PluginSettings) Bool(key string) (bool, error) {
	if err := p.readable(key); err != nil {
		return false, err
	}
	return p.s.Bool(key)
}

// IsSet reports whether a setting the plugin may read has a value; false
// for any other key.
func (p PluginSettings) IsSet(key string) bool {
	return p.readable(key) == nil && p.s.IsSet(key)
}

// Owner returns who defined the setting: "core", a plugin's id, or "" for
// an undefined key.
func (p PluginSettings) Owner(key string) string { return p.s.Owner(key) }

// Set stores the value of one of the plugin's own settings, as
// [Settings.Set] does; any other key, the core's included, is refused
// with an error wrapping ErrSettingAccess and nothing is written.
func (p PluginSettings) Set(ctx context.Context, key string, value any) error {
	if owner := p.s.Owner(key); owner != "" && owner != p.id {
		return fmt.Errorf("%w: plugin %q cannot set setting %q: it belongs to %s", ErrSettingAccess, p.id, key, ownerName(owner))
	}
	return p.s.setOwned(ctx, key, value, p.id)
}

// readable returns nil when the plugin may read key: a core setting, one
// of its own, an undefined key (whose read then says so), or another
// plugin's setting that the plugin's [[reads]] grant and that is not
// encrypted. It does not allocate unless it refuses.
func (p PluginSettings) readable(key string) error {
	v := p.s.snap.Load().byKey[key]
	if v == nil || v.owner == p.id || v.owner == coreOwner {
		return nil
	}
	if !p.granted(v.owner, key) {
		return fmt.Errorf("%w: plugin %q cannot read setting %q: it belongs to plugin %q, and plugins read only the core's settings, their own and those their manifest grants (to read it, depend on %q and list the key in the settings of a [[reads]] entry for it)",
			ErrSettingAccess, p.id, key, v.owner, v.owner)
	}
	if v.def.Encrypted {
		return fmt.Errorf("%w: plugin %q cannot read setting %q of plugin %q: it is encrypted, and another plugin's encrypted setting is never readable, even with a grant",
			ErrSettingAccess, p.id, key, v.owner)
	}
	return nil
}

// granted reports whether the plugin's [[reads]] grant it key of plugin
// owner.
func (p PluginSettings) granted(owner, key string) bool {
	if p.manifest == nil {
		return false
	}
	g := p.manifest.readsOf(owner)
	return g != nil && slices.Contains(g.Settings, key)
}

// ownerName names a setting's owner in messages.
func ownerName(owner string) string {
	if owner == coreOwner {
		return "the core"
	}
	return fmt.Sprintf("plugin %q", owner)
}

// Config returns the plugin's resolved config values ([config.<key>] in its
// manifest).
func (h *Host) Config() *PluginConfig { return h.config }

// Host returns the Host of plugin id's current run, the one its hooks
// receive: for tests (pluginhosttest's Instance.Host) and for host code
// that works on a plugin's tables. The error wraps [ErrNotFound] when id is
// not registered, Start has not run, or the plugin never began a run (it
// was disabled or failed before its phases). It is safe for concurrent use.
func (m *Manager) Host(id string) (*Host, error) {
	p := m.plugins.get(id)
	if p == nil {
		return nil, fmt.Errorf("%w: plugin %q is not registered, or Start has not run", ErrNotFound, id)
	}
	if h := m.plugins.hostOf(p); h != nil {
		return h, nil
	}
	state, reason, _ := m.plugins.stateOf(p)
	return nil, fmt.Errorf("%w: plugin %q has no Host: it is %s (%s) and never began a run", ErrNotFound, id, state, reason)
}

// Dependency returns the plugin with the given id, which must be declared in
// this plugin's [dependencies] and still be starting or running. The result
// is the value the dependency registered; assert it to the interface the
// dependency documents, or use the generic [Dependency].
func (h *Host) Dependency(id string) (Plugin, error) {
	if _, declared := h.manifest.Dependencies[id]; !declared {
		return nil, fmt.Errorf("%w: plugin %q asked for dependency %q, which its manifest does not declare (add it to [dependencies])",
			ErrNotFound, h.id, id)
	}
	return h.m.dependency(h.id, id)
}

// Dependency returns the dependency id of the plugin behind h as a T, the
// interface or type the dependency offers to its dependents:
//
//	notes, err := pluginhost.Dependency[notesapi.API](h, "notes")
func Dependency[T any](h *Host, id string) (T, error) {
	var zero T
	p, err := h.Dependency(id)
	if err != nil {
		return zero, err
	}
	t, ok := p.(T)
	if !ok {
		return zero, fmt.Errorf("pluginhost: plugin %q: dependency %q is a %T, which is not a %s",
			h.id, id, p, reflect.TypeFor[T]())
	}
	return t, nil
}
