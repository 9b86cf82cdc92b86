package pluginhost_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// Event types of the tests: same shape, different types.
type (
	evA struct{ N int }
	evB struct{ N int }
)

// listener returns a plugin whose Init calls sub with its Host.
func listener(id string, sub func(h *pluginhost.Host), extra ...string) *fake {
	return &fake{
		manifest: manifest(id, "1.0.0", extra...),
		init: func(_ context.Context, h *pluginhost.Host) error {
			sub(h)
			return nil
		},
	}
}

// recordAs subscribes h to E, recording "<name>:<N>" for each event.
func recordAs[E evA | evB | *evA](h *pluginhost.Host, rec *recorder, name string, opts ...pluginhost.SubscribeOption) {
	pluginhost.Subscribe(h, func(_ context.Context, e E) error {
		var n int
		switch e := any(e).(type) {
		case evA:
			n = e.N
		case evB:
			n = e.N
		case *evA:
			n = e.N
		}
		rec.add(fmt.Sprintf("%s:%d", name, n))
		return nil
	}, opts...)
}

// receive receives from ch, failing the test if nothing arrives in a
// generous bound (a guard against a hang, not a wait for something).
func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("nothing arrived on %T", ch)
		panic("unreachable")
	}
}

func TestEventsSubscribeInInit(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		var pub *pluginhost.Host
		m := e.start(e.config(
			listener("sub", func(h *pluginhost.Host) { recordAs[evA](h, rec, h.ID()) }),
			listener("pub", func(h *pluginhost.Host) { pub = h }),
		))
		pluginhost.Publish(context.Background(), m, evA{N: 1})   // the host
		pluginhost.Publish(context.Background(), pub, evA{N: 2}) // a plugin
		require.Equal(t, []string{"sub:1", "sub:2"}, rec.list(""))
	})
}

func TestEventsTypeSeparation(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		m := e.start(e.config(
			listener("a", func(h *pluginhost.Host) { recordAs[evA](h, rec, "a") }),
			listener("b", func(h *pluginhost.Host) { recordAs[evB](h, rec, "b") }),
			listener("p", func(h *pluginhost.Host) { recordAs[*evA](h, rec, "p") }),
		))
		ctx := context.Background()
		pluginhost.Publish(ctx, m, evA{N: 1})
		pluginhost.Publish(ctx, m, evB{N: 2})
		pluginhost.Publish(ctx, m, &evA{N: 3})
		pluginhost.Publish[any](ctx, m, evA{N: 4}) // an any is not an evA
		require.Equal(t, []string{"a:1", "b:2", "p:3"}, rec.list(""))
	})
}

// TestEventsPluginOrder: delivery follows the dependency order, not the
// order of registration, of subscription or of ids; one plugin's
// subscriptions keep the order they were made in.
func TestEventsPluginOrder(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		var base *pluginhost.Host
		m := e.start(e.config(
			listener("a-top", func(h *pluginhost.Host) { recordAs[evA](h, rec, "a-top") }, deps("b-mid")),
			listener("b-mid", func(h *pluginhost.Host) { recordAs[evA](h, rec, "b-mid") }, deps("c-base")),
			listener("c-base", func(h *pluginhost.Host) {
				base = h
				recordAs[evA](h, rec, "c-base#1")
			}),
		))
		for _, st := range m.Status() {
			require.Equal(t, pluginhost.StateRunning, st.State, st.ID+": "+st.Reason)
		}
		recordAs[evA](base, rec, "c-base#2") // later, while running
		pluginhost.Publish(context.Background(), m, evA{N: 1})
		pluginhost.Publish(context.Background(), base, evA{N: 2})
		require.Equal(t, []string{
			"c-base#1:1", "c-base#2:1", "b-mid:1", "a-top:1",
			"c-base#1:2", "c-base#2:2", "b-mid:2", "a-top:2",
		}, rec.list(""))
	})
}

// TestEventsOnlyRunningPluginsReceive: a plugin that failed at boot after
// subscribing, its dependent, and a plugin whose subscriptions were dropped
// receive nothing; a subscription made while not running is ignored.
func TestEventsOnlyRunningPluginsReceive(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		var brokenHost *pluginhost.Host
		broken := &fake{manifest: manifest("broken", "1.0.0"), init: func(_ context.Context, h *pluginhost.Host) error {
			brokenHost = h
			recordAs[evA](h, rec, "broken")
			return errTest // after subscribing
		}}
		m := e.start(e.config(
			broken,
			listener("child", func(h *pluginhost.Host) { recordAs[evA](h, rec, "child") }, deps("broken")),
			listener("gone", func(h *pluginhost.Host) {
				recordAs[evA](h, rec, "gone")
				recordAs[evA](h, rec, "gone-async", pluginhost.Async(4))
			}),
			listener("ok", func(h *pluginhost.Host) { recordAs[evA](h, rec, "ok") }),
		))
		require.Equal(t, pluginhost.StateFailed, status(t, m, "broken").State)
		require.Equal(t, pluginhost.StateFailed, status(t, m, "child").State)
		t.Cleanup(func() { pluginhost.CloseEvents(m) })

		pluginhost.DropSubscriptions(m, "gone")
		require.Equal(t, pluginhost.StateRunning, status(t, m, "gone").State)
		pluginhost.Publish(context.Background(), m, evA{N: 1})
		require.Equal(t, []string{"ok:1"}, rec.list(""))

		recordAs[evA](brokenHost, rec, "broken-late")
		pluginhost.Publish(context.Background(), m, evA{N: 2})
		require.Equal(t, []string{"ok:1", "ok:2"}, rec.list(""))
		require.Contains(t, e.logs.String(), `msg="event subscription ignored: the plugin is not starting or running" plugin=broken`)
	})
}

// TestEventsHandlerFailures: an error or a panic in a handler, synchronous
// or not, reaches neither the publisher nor the other subscribers; it is
// logged with the plugin id, a panic is counted, and each is published as
// a PluginError, except a PluginError handler's own failure.
func TestEventsHandlerFailures(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		reports := make(chan pluginhost.PluginError, 10)
		m := e.start(e.config(
			listener("failing", func(h *pluginhost.Host) {
				pluginhost.Subscribe(h, func(context.Context, evA) error { return errTest })
			}),
			listener("panicky", func(h *pluginhost.Host) {
				pluginhost.Subscribe(h, func(context.Context, evA) error { panic("kaboom") })
				pluginhost.Subscribe(h, func(context.Context, evB) error { panic("async kaboom") }, pluginhost.Async(1))
			}),
			listener("calm", func(h *pluginhost.Host) { recordAs[evA](h, rec, "calm") }),
			listener("watch", func(h *pluginhost.Host) {
				pluginhost.Subscribe(h, func(_ context.Context, pe pluginhost.PluginError) error {
					reports <- pe
					return nil
				})
			}),
			listener("grumpy", func(h *pluginhost.Host) {
				pluginhost.Subscribe(h, func(context.Context, pluginhost.PluginError) error { return errors.New("grumpy") })
				pluginhost.Subscribe(h, func(context.Context, pluginhost.PluginError) error { panic("grumpier") })
			}),
		))
		t.Cleanup(func() { pluginhost.CloseEvents(m) })

		pluginhost.Publish(context.Background(), m, evA{N: 7})
		require.Equal(t, []string{"calm:7"}, rec.list(""))
		byPlugin := map[string]pluginhost.PluginError{}
		for range 2 {
			pe := receive(t, reports)
			byPlugin[pe.Plugin] = pe
		}
		require.Empty(t, reports, "a failing PluginError handler must not produce another PluginError")

		failed := byPlugin["failing"]
		require.Equal(t, "pluginhost_test.evA", failed.Event)
		require.ErrorIs(t, failed.Err, errTest)
		require.False(t, failed.Panic)

		panicked := byPlugin["panicky"]
		require.Equal(t, "pluginhost_test.evA", panicked.Event)
		require.True(t, panicked.Panic)
		var pe *pluginhost.PanicError
		require.ErrorAs(t, panicked.Err, &pe)
		require.Equal(t, "kaboom", pe.Value)
		require.Equal(t, "panicky", pe.Plugin)

		pluginhost.Publish(context.Background(), m, evB{N: 8})
		async := receive(t, reports)
		require.Equal(t, "panicky", async.Plugin)
		require.Equal(t, "pluginhost_test.evB", async.Event)
		require.True(t, async.Panic)
		require.ErrorAs(t, async.Err, &pe)
		require.Equal(t, "async kaboom", pe.Value)

		logs := e.logs.String()
		require.Contains(t, logs, `msg="plugin panicked" plugin=panicky where="event handler pluginhost_test.evA" panic=kaboom`)
		require.Contains(t, logs, `msg="plugin panicked" plugin=panicky where="event handler pluginhost_test.evB" panic="async kaboom"`)
		require.Contains(t, logs, `msg="plugin panicked" plugin=grumpy where="event handler pluginhost.PluginError" panic=grumpier`)
		require.Contains(t, logs, `msg="event handler failed" plugin=failing event=pluginhost_test.evA err="test failure"`)
		require.Contains(t, logs, `msg="event handler failed" plugin=grumpy event=pluginhost.PluginError err=grumpy`)
		require.Equal(t, pluginhost.StateRunning, status(t, m, "panicky").State, "one panic is below the breaker's limit")
	})
}

// TestEventsAsync: an asynchronous subscription receives in order; when its
// queue is full, events are dropped, counted and logged (first and every
// 100th) and Publish does not block, even while the handler is blocked.
func TestEventsAsync(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		entered, release := make(chan struct{}), make(chan struct{})
		slowGot, fastGot := make(chan int, 10), make(chan int, 100)
		m := e.start(e.config(
			listener("slow", func(h *pluginhost.Host) {
				pluginhost.Subscribe(h, func(_ context.Context, e evA) error {
					if e.N == 0 {
						entered <- struct{}{}
						<-release
					}
					slowGot <- e.N
					return nil
				}, pluginhost.Async(3))
			}),
			listener("fast", func(h *pluginhost.Host) {
				pluginhost.Subscribe(h, func(_ context.Context, e evB) error {
					fastGot <- e.N
					return nil
				}, pluginhost.Async(100))
			}),
		))
		t.Cleanup(func() { pluginhost.CloseEvents(m) })
		ctx := context.Background()

		for i := range 100 {
			pluginhost.Publish(ctx, m, evB{N: i})
		}
		for i := range 100 {
			require.Equal(t, i, receive(t, fastGot))
		}

		pluginhost.Publish(ctx, m, evA{N: 0})
		receive(t, entered) // the worker holds event 0; its queue is empty
		published := make(chan struct{})
		go func() {
			defer close(published)
			for i := 1; i <= 3+150; i++ { // 3 fit, 150 do not
				pluginhost.Publish(ctx, m, evA{N: i})
			}
		}()
		receive(t, published)
		require.EqualValues(t, 150, pluginhost.EventsDropped(m, "slow"))
		require.Zero(t, pluginhost.EventsDropped(m, "fast"))
		require.Equal(t, 2, strings.Count(e.logs.String(), `msg="event dropped: the asynchronous subscription's queue is full" plugin=slow`))
		require.Contains(t, e.logs.String(), "event=pluginhost_test.evA queue=3 dropped=100")

		close(release)
		for i := range 4 {
			require.Equal(t, i, receive(t, slowGot))
		}
		pluginhost.CloseEvents(m)
		require.Empty(t, slowGot)
	})
}

var workerTestID atomic.Int64

// eventWorkers lists the goroutines that carry the pprof label of an async
// worker of one of the plugins ids and run this package's code, one entry
// (the plugin id) per goroutine.
func eventWorkers(t *testing.T, ids ...string) []string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, pprof.Lookup("goroutine").WriteTo(&buf, 1))
	var out []string
	for _, rec := range strings.Split(buf.String(), "\n\n") {
		if !strings.Contains(rec, "github.com/pluginhost/pluginhost.") {
			continue
		}
		for _, id := range ids {
			if !strings.Contains(rec, `"pluginhost.plugin":"`+id+`"`) {
				continue
			}
			n := 0
			for line := range strings.Lines(rec) {
				if _, err := fmt.Sscanf(line, "%d @", &n); err == nil {
					break
				}
			}
			require.Positive(t, n, rec)
			for range n {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestEventsWorkersStop: dropPlugin stops a plugin's workers and close the
// others, waiting for them; a worker whose handler is stuck past
// Config.HookTimeout is left to exit when its handler returns. No worker
// remains in the end, and close refuses new subscriptions.
func TestEventsWorkersStop(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		n := workerTestID.Add(1)
		a, b := fmt.Sprintf("wk%d-a", n), fmt.Sprintf("wk%d-b", n)
		before := eventWorkers(t, a, b)
		require.Empty(t, before)

		aGot := make(chan int, 2)
		entered, release := make(chan struct{}), make(chan struct{})
		var aHost *pluginhost.Host
		cfg := e.config(
			listener(a, func(h *pluginhost.Host) {
				aHost = h
				pluginhost.Subscribe(h, func(_ context.Context, e evA) error { aGot <- e.N; return nil }, pluginhost.Async(1))
				pluginhost.Subscribe(h, func(_ context.Context, e evB) error { aGot <- e.N; return nil }, pluginhost.Async(1))
			}),
			listener(b, func(h *pluginhost.Host) {
				pluginhost.Subscribe(h, func(context.Context, evA) error {
					entered <- struct{}{}
					<-release // stuck in plugin code, ignoring its context
					return nil
				}, pluginhost.Async(1))
			}),
		)
		cfg.HookTimeout = 500 * time.Millisecond
		m := e.start(cfg)
		t.Cleanup(func() { pluginhost.CloseEvents(m) })

		// Every worker has run a handler: each is running, with its labels.
		pluginhost.Publish(context.Background(), m, evA{N: 1})
		pluginhost.Publish(context.Background(), m, evB{N: 2})
		require.ElementsMatch(t, []int{1, 2}, []int{receive(t, aGot), receive(t, aGot)})
		receive(t, entered)
		require.Equal(t, []string{a, a, b}, eventWorkers(t, a, b))

		pluginhost.DropSubscriptions(m, a)
		require.Equal(t, []string{b}, eventWorkers(t, a, b))

		pluginhost.CloseEvents(m) // returns after HookTimeout: b is stuck
		require.Equal(t, []string{b}, eventWorkers(t, a, b))
		require.Contains(t, e.logs.String(), `msg="event handler still running after Config.HookTimeout; its worker stops when it returns" plugin=`+b)

		close(release)
		pluginhost.WaitEventWorkers(m)
		require.Equal(t, before, eventWorkers(t, a, b))

		pluginhost.Subscribe(aHost, func(context.Context, evA) error { return nil }, pluginhost.Async(1))
		require.Contains(t, e.logs.String(), `msg="event subscription ignored: the manager is shut down" plugin=`+a)
		pluginhost.WaitEventWorkers(m)
		require.Equal(t, before, eventWorkers(t, a, b))
	})
}

type ctxKey struct{}

// TestEventsContext: synchronous handlers get the publisher's context;
// asynchronous ones its values, but a cancellation of their own, which
// comes when the subscription is dropped.
func TestEventsContext(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		syncSeen := make(chan any, 1)
		type asyncReport struct {
			value any
			err   error
		}
		asyncSeen, asyncDone := make(chan asyncReport, 1), make(chan error, 1)
		proceed := make(chan struct{})
		m := e.start(e.config(
			listener("sync", func(h *pluginhost.Host) {
				pluginhost.Subscribe(h, func(ctx context.Context, _ evA) error {
					syncSeen <- ctx.Value(ctxKey{})
					return nil
				})
			}),
			listener("async", func(h *pluginhost.Host) {
				pluginhost.Subscribe(h, func(ctx context.Context, _ evA) error {
					<-proceed
					asyncSeen <- asyncReport{ctx.Value(ctxKey{}), ctx.Err()}
					<-ctx.Done()
					asyncDone <- ctx.Err()
					return nil
				}, pluginhost.Async(1))
			}),
		))
		t.Cleanup(func() { pluginhost.CloseEvents(m) })

		ctx, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "request-42"))
		pluginhost.Publish(ctx, m, evA{N: 1})
		require.Equal(t, "request-42", <-syncSeen) // synchronous: already there
		cancel()
		close(proceed)
		require.Equal(t, asyncReport{value: "request-42"}, receive(t, asyncSeen))
		pluginhost.DropSubscriptions(m, "async") // waits for the worker
		require.ErrorIs(t, <-asyncDone, context.Canceled)
	})
}

// TestEventsEmit: the built-in events the Manager emits reach subscribers
// as if the host published them.
func TestEventsEmit(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var got []any
		var mu sync.Mutex
		record := func(v any) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, v)
		}
		m := e.start(e.config(listener("watch", func(h *pluginhost.Host) {
			pluginhost.Subscribe(h, func(_ context.Context, e pluginhost.PluginStarted) error { record(e); return nil })
			pluginhost.Subscribe(h, func(_ context.Context, e pluginhost.PluginEnabled) error { record(e); return nil })
			pluginhost.Subscribe(h, func(_ context.Context, e pluginhost.PluginDisabled) error { record(e); return nil })
			pluginhost.Subscribe(h, func(_ context.Context, e pluginhost.PluginFailed) error { record(e); return nil })
			pluginhost.Subscribe(h, func(_ context.Context, e pluginhost.SettingChanged) error { record(e); return nil })
			pluginhost.Subscribe(h, func(_ context.Context, e pluginhost.PluginError) error { record(e); return nil })
		})))
		mu.Lock()
		got = nil // the Manager's own events at Start are not this test's
		mu.Unlock()
		events := []any{
			pluginhost.PluginStarted{Plugin: "x"},
			pluginhost.PluginEnabled{Plugin: "x"},
			pluginhost.PluginDisabled{Plugin: "x", Reason: "operator"},
			pluginhost.PluginFailed{Plugin: "x", Reason: "circuit breaker"},
			pluginhost.SettingChanged{Key: "app.name", Owner: "core"},
			pluginhost.PluginError{Plugin: "x", Event: "y", Err: errTest},
		}
		for _, ev := range events {
			pluginhost.EmitEvent(context.Background(), m, ev)
		}
		pluginhost.EmitEvent(context.Background(), m, evA{N: 1})
		mu.Lock()
		defer mu.Unlock()
		require.Equal(t, events, got)
		require.Contains(t, e.logs.String(), `msg="pluginhost: emit of an event that is not a built-in one" type=pluginhost_test.evA`)
	})
}

// TestEventsMisuse: a nil handler fails the plugin that subscribes in Init;
// a queue smaller than 1 is refused.
func TestEventsMisuse(t *testing.T) {
	t.Parallel()
	require.PanicsWithValue(t, "pluginhost: Async queue size 0; it must be at least 1", func() { pluginhost.Async(0) })
	eachEnv(t, func(t *testing.T, e *env) {
		m := e.start(e.config(listener("nil", func(h *pluginhost.Host) {
			pluginhost.Subscribe[evA](h, nil)
		})))
		st := status(t, m, "nil")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, "Subscribe with a nil Host or handler")
	})
}

// TestEventsConcurrent runs publishers, subscribers and a drop at once, for
// the race detector.
func TestEventsConcurrent(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var syncCalls, asyncCalls atomic.Int64
		hosts := make([]*pluginhost.Host, 4)
		var plugins []pluginhost.Plugin
		for i := range hosts {
			plugins = append(plugins, listener(fmt.Sprintf("p%d", i), func(h *pluginhost.Host) {
				hosts[i] = h
				pluginhost.Subscribe(h, func(context.Context, evA) error { syncCalls.Add(1); return nil })
				pluginhost.Subscribe(h, func(context.Context, evB) error { asyncCalls.Add(1); return nil }, pluginhost.Async(8))
			}))
		}
		m := e.start(e.config(plugins...))
		t.Cleanup(func() { pluginhost.CloseEvents(m) })

		begin := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				<-begin
				var from pluginhost.Publisher = m
				if g%2 == 1 {
					from = hosts[g%len(hosts)]
				}
				for i := range 200 {
					pluginhost.Publish(context.Background(), from, evA{N: i})
					pluginhost.Publish(context.Background(), from, evB{N: i})
				}
			})
		}
		for g := range 2 {
			wg.Go(func() {
				<-begin
				for range 50 {
					pluginhost.Subscribe(hosts[g], func(context.Context, evA) error { syncCalls.Add(1); return nil })
					pluginhost.Subscribe(hosts[g], func(context.Context, evB) error { return nil }, pluginhost.Async(2))
				}
			})
		}
		wg.Go(func() {
			<-begin
			pluginhost.DropSubscriptions(m, "p3")
			_ = pluginhost.EventsDropped(m, "p0")
		})
		close(begin)
		wg.Wait()
		pluginhost.CloseEvents(m)
		require.GreaterOrEqual(t, syncCalls.Load(), int64(8*200*3), "p0..p2 received every evA")
		require.Positive(t, asyncCalls.Load())
		pluginhost.WaitEventWorkers(m)
	})
}

// TestEventsAcrossDisableAndEnable: a plugin's subscriptions end when it is
// disabled and are made afresh by its Init when it is enabled again; those
// of an earlier run (one that failed after subscribing, or a Host it left
// behind) are never delivered to again.
func TestEventsAcrossDisableAndEnable(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		id := fmt.Sprintf("flaky%d", workerTestID.Add(1))
		rec := &recorder{}
		var mu sync.Mutex
		var hosts []*pluginhost.Host
		var failOnce atomic.Bool
		failOnce.Store(true)
		asyncGot := make(chan int, 1)
		flaky := &fake{manifest: manifest(id, "1.0.0"), init: func(_ context.Context, h *pluginhost.Host) error {
			mu.Lock()
			hosts = append(hosts, h)
			mu.Unlock()
			recordAs[evA](h, rec, "flaky")
			pluginhost.Subscribe(h, func(_ context.Context, e evB) error { asyncGot <- e.N; return nil }, pluginhost.Async(1))
			if failOnce.Swap(false) {
				return errTest // at boot, after subscribing
			}
			return nil
		}}
		watch := listener("watch", func(h *pluginhost.Host) {
			pluginhost.Subscribe(h, func(_ context.Context, e pluginhost.PluginDisabled) error {
				rec.add("disabled:" + e.Plugin)
				return nil
			})
			pluginhost.Subscribe(h, func(_ context.Context, e pluginhost.PluginEnabled) error {
				rec.add("enabled:" + e.Plugin)
				return nil
			})
		})
		m := e.start(e.config(flaky, watch))
		require.Equal(t, pluginhost.StateFailed, status(t, m, id).State)
		pluginhost.Publish(ctx, m, evA{N: 1})

		require.NoError(t, m.Enable(ctx, id))
		pluginhost.Publish(ctx, m, evA{N: 2})
		require.NoError(t, m.Disable(ctx, id))
		pluginhost.Publish(ctx, m, evA{N: 3})
		require.NoError(t, m.Enable(ctx, id))
		mu.Lock()
		first := hosts[0]
		mu.Unlock()
		recordAs[evA](first, rec, "stale")
		pluginhost.Publish(ctx, m, evA{N: 4})

		require.Equal(t, []string{"enabled:" + id, "flaky:2", "disabled:" + id, "enabled:" + id, "flaky:4"}, rec.list(""))
		require.Contains(t, e.logs.String(), `msg="event subscription ignored: it was made through the Host of an earlier run of the plugin" plugin=`+id)

		pluginhost.Publish(ctx, m, evB{N: 5})
		require.Equal(t, 5, receive(t, asyncGot))
		require.Contains(t, eventWorkers(t, id), id) // the current run's worker
		pluginhost.CloseEvents(m)                    // waits for every worker, stale ones included
		require.Empty(t, eventWorkers(t, id))
	})
}
