package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// ErrNotRunning: a runtime operation was asked of a Manager that has not
// finished Start, or is shutting down.
var ErrNotRunning = errors.New("pluginhost: manager is not running")

// controller is the Manager's control goroutine and what it is asked to
// do. Every runtime change of plugin state (Enable, Disable, a tripped
// circuit breaker, a change announced by another replica) runs on it, one
// at a time, so that they never interleave.
type controller struct {
	feed feed // carries changes to the other Managers

	ops        chan *controlOp
	reload     chan struct{} // reload requests, merged
	trip       chan struct{} // breaker trips pending, merged
	done       chan struct{} // closed when the goroutine ends
	cancel     context.CancelFunc
	background sync.WaitGroup // the goroutine and the change listener

	mu          sync.Mutex
	pendingIDs  map[string]bool   // plugins another Manager changed
	pendingAll  bool              // reconcile every plugin (after reconnecting)
	pendingTrip map[string]string // plugin id → reason
	started     bool
	stopped     bool
}

type controlOp struct {
	ctx  context.Context
	fn   func(ctx context.Context) error
	done chan error
}

// startController starts the control goroutine and the change feed, before
// anything another Manager could change is loaded. It does nothing once
// stopController has run: Shutdown may begin while Start runs.
func (m *Manager) startController(ctx context.Context) {
	c := &m.ctl
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	c.started = true
	c.cancel = cancel
	c.ops = make(chan *controlOp)
	c.reload = make(chan struct{}, 1)
	c.trip = make(chan struct{}, 1)
	c.done = make(chan struct{})
	c.pendingIDs = map[string]bool{}
	c.pendingTrip = map[string]string{}
	// Every goroutine is started under c.mu, so stopController's Wait
	// never races an Add.
	c.background.Go(func() { m.control(bg) })
	if m.cfg.Dialect == Postgres {
		if f, err := m.startPostgresFeed(ctx, bg); err == nil {
			c.feed = f
		} else {
			m.log.Warn("changes made by other replicas will not be seen before a restart", "err", err)
			c.feed = nopFeed{}
		}
	} else {
		c.feed = joinLocalFeed(ctx, m)
	}
	feed := c.feed
	c.mu.Unlock()
	m.settings.setFeed(feed, m.instance)
}

// controlling reports whether the control goroutine runs: started and not
// stopped.
func (m *Manager) controlling() bool {
	c := &m.ctl
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started && !c.stopped
}

// stopController stops the control goroutine, after the operation it is
// running, and the feed, and waits for both. It may be called more than
// once, before, during or after Start.
func (m *Manager) stopController() {
	c := &m.ctl
	c.mu.Lock()
	c.stopped = true
	started, feed, cancel := c.started, c.feed, c.cancel
	c.mu.Unlock()
	if !started {
		return
	}
	feed.close()
	cancel()
	c.background.Wait()
}

// control is the control goroutine.
func (m *Manager) control(ctx context.Context) {
	c := &m.ctl
	defer close(c.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.reload:
			if err := m.settings.reload(ctx); err != nil && ctx.Err() == nil {
				m.log.Error("reload settings", "err", err)
			}
			if m.ready.Load() {
				m.reconcile(ctx)
			}
		case <-c.trip:
			if m.ready.Load() {
				m.runTrips(ctx)
			}
		case op := <-c.ops:
			opCtx, cancel := context.WithCancel(op.ctx)
			stop := context.AfterFunc(ctx, cancel)
			op.done <- op.fn(opCtx)
			stop()
			cancel()
		}
	}
}

// do runs fn on the control goroutine and returns its result. When ctx is
// done first, do returns, and fn goes on with a canceled context.
func (m *Manager) do(ctx context.Context, fn func(ctx context.Context) error) error {
	if !m.ready.Load() {
		return ErrNotRunning
	}
	c := &m.ctl
	op := &controlOp{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case c.ops <- op:
	case <-c.done:
		return ErrNotRunning
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-op.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// received handles a change announced by any Manager, this one included.
func (m *Manager) received(ch change) {
	if ch.Origin == m.instance {
		return
	}
	m.log.Debug("change announced by another manager", "kind", ch.Kind, "key", ch.Key)
	if ch.Kind == changePlugins {
		m.ctl.mu.Lock()
		if m.ctl.pendingIDs != nil {
			m.ctl.pendingIDs[ch.Key] = true
		}
		m.ctl.mu.Unlock()
	}
	m.requestReload(false)
}

// requestReload asks the control goroutine to reload the shared state;
// all, after reconnecting, reconciles every plugin. Requests made while one
// is pending merge into it.
func (m *Manager) requestReload(all bool) {
	c := &m.ctl
	c.mu.Lock()
	if !c.started {
		c.mu.Unlock()
		return
	}
	c.pendingAll = c.pendingAll || all
	c.mu.Unlock()
	select {
	case c.reload <- struct{}{}:
	default:
	}
}

// requestTrip asks the control goroutine to fail plugin id, whose circuit
// breaker tripped. It never blocks.
func (m *Manager) requestTrip(id, reason string) {
	c := &m.ctl
	c.mu.Lock()
	if !c.started {
		c.mu.Unlock()
		return
	}
	c.pendingTrip[id] = reason
	c.mu.Unlock()
	select {
	case c.trip <- struct{}{}:
	default:
	}
}

// runTrips fails the plugins whose breaker tripped and that still run.
func (m *Manager) runTrips(ctx context.Context) {
	c := &m.ctl
	c.mu.Lock()
	trips := c.pendingTrip
	c.pendingTrip = map[string]string{}
	c.mu.Unlock()
	for id, reason := range trips {
		m.mu.Lock()
		p := m.byID[id]
		running := p != nil && p.state == StateRunning
		m.mu.Unlock()
		if running {
			p.logger.Error("circuit breaker tripped: failing the plugin", "reason", reason)
			m.stopPlugins(ctx, p, StateFailed, reason)
		}
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
	return m.do(ctx, func(ctx context.Context) error { return m.disable(ctx, id, true) })
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
	return m.do(ctx, func(ctx context.Context) error { return m.enable(ctx, id, true) })
}

// disable is Disable on the control goroutine; persist is false when
// following another replica's choice.
func (m *Manager) disable(ctx context.Context, id string, persist bool) error {
	m.mu.Lock()
	p := m.byID[id]
	m.mu.Unlock()
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
	m.mu.Lock()
	alive := p.alive()
	if !alive {
		p.state, p.reason, p.disabledBy = StateDisabled, reason, ""
	}
	m.mu.Unlock()
	if !alive {
		m.remount()
		return nil
	}
	m.stopPlugins(ctx, p, StateDisabled, reason)
	return nil
}

// stopPlugins stops a running plugin and its running dependents: it puts
// them in state (root with reason, the others "dependency <id> <state>"),
// closes their gate at once, drops their event subscriptions and
// providers, lets their in-flight requests finish, runs their Shutdown
// hooks in reverse order. It announces each stop with an event as the gate
// closes.
func (m *Manager) stopPlugins(ctx context.Context, root *plugin, state State, reason string) {
	m.mu.Lock()
	stopped := []*plugin{root}
	root.state, root.reason, root.disabledBy = state, reason, ""
	for _, q := range m.order {
		if !q.alive() || q.manifest == nil {
			continue
		}
		for _, dep := range stopped {
			if _, ok := q.manifest.Dependencies[dep.id]; ok {
				q.state, q.reason = state, fmt.Sprintf("dependency %s %s", dep.id, state)
				q.disabledBy = ""
				if state == StateDisabled {
					q.disabledBy = dep.id
				}
				stopped = append(stopped, q)
				break
			}
		}
	}
	m.mu.Unlock()

	closed := m.remount()
	for _, p := range stopped {
		m.events.dropPlugin(p.id)
		m.extensions.dropPlugin(p.id)
	}
	// Announced as the gate closes, before the plugins' Shutdown hooks.
	for _, p := range stopped {
		m.mu.Lock()
		st, why := p.state, p.reason
		m.mu.Unlock()
		p.logger.Info("plugin stopping", "state", st, "reason", why)
		if st == StateFailed {
			m.events.emit(ctx, PluginFailed{Plugin: p.id, Reason: why})
		} else {
			m.events.emit(ctx, PluginDisabled{Plugin: p.id, Reason: why})
		}
	}
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
	m.mu.Lock()
	p := m.byID[id]
	if p == nil {
		m.mu.Unlock()
		return fmt.Errorf("%w: no plugin %q", ErrNotFound, id)
	}
	if p.manifest == nil || p.order < 0 {
		reason := p.reason
		m.mu.Unlock()
		return fmt.Errorf("pluginhost: plugin %q cannot be enabled: %s", id, reason)
	}
	if err := m.dependenciesRunningLocked(p, nil); err != nil {
		m.mu.Unlock()
		return err
	}
	running := p.alive()
	m.mu.Unlock()
	if persist {
		if err := m.writeOverride(ctx, id, true); err != nil {
			return err
		}
	}
	if running {
		return nil
	}

	m.mu.Lock()
	targets := []*plugin{p}
	inTargets := map[string]bool{id: true}
	for _, q := range m.order {
		if q.state != StateDisabled || !inTargets[q.disabledBy] {
			continue
		}
		if m.dependenciesRunningLocked(q, inTargets) == nil {
			targets = append(targets, q)
			inTargets[q.id] = true
		}
	}
	var prepared []*plugin
	for _, q := range targets {
		q.state, q.reason, q.disabledBy = StateStarting, "", ""
		q.timings, q.warnings = nil, append([]string(nil), q.manifest.Warnings...)
		if err := m.prepare(q); err != nil {
			m.failLocked(q, PhaseResolve, err)
			continue
		}
		prepared = append(prepared, q)
	}
	m.mu.Unlock()

	started := time.Now()
	sess, err := m.openSchemaSession(ctx)
	if err == nil {
		err = m.bringUp(ctx, sess, prepared, nil)
	}
	if err != nil {
		m.mu.Lock()
		for _, q := range targets {
			if q.alive() {
				m.failLocked(q, "enable", err)
			}
		}
		m.mu.Unlock()
		m.remount()
		m.dropStopped(targets)
		if err := m.shutdownPlugins(ctx, targets); err != nil {
			m.log.Warn("stopping plugins that failed to start", "err", err)
		}
	}
	for _, q := range targets {
		m.mu.Lock()
		st, why := q.state, q.reason
		m.mu.Unlock()
		if st == StateRunning {
			q.logger.Info("plugin enabled", "took", time.Since(started))
			m.events.emit(ctx, PluginEnabled{Plugin: q.id})
			m.events.emit(ctx, PluginStarted{Plugin: q.id})
		} else {
			m.events.emit(ctx, PluginFailed{Plugin: q.id, Reason: why})
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if p.state != StateRunning {
		return fmt.Errorf("%w: plugin %q did not start: %s", ErrStartFailed, id, p.reason)
	}
	return nil
}

// dependenciesRunningLocked reports the first dependency of p that is not
// running and not among starting, the plugins about to start with it.
// m.mu must be held.
func (m *Manager) dependenciesRunningLocked(p *plugin, starting map[string]bool) error {
	for _, dep := range slices.Sorted(maps.Keys(p.manifest.Dependencies)) {
		if starting[dep] {
			continue
		}
		d := m.byID[dep]
		switch {
		case d == nil:
			return fmt.Errorf("%w: plugin %q: dependency %q is not registered", ErrNotFound, p.id, dep)
		case d.state != StateRunning:
			return fmt.Errorf("%w: plugin %q: dependency %q is %s (%s); enable it first", ErrDependency, p.id, dep, d.state, d.reason)
		}
	}
	return nil
}

// writeOverride persists an operator's choice for plugin id and announces
// it to the other Managers, in one transaction.
func (m *Manager) writeOverride(ctx context.Context, id string, enabled bool) error {
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("pluginhost: persist the state of plugin %q: %w", id, err)
	}
	defer func() { _ = tx.Rollback() }()
	_, err = tx.ExecContext(ctx, `INSERT INTO `+pluginsTable+` (id, enabled, updated_at) VALUES (?, ?, CURRENT_TIMESTAMP)
ON CONFLICT (id) DO UPDATE SET enabled = excluded.enabled, updated_at = excluded.updated_at`, id, enabled)
	if err != nil {
		return fmt.Errorf("pluginhost: persist the state of plugin %q: %w", id, err)
	}
	ch := change{Kind: changePlugins, Key: id, Origin: m.instance}
	if err := m.ctl.feed.announce(ctx, tx, ch); err != nil {
		return fmt.Errorf("pluginhost: announce the state of plugin %q: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("pluginhost: persist the state of plugin %q: %w", id, err)
	}
	m.ctl.feed.committed(ch)
	return nil
}

// reconcile follows the choices other Managers persisted: it disables the
// plugins an operator disabled elsewhere and enables those enabled
// elsewhere (a failed plugin too, when the change names it).
func (m *Manager) reconcile(ctx context.Context) {
	c := &m.ctl
	c.mu.Lock()
	ids, all := c.pendingIDs, c.pendingAll
	c.pendingIDs, c.pendingAll = map[string]bool{}, false
	c.mu.Unlock()
	if len(ids) == 0 && !all {
		return
	}
	conn, err := m.cfg.DB.Conn(ctx)
	if err != nil {
		m.log.Error("read plugin overrides", "err", err)
		return
	}
	overrides, err := m.readOverrides(ctx, conn, nil)
	conn.Close()
	if err != nil {
		m.log.Error("read plugin overrides", "err", err)
		return
	}
	for _, p := range m.order {
		enabled, ok := overrides[p.id]
		if !ok || (!all && !ids[p.id]) {
			continue
		}
		m.mu.Lock()
		alive, state, by := p.alive(), p.state, p.disabledBy
		m.mu.Unlock()
		var err error
		switch {
		case !enabled && alive:
			p.logger.Info("following another replica: disabling")
			err = m.disable(ctx, p.id, false)
		case enabled && !alive && (state == StateFailed && ids[p.id] || state == StateDisabled && by == ""):
			p.logger.Info("following another replica: enabling")
			err = m.enable(ctx, p.id, false)
		}
		if err != nil {
			p.logger.Warn("could not follow another replica", "err", err)
		}
	}
}
