package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// PluginStarted is published by the Manager for each plugin running when
// [Manager.Start] has finished.
type PluginStarted struct {
	Plugin string
}

// PluginEnabled is published by the Manager when a plugin enabled at
// runtime has run its phases and is running.
type PluginEnabled struct {
	Plugin string
}

// PluginDisabled is published by the Manager when a running plugin was
// disabled, by an operator or because a dependency was. Its subscriptions
// are gone by then: the plugin itself does not receive it.
type PluginDisabled struct {
	Plugin string
	Reason string
}

// PluginFailed is published by the Manager when a plugin fails: its circuit
// breaker tripped, or a phase failed while it was being enabled. Like
// [PluginDisabled], the plugin itself does not receive it.
type PluginFailed struct {
	Plugin string
	Reason string
}

// SettingChanged is published by the Manager when the value of a setting
// changed, here or on another replica. Owner is the id of the plugin that
// defines the setting, or "core" for the host's own. Read the new value
// from [Settings].
type SettingChanged struct {
	Key   string
	Owner string
}

// PluginError is published by the Manager when an event handler returned an
// error or panicked. Plugin is the id of the plugin whose handler failed,
// Event the Go type of the event it was handling ("audit.NoteCreated"), Err
// the error it returned, or a *[PanicError] when Panic is true. A handler
// of PluginError that fails is logged but produces no further PluginError.
type PluginError struct {
	Plugin string
	Event  string
	Err    error
	Panic  bool
}

var pluginErrorType = reflect.TypeFor[PluginError]()

// Publisher is who publishes an event: the host, as a *[Manager], or a
// plugin, as its *[Host]. No other type implements it. A nil Publisher is
// not valid.
type Publisher interface {
	bus() *eventBus
}

func (m *Manager) bus() *eventBus { return m.events }
func (h *Host) bus() *eventBus    { return h.m.events }

// SubscribeOption changes how [Subscribe] delivers events. The zero value
// changes nothing.
type SubscribeOption struct {
	queue int
}

// Async makes a subscription asynchronous: [Publish] puts each event in a
// queue of queue events that belongs to this subscription, and one
// goroutine of its own calls the handler for each, in the order they were
// published. When the queue is full the event is dropped for this
// subscription only: the publisher never waits. Drops are counted in the
// plugin's status and logged at Warn (the first, then every 100th).
//
// The handler's context carries the values of the publisher's context but
// not its deadline or cancellation: it is canceled when the subscription
// ends, because the plugin stopped or the Manager shut down. Events still
// queued then are discarded. Async panics if queue is less than 1.
func Async(queue int) SubscribeOption {
	if queue < 1 {
		panic(fmt.Sprintf("pluginhost: Async queue size %d; it must be at least 1", queue))
	}
	return SubscribeOption{queue: queue}
}

// Subscribe makes fn receive every event of type E published by the host or
// any plugin while h's plugin is running. A plugin subscribes in its Init
// hook; it may subscribe later while it is running. Its subscriptions end
// the moment it stops (disabled, failed or shut down); when it is enabled
// again its Init runs again and subscribes afresh. A subscription made
// while the plugin is not starting or running is ignored and logged.
//
// Events are matched by their exact static type: Subscribe[audit.Event]
// receives what Publish[audit.Event] sends, not a *audit.Event, and
// Subscribe[any] only what is published as an any. Export the event types
// from a package the publisher and subscribers share, like the interfaces
// a dependency offers.
//
// By default delivery is synchronous: [Publish] calls fn in the
// publisher's goroutine, with the publisher's context, before it returns;
// keep such handlers short, and use [Async] for slow work. An error fn
// returns, or a panic, is logged with the plugin id and published as a
// [PluginError]; a panic also counts toward the plugin's circuit breaker
// (Config.PanicLimit). Neither reaches the publisher or the other
// subscribers.
//
// Subscribe is safe for concurrent use. It panics if h or fn is nil.
func Subscribe[E any](h *Host, fn func(ctx context.Context, e E) error, opts ...SubscribeOption) {
	if h == nil || fn == nil {
		panic("pluginhost: Subscribe with a nil Host or handler")
	}
	typ := reflect.TypeFor[E]()
	s := &subscription{plugin: h.id, host: h, typ: typ, event: typ.String(), logger: h.logger, handler: fn,
		metrics: h.m.metrics.of(h.id)}
	for _, o := range opts {
		if o.queue > 0 {
			s.size = o.queue
		}
	}
	b := h.m.events
	if s.size > 0 {
		q := make(chan queued[E], s.size)
		s.queue = q
		s.worker = &worker{sub: s, drain: make(chan struct{}), done: make(chan struct{})}
		s.start = func(ctx context.Context) { runWorker(ctx, b, s, q, fn) }
	}
	b.add(s)
}

// Publish delivers e to the subscribers of type E whose plugin is running,
// in plugin (dependency) order: synchronous subscribers are called before
// Publish returns, in this goroutine, with ctx; asynchronous ones get e in
// their queue, or drop it when the queue is full. from is the publisher:
// the *Manager for the host, a plugin's *Host for the plugin. A plugin may
// publish from Init; plugins that are still starting do not receive.
//
// Handler errors and panics are contained (see [Subscribe]): Publish always
// returns normally, and never blocks on an asynchronous subscriber. It is
// safe for concurrent use; an event is a value shared by every subscriber,
// which must not modify what it points to.
func Publish[E any](ctx context.Context, from Publisher, e E) {
	b := from.bus()
	if h, ok := from.(*Host); ok {
		b.m.metrics.of(h.id).published.Add(1)
	}
	publish(ctx, b, e)
}

// eventBus delivers typed events to the plugins' subscriptions. Publishing
// reads an immutable snapshot, swapped under mu when subscriptions change.
type eventBus struct {
	m *Manager

	// subs maps an event type to its live subscriptions in plugin order.
	// The map and its slices are never modified once stored.
	subs atomic.Pointer[map[reflect.Type][]*subscription]

	mu      sync.Mutex               // serializes changes to subs; guards below
	closed  bool                     // close was called: no more subscriptions
	drops   map[string]*atomic.Int64 // per plugin: events its async subscriptions dropped
	alive   map[*worker]struct{}     // worker goroutines that have not returned
	workers sync.WaitGroup           // every worker goroutine ever started

	log eventLog // the last built-in events, for Manager.RecentEvents
}

// subscription is one call of Subscribe.
type subscription struct {
	plugin  string
	host    *Host // the plugin's Host when it subscribed: one per run
	order   int   // the plugin's position in the dependency order
	typ     reflect.Type
	event   string // typ.String(), for logs and PluginError
	logger  *slog.Logger
	handler any // func(context.Context, E) error

	// Asynchronous subscriptions only.
	size   int                       // queue capacity; 0: synchronous
	queue  any                       // chan queued[E]
	worker *worker                   // the goroutine that drains queue
	start  func(ctx context.Context) // runs the worker until ctx is done

	live  atomic.Bool   // false once dropped: no call starts after that
	drops atomic.Int64  // this subscription's drops, for the log's rate limit
	total *atomic.Int64 // the plugin's drops, shared by its subscriptions

	metrics *pluginMetrics // the plugin's counters
}

// worker is the goroutine of an asynchronous subscription.
type worker struct {
	sub    *subscription
	cancel context.CancelFunc
	drain  chan struct{} // closed to have the worker deliver what is queued, then return
	done   chan struct{} // closed when the goroutine has returned

	draining bool // drain is closed; guarded by eventBus.mu
}

// queued is an event waiting in an asynchronous subscription's queue, with
// the publisher's context for its values.
type queued[E any] struct {
	ctx context.Context
	e   E
}

func newEventBus(m *Manager) *eventBus {
	b := &eventBus{m: m, drops: map[string]*atomic.Int64{}, alive: map[*worker]struct{}{}}
	b.subs.Store(&map[reflect.Type][]*subscription{})
	return b
}

// publish is Publish on the bus. It takes no lock and, for synchronous
// subscribers, allocates nothing.
func publish[E any](ctx context.Context, b *eventBus, e E) {
	subs := (*b.subs.Load())[reflect.TypeFor[E]()]
	synchronous := 0
	for _, s := range subs {
		if !s.live.Load() || !b.m.runningAt(s.order) {
			continue
		}
		if s.queue == nil {
			synchronous++
			continue
		}
		select {
		case s.queue.(chan queued[E]) <- queued[E]{ctx: ctx, e: e}:
		default:
			b.dropEvent(s)
		}
	}
	if synchronous == 0 {
		return
	}
	// The synchronous handlers, in order, each within Config.HookTimeout,
	// on a goroutine of the library's: a handler that overruns or calls
	// runtime.Goexit is its plugin's failure, and the next one is called.
	b.m.runSteps(len(subs), nil, func(i int) error {
		s := subs[i]
		if s.queue == nil && s.live.Load() && b.m.runningAt(s.order) {
			deliver(ctx, b, s, s.handler.(func(context.Context, E) error), e)
		}
		return nil
	}, func(i int, err error, _ bool) {
		s := subs[i]
		err = fmt.Errorf("event handler %s: %w", s.event, err)
		b.m.recordOverrun(s.plugin, "event handler "+s.event, err)
		b.handlerFailed(ctx, s, err)
	})
}

// deliver calls one handler, containing its error or panic.
func deliver[E any](ctx context.Context, b *eventBus, s *subscription, fn func(context.Context, E) error, e E) {
	s.metrics.delivered.Add(1)
	c, err := protectCall(fn, ctx, e)
	if c != nil {
		err = b.m.panicked(s.plugin, "event handler "+s.event, c)
	}
	if err != nil {
		b.handlerFailed(ctx, s, err)
	}
}

// handlerFailed logs a handler's error (a panic, contained, is logged
// already) and publishes it as a PluginError, unless the handler was one of
// PluginError.
func (b *eventBus) handlerFailed(ctx context.Context, s *subscription, err error) {
	s.metrics.failures.Add(1)
	_, panicked := err.(*PanicError)
	if !panicked {
		s.logger.Error("event handler failed", "event", s.event, "err", err)
	}
	if s.typ == pluginErrorType {
		return
	}
	if s.worker != nil {
		// The worker's context ends with the subscription; the report
		// should reach the other plugins all the same.
		ctx = context.WithoutCancel(ctx)
	}
	publish(ctx, b, PluginError{Plugin: s.plugin, Event: s.event, Err: err, Panic: panicked})
}

// dropEvent counts an event an asynchronous subscription had no room for,
// and logs the first drop and every 100th.
func (b *eventBus) dropEvent(s *subscription) {
	s.total.Add(1)
	if n := s.drops.Add(1); n == 1 || n%100 == 0 {
		s.logger.Warn("event dropped: the asynchronous subscription's queue is full",
			"event", s.event, "queue", s.size, "dropped", n)
	}
}

// runWorker drains an asynchronous subscription's queue until ctx is
// canceled. Its goroutine carries the pprof labels pluginhost.plugin and
// pluginhost.event, so goroutine profiles say whose it is.
func runWorker[E any](ctx context.Context, b *eventBus, s *subscription, q <-chan queued[E], fn func(context.Context, E) error) {
	defer b.workers.Done()
	defer func() {
		b.mu.Lock()
		delete(b.alive, s.worker)
		b.mu.Unlock()
		close(s.worker.done)
	}()
	labels := pprof.Labels("pluginhost.plugin", s.plugin, "pluginhost.event", s.event)
	pprof.Do(ctx, labels, func(ctx context.Context) {
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.worker.drain:
				for {
					select {
					case it := <-q:
						if ctx.Err() != nil || !s.live.Load() {
							return
						}
						if b.m.runningAt(s.order) {
							deliver(asyncContext{Context: ctx, values: it.ctx}, b, s, fn, it.e)
						}
					default:
						return
					}
				}
			case it := <-q:
				if ctx.Err() != nil || !s.live.Load() {
					return
				}
				if !b.m.runningAt(s.order) {
					continue
				}
				deliver(asyncContext{Context: ctx, values: it.ctx}, b, s, fn, it.e)
			}
		}
	})
}

// asyncContext is an asynchronous handler's context: the worker's for
// cancellation, the publisher's for values.
type asyncContext struct {
	context.Context
	values context.Context
}

func (c asyncContext) Value(key any) any { return c.values.Value(key) }

// add installs a subscription of a plugin that is starting or running, and
// starts its worker if it is asynchronous. A subscription through the Host
// of an earlier run of the plugin (a goroutine it left behind) is ignored;
// one through the current Host ends those of earlier runs that were not
// dropped.
func (b *eventBus) add(s *subscription) {
	// Under the plugin table's lock: the plugin cannot stop (and be
	// dropped) meanwhile.
	err := b.m.plugins.withRun(s.host, func(p *plugin) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.closed {
			return errors.New("the manager is shut down")
		}
		b.addLocked(s, p.order)
		return nil
	})
	if err != nil {
		s.logger.Warn("event subscription ignored: "+err.Error(), "event", s.event)
	}
}

// addLocked installs s for a plugin at position order. b.mu must be held.
func (b *eventBus) addLocked(s *subscription, order int) {
	stale := b.removeLocked(func(o *subscription) bool { return o.plugin == s.plugin && o.host != s.host })
	for _, w := range stale {
		w.cancel() // close waits for it, if it is still in a handler
	}
	s.order = order
	s.total = b.drops[s.plugin]
	if s.total == nil {
		s.total = &s.metrics.dropped // the metrics' count, for the Manager's life
		b.drops[s.plugin] = s.total
	}
	s.live.Store(true)
	if s.worker != nil {
		ctx, cancel := context.WithCancel(context.Background())
		s.worker.cancel = cancel
		b.alive[s.worker] = struct{}{}
		b.workers.Add(1)
		go s.start(ctx)
	}
	old := *b.subs.Load()
	next := make(map[reflect.Type][]*subscription, len(old)+1)
	for typ, subs := range old {
		next[typ] = subs
	}
	subs := append(slices.Clone(old[s.typ]), s)
	// Stable: one plugin's subscriptions keep the order they were made in.
	slices.SortStableFunc(subs, func(a, b *subscription) int { return a.order - b.order })
	next[s.typ] = subs
	b.subs.Store(&next)
}

// dropPlugin ends every subscription of plugin id: a publish that starts
// after it returns does not call them, and neither does a publish under
// way once the handler it is calling returns. It stops the plugin's
// workers and waits for them up to Config.HookTimeout; a worker whose
// handler is still running then is logged and exits when it returns. The
// Manager calls it when the plugin stops (disabled, failed, shut down),
// after its state changed and without holding Manager.mu.
func (b *eventBus) dropPlugin(id string) {
	b.mu.Lock()
	stopped := b.removeLocked(func(s *subscription) bool { return s.plugin == id })
	b.mu.Unlock()
	b.stop(stopped)
}

// emit publishes a built-in event from the host. e is one of the event
// types of this file, as a value.
func (b *eventBus) emit(ctx context.Context, e any) {
	if le, ok := lifecycleEvent(e); ok {
		b.log.record(le)
	}
	switch e := e.(type) {
	case PluginStarted:
		publish(ctx, b, e)
	case PluginEnabled:
		publish(ctx, b, e)
	case PluginDisabled:
		publish(ctx, b, e)
	case PluginFailed:
		publish(ctx, b, e)
	case SettingChanged:
		publish(ctx, b, e)
	case PluginError:
		publish(ctx, b, e)
	default:
		b.m.log.Error("pluginhost: emit of an event that is not a built-in one", "type", fmt.Sprintf("%T", e))
	}
}

// close refuses new subscriptions, lets every worker deliver the events
// already queued (to plugins still running) and waits for that up to
// Config.HookTimeout, then ends every subscription, stops every worker and
// waits, up to Config.HookTimeout again, for all that have not returned,
// including those a dropPlugin left behind. Shutdown calls it before it
// stops the plugins, so that an event published before Shutdown began
// reaches its asynchronous subscribers; it is idempotent.
func (b *eventBus) close() {
	b.mu.Lock()
	b.closed = true
	draining := make([]*worker, 0, len(b.alive))
	for w := range b.alive {
		if w.draining {
			continue
		}
		w.draining = true
		close(w.drain)
		draining = append(draining, w)
	}
	b.mu.Unlock()
	b.await(draining, "still delivering queued events after Config.HookTimeout; the rest are dropped")

	b.mu.Lock()
	b.removeLocked(func(*subscription) bool { return true })
	stopped := make([]*worker, 0, len(b.alive))
	for w := range b.alive {
		stopped = append(stopped, w)
	}
	b.mu.Unlock()
	b.stop(stopped)
}

// dropped returns how many events the asynchronous subscriptions of plugin
// id dropped because their queue was full, since the Manager was created.
func (b *eventBus) dropped(id string) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.drops[id]; c != nil {
		return c.Load()
	}
	return 0
}

// removeLocked swaps in a snapshot without the subscriptions that match,
// marks them dead and returns their workers. b.mu must be held.
func (b *eventBus) removeLocked(match func(*subscription) bool) []*worker {
	old := *b.subs.Load()
	next := make(map[reflect.Type][]*subscription, len(old))
	var stopped []*worker
	changed := false
	for typ, subs := range old {
		if !slices.ContainsFunc(subs, match) {
			next[typ] = subs
			continue
		}
		changed = true
		var keep []*subscription
		for _, s := range subs {
			if !match(s) {
				keep = append(keep, s)
				continue
			}
			s.live.Store(false)
			if s.worker != nil {
				stopped = append(stopped, s.worker)
			}
		}
		if len(keep) > 0 {
			next[typ] = keep
		}
	}
	if changed {
		b.subs.Store(&next)
	}
	return stopped
}

// stop cancels the workers and waits for them to return, up to
// Config.HookTimeout in all.
func (b *eventBus) stop(workers []*worker) {
	for _, w := range workers {
		w.cancel()
	}
	b.await(workers, "event handler still running after Config.HookTimeout; its worker stops when it returns")
}

// await waits up to Config.HookTimeout for workers to return, and logs
// those that have not, with msg.
func (b *eventBus) await(workers []*worker, msg string) {
	if len(workers) == 0 {
		return
	}
	timer := time.NewTimer(b.m.cfg.HookTimeout)
	defer timer.Stop()
	for i, w := range workers {
		select {
		case <-w.done:
			continue
		case <-timer.C:
		}
		for _, w := range workers[i:] {
			select {
			case <-w.done:
			default:
				w.sub.logger.Warn(msg, "event", w.sub.event, "timeout", b.m.cfg.HookTimeout)
			}
		}
		return
	}
}
