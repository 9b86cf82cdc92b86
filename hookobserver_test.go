package pluginhost_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// observedCall is one call Config.HookObserver saw: the plugin, the hook,
// and the error its end function got.
type observedCall struct {
	plugin, hook string
	err          error
	ended        bool
}

// hookRecorder is a Config.HookObserver that records its calls and puts a
// value in the hook's context.
type hookRecorder struct {
	mu    sync.Mutex
	calls []*observedCall
}

type observedKey struct{}

func (r *hookRecorder) observe(ctx context.Context, plugin, hook string) (context.Context, func(error)) {
	c := &observedCall{plugin: plugin, hook: hook}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	return context.WithValue(ctx, observedKey{}, plugin+"/"+hook), func(err error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		c.err, c.ended = err, true
	}
}

func (r *hookRecorder) of(plugin string) []observedCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []observedCall
	for _, c := range r.calls {
		if c.plugin == plugin {
			out = append(out, *c)
		}
	}
	return out
}

// Config.HookObserver is called around every hook call with the plugin and
// the hook's name, hands the hook its context, and gets the call's error:
// nil, the hook's error, or the *PanicError of a hook that panicked. Its
// calls agree with the hook counts of PluginMetrics.
func TestHookObserverSeesEveryHookCall(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &hookRecorder{}
		var mu sync.Mutex
		var seenCtx []string
		good := lifePlugin("good", &hooks{})
		good.init = func(ctx context.Context, _ *pluginhost.Host) error {
			v, _ := ctx.Value(observedKey{}).(string)
			mu.Lock()
			seenCtx = append(seenCtx, v)
			mu.Unlock()
			return nil
		}
		bad := &fake{manifest: manifest("bad", "1.0.0"), init: func(context.Context, *pluginhost.Host) error { return errTest }}
		panicky := &fake{manifest: manifest("panicky", "1.0.0"), seed: func(context.Context, *pluginhost.Host) error { panic("boom") }}
		cfg := e.config(good, bad, panicky)
		cfg.HookObserver = rec.observe
		m := e.start(cfg)

		require.NoError(t, m.Disable(context.Background(), "good"))
		require.NoError(t, m.Enable(context.Background(), "good"))

		var hooksSeen []string
		for _, c := range rec.of("good") {
			require.True(t, c.ended, "%s: end not called", c.hook)
			require.NoError(t, c.err, c.hook)
			hooksSeen = append(hooksSeen, c.hook)
		}
		for _, want := range []string{"seed", "init", "routes", "shutdown"} {
			require.Contains(t, hooksSeen, want)
		}
		// The observer's calls are the calls the metrics count.
		pm, ok := m.PluginMetrics("good")
		require.True(t, ok)
		for _, hm := range pm.Hooks {
			n := uint64(0)
			for _, h := range hooksSeen {
				if h == hm.Hook {
					n++
				}
			}
			require.Equal(t, hm.Duration.Count, n, hm.Hook)
		}
		mu.Lock()
		require.Equal(t, []string{"good/init", "good/init"}, seenCtx, "Init gets the observer's context")
		mu.Unlock()

		badCalls := rec.of("bad")
		i := slices.IndexFunc(badCalls, func(c observedCall) bool { return c.hook == "init" })
		require.GreaterOrEqual(t, i, 0, "%+v", badCalls)
		require.ErrorIs(t, badCalls[i].err, errTest)

		panicCalls := rec.of("panicky")
		i = slices.IndexFunc(panicCalls, func(c observedCall) bool { return c.hook == "seed" })
		require.GreaterOrEqual(t, i, 0, "%+v", panicCalls)
		var pe *pluginhost.PanicError
		require.True(t, errors.As(panicCalls[i].err, &pe), "%v", panicCalls[i].err)
		require.Equal(t, "panicky", pe.Plugin)
	})
}

// An observer may return a nil end function.
func TestHookObserverNilEnd(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var mu sync.Mutex
		n := 0
		cfg := e.config(lifePlugin("p", &hooks{}))
		cfg.HookObserver = func(ctx context.Context, _, _ string) (context.Context, func(error)) {
			mu.Lock()
			n++
			mu.Unlock()
			return ctx, nil
		}
		m := e.start(cfg)
		require.Equal(t, pluginhost.StateRunning, status(t, m, "p").State)
		mu.Lock()
		require.GreaterOrEqual(t, n, 3) // seed, init, routes
		mu.Unlock()
	})
}
