package pluginhost

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotRunning is the error of a runtime operation asked of a Manager
// that has not finished Start, or is shutting down.
var ErrNotRunning = errors.New("pluginhost: manager is not running")

// ErrReentrant is the error of Enable or Disable called with the context
// of an operation the control goroutine runs, such as the context a
// synchronous handler of a built-in event receives: that operation waits
// for the handler, so it cannot run another first. Subscribe with [Async],
// or call with a context of your own from another goroutine.
var ErrReentrant = errors.New("pluginhost: Enable or Disable called from within a runtime operation (a synchronous handler of a built-in event?): subscribe with Async")

// onControlLoop marks the contexts of the control goroutine's work.
type onControlLoop struct{}

// controller is the Manager's control goroutine and what it is asked to
// do. Every runtime change of plugin state (Enable, Disable, a tripped
// circuit breaker, a change announced by another replica) runs on it, one
// at a time, so that they never interleave.
//
// Its life: start (Start, once the core is migrated: from then on changes
// other replicas announce are heard), open (Start finished: runtime
// operations are accepted), stop (Shutdown, or a Start that failed). It
// alone answers whether runtime operations are accepted: see accepting.
// stop may come at any point, more than once, and a start or open after it
// does nothing.
type controller struct {
	m *Manager

	// open is set while runtime operations are accepted: after open and
	// before stop. Written under mu, read without it.
	open atomic.Bool

	mu      sync.Mutex // guards the fields below
	started bool
	stopped bool
	feed    feed // carries changes to the other Managers; set by start
	cancel  context.CancelFunc
	// pending is what other Managers changed and this one has not applied
	// yet: it stays pending until a follow applies it.
	pending followWork

	// Made by start, before the goroutines that use them.
	ops        chan *controlOp
	reload     chan struct{} // reload requests, merged
	trip       chan struct{} // breaker trips to wind down, merged
	done       chan struct{} // closed when the loop ends
	background sync.WaitGroup
}

type controlOp struct {
	ctx  context.Context
	fn   func(ctx context.Context) error
	done chan error
}

// start starts the control loop and the change feed, before anything
// another Manager could change is loaded. It does nothing once stop has
// run: Shutdown may begin while Start runs.
func (c *controller) start(ctx context.Context) {
	m := c.m
	c.mu.Lock()
	if c.stopped || c.started {
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
	c.pending = followWork{ids: map[string]bool{}}
	// Every goroutine is started under c.mu, so stop's Wait never races an
	// Add.
	c.background.Go(func() { c.loop(context.WithValue(bg, onControlLoop{}, true)) })
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

// openUp makes runtime operations accepted: Start has finished. It reports
// whether they are, which they are not when stop came first. Plugin
// changes other Managers announced while Start ran are followed now.
func (c *controller) openUp() bool {
	c.mu.Lock()
	c.open.Store(c.started && !c.stopped)
	open, follow := c.open.Load(), c.pending.reconcile()
	c.mu.Unlock()
	if open && follow {
		c.wake()
	}
	return open
}

// accepting reports whether runtime operations are accepted: Start has
// finished and stop has not begun. It takes no lock.
func (c *controller) accepting() bool { return c.open.Load() }

// stop stops accepting operations, then stops the loop, after the operation
// it is running, and the feed, and waits for both. It may be called more
// than once, before, during or after start.
func (c *controller) stop() {
	c.mu.Lock()
	c.open.Store(false)
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

// changeFeed returns the feed the Manager announces its changes on. It is
// valid on the control loop.
func (c *controller) changeFeed() feed {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.feed
}

// loop is the control goroutine.
func (c *controller) loop(ctx context.Context) {
	defer close(c.done)
	var retry followRetry
	defer retry.stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.reload:
			c.catchUp(ctx, &retry)
		case <-retry.due():
			c.catchUp(ctx, &retry)
		case <-c.trip:
			c.m.windDownTrips(ctx)
		case op := <-c.ops:
			opCtx, cancel := context.WithCancel(context.WithValue(op.ctx, onControlLoop{}, true))
			stop := context.AfterFunc(ctx, cancel)
			op.done <- op.fn(opCtx)
			stop()
			cancel()
		}
	}
}

// submit runs fn on the control goroutine and returns its result. When ctx
// is done first, submit returns, and fn goes on with a canceled context.
func (c *controller) submit(ctx context.Context, fn func(ctx context.Context) error) error {
	if !c.accepting() {
		return ErrNotRunning
	}
	if ctx.Value(onControlLoop{}) != nil {
		return ErrReentrant
	}
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

// changed records that another Manager changed plugin id, for the next
// reconcile, and asks for a reload.
func (c *controller) changed(id string) {
	c.mu.Lock()
	if c.pending.ids != nil {
		c.pending.ids[id] = true
	}
	c.mu.Unlock()
	c.requestReload(false)
}

// requestReload asks the control goroutine to reload the shared state;
// all, after reconnecting, reconciles every plugin. Requests made while one
// is pending merge into it.
func (c *controller) requestReload(all bool) {
	c.mu.Lock()
	if !c.started {
		c.mu.Unlock()
		return
	}
	c.pending.settings = true
	c.pending.all = c.pending.all || all
	c.mu.Unlock()
	c.wake()
}

// wake makes the control goroutine follow what is pending.
func (c *controller) wake() {
	select {
	case c.reload <- struct{}{}:
	default:
	}
}

// followWork is what other Managers changed, to be read again and applied.
type followWork struct {
	settings bool            // the settings' values
	ids      map[string]bool // the plugins whose enable flag changed
	all      bool            // every plugin's enable flag (after reconnecting)
}

// reconcile reports whether w has plugins to reconcile.
func (w followWork) reconcile() bool { return w.all || len(w.ids) > 0 }

// takeFollow returns the pending work and clears it; the plugins' part
// only when reconcile is true (runtime operations are accepted), else it
// stays pending. A part that fails goes back with putBack.
func (c *controller) takeFollow(reconcile bool) followWork {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := followWork{settings: c.pending.settings}
	c.pending.settings = false
	if reconcile {
		w.ids, w.all = c.pending.ids, c.pending.all
		c.pending.ids, c.pending.all = map[string]bool{}, false
	}
	return w
}

// putBack returns work that was not applied to the pending work, merged
// with what other Managers changed meanwhile.
func (c *controller) putBack(w followWork) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending.settings = c.pending.settings || w.settings
	c.pending.all = c.pending.all || w.all
	for id := range w.ids {
		c.pending.ids[id] = true
	}
}

// The pause before following again after a failure: it doubles from
// followRetryMin up to followRetryMax, which bounds how long a replica
// stays stale once its database answers again.
const (
	followRetryMin = 10 * time.Millisecond
	followRetryMax = 250 * time.Millisecond
)

// followRetry is the control goroutine's retry of a follow that failed.
// Its zero value has none scheduled.
type followRetry struct {
	timer    *time.Timer
	pause    time.Duration // before the next retry
	failures int           // in a row
}

// due returns the channel of the scheduled retry, or nil when none is.
func (r *followRetry) due() <-chan time.Time {
	if r.timer == nil {
		return nil
	}
	return r.timer.C
}

func (r *followRetry) stop() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
}

// catchUp applies what other Managers changed. When that fails it keeps
// the work pending and schedules a retry, with backoff, until it succeeds
// or the loop ends.
func (c *controller) catchUp(ctx context.Context, r *followRetry) {
	r.stop()
	err := c.m.followReplicas(ctx)
	switch {
	case err == nil:
		if r.failures > 0 {
			c.m.log.Info("following the changes of other replicas again", "failures", r.failures)
		}
		*r = followRetry{}
	case ctx.Err() != nil: // stopping: nothing to retry
	default:
		r.failures++
		r.pause = min(max(2*r.pause, followRetryMin), followRetryMax)
		// Logged at the 1st, 2nd, 4th, 8th… failure in a row: an outage
		// does not flood the log.
		if r.failures&(r.failures-1) == 0 {
			c.m.log.Warn("could not follow the changes of other replicas; retrying", "err", err, "failures", r.failures, "retry_in", r.pause)
		}
		r.timer = time.NewTimer(r.pause)
	}
}

// requestTrip asks the control goroutine to wind down the plugins a
// circuit breaker stopped. It never blocks.
func (c *controller) requestTrip() {
	c.mu.Lock()
	started := c.started
	c.mu.Unlock()
	if !started {
		return
	}
	select {
	case c.trip <- struct{}{}:
	default:
	}
}
