package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/pluginhost/pluginhost/internal/migrate"
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
	ready      atomic.Bool // Start has finished and Shutdown has not begun

	instance       string        // names this Manager in its announcements
	feed           feed          // carries changes to the other Managers
	reload         chan struct{} // reload requests, merged
	background     sync.WaitGroup
	stopBackground context.CancelFunc

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
	warnings    []string
	missing     []string
	timings     []PhaseTiming
	initialized bool // Init succeeded (or there is none): Shutdown is owed
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
		// Undo what started, within a bound even if ctx is already done.
		undoCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startUndoTimeout)
		if undoErr := m.shutdownPlugins(undoCtx); undoErr != nil {
			m.log.Error("shutting down the plugins of a failed start", "err", undoErr)
		}
		cancel()
		m.stopFeed()
		m.publish(false)
		return err
	}
	m.publish(true)
	m.logStates(time.Since(began))
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
	err = m.each(PhaseSchema, func(p *plugin) error { return m.migratePlugin(ctx, sess, p) })
	sess.close(ctx) // seeds and Init use the pool; a one-connection pool needs it back
	if sess.lockErr != nil {
		// Not the fault of the plugin that needed the lock first.
		return fmt.Errorf("pluginhost: cannot start: plugin schemas: %w", sess.lockErr)
	}
	if err != nil {
		return err
	}
	m.startFeed(ctx)
	if err := m.mergeSettings(ctx); err != nil {
		return err
	}
	err = m.each(PhaseSeed, func(p *plugin) error {
		if s, ok := p.plugin.(Seeder); ok {
			return s.Seed(ctx, p.host)
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = m.each(PhaseInit, func(p *plugin) error {
		if in, ok := p.plugin.(Initializer); ok {
			if err := in.Init(ctx, p.host); err != nil {
				return err
			}
		}
		m.mu.Lock()
		p.initialized = true
		m.mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	return m.each(PhaseRoutes, func(p *plugin) error {
		rr, _ := p.plugin.(RouteRegistrar)
		mux, routes, err := buildRoutes(p.id, rr, p.host, m.cfg.Middleware)
		if err != nil {
			return err
		}
		m.mu.Lock()
		p.mux, p.routes = mux, routes
		m.mu.Unlock()
		return nil
	})
}

// each runs one phase for every plugin still starting, in order, timing it
// and recovering panics. A failure fails the plugin and its dependents. It
// returns an error only when a required plugin has failed.
func (m *Manager) each(phase string, fn func(p *plugin) error) error {
	for _, p := range m.order {
		m.mu.Lock()
		alive := p.alive()
		m.mu.Unlock()
		if !alive {
			continue
		}
		start := time.Now()
		err := callPlugin(p, phase, func() error { return fn(p) })
		m.mu.Lock()
		p.timings = append(p.timings, PhaseTiming{phase, time.Since(start)})
		if err != nil {
			m.failLocked(p, phase, err)
		}
		m.mu.Unlock()
	}
	return m.requiredErr()
}

// PanicError is the failure of a plugin hook that panicked.
type PanicError struct {
	Plugin string
	Phase  string
	Value  any
	Stack  []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("plugin %q panicked in %s: %v", e.Plugin, e.Phase, e.Value)
}

// callPlugin runs fn, which calls into plugin code, turning a panic into a
// *PanicError logged with the stack.
func callPlugin(p *plugin, phase string, fn func() error) (err error) {
	defer func() {
		if rv := recover(); rv != nil {
			pe := &PanicError{Plugin: p.id, Phase: phase, Value: rv, Stack: debug.Stack()}
			p.logger.Error("plugin panicked", "phase", phase, "panic", fmt.Sprint(rv), "stack", string(pe.Stack))
			err = pe
		}
	}()
	return fn()
}

// failLocked marks p failed in phase and fails every plugin that depends on
// it, directly or not. m.mu must be held.
func (m *Manager) failLocked(p *plugin, phase string, err error) {
	m.setLocked(p, StateFailed, phase, err)
}

// setLocked puts p in state with the reason err and cascades to its
// dependents: "dependency <id> failed" or "… disabled". m.mu must be held.
func (m *Manager) setLocked(p *plugin, state State, phase string, err error) {
	p.state, p.reason = state, phase+": "+err.Error()
	if state == StateFailed {
		p.logger.Error("plugin failed", "phase", phase, "err", err)
	}
	for _, q := range m.order {
		if !q.alive() || q.manifest == nil {
			continue
		}
		if _, dependsOnP := q.manifest.Dependencies[p.id]; dependsOnP {
			m.setLocked(q, state, phase, fmt.Errorf("dependency %s %s", p.id, state))
		}
	}
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

// mergeSettings merges the core's settings and every starting plugin's, in
// order; a plugin whose settings are refused fails.
func (m *Manager) mergeSettings(ctx context.Context) error {
	sources := []settingsSource{{owner: migrate.CoreLine, groups: m.cfg.CoreSettingGroups, settings: m.cfg.CoreSettings}}
	m.mu.Lock()
	for _, p := range m.order {
		if p.alive() {
			sources = append(sources, settingsSource{owner: p.id, groups: p.manifest.SettingGroups, settings: p.manifest.Settings})
		}
	}
	m.mu.Unlock()
	start := time.Now()
	outcomes, err := m.settings.load(ctx, sources)
	if err != nil {
		return err
	}
	took := time.Since(start)
	core := outcomes[migrate.CoreLine]
	for _, w := range core.warnings {
		m.log.Warn("core setting", "warning", w)
	}
	if len(core.missing) > 0 {
		m.log.Warn("required core settings have no value", "keys", core.missing)
	}
	m.mu.Lock()
	for _, src := range sources[1:] {
		p, o := m.byID[src.owner], outcomes[src.owner]
		p.timings = append(p.timings, PhaseTiming{PhaseSettings, took})
		p.warnings = append(p.warnings, o.warnings...)
		p.missing = o.missing
		if o.err != nil && p.alive() {
			m.failLocked(p, PhaseSettings, o.err)
		}
	}
	m.mu.Unlock()
	return m.requiredErr()
}

// publish marks the plugins that finished every phase running (when ok)
// and swaps in the routing table.
func (m *Manager) publish(ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mt := &mountTable{byID: make(map[string]*mount, len(m.all))}
	for _, p := range m.all {
		if p.alive() {
			if ok {
				p.state = StateRunning
			} else {
				p.state, p.reason = StateStopped, "Start failed"
			}
		}
		mnt := &mount{id: p.id, order: p.order, running: p.state == StateRunning, state: p.state, reason: p.reason, logger: p.logger, m: m}
		if mnt.running {
			mnt.mux, mnt.routes = p.mux, p.routes
		}
		mt.byID[p.id] = mnt
		mt.order = append(mt.order, mnt)
	}
	m.mounts.Store(mt)
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
		if len(p.missing) > 0 {
			p.logger.Warn("required settings have no value", "keys", p.missing)
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
			Warnings: slices.Clone(p.warnings), MissingSettings: slices.Clone(p.missing),
			Timings: slices.Clone(p.timings),
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

// Shutdown calls every started plugin's Shutdown hook in reverse dependency
// order, with ctx: a hook that has not returned when ctx is done is left
// behind and reported, and the next plugin is still called. It stops serving
// plugin routes first, returns all hook errors joined, and is idempotent:
// later calls return the first call's result. It works on a Manager that
// never started.
func (m *Manager) Shutdown(ctx context.Context) error {
	m.life.Lock()
	defer m.life.Unlock()
	if m.stopped {
		return m.stopErr
	}
	m.stopped = true
	m.mu.Lock()
	for _, p := range m.all {
		if p.alive() {
			p.state, p.reason = StateStopped, "the manager was shut down"
		}
	}
	m.mu.Unlock()
	m.publish(false)
	m.stopErr = m.shutdownPlugins(ctx)
	m.stopFeed()
	if m.stopErr == nil {
		m.log.Info("pluginhost shut down")
	}
	return m.stopErr
}

// shutdownPlugins runs the Shutdown hooks of initialized plugins in reverse
// order and joins their errors.
func (m *Manager) shutdownPlugins(ctx context.Context) error {
	var errs []error
	var grace <-chan time.Time // after the deadline: one shared grace period
	for i := len(m.order) - 1; i >= 0; i-- {
		p := m.order[i]
		m.mu.Lock()
		owed := p.initialized
		p.initialized = false
		m.mu.Unlock()
		sd, ok := p.plugin.(Shutdowner)
		if !owed || !ok {
			continue
		}
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- callPlugin(p, PhaseShutdown, func() error { return sd.Shutdown(ctx, p.host) }) }()
		err := awaitHook(ctx, done, &grace)
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

// shutdownGrace is how long, in all, hooks called after the deadline get to
// notice their canceled context and return.
const shutdownGrace = 100 * time.Millisecond

// awaitHook waits for a hook's result until ctx is done; after that, for
// what is left of one grace period shared by all later hooks, so that a hook
// that returns at once on a canceled context is reported as it returned.
func awaitHook(ctx context.Context, done <-chan error, grace *<-chan time.Time) error {
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	if *grace == nil {
		*grace = time.After(shutdownGrace)
	}
	select {
	case err := <-done:
		return err
	case <-*grace:
		return fmt.Errorf("did not return before the deadline: %w", ctx.Err())
	}
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
