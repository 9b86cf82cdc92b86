package pluginotel_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/pluginhost/pluginhost"
	pluginotel "github.com/pluginhost/pluginhost/otel"
	"github.com/pluginhost/pluginhost/pluginhosttest"
)

// web is a plugin with a route of each outcome: 200, 500, a panic, and
// one under a sub-router. Its handlers note the span in their context.
type web struct {
	id string

	mu    sync.Mutex
	spans []trace.SpanContext // of the requests to /items/{id}
}

func (p *web) Manifest() []byte {
	return []byte("id = \"" + p.id + "\"\nname = \"Web\"\nversion = \"1.0.0\"\n")
}

func (p *web) Init(context.Context, *pluginhost.Host) error     { return nil }
func (p *web) Shutdown(context.Context, *pluginhost.Host) error { return nil }

func (p *web) RegisterRoutes(r chi.Router, _ *pluginhost.Host) {
	r.Get("/items/{id}", func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.spans = append(p.spans, trace.SpanContextFromContext(r.Context()))
		p.mu.Unlock()
		_, _ = w.Write([]byte("ok"))
	})
	r.Get("/boom", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) })
	r.Get("/panic", func(http.ResponseWriter, *http.Request) { panic("handler panic") })
	r.Route("/sub", func(r chi.Router) {
		r.Post("/{x}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusCreated) })
	})
}

// failing is a plugin whose Init fails.
type failing struct{}

var errInit = errors.New("init failed on purpose")

func (failing) Manifest() []byte {
	return []byte("id = \"failing\"\nname = \"Failing\"\nversion = \"1.0.0\"\n")
}
func (failing) Init(context.Context, *pluginhost.Host) error { return errInit }

// traffic sends the requests every test here counts on: 3 × 200, 2 × 502,
// 1 panic (500), 1 × 404 no route served, 1 × 201 under the sub-router.
func traffic(t *testing.T, inst *pluginhosttest.Instance) {
	t.Helper()
	for _, want := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/items/1", 200}, {"GET", "/items/2", 200}, {"GET", "/items/3", 200},
		{"GET", "/boom", 502}, {"GET", "/boom", 502},
		{"GET", "/panic", 500},
		{"GET", "/nowhere", 404},
		{"POST", "/sub/y", 201},
	} {
		resp := inst.Do(t, want.method, "/api/plugin/web"+want.path, nil)
		require.Equal(t, want.status, resp.Status, "%s %s: %s", want.method, want.path, resp.Body)
	}
}

func start(t *testing.T, opts pluginhosttest.Options) (*pluginhosttest.Instance, *web) {
	p := &web{id: "web"}
	opts.AllowFailures = true
	inst := pluginhosttest.Start(t, opts, p, failing{})
	return inst, p
}

// collected finds the data points of metric name in rm.
func collected(t *testing.T, rm metricdata.ResourceMetrics, name string) metricdata.Aggregation {
	t.Helper()
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				require.Equal(t, pluginotel.ScopeName, sm.Scope.Name)
				return m.Data
			}
		}
	}
	t.Fatalf("metric %s not collected", name)
	return nil
}

func sumOf(t *testing.T, rm metricdata.ResourceMetrics, name string, attrs ...attribute.KeyValue) int64 {
	t.Helper()
	want := attribute.NewSet(attrs...)
	var dps []metricdata.DataPoint[int64]
	switch s := collected(t, rm, name).(type) {
	case metricdata.Sum[int64]:
		dps = s.DataPoints
	default:
		t.Fatalf("%s is a %T", name, s)
	}
	for _, dp := range dps {
		if dp.Attributes.Equals(&want) {
			return dp.Value
		}
	}
	t.Fatalf("%s has no point with %v", name, want.Encoded(attribute.DefaultEncoder()))
	return 0
}

func histogramOf(t *testing.T, rm metricdata.ResourceMetrics, name string, attrs ...attribute.KeyValue) metricdata.HistogramDataPoint[float64] {
	t.Helper()
	want := attribute.NewSet(attrs...)
	h, ok := collected(t, rm, name).(metricdata.Histogram[float64])
	require.True(t, ok, "%s is not a float64 histogram", name)
	require.Equal(t, metricdata.CumulativeTemporality, h.Temporality)
	for _, dp := range h.DataPoints {
		if dp.Attributes.Equals(&want) {
			return dp
		}
	}
	t.Fatalf("%s has no point with %v", name, want.Encoded(attribute.DefaultEncoder()))
	return metricdata.HistogramDataPoint[float64]{}
}

func routeOf(t *testing.T, pm pluginhost.PluginMetrics, pattern string) pluginhost.RouteMetrics {
	t.Helper()
	i := slices.IndexFunc(pm.Routes, func(r pluginhost.RouteMetrics) bool { return r.Pattern == pattern })
	require.GreaterOrEqual(t, i, 0, "no route %s in %+v", pattern, pm.Routes)
	return pm.Routes[i]
}

func hookOf(t *testing.T, pm pluginhost.PluginMetrics, hook string) pluginhost.HookMetrics {
	t.Helper()
	i := slices.IndexFunc(pm.Hooks, func(h pluginhost.HookMetrics) bool { return h.Hook == hook })
	require.GreaterOrEqual(t, i, 0, "no hook %s in %+v", hook, pm.Hooks)
	return pm.Hooks[i]
}

// The OTel metrics a ManualReader collects are the Manager's: the counters
// through RegisterMetrics, the histograms through NewProducer with the
// Manager's buckets, by plugin.id, http.route, status class and hook.
func TestMetricsMatchTheManagers(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		inst, _ := start(t, opts)
		m := inst.Manager
		reader := sdkmetric.NewManualReader(sdkmetric.WithProducer(pluginotel.NewProducer(m)))
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
		reg, err := pluginotel.RegisterMetrics(m, mp)
		require.NoError(t, err)

		traffic(t, inst)
		var rm metricdata.ResourceMetrics
		require.NoError(t, reader.Collect(context.Background(), &rm))
		pm, ok := m.PluginMetrics("web")
		require.True(t, ok)

		webID := pluginotel.AttrPluginID.String("web")
		route := func(p string) attribute.KeyValue { return pluginotel.AttrRoute.String("/api/plugin/web" + p) }
		class := pluginotel.AttrStatusClass.String

		// The counters: the figures the traffic makes, and the Manager's.
		require.Equal(t, int64(8), sumOf(t, rm, pluginotel.MetricRequests, webID))
		require.Equal(t, int64(pm.Requests), sumOf(t, rm, pluginotel.MetricRequests, webID))
		for _, c := range []struct {
			attrs []attribute.KeyValue
			want  int64
		}{
			{[]attribute.KeyValue{webID, route("/items/{id}"), class("2xx")}, 3},
			{[]attribute.KeyValue{webID, route("/items/{id}"), class("5xx")}, 0},
			{[]attribute.KeyValue{webID, route("/boom"), class("5xx")}, 2},
			{[]attribute.KeyValue{webID, route("/panic"), class("5xx")}, 1},
			{[]attribute.KeyValue{webID, route("/sub/{x}"), class("2xx")}, 1},
			{[]attribute.KeyValue{webID, class("4xx")}, 1}, // no route served it
		} {
			require.Equal(t, c.want, sumOf(t, rm, pluginotel.MetricResponses, c.attrs...), "%v", c.attrs)
		}
		require.Equal(t, int64(routeOf(t, pm, "/items/{id}").Responses.Success),
			sumOf(t, rm, pluginotel.MetricResponses, webID, route("/items/{id}"), class("2xx")))
		require.Equal(t, int64(1), sumOf(t, rm, pluginotel.MetricPanics, webID))
		require.Equal(t, int64(pm.Panics), sumOf(t, rm, pluginotel.MetricPanics, webID))
		require.Equal(t, int64(0), sumOf(t, rm, pluginotel.MetricActiveRequests, webID))
		require.Equal(t, int64(0), sumOf(t, rm, pluginotel.MetricRejected, webID))
		failingID := pluginotel.AttrPluginID.String("failing")
		require.Equal(t, int64(1), sumOf(t, rm, pluginotel.MetricHookErrors, failingID, pluginotel.AttrHook.String("init")))
		require.Equal(t, int64(0), sumOf(t, rm, pluginotel.MetricHookErrors, webID, pluginotel.AttrHook.String("init")))

		// The histograms: the Manager's counts, with its bounds.
		for _, p := range []string{"/items/{id}", "/boom", "/panic", "/sub/{x}"} {
			dp := histogramOf(t, rm, pluginotel.MetricRequestDuration, webID, route(p))
			want := routeOf(t, pm, p).Latency
			require.Equal(t, pluginhost.LatencyBuckets(), dp.Bounds, p)
			require.Equal(t, want.Counts, dp.BucketCounts, p)
			require.Equal(t, want.Count, dp.Count, p)
			require.Equal(t, want.Sum, dp.Sum, p)
			require.Positive(t, dp.Sum, p)
		}
		require.Equal(t, uint64(3), histogramOf(t, rm, pluginotel.MetricRequestDuration, webID, route("/items/{id}")).Count)
		unmatched := histogramOf(t, rm, pluginotel.MetricRequestDuration, webID)
		require.Equal(t, uint64(1), unmatched.Count)
		require.Equal(t, pm.Unmatched.Latency.Counts, unmatched.BucketCounts)
		initHook := histogramOf(t, rm, pluginotel.MetricHookDuration, webID, pluginotel.AttrHook.String("init"))
		require.Equal(t, uint64(1), initHook.Count)
		require.Equal(t, hookOf(t, pm, "init").Duration.Counts, initHook.BucketCounts)

		// Another collection sees the new requests; once unregistered, the
		// counters are no longer observed.
		traffic(t, inst)
		require.NoError(t, reader.Collect(context.Background(), &rm))
		require.Equal(t, int64(16), sumOf(t, rm, pluginotel.MetricRequests, webID))
		require.Equal(t, uint64(6), histogramOf(t, rm, pluginotel.MetricRequestDuration, webID, route("/items/{id}")).Count)
		require.NoError(t, reg.Unregister())
		require.NoError(t, reader.Collect(context.Background(), &rm))
		for _, sm := range rm.ScopeMetrics {
			for _, md := range sm.Metrics {
				if md.Name == pluginotel.MetricRequests {
					s := md.Data.(metricdata.Sum[int64])
					require.Empty(t, s.DataPoints, "observed after Unregister")
				}
			}
		}
	})
}

func attrOf(span sdktrace.ReadOnlySpan, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range span.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

func spansNamed(sr *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range sr.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// Middleware starts a server span per plugin request, named after the
// method and route, with plugin.id, http.route, the method and the status;
// 5xx and panics are errors. The handler's context carries the span.
func TestMiddlewareSpans(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		sr := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
		opts.Config.Middleware = []func(http.Handler) http.Handler{pluginotel.Middleware(tp)}
		inst, p := start(t, opts)
		traffic(t, inst)

		type want struct {
			name, route string
			status      int
			code        codes.Code
			n           int
		}
		for _, w := range []want{
			{"GET /api/plugin/web/items/{id}", "/api/plugin/web/items/{id}", 200, codes.Unset, 3},
			{"GET /api/plugin/web/boom", "/api/plugin/web/boom", 502, codes.Error, 2},
			{"GET /api/plugin/web/panic", "/api/plugin/web/panic", 500, codes.Error, 1},
			{"POST /api/plugin/web/sub/{x}", "/api/plugin/web/sub/{x}", 201, codes.Unset, 1},
			{"GET", "", 404, codes.Unset, 1},
		} {
			spans := spansNamed(sr, w.name)
			require.Len(t, spans, w.n, w.name)
			for _, s := range spans {
				require.Equal(t, trace.SpanKindServer, s.SpanKind(), w.name)
				v, _ := attrOf(s, pluginotel.AttrPluginID)
				require.Equal(t, "web", v.AsString(), w.name)
				v, _ = attrOf(s, pluginotel.AttrMethod)
				require.Equal(t, strings.Fields(w.name)[0], v.AsString(), w.name)
				v, ok := attrOf(s, pluginotel.AttrRoute)
				require.Equal(t, w.route != "", ok, w.name)
				require.Equal(t, w.route, v.AsString(), w.name)
				v, _ = attrOf(s, pluginotel.AttrStatusCode)
				require.Equal(t, int64(w.status), v.AsInt64(), w.name)
				require.Equal(t, w.code, s.Status().Code, w.name)
			}
		}
		// The handlers of /items/{id} ran in the spans' contexts.
		p.mu.Lock()
		defer p.mu.Unlock()
		var handlerSpans, ended []trace.SpanID
		for _, sc := range p.spans {
			handlerSpans = append(handlerSpans, sc.SpanID())
		}
		for _, s := range spansNamed(sr, "GET /api/plugin/web/items/{id}") {
			ended = append(ended, s.SpanContext().SpanID())
		}
		require.ElementsMatch(t, ended, handlerSpans)
	})
}

// HookObserver starts a span per hook call, named after the hook, with
// plugin.id; a failing hook's span records the error.
func TestHookObserverSpans(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		sr := tracetest.NewSpanRecorder()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
		opts.Config.HookObserver = pluginotel.HookObserver(tp)
		inst, _ := start(t, opts)
		require.NoError(t, inst.Manager.Disable(context.Background(), "web"))

		byPlugin := map[string][]string{}
		for _, s := range sr.Ended() {
			name, ok := strings.CutPrefix(s.Name(), "pluginhost.hook ")
			require.True(t, ok, s.Name())
			id, _ := attrOf(s, pluginotel.AttrPluginID)
			hook, _ := attrOf(s, pluginotel.AttrHook)
			require.Equal(t, name, hook.AsString())
			byPlugin[id.AsString()] = append(byPlugin[id.AsString()], name)
			if id.AsString() == "failing" && name == "init" {
				require.Equal(t, codes.Error, s.Status().Code)
				require.Contains(t, s.Status().Description, errInit.Error())
				events := s.Events()
				require.NotEmpty(t, events)
				require.Equal(t, "exception", events[0].Name)
			} else {
				require.Equal(t, codes.Unset, s.Status().Code, "%s %s", id.AsString(), name)
			}
		}
		require.Subset(t, byPlugin["web"], []string{"init", "routes", "shutdown"})
		require.Contains(t, byPlugin["failing"], "init")
		pm, _ := inst.Manager.PluginMetrics("web")
		for _, hm := range pm.Hooks {
			n := 0
			for _, h := range byPlugin["web"] {
				if h == hm.Hook {
					n++
				}
			}
			require.Equal(t, hm.Duration.Count, uint64(n), hm.Hook)
		}
	})
}

// The root package builds without OpenTelemetry and Prometheus: a host
// that does not import this package downloads and compiles none of it.
func TestRootPackageImportsNoOTel(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "github.com/pluginhost/pluginhost").CombinedOutput()
	require.NoError(t, err, "%s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/pluginhost/pluginhost")
	require.Contains(t, deps, "github.com/go-chi/chi/v5") // the listing is real
	for _, dep := range deps {
		for _, banned := range []string{"go.opentelemetry.io/", "github.com/prometheus/"} {
			require.False(t, strings.HasPrefix(dep, banned), "the root package depends on %s", dep)
		}
	}
}

// Middleware takes a remote parent from the request's headers with the
// global propagator, once the host sets one.
func TestMiddlewareTakesTheRemoteParent(t *testing.T) {
	// Not parallel: it sets the global propagator (the parallel tests run
	// after it).
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator()) })
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	var opts pluginhosttest.Options
	opts.Config.Middleware = []func(http.Handler) http.Handler{pluginotel.Middleware(tp)}
	inst, _ := start(t, opts)

	req, err := http.NewRequest("GET", inst.Server.URL+"/api/plugin/web/items/1", nil)
	require.NoError(t, err)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, err := inst.Server.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	spans := spansNamed(sr, "GET /api/plugin/web/items/{id}")
	require.Len(t, spans, 1)
	require.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", spans[0].SpanContext().TraceID().String())
	require.Equal(t, "00f067aa0ba902b7", spans[0].Parent().SpanID().String())
	require.True(t, spans[0].Parent().IsRemote())
}

// plainWriter is a ResponseWriter that cannot flush.
type plainWriter struct{ w http.ResponseWriter }

func (p plainWriter) Header() http.Header         { return p.w.Header() }
func (p plainWriter) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p plainWriter) WriteHeader(code int)        { p.w.WriteHeader(code) }

// Through the middleware's writer, http.ResponseController.Flush flushes
// the writer below, or says it cannot (http.ErrNotSupported); a flush that
// could not write the header leaves the span's status code to the status
// the handler writes next.
func TestMiddlewareKeepsFlushErrors(t *testing.T) {
	t.Parallel()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	var flushErr error
	h := pluginotel.Middleware(tp)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		flushErr = http.NewResponseController(w).Flush()
		if r.URL.Path == "/flusher" {
			w.(http.Flusher).Flush()
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))

	rec := httptest.NewRecorder()
	h.ServeHTTP(plainWriter{rec}, httptest.NewRequest("GET", "/controller", nil))
	require.ErrorIs(t, flushErr, http.ErrNotSupported)
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	rec = httptest.NewRecorder()
	h.ServeHTTP(plainWriter{rec}, httptest.NewRequest("GET", "/flusher", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code)
	spans := sr.Ended()
	require.Len(t, spans, 2)
	for _, s := range spans {
		v, _ := attrOf(s, pluginotel.AttrStatusCode)
		require.Equal(t, int64(http.StatusServiceUnavailable), v.AsInt64())
		require.Equal(t, codes.Error, s.Status().Code)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/controller", nil))
	require.NoError(t, flushErr)
	require.True(t, rec.Flushed)
	require.Equal(t, http.StatusOK, rec.Code, "the flush sent the header")
	v, _ := attrOf(sr.Ended()[2], pluginotel.AttrStatusCode)
	require.Equal(t, int64(http.StatusOK), v.AsInt64())
}
