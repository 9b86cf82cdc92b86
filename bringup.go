package pluginhost

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/pluginhost/pluginhost/internal/migrate"
)

// migratePlugins is the schema phase: it creates the declared tables and
// applies the migrations of each plugin of targets still starting, in
// order, on sess. check, when not nil, is called after it and stops the
// bring-up with its error (Start: a required plugin failed). A migration
// lock that could not be taken, or a database misconfigured for a plugin
// (foreign keys not enforced), fails the bring-up, not the plugin that
// needed it first.
func (m *Manager) migratePlugins(ctx context.Context, sess *schemaSession, targets []*plugin, check func() error) error {
	m.runPhase(targets, PhaseSchema, func(p *plugin) error { return sess.migratePlugin(ctx, p) })
	if sess.lockErr != nil {
		return fmt.Errorf("pluginhost: cannot start: plugin schemas: %w", sess.lockErr)
	}
	if sess.misconfigured != nil {
		return fmt.Errorf("pluginhost: cannot start: %w", sess.misconfigured)
	}
	return checked(check)
}

// bringUp runs the phases after the schema, in order, for the plugins of
// targets that are still starting: settings, seed, Init and routes. Start
// runs it for every plugin, Enable for the ones it enables. A plugin that
// fails a phase is failed with its dependents; check, when not nil, is
// called after each phase and stops the bring-up with its error. The
// plugins that finish every phase are running when it returns, and
// mounted.
func (m *Manager) bringUp(ctx context.Context, targets []*plugin, check func() error) error {
	if err := m.mergeSettings(ctx, targets); err != nil {
		return err
	}
	m.dropStopped(targets)
	if err := checked(check); err != nil {
		return err
	}
	m.runPhase(targets, PhaseSeed, func(p *plugin) error { return m.seed(ctx, p) })
	if err := checked(check); err != nil {
		return err
	}
	m.runPhase(targets, PhaseInit, func(p *plugin) error { return m.init(ctx, p) })
	if err := checked(check); err != nil {
		return err
	}
	m.runPhase(targets, PhaseRoutes, func(p *plugin) error { return m.routes(ctx, p) })
	if err := checked(check); err != nil {
		return err
	}
	m.plugins.running(targets)
	return nil
}

// checked calls check, when it is not nil.
func checked(check func() error) error {
	if check == nil {
		return nil
	}
	return check()
}

// seed runs p's Seed hook, if it has one.
func (m *Manager) seed(ctx context.Context, p *plugin) error {
	s, ok := p.plugin.(Seeder)
	if !ok {
		return nil
	}
	h := m.plugins.hostOf(p)
	return m.callHook(ctx, p, PhaseSeed, func(ctx context.Context) error { return s.Seed(ctx, h) })
}

// init runs p's Init hook, if it has one; from then on its Shutdown hook
// is owed.
func (m *Manager) init(ctx context.Context, p *plugin) error {
	if in, ok := p.plugin.(Initializer); ok {
		h := m.plugins.hostOf(p)
		err := m.callHook(ctx, p, PhaseInit, func(ctx context.Context) error { return in.Init(ctx, h) })
		if err != nil {
			return err
		}
	}
	m.plugins.setInitialized(p)
	return nil
}

// routes gives p a fresh router to register its routes on. The router is
// kept only if p has not changed state meanwhile: a RegisterRoutes that
// overran its timeout installs nothing.
func (m *Manager) routes(ctx context.Context, p *plugin) error {
	rr, _ := p.plugin.(RouteRegistrar)
	if ca, ok := p.plugin.(ConsoleAssets); ok {
		rr = consoleRegistrar{rr, ca}
	}
	gen, h := m.plugins.generation(p), m.plugins.hostOf(p)
	return m.callHook(ctx, p, PhaseRoutes, func(context.Context) error {
		mux, routes, err := buildRoutes(p.id, rr, h, m.cfg.Middleware)
		if err != nil {
			return err
		}
		m.plugins.ifCurrent(p, gen, func() { p.mux, p.routes = mux, routes })
		return nil
	})
}

// runPhase runs one phase for every plugin of targets still starting, in
// order, timing it. A failure fails the plugin and its dependents, and
// removes the event subscriptions and extension providers they made.
func (m *Manager) runPhase(targets []*plugin, phase string, fn func(p *plugin) error) {
	defer m.dropStopped(targets)
	for _, p := range targets {
		if !m.plugins.isAlive(p) {
			continue
		}
		start := time.Now()
		err := fn(p)
		m.plugins.addTiming(p, phase, time.Since(start))
		if err != nil {
			m.plugins.fail(p, phase, err)
		}
	}
}

// dropStopped removes the event subscriptions and extension providers of
// the plugins among targets that are no longer starting or running: a
// plugin may subscribe and provide in Init and fail afterwards.
func (m *Manager) dropStopped(targets []*plugin) {
	for _, p := range targets {
		if !m.plugins.isAlive(p) {
			m.events.dropPlugin(p.id)
			m.extensions.dropPlugin(p.id)
		}
	}
}

// mergeSettings is the settings phase: it adds the settings of the
// starting plugins among targets to those merged before (the core's first),
// in that order; a plugin whose settings are refused fails. The settings
// a plugin's [[reads]] grant are checked against what their owners
// declare, with a warning for each that cannot be read.
func (m *Manager) mergeSettings(ctx context.Context, targets []*plugin) error {
	first := m.sources == nil
	base := m.sources
	if first {
		base = []settingsSource{{owner: migrate.CoreLine, groups: m.cfg.CoreSettingGroups, settings: m.cfg.CoreSettings}}
	}
	added := m.unmergedSources(targets)
	sources := append(slices.Clone(base), added...)
	start := time.Now()
	outcomes, err := m.settings.load(ctx, sources)
	if err != nil {
		return err
	}
	took := time.Since(start)
	m.sources = nil
	for _, src := range sources {
		if outcomes[src.owner].err == nil {
			m.sources = append(m.sources, src)
		}
	}
	if first {
		m.logCoreSettings(outcomes[migrate.CoreLine])
	}
	for _, src := range added {
		p, o := m.plugins.get(src.owner), outcomes[src.owner]
		m.plugins.addTiming(p, PhaseSettings, took)
		m.plugins.addWarnings(p, o.warnings...)
		if o.err != nil {
			m.plugins.fail(p, PhaseSettings, o.err)
			continue
		}
		m.plugins.addWarnings(p, m.settings.grantWarnings(p.manifest.Reads)...)
	}
	return nil
}

// unmergedSources returns the settings sources of the starting plugins
// among targets whose settings are not merged yet.
func (m *Manager) unmergedSources(targets []*plugin) []settingsSource {
	merged := map[string]bool{}
	for _, src := range m.sources {
		merged[src.owner] = true
	}
	var added []settingsSource
	for _, p := range targets {
		if m.plugins.isAlive(p) && !merged[p.id] {
			added = append(added, settingsSource{owner: p.id, groups: p.manifest.SettingGroups, settings: p.manifest.Settings})
		}
	}
	return added
}

// logCoreSettings logs what merging the core's settings warned about, and
// its required settings without a value.
func (m *Manager) logCoreSettings(o *settingsOutcome) {
	for _, w := range o.warnings {
		m.log.Warn("core setting", "warning", w)
	}
	if missing := m.settings.missing(migrate.CoreLine); len(missing) > 0 {
		m.log.Warn("required core settings have no value", "keys", missing)
	}
}
