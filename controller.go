package pluginhost

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
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

	mu         sync.Mutex // guards the fields below
	started    bool
	stopped    bool
	feed       feed // carries changes to the other Managers; set by start
	cancel     context.CancelFunc
	pendingIDs map[string]bool // plugins another Manager changed
	pendingAll bool            // reconcile every plugin (after reconnecting)

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
	c.pendingIDs = map[string]bool{}
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
// whether they are, which they are not when stop came first.
func (c *controller) openUp() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.open.Store(c.started && !c.stopped)
	return c.open.Load()
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
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.reload:
			c.m.followReplicas(ctx)
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
	if c.pendingIDs != nil {
		c.pendingIDs[id] = true
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
	c.pendingAll = c.pendingAll || all
	c.mu.Unlock()
	select {
	case c.reload <- struct{}{}:
	default:
	}
}

// takeReconcile returns the plugins to reconcile, and whether all are,
// and clears them.
func (c *controller) takeReconcile() (ids map[string]bool, all bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids, all = c.pendingIDs, c.pendingAll
	c.pendingIDs, c.pendingAll = map[string]bool{}, false
	return ids, all
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
