package pluginhost

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	"github.com/pluginhost/pluginhost/internal/migrate"
)

// bringUp runs the phases after the core, in order, for the plugins of
// targets that are still starting: schema (on sess, which it closes),
// settings, seed, Init and routes. Start runs it for every plugin, Enable
// for the ones it enables. A plugin that fails a phase is failed with its
// dependents; check, when not nil, is called after each phase and stops
// the bring-up with its error (Start: a required plugin failed). The
// plugins that finish every phase are running when it returns, and
// mounted.
func (m *Manager) bringUp(ctx context.Context, sess *schemaSession, targets []*plugin, check func() error) error {
	if check == nil {
		check = func() error { return nil }
	}
	m.runPhase(targets, PhaseSchema, func(p *plugin) error { return m.migratePlugin(ctx, sess, p) })
	sess.close(ctx) // seeds and Init use the pool; a one-connection pool needs it back
	if sess.lockErr != nil {
		// Not the fault of the plugin that needed the lock first.
		return fmt.Errorf("pluginhost: cannot start: plugin schemas: %w", sess.lockErr)
	}
	if err := check(); err != nil {
		return err
	}
	if err := m.mergeSettings(ctx, targets); err != nil {
		return err
	}
	m.dropStopped(targets)
	if err := check(); err != nil {
		return err
	}
	m.runPhase(targets, PhaseSeed, func(p *plugin) error {
		s, ok := p.plugin.(Seeder)
		if !ok {
			return nil
		}
		return m.callHook(ctx, p, PhaseSeed, func(ctx context.Context) error { return s.Seed(ctx, p.host) })
	})
	if err := check(); err != nil {
		return err
	}
	m.runPhase(targets, PhaseInit, func(p *plugin) error {
		if in, ok := p.plugin.(Initializer); ok {
			err := m.callHook(ctx, p, PhaseInit, func(ctx context.Context) error { return in.Init(ctx, p.host) })
			if err != nil {
				return err
			}
		}
		m.mu.Lock()
		p.initialized = true
		m.mu.Unlock()
		return nil
	})
	if err := check(); err != nil {
		return err
	}
	m.runPhase(targets, PhaseRoutes, func(p *plugin) error {
		rr, _ := p.plugin.(RouteRegistrar)
		return m.callHook(ctx, p, PhaseRoutes, func(context.Context) error {
			mux, routes, err := buildRoutes(p.id, rr, p.host, m.cfg.Middleware)
			if err != nil {
				return err
			}
			m.mu.Lock()
			p.mux, p.routes = mux, routes
			m.mu.Unlock()
			return nil
		})
	})
	if err := check(); err != nil {
		return err
	}
	m.mu.Lock()
	for _, p := range targets {
		if p.alive() {
			p.state = StateRunning
		}
	}
	m.mu.Unlock()
	m.remount()
	return nil
}

// runPhase runs one phase for every plugin of targets still starting, in
// order, timing it. A failure fails the plugin and its dependents, and
// removes the event subscriptions and extension providers they made.
func (m *Manager) runPhase(targets []*plugin, phase string, fn func(p *plugin) error) {
	defer m.dropStopped(targets)
	for _, p := range targets {
		m.mu.Lock()
		alive := p.alive()
		m.mu.Unlock()
		if !alive {
			continue
		}
		start := time.Now()
		err := fn(p)
		m.mu.Lock()
		p.timings = append(p.timings, PhaseTiming{phase, time.Since(start)})
		if err != nil {
			m.failLocked(p, phase, err)
		}
		m.mu.Unlock()
	}
}

// dropStopped removes the event subscriptions and extension providers of
// the plugins among targets that are no longer starting or running: a
// plugin may subscribe and provide in Init and fail afterwards.
func (m *Manager) dropStopped(targets []*plugin) {
	var ids []string
	m.mu.Lock()
	for _, p := range targets {
		if !p.alive() {
			ids = append(ids, p.id)
		}
	}
	m.mu.Unlock()
	for _, id := range ids {
		m.events.dropPlugin(id)
		m.extensions.dropPlugin(id)
	}
}

// mergeSettings adds the settings of the starting plugins among targets to
// those merged before (the core's first), in that order; a plugin whose
// settings are refused fails.
func (m *Manager) mergeSettings(ctx context.Context, targets []*plugin) error {
	merged := map[string]bool{}
	for _, src := range m.sources {
		merged[src.owner] = true
	}
	var added []settingsSource
	m.mu.Lock()
	for _, p := range targets {
		if p.alive() && !merged[p.id] {
			added = append(added, settingsSource{owner: p.id, groups: p.manifest.SettingGroups, settings: p.manifest.Settings})
		}
	}
	m.mu.Unlock()
	first := m.sources == nil
	base := m.sources
	if first {
		base = []settingsSource{{owner: migrate.CoreLine, groups: m.cfg.CoreSettingGroups, settings: m.cfg.CoreSettings}}
	}
	sources := append(slices.Clone(base), added...)
	start := time.Now()
	outcomes, err := m.settings.load(ctx, sources)
	if err != nil {
		return err
	}
	took := time.Since(start)
	m.sources = nil
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, src := range sources {
		o := outcomes[src.owner]
		if o.err == nil {
			m.sources = append(m.sources, src)
		}
		p := m.byID[src.owner]
		if p == nil { // the core
			if first {
				for _, w := range o.warnings {
					m.log.Warn("core setting", "warning", w)
				}
				if missing := m.settings.missing(migrate.CoreLine); len(missing) > 0 {
					m.log.Warn("required core settings have no value", "keys", missing)
				}
			}
			continue
		}
		if !slices.ContainsFunc(added, func(a settingsSource) bool { return a.owner == src.owner }) {
			continue
		}
		p.timings = append(p.timings, PhaseTiming{PhaseSettings, took})
		p.warnings = append(p.warnings, o.warnings...)
		if o.err != nil && p.alive() {
			m.failLocked(p, PhaseSettings, o.err)
		}
	}
	return nil
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

// callHook calls plugin code: fn gets a context bounded by
// Config.HookTimeout. A panic is recovered, recorded against the plugin and
// returned as a *PanicError; a hook that has not returned by the deadline
// is an error, and is left running.
func (m *Manager) callHook(ctx context.Context, p *plugin, where string, fn func(context.Context) error) error {
	return m.awaitHook(ctx, p, where, fn, nil)
}

// awaitHook is callHook with an optional grace period, shared by the hooks
// of one operation, for hooks called after ctx is done (Shutdown): a hook
// that returns at once on a canceled context is reported as it returned.
func (m *Manager) awaitHook(ctx context.Context, p *plugin, where string, fn func(context.Context) error, grace *<-chan time.Time) error {
	hctx, cancel := context.WithTimeout(ctx, m.cfg.HookTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.guard(p, where, func() error { return fn(hctx) }) }()
	select {
	case err := <-done:
		return err
	case <-hctx.Done():
	}
	if grace != nil {
		if *grace == nil {
			*grace = time.After(shutdownGrace)
		}
		select {
		case err := <-done:
			return err
		case <-*grace:
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s did not return before the deadline: %w", where, ctx.Err())
	}
	return fmt.Errorf("%s did not return within Config.HookTimeout (%s): %w", where, m.cfg.HookTimeout, hctx.Err())
}

// shutdownGrace is how long, in all, hooks called after the deadline get to
// notice their canceled context and return.
const shutdownGrace = 100 * time.Millisecond

// guard runs fn, which calls plugin code, turning a panic into a
// *PanicError that is recorded against the plugin.
func (m *Manager) guard(p *plugin, where string, fn func() error) (err error) {
	defer func() {
		if rv := recover(); rv != nil {
			pe := &PanicError{Plugin: p.id, Phase: where, Value: rv, Stack: debug.Stack()}
			m.recordPanic(p.id, where, rv, pe.Stack)
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
			if state == StateDisabled {
				q.disabledBy = p.id
			}
			m.setLocked(q, state, phase, fmt.Errorf("dependency %s %s", p.id, state))
		}
	}
}

// remount swaps in a routing table that reflects every plugin's state,
// keeping the entries of plugins still running (and their in-flight
// counts), and returns the entries of plugins that stopped, now closed:
// drain them before their Shutdown hooks run.
func (m *Manager) remount() (closed []*mount) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.mounts.Load()
	mt := &mountTable{byID: make(map[string]*mount, len(m.all)), running: make([]bool, len(m.order))}
	for _, p := range m.all {
		prev := old.byID[p.id]
		running := p.state == StateRunning
		if running && p.order >= 0 {
			mt.running[p.order] = true
		}
		if running && prev != nil && prev.running && prev.mux == p.mux {
			mt.byID[p.id] = prev
			mt.order = append(mt.order, prev)
			continue
		}
		if prev != nil && prev.running {
			closed = append(closed, prev)
		}
		mnt := newMount(m, p)
		mt.byID[p.id] = mnt
		mt.order = append(mt.order, mnt)
	}
	m.mounts.Store(mt)
	for _, c := range closed {
		c.close()
	}
	return closed
}
