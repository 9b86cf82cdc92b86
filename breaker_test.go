package pluginhost_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// The breaker's gate closes before the response of the request that trips
// it is written, even while the control goroutine is busy with something
// else: the next request answers 503 and Status says failed at once. The
// plugin's Shutdown follows when the control goroutine gets to it.
func TestBreakerGateClosesWithTheTrippingRequest(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		flakyStopped := make(chan struct{}, 1)
		flaky := panicking("flaky", flakyStopped)
		// busy's Shutdown holds the control goroutine until released.
		busy := lifePlugin("busy", &hooks{})
		inShutdown, release := make(chan struct{}), make(chan struct{})
		busy.shutdown = func(context.Context, *pluginhost.Host) error {
			close(inShutdown)
			<-release
			return nil
		}
		cfg := e.config(flaky, busy)
		cfg.PanicLimit = 2
		m := e.start(cfg)
		disabled := make(chan error, 1)
		go func() { disabled <- m.Disable(context.Background(), "busy") }()
		<-inShutdown

		for range 2 {
			require.Equal(t, http.StatusInternalServerError, serve(t, m.Handler(), "GET", "/api/plugin/flaky/boom", "").Code)
		}
		require.Equal(t, http.StatusServiceUnavailable, serve(t, m.Handler(), "GET", "/api/plugin/flaky/ping", "").Code)
		st := status(t, m, "flaky")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, "circuit breaker: 2 panics within 1m0s")

		close(release)
		require.NoError(t, <-disabled)
		receiveWithin(t, flakyStopped, 5*time.Second) // then the Shutdown hook runs
	})
}

// Enable starts the breaker's window afresh: after a trip and an Enable,
// one panic fails nothing.
func TestBreakerWindowStartsAfreshOnEnable(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		stopped := make(chan struct{}, 1)
		flaky := panicking("flaky", stopped)
		cfg := e.config(flaky, lifePlugin("other", &hooks{}))
		cfg.PanicLimit = 2
		m := e.start(cfg)
		for range 2 {
			serve(t, m.Handler(), "GET", "/api/plugin/flaky/boom", "")
		}
		receiveWithin(t, stopped, 5*time.Second)
		require.Equal(t, pluginhost.StateFailed, status(t, m, "flaky").State)

		require.NoError(t, m.Enable(context.Background(), "flaky"))
		require.Equal(t, http.StatusInternalServerError, serve(t, m.Handler(), "GET", "/api/plugin/flaky/boom", "").Code)
		// Operations on the control goroutine, where a trip handed to it
		// would run first or in between (it picks among ready work at
		// random).
		for range 5 {
			require.NoError(t, m.Disable(context.Background(), "other"))
			require.NoError(t, m.Enable(context.Background(), "other"))
		}
		require.Equal(t, "ok", serve(t, m.Handler(), "GET", "/api/plugin/flaky/ping", "").Body.String())
		st := status(t, m, "flaky")
		require.Equal(t, pluginhost.StateRunning, st.State)
		require.Equal(t, 3, st.Panics) // the count since Start goes on
	})
}

// Overruns count toward the breaker like panics, and its reason says which
// faults tripped it.
func TestBreakerCountsOverruns(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		slow := listener("slow", func(h *pluginhost.Host) {
			pluginhost.Subscribe(h, func(context.Context, evA) error { <-release; return nil })
		})
		cfg := e.config(slow)
		cfg.HookTimeout = 100 * time.Millisecond
		cfg.PanicLimit = 2
		m := e.start(cfg)
		pluginhost.Publish(context.Background(), m, evA{N: 1})
		pluginhost.Publish(context.Background(), m, evA{N: 2})
		st := status(t, m, "slow")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, "circuit breaker: 2 overruns within 1m0s")
		require.Equal(t, 2, st.Overruns)
	})
}

// panicking is a plugin whose GET /boom panics and GET /ping answers "ok";
// its Shutdown hook signals stopped, without blocking when a signal is
// already pending.
func panicking(id string, stopped chan<- struct{}) *fake {
	p := lifePlugin(id, &hooks{})
	p.routes = func(r chi.Router, _ *pluginhost.Host) {
		r.Get("/boom", func(http.ResponseWriter, *http.Request) { panic(id + " handler") })
		r.Get("/ping", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
	}
	p.shutdown = func(context.Context, *pluginhost.Host) error {
		select {
		case stopped <- struct{}{}:
		default:
		}
		return nil
	}
	return p
}
