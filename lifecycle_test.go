package pluginhost_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

func TestStartServesRunningPlugin(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := &fake{
			manifest: manifest("hello", "1.0.0"),
			tables:   []pluginhost.Table{{Name: "items", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "title", NotNull: true}}}},
			routes: func(r chi.Router, h *pluginhost.Host) {
				r.Get("/hi", func(w http.ResponseWriter, r *http.Request) {
					_, _ = w.Write([]byte("hi from " + pluginhost.PluginID(r.Context())))
				})
			},
		}
		m := e.start(e.config(p))
		st := status(t, m, "hello")
		require.Equal(t, pluginhost.StateRunning, st.State, st.Reason)
		rec := serve(t, m.Handler(), "GET", "/api/plugin/hello/hi", "")
		require.Equal(t, 200, rec.Code)
		require.Equal(t, "hi from hello", rec.Body.String())
		_, err := e.db.ExecContext(context.Background(), `INSERT INTO hello__items (title) VALUES ('x')`)
		require.NoError(t, err)
	})
}

// TestHookPanicIsPluginFailure: a panic in any hook is recovered, becomes
// that plugin's failure (and its dependents'), and is logged with the plugin
// id and the stack; the host and the other plugins go on.
func TestHookPanicIsPluginFailure(t *testing.T) {
	t.Parallel()
	cases := []struct {
		phase string
		frame string // a stack frame the log must show
		arm   func(p *fake) pluginhost.Plugin
	}{
		{pluginhost.PhaseSchema, "tablesPanic.Tables", func(p *fake) pluginhost.Plugin {
			return tablesPanic{p}
		}},
		{pluginhost.PhaseSeed, "(*fake).Seed", func(p *fake) pluginhost.Plugin {
			p.seed = func(context.Context, *pluginhost.Host) error { panic("kaboom in seed") }
			return p
		}},
		{pluginhost.PhaseInit, "(*fake).Init", func(p *fake) pluginhost.Plugin {
			p.init = func(context.Context, *pluginhost.Host) error { panic("kaboom in init") }
			return p
		}},
		{pluginhost.PhaseRoutes, "(*fake).RegisterRoutes", func(p *fake) pluginhost.Plugin {
			p.routes = func(chi.Router, *pluginhost.Host) { panic("kaboom in routes") }
			return p
		}},
	}
	for _, tc := range cases {
		t.Run(tc.phase, func(t *testing.T) {
			t.Parallel()
			eachEnv(t, func(t *testing.T, e *env) {
				rec := &recorder{}
				boom := tc.arm(tracked(rec, "boom"))
				m := e.start(e.config(tracked(rec, "calm"), boom, tracked(rec, "dep", deps("boom"))))

				st := status(t, m, "boom")
				require.Equal(t, pluginhost.StateFailed, st.State)
				require.Contains(t, st.Reason, tc.phase+": ")
				require.Contains(t, st.Reason, "panicked")
				require.Contains(t, st.Reason, "kaboom")
				dep := status(t, m, "dep")
				require.Equal(t, pluginhost.StateFailed, dep.State)
				require.Contains(t, dep.Reason, "dependency boom failed")
				require.Equal(t, pluginhost.StateRunning, status(t, m, "calm").State)
				require.Equal(t, http.StatusOK, serve(t, m.Handler(), "GET", "/api/plugin/calm/ping", "").Code)
				require.Equal(t, http.StatusServiceUnavailable, serve(t, m.Handler(), "GET", "/api/plugin/boom/ping", "").Code)
				requirePanicLogged(t, e.logs.String(), "boom", tc.frame)
			})
		})
	}
}

// tablesPanic is a plugin whose Tables method panics.
type tablesPanic struct{ *fake }

func (tablesPanic) Tables() []pluginhost.Table { panic("kaboom in tables") }

// requirePanicLogged checks that a "plugin panicked" log line names the
// plugin and carries a stack through frame.
func requirePanicLogged(t *testing.T, logs, id, frame string) {
	t.Helper()
	for line := range strings.Lines(logs) {
		if strings.Contains(line, `msg="plugin panicked"`) {
			require.Contains(t, line, "plugin="+id)
			require.Contains(t, line, "stack=")
			require.Contains(t, line, "goroutine ")
			require.Contains(t, line, frame)
			return
		}
	}
	t.Fatalf("no panic logged:\n%s", logs)
}

// TestHookErrorFailsPluginAndDependents: an error from Seed or Init fails
// that plugin and everything that depends on it, directly or not; the
// dependents' later hooks never run.
func TestHookErrorFailsPluginAndDependents(t *testing.T) {
	t.Parallel()
	for _, phase := range []string{pluginhost.PhaseSeed, pluginhost.PhaseInit} {
		t.Run(phase, func(t *testing.T) {
			t.Parallel()
			eachEnv(t, func(t *testing.T, e *env) {
				rec := &recorder{}
				base := tracked(rec, "base")
				fail := func(context.Context, *pluginhost.Host) error { return errors.New("base is broken") }
				if phase == pluginhost.PhaseSeed {
					base.seed = fail
				} else {
					base.init = fail
				}
				m := e.start(e.config(base, tracked(rec, "mid", deps("base")), tracked(rec, "top", deps("mid")), tracked(rec, "side")))

				require.Equal(t, pluginhost.StateFailed, status(t, m, "base").State)
				require.Equal(t, phase+": base is broken", status(t, m, "base").Reason)
				for id, reason := range map[string]string{"mid": "dependency base failed", "top": "dependency mid failed"} {
					st := status(t, m, id)
					require.Equal(t, pluginhost.StateFailed, st.State, id)
					require.Contains(t, st.Reason, reason, id)
				}
				require.Equal(t, pluginhost.StateRunning, status(t, m, "side").State)
				require.Equal(t, []string{"side"}, rec.list("init:"))
				require.Equal(t, []string{"side"}, rec.list("routes:"))
				require.NoError(t, m.Shutdown(t.Context()))
				require.Equal(t, []string{"side"}, rec.list("shutdown:"), "only initialized plugins are shut down")
			})
		})
	}
}

func TestStartTwice(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		m := e.start(e.config(tracked(rec, "once")))
		require.ErrorIs(t, m.Start(t.Context()), pluginhost.ErrAlreadyStarted)
		require.Equal(t, []string{"seed:once", "init:once", "routes:once"}, rec.list(""))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "once").State)
	})
}

func TestStartConcurrentlyBootsOnce(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		m := newManager(t, e.config(tracked(rec, "once")))
		errs := make(chan error, 4)
		var wg sync.WaitGroup
		for range cap(errs) {
			wg.Go(func() { errs <- m.Start(t.Context()) })
		}
		wg.Wait()
		close(errs)
		var ok int
		for err := range errs {
			if err == nil {
				ok++
				continue
			}
			require.ErrorIs(t, err, pluginhost.ErrAlreadyStarted)
		}
		require.Equal(t, 1, ok)
		require.Equal(t, 1, rec.count("init:once"))
	})
}

func TestStatusReportsEachPlugin(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		rec := &recorder{}
		zeta := tracked(rec, "zeta", "frobnicate = true")
		zeta.routes = func(r chi.Router, _ *pluginhost.Host) {
			h := func(http.ResponseWriter, *http.Request) {}
			r.Get("/items", h)
			r.Route("/items/{id}", func(r chi.Router) {
				r.Post("/", h)
				r.Delete("/", h)
			})
		}
		mid := tracked(rec, "mid")
		mid.init = func(context.Context, *pluginhost.Host) error { return errors.New("nope") }
		cfg := e.config(zeta, mid, tracked(rec, "alpha"))
		cfg.Disabled = []string{"alpha"}
		m := e.start(cfg)

		all := m.Status()
		var ids []string
		for _, st := range all {
			ids = append(ids, st.ID)
		}
		require.Equal(t, []string{"alpha", "mid", "zeta"}, ids)

		st := status(t, m, "zeta")
		require.Equal(t, "zeta", st.ID)
		require.Equal(t, "Plugin zeta", st.Name)
		require.Equal(t, "1.0.0", st.Version)
		require.Equal(t, pluginhost.StateRunning, st.State)
		require.Empty(t, st.Reason)
		require.Len(t, st.Warnings, 1)
		require.Contains(t, st.Warnings[0], "frobnicate")
		require.Contains(t, st.Warnings[0], "line 4")
		require.ElementsMatch(t, []pluginhost.RouteInfo{
			{Method: "GET", Pattern: "/api/plugin/zeta/items", Plugin: "zeta"},
			{Method: "POST", Pattern: "/api/plugin/zeta/items/{id}/", Plugin: "zeta"},
			{Method: "DELETE", Pattern: "/api/plugin/zeta/items/{id}/", Plugin: "zeta"},
		}, st.Routes)
		require.ElementsMatch(t, st.Routes, m.Routes())
		require.Equal(t, []string{"resolve", "schema", "settings", "seed", "init", "routes"}, phases(st))

		st = status(t, m, "mid")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Equal(t, "init: nope", st.Reason)
		require.Empty(t, st.Routes)
		require.Equal(t, []string{"resolve", "schema", "settings", "seed", "init"}, phases(st))

		st = status(t, m, "alpha")
		require.Equal(t, pluginhost.StateDisabled, st.State)
		require.Equal(t, "Plugin alpha", st.Name)
		require.Contains(t, st.Reason, "Config.Disabled")
		require.Equal(t, []string{"resolve"}, phases(st))

		require.NoError(t, m.Shutdown(t.Context()))
		st = status(t, m, "zeta")
		require.Equal(t, pluginhost.StateStopped, st.State)
		require.Empty(t, st.Routes)
		require.Equal(t, "shutdown", phases(st)[len(phases(st))-1])
	})
}

// phases lists the phases of a status's timings, checking each duration.
func phases(st pluginhost.PluginStatus) []string {
	var out []string
	for _, tm := range st.Timings {
		if tm.Duration < 0 {
			panic(fmt.Sprintf("negative duration in %+v", tm))
		}
		out = append(out, tm.Phase)
	}
	return out
}

// nullDriver is a database/sql driver pluginhost cannot tell the dialect of.
type nullDriver struct{}

func (nullDriver) Open(string) (driver.Conn, error) { return nil, errors.New("no connections") }

var registerNullDriver = sync.OnceFunc(func() { sql.Register("pluginhost-test-null", nullDriver{}) })

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	registerNullDriver()
	db := testdb.OpenSQLite(t)
	unknownDB, err := sql.Open("pluginhost-test-null", "")
	require.NoError(t, err)
	t.Cleanup(func() { _ = unknownDB.Close() })
	pass := func(http.Handler) http.Handler { return nil }
	group := pluginhost.SettingGroup{ID: "general", Name: "General"}
	str := func(key string) pluginhost.Setting { return pluginhost.Setting{Key: key, Type: pluginhost.StringType} }

	cases := []struct {
		name  string
		edit  func(c *pluginhost.Config)
		wants []string // substrings, each naming the field
	}{
		{"DB nil", func(c *pluginhost.Config) { c.DB = nil }, []string{"Config.DB"}},
		{"Dialect unknown", func(c *pluginhost.Config) { c.Dialect = "mysql" }, []string{"Config.Dialect", `"mysql"`}},
		{"Dialect undetectable", func(c *pluginhost.Config) { c.DB = unknownDB }, []string{"Config.Dialect", "nullDriver"}},
		{"SecretKey short", func(c *pluginhost.Config) { c.SecretKey = make([]byte, 16) }, []string{"Config.SecretKey"}},
		{"SecretKey long", func(c *pluginhost.Config) { c.SecretKey = make([]byte, 33) }, []string{"Config.SecretKey"}},
		{"SecretKey empty", func(c *pluginhost.Config) { c.SecretKey = []byte{} }, []string{"Config.SecretKey"}},
		{"Middleware nil", func(c *pluginhost.Config) { c.Middleware = []func(http.Handler) http.Handler{pass, nil} }, []string{"Config.Middleware[1]"}},
		{"SandboxRolePrefix not a role name", func(c *pluginhost.Config) { c.SandboxRolePrefix = "My-App_" }, []string{"Config.SandboxRolePrefix", `"My-App_"`, "lowercase"}},
		{"SandboxRolePrefix too long", func(c *pluginhost.Config) { c.SandboxRolePrefix = strings.Repeat("a", 24) }, []string{"Config.SandboxRolePrefix", "at most 23 bytes"}},
		{"PluginDB on SQLite", func(c *pluginhost.Config) {
			c.PluginDB = func(string, string) (*sql.DB, error) { return nil, nil }
		}, []string{"Config.PluginDB", "SQLite"}},
		{"Required and Disabled", func(c *pluginhost.Config) {
			c.Required, c.Disabled = []string{"a", "b"}, []string{"b"}
		}, []string{"Config.Required", `"b"`, "Config.Disabled"}},
		{"group id invalid", func(c *pluginhost.Config) {
			c.CoreSettingGroups = []pluginhost.SettingGroup{group, {ID: "Bad Group", Name: "x"}}
		}, []string{"Config.CoreSettingGroups[1]", `"Bad Group"`}},
		{"group without name", func(c *pluginhost.Config) {
			c.CoreSettingGroups = []pluginhost.SettingGroup{{ID: "nameless"}}
		}, []string{"Config.CoreSettingGroups[0]", "Name"}},
		{"group twice", func(c *pluginhost.Config) {
			c.CoreSettingGroups = []pluginhost.SettingGroup{group, group}
		}, []string{"Config.CoreSettingGroups[1]", `"general"`, "twice"}},
		{"setting key invalid", func(c *pluginhost.Config) {
			c.CoreSettings = []pluginhost.Setting{str("app name")}
		}, []string{"Config.CoreSettings[0]", `"app name"`}},
		{"setting type unknown", func(c *pluginhost.Config) {
			c.CoreSettings = []pluginhost.Setting{{Key: "app.size", Type: "integer"}}
		}, []string{"Config.CoreSettings[0]", `"integer"`}},
		{"setting default of the wrong type", func(c *pluginhost.Config) {
			c.CoreSettings = []pluginhost.Setting{{Key: "app.size", Type: pluginhost.NumberType, Default: "big"}}
		}, []string{"Config.CoreSettings[0]", "Default"}},
		{"setting twice", func(c *pluginhost.Config) {
			c.CoreSettings = []pluginhost.Setting{str("app.name"), str("app.name")}
		}, []string{"Config.CoreSettings[1]", `"app.name"`, "twice"}},
		{"setting in an unknown group", func(c *pluginhost.Config) {
			s := str("app.name")
			s.Group = "nowhere"
			c.CoreSettings = []pluginhost.Setting{s}
		}, []string{"Config.CoreSettings[0]", `"nowhere"`, "Config.CoreSettingGroups"}},
		{"encrypted default without key", func(c *pluginhost.Config) {
			s := str("app.token")
			s.Encrypted, s.Default = true, "hunter2"
			c.CoreSettings = []pluginhost.Setting{s}
		}, []string{"Config.CoreSettings[0]", "Config.SecretKey"}},
		{"encrypted number", func(c *pluginhost.Config) {
			c.CoreSettings = []pluginhost.Setting{{Key: "app.pin", Type: pluginhost.NumberType, Encrypted: true}}
		}, []string{"Config.CoreSettings[0]", "encrypted"}},
		{"several at once", func(c *pluginhost.Config) {
			c.DB = nil
			c.Dialect = "oracle"
			c.SecretKey = []byte("short")
			c.Middleware = []func(http.Handler) http.Handler{nil}
			c.CoreSettingGroups = []pluginhost.SettingGroup{{ID: "9"}}
			c.CoreSettings = []pluginhost.Setting{{Key: "x", Type: "list"}}
			c.Required, c.Disabled = []string{"p"}, []string{"p"}
		}, []string{
			"Config.DB", "Config.Dialect", "Config.SecretKey", "Config.Middleware[0]",
			"Config.CoreSettingGroups[0]", "Config.CoreSettings[0]", "Config.Required",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := pluginhost.Config{DB: db, Registry: pluginhost.NewRegistry(), Logger: discardLogger()}
			tc.edit(&cfg)
			m, err := pluginhost.New(cfg)
			require.Error(t, err)
			require.Nil(t, m)
			for _, want := range tc.wants {
				require.ErrorContains(t, err, want)
			}
		})
	}

	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		s := str("app.token")
		s.Encrypted, s.Default, s.Group = true, "hunter2", "general"
		m, err := pluginhost.New(pluginhost.Config{
			DB: db, Registry: pluginhost.NewRegistry(), Logger: discardLogger(),
			SecretKey:         make([]byte, 32),
			Middleware:        []func(http.Handler) http.Handler{pass},
			CoreSettingGroups: []pluginhost.SettingGroup{group},
			CoreSettings:      []pluginhost.Setting{s, {Key: "app.size", Type: pluginhost.NumberType, Default: 3}},
			Required:          []string{"a"},
			Disabled:          []string{"b"},
		})
		require.NoError(t, err)
		require.NotNil(t, m)
	})
}
