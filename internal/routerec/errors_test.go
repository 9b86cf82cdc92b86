package routerec_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost/internal/routerec"
)

// Each case makes one bad call (after whatever setup it needs) and returns
// the locations that the expected error names, in order.
func TestChiPanicsBecomeErrors(t *testing.T) {
	t.Parallel()

	ok := text("ok")
	tests := []struct {
		name string
		call func(r chi.Router) []any
		want string
		// also lists the patterns recorded by the call or its setup.
		also []string
	}{{
		name: "no leading slash",
		call: func(r chi.Router) []any {
			loc := next()
			r.Get("notes", ok)
			return []any{loc}
		},
		want: `invalid route GET "notes" at %s: chi: routing pattern must begin with '/' in 'notes'`,
	}, {
		name: "empty pattern",
		call: func(r chi.Router) []any {
			loc := next()
			r.Handle("", ok)
			return []any{loc}
		},
		want: `invalid route * "" at %s: chi: routing pattern must begin with '/' in ''`,
	}, {
		name: "unclosed brace",
		call: func(r chi.Router) []any {
			loc := next()
			r.Post("/notes/{id", ok)
			return []any{loc}
		},
		want: `invalid route POST "/notes/{id" at %s: chi: route param closing delimiter '}' is missing`,
	}, {
		name: "duplicate param key",
		call: func(r chi.Router) []any {
			loc := next()
			r.Put("/a/{id}/b/{id}", ok)
			return []any{loc}
		},
		want: `invalid route PUT "/a/{id}/b/{id}" at %s: chi: routing pattern '/a/{id}/b/{id}' contains duplicate param key, 'id'`,
	}, {
		name: "wildcard not last",
		call: func(r chi.Router) []any {
			loc := next()
			r.Get("/files/*/raw", ok)
			return []any{loc}
		},
		want: `invalid route GET "/files/*/raw" at %s: chi: wildcard '*' must be the last value in a route. trim trailing text or use a '{param}' instead`,
	}, {
		name: "wildcard before param",
		call: func(r chi.Router) []any {
			loc := next()
			r.Get("/files/*/{id}", ok)
			return []any{loc}
		},
		want: `invalid route GET "/files/*/{id}" at %s: chi: wildcard '*' must be the last pattern in a route, otherwise use a '{param}'`,
	}, {
		name: "invalid regexp",
		call: func(r chi.Router) []any {
			loc := next()
			r.Get("/n/{id:[0-9}", ok)
			return []any{loc}
		},
		want: `invalid route GET "/n/{id:[0-9}" at %s: chi: invalid regexp pattern '^[0-9$' in route param`,
	}, {
		name: "unknown method",
		call: func(r chi.Router) []any {
			loc := next()
			r.Method("fetch", "/x", ok)
			return []any{loc}
		},
		want: `invalid route FETCH "/x" at %s: chi: 'fetch' http method is not supported.`,
	}, {
		name: "unknown method in Handle pattern",
		call: func(r chi.Router) []any {
			loc := next()
			r.HandleFunc("FETCH /x", ok)
			return []any{loc}
		},
		want: `invalid route FETCH "/x" at %s: chi: 'FETCH' http method is not supported.`,
	}, {
		name: "Use after routes",
		call: func(r chi.Router) []any {
			loc := next()
			r.Use(tag("late"))
			return []any{loc}
		},
		want: `invalid middleware (Use) at %s: chi: all middlewares must be defined before routes on a mux`,
	}, {
		name: "Mount on an existing path",
		call: func(r chi.Router) []any {
			first := next()
			r.Mount("/sub", chi.NewRouter())
			loc := next()
			r.Mount("/sub", chi.NewRouter())
			return []any{loc, first}
		},
		want: `invalid route * "/sub/*" at %s: chi: attempting to Mount() a handler on an existing path, '/sub'; first registered at %s`,
		also: []string{"/sub/*"},
	}, {
		name: "Mount on an existing wildcard",
		call: func(r chi.Router) []any {
			first := next()
			r.Get("/files/*", ok)
			loc := next()
			r.Mount("/files", chi.NewRouter())
			return []any{loc, first}
		},
		want: `invalid route * "/files/*" at %s: chi: attempting to Mount() a handler on an existing path, '/files'; first registered at %s`,
		also: []string{"/files/*"},
	}, {
		name: "Route twice",
		call: func(r chi.Router) []any {
			first := next()
			r.Route("/notes", func(r chi.Router) { r.Get("/", ok) })
			loc := next()
			r.Route("/notes", func(r chi.Router) { r.Post("/", ok) })
			return []any{first, loc, loc, first}
		},
		// The second sub-router's routes are reported too: they are lost.
		want: `route POST "/notes/" registered twice: first at %s (* "/notes/*"), again at %s` + "\n" +
			`invalid route * "/notes/*" at %s: chi: attempting to Mount() a handler on an existing path, '/notes'; first registered at %s`,
		also: []string{"/notes/", "/notes/*", "/notes/"},
	}, {
		name: "Mount nil handler",
		call: func(r chi.Router) []any {
			loc := next()
			r.Mount("/nil", nil)
			return []any{loc}
		},
		want: `invalid route * "/nil/*" at %s: chi: attempting to Mount() a nil handler on '/nil'`,
	}, {
		name: "Mount onto itself",
		call: func(r chi.Router) []any {
			loc := next()
			r.Mount("/self", r.With())
			return []any{loc}
		},
		want: `invalid route * "/self/*" at %s: chi: attempting to Mount() a router onto itself on '/self'`,
	}, {
		name: "Route nil fn",
		call: func(r chi.Router) []any {
			loc := next()
			r.Route("/nil", nil)
			return []any{loc}
		},
		want: `invalid route * "/nil/*" at %s: chi: attempting to Route() a nil subrouter on '/nil'`,
	}, {
		name: "nil handler",
		call: func(r chi.Router) []any {
			loc := next()
			r.Get("/nil", nil)
			return []any{loc}
		},
		want: `invalid route GET "/nil" at %s: nil handler`,
	}, {
		name: "nil middleware",
		call: func(r chi.Router) []any {
			loc := next()
			r.With(tag("a"), nil).Get("/with", ok)
			return []any{loc}
		},
		want: `invalid middleware (With) at %s: middleware 1 is nil`,
		also: []string{"/with"},
	}, {
		name: "inside Route",
		call: func(r chi.Router) []any {
			var loc string
			r.Route("/api", func(r chi.Router) {
				r.Get("/ok", ok)
				loc = next()
				r.Get("/{id", ok)
			})
			return []any{loc}
		},
		want: `invalid route GET "/api/{id" at %s: chi: route param closing delimiter '}' is missing`,
		also: []string{"/api/ok", "/api/*"},
	}, {
		name: "no leading slash inside Group",
		call: func(r chi.Router) []any {
			var loc string
			r.Group(func(r chi.Router) {
				loc = next()
				r.Delete("{id}", ok)
			})
			return []any{loc}
		},
		want: `invalid route DELETE "{id}" at %s: chi: routing pattern must begin with '/' in '{id}'`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			mux := chi.NewRouter()
			r := routerec.New(mux)
			r.Get("/before", text("before"))
			locs := tc.call(r)
			r.Get("/after", text("after"))

			require.EqualError(t, r.Err(), fmt.Sprintf(tc.want, locs...))
			require.Contains(t, r.Err().Error(), "routerec/errors_test.go:")
			want := append(append([]string{"/before"}, tc.also...), "/after")
			require.Equal(t, want, patterns(r.Registrations()))
			requireServed(t, mux, "GET", "/before", "before")
			requireServed(t, mux, "GET", "/after", "after")
		})
	}
}

func TestAllProblemsAreCollected(t *testing.T) {
	t.Parallel()

	mux := chi.NewRouter()
	r := routerec.New(mux)
	var locs []string
	locs = append(locs, next())
	r.Get("notes", text("bad"))
	r.Get("/notes", text("notes"))
	locs = append(locs, next())
	r.Get("/notes/{id", text("bad"))
	locs = append(locs, next())
	r.Get("/notes", text("again"))
	locs = append(locs, next())
	r.Get("/files/*/x", text("bad"))

	lines := strings.Split(r.Err().Error(), "\n")
	require.Len(t, lines, 4)
	for i, loc := range locs {
		require.Contains(t, lines[i], " at "+loc)
	}
	require.Contains(t, lines[0], `"notes"`)
	require.Contains(t, lines[1], `"/notes/{id"`)
	require.Contains(t, lines[2], `"/notes" registered twice`)
	require.Contains(t, lines[3], `"/files/*/x"`)
	require.Equal(t, []string{"/notes", "/notes"}, patterns(r.Registrations()))
	requireServed(t, mux, "GET", "/notes", "again") // chi's behavior is kept
}

// Each case registers the same route twice and returns the locations of
// both, in order.
func TestDuplicates(t *testing.T) {
	t.Parallel()

	ok := text("ok")
	tests := []struct {
		name string
		call func(r chi.Router) []any
		want string
	}{{
		name: "top level",
		call: func(r chi.Router) []any {
			a := next()
			r.Get("/notes/{id}", ok)
			b := next()
			r.Get("/notes/{id}", ok)
			return []any{a, b}
		},
		want: `route GET "/notes/{id}" registered twice: first at %s, again at %s`,
	}, {
		name: "param names differ",
		call: func(r chi.Router) []any {
			a := next()
			r.Get("/notes/{id}/tags/{tag}", ok)
			b := next()
			r.Get("/notes/{noteID}/tags/{name}", ok)
			return []any{a, b}
		},
		want: `route GET "/notes/{id}/tags/{tag}" registered twice: first at %s, again at %s (GET "/notes/{noteID}/tags/{name}")`,
	}, {
		name: "regexp anchors",
		call: func(r chi.Router) []any {
			a := next()
			r.Put("/n/{id:[0-9]+}", ok)
			b := next()
			r.Put("/n/{x:^[0-9]+$}", ok)
			return []any{a, b}
		},
		want: `route PUT "/n/{id:[0-9]+}" registered twice: first at %s, again at %s (PUT "/n/{x:^[0-9]+$}")`,
	}, {
		name: "Method and Get",
		call: func(r chi.Router) []any {
			a := next()
			r.Method("get", "/x", ok)
			b := next()
			r.Get("/x", ok)
			return []any{a, b}
		},
		want: `route GET "/x" registered twice: first at %s, again at %s`,
	}, {
		name: "Handle with method and MethodFunc",
		call: func(r chi.Router) []any {
			a := next()
			r.Handle("POST /x", ok)
			b := next()
			r.MethodFunc("POST", "/x", ok)
			return []any{a, b}
		},
		want: `route POST "/x" registered twice: first at %s, again at %s`,
	}, {
		name: "Handle then Get",
		call: func(r chi.Router) []any {
			a := next()
			r.Handle("/x", ok)
			b := next()
			r.Get("/x", ok)
			return []any{a, b}
		},
		want: `route GET "/x" registered twice: first at %s (* "/x"), again at %s`,
	}, {
		name: "Get then HandleFunc",
		call: func(r chi.Router) []any {
			a := next()
			r.Get("/x", ok)
			b := next()
			r.HandleFunc("/x", ok)
			return []any{a, b}
		},
		want: `route GET "/x" registered twice: first at %s, again at %s (* "/x")`,
	}, {
		name: "inside Route",
		call: func(r chi.Router) []any {
			var a, b string
			r.Route("/notes", func(r chi.Router) {
				a = next()
				r.Patch("/{id}", ok)
				b = next()
				r.Patch("/{noteID}", ok)
			})
			return []any{a, b}
		},
		want: `route PATCH "/notes/{id}" registered twice: first at %s, again at %s (PATCH "/notes/{noteID}")`,
	}, {
		name: "in two Routes on different prefixes that meet",
		call: func(r chi.Router) []any {
			var a, b string
			r.Route("/a", func(r chi.Router) {
				a = next()
				r.Get("/b/c", ok)
			})
			r.Route("/a/b", func(r chi.Router) {
				b = next()
				r.Get("/c", ok)
			})
			return []any{a, b}
		},
		want: `route GET "/a/b/c" registered twice: first at %s, again at %s`,
	}, {
		name: "across Group",
		call: func(r chi.Router) []any {
			a := next()
			r.Delete("/x", ok)
			var b string
			r.Group(func(r chi.Router) {
				r.Use(tag("g"))
				b = next()
				r.Delete("/x", ok)
			})
			return []any{a, b}
		},
		want: `route DELETE "/x" registered twice: first at %s, again at %s`,
	}, {
		name: "across two Groups in a Route",
		call: func(r chi.Router) []any {
			var a, b string
			r.Route("/api", func(r chi.Router) {
				r.Group(func(r chi.Router) {
					a = next()
					r.Get("/x", ok)
				})
				r.Group(func(r chi.Router) {
					b = next()
					r.Get("/x", ok)
				})
			})
			return []any{a, b}
		},
		want: `route GET "/api/x" registered twice: first at %s, again at %s`,
	}, {
		name: "With",
		call: func(r chi.Router) []any {
			a := next()
			r.With(tag("a")).Post("/x", ok)
			b := next()
			r.With(tag("b")).Post("/x", ok)
			return []any{a, b}
		},
		want: `route POST "/x" registered twice: first at %s, again at %s`,
	}, {
		name: "Get on a Route's root",
		call: func(r chi.Router) []any {
			a := next()
			r.Get("/notes", ok)
			b := next()
			r.Route("/notes", func(r chi.Router) { r.Get("/", ok) })
			return []any{a, b}
		},
		want: `route GET "/notes" registered twice: first at %s, again at %s (* "/notes/*")`,
	}, {
		name: "Get after a Mount",
		call: func(r chi.Router) []any {
			a := next()
			r.Mount("/files", http.FileServer(http.Dir(".")))
			b := next()
			r.Get("/files/", ok)
			return []any{a, b}
		},
		want: `route GET "/files/" registered twice: first at %s (* "/files/*"), again at %s`,
	}, {
		name: "parent route shadows a sub-router's",
		call: func(r chi.Router) []any {
			a := next()
			r.Get("/notes/{id}", ok)
			var b string
			r.Route("/notes", func(r chi.Router) {
				b = next()
				r.Get("/{noteID}", ok)
			})
			return []any{a, b}
		},
		want: `route GET "/notes/{id}" registered twice: first at %s, again at %s (GET "/notes/{noteID}")`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			r := routerec.New(chi.NewRouter())
			locs := tc.call(r)
			require.EqualError(t, r.Err(), fmt.Sprintf(tc.want, locs...))
		})
	}
}

func TestThirdRegistrationNamesTheFirst(t *testing.T) {
	t.Parallel()

	r := routerec.New(chi.NewRouter())
	a := next()
	r.Get("/x", text("1"))
	b := next()
	r.Get("/x", text("2"))
	c := next()
	r.Get("/x", text("3"))

	require.EqualError(t, r.Err(), fmt.Sprintf(
		"route GET %q registered twice: first at %s, again at %s\n"+
			"route GET %q registered twice: first at %s, again at %s",
		"/x", a, b, "/x", a, c))
}

func TestNotDuplicates(t *testing.T) {
	t.Parallel()

	ok := text("ok")
	tests := []struct {
		name string
		call func(r chi.Router)
	}{{
		name: "different methods",
		call: func(r chi.Router) {
			r.Get("/x", ok)
			r.Post("/x", ok)
			r.Head("/x", ok)
			r.Query("/x", ok)
		},
	}, {
		name: "param, regexp params and tails are different routes in chi",
		call: func(r chi.Router) {
			r.Get("/n/{id}", ok)
			r.Get("/n/{id:[0-9]+}", ok)
			r.Get("/n/{id:[a-z]+}", ok)
			r.Get("/n/{id:}", ok)
			r.Get("/n/{id}.json", ok)
			r.Get("/n/{id}/", ok)
			r.Get("/n/*", ok)
		},
	}, {
		name: "a Route's routes and its mount",
		call: func(r chi.Router) {
			r.Route("/notes", func(r chi.Router) {
				r.Get("/", ok)
				r.Handle("/*", ok)
				r.Route("/{id}", func(r chi.Router) {
					r.Get("/", ok)
					r.Mount("/raw", ok)
				})
			})
		},
	}, {
		name: "a Route ending in a slash",
		call: func(r chi.Router) {
			r.Get("/notes", ok)
			r.Route("/notes/", func(r chi.Router) { r.Get("/", ok) })
		},
	}, {
		name: "same relative patterns under different prefixes",
		call: func(r chi.Router) {
			r.Get("/{id}", ok)
			r.Route("/a", func(r chi.Router) { r.Get("/{id}", ok) })
			r.Route("/b", func(r chi.Router) {
				r.Group(func(r chi.Router) { r.Get("/{id}", ok) })
			})
		},
	}, {
		name: "root mount and routes",
		call: func(r chi.Router) {
			r.Get("/x", ok)
			r.Mount("/", chi.NewRouter())
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()

			r := routerec.New(chi.NewRouter())
			tc.call(r)
			require.NoError(t, r.Err())
			require.NotEmpty(t, r.Registrations())
		})
	}
}
