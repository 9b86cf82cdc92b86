package pluginhost_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// failShutdown makes p's Shutdown record its call and return err.
func failShutdown(rec *recorder, p *fake, id string, err error) *fake {
	p.shutdown = func(context.Context, *pluginhost.Host) error {
		rec.add("shutdown:" + id)
		return err
	}
	return p
}

// waitClosed waits for ch to be closed, failing the test if that takes
// unreasonably long (a hang, not a timing assumption).
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// Shutdown calls every hook, even after failures, and joins their errors.
func TestShutdownJoinsErrorsAndSkipsNone(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		errA, errC := errors.New("a would not stop"), errors.New("c would not stop")
		m := e.start(e.config(
			failShutdown(rec, tracked(rec, "a"), "a", errA),
			tracked(rec, "b"),
			failShutdown(rec, tracked(rec, "c"), "c", errC),
		))
		err := m.Shutdown(t.Context())
		require.ErrorIs(t, err, errA)
		require.ErrorIs(t, err, errC)
		require.ErrorContains(t, err, `plugin "a"`)
		require.ErrorContains(t, err, `plugin "c"`)
		require.NotContains(t, err.Error(), `plugin "b"`)
		require.Equal(t, []string{"c", "b", "a"}, rec.list("shutdown:"))
	})
}

func TestShutdownIsIdempotent(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		m := e.start(e.config(failShutdown(rec, tracked(rec, "once"), "once", errors.New("stuck"))))
		first := m.Shutdown(t.Context())
		require.ErrorContains(t, first, "stuck")
		for range 3 {
			again := m.Shutdown(t.Context())
			require.Same(t, first, again, "later calls return the first result")
		}
		require.Equal(t, 1, rec.count("shutdown:once"))
	})
}

func TestShutdownConcurrentCallsRunHooksOnce(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		m := e.start(e.config(tracked(rec, "once")))
		errs := make(chan error, 4)
		for range cap(errs) {
			go func() { errs <- m.Shutdown(t.Context()) }()
		}
		for range cap(errs) {
			require.NoError(t, <-errs)
		}
		require.Equal(t, 1, rec.count("shutdown:once"))
	})
}

// A hook that does not return before the context's deadline is left
// behind and reported; the next plugin's hook is still called.
func TestShutdownRespectsDeadline(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		var stuckReturned atomic.Bool
		stuck := tracked(rec, "stuck")
		stuck.shutdown = func(context.Context, *pluginhost.Host) error {
			<-release // ignores its context on purpose
			stuckReturned.Store(true)
			return nil
		}
		firstCalled := make(chan struct{})
		first := tracked(rec, "first") // shut down after "stuck": reverse order
		first.shutdown = func(context.Context, *pluginhost.Host) error {
			close(firstCalled)
			return nil
		}
		m := e.start(e.config(first, stuck))

		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		err := m.Shutdown(ctx)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, err, `plugin "stuck"`)
		require.ErrorContains(t, err, "deadline")
		require.False(t, stuckReturned.Load(), "Shutdown returned while the hook is still blocked")
		waitClosed(t, firstCalled, `the shutdown hook of "first"`)
		require.Same(t, err, m.Shutdown(t.Context()))
	})
}

func TestShutdownNeverStarted(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		m := newManager(t, e.config(tracked(rec, "idle")))
		require.NoError(t, m.Shutdown(t.Context()))
		require.NoError(t, m.Shutdown(t.Context()))
		require.ErrorIs(t, m.Start(t.Context()), pluginhost.ErrClosed)
		require.Empty(t, rec.list(""), "no hook runs")
		require.Empty(t, m.Status())
	})
}

func TestStartAfterShutdown(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		m := e.start(e.config(tracked(rec, "p")))
		require.NoError(t, m.Shutdown(t.Context()))
		require.ErrorIs(t, m.Start(t.Context()), pluginhost.ErrClosed)
		require.Equal(t, 1, rec.count("init:p"))
		require.Equal(t, 1, rec.count("shutdown:p"))
	})
}

// After Shutdown, plugin routes answer 503 with a JSON body.
func TestShutdownStopsServing(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		m := e.start(e.config(tracked(rec, "svc")))
		h := m.Handler()
		require.Equal(t, http.StatusOK, serve(t, h, "GET", "/api/plugin/svc/ping", "").Code)
		require.NotEmpty(t, m.Routes())

		require.NoError(t, m.Shutdown(t.Context()))
		resp := serve(t, h, "GET", "/api/plugin/svc/ping", "")
		require.Equal(t, http.StatusServiceUnavailable, resp.Code)
		require.Contains(t, resp.Header().Get("Content-Type"), "application/json")
		var body map[string]string
		require.NoError(t, json.Unmarshal(resp.Body.Bytes(), &body))
		require.Equal(t, "svc", body["plugin"])
		require.Equal(t, string(pluginhost.StateStopped), body["state"])
		require.NotEmpty(t, body["error"])
		require.Empty(t, m.Routes())
		require.Equal(t, pluginhost.StateStopped, status(t, m, "svc").State)
	})
}

// A panic in Shutdown is recovered, logged with the plugin id and stack,
// and reported; the other plugins are still shut down.
func TestShutdownPanicIsRecovered(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		boom := tracked(rec, "boom")
		boom.shutdown = func(context.Context, *pluginhost.Host) error { panic("kaboom in shutdown") }
		m := e.start(e.config(tracked(rec, "after"), boom, tracked(rec, "zlast")))
		err := m.Shutdown(t.Context())
		require.ErrorContains(t, err, `plugin "boom"`)
		require.ErrorContains(t, err, "panicked")
		require.ErrorContains(t, err, "kaboom in shutdown")
		var pe *pluginhost.PanicError
		require.ErrorAs(t, err, &pe)
		require.Equal(t, "boom", pe.Plugin)
		require.Equal(t, pluginhost.PhaseShutdown, pe.Phase)
		require.Equal(t, []string{"zlast", "after"}, rec.list("shutdown:"))
		requirePanicLogged(t, e.logs.String(), "boom", "(*fake).Shutdown")
	})
}

// A plugin that passed Init and then failed is still shut down, once; one
// whose Init failed is not.
func TestShutdownOwedOnlyAfterInit(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		late := tracked(rec, "late") // fails after Init, in the routes phase
		late.routes = func(r chi.Router, _ *pluginhost.Host) {
			h := func(http.ResponseWriter, *http.Request) {}
			r.Get("/x", h)
			r.Get("/x", h)
		}
		early := tracked(rec, "early")
		early.init = func(context.Context, *pluginhost.Host) error { return errors.New("no") }
		m := e.start(e.config(late, early, tracked(rec, "user", deps("late"))))
		require.Equal(t, pluginhost.StateFailed, status(t, m, "late").State)
		require.Contains(t, status(t, m, "late").Reason, "routes: ")
		require.Equal(t, pluginhost.StateFailed, status(t, m, "user").State)
		require.Contains(t, status(t, m, "user").Reason, "dependency late failed")
		require.NoError(t, m.Shutdown(t.Context()))
		require.NoError(t, m.Shutdown(t.Context()))
		require.Equal(t, []string{"user", "late"}, rec.list("shutdown:"))
		requireBalanced(t, rec, "late", "early", "user")
	})
}

// Shutdown called while Start runs waits for it, then shuts down: no
// control operation is accepted and no goroutine stays.
func TestShutdownDuringStart(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		entered, release := make(chan struct{}), make(chan struct{})
		slow := &fake{manifest: manifest("slow", "1.0.0"), init: func(context.Context, *pluginhost.Host) error {
			close(entered)
			<-release
			return nil
		}}
		m, err := pluginhost.New(e.config(slow))
		require.NoError(t, err)
		started := make(chan error, 1)
		go func() { started <- m.Start(context.Background()) }()
		<-entered
		stopped := make(chan error, 1)
		go func() { stopped <- m.Shutdown(context.Background()) }()
		close(release)
		require.NoError(t, <-started)
		require.NoError(t, <-stopped)
		require.ErrorIs(t, m.Enable(context.Background(), "slow"), pluginhost.ErrNotRunning)
		require.Equal(t, pluginhost.StateStopped, status(t, m, "slow").State)
	})
}
