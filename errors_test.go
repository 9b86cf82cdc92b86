package pluginhost_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// errFromTheHook is what a plugin's hook returns in these tests.
var errFromTheHook = errors.New("the mail server is unreachable")

// failingInit is a plugin whose Init returns err.
func failingInit(id string, err error, extra ...string) *fake {
	return &fake{manifest: manifest(id, "1.0.0", extra...), init: func(context.Context, *pluginhost.Host) error { return err }}
}

// panickingInit is a plugin whose Init panics.
func panickingInit(id string, extra ...string) *fake {
	return &fake{manifest: manifest(id, "1.0.0", extra...), init: func(context.Context, *pluginhost.Host) error { panic("kaboom in init") }}
}

// errorCase is a set of plugins, one of them "req", and what the error of
// req's failure must hold.
type errorCase struct {
	name     string
	plugins  func() []pluginhost.Plugin
	disabled []string // Config.Disabled
	is       []error  // errors.Is finds each
	text     string   // the error's text contains it
	check    func(t *testing.T, err error)
}

// causes are the ways plugin "req" can fail or be kept from starting, and
// the causes its error must hold.
var causes = []errorCase{
	{
		name: "host constraint not met",
		plugins: func() []pluginhost.Plugin {
			return []pluginhost.Plugin{&fake{manifest: manifest("req", "1.0.0", `host = ">=9.0"`)}}
		},
		is:   []error{pluginhost.ErrIncompatible},
		text: `requires host API ">=9.0"`,
	},
	{
		name: "dependency of the wrong version",
		plugins: func() []pluginhost.Plugin {
			return []pluginhost.Plugin{&fake{manifest: manifest("base", "1.0.0")}, &fake{manifest: manifest("req", "1.0.0", deps("base@^2.0"))}}
		},
		is:   []error{pluginhost.ErrIncompatible},
		text: "dependency base is version 1.0.0",
	},
	{
		name: "dependency not registered",
		plugins: func() []pluginhost.Plugin {
			return []pluginhost.Plugin{&fake{manifest: manifest("req", "1.0.0", deps("ghost"))}}
		},
		is:   []error{pluginhost.ErrNotFound},
		text: `dependency "ghost" is not registered`,
	},
	{
		name: "dependency failed",
		plugins: func() []pluginhost.Plugin {
			return []pluginhost.Plugin{failingInit("base", errFromTheHook), &fake{manifest: manifest("req", "1.0.0", deps("base"))}}
		},
		// The dependency's own failure is in the chain too.
		is:   []error{pluginhost.ErrDependency, errFromTheHook},
		text: "init: dependency base failed",
	},
	{
		name: "dependency failed in resolve",
		plugins: func() []pluginhost.Plugin {
			return []pluginhost.Plugin{&fake{manifest: manifest("base", "1.0.0", `host = ">=9.0"`)}, &fake{manifest: manifest("req", "1.0.0", deps("base"))}}
		},
		is:   []error{pluginhost.ErrDependency, pluginhost.ErrIncompatible},
		text: "resolve: dependency base failed",
	},
	{
		name: "dependency disabled",
		plugins: func() []pluginhost.Plugin {
			return []pluginhost.Plugin{&fake{manifest: manifest("base", "1.0.0")}, &fake{manifest: manifest("req", "1.0.0", deps("base"))}}
		},
		disabled: []string{"base"},
		is:       []error{pluginhost.ErrDependency},
		text:     "dependency base disabled",
	},
	{
		name: "dependency cycle",
		plugins: func() []pluginhost.Plugin {
			return []pluginhost.Plugin{&fake{manifest: manifest("loop", "1.0.0", deps("req"))}, &fake{manifest: manifest("req", "1.0.0", deps("loop"))}}
		},
		is:   []error{pluginhost.ErrDependency},
		text: "dependency cycle loop -> req -> loop",
	},
	{
		name:    "manifest that does not parse",
		plugins: func() []pluginhost.Plugin { return []pluginhost.Plugin{&fake{manifest: manifest("req", "1.x")}} },
		is:      []error{pluginhost.ErrInvalidManifest},
		text:    `field "version"`,
		check: func(t *testing.T, err error) {
			var me *pluginhost.ManifestError
			require.ErrorAs(t, err, &me)
			require.Equal(t, "req", me.Plugin)
			require.Equal(t, "version", me.Field)
			require.Equal(t, 3, me.Line)
		},
	},
	{
		name:    "hook error",
		plugins: func() []pluginhost.Plugin { return []pluginhost.Plugin{failingInit("req", errFromTheHook)} },
		is:      []error{errFromTheHook},
		text:    "init: the mail server is unreachable",
	},
	{
		name:    "hook panic",
		plugins: func() []pluginhost.Plugin { return []pluginhost.Plugin{panickingInit("req")} },
		text:    "kaboom in init",
		check: func(t *testing.T, err error) {
			var pe *pluginhost.PanicError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, "req", pe.Plugin)
			require.Equal(t, pluginhost.PhaseInit, pe.Phase)
			require.Equal(t, "kaboom in init", pe.Value)
		},
	},
}

// When a required plugin fails, Start's error holds the causes, for
// errors.Is and errors.As, as well as ErrRequired; its text is unchanged.
func TestStartErrorHoldsTheCauses(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		for _, tc := range causes {
			t.Run(tc.name, func(t *testing.T) {
				cfg := e.config(tc.plugins()...)
				cfg.Required = []string{"req"}
				cfg.Disabled = tc.disabled
				m, err := pluginhost.New(cfg)
				require.NoError(t, err)
				err = m.Start(context.Background())
				t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
				require.ErrorIs(t, err, pluginhost.ErrRequired)
				require.ErrorContains(t, err, `plugin "req"`)
				require.ErrorContains(t, err, tc.text)
				for _, want := range tc.is {
					require.ErrorIs(t, err, want)
				}
				if tc.check != nil {
					tc.check(t, err)
				}
			})
		}
	})
}

// A required plugin that is not registered: ErrRequired and ErrNotFound.
func TestStartErrorRequiredNotRegistered(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		cfg := e.config(&fake{manifest: manifest("other", "1.0.0")})
		cfg.Required = []string{"ghost"}
		m, err := pluginhost.New(cfg)
		require.NoError(t, err)
		err = m.Start(context.Background())
		t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
		require.ErrorIs(t, err, pluginhost.ErrRequired)
		require.ErrorIs(t, err, pluginhost.ErrNotFound)
		require.EqualError(t, err, `pluginhost: required plugin did not start: plugin "ghost" is not registered`)
	})
}

// A plugin that is not required fails alone, and its failure is on its
// status as an error holding the same causes, whose text is the reason.
func TestStatusErrHoldsTheCauses(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		for _, tc := range causes {
			t.Run(tc.name, func(t *testing.T) {
				cfg := e.config(append(tc.plugins(), &fake{manifest: manifest("zzz-calm", "1.0.0")})...)
				cfg.Disabled = tc.disabled
				m := e.start(cfg)
				st := status(t, m, "req")
				require.Error(t, st.Err, "state %s, reason %q", st.State, st.Reason)
				require.Equal(t, st.Reason, st.Err.Error(), "the error's text is the reason")
				require.ErrorContains(t, st.Err, tc.text)
				for _, want := range tc.is {
					require.ErrorIs(t, st.Err, want)
				}
				if tc.check != nil {
					tc.check(t, st.Err)
				}
				require.NoError(t, status(t, m, "zzz-calm").Err)
			})
		}
	})
}

// Status.Err is nil while a plugin starts, runs or is stopped, and when an
// operator or Config disabled it; a plugin disabled because its dependency
// is has an error wrapping ErrDependency. The JSON of a status has the
// reason, not the error.
func TestStatusErrOfEachState(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		cfg := e.config(
			&fake{manifest: manifest("base", "1.0.0")},
			&fake{manifest: manifest("user", "1.0.0", deps("base"))},
			&fake{manifest: manifest("off", "1.0.0")},
			failingInit("broken", errFromTheHook),
		)
		cfg.Disabled = []string{"off"}
		m := e.start(cfg)
		require.NoError(t, status(t, m, "base").Err)
		require.NoError(t, status(t, m, "off").Err, "disabled by Config")

		require.NoError(t, m.Disable(context.Background(), "base"))
		require.NoError(t, status(t, m, "base").Err, "disabled by an operator")
		user := status(t, m, "user")
		require.Equal(t, pluginhost.StateDisabled, user.State)
		require.ErrorIs(t, user.Err, pluginhost.ErrDependency)
		require.Equal(t, "dependency base disabled", user.Err.Error())

		require.NoError(t, m.Enable(context.Background(), "base"))
		require.NoError(t, status(t, m, "user").Err, "running again")

		err := m.Enable(context.Background(), "broken")
		require.ErrorIs(t, err, pluginhost.ErrStartFailed)
		require.ErrorIs(t, status(t, m, "broken").Err, errFromTheHook, "failed again")

		data, err := json.Marshal(status(t, m, "broken"))
		require.NoError(t, err)
		var fields map[string]any
		require.NoError(t, json.Unmarshal(data, &fields))
		require.Contains(t, fields, "reason")
		require.NotContains(t, fields, "err")
		require.NotContains(t, fields, "Err")

		require.NoError(t, m.Shutdown(context.Background()))
		require.Equal(t, pluginhost.StateStopped, status(t, m, "base").State)
		require.NoError(t, status(t, m, "base").Err)
		require.ErrorIs(t, status(t, m, "broken").Err, errFromTheHook, "a failure outlives Shutdown")
	})
}

// A plugin whose circuit breaker tripped has the panic in its Err; Enable
// clears it.
func TestStatusErrOfATrippedBreaker(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		flaky := &fake{manifest: manifest("flaky", "1.0.0"), routes: func(r chi.Router, _ *pluginhost.Host) {
			r.Get("/boom", func(http.ResponseWriter, *http.Request) { panic("flaky handler") })
		}}
		cfg := e.config(flaky)
		cfg.PanicLimit = 1
		m := e.start(cfg)
		require.Equal(t, http.StatusInternalServerError, serve(t, m.Handler(), "GET", "/api/plugin/flaky/boom", "").Code)
		st := status(t, m, "flaky")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Error(t, st.Err)
		require.Equal(t, st.Reason, st.Err.Error())
		var pe *pluginhost.PanicError
		require.ErrorAs(t, st.Err, &pe)
		require.Equal(t, "flaky handler", pe.Value)
		require.Equal(t, "flaky", pe.Plugin)

		require.NoError(t, m.Enable(context.Background(), "flaky"))
		require.NoError(t, status(t, m, "flaky").Err)
	})
}

// Enabling a plugin whose manifest did not parse is refused with an error
// callers can branch on: ErrStartFailed, with the manifest's error.
func TestEnableInvalidManifest(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		m := e.start(e.config(&fake{manifest: manifest("bad", "1.x")}, &fake{manifest: manifest("good", "1.0.0")}))
		err := m.Enable(context.Background(), "bad")
		require.ErrorIs(t, err, pluginhost.ErrStartFailed)
		require.ErrorIs(t, err, pluginhost.ErrInvalidManifest)
		var me *pluginhost.ManifestError
		require.ErrorAs(t, err, &me)
		require.Equal(t, "version", me.Field)
		require.ErrorContains(t, err, `plugin "bad" cannot be enabled`)
	})
}

// Enable's error holds the cause of the failed start: errors.Is finds the
// hook's error.
func TestEnableErrorHoldsTheCause(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		fail := false
		p := &fake{manifest: manifest("p", "1.0.0"), init: func(context.Context, *pluginhost.Host) error {
			if fail {
				return errTest
			}
			return nil
		}}
		m := e.start(e.config(p))
		require.NoError(t, m.Disable(context.Background(), "p"))
		fail = true // read by Init on the control goroutine, after this write
		err := m.Enable(context.Background(), "p")
		require.ErrorIs(t, err, pluginhost.ErrStartFailed)
		require.ErrorIs(t, err, errTest)
	})
}
