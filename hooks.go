package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// PanicError is the failure of plugin code that panicked: a hook, a
// handler, an event handler, an extension call or a health check.
type PanicError struct {
	Plugin string
	Phase  string
	Value  any
	Stack  []byte
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("plugin %q panicked in %s: %v", e.Plugin, e.Phase, e.Value)
}

// Every call into plugin code goes through protect, the one place where
// this package recovers a panic: contain adds the circuit breaker's count,
// callHook a timeout for lifecycle hooks, runPhase the timing of a phase.

// caught is a panic recovered from plugin code.
type caught struct {
	value any
	stack []byte
}

// protect calls fn, which runs plugin code, and returns a panic in it as
// caught, with the stack; otherwise it returns fn's error.
func protect(fn func() error) (c *caught, err error) { return protectCall(callNoArgs, fn, struct{}{}) }

func callNoArgs(fn func() error, _ struct{}) error { return fn() }

// protectCall is protect for a call of fn with a and b; hot paths (event
// delivery, extension calls) use it to save a closure and an indirect call.
// It holds this package's one recover.
func protectCall[A, B any](fn func(A, B) error, a A, b B) (c *caught, err error) {
	defer func() {
		if rv := recover(); rv != nil {
			c = &caught{value: rv, stack: debug.Stack()}
		}
	}()
	return nil, fn(a, b)
}

// contain calls fn, code of plugin id, and turns a panic into a
// *PanicError that is logged and counted against the plugin's circuit
// breaker; where says what was called ("init", …).
func (m *Manager) contain(id, where string, fn func() error) error {
	c, err := protect(fn)
	if c != nil {
		return m.panicked(id, where, c)
	}
	return err
}

// panicked records a panic caught in plugin id's code, in where, against
// its circuit breaker, and returns it as a *PanicError. Hot paths call
// protect themselves and name where only once something panicked.
func (m *Manager) panicked(id, where string, c *caught) *PanicError {
	pe := &PanicError{Plugin: id, Phase: where, Value: c.value, Stack: c.stack}
	m.recordPanic(pe)
	return pe
}

// callHook calls a lifecycle hook of p: fn gets a context bounded by
// Config.HookTimeout. A panic is contained and returned as a *PanicError;
// a hook that has not returned by the deadline is an error, and is left
// running.
func (m *Manager) callHook(ctx context.Context, p *plugin, where string, fn func(context.Context) error) error {
	return m.awaitHook(ctx, p, where, fn, nil)
}

// awaitHook is callHook with an optional grace period, shared by the hooks
// of one operation, for hooks called after ctx is done (Shutdown): a hook
// that returns at once on a canceled context is reported as it returned.
func (m *Manager) awaitHook(ctx context.Context, p *plugin, where string, fn func(context.Context) error, grace *<-chan time.Time) (err error) {
	defer m.metrics.of(p.id).hookDone(where, time.Now(), &err)
	if observe := m.cfg.HookObserver; observe != nil {
		var end func(error)
		if ctx, end = observe(ctx, p.id, where); end != nil {
			defer func() { end(err) }()
		}
	}
	hctx, cancel := context.WithTimeout(ctx, m.cfg.HookTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		returned := false
		defer func() {
			if !returned { // runtime.Goexit: contained, like a panic
				err := fmt.Errorf("%s %w", where, errGoexit)
				m.recordOverrun(p.id, where, err)
				done <- err
			}
		}()
		err := m.contain(p.id, where, func() error { return fn(hctx) })
		returned = true
		done <- err
	}()
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

// errGoexit is the failure of plugin code that called runtime.Goexit (as
// t.FailNow does): contained like a panic, on a goroutine of the library's.
var errGoexit = errors.New("called runtime.Goexit")

// runSteps runs step(0), …, step(n-1), calls into plugin code, in order, on
// a goroutine of their own, and waits for them, so that plugin code can
// neither hold its caller past a bound nor end the caller's goroutine. A
// step that returns an error is reported with failed(i, err). A step that
// has not returned within Config.HookTimeout (checked to a quarter of it),
// or that calls runtime.Goexit, is abandoned, and reported the same way
// with why; the steps after it go on, on a goroutine of their own, and what
// the abandoned step returns later is dropped. failed calls never overlap.
// When stop is closed first, runSteps returns false and runs no step that
// has not started. Panics are step's to contain.
func (m *Manager) runSteps(n int, stop <-chan struct{}, step func(i int) error, failed func(i int, err error, abandoned bool)) bool {
	bound := m.cfg.HookTimeout
	for first := 0; first < n; {
		r := &stepRun{done: make(chan int, 1), failed: failed}
		r.at.Store(int64(first))
		go r.run(first, n, step)
		i, err := r.wait(n, bound, stop)
		if err == nil {
			return true
		}
		r.abandon()
		if i < 0 {
			return false
		}
		failed(i, err, true)
		first = i + 1
	}
	return true
}

// stepRun is one goroutine's share of a runSteps.
type stepRun struct {
	at     atomic.Int64 // the step running, or about to
	done   chan int     // n once the steps returned; i when step i called Goexit
	failed func(i int, err error, abandoned bool)

	mu   sync.Mutex  // held while failed runs, and to set gone
	gone atomic.Bool // the caller went on without this goroutine: run no further step
}

// abandon tells r's goroutine that its caller went on without it.
func (r *stepRun) abandon() {
	r.mu.Lock()
	r.gone.Store(true)
	r.mu.Unlock()
}

func (r *stepRun) run(first, n int, step func(int) error) {
	i, exited := first, true
	defer func() {
		if exited {
			r.done <- i // runtime.Goexit in step i
		}
	}()
	for ; i < n && !r.gone.Load(); i++ {
		r.at.Store(int64(i))
		if err := step(i); err != nil {
			r.mu.Lock()
			if !r.gone.Load() {
				r.failed(i, err, false)
			}
			r.mu.Unlock()
		}
	}
	exited = false
	r.done <- n
}

// wait waits for the steps of r: it returns n, nil when they returned; the
// index of a step that overran or called Goexit with the error; -1 when
// stop was closed first.
func (r *stepRun) wait(n int, bound time.Duration, stop <-chan struct{}) (int, error) {
	tick := time.NewTimer(bound / 4)
	defer tick.Stop()
	last, still := r.at.Load(), 0
	for {
		select {
		case i := <-r.done:
			if i >= n {
				return n, nil
			}
			return i, errGoexit
		case <-stop:
			return -1, errors.New("stopped")
		case <-tick.C:
			if cur := r.at.Load(); cur != last {
				last, still = cur, 0
			} else if still++; still >= 4 {
				return int(cur), fmt.Errorf("did not return within Config.HookTimeout (%s): %w", bound, context.DeadlineExceeded)
			}
			tick.Reset(bound / 4)
		}
	}
}
