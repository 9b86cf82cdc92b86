package pluginhost

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-chi/chi/v5"

	"github.com/pluginhost/pluginhost/internal/routerec"
)

// PluginPathPrefix is where the Manager serves plugin routes: plugin id
// "notes" is served under /api/plugin/notes/.
const PluginPathPrefix = "/api/plugin/"

// RouteInfo describes one mounted plugin route.
type RouteInfo struct {
	// Method is the HTTP method, or "*" for a route that takes any method.
	Method string `json:"method"`
	// Pattern is the full chi pattern, such as /api/plugin/notes/notes/{id}.
	Pattern string `json:"pattern"`
	// Plugin is the id of the plugin that owns the route.
	Plugin string `json:"plugin"`
}

// mount is a plugin's routing entry: present for every known plugin,
// serving only while running.
type mount struct {
	id      string
	gen     uint64 // the plugin's generation the entry reflects
	running bool
	state   State
	reason  string
	mux     *chi.Mux
	logger  *slog.Logger
	routes  []RouteInfo
	m       *Manager

	// In-flight requests of a running entry, so that stopping a plugin can
	// let them finish before its Shutdown hook runs.
	inflight atomic.Int64
	closed   atomic.Bool   // the plugin stopped: no new request enters
	idle     chan struct{} // signaled when the last request leaves a closed entry; nil unless running
	// maxInflight is the plugin's Config.MaxInFlight, 0 for no limit;
	// rejected counts the requests refused beyond it since Start, shared by
	// the plugin's successive entries.
	maxInflight int64
	rejected    *atomic.Int64

	// The plugin's counters, and those of the routes mounted, by the
	// pattern chi reports after routing (see observe); read without locks.
	metrics    *pluginMetrics
	routeIndex map[string]*routeStats
}

// admission is enter's verdict.
type admission int

const (
	admitted admission = iota
	admitClosed
	admitFull
)

// newMount makes p's routing entry from its current state. pluginTable.mu
// must be held.
func newMount(m *Manager, p *plugin) *mount {
	mnt := &mount{id: p.id, gen: p.gen, running: p.state == StateRunning, state: p.state, reason: p.reason,
		logger: p.logger, m: m, metrics: m.metrics.of(p.id)}
	if prev := m.plugins.mounts.Load().byID[p.id]; prev != nil {
		mnt.rejected = prev.rejected
	} else {
		mnt.rejected = new(atomic.Int64)
	}
	inflight, _ := m.cfg.limits(p.id)
	mnt.maxInflight = int64(inflight)
	if mnt.running {
		mnt.mux, mnt.routes = p.mux, p.routes
		mnt.idle = make(chan struct{}, 1)
		mnt.routeIndex = mnt.metrics.routeIndex(p.routes, strings.TrimSuffix(PluginPathPrefix, "/")+"/"+p.id)
	}
	return mnt
}

// enter admits a request, unless the entry was closed meanwhile or the
// plugin already serves its limit of requests: one atomic add, whose
// result is compared with the limit.
func (mnt *mount) enter() admission {
	n := mnt.inflight.Add(1)
	if mnt.closed.Load() {
		mnt.leave()
		return admitClosed
	}
	if n > mnt.maxInflight && mnt.maxInflight > 0 {
		mnt.leave()
		mnt.rejected.Add(1)
		return admitFull
	}
	return admitted
}

// leave ends a request admitted by enter.
func (mnt *mount) leave() {
	if mnt.inflight.Add(-1) == 0 && mnt.closed.Load() {
		select {
		case mnt.idle <- struct{}{}:
		default:
		}
	}
}

// close stops admitting requests.
func (mnt *mount) close() { mnt.closed.Store(true) }

// drain waits until the in-flight requests of the closed entries finish,
// or ctx is done.
func drain(ctx context.Context, mounts []*mount) error {
	for _, mnt := range mounts {
		for mnt.inflight.Load() > 0 {
			select {
			case <-mnt.idle:
			case <-ctx.Done():
				return fmt.Errorf("plugin %q: %d requests still in flight: %w", mnt.id, mnt.inflight.Load(), ctx.Err())
			}
		}
	}
	return nil
}

// mountTable is the immutable routing snapshot the handler reads with one
// atomic load.
type mountTable struct {
	byID  map[string]*mount
	order []*mount
	// running tells, by position in the dependency order, which plugins
	// run: the gate of events and extension points, one index away.
	running []bool
}

// runningAt reports whether the plugin at position order of the
// dependency order is running, with one atomic load.
func (m *Manager) runningAt(order int) bool {
	r := m.plugins.mounts.Load().running
	return order >= 0 && order < len(r) && r[order]
}

// Handler returns the http.Handler that serves every plugin route. Mount it
// on the host's router at /api/plugin/ without stripping the prefix, for
// example r.Mount("/api/plugin", m.Handler()) with chi or
// mux.Handle("/api/plugin/", m.Handler()) with net/http. It answers 404
// with a JSON body for a plugin id that is not registered
// ({"error":"plugin not registered","plugin":"<id>"}), 503 for a plugin
// that is not running, and 503 with a Retry-After header for a plugin that
// already serves Config.MaxInFlight requests
// ({"error":"too many requests in flight","plugin":"<id>","limit":N}). It is safe for concurrent use and valid before Start.
func (m *Manager) Handler() http.Handler { return http.HandlerFunc(m.serveHTTP) }

// routeCtxPool recycles chi routing contexts, as chi's own Mux does.
var routeCtxPool = sync.Pool{New: func() any { return chi.NewRouteContext() }}

func (m *Manager) serveHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	rest, ok := strings.CutPrefix(path, PluginPathPrefix)
	if !ok {
		writeJSONError(w, http.StatusNotFound, "not found", "")
		return
	}
	id, sub, _ := strings.Cut(rest, "/")
	mt := m.plugins.mounts.Load()
	mnt := mt.byID[id]
	if mnt == nil {
		// Say only that this id is not registered: which ones are is the
		// host's business.
		msg := "plugin not registered"
		if id == "" {
			msg = "not found"
		}
		writeJSONError(w, http.StatusNotFound, msg, id)
		return
	}
	adm := admitClosed
	if mnt.running {
		adm = mnt.enter()
	}
	if adm == admitFull {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{
			"error": "too many requests in flight", "plugin": id, "limit": mnt.maxInflight,
		})
		return
	}
	if adm != admitted {
		if cur := m.plugins.mounts.Load().byID[id]; mnt.running && cur != nil {
			mnt = cur // stopped meanwhile: report its new state
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{
			"error": "plugin is not running", "plugin": id, "state": string(mnt.state), "reason": mnt.reason,
		})
		return
	}
	defer mnt.leave()
	rctx := routeCtxPool.Get().(*chi.Context)
	rctx.Reset()
	rctx.Routes = mnt.mux
	rctx.RoutePath = "/" + sub
	rc := &requestContext{Context: r.Context(), rctx: rctx, mnt: mnt, w: responseWriter{w: w}}
	start := monotonic()
	mnt.mux.ServeHTTP(&rc.w, r.WithContext(rc))
	mnt.observe(rctx, rc.w.status, monotonic()-start)
	routeCtxPool.Put(rctx)
}

// requestContext carries chi's routing context, the plugin's entry and the
// ResponseWriter that notes the status for the metrics, so a request to a
// plugin costs one context and one request copy, as a request through a
// bare chi router does.
type requestContext struct {
	context.Context
	rctx *chi.Context
	mnt  *mount
	w    responseWriter
}

type pluginCtxKey struct{}

func (c *requestContext) Value(key any) any {
	switch key {
	case chi.RouteCtxKey:
		return c.rctx
	case pluginCtxKey{}:
		return c.mnt
	}
	return c.Context.Value(key)
}

// PluginID returns the id of the plugin serving the request whose context
// is ctx, or "" outside a plugin route.
func PluginID(ctx context.Context) string {
	if mnt, ok := ctx.Value(pluginCtxKey{}).(*mount); ok {
		return mnt.id
	}
	return ""
}

// Logger returns the logger of the plugin serving the request whose context
// is ctx (the host's logger with a "plugin" attribute), or slog.Default()
// outside a plugin route.
func Logger(ctx context.Context) *slog.Logger {
	if mnt, ok := ctx.Value(pluginCtxKey{}).(*mount); ok {
		return mnt.logger
	}
	return slog.Default()
}

// recoverer turns a panic in a plugin's handler into a 500 JSON response;
// the panic is logged with the plugin id and the stack, and counted against
// the plugin's circuit breaker.
func recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := protectCall(serveHandler, next, handlerCall{w, r})
		if c == nil {
			return
		}
		if c.value == http.ErrAbortHandler {
			panic(c.value)
		}
		if mnt, ok := r.Context().Value(pluginCtxKey{}).(*mount); ok {
			mnt.m.panicked(mnt.id, "handler "+r.Method+" "+r.URL.Path, c)
		} else {
			slog.Error("plugin handler panicked", "panic", fmt.Sprint(c.value), "stack", string(c.stack))
		}
		writeJSONError(w, http.StatusInternalServerError, "internal error", PluginID(r.Context()))
	})
}

// handlerCall is a request for serveHandler.
type handlerCall struct {
	w http.ResponseWriter
	r *http.Request
}

func serveHandler(h http.Handler, c handlerCall) error { h.ServeHTTP(c.w, c.r); return nil }

// buildRoutes gives the plugin a fresh router wrapped by the recoverer and
// the host's middleware, lets it register its routes, and lists them.
// Invalid patterns and duplicate registrations are an error naming them.
func buildRoutes(id string, rr RouteRegistrar, h *Host, middleware []func(http.Handler) http.Handler) (*chi.Mux, []RouteInfo, error) {
	mux := chi.NewRouter()
	mux.Use(recoverer)
	mux.Use(middleware...)
	mux.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "not found", id)
	})
	mux.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusMethodNotAllowed, "method not allowed", id)
	})
	rec := routerec.New(mux)
	if rr != nil {
		rr.RegisterRoutes(rec, h)
	}
	if err := h.takeUndeclared(); err != nil {
		return nil, nil, err
	}
	if err := rec.Err(); err != nil {
		return nil, nil, err
	}
	var routes []RouteInfo
	prefix := strings.TrimSuffix(PluginPathPrefix, "/") + "/" + id
	err := chi.Walk(mux, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, RouteInfo{Method: method, Pattern: prefix + route, Plugin: id})
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	// chi.Walk visits the methods of a pattern in map order.
	slices.SortFunc(routes, func(a, b RouteInfo) int {
		return cmp.Or(strings.Compare(a.Pattern, b.Pattern), strings.Compare(a.Method, b.Method))
	})
	return mux, routes, nil
}

func writeJSONError(w http.ResponseWriter, status int, msg, plugin string) {
	body := map[string]string{"error": msg}
	if plugin != "" {
		body["plugin"] = plugin
	}
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Routes lists every mounted route of the running plugins: by plugin id,
// then pattern, then method.
func (m *Manager) Routes() []RouteInfo {
	var out []RouteInfo
	for _, mnt := range m.plugins.mounts.Load().order {
		if mnt.running {
			out = append(out, mnt.routes...)
		}
	}
	return out
}
