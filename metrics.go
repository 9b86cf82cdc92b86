package pluginhost

import (
	"bufio"
	"cmp"
	"errors"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
)

// Metrics are always on. Each plugin id has one set of counters for the
// Manager's life: they survive Disable and Enable, and only ever grow
// (InFlight, a gauge, excepted). The request path updates them with a few
// atomic additions and no lock: the routing entry built when a plugin's
// routes are mounted points at its counters and indexes its route patterns.
// Readers ([Manager.Metrics], [Manager.PluginMetrics]) copy them into
// snapshots without stopping the requests, so the fields of one snapshot
// may differ by the requests that finished while it was being taken.

// latencyBounds are the upper bounds of the buckets of every histogram, as
// durations; LatencyBuckets returns them in seconds.
var latencyBounds = [...]time.Duration{
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
}

// latencyBuckets is latencyBounds in seconds.
var latencyBuckets = func() []float64 {
	out := make([]float64, len(latencyBounds))
	for i, b := range latencyBounds {
		out[i] = b.Seconds()
	}
	return out
}()

// numBuckets counts the buckets of a histogram: one per bound, and +Inf.
const numBuckets = len(latencyBounds) + 1

// LatencyBuckets returns the upper bounds, in seconds, of the buckets of
// every [Histogram] the Manager reports, the same for all: .001 .0025 .005
// .01 .025 .05 .1 .25 .5 1 2.5 5 10, followed by an implicit +Inf bucket.
// A duration falls in the first bucket whose bound it does not exceed
// (Prometheus's "le"). The slice is the caller's.
func LatencyBuckets() []float64 { return slices.Clone(latencyBuckets) }

// bucketOf returns the index of the histogram bucket that d falls in:
// the first whose bound d does not exceed, or numBuckets-1 (+Inf).
func bucketOf(d time.Duration) int {
	for i, b := range latencyBounds {
		if d <= b {
			return i
		}
	}
	return len(latencyBounds)
}

// Histogram is a snapshot of a latency histogram with the buckets of
// [LatencyBuckets].
type Histogram struct {
	// Bounds are the upper bounds of the buckets in seconds, as
	// LatencyBuckets returns them; the last bucket, +Inf, has none.
	Bounds []float64 `json:"bounds"`
	// Counts has len(Bounds)+1 entries, NOT cumulative: Counts[i] counts
	// the durations d with Bounds[i-1] < d <= Bounds[i], and the last
	// entry those above every bound (as OpenTelemetry's explicit-bucket
	// histograms count; Prometheus's cumulative "le" buckets are running
	// sums of them).
	Counts []uint64 `json:"counts"`
	// Count is the number of durations observed: the sum of Counts.
	Count uint64 `json:"count"`
	// Sum is the sum of the durations observed, in seconds.
	Sum float64 `json:"sum"`
}

// histogram is the live form of a Histogram: updated with two atomic
// additions, read without a lock.
type histogram struct {
	counts [numBuckets]atomic.Uint64
	sum    atomic.Uint64 // nanoseconds
}

func (h *histogram) observe(d time.Duration) {
	d = max(d, 0)
	h.counts[bucketOf(d)].Add(1)
	h.sum.Add(uint64(d))
}

// raw adds h's counts and sum (in nanoseconds) to counts and sum.
func (h *histogram) raw(counts *[numBuckets]uint64, sum *uint64) {
	for i := range h.counts {
		counts[i] += h.counts[i].Load()
	}
	*sum += h.sum.Load()
}

// histogramOf makes the snapshot of counts and sum (in nanoseconds).
func histogramOf(counts *[numBuckets]uint64, sum uint64) Histogram {
	out := Histogram{Bounds: slices.Clone(latencyBuckets), Counts: slices.Clone(counts[:]), Sum: float64(sum) / 1e9}
	for _, c := range counts {
		out.Count += c
	}
	return out
}

// StatusClasses counts responses by the class of their status code. A
// status outside 100-599 counts in the nearest class; a request whose
// connection the handler hijacked without writing a status first counts
// as 1xx (switching protocols).
type StatusClasses struct {
	Informational uint64 `json:"1xx"`
	Success       uint64 `json:"2xx"`
	Redirection   uint64 `json:"3xx"`
	ClientError   uint64 `json:"4xx"`
	ServerError   uint64 `json:"5xx"`
}

// ResponseMetrics are the counters of the requests a plugin's router
// served: for the whole plugin, one route pattern, or the requests no
// route served.
type ResponseMetrics struct {
	// Requests counts the requests served to the end (Latency.Count).
	Requests uint64 `json:"requests"`
	// Responses counts them by status class.
	Responses StatusClasses `json:"responses"`
	// Latency is the time from when the Manager admitted the request to
	// when the plugin's router returned.
	Latency Histogram `json:"latency"`
}

// RouteMetrics are the counters of one route pattern of a plugin.
type RouteMetrics struct {
	// Pattern is the chi pattern relative to the plugin's prefix, as chi's
	// RoutePattern reports it after routing: "/items/{id}" for a route
	// served at /api/plugin/<id>/items/{id}.
	Pattern string `json:"pattern"`
	// Methods are the methods the pattern has been registered for, sorted.
	Methods []string `json:"methods"`
	// Mounted is false for a pattern of an earlier run that the plugin's
	// current routes no longer have, and while the plugin is not running;
	// its counters stay.
	Mounted bool `json:"mounted"`
	ResponseMetrics
}

// HookMetrics are the counters of one lifecycle hook of a plugin, across
// its runs. The declarations [Manager.Plan] calls count too.
type HookMetrics struct {
	// Hook names it as PluginStatus.Timings and errors do: "seed", "init",
	// "routes", "shutdown", "install", "upgrade", "seed once", "declare
	// tables and migrations".
	Hook string `json:"hook"`
	// Errors counts the calls that returned an error, panicked or were
	// abandoned (past Config.HookTimeout, or after the deadline of
	// Shutdown's context).
	Errors uint64 `json:"errors"`
	// Duration is the time each call took, or was waited for when it was
	// abandoned. Its Count counts the calls.
	Duration Histogram `json:"duration"`
}

// EventMetrics are the counters of a plugin's events.
type EventMetrics struct {
	// Published counts the events the plugin published through its Host.
	Published uint64 `json:"published"`
	// Delivered counts the calls of the plugin's event handlers.
	Delivered uint64 `json:"delivered"`
	// Failed counts the handler calls that returned an error, panicked or
	// overran Config.HookTimeout (each also published as a PluginError).
	Failed uint64 `json:"failed"`
	// Dropped counts the events its asynchronous subscriptions dropped
	// because their queue was full (PluginStatus.EventsDropped).
	Dropped uint64 `json:"dropped"`
}

// ExtensionMetrics are the counters of the calls into a plugin's
// extension providers made through [ExtensionPoint.Each] and
// [ExtensionPoint.Call].
type ExtensionMetrics struct {
	// Calls counts the calls.
	Calls uint64 `json:"calls"`
	// Errors counts the calls that returned an error or panicked; a call
	// abandoned past Config.HookTimeout counts in PluginMetrics.Overruns.
	Errors uint64 `json:"errors"`
}

// PluginMetrics is a snapshot of the metrics of one plugin since the
// Manager was created. Every field but InFlight is a monotonic counter (or
// a histogram of them); they survive the plugin's Disable and Enable.
type PluginMetrics struct {
	Plugin string `json:"plugin"`
	// ResponseMetrics covers every request the plugin's router served:
	// the sum of Routes and Unmatched. Requests the Manager answered
	// itself (503 while the plugin is not running, or beyond
	// Config.MaxInFlight) are not among them.
	ResponseMetrics
	// InFlight is the number of the plugin's requests being served now (a
	// gauge).
	InFlight int64 `json:"in_flight"`
	// Rejected counts the requests answered 503 because the plugin already
	// served Config.MaxInFlight of them.
	Rejected uint64 `json:"rejected"`
	// Panics counts the panics recovered in the plugin's code: handlers,
	// hooks, event handlers, extension calls, health checks.
	Panics uint64 `json:"panics"`
	// Overruns counts the calls into the plugin's code that were abandoned:
	// event handlers and extension calls past Config.HookTimeout, and code
	// that called runtime.Goexit. A lifecycle hook past Config.HookTimeout
	// fails the plugin instead, and counts in its HookMetrics.Errors.
	Overruns uint64 `json:"overruns"`
	// BreakerTrips counts the times its circuit breaker tripped.
	BreakerTrips uint64 `json:"breaker_trips"`
	// Routes has one entry per route pattern the plugin ever mounted, by
	// pattern.
	Routes []RouteMetrics `json:"routes"`
	// Unmatched counts the requests no route of the plugin served: chi's
	// 404 and 405, and those the host's Config.Middleware answered before
	// routing.
	Unmatched ResponseMetrics `json:"unmatched"`
	// Hooks has one entry per hook the plugin's code was called for, by
	// name.
	Hooks      []HookMetrics    `json:"hooks"`
	Events     EventMetrics     `json:"events"`
	Extensions ExtensionMetrics `json:"extensions"`
}

// Metrics returns a snapshot of the metrics of every registered plugin, by
// id; it is empty before Start. It takes no lock the request path takes,
// and is cheap enough to call every second. It is safe for concurrent use.
func (m *Manager) Metrics() []PluginMetrics {
	mt := m.plugins.mounts.Load()
	out := make([]PluginMetrics, 0, len(mt.order))
	for _, mnt := range mt.order {
		out = append(out, mnt.metricsSnapshot())
	}
	return out
}

// PluginMetrics returns a snapshot of the metrics of plugin id, and false
// when id is not registered or Start has not run. It is safe for
// concurrent use.
func (m *Manager) PluginMetrics(id string) (PluginMetrics, bool) {
	mnt := m.plugins.mounts.Load().byID[id]
	if mnt == nil {
		return PluginMetrics{}, false
	}
	return mnt.metricsSnapshot(), true
}

// metricsRegistry holds the counters of each plugin id for the Manager's
// life. Its zero value is ready.
type metricsRegistry struct {
	byID atomic.Pointer[map[string]*pluginMetrics] // copied on write
	mu   sync.Mutex                                // serializes writes
}

// of returns plugin id's counters, made on first use. It takes no lock
// once they exist.
func (r *metricsRegistry) of(id string) *pluginMetrics {
	if mp := r.byID.Load(); mp != nil {
		if pm := (*mp)[id]; pm != nil {
			return pm
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var old map[string]*pluginMetrics
	if mp := r.byID.Load(); mp != nil {
		old = *mp
	}
	if pm := old[id]; pm != nil {
		return pm
	}
	next := make(map[string]*pluginMetrics, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	pm := &pluginMetrics{id: id, routes: map[string]*routeStats{}, hooks: map[string]*hookStats{}}
	next[id] = pm
	r.byID.Store(&next)
	return pm
}

// pluginMetrics are the live counters of one plugin.
type pluginMetrics struct {
	id        string
	unmatched responseStats

	panics, overruns, trips        atomic.Uint64
	published, delivered, failures atomic.Uint64
	dropped                        atomic.Int64 // the event bus's count for the plugin
	extCalls, extErrors            atomic.Uint64

	mu     sync.Mutex             // guards the maps, not the counters they point to
	routes map[string]*routeStats // by pattern, relative to the plugin's prefix
	hooks  map[string]*hookStats  // by hook name
}

// responseStats counts the requests of a route: three atomic additions per
// request.
type responseStats struct {
	status  [5]atomic.Uint64 // by class: 1xx … 5xx
	latency histogram
}

// record counts one request answered with status code after d.
func (s *responseStats) record(code int, d time.Duration) {
	class := code/100 - 1
	s.status[min(max(class, 0), 4)].Add(1)
	s.latency.observe(d)
}

// rawResponses is responseStats read, to be added up.
type rawResponses struct {
	status [5]uint64
	counts [numBuckets]uint64
	sum    uint64
}

func (s *responseStats) raw(into *rawResponses) {
	for i := range s.status {
		into.status[i] += s.status[i].Load()
	}
	s.latency.raw(&into.counts, &into.sum)
}

func (r *rawResponses) add(o *rawResponses) {
	for i := range r.status {
		r.status[i] += o.status[i]
	}
	for i := range r.counts {
		r.counts[i] += o.counts[i]
	}
	r.sum += o.sum
}

func (r *rawResponses) snapshot() ResponseMetrics {
	h := histogramOf(&r.counts, r.sum)
	return ResponseMetrics{
		Requests: h.Count,
		Responses: StatusClasses{
			Informational: r.status[0], Success: r.status[1], Redirection: r.status[2],
			ClientError: r.status[3], ServerError: r.status[4],
		},
		Latency: h,
	}
}

// routeStats are the counters of one route pattern.
type routeStats struct {
	responseStats
	pattern string
	methods []string // guarded by pluginMetrics.mu
}

// hookStats are the counters of one hook.
type hookStats struct {
	errors   atomic.Uint64
	duration histogram
}

// routeIndex returns the lookup of a running entry: the counters of each
// route of routes (full patterns, under prefix), made on first use, by the
// pattern chi reports after routing. A pattern is indexed as chi.Walk
// lists it, which is what chi's RoutePatterns holds for a route of the
// plugin's own router, and as RoutePattern joins it, for a route of a
// sub-router.
func (pm *pluginMetrics) routeIndex(routes []RouteInfo, prefix string) map[string]*routeStats {
	pm.mu.Lock()
	defer pm.mu.Unlock()
	idx := make(map[string]*routeStats, len(routes))
	for _, ri := range routes {
		pattern := strings.TrimPrefix(ri.Pattern, prefix)
		rs := pm.routes[pattern]
		if rs == nil {
			rs = &routeStats{pattern: pattern}
			pm.routes[pattern] = rs
		}
		if !slices.Contains(rs.methods, ri.Method) {
			rs.methods = append(rs.methods, ri.Method)
			slices.Sort(rs.methods)
		}
		idx[pattern] = rs
	}
	// The other names chi reports for a route: joined (a sub-router's), and
	// for a handler mounted with Mount, which chi.Walk lists as "/static/*"
	// only, its mount point with and without the slash ("/static",
	// "/static/"), which chi routes to it under those patterns. A pattern
	// the plugin registered itself keeps its own counters.
	aliases := make(map[string]*routeStats)
	for _, pattern := range slices.Sorted(maps.Keys(idx)) { // the first pattern wins a name
		rs := idx[pattern]
		names := []string{chiPattern(pattern)}
		if mountPoint, ok := strings.CutSuffix(pattern, "/*"); ok {
			names = append(names, mountPoint+"/", mountPoint, chiPattern(mountPoint+"/"), chiPattern(mountPoint))
		}
		for _, name := range names {
			if _, taken := idx[name]; !taken && aliases[name] == nil && name != "" {
				aliases[name] = rs
			}
		}
	}
	for name, rs := range aliases {
		idx[name] = rs
	}
	return idx
}

// chiPattern applies to a pattern from chi.Walk what chi's
// Context.RoutePattern applies to the patterns it joins.
func chiPattern(p string) string {
	for strings.Contains(p, "/*/") {
		p = strings.ReplaceAll(p, "/*/", "/")
	}
	if p != "/" {
		p = strings.TrimSuffix(strings.TrimSuffix(p, "//"), "/")
	}
	return p
}

// hookDone records a call of hook where that began at start and whose
// error *err is final when hookDone runs (it is deferred).
func (pm *pluginMetrics) hookDone(where string, start time.Time, err *error) {
	d := time.Since(start)
	pm.mu.Lock()
	hs := pm.hooks[where]
	if hs == nil {
		hs = &hookStats{}
		pm.hooks[where] = hs
	}
	pm.mu.Unlock()
	if *err != nil {
		hs.errors.Add(1)
	}
	hs.duration.observe(d)
}

// monoEpoch anchors the clock readings of the request path: time.Since of
// a Time that has a monotonic reading reads the monotonic clock only, where
// time.Now reads the wall clock too.
var monoEpoch = time.Now()

// monotonic returns the time elapsed since monoEpoch, by the monotonic
// clock.
func monotonic() time.Duration { return time.Since(monoEpoch) }

// observe records a request the plugin's router served, with chi's routing
// context after routing: its pattern picks the route's counters. It takes
// no lock, and allocates only for a route of a sub-router (chi joins the
// patterns).
func (mnt *mount) observe(rctx *chi.Context, code int, d time.Duration) {
	s := &mnt.metrics.unmatched
	var rs *routeStats
	switch len(rctx.RoutePatterns) {
	case 0:
	case 1:
		rs = mnt.routeIndex[rctx.RoutePatterns[0]]
	default:
		rs = mnt.routeIndex[rctx.RoutePattern()]
	}
	if rs != nil {
		s = &rs.responseStats
	}
	if code == 0 {
		code = http.StatusOK // nothing written: net/http answers 200
	}
	s.record(code, d)
}

// metricsSnapshot reads the counters of mnt's plugin, with mnt's in-flight
// requests and the routes it mounts.
func (mnt *mount) metricsSnapshot() PluginMetrics {
	pm := mnt.metrics
	out := PluginMetrics{
		Plugin: pm.id, InFlight: mnt.inflight.Load(), Rejected: uint64(mnt.rejected.Load()),
		Panics: pm.panics.Load(), Overruns: pm.overruns.Load(), BreakerTrips: pm.trips.Load(),
		Events: EventMetrics{
			Published: pm.published.Load(), Delivered: pm.delivered.Load(),
			Failed: pm.failures.Load(), Dropped: uint64(pm.dropped.Load()),
		},
		Extensions: ExtensionMetrics{Calls: pm.extCalls.Load(), Errors: pm.extErrors.Load()},
	}
	pm.mu.Lock()
	routes := make([]*routeStats, 0, len(pm.routes))
	for _, rs := range pm.routes {
		routes = append(routes, rs)
	}
	methods := make(map[*routeStats][]string, len(routes))
	for _, rs := range routes {
		methods[rs] = slices.Clone(rs.methods)
	}
	hooks := make(map[string]*hookStats, len(pm.hooks))
	for name, hs := range pm.hooks {
		hooks[name] = hs
	}
	pm.mu.Unlock()

	var total rawResponses
	slices.SortFunc(routes, func(a, b *routeStats) int { return cmp.Compare(a.pattern, b.pattern) })
	out.Routes = make([]RouteMetrics, 0, len(routes))
	for _, rs := range routes {
		var r rawResponses
		rs.raw(&r)
		total.add(&r)
		out.Routes = append(out.Routes, RouteMetrics{
			Pattern: rs.pattern, Methods: methods[rs],
			Mounted:         mnt.running && mnt.routeIndex[rs.pattern] == rs,
			ResponseMetrics: r.snapshot(),
		})
	}
	var unmatched rawResponses
	pm.unmatched.raw(&unmatched)
	total.add(&unmatched)
	out.Unmatched = unmatched.snapshot()
	out.ResponseMetrics = total.snapshot()

	out.Hooks = make([]HookMetrics, 0, len(hooks))
	for name, hs := range hooks {
		var counts [numBuckets]uint64
		var sum uint64
		hs.duration.raw(&counts, &sum)
		out.Hooks = append(out.Hooks, HookMetrics{Hook: name, Errors: hs.errors.Load(), Duration: histogramOf(&counts, sum)})
	}
	slices.SortFunc(out.Hooks, func(a, b HookMetrics) int { return cmp.Compare(a.Hook, b.Hook) })
	return out
}

// responseWriter is the ResponseWriter a plugin's router gets: it notes
// the status written, for the metrics. It lives in the requestContext, so
// it costs no allocation. Flush, Hijack and ReadFrom go to the writer it
// wraps (through http.ResponseController, so that writers that wrap
// theirs are reached too), and Unwrap returns it, for
// http.ResponseController's other methods.
type responseWriter struct {
	w      http.ResponseWriter
	status int // the final status written; 0 until then
}

func (w *responseWriter) Header() http.Header { return w.w.Header() }

func (w *responseWriter) WriteHeader(code int) {
	// 1xx responses but 101 are informational: the final one follows.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.w.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.w.Write(p)
}

// Unwrap returns the ResponseWriter it wraps, for http.ResponseController.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.w }

// Flush implements http.Flusher; it does nothing when the wrapped writer
// cannot flush.
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError flushes the wrapped writer, as http.ResponseController.Flush
// does, with its error (wrapping http.ErrNotSupported when it cannot).
func (w *responseWriter) FlushError() error {
	err := http.NewResponseController(w.w).Flush()
	if w.status == 0 && !errors.Is(err, http.ErrNotSupported) {
		w.status = http.StatusOK // flushing wrote the header
	}
	return err
}

// Hijack implements http.Hijacker, as http.ResponseController.Hijack does.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.w).Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return conn, rw, err
}

// ReadFrom implements io.ReaderFrom, so that io.Copy to the response keeps
// the wrapped writer's (sendfile on a connection).
func (w *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if rf, ok := w.w.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{w.w}, r)
}

// writerOnly hides every method of a writer but Write, so that io.Copy
// does not call ReadFrom again.
type writerOnly struct{ io.Writer }
