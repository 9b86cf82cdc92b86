package pluginhost

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
)

// plugin is the Manager's record of one registered plugin.
type plugin struct {
	// Set when the plugin is discovered; never changed afterwards.
	id       string
	plugin   Plugin
	manifest *Manifest // nil when it did not parse
	logger   *slog.Logger

	// Set by resolve, before any other goroutine reads it; never changed
	// afterwards.
	order int // position in the dependency order, -1 when not ordered

	// Guarded by pluginTable.mu, and changed only by pluginTable's methods.
	state       State
	reason      string
	err         error     // the failure behind reason, for PluginStatus.Err; see setLocked
	since       time.Time // when state was entered
	gen         uint64    // the table's generation at the plugin's last transition
	run         uint64    // gen of the transition that began the current run (to starting)
	enabled     bool      // the current run was begun by Enable: its outcome is announced
	disabledBy  string    // the dependency whose being disabled disabled this one
	host        *Host     // the current run's Host
	warnings    []string
	timings     []PhaseTiming
	initialized bool    // Init succeeded (or there is none): Shutdown is owed
	panics      int     // recovered panics since Start
	overruns    int     // calls abandoned since Start: past their bound, or runtime.Goexit
	recent      []fault // the faults (panics, overruns) within Config.PanicWindow
	mux         *chi.Mux
	routes      []RouteInfo
}

func (p *plugin) alive() bool { return p.state == StateStarting || p.state == StateRunning }

// pluginTable owns the plugin records of a Manager: the list, the lock that
// guards them, every change of a plugin's state and the routing table that
// publishes those states to the request path, the event bus and extension
// points.
//
// A plugin's state changes in one place, setLocked, which records the
// reason and the time, bumps the table's generation, queues the built-in
// event the change announces and takes the plugin's dependents down with
// it. Work started under an older generation (a hook still running after
// its timeout, an Init of an earlier run) is recognised by its generation
// and discarded: see ifCurrent and withRun.
//
// The methods that change state publish a new routing table before they
// release the lock, so that tables are published in the order of the
// transitions, and return the routing entries they closed: drain those
// before running the plugins' Shutdown hooks.
type pluginTable struct {
	m *Manager // for the routing entries, which count panics against the breaker

	// mounts is the routing table, published under mu and read without it.
	mounts atomic.Pointer[mountTable]

	mu        sync.Mutex // guards the fields below and the guarded fields of every plugin
	all       []*plugin  // every registered plugin, by id
	byID      map[string]*plugin
	order     []*plugin // startable plugins in dependency order
	gen       uint64    // bumped by every transition
	dirty     bool      // a transition since the routing table was last published
	outbox    []queuedEvent
	windDowns []windDown // stops a breaker trip left to the control goroutine
}

// queuedEvent is a built-in event a transition announces, sent by
// Manager.announce once the change is complete.
type queuedEvent struct {
	order int // of the plugin: events are sent in plugin order
	event any
}

// init readies the table of Manager m, before m is shared.
func (t *pluginTable) init(m *Manager) {
	t.m = m
	t.byID = map[string]*plugin{}
	t.mounts.Store(&mountTable{byID: map[string]*mount{}})
}

// unlock publishes a new routing table if a transition made the current one
// stale, releases mu, and returns the entries the new table closed.
func (t *pluginTable) unlock() (closed []*mount) {
	if t.dirty {
		closed = t.publishLocked()
		t.dirty = false
	}
	t.mu.Unlock()
	for _, c := range closed {
		c.close()
	}
	return closed
}

// publishLocked swaps in a routing table that reflects every plugin's
// state, keeping the entries of plugins still running (and their in-flight
// counts), and returns the entries of plugins that stopped. t.mu must be
// held.
func (t *pluginTable) publishLocked() (closed []*mount) {
	old := t.mounts.Load()
	mt := &mountTable{byID: make(map[string]*mount, len(t.all)), running: make([]bool, len(t.order))}
	for _, p := range t.all {
		prev := old.byID[p.id]
		running := p.state == StateRunning
		if running && p.order >= 0 {
			mt.running[p.order] = true
		}
		if prev != nil && (prev.gen == p.gen || running && prev.running && prev.mux == p.mux) {
			mt.byID[p.id] = prev
			mt.order = append(mt.order, prev)
			continue
		}
		if prev != nil && prev.running {
			closed = append(closed, prev)
		}
		mnt := newMount(t.m, p)
		mt.byID[p.id] = mnt
		mt.order = append(mt.order, mnt)
	}
	t.mounts.Store(mt)
	return closed
}

// setLocked is the one place a plugin's state changes: it moves p to state
// to because of why (nil for none), in phase when it is not "" (why is
// then wrapped as "<phase>: <why>"), stamps the time, bumps the generation
// and queues the built-in event the change announces. The reason is why's
// text; why itself is kept as the plugin's error (PluginStatus.Err) when p
// fails, or is disabled because a dependency is (why wraps ErrDependency),
// and is nil otherwise. Entering StateStarting begins a new run: the
// reason, timings and warnings start afresh. Failing or being disabled
// takes p's starting or running dependents down too, each with the reason
// "[<phase>: ]dependency <id> <state>", an error wrapping ErrDependency and
// p's error. t.mu must be held.
func (t *pluginTable) setLocked(p *plugin, to State, phase string, why error) {
	from := p.state
	reason := ""
	if why != nil {
		if phase != "" {
			why = fmt.Errorf("%s: %w", phase, why)
		}
		reason = why.Error()
	}
	t.gen++
	t.dirty = true
	p.state, p.reason, p.since, p.gen, p.disabledBy = to, reason, time.Now(), t.gen, ""
	if from == StateStarting || from == StateRunning {
		if !p.alive() && p.host != nil {
			p.host.work.end() // the run's goroutines and jobs stop at once
		}
	}
	p.err = nil
	if to == StateFailed || to == StateDisabled && errors.Is(why, ErrDependency) {
		p.err = why
	}
	switch to {
	case StateStarting:
		p.run = t.gen
		p.recent = nil // the breaker's window starts afresh with each run
		p.timings = nil
		p.warnings = nil
		if p.manifest != nil {
			p.warnings = slices.Clone(p.manifest.Warnings)
		}
	case StateFailed:
		p.logger.Error("plugin failed", "reason", reason)
	}
	if e := p.announcement(from, to); e != nil {
		t.outbox = append(t.outbox, queuedEvent{p.order, e})
	}
	if to != StateFailed && to != StateDisabled {
		return
	}
	for _, q := range t.order {
		if _, dependsOnP := q.manifest.Dependencies[p.id]; dependsOnP && q.alive() {
			t.followLocked(q, p.id, to, phase)
		}
	}
}

// followLocked fails or disables p because its dependency dep is in state
// to, in phase: p's error wraps ErrDependency and dep's error, if it has
// one. t.mu must be held.
func (t *pluginTable) followLocked(p *plugin, dep string, to State, phase string) {
	var depErr error
	if d := t.byID[dep]; d != nil {
		depErr = d.err
	}
	t.setLocked(p, to, phase, withCauses(fmt.Sprintf("dependency %s %s", dep, to), ErrDependency, depErr))
	if to == StateDisabled {
		p.disabledBy = dep
	}
}

// announcement is the built-in event that p's move from one state to
// another announces, or nil. A run that Start began is announced once it
// runs; one that Enable began, from its start. Shutdown is not announced.
func (p *plugin) announcement(from, to State) any {
	announced := from == StateRunning || (from == StateStarting && p.enabled)
	switch {
	case to == StateStarting:
		return nil
	case to == StateRunning && p.enabled:
		return []any{PluginEnabled{Plugin: p.id}, PluginStarted{Plugin: p.id}}
	case to == StateRunning:
		return PluginStarted{Plugin: p.id}
	case to == StateDisabled && announced:
		return PluginDisabled{Plugin: p.id, Reason: p.reason}
	case to == StateFailed && announced:
		return PluginFailed{Plugin: p.id, Reason: p.reason}
	}
	return nil
}

// takeEvents returns the queued events in plugin order, each plugin's in
// the order they were queued, and empties the queue.
func (t *pluginTable) takeEvents() []any {
	t.mu.Lock()
	queued := t.outbox
	t.outbox = nil
	t.mu.Unlock()
	slices.SortStableFunc(queued, func(a, b queuedEvent) int { return cmp.Compare(a.order, b.order) })
	var out []any
	for _, q := range queued {
		if list, ok := q.event.([]any); ok {
			out = append(out, list...)
		} else {
			out = append(out, q.event)
		}
	}
	return out
}

// set moves p to state to for reason, which is no failure, as setLocked
// does, and publishes the change.
func (t *pluginTable) set(p *plugin, to State, reason string) (closed []*mount) {
	t.mu.Lock()
	t.setLocked(p, to, "", reasonOnly(reason))
	return t.unlock()
}

// reasonOnly is a reason that is no failure, as setLocked takes it: nil
// for "".
func reasonOnly(reason string) error {
	if reason == "" {
		return nil
	}
	return errors.New(reason)
}

// fail fails p, and its dependents, because phase failed with err, which
// becomes p's error.
func (t *pluginTable) fail(p *plugin, phase string, err error) {
	t.mu.Lock()
	if p.alive() {
		t.setLocked(p, StateFailed, phase, err)
	}
	t.unlock()
}

// begin starts a new run of each plugin of ps: it moves them to starting,
// enabled when Enable begins the run, and makes each run's Host with
// prepare. A plugin whose prepare fails is failed, and is not among the
// plugins returned.
func (t *pluginTable) begin(ps []*plugin, enabled bool, prepare func(p *plugin) (*Host, []string, error)) []*plugin {
	t.mu.Lock()
	defer t.unlock()
	var started []*plugin
	for _, p := range ps {
		p.enabled = enabled
		t.setLocked(p, StateStarting, "", nil)
		if t.prepareLocked(p, prepare) {
			started = append(started, p)
		}
	}
	return started
}

// prepareLocked makes the Host of p's current run with prepare, or fails p
// when prepare fails, and reports whether it succeeded. t.mu must be held.
func (t *pluginTable) prepareLocked(p *plugin, prepare func(p *plugin) (*Host, []string, error)) bool {
	h, warnings, err := prepare(p)
	if err != nil {
		t.setLocked(p, StateFailed, PhaseResolve, err)
		return false
	}
	h.run = p.run
	p.host = h
	p.warnings = append(p.warnings, warnings...)
	return true
}

// stopAll moves every starting or running plugin to stopped with reason and
// returns them with the routing entries that closed.
func (t *pluginTable) stopAll(reason string) (stopped []*plugin, closed []*mount) {
	t.mu.Lock()
	for _, p := range t.all {
		if p.alive() {
			t.setLocked(p, StateStopped, "", reasonOnly(reason))
			stopped = append(stopped, p)
		}
	}
	return stopped, t.unlock()
}

// stop moves root, which runs, to state for reason, which is no failure,
// and its running dependents with it; it returns them, root first, with
// the routing entries that closed.
func (t *pluginTable) stop(root *plugin, to State, reason string) (stopped []*plugin, closed []*mount) {
	t.mu.Lock()
	stopped = t.stopLocked(root, to, reasonOnly(reason))
	return stopped, t.unlock()
}

// stopLocked is stop with t.mu held, for why (a failure when to is
// StateFailed); it returns the plugins it stopped.
func (t *pluginTable) stopLocked(root *plugin, to State, why error) (stopped []*plugin) {
	was := make(map[*plugin]bool, len(t.order))
	for _, p := range t.order {
		was[p] = p.alive()
	}
	t.setLocked(root, to, "", why)
	stopped = append(stopped, root)
	for _, p := range t.order {
		if p != root && was[p] && !p.alive() {
			stopped = append(stopped, p)
		}
	}
	return stopped
}

// running moves the starting plugins among ps to running.
func (t *pluginTable) running(ps []*plugin) {
	t.mu.Lock()
	for _, p := range ps {
		if p.state == StateStarting {
			t.setLocked(p, StateRunning, "", nil)
		}
	}
	t.unlock()
}

// add records the discovered plugins, each starting or, when its manifest
// did not parse, failed in the discover phase with the manifest's error.
func (t *pluginTable) add(ps []*plugin, failures map[*plugin]error) {
	t.mu.Lock()
	for _, p := range ps {
		t.all = append(t.all, p)
		t.byID[p.id] = p
		if err, failed := failures[p]; failed {
			t.setLocked(p, StateFailed, PhaseDiscover, err)
		} else {
			t.setLocked(p, StateStarting, "", nil)
		}
	}
	t.unlock()
}

// setOrder records the dependency order of the startable plugins, once,
// before any plugin code runs.
func (t *pluginTable) setOrder(ids []string) {
	t.mu.Lock()
	for _, id := range ids {
		p := t.byID[id]
		p.order = len(t.order)
		t.order = append(t.order, p)
	}
	// Nothing runs yet: the routing table, whose gate is sized by the
	// order, is published again when a plugin starts running.
	t.mu.Unlock()
}

// list returns every plugin record, by id.
func (t *pluginTable) list() []*plugin {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.all)
}

// get returns the record of plugin id, or nil.
func (t *pluginTable) get(id string) *plugin {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.byID[id]
}

// ordered returns the startable plugins in dependency order.
func (t *pluginTable) ordered() []*plugin {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.order)
}

// stateOf returns p's state, reason and the dependency that disabled it.
func (t *pluginTable) stateOf(p *plugin) (state State, reason, disabledBy string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return p.state, p.reason, p.disabledBy
}

// outcome returns p's state, reason and error (see setLocked).
func (t *pluginTable) outcome(p *plugin) (state State, reason string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return p.state, p.reason, p.err
}

// isAlive reports whether p is starting or running.
func (t *pluginTable) isAlive(p *plugin) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return p.alive()
}

// generation returns the generation of p's last transition, for ifCurrent.
func (t *pluginTable) generation(p *plugin) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return p.gen
}

// hostOf returns the Host of p's current run.
func (t *pluginTable) hostOf(p *plugin) *Host {
	t.mu.Lock()
	defer t.mu.Unlock()
	return p.host
}

// ifCurrent runs fn, under the lock, only if p has not changed state since
// generation gen, and reports whether it did: work started before a
// transition (a hook that overran its timeout, say) installs nothing after
// it.
func (t *pluginTable) ifCurrent(p *plugin, gen uint64, fn func()) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p.gen != gen {
		p.logger.Debug("discarding the result of work started before the plugin's last state change")
		return false
	}
	fn()
	return true
}

// withRun calls fn with the record of h's plugin, under the lock, if h is
// the Host of the plugin's current run and the plugin is starting or
// running; otherwise it returns an error saying why, without calling fn. A
// plugin cannot stop while fn runs, so what fn installs (a subscription, a
// provider) is dropped when it does stop, and a goroutine an earlier run
// left behind installs nothing. fn must not call back into the table.
func (t *pluginTable) withRun(h *Host, fn func(p *plugin) error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.byID[h.id]
	switch {
	case p == nil:
		return &notInRunError{state: "not registered"}
	case !p.alive():
		return &notInRunError{state: string(p.state)}
	case p.run != h.run:
		return &notInRunError{state: string(p.state), stale: true}
	}
	return fn(p)
}

// notInRunError is withRun's refusal.
type notInRunError struct {
	state string // the plugin's
	stale bool   // the Host is an earlier run's
}

func (e *notInRunError) Error() string {
	if e.stale {
		return "it was made through the Host of an earlier run of the plugin"
	}
	return "the plugin is not starting or running"
}

// addTiming records that p spent d in phase.
func (t *pluginTable) addTiming(p *plugin, phase string, d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p.timings = append(p.timings, PhaseTiming{phase, d})
}

// addWarnings appends warnings to p's status.
func (t *pluginTable) addWarnings(p *plugin, warnings ...string) {
	if len(warnings) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p.warnings = append(p.warnings, warnings...)
}

// setInitialized records that p's Init succeeded, so that its Shutdown is
// owed.
func (t *pluginTable) setInitialized(p *plugin) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p.initialized = true
}

// takeInitialized reports whether p's Shutdown is owed, and clears it.
func (t *pluginTable) takeInitialized(p *plugin) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	owed := p.initialized
	p.initialized = false
	return owed
}

// statuses reports every plugin, by id, with missing (the required
// settings of an owner without a value) and dropped (the events its
// asynchronous subscriptions dropped).
func (t *pluginTable) statuses(missing func(owner string) []string, dropped func(id string) int64) []PluginStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]PluginStatus, 0, len(t.all))
	for _, p := range t.all {
		st := PluginStatus{
			ID: p.id, State: p.state, Reason: p.reason, Err: p.err, Since: p.since,
			Warnings: slices.Clone(p.warnings), MissingSettings: missing(p.id),
			Timings: slices.Clone(p.timings), Panics: p.panics, Overruns: p.overruns, EventsDropped: dropped(p.id),
		}
		if p.manifest != nil {
			st.Name, st.Version = p.manifest.Name, p.manifest.Version
			st.Reads = cloneGrants(p.manifest.Reads)
		}
		if p.state == StateRunning {
			st.Routes = slices.Clone(p.routes)
		}
		if p.host != nil {
			st.Workers = p.host.work.statuses()
		}
		out = append(out, st)
	}
	return out
}

// follow fails or disables p because its dependency dep is in state to,
// in phase.
func (t *pluginTable) follow(p *plugin, dep string, to State, phase string) {
	t.mu.Lock()
	t.followLocked(p, dep, to, phase)
	t.unlock()
}

// prepare makes the Host of p's current run with prepare, or fails p.
func (t *pluginTable) prepare(p *plugin, prepare func(p *plugin) (*Host, []string, error)) {
	t.mu.Lock()
	t.prepareLocked(p, prepare)
	t.unlock()
}
