package pluginhost_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

func jsonBody(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var body map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
	return body
}

func okRoute(path, text string) func(r chi.Router, h *pluginhost.Host) {
	return func(r chi.Router, h *pluginhost.Host) {
		r.Get(path, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(text)) })
	}
}

func TestUnknownPluginAndPathAre404JSON(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		m := e.start(e.config(&fake{manifest: manifest("known", "1.0.0"), routes: okRoute("/x", "x")}))

		// It says the id is not registered, and lists nothing else.
		rec := serve(t, m.Handler(), "GET", "/api/plugin/ghost/x", "")
		require.Equal(t, http.StatusNotFound, rec.Code)
		require.Equal(t, map[string]any{"error": "plugin not registered", "plugin": "ghost"}, jsonBody(t, rec))
		require.NotContains(t, rec.Body.String(), "known")

		rec = serve(t, m.Handler(), "GET", "/api/plugin/", "")
		require.Equal(t, http.StatusNotFound, rec.Code)
		require.Equal(t, map[string]any{"error": "not found"}, jsonBody(t, rec))

		rec = serve(t, m.Handler(), "GET", "/elsewhere", "")
		require.Equal(t, http.StatusNotFound, rec.Code)
		require.Equal(t, "not found", jsonBody(t, rec)["error"])

		rec = serve(t, m.Handler(), "GET", "/api/plugin/known/nope", "")
		require.Equal(t, http.StatusNotFound, rec.Code)
		require.Equal(t, "not found", jsonBody(t, rec)["error"], "a plugin's unknown path is JSON too")

		rec = serve(t, m.Handler(), "POST", "/api/plugin/known/x", "")
		require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
		require.Equal(t, "method not allowed", jsonBody(t, rec)["error"])
	})
}

func TestPluginWithoutRoutesAnswers404JSON(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		m := e.start(e.config(&fake{manifest: manifest("quiet", "1.0.0")}))
		rec := serve(t, m.Handler(), "GET", "/api/plugin/quiet/anything", "")
		require.Equal(t, http.StatusNotFound, rec.Code)
		require.Equal(t, "not found", jsonBody(t, rec)["error"])
	})
}

func TestFailedPluginHasNothingMounted(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		bad := &fake{
			manifest: manifest("bad", "1.0.0"),
			routes:   okRoute("/x", "x"),
			init:     func(ctx contextT, h *pluginhost.Host) error { return errTest },
		}
		good := &fake{manifest: manifest("good", "1.0.0"), routes: okRoute("/x", "good")}
		m := e.start(e.config(bad, good))

		require.Equal(t, pluginhost.StateFailed, status(t, m, "bad").State)
		rec := serve(t, m.Handler(), "GET", "/api/plugin/bad/x", "")
		require.Equal(t, http.StatusServiceUnavailable, rec.Code)
		body := jsonBody(t, rec)
		require.Equal(t, "bad", body["plugin"])
		require.Equal(t, "failed", body["state"])
		require.Contains(t, body["reason"], "init: test failure")
		for _, r := range m.Routes() {
			require.NotEqual(t, "bad", r.Plugin, "a failed plugin's routes must not be listed")
		}
		require.Empty(t, status(t, m, "bad").Routes)

		rec = serve(t, m.Handler(), "GET", "/api/plugin/good/x", "")
		require.Equal(t, "good", rec.Body.String())
	})
}

func TestHandlerPanicIsRecovered(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		m := e.start(e.config(&fake{
			manifest: manifest("boom", "1.0.0"),
			routes: func(r chi.Router, h *pluginhost.Host) {
				r.Get("/panic", func(w http.ResponseWriter, r *http.Request) { panic("kaboom") })
				r.Get("/fine", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("fine")) })
			},
		}))
		rec := serve(t, m.Handler(), "GET", "/api/plugin/boom/panic", "")
		require.Equal(t, http.StatusInternalServerError, rec.Code)
		require.Equal(t, map[string]any{"error": "internal error", "plugin": "boom"}, jsonBody(t, rec))
		logs := e.logs.String()
		require.Contains(t, logs, `msg="plugin panicked" plugin=boom where="handler GET /api/plugin/boom/panic"`)
		require.Contains(t, logs, "plugin=boom")
		require.Contains(t, logs, "kaboom")
		require.Contains(t, logs, "routes_test.go", "the stack is logged")

		rec = serve(t, m.Handler(), "GET", "/api/plugin/boom/fine", "")
		require.Equal(t, "fine", rec.Body.String(), "the plugin keeps serving after a panic")
	})
}

func TestAbortHandlerPanicPropagates(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		m := e.start(e.config(&fake{
			manifest: manifest("abort", "1.0.0"),
			routes: func(r chi.Router, h *pluginhost.Host) {
				r.Get("/abort", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
			},
		}))
		require.PanicsWithValue(t, http.ErrAbortHandler, func() { serve(t, m.Handler(), "GET", "/api/plugin/abort/abort", "") })
	})
}

func TestRequestContextCarriesPluginIDAndLogger(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		m := e.start(e.config(&fake{
			manifest: manifest("ctx-plugin", "1.0.0"),
			routes: func(r chi.Router, h *pluginhost.Host) {
				r.Get("/items/{id}", func(w http.ResponseWriter, r *http.Request) {
					pluginhost.Logger(r.Context()).Info("handling", "item", chi.URLParam(r, "id"))
					_, _ = w.Write([]byte(pluginhost.PluginID(r.Context()) + ":" + chi.URLParam(r, "id")))
				})
			},
		}))
		rec := serve(t, m.Handler(), "GET", "/api/plugin/ctx-plugin/items/42", "")
		require.Equal(t, "ctx-plugin:42", rec.Body.String())
		require.Contains(t, e.logs.String(), `msg=handling plugin=ctx-plugin item=42`)

		require.Equal(t, "", pluginhost.PluginID(t.Context()))
		require.NotNil(t, pluginhost.Logger(t.Context()))
	})
}

func TestHostMiddlewareWrapsEveryPluginRoute(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		cfg := e.config(
			&fake{manifest: manifest("one", "1.0.0"), routes: okRoute("/x", "one")},
			&fake{manifest: manifest("two", "1.0.0"), routes: okRoute("/y", "two")},
		)
		var seen []string
		cfg.Middleware = []func(http.Handler) http.Handler{func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = append(seen, pluginhost.PluginID(r.Context()))
				if r.Header.Get("Authorization") != "Bearer ok" {
					http.Error(w, "no", http.StatusUnauthorized)
					return
				}
				next.ServeHTTP(w, r)
			})
		}}
		m := e.start(cfg)

		require.Equal(t, http.StatusUnauthorized, serve(t, m.Handler(), "GET", "/api/plugin/one/x", "").Code)
		require.Equal(t, http.StatusUnauthorized, serve(t, m.Handler(), "GET", "/api/plugin/two/y", "").Code)
		req := httptest.NewRequest("GET", "/api/plugin/two/y", nil)
		req.Header.Set("Authorization", "Bearer ok")
		rec := httptest.NewRecorder()
		m.Handler().ServeHTTP(rec, req)
		require.Equal(t, "two", rec.Body.String())
		require.Equal(t, []string{"one", "two", "two"}, seen, "middleware sees the plugin id")
	})
}

func TestInvalidAndDuplicateRoutesFailOnlyThatPlugin(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		invalid := &fake{manifest: manifest("invalid", "1.0.0"), routes: func(r chi.Router, h *pluginhost.Host) {
			r.Get("no-slash", func(http.ResponseWriter, *http.Request) {})
		}}
		dup := &fake{manifest: manifest("dup", "1.0.0"), routes: func(r chi.Router, h *pluginhost.Host) {
			r.Get("/notes/{id}", func(http.ResponseWriter, *http.Request) {})
			r.Get("/notes/{noteID}", func(http.ResponseWriter, *http.Request) {})
		}}
		good := &fake{manifest: manifest("good", "1.0.0"), routes: okRoute("/x", "good")}
		m := e.start(e.config(invalid, dup, good))

		st := status(t, m, "invalid")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, `routes: invalid route GET "no-slash" at `)
		require.Contains(t, st.Reason, "routes_test.go:")

		st = status(t, m, "dup")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, `route GET "/notes/{id}" registered twice: first at `)
		require.Equal(t, 2, strings.Count(st.Reason, "routes_test.go:"), "both registrations are named: %s", st.Reason)

		require.Equal(t, "good", serve(t, m.Handler(), "GET", "/api/plugin/good/x", "").Body.String())
	})
}

func TestRoutesListsMountedRoutes(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		m := e.start(e.config(
			&fake{manifest: manifest("b-plugin", "1.0.0"), routes: func(r chi.Router, h *pluginhost.Host) {
				r.Get("/items", func(http.ResponseWriter, *http.Request) {})
				r.Route("/items/{id}", func(r chi.Router) {
					r.Get("/", func(http.ResponseWriter, *http.Request) {})
					r.Delete("/", func(http.ResponseWriter, *http.Request) {})
				})
			}},
			&fake{manifest: manifest("a-plugin", "1.0.0"), routes: okRoute("/ping", "pong")},
		))
		require.Equal(t, []pluginhost.RouteInfo{
			{Method: "GET", Pattern: "/api/plugin/a-plugin/ping", Plugin: "a-plugin"},
			{Method: "GET", Pattern: "/api/plugin/b-plugin/items", Plugin: "b-plugin"},
			{Method: "DELETE", Pattern: "/api/plugin/b-plugin/items/{id}/", Plugin: "b-plugin"},
			{Method: "GET", Pattern: "/api/plugin/b-plugin/items/{id}/", Plugin: "b-plugin"},
		}, m.Routes())
		require.Equal(t, m.Routes()[1:], status(t, m, "b-plugin").Routes)
	})
}

func TestHandlerMountsOnChiAndServeMux(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		m := e.start(e.config(&fake{manifest: manifest("mounted", "1.0.0"), routes: okRoute("/items/{id}", "item")}))

		r := chi.NewRouter()
		r.Get("/api/health", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("host")) })
		r.Mount("/api/plugin", m.Handler())
		require.Equal(t, "item", serve(t, r, "GET", "/api/plugin/mounted/items/7", "").Body.String())
		require.Equal(t, "host", serve(t, r, "GET", "/api/health", "").Body.String())

		mux := http.NewServeMux()
		mux.Handle("/api/plugin/", m.Handler())
		require.Equal(t, "item", serve(t, mux, "GET", "/api/plugin/mounted/items/7", "").Body.String())
	})
}
