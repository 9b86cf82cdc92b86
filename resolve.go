package pluginhost

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/Masterminds/semver/v3"

	"github.com/pluginhost/pluginhost/internal/depgraph"
)

// apiVersion is APIVersion, parsed.
var apiVersion = semver.MustParse(APIVersion)

// discover snapshots the registry. A plugin whose manifest did not parse is
// failed with the manifest's error.
func (m *Manager) discover() {
	regs := m.cfg.Registry.snapshot()
	if len(regs) == 0 {
		m.log.Warn("no plugins are registered",
			"hint", `a plugin registers itself from its package's init function: is the package imported, as in import _ "example.com/app/plugins/notes"? Or pass Config.Registry`)
	}
	ps := make([]*plugin, 0, len(regs))
	failed := map[*plugin]error{}
	for _, reg := range regs {
		p := &plugin{id: reg.key, plugin: reg.plugin, manifest: reg.manifest, order: -1, logger: m.log.With("plugin", reg.key)}
		if reg.err != nil {
			failed[p] = reg.err
		}
		ps = append(ps, p)
	}
	m.plugins.add(ps, failed)
}

// resolve applies the enable flags (Config's and the persisted overrides,
// read on the schema session), checks each plugin's host constraint,
// config values and setting groups, orders the plugins by dependency and
// fails those whose dependencies are missing, incompatible, cyclic, failed
// or disabled.
func (m *Manager) resolve(ctx context.Context, sess *schemaSession) error {
	overrides, err := readOverrides(ctx, sess.conn, sess.ledger)
	if err != nil {
		return fmt.Errorf("pluginhost: cannot start: %w", err)
	}
	ids, deps := m.resolveEach(overrides)
	sorted := depgraph.Sort(ids, deps)
	for _, id := range ids {
		// A plugin already disabled or failed keeps that first reason.
		if cycle, ok := sorted.Cycles[id]; ok {
			m.plugins.fail(m.plugins.get(id), PhaseResolve, withCauses("dependency cycle "+cycle, ErrDependency))
		}
	}
	m.checkDependencies(sorted.Order)
	m.plugins.setOrder(sorted.Order)
	return nil
}

// resolveEach decides the fate of every plugin with a manifest from the
// manifest and the config alone, and returns their ids with their
// dependencies.
func (m *Manager) resolveEach(overrides map[string]bool) (ids []string, deps map[string][]string) {
	disabled := map[string]bool{}
	for _, id := range m.cfg.Disabled {
		disabled[id] = true
	}
	deps = map[string][]string{}
	for _, p := range m.plugins.list() {
		if p.manifest == nil {
			continue
		}
		start := time.Now()
		m.resolveOne(p, disabled, overrides)
		m.plugins.addTiming(p, PhaseResolve, time.Since(start))
		ids = append(ids, p.id)
		for dep := range p.manifest.Dependencies {
			deps[p.id] = append(deps[p.id], dep)
		}
	}
	return ids, deps
}

// checkDependencies fails or disables, in dependency order, the plugins
// whose dependency is missing, incompatible, failed or disabled. The
// dependencies come before a plugin in the order, so their fate is known;
// the order is not recorded yet, so that each plugin reports its own first
// problem rather than one a cascade gave it.
func (m *Manager) checkDependencies(order []string) {
	t := &m.plugins
	for _, id := range order {
		p := t.get(id)
		if !t.isAlive(p) {
			continue
		}
		if dep, state, err := m.firstBadDependency(p); state != "" {
			t.follow(p, dep, state, PhaseResolve)
		} else if err != nil {
			t.fail(p, PhaseResolve, err)
		}
	}
}

// resolveOne decides a plugin's fate from its own manifest and the config.
func (m *Manager) resolveOne(p *plugin, disabled, overrides map[string]bool) {
	enabled, overridden := overrides[p.id]
	switch {
	case overridden && !enabled:
		m.plugins.set(p, StateDisabled, "disabled by an operator")
	case !overridden && disabled[p.id]:
		m.plugins.set(p, StateDisabled, "disabled by Config.Disabled")
	default:
		m.plugins.prepare(p, m.prepare)
	}
}

// prepare checks what a plugin's own manifest asks of the host (its host
// constraint, its setting groups, its config values) and makes the Host of
// its run, with the warnings its config values and its methods gave (a
// method named like a capability's with another signature).
func (m *Manager) prepare(p *plugin) (*Host, []string, error) {
	if err := checkHost(p.manifest); err != nil {
		return nil, nil, err
	}
	if err := p.manifest.checkGroups(m.cfg.CoreSettingGroups); err != nil {
		return nil, nil, err
	}
	cfg, warnings, err := resolvePluginConfig(p.manifest, m.cfg.PluginConfig[p.id], m.cfg.LookupEnv)
	if err != nil {
		return nil, nil, err
	}
	permWarnings, err := m.checkPermissions(p.manifest)
	if err != nil {
		return nil, nil, err
	}
	warnings = append(warnings, permWarnings...)
	warnings = append(warnings, capabilityWarnings(p.plugin)...)
	h := &Host{
		id: p.id, manifest: p.manifest, logger: p.logger, settings: m.settings, config: cfg, m: m, perms: &hostPerms{}, work: &runWork{},
		db: newPluginDB(m, p.id),
	}
	return h, warnings, nil
}

// firstBadDependency reports the first missing, incompatible, failed or
// disabled dependency of p, in id order: a dependency that failed or is
// disabled as its id and state, the others as an error.
func (m *Manager) firstBadDependency(p *plugin) (dep string, depState State, err error) {
	ids := slices.Sorted(maps.Keys(p.manifest.Dependencies))
	for _, id := range ids {
		d := m.plugins.get(id)
		if d == nil {
			return "", "", fmt.Errorf("%w: dependency %q is not registered (is its package imported?)", ErrNotFound, id)
		}
		switch state, _, _ := m.plugins.stateOf(d); {
		case d.manifest == nil || state == StateFailed:
			return id, StateFailed, nil
		case state == StateDisabled:
			return id, StateDisabled, nil
		}
		if c := p.manifest.deps[id]; c != nil && !c.Check(d.manifest.version) {
			return "", "", fmt.Errorf("%w: dependency %s is version %s, which does not satisfy %q",
				ErrIncompatible, id, d.manifest.Version, p.manifest.Dependencies[id])
		}
	}
	return "", "", nil
}

// checkHost checks the manifest's host constraint against APIVersion.
func checkHost(man *Manifest) error {
	if man.host == nil || man.host.Check(apiVersion) {
		return nil
	}
	return fmt.Errorf("%w: the plugin requires host API %q; this host provides %s",
		ErrIncompatible, man.Host, APIVersion)
}
