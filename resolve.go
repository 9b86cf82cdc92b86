package pluginhost

import (
	"fmt"
	"slices"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/pluginhost/pluginhost/internal/depgraph"
)

// apiVersion is APIVersion, parsed.
var apiVersion = semver.MustParse(APIVersion)

// discover snapshots the registry. A plugin whose manifest did not parse is
// failed with the reason.
func (m *Manager) discover() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, reg := range m.cfg.Registry.snapshot() {
		p := &plugin{id: reg.key, plugin: reg.plugin, manifest: reg.manifest, state: StateStarting, order: -1}
		p.logger = m.log.With("plugin", p.id)
		if reg.err != nil {
			p.state, p.reason = StateFailed, PhaseDiscover+": "+reg.err.Error()
		} else {
			p.warnings = slices.Clone(reg.manifest.Warnings)
		}
		m.all = append(m.all, p)
		m.byID[p.id] = p
	}
}

// resolve applies the enable flags, checks each plugin's host constraint,
// config values and setting groups, orders the plugins by dependency and
// fails those whose dependencies are missing, incompatible, cyclic, failed
// or disabled.
func (m *Manager) resolve(overrides map[string]bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	disabled := map[string]bool{}
	for _, id := range m.cfg.Disabled {
		disabled[id] = true
	}
	var ids []string
	deps := map[string][]string{}
	for _, p := range m.all {
		if p.manifest == nil {
			continue
		}
		start := time.Now()
		m.resolveOne(p, disabled, overrides)
		p.timings = append(p.timings, PhaseTiming{PhaseResolve, time.Since(start)})
		ids = append(ids, p.id)
		for dep := range p.manifest.Dependencies {
			deps[p.id] = append(deps[p.id], dep)
		}
	}

	sorted := depgraph.Sort(ids, deps)
	for _, id := range ids {
		// A plugin already disabled or failed keeps that first reason.
		if cycle, ok := sorted.Cycles[id]; ok && m.byID[id].alive() {
			m.failLocked(m.byID[id], PhaseResolve, fmt.Errorf("dependency cycle %s", cycle))
		}
	}
	for _, id := range sorted.Order {
		p := m.byID[id]
		p.order = len(m.order)
		m.order = append(m.order, p)
		if !p.alive() {
			continue
		}
		if disabledDep, err := m.checkDependencies(p); err != nil {
			state := StateFailed
			if disabledDep != "" {
				state = StateDisabled
			}
			m.setLocked(p, state, PhaseResolve, err)
			p.disabledBy = disabledDep
		}
	}
}

// resolveOne decides a plugin's fate from its own manifest and the config.
func (m *Manager) resolveOne(p *plugin, disabled, overrides map[string]bool) {
	enabled, overridden := overrides[p.id]
	switch {
	case overridden && !enabled:
		p.state, p.reason = StateDisabled, "disabled by an operator"
		return
	case !overridden && disabled[p.id]:
		p.state, p.reason = StateDisabled, "disabled by Config.Disabled"
		return
	}
	if err := m.prepare(p); err != nil {
		m.failLocked(p, PhaseResolve, err)
	}
}

// prepare checks what a plugin's own manifest asks of the host (its host
// constraint, its setting groups, its config values) and makes its Host.
// m.mu must be held.
func (m *Manager) prepare(p *plugin) error {
	if err := checkHost(p.manifest); err != nil {
		return err
	}
	if err := p.manifest.checkGroups(m.cfg.CoreSettingGroups); err != nil {
		return err
	}
	cfg, warnings, err := resolvePluginConfig(p.manifest, m.cfg.PluginConfig[p.id], m.cfg.LookupEnv)
	if err != nil {
		return err
	}
	p.warnings = append(p.warnings, warnings...)
	p.host = &Host{
		id: p.id, manifest: p.manifest, logger: p.logger, settings: m.settings, config: cfg, m: m,
		db: &DB{sql: m.cfg.DB, dialect: m.cfg.Dialect, prefix: tablePrefix(p.id)},
	}
	return nil
}

// checkDependencies reports the first missing, incompatible, failed or
// disabled dependency of p, in id order, and the id of the dependency when
// it is disabled. The dependencies come before p in the order, so their
// fate is known.
func (m *Manager) checkDependencies(p *plugin) (disabledDep string, err error) {
	ids := make([]string, 0, len(p.manifest.Dependencies))
	for id := range p.manifest.Dependencies {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		dep := m.byID[id]
		switch {
		case dep == nil:
			return "", fmt.Errorf("%w: dependency %q is not registered (is its package imported?)", ErrNotFound, id)
		case dep.manifest == nil || dep.state == StateFailed:
			return "", fmt.Errorf("dependency %s failed", id)
		case dep.state == StateDisabled:
			return id, fmt.Errorf("dependency %s disabled", id)
		}
		if c := p.manifest.deps[id]; c != nil && !c.Check(dep.manifest.version) {
			return "", fmt.Errorf("%w: dependency %s is version %s, which does not satisfy %q",
				ErrIncompatible, id, dep.manifest.Version, p.manifest.Dependencies[id])
		}
	}
	return "", nil
}

// checkHost checks the manifest's host constraint against APIVersion.
func checkHost(man *Manifest) error {
	if man.host == nil || man.host.Check(apiVersion) {
		return nil
	}
	return fmt.Errorf("%w: the plugin requires host API %q; this host provides %s",
		ErrIncompatible, man.Host, APIVersion)
}
