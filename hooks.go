package pluginhost

import (
	"context"
	"fmt"
	"runtime/debug"
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
func (m *Manager) awaitHook(ctx context.Context, p *plugin, where string, fn func(context.Context) error, grace *<-chan time.Time) error {
	hctx, cancel := context.WithTimeout(ctx, m.cfg.HookTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.contain(p.id, where, func() error { return fn(hctx) }) }()
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
