package pluginhost_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// other is a second plugin type, so that duplicate-id messages can name two
// different Go types.
type other struct{ manifest string }

func (o *other) Manifest() []byte { return []byte(o.manifest) }

// panicky is a plugin whose Manifest panics.
type panicky struct{}

func (panicky) Manifest() []byte { panic("no manifest today") }

// recovered runs f and returns what it panicked with, or nil.
func recovered(f func()) (v any) {
	defer func() { v = recover() }()
	f()
	return nil
}

func TestRegistryRegisterRejectsNil(t *testing.T) {
	t.Parallel()
	for name, p := range map[string]pluginhost.Plugin{
		"nil interface":     nil,
		"typed nil pointer": (*fake)(nil),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reg := pluginhost.NewRegistry()
			err := reg.Register(p)
			require.ErrorIs(t, err, pluginhost.ErrNilPlugin)
			require.Empty(t, reg.Plugins())
		})
	}
}

func TestRegistryRegisterRejectsDuplicateID(t *testing.T) {
	t.Parallel()
	reg := pluginhost.NewRegistry()
	first := &fake{manifest: manifest("twin", "1.0.0")}
	require.NoError(t, reg.Register(first))
	err := reg.Register(&other{manifest: manifest("twin", "2.0.0")})
	require.ErrorIs(t, err, pluginhost.ErrDuplicateID)
	require.ErrorContains(t, err, `"twin"`)
	require.ErrorContains(t, err, "*pluginhost_test.fake")
	require.ErrorContains(t, err, "*pluginhost_test.other")
	require.Equal(t, []pluginhost.Plugin{first}, reg.Plugins(), "the first registration stays")

	// A broken manifest whose id is readable still claims that id.
	err = reg.Register(&other{manifest: manifest("twin", "not-semver")})
	require.ErrorIs(t, err, pluginhost.ErrDuplicateID)
}

// defaultRegistryRuns numbers the runs of TestRegisterPanics, so that
// -count=N never registers an id in DefaultRegistry twice.
var defaultRegistryRuns atomic.Int64

// The package-level Register panics, for init functions. These cases touch
// DefaultRegistry, which no other test in this package uses, with ids only
// this test registers.
func TestRegisterPanics(t *testing.T) {
	t.Parallel()
	run := defaultRegistryRuns.Add(1)
	t.Run("nil", func(t *testing.T) {
		for _, p := range []pluginhost.Plugin{nil, (*fake)(nil), (*other)(nil)} {
			v := recovered(func() { pluginhost.Register(p) })
			err, ok := v.(error)
			require.True(t, ok, "Register(%T) should panic with an error, got %v", p, v)
			require.ErrorIs(t, err, pluginhost.ErrNilPlugin)
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		id := fmt.Sprintf("registry-test-duplicate-%d", run)
		require.Nil(t, recovered(func() { pluginhost.Register(&fake{manifest: manifest(id, "1.0.0")}) }))
		v := recovered(func() { pluginhost.Register(&other{manifest: manifest(id, "1.0.0")}) })
		err, ok := v.(error)
		require.True(t, ok, "a duplicate id should panic with an error, got %v", v)
		require.ErrorIs(t, err, pluginhost.ErrDuplicateID)
		require.ErrorContains(t, err, id)
		require.ErrorContains(t, err, "*pluginhost_test.fake")
		require.ErrorContains(t, err, "*pluginhost_test.other")
	})
	t.Run("broken manifest does not panic", func(t *testing.T) {
		require.Nil(t, recovered(func() {
			pluginhost.Register(&other{manifest: manifest(fmt.Sprintf("registry-test-broken-%d", run), "one")})
		}))
	})
}

func TestRegistryPluginsSortedByID(t *testing.T) {
	t.Parallel()
	reg := pluginhost.NewRegistry()
	ids := []string{"mango", "apple", "zucchini", "banana", "kiwi"}
	byID := map[string]pluginhost.Plugin{}
	errs := make([]error, len(ids)) // one slot per goroutine, read after Wait
	var wg sync.WaitGroup
	for i, id := range ids {
		p := &fake{manifest: manifest(id, "1.0.0")}
		byID[id] = p
		wg.Go(func() { errs[i] = reg.Register(p) })
	}
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "register %s", ids[i])
	}
	want := []pluginhost.Plugin{byID["apple"], byID["banana"], byID["kiwi"], byID["mango"], byID["zucchini"]}
	require.Equal(t, want, reg.Plugins())
}

// brokenPlugins are plugins whose manifests cannot be used, with the id the
// Manager reports them under and what the reason must say.
func brokenPlugins() []struct {
	name, id, reason string
	plugin           pluginhost.Plugin
} {
	return []struct {
		name, id, reason string
		plugin           pluginhost.Plugin
	}{
		{"not TOML", "(*pluginhost_test.fake)", "not valid TOML", &fake{manifest: "id = \"broken\nname ="}},
		{"no bytes", "(*pluginhost_test.fake #2)", "returned no bytes", &fake{manifest: ""}},
		{"bad version", "bad-version", `field "version"`, &fake{manifest: manifest("bad-version", "1.x")}},
		{"missing name", "no-name", `"name"`, &fake{manifest: "id = \"no-name\"\nversion = \"1.0.0\"\n"}},
		{"Manifest panics", "(pluginhost_test.panicky)", "no manifest today", panicky{}},
	}
}

func TestBrokenManifestIsReportedNotFatal(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		reg := pluginhost.NewRegistry()
		broken := brokenPlugins()
		for _, b := range broken {
			require.NoError(t, reg.Register(b.plugin), "%s: Register must not fail on a bad manifest", b.name)
		}
		var inits atomic.Int32
		healthy := &fake{manifest: manifest("healthy", "1.0.0"), init: func(context.Context, *pluginhost.Host) error {
			inits.Add(1)
			return nil
		}}
		dependent := &fake{manifest: manifest("dependent", "1.0.0", "[dependencies]\nbad-version = \"*\"")}
		require.NoError(t, reg.Register(healthy))
		require.NoError(t, reg.Register(dependent))

		cfg := e.config()
		cfg.Registry = reg
		m := e.start(cfg)

		for _, b := range broken {
			st := status(t, m, b.id)
			require.Equal(t, pluginhost.StateFailed, st.State, b.name)
			require.True(t, strings.HasPrefix(st.Reason, pluginhost.PhaseDiscover+": "), "%s: reason %q", b.name, st.Reason)
			require.Contains(t, st.Reason, b.reason, b.name)
			require.Empty(t, st.Timings, "%s: no phase ran", b.name)
		}
		st := status(t, m, "dependent")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, "dependency bad-version failed")
		require.Equal(t, pluginhost.StateRunning, status(t, m, "healthy").State)
		require.Equal(t, int32(1), inits.Load())
		require.Len(t, m.Status(), len(broken)+2)
	})
}

// A Required plugin whose manifest is broken fails Start with the reason.
func TestBrokenManifestOfRequiredPluginFailsStart(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		cfg := e.config(&fake{manifest: manifest("needed", "v1")})
		cfg.Required = []string{"needed"}
		m, err := pluginhost.New(cfg)
		require.NoError(t, err)
		err = m.Start(t.Context())
		require.ErrorIs(t, err, pluginhost.ErrRequired)
		require.ErrorContains(t, err, `"needed"`)
		require.ErrorContains(t, err, pluginhost.PhaseDiscover)
		require.ErrorContains(t, err, `field "version"`)
	})
}

// The call of Manifest at Register is bounded and contained: runtime.Goexit
// and a call that does not return fail that plugin, naming what happened,
// instead of ending or hanging its init.
func TestRegisterBoundsManifest(t *testing.T) {
	defer pluginhost.SetManifestTimeout(50 * time.Millisecond)()
	release := make(chan struct{})
	defer close(release)
	exits := manifestFunc(func() []byte { runtime.Goexit(); return nil })
	hangs := &hangingManifest{release: release}
	e := newEnv(t, testdb.SQLite)
	m := e.start(e.config(exits, hangs))
	var reasons []string
	for _, st := range m.Status() {
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.ErrorIs(t, st.Err, pluginhost.ErrInvalidManifest)
		reasons = append(reasons, st.Reason)
	}
	require.Len(t, reasons, 2)
	require.Contains(t, strings.Join(reasons, "\n"), "Manifest() called runtime.Goexit")
	require.Contains(t, strings.Join(reasons, "\n"), "Manifest() did not return within 50ms")
}

// hangingManifest's Manifest returns only once release is closed.
type hangingManifest struct{ release chan struct{} }

func (p *hangingManifest) Manifest() []byte { <-p.release; return nil }

// manifestFunc is a plugin whose Manifest calls the function.
type manifestFunc func() []byte

func (f manifestFunc) Manifest() []byte { return f() }
