package routerec

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"

	"github.com/go-chi/chi/v5"
)

// Registration is one route registered through a Recorder.
type Registration struct {
	// Method is the upper-case HTTP method, or "*" for Handle, HandleFunc,
	// Mount and Route, which match every method (Handle("POST /x", h) is
	// recorded as POST, as chi registers it).
	Method string
	// Pattern is the full pattern from the root of the recorder: the
	// prefixes of the enclosing Route calls joined with the registered
	// pattern. Mount and Route are recorded as <pattern>/*.
	Pattern string
	// Location is the plugin's call site, as <parent dir>/<file>:<line>
	// (e.g. notes/notes.go:40).
	Location string
}

// Recorder is a chi.Router that forwards every call to an underlying
// chi.Router, records each registration with the caller's source location,
// turns chi's registration panics into errors, and detects duplicate
// method+pattern registrations.
//
// The routers returned by Route, Group and With are Recorders too, sharing
// the error and registration lists. A Recorder must be created with New; it
// is meant to be used during registration only: serve the underlying router.
type Recorder struct {
	mux    chi.Router
	prefix string // full pattern of the enclosing Route, without trailing '/'
	scope  *scope // the chi tree registrations land in
	st     *state
}

var _ chi.Router = (*Recorder)(nil)

// scope identifies one chi routing tree: the root router or the sub-router
// of a Route. Group and With share their parent's scope.
type scope struct{ parent *scope }

// within reports whether s is anc or nested inside it.
func (s *scope) within(anc *scope) bool {
	for x := s; x != nil; x = x.parent {
		if x == anc {
			return true
		}
	}
	return false
}

// state is shared by a Recorder and every Recorder derived from it.
type state struct {
	mu      sync.Mutex
	errs    []error
	entries []entry
}

// entry is a recorded registration with what is needed to find conflicts.
type entry struct {
	reg Registration
	// shapes are the normalized patterns the registration occupies: its own
	// pattern first, then, for a mount, the ones chi adds to reach the
	// sub-router's root.
	shapes []string
	scope  *scope
	// mounted is the scope of the sub-router a Route mounted, if any.
	mounted *scope
}

// New returns a Recorder that forwards to r, usually a fresh chi.NewRouter().
// A nil r is replaced by chi.NewRouter(). Routes registered on r before the
// call are unknown to the recorder.
func New(r chi.Router) *Recorder {
	if r == nil {
		r = chi.NewRouter()
	}
	return &Recorder{mux: r, scope: &scope{}, st: &state{}}
}

// Err returns every problem found so far, joined with errors.Join, in the
// order they were found; nil if there is none.
func (r *Recorder) Err() error {
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	return errors.Join(r.st.errs...)
}

// Registrations returns the routes registered so far, in registration order.
// Calls that chi rejected are not included.
func (r *Recorder) Registrations() []Registration {
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	regs := make([]Registration, len(r.st.entries))
	for i, e := range r.st.entries {
		regs[i] = e.reg
	}
	return regs
}

// ServeHTTP serves the request with the underlying router.
func (r *Recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mux.ServeHTTP(w, req)
}

// Routes returns the routing tree of the underlying router.
func (r *Recorder) Routes() []chi.Route { return r.mux.Routes() }

// Middlewares returns the middlewares of the underlying router.
func (r *Recorder) Middlewares() chi.Middlewares { return r.mux.Middlewares() }

// Match reports whether the underlying router has a handler for method and
// path.
func (r *Recorder) Match(rctx *chi.Context, method, path string) bool {
	return r.mux.Match(rctx, method, path)
}

// Find returns the pattern of the underlying router's route for method and
// path, or "".
func (r *Recorder) Find(rctx *chi.Context, method, path string) string {
	return r.mux.Find(rctx, method, path)
}

// Use appends middlewares to the underlying router's stack. Nil middlewares
// are rejected; chi's panic when routes were already registered becomes an
// error.
func (r *Recorder) Use(middlewares ...func(http.Handler) http.Handler) {
	loc := location()
	mws := r.dropNil(middlewares, "Use", loc)
	r.guard("middleware (Use) at "+loc, func() { r.mux.Use(mws...) })
}

// With returns a recording inline router that adds middlewares to the
// handlers registered through it. Nil middlewares are rejected.
func (r *Recorder) With(middlewares ...func(http.Handler) http.Handler) chi.Router {
	mws := r.dropNil(middlewares, "With", location())
	return r.derive(r.mux.With(mws...))
}

// Group returns a recording inline router with a copy of the middleware
// stack, after calling fn with it. A panic in fn propagates.
func (r *Recorder) Group(fn func(r chi.Router)) chi.Router {
	g := r.derive(r.mux.With())
	if fn != nil {
		fn(g)
	}
	return g
}

// Route creates a recording sub-router on a fresh chi.NewRouter(), calls fn
// with it and mounts it along pattern, as chi does. The sub-router's routes
// are recorded with pattern as prefix. A panic in fn propagates.
func (r *Recorder) Route(pattern string, fn func(r chi.Router)) chi.Router {
	sub := &Recorder{
		mux:    chi.NewRouter(),
		prefix: strings.TrimSuffix(r.full(pattern), "/"),
		scope:  &scope{parent: r.scope},
		st:     r.st,
	}
	if fn == nil {
		loc := location()
		r.guard(fmt.Sprintf("route * %q at %s", mountPattern(r.full(pattern)), loc),
			func() { r.mux.Route(pattern, nil) })
		return sub
	}
	fn(sub)
	r.mount(pattern, sub.mux, sub.scope)
	return sub
}

// Mount attaches h along pattern/* (and pattern and pattern/ when pattern
// does not end in '/'). It is recorded as method "*" and pattern
// <pattern>/*. A *Recorder is mounted as its underlying router.
func (r *Recorder) Mount(pattern string, h http.Handler) {
	var mounted *scope
	if rec, ok := h.(*Recorder); ok {
		if rec == nil {
			h = nil
		} else {
			h = rec.mux
			if rec.st == r.st {
				mounted = rec.scope
			}
		}
	}
	r.mount(pattern, h, mounted)
}

// Handle registers h for every method on pattern. As in chi, a pattern of
// the form "METHOD /path" registers h for that method only.
func (r *Recorder) Handle(pattern string, h http.Handler) {
	method, pat := splitMethod(pattern)
	r.register(method, pat, h, func() { r.mux.Handle(pattern, h) })
}

// HandleFunc registers h for every method on pattern, like Handle.
func (r *Recorder) HandleFunc(pattern string, h http.HandlerFunc) {
	method, pat := splitMethod(pattern)
	r.register(method, pat, h, func() { r.mux.HandleFunc(pattern, h) })
}

// Method registers h for method on pattern.
func (r *Recorder) Method(method, pattern string, h http.Handler) {
	r.register(strings.ToUpper(method), pattern, h, func() { r.mux.Method(method, pattern, h) })
}

// MethodFunc registers h for method on pattern.
func (r *Recorder) MethodFunc(method, pattern string, h http.HandlerFunc) {
	r.register(strings.ToUpper(method), pattern, h, func() { r.mux.MethodFunc(method, pattern, h) })
}

// Connect registers h for CONNECT on pattern.
func (r *Recorder) Connect(pattern string, h http.HandlerFunc) {
	r.register(http.MethodConnect, pattern, h, func() { r.mux.Connect(pattern, h) })
}

// Delete registers h for DELETE on pattern.
func (r *Recorder) Delete(pattern string, h http.HandlerFunc) {
	r.register(http.MethodDelete, pattern, h, func() { r.mux.Delete(pattern, h) })
}

// Get registers h for GET on pattern.
func (r *Recorder) Get(pattern string, h http.HandlerFunc) {
	r.register(http.MethodGet, pattern, h, func() { r.mux.Get(pattern, h) })
}

// Head registers h for HEAD on pattern.
func (r *Recorder) Head(pattern string, h http.HandlerFunc) {
	r.register(http.MethodHead, pattern, h, func() { r.mux.Head(pattern, h) })
}

// Options registers h for OPTIONS on pattern.
func (r *Recorder) Options(pattern string, h http.HandlerFunc) {
	r.register(http.MethodOptions, pattern, h, func() { r.mux.Options(pattern, h) })
}

// Patch registers h for PATCH on pattern.
func (r *Recorder) Patch(pattern string, h http.HandlerFunc) {
	r.register(http.MethodPatch, pattern, h, func() { r.mux.Patch(pattern, h) })
}

// Post registers h for POST on pattern.
func (r *Recorder) Post(pattern string, h http.HandlerFunc) {
	r.register(http.MethodPost, pattern, h, func() { r.mux.Post(pattern, h) })
}

// Put registers h for PUT on pattern.
func (r *Recorder) Put(pattern string, h http.HandlerFunc) {
	r.register(http.MethodPut, pattern, h, func() { r.mux.Put(pattern, h) })
}

// Query registers h for QUERY on pattern.
func (r *Recorder) Query(pattern string, h http.HandlerFunc) {
	r.register("QUERY", pattern, h, func() { r.mux.Query(pattern, h) })
}

// Trace registers h for TRACE on pattern.
func (r *Recorder) Trace(pattern string, h http.HandlerFunc) {
	r.register(http.MethodTrace, pattern, h, func() { r.mux.Trace(pattern, h) })
}

// NotFound sets the underlying router's handler for unknown paths.
func (r *Recorder) NotFound(h http.HandlerFunc) {
	r.guard("NotFound at "+location(), func() { r.mux.NotFound(h) })
}

// MethodNotAllowed sets the underlying router's handler for unknown methods.
func (r *Recorder) MethodNotAllowed(h http.HandlerFunc) {
	r.guard("MethodNotAllowed at "+location(), func() { r.mux.MethodNotAllowed(h) })
}

// derive wraps an inline router of r's tree.
func (r *Recorder) derive(mux chi.Router) *Recorder {
	return &Recorder{mux: mux, prefix: r.prefix, scope: r.scope, st: r.st}
}

// full returns pattern as seen from the root. A pattern that chi will
// reject (no leading '/') is returned as written.
func (r *Recorder) full(pattern string) string {
	if !strings.HasPrefix(pattern, "/") {
		return pattern
	}
	return r.prefix + pattern
}

// mountPattern returns how a mount on full is recorded.
func mountPattern(full string) string {
	if full == "" || strings.HasSuffix(full, "/") {
		return full + "*"
	}
	return full + "/*"
}

// splitMethod splits a "METHOD /path" Handle pattern as chi does.
func splitMethod(pattern string) (method, rest string) {
	if i := strings.IndexAny(pattern, " \t"); i >= 0 {
		return strings.ToUpper(pattern[:i]), strings.TrimLeft(pattern[i+1:], " \t")
	}
	return "*", pattern
}

// register forwards a route registration and records it.
func (r *Recorder) register(method, pattern string, h http.Handler, forward func()) {
	loc := location()
	full := r.full(pattern)
	desc := fmt.Sprintf("route %s %q at %s", method, full, loc)
	if isNil(h) {
		r.fail(fmt.Errorf("invalid %s: nil handler", desc))
		return
	}
	if !r.guard(desc, forward) {
		return
	}
	r.record(entry{
		reg:    Registration{Method: method, Pattern: full, Location: loc},
		shapes: []string{shapeOf(full)},
		scope:  r.scope,
	})
}

// mount forwards a Mount and records it; mounted is the scope of the
// sub-router when it is recorded by the same state.
func (r *Recorder) mount(pattern string, h http.Handler, mounted *scope) {
	loc := location()
	full := r.full(pattern)
	e := entry{
		reg:     Registration{Method: "*", Pattern: mountPattern(full), Location: loc},
		shapes:  []string{shapeOf(mountPattern(full))},
		scope:   r.scope,
		mounted: mounted,
	}
	if full != "" && !strings.HasSuffix(full, "/") {
		e.shapes = append(e.shapes, shapeOf(full), shapeOf(full+"/"))
	}
	if msg, ok := callChi(func() { r.mux.Mount(pattern, h) }); !ok {
		err := fmt.Errorf("invalid route * %q at %s: %s", e.reg.Pattern, loc, msg)
		r.st.mu.Lock()
		defer r.st.mu.Unlock()
		if old, _, found := r.st.conflict(e); found {
			// chi refuses to mount on an existing path: name the first one.
			err = fmt.Errorf("%w; first registered at %s", err, old.reg.Location)
		}
		r.st.errs = append(r.st.errs, err)
		return
	}
	r.record(e)
}

// dropNil returns middlewares without the nil ones, reporting each of them.
func (r *Recorder) dropNil(middlewares []func(http.Handler) http.Handler, call, loc string) []func(http.Handler) http.Handler {
	var mws []func(http.Handler) http.Handler
	for i, mw := range middlewares {
		if mw == nil {
			r.fail(fmt.Errorf("invalid middleware (%s) at %s: middleware %d is nil", call, loc, i))
			continue
		}
		mws = append(mws, mw)
	}
	return mws
}

// guard calls forward, which calls chi, and turns a chi registration panic
// into the error "invalid <desc>: <panic message>". It reports whether
// forward returned normally.
func (r *Recorder) guard(desc string, forward func()) bool {
	if msg, ok := callChi(forward); !ok {
		r.fail(fmt.Errorf("invalid %s: %s", desc, msg))
		return false
	}
	return true
}

// callChi calls forward and recovers a panic raised by chi itself, whose
// message it returns with ok false. Any other panic (from a middleware
// constructor that chi calls, say) is not chi's and is re-raised.
func callChi(forward func()) (msg string, ok bool) {
	defer func() {
		if ok {
			return
		}
		v := recover()
		if v == nil {
			return // runtime.Goexit: let it proceed
		}
		s, isString := v.(string)
		if !isString || !strings.HasPrefix(s, "chi: ") {
			panic(v)
		}
		msg = s
	}()
	forward()
	return "", true
}

// fail appends an error.
func (r *Recorder) fail(err error) {
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	r.st.errs = append(r.st.errs, err)
}

// record appends e, reporting the first earlier registration it conflicts
// with.
func (r *Recorder) record(e entry) {
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	if old, shape, ok := r.st.conflict(e); ok {
		r.st.errs = append(r.st.errs, duplicate(old, e, shape))
	}
	r.st.entries = append(r.st.entries, e)
}

// conflict returns the first recorded entry that e would replace or be
// shadowed by, and the shape they share.
func (s *state) conflict(e entry) (entry, string, bool) {
	for _, old := range s.entries {
		if !methodsOverlap(old.reg.Method, e.reg.Method) {
			continue
		}
		if old.mounted != nil && e.scope.within(old.mounted) ||
			e.mounted != nil && old.scope.within(e.mounted) {
			continue // a Route's own routes don't conflict with its mount
		}
		for _, a := range old.shapes {
			for _, b := range e.shapes {
				if a == b {
					return old, a, true
				}
			}
		}
	}
	return entry{}, "", false
}

// methodsOverlap reports whether registrations for methods a and b share a
// method, "*" standing for all of them.
func methodsOverlap(a, b string) bool {
	return a == b || a == "*" || b == "*"
}

// duplicate builds the error for e registered again over old on shape.
func duplicate(old, e entry, shape string) error {
	method := e.reg.Method
	if method == "*" {
		method = old.reg.Method
	}
	pattern := shape
	switch shape {
	case old.shapes[0]:
		pattern = old.reg.Pattern
	case e.shapes[0]:
		pattern = e.reg.Pattern
	}
	as := func(reg Registration) string {
		if reg.Method == method && reg.Pattern == pattern {
			return ""
		}
		return fmt.Sprintf(" (%s %q)", reg.Method, reg.Pattern)
	}
	return fmt.Errorf("route %s %q registered twice: first at %s%s, again at %s%s",
		method, pattern, old.reg.Location, as(old.reg), e.reg.Location, as(e.reg))
}

// isNil reports whether h is nil or a nil func or pointer, which chi would
// accept and crash on when serving.
func isNil(h http.Handler) bool {
	if h == nil {
		return true
	}
	switch v := reflect.ValueOf(h); v.Kind() {
	case reflect.Func, reflect.Pointer:
		return v.IsNil()
	}
	return false
}
