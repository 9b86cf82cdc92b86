package pluginhost_test

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// waitFor waits, within a deadline, until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, stuckBound, 5*time.Millisecond, what)
}

// worker returns the status of plugin id's worker name.
func workerStatus(t *testing.T, m *pluginhost.Manager, id, name string) pluginhost.WorkerStatus {
	t.Helper()
	for _, w := range status(t, m, id).Workers {
		if w.Name == name {
			return w
		}
	}
	t.Fatalf("plugin %q has no worker %q: %+v", id, name, status(t, m, id).Workers)
	return pluginhost.WorkerStatus{}
}

// hostKeeper is a fake plugin whose Init runs start with its Host and
// keeps the Host.
type hostKeeper struct {
	fake
	host atomic.Pointer[pluginhost.Host]
}

func newHostKeeper(id string, start func(h *pluginhost.Host) error) *hostKeeper {
	k := &hostKeeper{fake: fake{manifest: manifest(id, "1.0.0")}}
	k.init = func(_ context.Context, h *pluginhost.Host) error {
		k.host.Store(h)
		return start(h)
	}
	return k
}

// A goroutine's context is canceled by Disable, which waits for it before
// the plugin's Shutdown hook; afterwards Go refuses through that Host.
func TestGoCanceledAndAwaitedOnDisable(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		started, stopping, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
		var returned atomic.Bool
		p := newHostKeeper("bg", func(h *pluginhost.Host) error {
			return h.Go("loop", func(ctx context.Context) error {
				close(started)
				<-ctx.Done()
				close(stopping)
				<-release // cleanup the test lets finish
				returned.Store(true)
				return ctx.Err()
			})
		})
		hookCalled := make(chan struct{})
		var hookSawReturned atomic.Bool
		p.shutdown = func(context.Context, *pluginhost.Host) error {
			hookSawReturned.Store(returned.Load())
			close(hookCalled)
			return nil
		}
		m := e.start(e.config(p))
		<-started
		w := workerStatus(t, m, "bg", "loop")
		require.Equal(t, pluginhost.WorkerGoroutine, w.Kind)
		require.True(t, w.Running)
		require.Equal(t, int64(1), w.Runs)
		require.False(t, w.LastRun.IsZero())

		disabled := make(chan error, 1)
		go func() { disabled <- m.Disable(context.Background(), "bg") }()
		<-stopping
		select {
		case <-hookCalled:
			t.Fatal("the Shutdown hook ran while the plugin's goroutine was still running")
		case <-time.After(100 * time.Millisecond): // a window for a hook that does not wait
		}
		close(release)
		require.NoError(t, <-disabled)
		require.True(t, returned.Load(), "Disable returns once the goroutine returned")
		require.True(t, hookSawReturned.Load(), "the Shutdown hook runs after the goroutine returned")

		w = workerStatus(t, m, "bg", "loop")
		require.False(t, w.Running)
		require.Zero(t, w.Failures, "returning ctx.Err() once canceled is no failure")
		require.Empty(t, w.LastError)

		err := p.host.Load().Go("again", func(context.Context) error { return nil })
		require.ErrorIs(t, err, pluginhost.ErrPluginStopped)
		require.ErrorContains(t, err, `plugin "bg"`)
		err = p.host.Load().Every("tick", time.Second, pluginhost.EveryReplica, func(context.Context) error { return nil })
		require.ErrorIs(t, err, pluginhost.ErrPluginStopped)
	})
}

// Shutdown cancels a goroutine and, when it ignores its context, abandons
// it at Config.HookTimeout, counting an overrun.
func TestShutdownAbandonsAGoroutineThatIgnoresCancellation(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		started, release := make(chan struct{}), make(chan struct{})
		defer close(release)
		var hookCalled atomic.Bool
		p := newHostKeeper("stubborn", func(h *pluginhost.Host) error {
			return h.Go("deaf", func(context.Context) error {
				close(started)
				<-release
				return nil
			})
		})
		p.shutdown = func(context.Context, *pluginhost.Host) error { hookCalled.Store(true); return nil }
		cfg := e.config(p)
		cfg.HookTimeout = 300 * time.Millisecond
		m := e.start(cfg)
		<-started
		begun := time.Now()
		require.NoError(t, m.Shutdown(context.Background()))
		require.GreaterOrEqual(t, time.Since(begun), cfg.HookTimeout, "Shutdown waited for the goroutine up to the bound")
		require.True(t, hookCalled.Load(), "the Shutdown hook still runs")
		st := status(t, m, "stubborn")
		require.Equal(t, 1, st.Overruns)
		require.True(t, st.Workers[0].Running, "abandoned, still running")
		require.Contains(t, e.logs.String(), "goroutine deaf did not return when the plugin stopped: abandoned")
	})
}

// A panic in a goroutine is recovered and counts against the circuit
// breaker; an error it returns is a failure in its status; neither is
// restarted.
func TestGoPanicsAndErrors(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		fire := make(chan struct{})
		p := newHostKeeper("faulty", func(h *pluginhost.Host) error {
			if err := h.Go("fails", func(context.Context) error { return errTest }); err != nil {
				return err
			}
			// The breaker counts faults of a running plugin: this one
			// panics once Start has returned.
			return h.Go("boom", func(context.Context) error { <-fire; panic("kaboom") })
		})
		cfg := e.config(p)
		cfg.PanicLimit = 1
		m := e.start(cfg)
		waitFor(t, "the failure is recorded", func() bool { return workerStatus(t, m, "faulty", "fails").Failures == 1 })
		close(fire)
		waitFor(t, "the breaker trips", func() bool { return status(t, m, "faulty").State == pluginhost.StateFailed })
		st := status(t, m, "faulty")
		require.Equal(t, 1, st.Panics)
		require.Contains(t, st.Reason, "circuit breaker")
		require.Contains(t, st.Reason, "goroutine boom")
		var pe *pluginhost.PanicError
		require.ErrorAs(t, st.Err, &pe)
		require.Equal(t, "kaboom", pe.Value)

		fails := workerStatus(t, m, "faulty", "fails")
		require.Equal(t, errTest.Error(), fails.LastError)
		require.Equal(t, int64(1), fails.Runs, "not restarted")
		require.False(t, fails.Running)
		require.Contains(t, e.logs.String(), "plugin goroutine failed")
		waitFor(t, "the panic is a failure", func() bool { return workerStatus(t, m, "faulty", "boom").Failures == 1 })
		boom := workerStatus(t, m, "faulty", "boom")
		require.Contains(t, boom.LastError, "kaboom")
	})
}

// Bad arguments are refused with errors naming the plugin; a refused call
// starts nothing.
func TestGoAndEveryRefuseBadArguments(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		errs := map[string]error{}
		nop := func(context.Context) error { return nil }
		p := newHostKeeper("args", func(h *pluginhost.Host) error {
			errs["first"] = h.Go("one", func(ctx context.Context) error { <-ctx.Done(); return nil })
			errs["taken"] = h.Every("one", time.Second, pluginhost.EveryReplica, nop)
			errs["empty"] = h.Go("", nop)
			errs["nil"] = h.Go("nil", nil)
			errs["short"] = h.Every("fast", time.Millisecond, pluginhost.EveryReplica, nop)
			errs["scope"] = h.Every("odd", time.Second, "sometimes", nop)
			return nil
		})
		m := e.start(e.config(p))
		require.NoError(t, errs["first"])
		for _, k := range []string{"taken", "empty", "nil", "short", "scope"} {
			require.ErrorContains(t, errs[k], `plugin "args"`, k)
		}
		require.ErrorContains(t, errs["taken"], "name is taken")
		require.ErrorContains(t, errs["short"], "under the minimum")
		require.ErrorContains(t, errs["scope"], `unknown scope "sometimes"`)
		require.Len(t, status(t, m, "args").Workers, 1, "only the accepted goroutine")
	})
}

// Status lists a run's goroutines and jobs, in JSON too.
func TestStatusListsWorkers(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ran := make(chan struct{}, 1)
		p := newHostKeeper("listed", func(h *pluginhost.Host) error {
			if err := h.Go("watch", func(ctx context.Context) error { <-ctx.Done(); return nil }); err != nil {
				return err
			}
			return h.Every("hourly", time.Hour, pluginhost.OncePerFleet, func(context.Context) error {
				select {
				case ran <- struct{}{}:
				default:
				}
				return nil
			})
		})
		m := e.start(e.config(p))
		<-ran
		waitFor(t, "the job waits for its next period", func() bool { return !workerStatus(t, m, "listed", "hourly").NextRun.IsZero() })
		ws := status(t, m, "listed").Workers
		require.Len(t, ws, 2)
		require.Equal(t, "watch", ws[0].Name)
		require.Equal(t, pluginhost.WorkerGoroutine, ws[0].Kind)
		require.True(t, ws[0].Running)
		job := ws[1]
		require.Equal(t, pluginhost.WorkerJob, job.Kind)
		require.Equal(t, pluginhost.OncePerFleet, job.Scope)
		require.Equal(t, time.Hour, job.Interval)
		require.Equal(t, int64(1), job.Runs, "the first run is in the period Every is called in")
		require.False(t, job.Running)
		require.Equal(t, job.NextRun, job.NextRun.Truncate(time.Hour), "periods begin on the hour")
		require.True(t, job.NextRun.After(job.LastRun))

		b, err := json.Marshal(status(t, m, "listed"))
		require.NoError(t, err)
		var decoded struct {
			Workers []map[string]any `json:"workers"`
		}
		require.NoError(t, json.Unmarshal(b, &decoded))
		require.Len(t, decoded.Workers, 2)
		require.Equal(t, "once-per-fleet", decoded.Workers[1]["scope"])
		require.Equal(t, float64(time.Hour), decoded.Workers[1]["interval_ns"])
		require.Contains(t, decoded.Workers[1], "next_run")
		require.Equal(t, true, decoded.Workers[0]["running"])

		// The claims are the library's: a plugin cannot forge one.
		db := p.host.Load().DB()
		_, err = db.ExecContext(t.Context(), `DELETE FROM pluginhost_jobs`)
		require.ErrorIs(t, err, pluginhost.ErrSandbox)
	})
}
