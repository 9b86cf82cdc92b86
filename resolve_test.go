package pluginhost_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// recorder collects hook calls from every plugin of a test, in call order.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(event string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, event)
}

// list returns the events, optionally only those with the given prefix
// ("init:"), with the prefix removed.
func (r *recorder) list(prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if rest, ok := strings.CutPrefix(e, prefix); ok {
			out = append(out, rest)
		}
	}
	return out
}

// count returns how often event was recorded.
func (r *recorder) count(event string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e == event {
			n++
		}
	}
	return n
}

// tracked returns a plugin that records "seed:<id>", "init:<id>",
// "routes:<id>" and "shutdown:<id>" as its hooks succeed, with extra TOML
// appended to its manifest. Hooks set on the result afterwards replace the
// recording ones.
func tracked(rec *recorder, id string, extra ...string) *fake {
	return &fake{
		manifest: manifest(id, "1.0.0", extra...),
		seed: func(context.Context, *pluginhost.Host) error {
			rec.add("seed:" + id)
			return nil
		},
		init: func(context.Context, *pluginhost.Host) error {
			rec.add("init:" + id)
			return nil
		},
		routes: func(r chi.Router, _ *pluginhost.Host) {
			rec.add("routes:" + id)
			r.Get("/ping", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(id)) })
		},
		shutdown: func(context.Context, *pluginhost.Host) error {
			rec.add("shutdown:" + id)
			return nil
		},
	}
}

// deps returns the [dependencies] table of a manifest: "b" or "b@^2.0"
// (the constraint defaults to "^1.0").
func deps(list ...string) string {
	var b strings.Builder
	b.WriteString("[dependencies]\n")
	for _, d := range list {
		id, constraint, ok := strings.Cut(d, "@")
		if !ok {
			constraint = "^1.0"
		}
		fmt.Fprintf(&b, "%s = %q\n", id, constraint)
	}
	return b.String()
}

// newManager returns a manager that has not started, shut down when the
// test ends.
func newManager(t *testing.T, cfg pluginhost.Config) *pluginhost.Manager {
	t.Helper()
	m, err := pluginhost.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	return m
}

type wantStatus struct {
	state  pluginhost.State
	reason []string // substrings of the reason
}

func TestResolve(t *testing.T) {
	t.Parallel()
	running := wantStatus{state: pluginhost.StateRunning}
	failed := func(reason ...string) wantStatus {
		return wantStatus{pluginhost.StateFailed, append([]string{"resolve: "}, reason...)}
	}
	disabled := func(reason ...string) wantStatus {
		return wantStatus{pluginhost.StateDisabled, append([]string{"resolve: "}, reason...)}
	}
	cases := []struct {
		name     string
		plugins  map[string]string // id → extra manifest TOML
		versions map[string]string // id → version, when not 1.0.0
		disabled []string
		want     map[string]wantStatus
	}{{
		name:    "host constraint unmet",
		plugins: map[string]string{"future": `host = "^2.0"`, "present": `host = "^1.0"`, "any": ""},
		want: map[string]wantStatus{
			"future":  failed(`"^2.0"`, pluginhost.APIVersion),
			"present": running,
			"any":     running,
		},
	}, {
		name:    "dependency missing",
		plugins: map[string]string{"app": deps("ghost"), "ok": ""},
		want:    map[string]wantStatus{"app": failed(`"ghost"`, "not registered"), "ok": running},
	}, {
		name:     "dependency version outside the constraint",
		plugins:  map[string]string{"base": "", "app": deps("base@^2.0"), "fine": deps("base@~1.2")},
		versions: map[string]string{"base": "1.2.7"},
		want: map[string]wantStatus{
			"base": running,
			"app":  failed("dependency base", "1.2.7", `"^2.0"`),
			"fine": running,
		},
	}, {
		name:    "two-cycle",
		plugins: map[string]string{"b": deps("a"), "a": deps("b"), "c": deps("a"), "d": ""},
		want: map[string]wantStatus{
			"a": failed("dependency cycle a -> b -> a"),
			"b": failed("dependency cycle a -> b -> a"),
			"c": failed("dependency a failed"),
			"d": running,
		},
	}, {
		name:    "three-cycle",
		plugins: map[string]string{"a": deps("b"), "b": deps("c"), "c": deps("a")},
		want: map[string]wantStatus{
			"a": failed("dependency cycle a -> b -> c -> a"),
			"b": failed("dependency cycle a -> b -> c -> a"),
			"c": failed("dependency cycle a -> b -> c -> a"),
		},
	}, {
		name:    "three-cycle the other way round",
		plugins: map[string]string{"a": deps("c"), "c": deps("b"), "b": deps("a"), "x": deps("b")},
		want: map[string]wantStatus{
			"a": failed("dependency cycle a -> c -> b -> a"),
			"b": failed("dependency cycle a -> c -> b -> a"),
			"c": failed("dependency cycle a -> c -> b -> a"),
			"x": failed("dependency b failed"),
		},
	}, {
		name:     "disabled plugin on a cycle stays disabled",
		plugins:  map[string]string{"a": deps("b"), "b": deps("a")},
		disabled: []string{"a"},
		want: map[string]wantStatus{
			"a": {pluginhost.StateDisabled, []string{"Config.Disabled"}},
			"b": failed("dependency cycle a -> b -> a"),
		},
	}, {
		name:    "dependency failed, transitively",
		plugins: map[string]string{"base": `host = "^2.0"`, "app": deps("base"), "top": deps("app"), "side": ""},
		want: map[string]wantStatus{
			"base": failed(`"^2.0"`),
			"app":  failed("dependency base failed"),
			"top":  failed("dependency app failed"),
			"side": running,
		},
	}, {
		name:     "dependency disabled, transitively",
		plugins:  map[string]string{"base": "", "app": deps("base"), "top": deps("app"), "side": ""},
		disabled: []string{"base"},
		want: map[string]wantStatus{
			"base": {pluginhost.StateDisabled, []string{"disabled by Config.Disabled"}},
			"app":  disabled("dependency base disabled"),
			"top":  disabled("dependency app disabled"),
			"side": running,
		},
	}, {
		name:     "failed and disabled dependencies",
		plugins:  map[string]string{"off": "", "bad": deps("ghost"), "app": deps("bad", "off")},
		disabled: []string{"off"},
		want: map[string]wantStatus{
			"off": {pluginhost.StateDisabled, []string{"disabled by Config.Disabled"}},
			"bad": failed(`"ghost"`),
			"app": failed("dependency bad failed"),
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			eachEnv(t, func(t *testing.T, e *env) {
				rec := &recorder{}
				var plugins []pluginhost.Plugin
				for id, extra := range tc.plugins {
					p := tracked(rec, id, extra)
					if v, ok := tc.versions[id]; ok {
						p.manifest = manifest(id, v, extra)
					}
					plugins = append(plugins, p)
				}
				cfg := e.config(plugins...)
				cfg.Disabled = tc.disabled
				m := e.start(cfg)

				var wantRunning []string
				for id, want := range tc.want {
					st := status(t, m, id)
					require.Equal(t, want.state, st.State, "plugin %s: %s", id, st.Reason)
					for _, s := range want.reason {
						require.Contains(t, st.Reason, s, "plugin %s", id)
					}
					if want.state == pluginhost.StateRunning {
						require.Empty(t, st.Reason)
						wantRunning = append(wantRunning, id)
					}
				}
				slices.Sort(wantRunning)
				require.Equal(t, wantRunning, rec.list("seed:"), "only running plugins' hooks run")
				require.Equal(t, wantRunning, rec.list("init:"))
			})
		})
	}
}

// The order is topological with ties broken by id, phase by phase, and
// Shutdown runs in exactly the reverse order.
func TestStartOrderAndShutdownReverse(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		// a needs c, d needs a and b: ties by id alone would give a b c d e.
		cfg := e.config(
			tracked(rec, "e"),
			tracked(rec, "d", deps("a", "b")),
			tracked(rec, "c"),
			tracked(rec, "b"),
			tracked(rec, "a", deps("c")),
		)
		m := e.start(cfg)
		want := []string{"b", "c", "a", "d", "e"}
		var phases []string
		for _, phase := range []string{"seed", "init", "routes"} {
			for _, id := range want {
				phases = append(phases, phase+":"+id)
			}
		}
		require.Equal(t, phases, rec.list(""), "every phase runs over all plugins in order")

		require.NoError(t, m.Shutdown(t.Context()))
		require.Equal(t, []string{"e", "d", "a", "c", "b"}, rec.list("shutdown:"))
	})
}

// failingIn returns a plugin "req" that fails in the given phase (the
// settings failure is an encrypted default without Config.SecretKey).
func failingIn(rec *recorder, phase string) *fake {
	p := tracked(rec, "req")
	switch phase {
	case pluginhost.PhaseResolve:
		p.manifest = manifest("req", "1.0.0", `host = "^2.0"`)
	case pluginhost.PhaseSchema:
		p.tables = []pluginhost.Table{{Name: "Not A Name", Columns: []pluginhost.Column{{Name: "id"}}}}
	case pluginhost.PhaseSettings:
		p.manifest = manifest("req", "1.0.0", "[[settings]]\nkey = \"req.token\"\ntype = \"string\"\ndefault = \"x\"\nencrypted = true")
	case pluginhost.PhaseSeed:
		p.seed = func(context.Context, *pluginhost.Host) error { return fmt.Errorf("seed went wrong") }
	case pluginhost.PhaseInit:
		p.init = func(context.Context, *pluginhost.Host) error { return fmt.Errorf("init went wrong") }
	case pluginhost.PhaseRoutes:
		p.routes = func(r chi.Router, _ *pluginhost.Host) {
			h := func(http.ResponseWriter, *http.Request) {}
			r.Get("/twice", h)
			r.Get("/twice", h)
		}
	}
	return p
}

var failPhases = []string{
	pluginhost.PhaseResolve, pluginhost.PhaseSchema, pluginhost.PhaseSettings,
	pluginhost.PhaseSeed, pluginhost.PhaseInit, pluginhost.PhaseRoutes,
}

// requireBalanced checks that every plugin whose Init ran had its Shutdown
// called exactly once.
func requireBalanced(t *testing.T, rec *recorder, ids ...string) {
	t.Helper()
	for _, id := range ids {
		require.Equal(t, rec.count("init:"+id), rec.count("shutdown:"+id), "plugin %s: Init and Shutdown calls must pair up; events %v", id, rec.list(""))
	}
}

func TestRequiredPluginFailureFailsStart(t *testing.T) {
	t.Parallel()
	for _, phase := range failPhases {
		for _, how := range []string{"Required", "RequireAll"} {
			t.Run(phase+"/"+how, func(t *testing.T) {
				t.Parallel()
				eachEnv(t, func(t *testing.T, e *env) {
					rec := &recorder{}
					// "aaa" comes before "req" in every phase, "zzz" after it.
					cfg := e.config(tracked(rec, "aaa"), failingIn(rec, phase), tracked(rec, "zzz"))
					if how == "Required" {
						cfg.Required = []string{"req"}
					} else {
						cfg.RequireAll = true
					}
					m := newManager(t, cfg)
					err := m.Start(t.Context())
					require.ErrorIs(t, err, pluginhost.ErrRequired)
					require.ErrorContains(t, err, `plugin "req"`)
					require.ErrorContains(t, err, phase+": ")
					require.NotContains(t, err.Error(), `"aaa"`)
					require.NotContains(t, err.Error(), `"zzz"`)
					requireBalanced(t, rec, "aaa", "req", "zzz")

					// Nothing is served, and Shutdown does not call the hooks again.
					before := slices.Clone(rec.list(""))
					require.Equal(t, http.StatusServiceUnavailable, serve(t, m.Handler(), "GET", "/api/plugin/aaa/ping", "").Code)
					require.NoError(t, m.Shutdown(t.Context()))
					require.Equal(t, before, rec.list(""))
					require.ErrorIs(t, m.Start(t.Context()), pluginhost.ErrClosed)
				})
			})
		}
	}
}

func TestNonRequiredFailureLeavesOthersRunning(t *testing.T) {
	t.Parallel()
	for _, phase := range failPhases {
		t.Run(phase, func(t *testing.T) {
			t.Parallel()
			eachEnv(t, func(t *testing.T, e *env) {
				rec := &recorder{}
				cfg := e.config(tracked(rec, "aaa"), failingIn(rec, phase), tracked(rec, "zzz"))
				cfg.Required = []string{"aaa", "zzz"}
				m := e.start(cfg)
				st := status(t, m, "req")
				require.Equal(t, pluginhost.StateFailed, st.State)
				require.True(t, strings.HasPrefix(st.Reason, phase+": "), st.Reason)
				for _, id := range []string{"aaa", "zzz"} {
					require.Equal(t, pluginhost.StateRunning, status(t, m, id).State)
					require.Equal(t, http.StatusOK, serve(t, m.Handler(), "GET", "/api/plugin/"+id+"/ping", "").Code)
				}
				resp := serve(t, m.Handler(), "GET", "/api/plugin/req/ping", "")
				require.Equal(t, http.StatusServiceUnavailable, resp.Code, "a failed plugin has nothing mounted")
				require.NoError(t, m.Shutdown(t.Context()))
				requireBalanced(t, rec, "aaa", "req", "zzz")
			})
		})
	}
}

func TestRequiredPluginNotRegisteredOrDisabled(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		cfg := e.config(tracked(rec, "base"), tracked(rec, "app", deps("base")))
		cfg.Disabled = []string{"base"}
		cfg.Required = []string{"ghost", "app"}
		err := newManager(t, cfg).Start(t.Context())
		require.ErrorIs(t, err, pluginhost.ErrRequired)
		require.ErrorContains(t, err, `plugin "ghost" is not registered`)
		require.ErrorContains(t, err, `plugin "app" is disabled`)
		require.ErrorContains(t, err, "dependency base disabled")
		require.Empty(t, rec.list(""), "no plugin code runs when resolve fails a required plugin")

		// RequireAll alone does not require disabled plugins.
		cfg = e.config(tracked(rec, "base"), tracked(rec, "app", deps("base")))
		cfg.Disabled = []string{"base"}
		cfg.RequireAll = true
		m := e.start(cfg)
		require.Equal(t, pluginhost.StateDisabled, status(t, m, "app").State)
	})
}

// A plugin named in Required must run even when RequireAll is on and an
// operator disabled it.
func TestRequiredOutranksRequireAllForOperatorDisabled(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		m := e.start(e.config(&fake{manifest: manifest("ops", "1.0.0")}))
		require.NoError(t, m.Shutdown(t.Context()))
		_, err := e.db.ExecContext(t.Context(), `INSERT INTO pluginhost_plugins (id, enabled) VALUES ('ops', false)`)
		require.NoError(t, err)

		cfg := e.config(&fake{manifest: manifest("ops", "1.0.0")})
		cfg.RequireAll = true
		m = e.start(cfg)
		require.Equal(t, pluginhost.StateDisabled, status(t, m, "ops").State)

		cfg = e.config(&fake{manifest: manifest("ops", "1.0.0")})
		cfg.RequireAll = true
		cfg.Required = []string{"ops"}
		err = newManager(t, cfg).Start(t.Context())
		require.ErrorIs(t, err, pluginhost.ErrRequired)
		require.ErrorContains(t, err, `plugin "ops" is disabled: disabled by an operator`)
	})
}
