package pluginhost_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// hooks records the hook calls of plugins, in order, across goroutines.
type hooks struct {
	mu    sync.Mutex
	calls []string
}

func (h *hooks) add(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, s)
}

func (h *hooks) list() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.calls...)
}

// lifePlugin is a plugin with a table, a seed, Init, Shutdown and a route
// that answers its id.
func lifePlugin(id string, h *hooks, extra ...string) *fake {
	return &fake{
		manifest: manifest(id, "1.0.0", extra...),
		tables:   []pluginhost.Table{{Name: "items", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "name"}}}},
		seed: func(ctx context.Context, host *pluginhost.Host) error {
			h.add(id + ".seed")
			return nil
		},
		init: func(ctx context.Context, host *pluginhost.Host) error {
			h.add(id + ".init")
			return nil
		},
		shutdown: func(ctx context.Context, host *pluginhost.Host) error {
			h.add(id + ".shutdown")
			return nil
		},
		routes: okRoute("/ping", id),
	}
}

// observer is a plugin that forwards the built-in events of the plugins it
// watches to a channel.
func observer(id string, seen chan<- string) *fake {
	return &fake{
		manifest: manifest(id, "1.0.0"),
		init: func(ctx context.Context, h *pluginhost.Host) error {
			pluginhost.Subscribe(h, func(_ context.Context, e pluginhost.PluginDisabled) error {
				seen <- "disabled " + e.Plugin
				return nil
			})
			pluginhost.Subscribe(h, func(_ context.Context, e pluginhost.PluginEnabled) error {
				seen <- "enabled " + e.Plugin
				return nil
			})
			return nil
		},
	}
}

func TestDisableGatesDrainsThenShutsDownWithDependents(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		h := &hooks{}
		entered, release := make(chan struct{}), make(chan struct{})
		base := lifePlugin("base", h)
		base.routes = func(r chi.Router, _ *pluginhost.Host) {
			r.Get("/slow", func(w http.ResponseWriter, r *http.Request) {
				close(entered)
				<-release
				h.add("base.request-done")
				_, _ = w.Write([]byte("slow"))
			})
		}
		dependent := lifePlugin("dependent", h, "[dependencies]", `base = "^1.0"`)
		other := lifePlugin("other", h)
		seen := make(chan string, 10)
		m := e.start(e.config(base, dependent, other, observer("watcher", seen)))
		e.exec(`INSERT INTO base__items (name) VALUES ('kept')`)

		slow := make(chan int)
		go func() { slow <- serve(t, m.Handler(), "GET", "/api/plugin/base/slow", "").Code }()
		<-entered
		disabled := make(chan error)
		go func() { disabled <- m.Disable(context.Background(), "base") }()

		// The gate closes at once (announced as it closes), while the
		// request in flight goes on and the Shutdown hooks wait for it.
		require.Equal(t, "disabled base", receiveWithin(t, seen, 5*time.Second))
		require.Equal(t, "disabled dependent", receiveWithin(t, seen, 5*time.Second))
		require.Equal(t, http.StatusServiceUnavailable, serve(t, m.Handler(), "GET", "/api/plugin/base/ping", "").Code)
		rec := serve(t, m.Handler(), "GET", "/api/plugin/dependent/ping", "")
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		body := jsonBody(t, rec)
		require.Equal(t, "disabled", body["state"])
		require.Equal(t, "dependency base disabled", body["reason"])
		require.NotContains(t, h.list(), "base.shutdown")
		close(release)
		require.Equal(t, http.StatusOK, <-slow)
		require.NoError(t, <-disabled)

		calls := h.list()
		require.Equal(t, []string{"base.request-done", "dependent.shutdown", "base.shutdown"}, calls[len(calls)-3:])
		require.Equal(t, "other", serve(t, m.Handler(), "GET", "/api/plugin/other/ping", "").Body.String())
		st := status(t, m, "base")
		require.Equal(t, pluginhost.StateDisabled, st.State)
		require.Equal(t, "disabled by an operator", st.Reason)
		require.Equal(t, 1, e.count(`SELECT count(*) FROM base__items`), "a disabled plugin's data stays")
		for _, r := range m.Routes() {
			require.NotEqual(t, "base", r.Plugin)
		}
	})
}

func TestEnableRunsPhasesLiveAndBringsDependentsBack(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		h := &hooks{}
		cfg := e.config(lifePlugin("base", h), lifePlugin("dependent", h, "[dependencies]", `base = "^1.0"`))
		cfg.Disabled = []string{"base"}
		m := e.start(cfg)
		require.Equal(t, pluginhost.StateDisabled, status(t, m, "dependent").State)
		require.False(t, e.hasTable("base__items"), "a plugin disabled at boot has no tables yet")
		require.Equal(t, http.StatusServiceUnavailable, serve(t, m.Handler(), "GET", "/api/plugin/base/ping", "").Code)

		require.NoError(t, m.Enable(context.Background(), "base"))
		require.True(t, e.hasTable("base__items"))
		require.Equal(t, "base", serve(t, m.Handler(), "GET", "/api/plugin/base/ping", "").Body.String())
		require.Equal(t, "dependent", serve(t, m.Handler(), "GET", "/api/plugin/dependent/ping", "").Body.String())
		require.Equal(t, []string{"base.seed", "dependent.seed", "base.init", "dependent.init"}, h.list())
		require.Equal(t, pluginhost.StateRunning, status(t, m, "dependent").State)
		require.NotEmpty(t, status(t, m, "base").Routes)

		// The choice persists, and outranks Config.Disabled at the next boot.
		require.NoError(t, m.Shutdown(context.Background()))
		m2 := e.start(cfg)
		require.Equal(t, pluginhost.StateRunning, status(t, m2, "base").State)
		require.NoError(t, m2.Disable(context.Background(), "dependent"))
		m3 := e.start(e.config(lifePlugin("base", h), lifePlugin("dependent", h, "[dependencies]", `base = "^1.0"`)))
		st := status(t, m3, "dependent")
		require.Equal(t, pluginhost.StateDisabled, st.State)
		require.Equal(t, "disabled by an operator", st.Reason)
	})
}

func TestEnableFailureLeavesNothingMounted(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		h := &hooks{}
		broken := lifePlugin("broken", h)
		broken.init = func(context.Context, *pluginhost.Host) error { return errors.New("cannot reach the mail server") }
		cfg := e.config(broken)
		cfg.Disabled = []string{"broken"}
		m := e.start(cfg)

		err := m.Enable(context.Background(), "broken")
		require.ErrorIs(t, err, pluginhost.ErrStartFailed)
		require.ErrorContains(t, err, `plugin "broken" did not start: init: cannot reach the mail server`)
		st := status(t, m, "broken")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Empty(t, st.Routes)
		rec := serve(t, m.Handler(), "GET", "/api/plugin/broken/ping", "")
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.Equal(t, "failed", jsonBody(t, rec)["state"])
	})
}

func TestControlErrors(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		h := &hooks{}
		cfg := e.config(lifePlugin("base", h), lifePlugin("dependent", h, "[dependencies]", `base = "^1.0"`), lifePlugin("core-ish", h))
		cfg.Required = []string{"core-ish"}
		m, err := pluginhost.New(cfg)
		require.NoError(t, err)
		require.ErrorIs(t, m.Disable(context.Background(), "base"), pluginhost.ErrNotRunning, "before Start")
		require.NoError(t, m.Start(context.Background()))
		t.Cleanup(func() { _ = m.Shutdown(context.Background()) })

		require.ErrorIs(t, m.Disable(context.Background(), "ghost"), pluginhost.ErrNotFound)
		require.ErrorIs(t, m.Enable(context.Background(), "ghost"), pluginhost.ErrNotFound)
		err = m.Disable(context.Background(), "core-ish")
		require.ErrorIs(t, err, pluginhost.ErrRequired)
		require.Equal(t, pluginhost.StateRunning, status(t, m, "core-ish").State)

		require.NoError(t, m.Disable(context.Background(), "base"))
		require.NoError(t, m.Disable(context.Background(), "base"), "disabling twice is fine")
		err = m.Enable(context.Background(), "dependent")
		require.ErrorIs(t, err, pluginhost.ErrDependency)
		require.ErrorContains(t, err, `dependency "base" is disabled (disabled by an operator)`)
		require.NoError(t, m.Enable(context.Background(), "base"))
		require.NoError(t, m.Enable(context.Background(), "base"), "enabling a running plugin is fine")

		require.NoError(t, m.Shutdown(context.Background()))
		require.ErrorIs(t, m.Enable(context.Background(), "base"), pluginhost.ErrNotRunning, "after Shutdown")
	})
}

func TestReplicasFollowEnableAndDisable(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		stopped, seen := make(chan string, 10), make(chan string, 10)
		plugins := func() []pluginhost.Plugin {
			p := lifePlugin("toggled", &hooks{})
			p.shutdown = func(context.Context, *pluginhost.Host) error { stopped <- "toggled"; return nil }
			return []pluginhost.Plugin{p, observer("watcher", seen)}
		}
		ms := replicas(t, e, 3, plugins)
		require.NoError(t, ms[0].Disable(context.Background(), "toggled"))
		for range ms {
			receiveWithin(t, stopped, 5*time.Second)
		}
		for _, m := range ms {
			require.Equal(t, http.StatusServiceUnavailable, serve(t, m.Handler(), "GET", "/api/plugin/toggled/ping", "").Code)
			require.Equal(t, "disabled by an operator", status(t, m, "toggled").Reason)
		}
		for range ms {
			require.Equal(t, "disabled toggled", receiveWithin(t, seen, 5*time.Second))
		}
		require.NoError(t, ms[1].Enable(context.Background(), "toggled"))
		for range ms {
			require.Equal(t, "enabled toggled", receiveWithin(t, seen, 5*time.Second))
		}
		for _, m := range ms {
			require.Equal(t, "toggled", serve(t, m.Handler(), "GET", "/api/plugin/toggled/ping", "").Body.String())
		}
	})
}

func receiveWithin[T any](t testing.TB, ch <-chan T, d time.Duration) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("nothing received within %s", d)
		var zero T
		return zero
	}
}

func TestCircuitBreakerFailsAPanickingPlugin(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		stopped := make(chan struct{}, 1)
		flaky := lifePlugin("flaky", &hooks{})
		flaky.routes = func(r chi.Router, _ *pluginhost.Host) {
			r.Get("/boom", func(http.ResponseWriter, *http.Request) { panic("flaky handler") })
			r.Get("/ping", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) })
		}
		flaky.shutdown = func(context.Context, *pluginhost.Host) error { stopped <- struct{}{}; return nil }
		cfg := e.config(flaky, lifePlugin("steady", &hooks{}))
		cfg.PanicLimit = 3
		m := e.start(cfg)

		for range 3 {
			require.Equal(t, http.StatusInternalServerError, serve(t, m.Handler(), "GET", "/api/plugin/flaky/boom", "").Code)
		}
		receiveWithin(t, stopped, 5*time.Second)
		st := status(t, m, "flaky")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, "circuit breaker: 3 panics within 1m0s")
		require.Equal(t, 3, st.Panics)
		rec := serve(t, m.Handler(), "GET", "/api/plugin/flaky/ping", "")
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		require.Contains(t, jsonBody(t, rec)["reason"], "circuit breaker")
		require.Equal(t, "steady", serve(t, m.Handler(), "GET", "/api/plugin/steady/ping", "").Body.String())

		require.NoError(t, m.Enable(context.Background(), "flaky"))
		require.Equal(t, "ok", serve(t, m.Handler(), "GET", "/api/plugin/flaky/ping", "").Body.String())
	})
}

func TestHookTimeoutFailsOnlyThatPlugin(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		stuck := lifePlugin("stuck", &hooks{})
		stuck.init = func(ctx context.Context, _ *pluginhost.Host) error {
			<-release // ignores its context, as a buggy hook would
			return nil
		}
		cfg := e.config(stuck, lifePlugin("fine", &hooks{}))
		cfg.HookTimeout = 100 * time.Millisecond
		m := e.start(cfg)

		st := status(t, m, "stuck")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, "init did not return within Config.HookTimeout (100ms)")
		require.Equal(t, pluginhost.StateRunning, status(t, m, "fine").State)
	})
}

// The Manager announces what happens with built-in events: plugins started
// at Start, settings changed here or by another Manager, plugins disabled,
// enabled, failed.
func TestManagerEmitsBuiltInEvents(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		seen := make(chan any, 100)
		plugins := func() []pluginhost.Plugin {
			watch := &fake{manifest: manifest("watch", "1.0.0"), init: func(_ context.Context, h *pluginhost.Host) error {
				pluginhost.Subscribe(h, func(_ context.Context, e pluginhost.PluginStarted) error { seen <- e; return nil })
				pluginhost.Subscribe(h, func(_ context.Context, e pluginhost.PluginEnabled) error { seen <- e; return nil })
				pluginhost.Subscribe(h, func(_ context.Context, e pluginhost.PluginDisabled) error { seen <- e; return nil })
				pluginhost.Subscribe(h, func(_ context.Context, e pluginhost.PluginFailed) error { seen <- e; return nil })
				pluginhost.Subscribe(h, func(_ context.Context, e pluginhost.SettingChanged) error { seen <- e; return nil })
				return nil
			}}
			flaky := lifePlugin("flaky", &hooks{}, "[[settings]]", `key = "flaky.level"`, `type = "number"`, `default = 1`)
			flaky.routes = func(r chi.Router, _ *pluginhost.Host) {
				r.Get("/boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
			}
			return []pluginhost.Plugin{watch, flaky}
		}
		ms := replicas(t, e, 2, plugins)
		m := ms[0]
		// Both Managers started: each watch saw both plugins start.
		got := []any{}
		for range 4 {
			got = append(got, receiveWithin(t, seen, 5*time.Second))
		}
		require.ElementsMatch(t, []any{
			pluginhost.PluginStarted{Plugin: "flaky"}, pluginhost.PluginStarted{Plugin: "watch"},
			pluginhost.PluginStarted{Plugin: "flaky"}, pluginhost.PluginStarted{Plugin: "watch"},
		}, got)

		// A change here, and in the other Manager by reload.
		require.NoError(t, m.Settings().Set(context.Background(), "flaky.level", 2))
		want := pluginhost.SettingChanged{Key: "flaky.level", Owner: "flaky"}
		require.Equal(t, want, receiveWithin(t, seen, 5*time.Second))
		require.Equal(t, want, receiveWithin(t, seen, 5*time.Second))

		require.NoError(t, ms[1].Shutdown(context.Background()))
		require.NoError(t, m.Disable(context.Background(), "flaky"))
		require.Equal(t, pluginhost.PluginDisabled{Plugin: "flaky", Reason: "disabled by an operator"}, receiveWithin(t, seen, 5*time.Second))
		require.NoError(t, m.Enable(context.Background(), "flaky"))
		require.Equal(t, pluginhost.PluginEnabled{Plugin: "flaky"}, receiveWithin(t, seen, 5*time.Second))
		require.Equal(t, pluginhost.PluginStarted{Plugin: "flaky"}, receiveWithin(t, seen, 5*time.Second))

		for range 5 { // the default breaker: 5 panics within a minute
			serve(t, m.Handler(), "GET", "/api/plugin/flaky/boom", "")
		}
		failed := receiveWithin(t, seen, 5*time.Second).(pluginhost.PluginFailed)
		require.Equal(t, "flaky", failed.Plugin)
		require.Contains(t, failed.Reason, "circuit breaker")
	})
}
