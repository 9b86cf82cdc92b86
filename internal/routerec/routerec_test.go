package routerec_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"runtime"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost/internal/routerec"
)

// next returns the location the recorder should report for a call on the
// line after the caller's.
func next() string {
	_, file, line, _ := runtime.Caller(1)
	return fmt.Sprintf("%s/%s:%d", path.Base(path.Dir(file)), path.Base(file), line+1)
}

// text is a handler that names itself in the X-Route header and the body.
func text(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Route", name)
		_, _ = io.WriteString(w, name+" "+chi.URLParam(r, "id"))
	}
}

// tag is a middleware that appends name to the X-Mw header.
func tag(name string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Add("X-Mw", name)
			next.ServeHTTP(w, r)
		})
	}
}

// response is what a request got back.
type response struct {
	code  int
	route string // X-Route header
	body  string
	mw    string // X-Mw headers joined with ","
}

func serve(h http.Handler, method, target string) response {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return response{
		code:  rec.Code,
		route: rec.Header().Get("X-Route"),
		body:  rec.Body.String(),
		mw:    strings.Join(rec.Header().Values("X-Mw"), ","),
	}
}

// requireServed checks that the route named name answers method target.
func requireServed(t *testing.T, h http.Handler, method, target, name string) {
	t.Helper()
	res := serve(h, method, target)
	require.Equal(t, http.StatusOK, res.code, "%s %s", method, target)
	require.Equal(t, name, res.route, "%s %s", method, target)
}

func reg(method, pattern, loc string) routerec.Registration {
	return routerec.Registration{Method: method, Pattern: pattern, Location: loc}
}

func TestEveryMethodIsForwardedAndRecorded(t *testing.T) {
	t.Parallel()

	mux := chi.NewRouter()
	r := routerec.New(mux)
	var want []routerec.Registration

	want = append(want, reg("GET", "/get", next()))
	r.Get("/get", text("get"))
	want = append(want, reg("POST", "/post", next()))
	r.Post("/post", text("post"))
	want = append(want, reg("PUT", "/put", next()))
	r.Put("/put", text("put"))
	want = append(want, reg("PATCH", "/patch", next()))
	r.Patch("/patch", text("patch"))
	want = append(want, reg("DELETE", "/delete", next()))
	r.Delete("/delete", text("delete"))
	want = append(want, reg("HEAD", "/head", next()))
	r.Head("/head", text("head"))
	want = append(want, reg("OPTIONS", "/options", next()))
	r.Options("/options", text("options"))
	want = append(want, reg("CONNECT", "/connect", next()))
	r.Connect("/connect", text("connect"))
	want = append(want, reg("TRACE", "/trace", next()))
	r.Trace("/trace", text("trace"))
	want = append(want, reg("QUERY", "/query", next()))
	r.Query("/query", text("query"))
	want = append(want, reg("PATCH", "/method", next()))
	r.Method("patch", "/method", text("method"))
	want = append(want, reg("QUERY", "/method-func", next()))
	r.MethodFunc("QUERY", "/method-func", text("method-func"))
	want = append(want, reg("*", "/handle", next()))
	r.Handle("/handle", text("handle"))
	want = append(want, reg("*", "/handle-func", next()))
	r.HandleFunc("/handle-func", text("handle-func"))
	want = append(want, reg("POST", "/handle-post", next()))
	r.Handle("post /handle-post", text("handle-post"))

	sub := chi.NewRouter()
	sub.Get("/ping", text("mounted"))
	want = append(want, reg("*", "/mounted/*", next()))
	r.Mount("/mounted", sub)

	var routeLoc, tagsLoc string
	routeLoc = next()
	r.Route("/notes", func(r chi.Router) {
		r.Use(tag("notes"))
		want = append(want, reg("GET", "/notes/", next()))
		r.Get("/", text("notes-list"))
		want = append(want, reg("GET", "/notes/{id}", next()))
		r.Get("/{id}", text("notes-get"))
		tagsLoc = next()
		r.Route("/{id}/tags/", func(r chi.Router) {
			want = append(want, reg("GET", "/notes/{id}/tags/", next()))
			r.Get("/", text("tags"))
		})
		want = append(want, reg("*", "/notes/{id}/tags/*", tagsLoc))
		r.Group(func(r chi.Router) {
			r.Use(tag("notes-group"))
			want = append(want, reg("DELETE", "/notes/{id}", next()))
			r.Delete("/{id}", text("notes-delete"))
		})
		want = append(want, reg("PUT", "/notes/{id}", next()))
		r.With(tag("notes-with")).Put("/{id}", text("notes-put"))
	})
	want = append(want, reg("*", "/notes/*", routeLoc))

	r.Group(func(r chi.Router) {
		r.Use(tag("group"))
		want = append(want, reg("GET", "/grouped", next()))
		r.Get("/grouped", text("grouped"))
		inGroupLoc := next()
		r.Route("/in-group", func(r chi.Router) {
			want = append(want, reg("GET", "/in-group/x", next()))
			r.Get("/x", text("in-group"))
		})
		want = append(want, reg("*", "/in-group/*", inGroupLoc))
	})
	want = append(want, reg("GET", "/with", next()))
	r.With(tag("with1"), tag("with2")).Get("/with", text("with"))

	require.NoError(t, r.Err())
	require.Equal(t, want, r.Registrations())

	for _, c := range []struct{ method, target, route string }{
		{"GET", "/get", "get"},
		{"POST", "/post", "post"},
		{"PUT", "/put", "put"},
		{"PATCH", "/patch", "patch"},
		{"DELETE", "/delete", "delete"},
		{"HEAD", "/head", "head"},
		{"OPTIONS", "/options", "options"},
		{"CONNECT", "/connect", "connect"},
		{"TRACE", "/trace", "trace"},
		{"QUERY", "/query", "query"},
		{"PATCH", "/method", "method"},
		{"QUERY", "/method-func", "method-func"},
		{"GET", "/handle", "handle"},
		{"DELETE", "/handle", "handle"},
		{"POST", "/handle-func", "handle-func"},
		{"POST", "/handle-post", "handle-post"},
		{"GET", "/mounted/ping", "mounted"},
		{"GET", "/notes", "notes-list"},
		{"GET", "/notes/", "notes-list"},
		{"GET", "/notes/7", "notes-get"},
		{"GET", "/notes/7/tags/", "tags"},
		{"DELETE", "/notes/7", "notes-delete"},
		{"PUT", "/notes/7", "notes-put"},
		{"GET", "/grouped", "grouped"},
		{"GET", "/in-group/x", "in-group"},
		{"GET", "/with", "with"},
	} {
		requireServed(t, mux, c.method, c.target, c.route)
	}

	// Method-specific routes refuse other methods; HEAD is not GET.
	require.Equal(t, http.StatusMethodNotAllowed, serve(mux, "POST", "/get").code)
	require.Equal(t, http.StatusMethodNotAllowed, serve(mux, "GET", "/handle-post").code)
	require.Equal(t, http.StatusMethodNotAllowed, serve(mux, "GET", "/head").code)

	// URL params and middlewares reach the handlers.
	require.Equal(t, "notes-get 7", serve(mux, "GET", "/notes/7").body)
	require.Equal(t, "notes", serve(mux, "GET", "/notes/7").mw)
	require.Equal(t, "notes,notes-group", serve(mux, "DELETE", "/notes/7").mw)
	require.Equal(t, "notes,notes-with", serve(mux, "PUT", "/notes/7").mw)
	require.Equal(t, "group", serve(mux, "GET", "/grouped").mw)
	require.Equal(t, "group", serve(mux, "GET", "/in-group/x").mw)
	require.Equal(t, "with1,with2", serve(mux, "GET", "/with").mw)
	require.Empty(t, serve(mux, "GET", "/get").mw)
}

func TestDerivedRoutersAreRecorders(t *testing.T) {
	t.Parallel()

	r := routerec.New(chi.NewRouter())
	var group, inRoute chi.Router
	route := r.Route("/a", func(r chi.Router) { inRoute = r })
	group = r.Group(nil)
	with := r.With(tag("x"))

	for _, sub := range []chi.Router{route, inRoute, group, with} {
		require.IsType(t, &routerec.Recorder{}, sub)
	}
	require.Same(t, inRoute, route)

	// Registrations through the returned routers are recorded and checked.
	route.Get("/late", text("late"))
	loc := next()
	group.Get("/late", text("late-group"))
	with.Get("/w", text("w"))

	regs := r.Registrations()
	require.Equal(t, []string{"/a/*", "/a/late", "/late", "/w"}, patterns(regs))
	require.Equal(t, loc, regs[2].Location)
	require.NoError(t, r.Err())
	requireServed(t, r, "GET", "/a/late", "late")
	requireServed(t, r, "GET", "/late", "late-group")
	require.Equal(t, "x", serve(r, "GET", "/w").mw)
}

func patterns(regs []routerec.Registration) []string {
	var ps []string
	for _, rg := range regs {
		ps = append(ps, rg.Pattern)
	}
	return ps
}

func TestDelegation(t *testing.T) {
	t.Parallel()

	mux := chi.NewRouter()
	r := routerec.New(mux)
	mw := tag("root")
	r.Use(mw)
	r.NotFound(text("custom-404"))
	r.MethodNotAllowed(text("custom-405"))
	r.Get("/notes/{id}", text("get"))

	require.Len(t, r.Middlewares(), 1)
	require.Len(t, r.Routes(), 1)
	require.Equal(t, "/notes/{id}", r.Routes()[0].Pattern)
	require.Contains(t, r.Routes()[0].Handlers, "GET")
	require.True(t, r.Match(chi.NewRouteContext(), "GET", "/notes/1"))
	require.False(t, r.Match(chi.NewRouteContext(), "GET", "/nope"))
	require.Equal(t, "/notes/{id}", r.Find(chi.NewRouteContext(), "GET", "/notes/1"))
	require.Empty(t, r.Find(chi.NewRouteContext(), "POST", "/notes/1"))

	requireServed(t, r, "GET", "/notes/1", "get")
	require.Equal(t, "root", serve(r, "GET", "/notes/1").mw)
	require.Equal(t, "custom-404", serve(mux, "GET", "/nope").route)
	require.Equal(t, "custom-405", serve(mux, "POST", "/notes/1").route)
	require.NoError(t, r.Err())
}

func TestMountRecorderMountsItsRouter(t *testing.T) {
	t.Parallel()

	mux := chi.NewRouter()
	r := routerec.New(mux)
	r.NotFound(text("custom-404"))
	other := routerec.New(chi.NewRouter())
	other.Get("/ping", text("ping"))
	r.Mount("/other", other)

	require.NoError(t, r.Err())
	requireServed(t, mux, "GET", "/other/ping", "ping")
	// chi only passes the parent's NotFound to a *chi.Mux, which the
	// recorder unwraps to.
	require.Equal(t, "custom-404", serve(mux, "GET", "/other/nope").route)
	require.Equal(t, []string{"/other/*"}, patterns(r.Registrations()))
	require.Equal(t, []string{"/ping"}, patterns(other.Registrations()))
}

func TestRegistrationsIsACopy(t *testing.T) {
	t.Parallel()

	r := routerec.New(nil)
	require.NoError(t, r.Err())
	require.Empty(t, r.Registrations())
	r.Get("/a", text("a"))
	regs := r.Registrations()
	regs[0].Pattern = "/changed"
	require.Equal(t, "/a", r.Registrations()[0].Pattern)
	requireServed(t, r, "GET", "/a", "a")
}

func TestUserPanicsPropagate(t *testing.T) {
	t.Parallel()

	r := routerec.New(chi.NewRouter())
	require.PanicsWithValue(t, "boom", func() {
		r.Route("/route", func(chi.Router) { panic("boom") })
	})
	// Even a value that looks like one of chi's messages is the plugin's.
	require.PanicsWithValue(t, "chi: not really", func() {
		r.Group(func(chi.Router) { panic("chi: not really") })
	})
	require.PanicsWithValue(t, "nested", func() {
		r.Route("/outer", func(r chi.Router) {
			r.Get("/ok", text("ok"))
			r.Route("/inner", func(chi.Router) { panic("nested") })
		})
	})
	// chi calls inline middleware constructors while registering a route.
	require.PanicsWithValue(t, "middleware", func() {
		r.With(func(http.Handler) http.Handler { panic("middleware") }).Get("/mw", text("mw"))
	})
	require.NoError(t, r.Err())
}

// benchRouter returns a router registered through a Recorder, and the
// Recorder.
func benchRouter(b *testing.B) (chi.Router, *routerec.Recorder) {
	mux := chi.NewRouter()
	r := routerec.New(mux)
	r.Route("/notes", func(r chi.Router) {
		r.Get("/", text("list"))
		r.Get("/{id}", text("get"))
		r.Put("/{id}", text("put"))
	})
	require.NoError(b, r.Err())
	return mux, r
}

// BenchmarkServe shows that serving the underlying router of a Recorder,
// as the host does, costs the same as serving a router that was never
// wrapped: the recorder does nothing per request.
func BenchmarkServe(b *testing.B) {
	mux, rec := benchRouter(b)
	plain := chi.NewRouter()
	plain.Route("/notes", func(r chi.Router) {
		r.Get("/", text("list"))
		r.Get("/{id}", text("get"))
		r.Put("/{id}", text("put"))
	})
	req := httptest.NewRequest("GET", "/notes/42", nil)
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{
		{"plain-chi", plain},
		{"underlying-mux", mux},
		{"through-recorder", rec},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				w.Body.Reset()
				bc.h.ServeHTTP(w, req)
			}
		})
	}
}

func TestRootPrefixes(t *testing.T) {
	t.Parallel()

	mux := chi.NewRouter()
	r := routerec.New(mux)
	r.Route("/", func(r chi.Router) {
		r.Get("/x", text("x"))
		r.Route("/api/", func(r chi.Router) { r.Get("/{id}", text("api")) })
	})
	other := chi.NewRouter()
	other.Get("/y", text("y"))
	r.Route("/other", func(r chi.Router) { r.Mount("/", other) })

	require.NoError(t, r.Err())
	require.Equal(t, []string{"/x", "/api/{id}", "/api/*", "/*", "/other/*", "/other/*"},
		patterns(r.Registrations()))
	requireServed(t, mux, "GET", "/x", "x")
	requireServed(t, mux, "GET", "/api/1", "api")
	requireServed(t, mux, "GET", "/other/y", "y")
}

// valueHandler is a non-pointer, non-func http.Handler.
type valueHandler struct{ name string }

func (h valueHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { text(h.name)(w, r) }

func TestNilHandlers(t *testing.T) {
	t.Parallel()

	mux := chi.NewRouter()
	r := routerec.New(mux)
	var nilRec *routerec.Recorder
	var nilMux *chi.Mux
	locs := []any{next()}
	r.Handle("/a", nil)
	locs = append(locs, next())
	r.Method("GET", "/b", nilMux)
	locs = append(locs, next())
	r.Mount("/c", nilRec)
	r.Handle("/value", valueHandler{"value"})

	require.EqualError(t, r.Err(), fmt.Sprintf(`invalid route * "/a" at %s: nil handler`+"\n"+
		`invalid route GET "/b" at %s: nil handler`+"\n"+
		`invalid route * "/c/*" at %s: chi: attempting to Mount() a nil handler on '/c'`, locs...))
	require.Equal(t, []string{"/value"}, patterns(r.Registrations()))
	requireServed(t, mux, "GET", "/value", "value")
	require.Equal(t, http.StatusNotFound, serve(mux, "GET", "/a").code)
}

func TestGoexitInMiddlewareIsNotAnError(t *testing.T) {
	t.Parallel()

	r := routerec.New(chi.NewRouter())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.With(func(http.Handler) http.Handler {
			runtime.Goexit()
			return nil
		}).Get("/g", text("g"))
	}()
	<-done
	require.NoError(t, r.Err())
	require.Empty(t, r.Registrations())
}
