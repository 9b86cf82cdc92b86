package pluginhost_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// startSQLite starts a Manager with plugins on a fresh SQLite database,
// with cfg changed by adjust, and shuts it down when the test ends.
// Metrics involve no database: one dialect is enough, except where the
// test goes through Disable and Enable, which persist (eachEnv).
func startSQLite(t testing.TB, adjust func(*pluginhost.Config), plugins ...pluginhost.Plugin) *pluginhost.Manager {
	t.Helper()
	cfg := pluginhost.Config{DB: testdb.OpenSQLite(t), Registry: registry(t, plugins...), Logger: discardLogger()}
	if adjust != nil {
		adjust(&cfg)
	}
	m, err := pluginhost.New(cfg)
	require.NoError(t, err)
	require.NoError(t, m.Start(context.Background()))
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	return m
}

func metricsOf(t testing.TB, m *pluginhost.Manager, id string) pluginhost.PluginMetrics {
	t.Helper()
	pm, ok := m.PluginMetrics(id)
	require.True(t, ok, "no metrics for plugin %q", id)
	return pm
}

func routeOf(t testing.TB, pm pluginhost.PluginMetrics, pattern string) pluginhost.RouteMetrics {
	t.Helper()
	for _, r := range pm.Routes {
		if r.Pattern == pattern {
			return r
		}
	}
	t.Fatalf("no route %q in %+v", pattern, pm.Routes)
	return pluginhost.RouteMetrics{}
}

func hookOf(t testing.TB, pm pluginhost.PluginMetrics, hook string) pluginhost.HookMetrics {
	t.Helper()
	for _, h := range pm.Hooks {
		if h.Hook == hook {
			return h
		}
	}
	t.Fatalf("no hook %q in %+v", hook, pm.Hooks)
	return pluginhost.HookMetrics{}
}

func sum(counts []uint64) (n uint64) {
	for _, c := range counts {
		n += c
	}
	return n
}

// Each response counts in its status class, on its route pattern (chi's,
// sub-routers included) and in the plugin's totals; requests no route
// serves count as unmatched; informational 1xx before the final status do
// not count, and a handler that writes nothing counts as 200.
func TestMetricsCountResponsesByStatusClassAndRoute(t *testing.T) {
	t.Parallel()
	p := &fake{manifest: manifest("web", "1.0.0"), routes: func(r chi.Router, _ *pluginhost.Host) {
		r.Get("/code/{code}", func(w http.ResponseWriter, r *http.Request) {
			code, _ := strconv.Atoi(chi.URLParam(r, "code"))
			w.WriteHeader(code)
		})
		r.Get("/hints", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusEarlyHints)
			w.WriteHeader(http.StatusCreated)
		})
		r.Get("/body", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("hi")) })
		r.Post("/nothing", func(http.ResponseWriter, *http.Request) {})
		r.Get("/copy", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.(io.ReaderFrom).ReadFrom(strings.NewReader("copied"))
		})
		r.Route("/sub", func(r chi.Router) {
			r.Get("/{x}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
		})
	}}
	m := startSQLite(t, nil, p)
	h := m.Handler()
	for _, code := range []int{200, 204, 301, 304, 400, 404, 418, 500, 503, 503} {
		require.Equal(t, code, serve(t, h, "GET", "/api/plugin/web/code/"+strconv.Itoa(code), "").Code)
	}
	serve(t, h, "GET", "/api/plugin/web/hints", "") // the recorder keeps the 103 as its Code
	require.Equal(t, http.StatusOK, serve(t, h, "GET", "/api/plugin/web/body", "").Code)
	require.Equal(t, http.StatusOK, serve(t, h, "POST", "/api/plugin/web/nothing", "").Code)
	require.Equal(t, "copied", serve(t, h, "GET", "/api/plugin/web/copy", "").Body.String())
	require.Equal(t, http.StatusAccepted, serve(t, h, "GET", "/api/plugin/web/sub/1", "").Code)
	require.Equal(t, http.StatusAccepted, serve(t, h, "GET", "/api/plugin/web/sub/2", "").Code)
	require.Equal(t, http.StatusNotFound, serve(t, h, "GET", "/api/plugin/web/missing", "").Code)
	require.Equal(t, http.StatusMethodNotAllowed, serve(t, h, "DELETE", "/api/plugin/web/body", "").Code)

	pm := metricsOf(t, m, "web")
	require.Equal(t, "web", pm.Plugin)
	code := routeOf(t, pm, "/code/{code}")
	require.Equal(t, []string{"GET"}, code.Methods)
	require.True(t, code.Mounted)
	require.Equal(t, uint64(10), code.Requests)
	require.Equal(t, pluginhost.StatusClasses{Success: 2, Redirection: 2, ClientError: 3, ServerError: 3}, code.Responses)
	require.Equal(t, pluginhost.StatusClasses{Success: 1}, routeOf(t, pm, "/hints").Responses)
	require.Equal(t, pluginhost.StatusClasses{Success: 1}, routeOf(t, pm, "/body").Responses)
	nothing := routeOf(t, pm, "/nothing")
	require.Equal(t, []string{"POST"}, nothing.Methods)
	require.Equal(t, pluginhost.StatusClasses{Success: 1}, nothing.Responses)
	sub := routeOf(t, pm, "/sub/{x}")
	require.Equal(t, uint64(2), sub.Requests)
	require.Equal(t, pluginhost.StatusClasses{Success: 2}, sub.Responses)
	require.Equal(t, pluginhost.StatusClasses{Success: 1}, routeOf(t, pm, "/copy").Responses)
	require.Equal(t, pluginhost.StatusClasses{ClientError: 2}, pm.Unmatched.Responses)

	require.Equal(t, uint64(18), pm.Requests)
	require.Equal(t, pluginhost.StatusClasses{Success: 8, Redirection: 2, ClientError: 5, ServerError: 3}, pm.Responses)
	require.Equal(t, uint64(18), pm.Latency.Count)
	require.Equal(t, uint64(18), sum(pm.Latency.Counts))
	require.Equal(t, pluginhost.LatencyBuckets(), pm.Latency.Bounds)
	require.Len(t, pm.Latency.Counts, len(pm.Latency.Bounds)+1)
	require.Zero(t, pm.InFlight)
}

// A handler that is not a chi router, mounted with Mount (a file server),
// is served at its mount point too, with and without the trailing slash:
// chi reports those requests under the patterns "/static" and "/static/",
// which chi.Walk does not list, and they count on the mounted route, not as
// unmatched. A route the plugin registers at such a pattern itself keeps
// its own counters.
func TestMetricsCountMountedHandlerAtItsMountPoint(t *testing.T) {
	t.Parallel()
	files := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	p := &fake{manifest: manifest("files", "1.0.0"), routes: func(r chi.Router, _ *pluginhost.Host) {
		r.Mount("/static", files)
		r.Route("/api", func(r chi.Router) { r.Mount("/blobs", files) })
		r.Get("/own", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusCreated) })
		r.Mount("/own/", files)
	}}
	m := startSQLite(t, nil, p)
	h := m.Handler()
	for _, path := range []string{"/static", "/static/", "/static/a.css", "/api/blobs", "/api/blobs/", "/api/blobs/1"} {
		require.Equal(t, http.StatusAccepted, serve(t, h, "GET", "/api/plugin/files"+path, "").Code, path)
	}
	require.Equal(t, http.StatusCreated, serve(t, h, "GET", "/api/plugin/files/own", "").Code)
	require.Equal(t, http.StatusAccepted, serve(t, h, "GET", "/api/plugin/files/own/x", "").Code)

	pm := metricsOf(t, m, "files")
	require.Equal(t, pluginhost.StatusClasses{}, pm.Unmatched.Responses, "nothing unmatched")
	require.Equal(t, pluginhost.StatusClasses{Success: 3}, routeOf(t, pm, "/static/*").Responses)
	require.Equal(t, pluginhost.StatusClasses{Success: 3}, routeOf(t, pm, "/api/blobs/*").Responses)
	require.Equal(t, pluginhost.StatusClasses{Success: 1}, routeOf(t, pm, "/own").Responses)
	require.Equal(t, pluginhost.StatusClasses{Success: 1}, routeOf(t, pm, "/own/*").Responses)
}

// A handler that hijacks the connection (a WebSocket upgrade) reaches the
// server's Hijacker through the metrics' ResponseWriter, and counts as 1xx.
func TestMetricsHijackedConnectionCountsAsInformational(t *testing.T) {
	t.Parallel()
	p := &fake{manifest: manifest("ws", "1.0.0"), routes: func(r chi.Router, _ *pluginhost.Host) {
		r.Get("/upgrade", func(w http.ResponseWriter, r *http.Request) {
			conn, rw, err := w.(http.Hijacker).Hijack()
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			defer conn.Close()
			_, _ = rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
			_ = rw.Flush()
		})
	}}
	m := startSQLite(t, nil, p)
	served := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.Handler().ServeHTTP(w, r)
		served <- struct{}{} // the metrics are recorded when the Handler returns
	}))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/api/plugin/ws/upgrade")
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	receiveWithin(t, served, 5*time.Second)
	require.Equal(t, pluginhost.StatusClasses{Informational: 1}, routeOf(t, metricsOf(t, m, "ws"), "/upgrade").Responses)
}

// Through the metrics' ResponseWriter a handler still flushes (the client
// reads the first chunk while the handler waits), and
// http.ResponseController reaches the server's writer through Unwrap.
func TestMetricsWriterKeepsFlushAndResponseController(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	controllerErr := make(chan error, 2)
	p := &fake{manifest: manifest("stream", "1.0.0"), routes: func(r chi.Router, _ *pluginhost.Host) {
		r.Get("/flusher", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("first\n"))
			w.(http.Flusher).Flush()
			<-release
			_, _ = w.Write([]byte("second\n"))
		})
		r.Get("/controller", func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			controllerErr <- rc.SetWriteDeadline(time.Now().Add(time.Minute))
			_, _ = w.Write([]byte("first\n"))
			controllerErr <- rc.Flush()
			<-release
		})
	}}
	m := startSQLite(t, nil, p)
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)

	client := &http.Client{Timeout: 10 * time.Second}
	for _, path := range []string{"/flusher", "/controller"} {
		resp, err := client.Get(srv.URL + "/api/plugin/stream" + path)
		require.NoError(t, err)
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		require.NoError(t, err, path) // the handler is still waiting: only a flush sent it
		require.Equal(t, "first\n", line)
		_ = resp.Body.Close()
	}
	require.NoError(t, <-controllerErr) // SetWriteDeadline: only the server's writer has it
	require.NoError(t, <-controllerErr)
	close(release)
}

// plainWriter is a ResponseWriter that cannot flush or hijack, as a
// host's middleware may pass to the Manager's Handler.
type plainWriter struct{ w http.ResponseWriter }

func (p plainWriter) Header() http.Header         { return p.w.Header() }
func (p plainWriter) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p plainWriter) WriteHeader(code int)        { p.w.WriteHeader(code) }

// On a writer that cannot flush, a flush writes nothing, so it does not
// decide the status the metrics count: the status the handler writes next
// does. http.ResponseController.Flush says the writer cannot, and so does
// Hijack, which the metrics' writer always offers.
func TestMetricsFlushThatCannotFlushLeavesTheStatus(t *testing.T) {
	t.Parallel()
	var controllerErr, hijackErr error
	p := &fake{manifest: manifest("unflushed", "1.0.0"), routes: func(r chi.Router, _ *pluginhost.Host) {
		r.Get("/hijack", func(w http.ResponseWriter, r *http.Request) {
			_, _, hijackErr = w.(http.Hijacker).Hijack()
			w.WriteHeader(http.StatusBadGateway)
		})
		r.Get("/controller", func(w http.ResponseWriter, r *http.Request) {
			controllerErr = http.NewResponseController(w).Flush()
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		r.Get("/flusher", func(w http.ResponseWriter, r *http.Request) {
			w.(http.Flusher).Flush()
			w.WriteHeader(http.StatusTeapot)
		})
	}}
	m := startSQLite(t, nil, p)
	for path, want := range map[string]int{
		"/controller": http.StatusServiceUnavailable, "/flusher": http.StatusTeapot, "/hijack": http.StatusBadGateway,
	} {
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(plainWriter{rec}, httptest.NewRequest("GET", "/api/plugin/unflushed"+path, nil))
		require.Equal(t, want, rec.Code, path)
	}
	require.ErrorIs(t, controllerErr, http.ErrNotSupported)
	require.ErrorIs(t, hijackErr, http.ErrNotSupported)
	pm := metricsOf(t, m, "unflushed")
	require.Equal(t, pluginhost.StatusClasses{ServerError: 1}, routeOf(t, pm, "/hijack").Responses)
	require.Equal(t, pluginhost.StatusClasses{ServerError: 1}, routeOf(t, pm, "/controller").Responses)
	require.Equal(t, pluginhost.StatusClasses{ClientError: 1}, routeOf(t, pm, "/flusher").Responses)
}

// A panic in a handler counts as a panic and a 5xx of its route; the trip
// of the breaker it causes counts once; the counters survive the Enable
// that follows.
func TestMetricsCountPanicsAndBreakerTrips(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		stopped := make(chan struct{}, 1)
		cfg := e.config(panicking("flaky", stopped))
		cfg.PanicLimit = 2
		m := e.start(cfg)
		for range 2 {
			require.Equal(t, http.StatusInternalServerError, serve(t, m.Handler(), "GET", "/api/plugin/flaky/boom", "").Code)
		}
		pm := metricsOf(t, m, "flaky")
		require.Equal(t, uint64(2), pm.Panics)
		require.Equal(t, uint64(1), pm.BreakerTrips)
		require.Equal(t, pluginhost.StatusClasses{ServerError: 2}, routeOf(t, pm, "/boom").Responses)
		receiveWithin(t, stopped, 5*time.Second)

		require.NoError(t, m.Enable(context.Background(), "flaky"))
		require.Equal(t, http.StatusInternalServerError, serve(t, m.Handler(), "GET", "/api/plugin/flaky/boom", "").Code)
		pm = metricsOf(t, m, "flaky")
		require.Equal(t, uint64(3), pm.Panics)
		require.Equal(t, uint64(1), pm.BreakerTrips)
		require.Equal(t, pluginhost.StatusClasses{ServerError: 3}, routeOf(t, pm, "/boom").Responses)
	})
}

// The buckets are Prometheus's defaults, in seconds, and a duration falls
// in the first bucket whose bound it does not exceed.
func TestMetricsBucketing(t *testing.T) {
	t.Parallel()
	require.Equal(t, []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}, pluginhost.LatencyBuckets())
	for d, want := range map[time.Duration]int{
		0:                        0,
		time.Microsecond:         0,
		time.Millisecond:         0,
		time.Millisecond + 1:     1,
		2500 * time.Microsecond:  1,
		3 * time.Millisecond:     2,
		10 * time.Millisecond:    3,
		20 * time.Millisecond:    4,
		99 * time.Millisecond:    6,
		time.Second:              9,
		time.Second + 1:          10,
		10 * time.Second:         12,
		10*time.Second + 1:       13,
		time.Hour:                13,
		time.Duration(1<<63 - 1): 13,
		-time.Millisecond:        0,
	} {
		require.Equal(t, want, pluginhost.BucketOf(d), "duration %s", d)
	}
	bucketsReturnedAreTheCallers := pluginhost.LatencyBuckets()
	bucketsReturnedAreTheCallers[0] = 42
	require.Equal(t, .001, pluginhost.LatencyBuckets()[0])
}

// A request's latency lands in its route's histogram, and the plugin's;
// it is at least the time the handler was held, and the request is in
// flight meanwhile.
func TestMetricsLatencyPerRoute(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	p := &fake{manifest: manifest("lat", "1.0.0"), routes: func(r chi.Router, _ *pluginhost.Host) {
		r.Get("/slow", func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			<-release
		})
		r.Get("/fast", func(w http.ResponseWriter, r *http.Request) {})
	}}
	m := startSQLite(t, nil, p)
	done := make(chan int)
	go func() { done <- serve(t, m.Handler(), "GET", "/api/plugin/lat/slow", "").Code }()
	<-entered
	held := time.Now()
	require.Equal(t, int64(1), metricsOf(t, m, "lat").InFlight)
	require.Equal(t, http.StatusOK, serve(t, m.Handler(), "GET", "/api/plugin/lat/fast", "").Code)
	heldFor := time.Since(held)
	close(release)
	require.Equal(t, http.StatusOK, <-done)

	pm := metricsOf(t, m, "lat")
	require.Zero(t, pm.InFlight)
	slow := routeOf(t, pm, "/slow")
	require.Equal(t, uint64(1), slow.Latency.Count)
	require.GreaterOrEqual(t, slow.Latency.Sum, heldFor.Seconds())
	// Its one observation is in a bucket at or above the one of heldFor.
	require.Zero(t, sum(slow.Latency.Counts[:pluginhost.BucketOf(heldFor)]))
	require.Equal(t, uint64(1), sum(slow.Latency.Counts[pluginhost.BucketOf(heldFor):]))
	fast := routeOf(t, pm, "/fast")
	require.Equal(t, uint64(1), fast.Latency.Count)
	require.Equal(t, uint64(2), pm.Latency.Count)
	require.InDelta(t, slow.Latency.Sum+fast.Latency.Sum, pm.Latency.Sum, 1e-9)
	for i := range pm.Latency.Counts {
		require.Equal(t, slow.Latency.Counts[i]+fast.Latency.Counts[i], pm.Latency.Counts[i], "bucket %d", i)
	}
}

// Every hook call is counted with its duration, across runs; one that
// fails counts as an error.
func TestMetricsHookDurations(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var initHeld time.Duration
		entered, release := make(chan struct{}), make(chan struct{})
		first := true
		p := lifePlugin("hooked", &hooks{})
		p.init = func(context.Context, *pluginhost.Host) error {
			if first {
				first = false
				close(entered)
				<-release
			}
			return nil
		}
		bad := &fake{manifest: manifest("bad", "1.0.0"), init: func(context.Context, *pluginhost.Host) error { return errTest }}
		m, err := pluginhost.New(e.config(p, bad))
		require.NoError(t, err)
		started := make(chan error, 1)
		go func() { started <- m.Start(context.Background()) }()
		<-entered
		held := time.Now()
		_, _ = m.PluginMetrics("hooked") // something to do while Init is held
		initHeld = time.Since(held)
		close(release)
		require.NoError(t, <-started)
		t.Cleanup(func() { _ = m.Shutdown(context.Background()) })

		require.NoError(t, m.Disable(context.Background(), "hooked"))
		require.NoError(t, m.Enable(context.Background(), "hooked"))

		pm := metricsOf(t, m, "hooked")
		for hook, calls := range map[string]uint64{"seed": 2, "init": 2, "routes": 2, "shutdown": 1} {
			hm := hookOf(t, pm, hook)
			require.Equal(t, calls, hm.Duration.Count, hook)
			require.Equal(t, calls, sum(hm.Duration.Counts), hook)
			require.Zero(t, hm.Errors, hook)
		}
		require.GreaterOrEqual(t, hookOf(t, pm, "init").Duration.Sum, initHeld.Seconds())
		badInit := hookOf(t, metricsOf(t, m, "bad"), "init")
		require.Equal(t, uint64(1), badInit.Duration.Count)
		require.Equal(t, uint64(1), badInit.Errors)
	})
}

type metricsEvent struct{ N int }

// Events count as published by the plugin whose Host published them,
// delivered to each subscriber's plugin (failed when the handler fails),
// and dropped for an asynchronous subscriber whose queue is full.
func TestMetricsEvents(t *testing.T) {
	t.Parallel()
	entered, release := make(chan int, 3), make(chan struct{})
	pub := &fake{manifest: manifest("pub", "1.0.0")}
	syncSub := &fake{manifest: manifest("syncsub", "1.0.0"), init: func(_ context.Context, h *pluginhost.Host) error {
		pluginhost.Subscribe(h, func(_ context.Context, e metricsEvent) error {
			if e.N == 2 {
				return errTest
			}
			return nil
		})
		return nil
	}}
	asyncSub := &fake{manifest: manifest("asyncsub", "1.0.0"), init: func(_ context.Context, h *pluginhost.Host) error {
		pluginhost.Subscribe(h, func(_ context.Context, e metricsEvent) error {
			entered <- e.N
			<-release
			return nil
		}, pluginhost.Async(1))
		return nil
	}}
	m := startSQLite(t, nil, pub, syncSub, asyncSub)
	h, err := m.Host("pub")
	require.NoError(t, err)

	pluginhost.Publish(context.Background(), h, metricsEvent{1})
	require.Equal(t, 1, receiveWithin(t, entered, 5*time.Second)) // the worker holds event 1
	pluginhost.Publish(context.Background(), h, metricsEvent{2})  // queued
	pluginhost.Publish(context.Background(), h, metricsEvent{3})  // dropped: the queue is full
	require.Equal(t, uint64(1), metricsOf(t, m, "asyncsub").Events.Dropped)
	pluginhost.Publish(context.Background(), m, metricsEvent{4}) // by the host: no plugin's; dropped too
	close(release)
	require.Equal(t, 2, receiveWithin(t, entered, 5*time.Second))

	require.Equal(t, pluginhost.EventMetrics{Published: 3}, metricsOf(t, m, "pub").Events)
	require.Equal(t, pluginhost.EventMetrics{Delivered: 4, Failed: 1}, metricsOf(t, m, "syncsub").Events)
	async := metricsOf(t, m, "asyncsub").Events
	require.Equal(t, uint64(2), async.Dropped)
	require.Equal(t, uint64(2), async.Delivered)
	require.Equal(t, int64(async.Dropped), status(t, m, "asyncsub").EventsDropped)
}

type greeter interface{ Greet() string }

type greeterImpl struct{}

func (greeterImpl) Greet() string { return "hi" }

// Calls through Each and Call count against the provider's plugin, errors
// and panics as errors.
func TestMetricsExtensionCalls(t *testing.T) {
	t.Parallel()
	prov := &fake{manifest: manifest("prov", "1.0.0"), init: func(_ context.Context, h *pluginhost.Host) error {
		return pluginhost.Provide[greeter](h, "metrics.greeter", "hello", greeterImpl{})
	}}
	cfg := pluginhost.Config{DB: testdb.OpenSQLite(t), Registry: registry(t, prov), Logger: discardLogger()}
	m, err := pluginhost.New(cfg)
	require.NoError(t, err)
	ep, err := pluginhost.DeclareExtensionPoint[greeter](m, "metrics.greeter")
	require.NoError(t, err)
	require.NoError(t, m.Start(context.Background()))
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })

	ctx := context.Background()
	ok := func(context.Context, greeter) error { return nil }
	require.NoError(t, ep.Call(ctx, "hello", ok))
	require.NoError(t, ep.Call(ctx, "hello", ok))
	require.ErrorIs(t, ep.Call(ctx, "hello", func(context.Context, greeter) error { return errTest }), errTest)
	var pe *pluginhost.PanicError
	require.ErrorAs(t, ep.Call(ctx, "hello", func(context.Context, greeter) error { panic("boom") }), &pe)
	require.NoError(t, ep.Each(ctx, func(context.Context, pluginhost.Provider[greeter]) error { return nil }))
	require.ErrorIs(t, ep.Call(ctx, "nobody", ok), pluginhost.ErrNotFound) // no provider: no call

	pm := metricsOf(t, m, "prov")
	require.Equal(t, pluginhost.ExtensionMetrics{Calls: 5, Errors: 2}, pm.Extensions)
	require.Equal(t, uint64(1), pm.Panics)
}

// The counters of a plugin survive its Disable and Enable; while it is
// disabled its routes are not mounted, and the 503s the Manager answers
// are not the plugin's requests.
func TestMetricsSurviveDisableAndEnable(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		m := e.start(e.config(panicking("p", make(chan struct{}, 1))))
		for range 2 {
			require.Equal(t, http.StatusOK, serve(t, m.Handler(), "GET", "/api/plugin/p/ping", "").Code)
		}
		require.NoError(t, m.Disable(context.Background(), "p"))
		require.Equal(t, http.StatusServiceUnavailable, serve(t, m.Handler(), "GET", "/api/plugin/p/ping", "").Code)
		pm := metricsOf(t, m, "p")
		require.Equal(t, uint64(2), pm.Requests)
		ping := routeOf(t, pm, "/ping")
		require.False(t, ping.Mounted)
		require.Equal(t, uint64(2), ping.Requests)
		require.Equal(t, uint64(1), hookOf(t, pm, "shutdown").Duration.Count)

		require.NoError(t, m.Enable(context.Background(), "p"))
		require.Equal(t, http.StatusOK, serve(t, m.Handler(), "GET", "/api/plugin/p/ping", "").Code)
		pm = metricsOf(t, m, "p")
		require.Equal(t, uint64(3), pm.Requests)
		ping = routeOf(t, pm, "/ping")
		require.True(t, ping.Mounted)
		require.Equal(t, pluginhost.StatusClasses{Success: 3}, ping.Responses)
		require.Equal(t, uint64(2), hookOf(t, pm, "init").Duration.Count)
	})
}

// Concurrent requests, and snapshots taken meanwhile, are all counted
// (run with -race).
func TestMetricsConcurrentRequests(t *testing.T) {
	t.Parallel()
	p := &fake{manifest: manifest("busy", "1.0.0"), routes: func(r chi.Router, _ *pluginhost.Host) {
		r.Get("/items/{id}", func(w http.ResponseWriter, r *http.Request) {
			if chi.URLParam(r, "id") == "bad" {
				w.WriteHeader(http.StatusBadRequest)
			}
		})
	}}
	m := startSQLite(t, nil, p)
	const workers, each = 8, 200
	var wg sync.WaitGroup
	codes := make([][]int, workers)
	stop := make(chan struct{})
	snapshots := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				snapshots <- n
				return
			default:
				_ = m.Metrics()
				n++
			}
		}
	}()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := "1"
				if i%4 == 0 {
					id = "bad"
				}
				codes[w] = append(codes[w], serve(t, m.Handler(), "GET", "/api/plugin/busy/items/"+id, "").Code)
			}
		}()
	}
	wg.Wait()
	close(stop)
	require.Positive(t, <-snapshots)
	bad := 0
	for _, cs := range codes {
		require.Len(t, cs, each)
		for _, c := range cs {
			if c == http.StatusBadRequest {
				bad++
			}
		}
	}
	require.Equal(t, workers*each/4, bad)
	items := routeOf(t, metricsOf(t, m, "busy"), "/items/{id}")
	require.Equal(t, uint64(workers*each), items.Requests)
	require.Equal(t, pluginhost.StatusClasses{Success: workers * each * 3 / 4, ClientError: workers * each / 4}, items.Responses)
}

// The snapshot's JSON names every field in snake case, the status classes
// as "1xx" … "5xx"; Metrics lists every registered plugin by id, failed
// ones included, and nothing before Start.
func TestMetricsJSONShapeAndListing(t *testing.T) {
	t.Parallel()
	web := &fake{manifest: manifest("web", "1.0.0"), routes: func(r chi.Router, _ *pluginhost.Host) {
		r.Get("/x", func(http.ResponseWriter, *http.Request) {})
	}}
	bad := &fake{manifest: manifest("bad", "1.0.0"), init: func(context.Context, *pluginhost.Host) error { return errTest }}
	cfg := pluginhost.Config{DB: testdb.OpenSQLite(t), Registry: registry(t, web, bad), Logger: discardLogger()}
	m, err := pluginhost.New(cfg)
	require.NoError(t, err)
	require.Empty(t, m.Metrics())
	_, ok := m.PluginMetrics("web")
	require.False(t, ok)
	require.NoError(t, m.Start(context.Background()))
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	serve(t, m.Handler(), "GET", "/api/plugin/web/x", "")

	all := m.Metrics()
	require.Len(t, all, 2)
	require.Equal(t, "bad", all[0].Plugin)
	require.Equal(t, "web", all[1].Plugin)
	_, ok = m.PluginMetrics("nope")
	require.False(t, ok)

	b, err := json.Marshal(all[1])
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(b, &got))
	require.ElementsMatch(t, []string{"plugin", "requests", "responses", "latency", "in_flight", "rejected", "panics",
		"overruns", "breaker_trips", "routes", "unmatched", "hooks", "events", "extensions"}, keys(got))
	require.ElementsMatch(t, []string{"1xx", "2xx", "3xx", "4xx", "5xx"}, keys(got["responses"].(map[string]any)))
	require.ElementsMatch(t, []string{"bounds", "counts", "count", "sum"}, keys(got["latency"].(map[string]any)))
	route := got["routes"].([]any)[0].(map[string]any)
	require.ElementsMatch(t, []string{"pattern", "methods", "mounted", "requests", "responses", "latency"}, keys(route))
	require.Equal(t, "/x", route["pattern"])
	hook := got["hooks"].([]any)[0].(map[string]any)
	require.ElementsMatch(t, []string{"hook", "errors", "duration"}, keys(hook))
	require.ElementsMatch(t, []string{"published", "delivered", "failed", "dropped"}, keys(got["events"].(map[string]any)))
	require.ElementsMatch(t, []string{"calls", "errors"}, keys(got["extensions"].(map[string]any)))
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The metrics add no allocation to a plugin request: it costs the five it
// cost before them (the request copy and its context, and chi's), fewer
// than a bare chi router's seven (BenchmarkRouteBareChi). Not parallel:
// AllocsPerRun counts every allocation in the process.
func TestMetricsAddNoAllocation(t *testing.T) {
	p := &fake{manifest: manifest("bench", "1.0.0"), routes: func(r chi.Router, _ *pluginhost.Host) { r.Get("/items/{id}", benchHandler) }}
	m := startSQLite(t, nil, p)
	req := httptest.NewRequest("GET", "/api/plugin/bench/items/42", nil)
	w := &nopWriter{h: http.Header{}}
	h := m.Handler()
	allocs := testing.AllocsPerRun(1000, func() { h.ServeHTTP(w, req) })
	sub := chi.NewRouter()
	sub.Get("/items/{id}", benchHandler)
	bare := chi.NewRouter()
	bare.Mount("/api/plugin/bench", sub)
	bareAllocs := testing.AllocsPerRun(1000, func() { bare.ServeHTTP(w, req) })
	t.Logf("allocations per request: plugin %v, bare chi %v", allocs, bareAllocs)
	require.Less(t, allocs, bareAllocs)
	if !raceEnabled { // under the race detector sync.Pool drops chi's contexts at random
		require.LessOrEqual(t, allocs, 5.0)
	}
	require.Equal(t, uint64(1001), routeOf(t, metricsOf(t, m, "bench"), "/items/{id}").Requests) // AllocsPerRun warms up once
}

// A request beyond Config.MaxInFlight counts as rejected, not as a request
// of the plugin; a hook that overruns Config.HookTimeout counts as an error
// of its hook, with the time waited; an event handler that overruns it
// counts as an overrun of its plugin and a failed delivery.
func TestMetricsCountRejectionsAndOverruns(t *testing.T) {
	t.Parallel()
	entered, release, releaseInit := make(chan struct{}), make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(releaseInit) })
	held := &fake{manifest: manifest("held", "1.0.0"), routes: func(r chi.Router, _ *pluginhost.Host) {
		r.Get("/wait", func(http.ResponseWriter, *http.Request) {
			entered <- struct{}{}
			<-release
		})
	}, init: func(_ context.Context, h *pluginhost.Host) error {
		pluginhost.Subscribe(h, func(context.Context, metricsEvent) error {
			<-releaseInit // past HookTimeout: abandoned
			return nil
		})
		return nil
	}}
	slow := &fake{manifest: manifest("slow", "1.0.0"), init: func(ctx context.Context, _ *pluginhost.Host) error {
		<-releaseInit // past HookTimeout: abandoned
		return nil
	}}
	m := startSQLite(t, func(cfg *pluginhost.Config) {
		cfg.MaxInFlight = 1
		cfg.HookTimeout = 100 * time.Millisecond
	}, held, slow)
	unblock := sync.OnceFunc(func() { close(release) })
	t.Cleanup(unblock) // before Shutdown, which waits for the request
	done := make(chan int, 1)
	go func() { done <- serve(t, m.Handler(), "GET", "/api/plugin/held/wait", "").Code }()
	<-entered
	require.Equal(t, http.StatusServiceUnavailable, serve(t, m.Handler(), "GET", "/api/plugin/held/wait", "").Code)
	pm := metricsOf(t, m, "held")
	require.Equal(t, uint64(1), pm.Rejected)
	require.Equal(t, int64(1), pm.InFlight)
	require.Zero(t, pm.Requests) // the one in flight has not finished

	pluginhost.Publish(context.Background(), m, metricsEvent{1}) // returns once the handler is abandoned
	pm = metricsOf(t, m, "held")
	require.Equal(t, uint64(1), pm.Overruns)
	require.Equal(t, pluginhost.EventMetrics{Delivered: 1, Failed: 1}, pm.Events)

	init := hookOf(t, metricsOf(t, m, "slow"), "init")
	require.Equal(t, uint64(1), init.Errors)
	require.GreaterOrEqual(t, init.Duration.Sum, (100 * time.Millisecond).Seconds())

	unblock()
	require.Equal(t, http.StatusOK, <-done)
	require.Equal(t, uint64(1), metricsOf(t, m, "held").Requests)
}
