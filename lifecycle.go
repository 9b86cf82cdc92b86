package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// APIVersion is the semantic version of the plugin API this package
// implements. A manifest's host constraint is checked against it.
const APIVersion = "1.0.0"

// State is a plugin's lifecycle state.
type State string

// The plugin states.
const (
	// StateStarting: Start is running the plugin's phases.
	StateStarting State = "starting"
	// StateRunning: every phase succeeded; the plugin's routes are served.
	StateRunning State = "running"
	// StateDisabled: the plugin was disabled by Config or an operator, or
	// depends on a disabled plugin.
	StateDisabled State = "disabled"
	// StateFailed: a phase failed, or the manifest or a dependency did;
	// nothing of the plugin is mounted.
	StateFailed State = "failed"
	// StateStopped: the Manager was shut down.
	StateStopped State = "stopped"
	// StateRemoved: the plugin is not registered, but the database records
	// it (its line of the migration ledger has rows): its tables, settings
	// and ledger rows are still there, listed in PluginStatus.Tables,
	// SettingKeys and LedgerRows. It serves nothing and cannot be started;
	// [Manager.Export] writes its rows, [Manager.Purge] removes it.
	StateRemoved State = "removed"
)

// The phases of Start, as named in PluginStatus.Timings and failure reasons.
const (
	PhaseDiscover = "discover"
	PhaseResolve  = "resolve"
	PhaseSchema   = "schema"
	PhaseSettings = "settings"
	PhaseSeed     = "seed"
	PhaseInit     = "init"
	PhaseRoutes   = "routes"
	PhaseShutdown = "shutdown"
)

// PhaseTiming is the time one plugin spent in one phase.
type PhaseTiming struct {
	Phase    string        `json:"phase"`
	Duration time.Duration `json:"duration_ns"`
}

// PluginStatus reports one plugin's state, as [Manager.Status] returns it.
type PluginStatus struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"`
	Version string `json:"version,omitempty"`
	State   State  `json:"state"`
	// Reason says why a plugin is disabled or failed.
	Reason string `json:"reason,omitempty"`
	// Err is the failure behind Reason, as an error whose text is Reason,
	// for errors.Is and errors.As: it wraps the cause, such as
	// ErrIncompatible, ErrNotFound (a dependency that is not registered),
	// a *ManifestError, a *PanicError or the error a hook returned. It is
	// set while the plugin is failed, and while it is disabled because a
	// dependency is (then it wraps ErrDependency, and the dependency's own
	// error where it has one); it is nil otherwise: while the plugin
	// starts, runs or is stopped, and when an operator or Config disabled
	// it. Err is not part of the JSON; Reason is.
	Err error `json:"-"`
	// Since is when the plugin entered State.
	Since time.Time `json:"since,omitzero"`
	// Warnings lists what was ignored: unknown manifest fields, settings
	// or groups defined earlier, undeclared config values.
	Warnings []string `json:"warnings,omitempty"`
	// MissingSettings lists the plugin's required settings without a value.
	MissingSettings []string `json:"missing_settings,omitempty"`
	// Permissions lists the permissions the plugin's manifest declares,
	// with the descriptions of the host's catalog (Config.Permissions), so
	// that a host can map them to its roles.
	Permissions []Permission  `json:"permissions,omitempty"`
	Routes      []RouteInfo   `json:"routes,omitempty"`
	Timings     []PhaseTiming `json:"timings,omitempty"`
	// Reads lists the read grants the plugin's manifest declares
	// ([[reads]]): the tables and settings of its dependencies it reads.
	Reads []ReadGrant `json:"reads,omitempty"`
	// Panics counts the panics recovered in the plugin's code since Start.
	Panics int `json:"panics,omitempty"`
	// Overruns counts the calls into the plugin's code that the Manager
	// stopped waiting for since Start: they did not return within
	// Config.HookTimeout, or called runtime.Goexit. Like panics, they count
	// toward the circuit breaker.
	Overruns int `json:"overruns,omitempty"`
	// EventsDropped counts events its asynchronous subscriptions dropped
	// because their queue was full.
	EventsDropped int64 `json:"events_dropped,omitempty"`
	// InFlight is the number of the plugin's requests being served.
	InFlight int64 `json:"in_flight,omitempty"`
	// Rejected counts the requests answered 503 since Start because the
	// plugin already served Config.MaxInFlight of them.
	Rejected int64 `json:"rejected,omitempty"`
	// Workers lists the goroutines ([Host.Go]) and periodic jobs
	// ([Host.Every]) of the plugin's current run, or of its last run once
	// it stopped, in the order they were started.
	Workers []WorkerStatus `json:"workers,omitempty"`
	// Sandbox says how the database sandbox confines the plugin's
	// statements: "sqlite authorizer", "postgres role <role>" (with
	// "(own login)" under Config.PluginDB), or "off: …" naming the Config
	// field that left it outside. It is empty for a removed plugin.
	Sandbox string `json:"sandbox"`

	// Tables, SettingKeys and LedgerRows are set for a removed plugin
	// (StateRemoved) only, as Start read them (and Purge since): what the
	// plugin left in the database. Tables are the declared names (without
	// the plugin's prefix) of the tables and views with its prefix, sorted;
	// SettingKeys the stored settings in its namespace that no registered
	// owner defines, sorted; LedgerRows the versions of its rows in the
	// migration ledger (its tables as "table:<name>", its migrations, its
	// once-hooks), sorted.
	Tables      []string `json:"tables,omitempty"`
	SettingKeys []string `json:"setting_keys,omitempty"`
	LedgerRows  []string `json:"ledger_rows,omitempty"`
}

// Manager runs the plugins of a registry: it resolves them, migrates the
// database, merges settings and serves their routes. Create it with [New];
// its methods are safe for concurrent use.
type Manager struct {
	cfg        Config
	log        *slog.Logger
	db         *DB // the library's own handle, no table prefix
	settings   *Settings
	events     *eventBus
	extensions *extensionRegistry
	health     healthState
	instance   string      // names this Manager in its announcements
	plugins    pluginTable // the plugin records and their states
	ctl        *controller // runtime changes, one at a time
	sandbox    sandboxState
	removed    removedState    // the plugins the database records that are not registered
	metrics    metricsRegistry // per plugin id, for the Manager's life

	life    sync.Mutex // serializes Start and Shutdown; guards the fields below
	started bool
	stopped bool
	stopErr error

	// sources are the merged settings sources, in merge order; used by
	// Start and then by the control goroutine only.
	sources []settingsSource
}

// New validates cfg and returns a Manager that has not started. Every
// problem in cfg is reported, each naming its field.
func New(cfg Config) (*Manager, error) {
	sealer, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, instance: newInstanceID()}
	m.plugins.init(m)
	m.ctl = &controller{m: m}
	m.events = newEventBus(m)
	m.extensions = newExtensionRegistry(m)
	m.db = &DB{sql: cfg.DB, host: cfg.DB, dialect: cfg.Dialect}
	m.sandbox.pg.dialect, m.sandbox.pg.prefix = cfg.Dialect, cfg.roleName("")
	m.settings = newSettings(m.db, sealer, cfg.Logger)
	m.settings.onChange = m.settingChanged
	return m, nil
}

// Settings returns the global settings store. Its definitions and values
// are loaded by Start: before Start, reads and writes return an error
// wrapping ErrNotRunning; after Shutdown (or a Start that failed), reads
// serve the last values and writes return an error wrapping ErrClosed.
func (m *Manager) Settings() *Settings { return m.settings }

// startUndoTimeout bounds the Shutdown hooks Start runs when it fails.
const startUndoTimeout = 30 * time.Second

// Start runs the phases, in order: discover the registered plugins and their
// manifests; resolve them (Config and persisted enable flags, host
// constraints, config values, dependencies, order); apply the library's and
// the host's core migrations; create each plugin's tables and apply its
// migrations; merge the settings; seed; Init; register routes; serve. A
// plugin that fails a phase is marked failed with the reason, together with
// its dependents, and the others go on, unless Config makes it required:
// then Start undoes what it started and returns an error naming it, which
// wraps ErrRequired and the plugin's failure (see PluginStatus.Err), so
// that errors.Is and errors.As find its cause. A
// failing core migration, or a database that cannot be reached, fails
// Start. Start may be called once.
func (m *Manager) Start(ctx context.Context) error {
	m.life.Lock()
	defer m.life.Unlock()
	if err := m.beginLocked(); err != nil {
		return err
	}
	m.settings.begin()
	began := time.Now()
	if err := m.start(ctx); err != nil {
		// Undo what started, within a bound even if ctx is already done.
		undoCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startUndoTimeout)
		defer cancel()
		if undoErr := m.stop(undoCtx, "Start failed"); undoErr != nil {
			m.log.Error("shutting down the plugins of a failed start", "err", undoErr)
		}
		return err
	}
	m.ctl.openUp() // not if Shutdown began meanwhile
	m.logStates(time.Since(began))
	m.announce(ctx)
	return nil
}

// beginLocked marks m started, or says why it cannot start: Start and
// Migrate may be called once, and not after Shutdown. m.life must be held.
func (m *Manager) beginLocked() error {
	switch {
	case m.stopped:
		return ErrClosed
	case m.started:
		return ErrAlreadyStarted
	}
	m.started = true
	return nil
}

// start runs the phases of Start, in the order the package doc gives.
func (m *Manager) start(ctx context.Context) error {
	required := m.requiredErr
	plugins, err := m.migrateSchema(ctx, required)
	if err != nil {
		return err
	}

	// Changes other replicas announce are heard from here on, before the
	// settings are read.
	m.ctl.start(ctx)

	// Settings, seed, Init, routes; then the plugins that finished every
	// phase run.
	return m.bringUp(ctx, plugins, required)
}

// migrateSchema runs the phases up to the schema, for Start and Migrate:
// discover, resolve, core migrations, each plugin's schema. It returns the
// plugins in order, and closes the schema session before it returns, so
// that seeds and Init have the pool (a one-connection pool needs it back).
func (m *Manager) migrateSchema(ctx context.Context, required func() error) ([]*plugin, error) {
	// Discover: the registry's plugins and their manifests.
	m.discover()

	// Resolve, core and schema read the ledger, once, on a session of their
	// own, which holds the migration lock while there is work to do.
	sess, err := openSchemaSession(ctx, m)
	if err != nil {
		return nil, err
	}
	defer sess.close(ctx)

	// Resolve: enable flags, host constraints, config values, dependencies,
	// order.
	if err := m.resolve(ctx, sess); err != nil {
		return nil, err
	}
	if err := required(); err != nil {
		return nil, err
	}

	// Core: the library's own tables, then the host's migrations.
	if err := sess.migrateCore(ctx, m.cfg.CoreMigrations); err != nil {
		return nil, fmt.Errorf("pluginhost: core migrations: %w", err)
	}

	// Schema: each plugin's tables and migrations, in its own transaction.
	plugins := m.plugins.ordered()
	if err := m.migratePlugins(ctx, sess, plugins, required); err != nil {
		return nil, err
	}
	if err := m.readRemoved(ctx, sess); err != nil {
		m.log.Warn("could not list the plugins the database records that are not registered", "err", err)
	}
	return plugins, nil
}

// announce sends the built-in events of the state changes made so far.
func (m *Manager) announce(ctx context.Context) {
	for _, e := range m.plugins.takeEvents() {
		m.events.emit(ctx, e)
	}
}

// requiredErr returns an error wrapping ErrRequired for every required
// plugin that is not starting or running, each wrapping the plugin's
// failure too (ErrNotFound for one that is not registered).
func (m *Manager) requiredErr() error {
	var errs []error
	// A plugin named in Config.Required must run; RequireAll only covers
	// the plugins that are not disabled.
	check := func(id string, p *plugin, named bool) {
		if p == nil {
			errs = append(errs, withCauses(fmt.Sprintf("%v: plugin %q is not registered", ErrRequired, id), ErrRequired, ErrNotFound))
			return
		}
		switch state, reason, err := m.plugins.outcome(p); {
		case state == StateFailed:
			errs = append(errs, withCauses(fmt.Sprintf("%v: plugin %q failed: %s", ErrRequired, id, reason), ErrRequired, err))
		case state == StateDisabled && named:
			// err wraps ErrDependency when a dependency disabled it.
			errs = append(errs, withCauses(fmt.Sprintf("%v: plugin %q is disabled: %s", ErrRequired, id, reason), ErrRequired, err))
		}
	}
	for _, id := range m.cfg.Required {
		check(id, m.plugins.get(id), true)
	}
	if m.cfg.RequireAll {
		for _, p := range m.plugins.list() {
			if !slices.Contains(m.cfg.Required, p.id) {
				check(p.id, p, false)
			}
		}
	}
	return errors.Join(errs...)
}

// isRequired reports whether Config makes plugin id required.
func (m *Manager) isRequired(id string) bool {
	return m.cfg.RequireAll || slices.Contains(m.cfg.Required, id)
}

func (m *Manager) logStates(took time.Duration) {
	statuses := m.Status()
	running := 0
	for _, st := range statuses {
		if st.State == StateRemoved {
			m.log.Info("plugin removed: the database records it, but it is not registered", "plugin", st.ID,
				"tables", st.Tables, "settings", st.SettingKeys, "ledger_rows", len(st.LedgerRows))
			continue
		}
		logger := m.plugins.get(st.ID).logger
		switch st.State {
		case StateRunning:
			running++
			logger.Info("plugin running", "version", st.Version, "routes", len(st.Routes))
		case StateDisabled:
			logger.Info("plugin disabled", "reason", st.Reason)
		default:
			logger.Warn("plugin not started", "state", st.State, "reason", st.Reason)
		}
		for _, w := range st.Warnings {
			logger.Warn("plugin warning", "warning", w)
		}
		if len(st.MissingSettings) > 0 {
			logger.Warn("required settings have no value", "keys", st.MissingSettings)
		}
	}
	m.log.Info("pluginhost started", "plugins", len(m.plugins.list()), "running", running, "took", took)
}

// Status reports every registered plugin and every removed one (see
// StateRemoved), sorted by id. Before Start it is empty.
func (m *Manager) Status() []PluginStatus {
	out := m.registeredStatus()
	if removed := m.removedStatus(); len(removed) > 0 {
		out = append(out, removed...)
		slices.SortFunc(out, func(a, b PluginStatus) int { return strings.Compare(a.ID, b.ID) })
	}
	return out
}

// registeredStatus is Status without the removed plugins.
func (m *Manager) registeredStatus() []PluginStatus {
	out := m.withPermissions(m.plugins.statuses(m.settings.missing, m.events.dropped))
	mounts := m.plugins.mounts.Load().byID
	for i := range out {
		out[i].Sandbox = m.cfg.sandboxName(out[i].ID)
		if mnt := mounts[out[i].ID]; mnt != nil {
			out[i].Rejected = mnt.rejected.Load()
			if mnt.running {
				out[i].InFlight = mnt.inflight.Load()
			}
		}
	}
	return out
}

// Shutdown stops serving plugin routes, lets in-flight requests finish,
// then calls every started plugin's Shutdown hook in reverse dependency
// order, with ctx: a hook that has not returned when ctx is done is left
// behind and reported, and the next plugin is still called. It returns all
// hook errors joined and is idempotent: later calls return the first call's
// result. It works on a Manager that never started.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.ctl.stop() // no runtime operation runs from here on, even while Start does
	m.life.Lock()
	defer m.life.Unlock()
	if m.stopped {
		return m.stopErr
	}
	m.stopped = true
	m.stopErr = m.stop(ctx, "the manager was shut down")
	if m.stopErr == nil {
		m.log.Info("pluginhost shut down")
	}
	return m.stopErr
}

// stop is the one stop path, of Shutdown and of a Start that failed: it
// stops the controller, closes the event bus (asynchronous subscribers get
// what was queued for them first), moves every starting or running plugin
// to stopped with reason (which closes its gate), drops their providers,
// lets in-flight requests finish within ctx, runs the Shutdown hooks owed
// in reverse order and refuses further settings writes (ErrClosed). It
// returns the hooks' errors joined.
func (m *Manager) stop(ctx context.Context, reason string) error {
	m.ctl.stop()
	m.events.close() // delivers what is queued while the plugins still run
	stopped, closed := m.plugins.stopAll(reason)
	for _, p := range stopped {
		m.events.dropPlugin(p.id)
		m.extensions.dropPlugin(p.id)
	}
	if err := drain(ctx, closed); err != nil {
		m.log.Warn("requests still in flight at shutdown", "err", err)
	}
	err := m.shutdownPlugins(ctx, m.plugins.ordered())
	m.settings.close() // after the Shutdown hooks, which may still write
	m.sandbox.pg.close()
	return err
}

// shutdownPlugins runs the Shutdown hooks of the initialized plugins among
// ps in reverse order, each once the plugin's goroutines and jobs returned
// (see awaitWorkers), and joins their errors.
func (m *Manager) shutdownPlugins(ctx context.Context, ps []*plugin) error {
	var errs []error
	var grace <-chan time.Time // after the deadline: one shared grace period
	for i := len(ps) - 1; i >= 0; i-- {
		p := ps[i]
		m.awaitWorkers(ctx, p, &grace)
		owed := m.plugins.takeInitialized(p)
		sd, ok := p.plugin.(Shutdowner)
		if !owed || !ok {
			continue
		}
		start, h := time.Now(), m.plugins.hostOf(p)
		err := m.awaitHook(ctx, p, PhaseShutdown, func(ctx context.Context) error { return sd.Shutdown(ctx, h) }, &grace)
		m.plugins.addTiming(p, PhaseShutdown, time.Since(start))
		if err != nil {
			p.logger.Error("plugin shutdown failed", "err", err)
			errs = append(errs, fmt.Errorf("pluginhost: plugin %q: shutdown: %w", p.id, err))
		}
	}
	return errors.Join(errs...)
}

// dependency returns the plugin id for its dependent from, while it is
// starting or running.
func (m *Manager) dependency(from, id string) (Plugin, error) {
	dep := m.plugins.get(id)
	state := State("not registered")
	if dep != nil {
		state, _, _ = m.plugins.stateOf(dep)
	}
	if state != StateStarting && state != StateRunning {
		return nil, fmt.Errorf("%w: plugin %q: dependency %q is %s", ErrNotFound, from, id, state)
	}
	return dep.plugin, nil
}

// settingChanged publishes a SettingChanged event.
func (m *Manager) settingChanged(ctx context.Context, key, owner string) {
	m.events.emit(ctx, SettingChanged{Key: key, Owner: owner})
}
