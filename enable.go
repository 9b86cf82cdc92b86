package pluginhost

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// received handles a change announced by any Manager, this one included.
func (m *Manager) received(ch change) {
	if ch.Origin == m.instance {
		return
	}
	m.log.Debug("change announced by another manager", "kind", ch.Kind, "key", ch.Key)
	if ch.Kind == changePlugins {
		m.ctl.changed(ch.Key)
		return
	}
	m.ctl.requestReload(false)
}

// windDownTrips finishes stopping the plugins circuit breakers failed.
func (m *Manager) windDownTrips(ctx context.Context) {
	for _, w := range m.plugins.takeWindDowns() {
		m.windDown(ctx, w.stopped, w.closed)
	}
}

// Disable stops plugin id now and persists the choice, which outranks
// Config and survives restarts, and which the other replicas follow. From
// the moment Disable begins, the plugin's routes answer 503, its event
// subscriptions and extension-point providers are gone; requests already
// in flight finish; then its Shutdown hook runs. Its running dependents
// are disabled with it, each with the reason "dependency <id> disabled".
// Its tables and data stay. A required plugin cannot be disabled (an error
// wrapping ErrRequired); an unknown id is an error wrapping ErrNotFound.
// Disabling a disabled plugin persists the choice and does nothing else.
func (m *Manager) Disable(ctx context.Context, id string) error {
	return m.ctl.submit(ctx, func(ctx context.Context) error { return m.disable(ctx, id, true) })
}

// Enable starts plugin id now, if it is not running, and persists the
// choice. It runs the plugin's phases live — schema, settings, seed, Init,
// routes — and mounts it; so it does for the dependents that were disabled
// only because this plugin was. If a phase fails the plugin stays off,
// failed with the reason, with nothing of it mounted, and Enable returns
// an error saying why. Enabling a plugin whose dependency is not running is
// an error naming it. Enable also restarts a plugin that failed, such as
// one whose circuit breaker tripped.
func (m *Manager) Enable(ctx context.Context, id string) error {
	return m.ctl.submit(ctx, func(ctx context.Context) error { return m.enable(ctx, id, true) })
}

// disable is Disable on the control goroutine; persist is false when
// following another replica's choice.
func (m *Manager) disable(ctx context.Context, id string, persist bool) error {
	p := m.plugins.get(id)
	switch {
	case p == nil:
		return fmt.Errorf("%w: no plugin %q", ErrNotFound, id)
	case m.isRequired(id):
		return fmt.Errorf("%w: plugin %q is required by Config and cannot be disabled", ErrRequired, id)
	}
	if persist {
		if err := m.writeOverride(ctx, id, false); err != nil {
			return err
		}
	}
	const reason = "disabled by an operator"
	if !m.plugins.isAlive(p) {
		m.plugins.set(p, StateDisabled, reason)
		return nil
	}
	m.stopPlugins(ctx, p, StateDisabled, reason)
	return nil
}

// stopPlugins stops a running plugin and its running dependents: it puts
// them in state (root with reason, the others "dependency <id> <state>"),
// which closes their gate at once, drops their event subscriptions and
// providers, announces each stop with an event, lets their in-flight
// requests finish and runs their Shutdown hooks in reverse order.
func (m *Manager) stopPlugins(ctx context.Context, root *plugin, state State, reason string) {
	stopped, closed := m.plugins.stop(root, state, reason)
	m.windDown(ctx, stopped, closed)
}

// windDown finishes stopping plugins whose state changed: it drops their
// event subscriptions and providers, announces each stop, lets their
// in-flight requests (on the closed routing entries) finish and runs their
// Shutdown hooks in reverse order.
func (m *Manager) windDown(ctx context.Context, stopped []*plugin, closed []*mount) {
	for _, p := range stopped {
		m.events.dropPlugin(p.id)
		m.extensions.dropPlugin(p.id)
		st, why, _ := m.plugins.stateOf(p)
		p.logger.Info("plugin stopping", "state", st, "reason", why)
	}
	// Announced as the gate closes, before the plugins' Shutdown hooks.
	m.announce(ctx)
	dctx, cancel := context.WithTimeout(ctx, m.cfg.HookTimeout)
	if err := drain(dctx, closed); err != nil {
		m.log.Warn("stopping plugins with requests still in flight", "err", err)
	}
	cancel()
	if err := m.shutdownPlugins(ctx, stopped); err != nil {
		m.log.Warn("stopping plugins", "err", err)
	}
}

// enable is Enable on the control goroutine; persist is false when
// following another replica's choice.
func (m *Manager) enable(ctx context.Context, id string, persist bool) error {
	p := m.plugins.get(id)
	if p == nil {
		return fmt.Errorf("%w: no plugin %q", ErrNotFound, id)
	}
	state, reason, _ := m.plugins.stateOf(p)
	if p.manifest == nil || p.order < 0 {
		_, _, cause := m.plugins.outcome(p) // its manifest's error, or the cycle
		return withCauses(fmt.Sprintf("pluginhost: plugin %q cannot be enabled: %s", id, reason), ErrStartFailed, cause)
	}
	if err := m.dependenciesRunning(p, nil); err != nil {
		return err
	}
	if persist {
		if err := m.writeOverride(ctx, id, true); err != nil {
			return err
		}
	}
	if state == StateStarting || state == StateRunning {
		return nil
	}
	targets := m.enableTargets(p)
	started := time.Now()
	m.bringUpLive(ctx, targets)
	for _, q := range targets {
		if st, _, _ := m.plugins.stateOf(q); st == StateRunning {
			q.logger.Info("plugin enabled", "took", time.Since(started))
		}
	}
	m.announce(ctx)
	if state, reason, err := m.plugins.outcome(p); state != StateRunning && err != nil {
		return fmt.Errorf("%w: plugin %q did not start: %w", ErrStartFailed, id, err)
	} else if state != StateRunning {
		return fmt.Errorf("%w: plugin %q did not start: %s", ErrStartFailed, id, reason)
	}
	return nil
}

// enableTargets returns p and the plugins disabled only because p was (or
// because another of them was) whose other dependencies run, in order.
func (m *Manager) enableTargets(p *plugin) []*plugin {
	targets := []*plugin{p}
	inTargets := map[string]bool{p.id: true}
	for _, q := range m.plugins.ordered() {
		if state, _, by := m.plugins.stateOf(q); state != StateDisabled || !inTargets[by] {
			continue
		}
		if m.dependenciesRunning(q, inTargets) == nil {
			targets = append(targets, q)
			inTargets[q.id] = true
		}
	}
	return targets
}

// bringUpLive runs the phases of targets, plugins that are not running,
// while the others serve: schema on a session of its own, then settings,
// seed, Init and routes. If the bring-up itself fails (the database, the
// migration lock), every target that was starting is failed and what
// started is shut down.
func (m *Manager) bringUpLive(ctx context.Context, targets []*plugin) {
	prepared := m.plugins.begin(targets, true, m.prepare)
	sess, err := openSchemaSession(ctx, m)
	if err == nil {
		err = m.migratePlugins(ctx, sess, prepared, nil)
		sess.close(ctx)
	}
	if err == nil {
		err = m.bringUp(ctx, prepared, nil)
	}
	if err == nil {
		return
	}
	for _, q := range targets {
		m.plugins.fail(q, "enable", err)
	}
	m.dropStopped(targets)
	if err := m.shutdownPlugins(ctx, targets); err != nil {
		m.log.Warn("stopping plugins that failed to start", "err", err)
	}
}

// dependenciesRunning reports the first dependency of p that is not
// running and not among starting, the plugins about to start with it.
func (m *Manager) dependenciesRunning(p *plugin, starting map[string]bool) error {
	for _, dep := range slices.Sorted(maps.Keys(p.manifest.Dependencies)) {
		if starting[dep] {
			continue
		}
		d := m.plugins.get(dep)
		if d == nil {
			return fmt.Errorf("%w: plugin %q: dependency %q is not registered", ErrNotFound, p.id, dep)
		}
		if state, reason, _ := m.plugins.stateOf(d); state != StateRunning {
			return fmt.Errorf("%w: plugin %q: dependency %q is %s (%s); enable it first", ErrDependency, p.id, dep, state, reason)
		}
	}
	return nil
}

// writeOverride persists an operator's choice for plugin id and announces
// it to the other Managers, in one transaction, run once more on a fresh
// connection if its connection died (see inTx): it writes the same again.
func (m *Manager) writeOverride(ctx context.Context, id string, enabled bool) error {
	ch := change{Kind: changePlugins, Key: id, Origin: m.instance}
	feed := m.ctl.changeFeed()
	err := inTx(ctx, m.db, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO `+pluginsTable+` (id, enabled, updated_at) VALUES (?, ?, CURRENT_TIMESTAMP)
ON CONFLICT (id) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at`, id, enabled)
		if err != nil {
			return err
		}
		if err := feed.announce(ctx, tx, ch); err != nil {
			return fmt.Errorf("announce it: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pluginhost: persist the state of plugin %q: %w", id, err)
	}
	feed.committed(ch)
	return nil
}

// followReplicas reads again and applies what other Managers changed:
// the settings, then, once runtime operations are accepted, the plugins'
// enable flags. What it could not read stays pending, and the error says
// why, for the control goroutine to retry.
func (m *Manager) followReplicas(ctx context.Context) error {
	w := m.ctl.takeFollow(m.ctl.accepting())
	var failed followWork
	var errs []error
	if w.settings {
		if err := m.settings.reload(ctx); err != nil {
			failed.settings = true
			errs = append(errs, err)
		}
	}
	if w.reconcile() {
		if err := m.reconcile(ctx, w.ids, w.all); err != nil {
			failed.ids, failed.all = w.ids, w.all
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	m.ctl.putBack(failed)
	return errors.Join(errs...)
}

// reconcile follows the choices other Managers persisted for the plugins
// ids, or all of them: it disables the plugins an operator disabled
// elsewhere and enables those enabled elsewhere (a failed plugin too, when
// ids names it). It fails, and changes nothing, when the choices cannot be
// read.
func (m *Manager) reconcile(ctx context.Context, ids map[string]bool, all bool) error {
	overrides, err := m.readOverridesPooled(ctx)
	if err != nil {
		return err
	}
	for _, p := range m.plugins.ordered() {
		enabled, ok := overrides[p.id]
		if !ok || (!all && !ids[p.id]) {
			continue
		}
		if err := m.follow(ctx, p, enabled, ids[p.id]); err != nil {
			p.logger.Warn("could not follow another replica", "err", err)
		}
	}
	return nil
}

// follow applies another replica's choice for p: disable it if it is
// alive and enabled is false; enable it if it was disabled by an operator
// (not through a dependency) or, when named is true, failed.
func (m *Manager) follow(ctx context.Context, p *plugin, enabled, named bool) error {
	state, _, by := m.plugins.stateOf(p)
	alive := state == StateStarting || state == StateRunning
	switch {
	case !enabled && alive:
		p.logger.Info("following another replica: disabling")
		return m.disable(ctx, p.id, false)
	case enabled && !alive && (state == StateFailed && named || state == StateDisabled && by == ""):
		p.logger.Info("following another replica: enabling")
		return m.enable(ctx, p.id, false)
	}
	return nil
}

// readOverridesPooled reads the persisted enable flags on a connection of
// the pool, once more on a fresh one if that connection died (see onConn).
func (m *Manager) readOverridesPooled(ctx context.Context) (map[string]bool, error) {
	var overrides map[string]bool
	err := onConn(ctx, m.cfg.DB, func(conn *sql.Conn) (err error) {
		overrides, err = readOverrides(ctx, conn, nil)
		return err
	})
	return overrides, err
}
