package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
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
	// Warnings lists what was ignored: unknown manifest fields, settings
	// or groups defined earlier, undeclared config values.
	Warnings []string `json:"warnings,omitempty"`
	// MissingSettings lists the plugin's required settings without a value.
	MissingSettings []string      `json:"missing_settings,omitempty"`
	Routes          []RouteInfo   `json:"routes,omitempty"`
	Timings         []PhaseTiming `json:"timings,omitempty"`
	// Panics counts the panics recovered in the plugin's code since Start.
	Panics int `json:"panics,omitempty"`
	// EventsDropped counts events its asynchronous subscriptions dropped
	// because their queue was full.
	EventsDropped int64 `json:"events_dropped,omitempty"`
}

// Manager runs the plugins of a registry: it resolves them, migrates the
// database, merges settings and serves their routes. Create it with [New];
// its methods are safe for concurrent use.
type Manager struct {
	cfg      Config
	log      *slog.Logger
	db       *DB // the library's own handle, no table prefix
	settings *Settings

	life    sync.Mutex // serializes Start and Shutdown
	started bool
	stopped bool
	stopErr error

	events     *eventBus
	extensions *extensionRegistry
	health     healthState
	ready      atomic.Bool // Start has finished and Shutdown has not begun

	instance string // names this Manager in its announcements
	ctl      controller

	sources []settingsSource // merged settings sources, in merge order

	mu     sync.Mutex // guards the mutable fields of every plugin below
	all    []*plugin  // every registered plugin, by id
	byID   map[string]*plugin
	order  []*plugin // startable plugins in dependency order
	mounts atomic.Pointer[mountTable]
}

// plugin is the Manager's record of one registered plugin.
type plugin struct {
	id       string
	plugin   Plugin
	manifest *Manifest // nil when it did not parse
	host     *Host
	logger   *slog.Logger

	order int // position in the dependency order, -1 when not ordered

	// Guarded by Manager.mu.
	state       State
	reason      string
	disabledBy  string // the dependency whose being disabled disabled this one
	warnings    []string
	timings     []PhaseTiming
	initialized bool        // Init succeeded (or there is none): Shutdown is owed
	panics      int         // recovered panics since Start
	recent      []time.Time // times of the panics within Config.PanicWindow
	mux         *chi.Mux
	routes      []RouteInfo
}

func (p *plugin) alive() bool { return p.state == StateStarting || p.state == StateRunning }

// New validates cfg and returns a Manager that has not started. Every
// problem in cfg is reported, each naming its field.
func New(cfg Config) (*Manager, error) {
	sealer, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	m := &Manager{cfg: cfg, log: cfg.Logger, byID: map[string]*plugin{}, instance: newInstanceID()}
	m.events = newEventBus(m)
	m.extensions = newExtensionRegistry(m)
	m.db = &DB{sql: cfg.DB, dialect: cfg.Dialect}
	m.settings = newSettings(m.db, sealer, cfg.Logger)
	m.settings.onChange = m.settingChanged
	m.mounts.Store(&mountTable{byID: map[string]*mount{}})
	return m, nil
}

// Settings returns the global settings store. Its definitions and values
// are loaded by Start.
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
// then Start undoes what it started and returns an error naming it. A
// failing core migration, or a database that cannot be reached, fails
// Start. Start may be called once.
func (m *Manager) Start(ctx context.Context) error {
	m.life.Lock()
	defer m.life.Unlock()
	switch {
	case m.stopped:
		return ErrClosed
	case m.started:
		return ErrAlreadyStarted
	}
	m.started = true
	began := time.Now()
	if err := m.start(ctx); err != nil {
		m.stopController()
		m.mu.Lock()
		for _, p := range m.all {
			if p.alive() {
				p.state, p.reason = StateStopped, "Start failed"
			}
		}
		m.mu.Unlock()
		m.remount()
		// Undo what started, within a bound even if ctx is already done.
		undoCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startUndoTimeout)
		if undoErr := m.shutdownPlugins(undoCtx, m.order); undoErr != nil {
			m.log.Error("shutting down the plugins of a failed start", "err", undoErr)
		}
		cancel()
		m.events.close()
		return err
	}
	// Not ready if Shutdown began meanwhile and stopped the controller.
	m.ready.Store(m.controlling())
	m.logStates(time.Since(began))
	m.mu.Lock()
	var running []string
	for _, p := range m.order {
		if p.state == StateRunning {
			running = append(running, p.id)
		}
	}
	m.mu.Unlock()
	for _, id := range running {
		m.events.emit(ctx, PluginStarted{Plugin: id})
	}
	return nil
}

func (m *Manager) start(ctx context.Context) error {
	m.discover()

	sess, err := m.openSchemaSession(ctx)
	if err != nil {
		return err
	}
	defer sess.close(ctx)
	overrides, err := m.readOverrides(ctx, sess.conn, sess.ledger)
	if err != nil {
		return fmt.Errorf("pluginhost: cannot start: %w", err)
	}
	m.resolve(overrides)
	if err := m.requiredErr(); err != nil {
		return err
	}
	if err := m.migrateCore(ctx, sess); err != nil {
		return fmt.Errorf("pluginhost: core migrations: %w", err)
	}
	m.startController(ctx)
	return m.bringUp(ctx, sess, m.order, m.requiredErr)
}

// requiredErr returns an error wrapping ErrRequired for every required
// plugin that is not starting or running.
func (m *Manager) requiredErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	// A plugin named in Config.Required must run; RequireAll only covers
	// the plugins that are not disabled.
	check := func(id string, p *plugin, named bool) {
		switch {
		case p == nil:
			errs = append(errs, fmt.Errorf("%w: plugin %q is not registered", ErrRequired, id))
		case p.state == StateFailed:
			errs = append(errs, fmt.Errorf("%w: plugin %q failed: %s", ErrRequired, id, p.reason))
		case p.state == StateDisabled && named:
			errs = append(errs, fmt.Errorf("%w: plugin %q is disabled: %s", ErrRequired, id, p.reason))
		}
	}
	for _, id := range m.cfg.Required {
		check(id, m.byID[id], true)
	}
	if m.cfg.RequireAll {
		for _, p := range m.all {
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
	m.mu.Lock()
	defer m.mu.Unlock()
	running := 0
	for _, p := range m.all {
		switch p.state {
		case StateRunning:
			running++
			p.logger.Info("plugin running", "version", p.manifest.Version, "routes", len(p.routes))
		case StateDisabled:
			p.logger.Info("plugin disabled", "reason", p.reason)
		default:
			p.logger.Warn("plugin not started", "state", p.state, "reason", p.reason)
		}
		for _, w := range p.warnings {
			p.logger.Warn("plugin warning", "warning", w)
		}
		if missing := m.settings.missing(p.id); len(missing) > 0 {
			p.logger.Warn("required settings have no value", "keys", missing)
		}
	}
	m.log.Info("pluginhost started", "plugins", len(m.all), "running", running, "took", took)
}

// Status reports every registered plugin, sorted by id. Before Start it is
// empty.
func (m *Manager) Status() []PluginStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]PluginStatus, 0, len(m.all))
	for _, p := range m.all {
		st := PluginStatus{
			ID: p.id, State: p.state, Reason: p.reason,
			Warnings: slices.Clone(p.warnings), MissingSettings: m.settings.missing(p.id),
			Timings: slices.Clone(p.timings), Panics: p.panics, EventsDropped: m.events.dropped(p.id),
		}
		if p.manifest != nil {
			st.Name, st.Version = p.manifest.Name, p.manifest.Version
		}
		if p.state == StateRunning {
			st.Routes = slices.Clone(p.routes)
		}
		out = append(out, st)
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
	m.ready.Store(false)
	m.stopController() // no control operation runs from here on
	m.life.Lock()
	defer m.life.Unlock()
	// Again, now that a Start that was running has finished.
	m.ready.Store(false)
	m.stopController()
	if m.stopped {
		return m.stopErr
	}
	m.stopped = true
	m.mu.Lock()
	var stopping []string
	for _, p := range m.all {
		if p.alive() {
			p.state, p.reason = StateStopped, "the manager was shut down"
			stopping = append(stopping, p.id)
		}
	}
	m.mu.Unlock()
	closed := m.remount()
	for _, id := range stopping {
		m.events.dropPlugin(id)
		m.extensions.dropPlugin(id)
	}
	if err := drain(ctx, closed); err != nil {
		m.log.Warn("requests still in flight at shutdown", "err", err)
	}
	m.stopErr = m.shutdownPlugins(ctx, m.order)
	m.events.close()
	if m.stopErr == nil {
		m.log.Info("pluginhost shut down")
	}
	return m.stopErr
}

// shutdownPlugins runs the Shutdown hooks of the initialized plugins among
// ps in reverse order and joins their errors.
func (m *Manager) shutdownPlugins(ctx context.Context, ps []*plugin) error {
	var errs []error
	var grace <-chan time.Time // after the deadline: one shared grace period
	for i := len(ps) - 1; i >= 0; i-- {
		p := ps[i]
		m.mu.Lock()
		owed := p.initialized
		p.initialized = false
		m.mu.Unlock()
		sd, ok := p.plugin.(Shutdowner)
		if !owed || !ok {
			continue
		}
		start := time.Now()
		err := m.awaitHook(ctx, p, PhaseShutdown, func(ctx context.Context) error { return sd.Shutdown(ctx, p.host) }, &grace)
		m.mu.Lock()
		p.timings = append(p.timings, PhaseTiming{PhaseShutdown, time.Since(start)})
		m.mu.Unlock()
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
	m.mu.Lock()
	defer m.mu.Unlock()
	dep := m.byID[id]
	if dep == nil || !dep.alive() {
		state := "not registered"
		if dep != nil {
			state = string(dep.state)
		}
		return nil, fmt.Errorf("%w: plugin %q: dependency %q is %s", ErrNotFound, from, id, state)
	}
	return dep.plugin, nil
}

// settingChanged publishes a SettingChanged event.
func (m *Manager) settingChanged(ctx context.Context, key, owner string) {
	m.events.emit(ctx, SettingChanged{Key: key, Owner: owner})
}
