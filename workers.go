package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// ErrPluginStopped is the error of [Host.Go] and [Host.Every] called
// through the Host of a plugin that is not starting or running: it was
// disabled, failed or stopped, or the Host is an earlier run's.
var ErrPluginStopped = errors.New("pluginhost: the plugin is not starting or running")

// The kinds of background work, as [WorkerStatus].Kind names them.
const (
	// WorkerGoroutine is a goroutine started with [Host.Go].
	WorkerGoroutine = "goroutine"
	// WorkerJob is a periodic job started with [Host.Every].
	WorkerJob = "job"
)

// WorkerStatus reports one goroutine or periodic job of a plugin's current
// run, in [PluginStatus].Workers.
type WorkerStatus struct {
	Name string `json:"name"`
	// Kind is WorkerGoroutine or WorkerJob.
	Kind string `json:"kind"`
	// Scope and Interval are a job's.
	Scope    JobScope      `json:"scope,omitempty"`
	Interval time.Duration `json:"interval_ns,omitempty"`
	// Running: a goroutine's function has not returned; a job's run is in
	// progress.
	Running bool `json:"running"`
	// Runs counts the calls of the function: 1 for a goroutine that
	// started, a job's runs on this replica.
	Runs int64 `json:"runs"`
	// Failures counts the calls that returned an error (other than the
	// cancellation of a stopping plugin), panicked, overran or called
	// runtime.Goexit.
	Failures int64 `json:"failures,omitempty"`
	// LastRun is when the last call began.
	LastRun time.Time `json:"last_run,omitzero"`
	// LastError is the last failure's text, or why the last claim of a
	// OncePerFleet period failed.
	LastError string `json:"last_error,omitempty"`
	// NextRun is when a job is due next, while it waits.
	NextRun time.Time `json:"next_run,omitzero"`
}

// Go runs fn on a goroutine of the plugin's, supervised by the Manager:
//
//   - ctx is canceled when the plugin's run ends: it is disabled, fails
//     (its circuit breaker included) or the Manager shuts down. fn must
//     return then.
//   - The Manager waits for it before the plugin's Shutdown hook, within
//     Config.HookTimeout and the deadline of the Disable or Shutdown; one
//     still running then is abandoned and counted as an overrun.
//   - A panic is recovered and counted against the plugin's circuit
//     breaker, like a handler's; so is runtime.Goexit, as an overrun.
//   - An error fn returns is logged and shown in the plugin's status
//     (PluginStatus.Workers); an error wrapping context.Canceled returned
//     once ctx is canceled is not a failure. fn is not restarted, whatever
//     it returned: a plugin that wants a loop writes one, or uses
//     [Host.Every].
//
// name identifies the goroutine in logs and status; it must be non-empty
// and unique among the run's goroutines and jobs. Go returns an error,
// and runs nothing, for a bad name or a nil fn, and one wrapping
// [ErrPluginStopped] when the plugin is not starting or running (it was
// disabled, or h is an earlier run's Host). Go is safe for concurrent use;
// plugins usually call it from Init.
func (h *Host) Go(name string, fn func(ctx context.Context) error) error {
	if fn == nil {
		return fmt.Errorf("pluginhost: plugin %q: Go(%q): nil function", h.id, name)
	}
	w := &bgWorker{name: name, kind: WorkerGoroutine}
	ctx, err := h.addWorker(w, "Go")
	if err != nil {
		return err
	}
	go h.runGoroutine(ctx, w, fn)
	return nil
}

// addWorker registers w in the plugin's current run, if h is that run's
// Host and the plugin is starting or running, and returns the run's
// context; call names the method, for errors.
func (h *Host) addWorker(w *bgWorker, call string) (context.Context, error) {
	if w.name == "" {
		return nil, fmt.Errorf("pluginhost: plugin %q: %s: empty name", h.id, call)
	}
	w.done = make(chan struct{}) // before w is shared
	var ctx context.Context
	err := h.m.plugins.withRun(h, func(*plugin) error {
		var err error
		ctx, err = h.work.add(w)
		return err
	})
	var nir *notInRunError
	if errors.As(err, &nir) {
		return nil, fmt.Errorf("%w: plugin %q: %s(%q): %w", ErrPluginStopped, h.id, call, w.name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("pluginhost: plugin %q: %s(%q): %w", h.id, call, w.name, err)
	}
	return ctx, nil
}

// runGoroutine runs fn, the function of goroutine w, with ctx.
func (h *Host) runGoroutine(ctx context.Context, w *bgWorker, fn func(ctx context.Context) error) {
	defer close(w.done)
	if !h.work.begin(w, time.Now()) {
		return // the run ended before the goroutine began
	}
	where := "goroutine " + w.name
	var err error
	returned := false
	defer func() {
		if !returned {
			err = fmt.Errorf("%s %w", where, errGoexit)
			h.m.recordOverrun(h.id, where, err)
		}
		h.finish(ctx, w, err)
	}()
	err = h.m.contain(h.id, where, func() error { return fn(ctx) })
	returned = true
}

// finish records the end of a call of w's function, which returned err,
// and logs a failure.
func (h *Host) finish(ctx context.Context, w *bgWorker, err error) {
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		err = nil // it stopped because the plugin did
	}
	if err != nil {
		var pe *PanicError
		if !errors.As(err, &pe) { // a panic is logged with its stack already
			h.logger.Error("plugin "+w.kind+" failed", "name", w.name, "err", err)
		}
	}
	h.work.finish(w, err)
}

// bgWorker is one goroutine or job of a plugin's run.
type bgWorker struct {
	// Set before the worker is shared.
	name     string
	kind     string
	scope    JobScope
	interval time.Duration
	done     chan struct{} // closed when the worker's goroutine returns

	// Guarded by runWork.mu.
	running   bool
	runs      int64
	failures  int64
	lastRun   time.Time
	lastErr   string
	nextRun   time.Time
	overran   bool // the current run's overrun was counted already
	abandoned bool // a stop stopped waiting for it: counted as an overrun
}

// runWork is the background work of one run of a plugin, kept by the run's
// Host: its goroutines and jobs and the context that ends them. The zero
// value is ready; it is safe for concurrent use.
type runWork struct {
	mu      sync.Mutex
	ended   bool
	ctx     context.Context // made by the first add
	cancel  context.CancelFunc
	workers []*bgWorker // in the order they were added
}

// add registers w and returns the run's context, unless the run ended or
// the name is taken.
func (r *runWork) add(w *bgWorker) (context.Context, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return nil, &notInRunError{}
	}
	if slices.ContainsFunc(r.workers, func(o *bgWorker) bool { return o.name == w.name }) {
		return nil, errors.New("the name is taken by another goroutine or job of this run")
	}
	if r.ctx == nil {
		r.ctx, r.cancel = context.WithCancel(context.Background())
	}
	r.workers = append(r.workers, w)
	return r.ctx, nil
}

// end ends the run: its context is canceled and no call of a worker's
// function begins from here on. It does not block, and is called with the
// plugin table's lock held, as the plugin leaves starting or running.
func (r *runWork) end() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = true
	if r.cancel != nil {
		r.cancel()
	}
}

// begin marks the start of a call of w's function at now, and reports
// whether it may begin: not once the run has ended.
func (r *runWork) begin(w *bgWorker, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return false
	}
	w.running, w.runs, w.lastRun, w.nextRun, w.overran = true, w.runs+1, now, time.Time{}, false
	return true
}

// finish marks the end of a call of w's function, which failed with err
// when it is not nil.
func (r *runWork) finish(w *bgWorker, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w.running = false
	if err != nil {
		w.failures++
		w.lastErr = err.Error()
	}
}

// overran records that w's current call overran, and reports whether it
// was not recorded already.
func (r *runWork) overran(w *bgWorker) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	first := !w.overran && !w.abandoned
	w.overran = true
	return first
}

// update changes w under the lock.
func (r *runWork) update(w *bgWorker, fn func(w *bgWorker)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fn(w)
}

// statuses reports the run's workers, in the order they were added.
func (r *runWork) statuses() []WorkerStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.workers) == 0 {
		return nil
	}
	out := make([]WorkerStatus, len(r.workers))
	for i, w := range r.workers {
		out[i] = WorkerStatus{
			Name: w.name, Kind: w.kind, Scope: w.scope, Interval: w.interval,
			Running: w.running, Runs: w.runs, Failures: w.failures,
			LastRun: w.lastRun, LastError: w.lastErr, NextRun: w.nextRun,
		}
	}
	return out
}

// await waits for the run's workers to return, within bound and ctx (and
// then the shared grace period, when grace is not nil, as awaitHook gives
// it), and returns those it stopped waiting for, which it marks
// abandoned; workers abandoned before are not waited for again.
func (r *runWork) await(ctx context.Context, bound time.Duration, grace *<-chan time.Time) (abandoned []*bgWorker) {
	r.mu.Lock()
	var pending []*bgWorker
	for _, w := range r.workers {
		if !w.abandoned {
			pending = append(pending, w)
		}
	}
	r.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	timer := time.NewTimer(bound)
	defer timer.Stop()
	ctxDone, late := ctx.Done(), (<-chan time.Time)(nil)
	i := 0
wait:
	for i < len(pending) {
		select {
		case <-pending[i].done:
			i++
		case <-timer.C:
			break wait
		case <-late:
			break wait
		case <-ctxDone:
			if grace == nil {
				break wait
			}
			if *grace == nil {
				*grace = time.After(shutdownGrace)
			}
			ctxDone, late = nil, *grace
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range pending[i:] {
		select {
		case <-w.done:
			continue
		default:
		}
		counted := w.overran
		w.abandoned = true
		if !counted {
			abandoned = append(abandoned, w)
		}
	}
	return abandoned
}

// awaitWorkers waits, as a plugin stops, for the goroutines and jobs of
// p's current run, whose context is canceled already, and counts those
// still running at the bound (Config.HookTimeout, ctx's deadline and then
// grace) as overruns.
func (m *Manager) awaitWorkers(ctx context.Context, p *plugin, grace *<-chan time.Time) {
	h := m.plugins.hostOf(p)
	if h == nil {
		return
	}
	for _, w := range h.work.await(ctx, m.cfg.HookTimeout, grace) {
		where := w.kind + " " + w.name
		m.recordOverrun(p.id, where, fmt.Errorf("%s did not return when the plugin stopped: abandoned", where))
	}
}
