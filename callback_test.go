package pluginhost_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// A synchronous SettingChanged subscriber may set a setting itself: no
// plugin code runs while Set holds its lock.
func TestSettingChangedSubscriberMaySet(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		nested := make(chan error, 1)
		p := listener("p", func(h *pluginhost.Host) {
			pluginhost.Subscribe(h, func(ctx context.Context, c pluginhost.SettingChanged) error {
				if c.Key == "p.a" {
					nested <- h.Settings().Set(ctx, "p.b", "from the subscriber")
				}
				return nil
			})
		}, "[[settings]]", `key = "p.a"`, `type = "string"`, "[[settings]]", `key = "p.b"`, `type = "string"`)
		m := e.start(e.config(p))
		set := make(chan error, 1)
		go func() { set <- m.Settings().Set(context.Background(), "p.a", "from the test") }()
		require.NoError(t, receiveWithin(t, set, 5*time.Second))
		require.NoError(t, receiveWithin(t, nested, 5*time.Second))
		got, err := m.Settings().String("p.b")
		require.NoError(t, err)
		require.Equal(t, "from the subscriber", got)
	})
}

// A synchronous event handler that ignores its context is abandoned after
// Config.HookTimeout: Publish returns, the next subscriber still gets the
// event, and the overrun counts against the slow plugin.
func TestSyncHandlerOverrunIsBounded(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		slow := listener("slow", func(h *pluginhost.Host) {
			pluginhost.Subscribe(h, func(context.Context, evA) error { <-release; return nil })
		})
		got := make(chan evA, 1)
		next := listener("zz-next", func(h *pluginhost.Host) {
			pluginhost.Subscribe(h, func(_ context.Context, ev evA) error { got <- ev; return nil })
		})
		cfg := e.config(slow, next)
		cfg.HookTimeout = 200 * time.Millisecond
		m := e.start(cfg)

		published := make(chan struct{})
		go func() { pluginhost.Publish(context.Background(), m, evA{N: 1}); close(published) }()
		receiveWithin(t, published, 5*time.Second)
		require.Equal(t, evA{N: 1}, receiveWithin(t, got, 5*time.Second))
		require.Equal(t, 1, status(t, m, "slow").Overruns)
		require.Contains(t, e.logs.String(), "did not return within Config.HookTimeout")
	})
}

// A provider that ignores its context holds Each only until the context is
// done, and one that overruns Config.HookTimeout is abandoned, its plugin
// charged, and the next provider called.
func TestEachIsBounded(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		release := make(chan struct{})
		t.Cleanup(func() { close(release) })
		cfg := e.config(providing("a", []string{"stuck"}), providing("b", []string{"fine"}))
		cfg.HookTimeout = 200 * time.Millisecond
		m, ep := startDeclared(t, cfg)
		call := func(ctx context.Context) ([]string, error) {
			var called []string // written by Each's steps, one at a time
			err := ep.Each(ctx, func(_ context.Context, p pluginhost.Provider[cloud]) error {
				if p.Name == "stuck" {
					<-release
				}
				called = append(called, p.Name)
				return nil
			})
			return called, err
		}

		done := make(chan error, 1)
		var called []string
		go func() {
			var err error
			called, err = call(context.Background())
			done <- err
		}()
		err := receiveWithin(t, done, 5*time.Second)
		require.ErrorContains(t, err, `extension deploy.cloud/stuck: did not return within Config.HookTimeout (200ms)`)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, []string{"fine"}, called)
		require.Equal(t, 1, status(t, m, "a").Overruns)

		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		go func() {
			_, err := call(ctx)
			done <- err
		}()
		require.ErrorIs(t, receiveWithin(t, done, 5*time.Second), context.DeadlineExceeded)
	})
}

// runtime.Goexit in a synchronous handler ends neither the publisher's
// goroutine (here: an HTTP request) nor the test: it is contained like a
// panic, and counted.
func TestGoexitInSyncHandlerIsContained(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		exits := listener("exits", func(h *pluginhost.Host) {
			pluginhost.Subscribe(h, func(context.Context, evA) error { runtime.Goexit(); return nil })
		})
		var host *pluginhost.Host
		pub := &fake{manifest: manifest("pub", "1.0.0"),
			init: func(_ context.Context, h *pluginhost.Host) error { host = h; return nil },
			routes: func(r chi.Router, _ *pluginhost.Host) {
				r.Get("/go", func(w http.ResponseWriter, r *http.Request) {
					pluginhost.Publish(r.Context(), host, evA{N: 1})
					_, _ = w.Write([]byte("published"))
				})
			}}
		m := e.start(e.config(exits, pub))
		srv := httptest.NewServer(m.Handler())
		defer srv.Close()
		resp, err := srv.Client().Get(srv.URL + "/api/plugin/pub/go")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, "published", string(body))
		require.Equal(t, 1, status(t, m, "exits").Overruns)
	})
}

// runtime.Goexit in a hook fails the plugin at once, saying so, instead of
// after Config.HookTimeout.
func TestGoexitInHookIsContained(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := &fake{manifest: manifest("exits", "1.0.0"), init: func(context.Context, *pluginhost.Host) error {
			runtime.Goexit()
			return nil
		}}
		m := e.start(e.config(p, &fake{manifest: manifest("fine", "1.0.0")}))
		st := status(t, m, "exits")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, "init called runtime.Goexit")
		require.Equal(t, pluginhost.StateRunning, status(t, m, "fine").State)
	})
}

// A synchronous handler of a built-in event may call Enable or Disable:
// with the context it was given it gets ErrReentrant at once; with a
// context of its own its call runs once the operation that announced the
// event is done (the operation stops waiting for the handler after
// Config.HookTimeout). Neither hangs.
func TestBuiltInEventHandlerCallingEnable(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var m *pluginhost.Manager
		withOwn := make(chan error, 1)
		withGiven := make(chan error, 1)
		watch := listener("watch", func(h *pluginhost.Host) {
			pluginhost.Subscribe(h, func(ctx context.Context, ev pluginhost.PluginDisabled) error {
				switch ev.Plugin {
				case "x":
					withGiven <- m.Enable(ctx, "x")
				case "y":
					withOwn <- m.Enable(context.Background(), "y")
				}
				return nil
			})
		})
		cfg := e.config(watch, lifePlugin("x", &hooks{}), lifePlugin("y", &hooks{}))
		cfg.HookTimeout = 300 * time.Millisecond
		m = e.start(cfg)

		disabled := make(chan error, 2)
		go func() { disabled <- m.Disable(context.Background(), "x") }()
		require.NoError(t, receiveWithin(t, disabled, 5*time.Second))
		require.ErrorIs(t, receiveWithin(t, withGiven, 5*time.Second), pluginhost.ErrReentrant)
		require.Equal(t, pluginhost.StateDisabled, status(t, m, "x").State)

		go func() { disabled <- m.Disable(context.Background(), "y") }()
		require.NoError(t, receiveWithin(t, disabled, 5*time.Second))
		require.NoError(t, receiveWithin(t, withOwn, 5*time.Second))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "y").State)
	})
}

// Shutdown lets asynchronous subscribers receive what was queued for them
// before it began, within Config.HookTimeout, before the plugins stop.
func TestShutdownDeliversQueuedEvents(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		entered, release := make(chan struct{}), make(chan struct{})
		got := make(chan int, 8)
		p := listener("p", func(h *pluginhost.Host) {
			pluginhost.Subscribe(h, func(_ context.Context, ev evB) error {
				if ev.N == 1 {
					close(entered)
					<-release
				}
				got <- ev.N
				return nil
			}, pluginhost.Async(4))
		})
		m, err := pluginhost.New(e.config(p))
		require.NoError(t, err)
		require.NoError(t, m.Start(context.Background()))
		for n := 1; n <= 3; n++ {
			pluginhost.Publish(context.Background(), m, evB{N: n})
		}
		<-entered // events 2 and 3 wait in the queue
		shut := make(chan error, 1)
		go func() { shut <- m.Shutdown(context.Background()) }()
		close(release)
		require.NoError(t, receiveWithin(t, shut, 5*time.Second))
		close(got)
		var all []int
		for n := range got {
			all = append(all, n)
		}
		require.Equal(t, []int{1, 2, 3}, all)
	})
}

// A Seed left running past Config.HookTimeout fails its plugin; its
// context is canceled then, so the write it makes afterwards through that
// context fails and leaves no row.
func TestOverrunSeedWritesNothingThroughItsContext(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		release := make(chan struct{})
		wrote := make(chan error, 1)
		p := &fake{
			manifest: manifest("late", "1.0.0"),
			tables:   []pluginhost.Table{{Name: "items", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "name"}}}},
			seed: func(ctx context.Context, h *pluginhost.Host) error {
				<-release // ignores its deadline, as a buggy hook would
				_, err := h.DB().ExecContext(ctx, `INSERT INTO `+h.DB().Table("items")+` (id, name) VALUES (1, 'late')`)
				wrote <- err
				return err
			},
		}
		cfg := e.config(p)
		cfg.HookTimeout = 100 * time.Millisecond
		m := e.start(cfg)
		require.Equal(t, pluginhost.StateFailed, status(t, m, "late").State)
		close(release)
		require.ErrorIs(t, receiveWithin(t, wrote, 5*time.Second), context.DeadlineExceeded)
		var n int
		require.NoError(t, e.db.QueryRow(`SELECT count(*) FROM late__items`).Scan(&n))
		require.Zero(t, n)
	})
}
