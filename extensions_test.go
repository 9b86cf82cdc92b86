package pluginhost_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// cloud is the interface of the extension points in these tests.
type cloud interface {
	Deploy(app string) string
}

// namedCloud deploys by naming itself.
type namedCloud string

func (c namedCloud) Deploy(app string) string { return string(c) + ":" + app }

// ptrCloud has a pointer receiver, to provide a nil *ptrCloud.
type ptrCloud struct{}

func (*ptrCloud) Deploy(app string) string { return app }

// panickyCloud panics when it deploys.
type panickyCloud struct{}

func (panickyCloud) Deploy(string) string { panic("kaboom in deploy") }

var (
	_ cloud = namedCloud("")
	_ cloud = (*ptrCloud)(nil)
	_ cloud = panickyCloud{}
)

const cloudPoint = "deploy.cloud"

// providing returns a plugin that provides each name to cloudPoint in Init,
// as a namedCloud of that name.
func providing(id string, names []string, extra ...string) *fake {
	return &fake{
		manifest: manifest(id, "1.0.0", extra...),
		init: func(_ context.Context, h *pluginhost.Host) error {
			for _, n := range names {
				if err := pluginhost.Provide[cloud](h, cloudPoint, n, namedCloud(n)); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// startDeclared declares cloudPoint on a new Manager, starts it and shuts
// it down when the test ends.
func startDeclared(t *testing.T, cfg pluginhost.Config) (*pluginhost.Manager, *pluginhost.ExtensionPoint[cloud]) {
	t.Helper()
	m, err := pluginhost.New(cfg)
	require.NoError(t, err)
	ep, err := pluginhost.DeclareExtensionPoint[cloud](m, cloudPoint)
	require.NoError(t, err)
	require.NoError(t, m.Start(context.Background()))
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	return m, ep
}

// providerNames lists "plugin/name" of the point's running providers.
func providerNames(ep *pluginhost.ExtensionPoint[cloud]) []string {
	var out []string
	for _, p := range ep.Providers() {
		out = append(out, p.Plugin+"/"+p.Name)
	}
	return out
}

func TestExtensionProvidersInPluginOrder(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		// Dependency order is beta, zeta, alpha: alpha comes first by id.
		m, ep := startDeclared(t, e.config(
			providing("alpha", []string{"gcp", "azure"}, deps("zeta")),
			providing("zeta", []string{"aws"}),
			providing("beta", []string{"oci"}),
		))
		want := []string{"beta/oci", "zeta/aws", "alpha/gcp", "alpha/azure"}
		require.Equal(t, want, providerNames(ep))

		var all []string
		for name, impl := range ep.All() {
			all = append(all, impl.Deploy(name))
		}
		require.Equal(t, []string{"oci:oci", "aws:aws", "gcp:gcp", "azure:azure"}, all)

		impl, ok := ep.Get("gcp")
		require.True(t, ok)
		require.Equal(t, "gcp:app", impl.Deploy("app"))
		_, ok = ep.Get("nope")
		require.False(t, ok)

		same, err := pluginhost.ExtensionPointOf[cloud](m, cloudPoint)
		require.NoError(t, err)
		require.Same(t, ep, same)
		require.Equal(t, cloudPoint, same.Name())

		require.Equal(t, []pluginhost.ExtensionPointInfo{{
			Name: cloudPoint, Type: "github.com/pluginhost/pluginhost_test.cloud",
			Providers: []pluginhost.ExtensionProviderInfo{
				{Name: "oci", Plugin: "beta", Running: true},
				{Name: "aws", Plugin: "zeta", Running: true},
				{Name: "gcp", Plugin: "alpha", Running: true},
				{Name: "azure", Plugin: "alpha", Running: true},
			},
		}}, m.ExtensionPoints())
	})
}

func TestDeclareExtensionPointErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testdb.SQLite)
	m, err := pluginhost.New(e.config())
	require.NoError(t, err)

	ep, err := pluginhost.DeclareExtensionPoint[cloud](m, cloudPoint)
	require.NoError(t, err)
	again, err := pluginhost.DeclareExtensionPoint[cloud](m, cloudPoint)
	require.NoError(t, err)
	require.Same(t, ep, again, "declaring again with the same type returns the same point")

	_, err = pluginhost.DeclareExtensionPoint[fmt.Stringer](m, cloudPoint)
	require.ErrorContains(t, err, `extension point "deploy.cloud" is already declared for github.com/pluginhost/pluginhost_test.cloud by the host; it cannot be declared again for fmt.Stringer`)

	_, err = pluginhost.DeclareExtensionPoint[namedCloud](m, "deploy.named")
	require.ErrorContains(t, err, "pluginhost_test.namedCloud is not an interface type")

	for _, name := range []string{"", "Deploy.cloud", "deploy..cloud", "deploy.", ".deploy", "1deploy", "deploy cloud", "deploy/cloud", strings.Repeat("a", 101)} {
		_, err := pluginhost.DeclareExtensionPoint[cloud](m, name)
		require.ErrorContains(t, err, "invalid extension point name", "name %q", name)
	}
	for _, name := range []string{"deploy", "deploy.cloud-v2", "a.b_c.d9"} {
		_, err := pluginhost.DeclareExtensionPoint[cloud](m, name)
		require.NoError(t, err, "name %q", name)
	}

	_, err = pluginhost.ExtensionPointOf[fmt.Stringer](m, cloudPoint)
	require.ErrorContains(t, err, `extension point "deploy.cloud" is declared for github.com/pluginhost/pluginhost_test.cloud, not fmt.Stringer`)
	_, err = pluginhost.ExtensionPointOf[cloud](m, "deploy.nope")
	require.ErrorIs(t, err, pluginhost.ErrNotFound)

	_, err = pluginhost.DeclareExtensionPoint[cloud](nil, cloudPoint)
	require.ErrorContains(t, err, "nil Declarer")
	_, err = pluginhost.ExtensionPointOf[cloud]((*pluginhost.Manager)(nil), cloudPoint)
	require.ErrorContains(t, err, "create the Manager with New")

	// A nil point has no providers.
	var none *pluginhost.ExtensionPoint[cloud]
	require.Empty(t, none.Providers())
	_, ok := none.Get("aws")
	require.False(t, ok)
	require.NoError(t, none.Each(context.Background(), func(context.Context, pluginhost.Provider[cloud]) error { return errTest }))
	require.ErrorIs(t, none.Call(context.Background(), "aws", func(context.Context, cloud) error { return nil }), pluginhost.ErrNotFound)
}

func TestProvideErrors(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var host *pluginhost.Host
		errs := map[string]error{}
		p := &fake{
			manifest: manifest("prov", "1.0.0"),
			init: func(_ context.Context, h *pluginhost.Host) error {
				host = h
				errs["undeclared"] = pluginhost.Provide[cloud](h, "deploy.nope", "aws", namedCloud("aws"))
				errs["wrong type"] = pluginhost.Provide(h, cloudPoint, "int", 42)
				errs["nil"] = pluginhost.Provide[cloud](h, cloudPoint, "nil", nil)
				errs["nil pointer"] = pluginhost.Provide(h, cloudPoint, "nilptr", (*ptrCloud)(nil))
				errs["bad name"] = pluginhost.Provide[cloud](h, cloudPoint, "Bad Name", namedCloud("x"))
				// T inferred as the concrete namedCloud, checked at run time.
				errs["concrete"] = pluginhost.Provide(h, cloudPoint, "aws", namedCloud("aws"))
				errs["again"] = pluginhost.Provide[cloud](h, cloudPoint, "aws", namedCloud("aws2"))
				return nil
			},
		}
		m, ep := startDeclared(t, e.config(p))
		require.ErrorIs(t, errs["undeclared"], pluginhost.ErrNotFound)
		require.ErrorContains(t, errs["undeclared"], `extension point "deploy.nope" is not declared`)
		require.ErrorContains(t, errs["wrong type"], `cannot provide "int" to extension point "deploy.cloud": a int is not a github.com/pluginhost/pluginhost_test.cloud`)
		require.ErrorContains(t, errs["nil"], `provider "nil" of extension point "deploy.cloud" is a nil`)
		require.ErrorContains(t, errs["nil pointer"], "is a nil *pluginhost_test.ptrCloud")
		require.ErrorContains(t, errs["bad name"], `invalid provider name "Bad Name"`)
		require.NoError(t, errs["concrete"])
		require.ErrorContains(t, errs["again"], `already has a provider "aws", from plugin "prov"`)
		require.Equal(t, []string{"prov/aws"}, providerNames(ep))

		// Once the plugin has stopped it cannot provide.
		require.NoError(t, m.Shutdown(context.Background()))
		err := pluginhost.Provide[cloud](host, cloudPoint, "late", namedCloud("late"))
		require.ErrorContains(t, err, `cannot provide "late" to extension point "deploy.cloud" while the plugin is stopped`)
		require.Empty(t, ep.Providers(), "a stopped plugin's providers are gone")
	})
}

func TestProvideDuplicateNameNamesFirstPlugin(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		m, ep := startDeclared(t, e.config(
			providing("first", []string{"aws"}),
			providing("second", []string{"gcp", "aws"}, deps("first")),
		))
		st := status(t, m, "second")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, `plugin "second": extension point "deploy.cloud" already has a provider "aws", from plugin "first"`)
		require.Equal(t, []string{"first/aws"}, providerNames(ep))
		_, ok := ep.Get("gcp")
		require.False(t, ok, "the failed plugin's earlier provider is not visible")
	})
}

func TestProviderOfPluginFailingAtBootIsNotVisible(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		flaky := providing("flaky", []string{"gcp"})
		flaky.routes = func(chi.Router, *pluginhost.Host) { panic("kaboom in routes") }
		m, ep := startDeclared(t, e.config(flaky, providing("steady", []string{"aws"})))
		require.Equal(t, pluginhost.StateFailed, status(t, m, "flaky").State)
		require.Equal(t, pluginhost.StateRunning, status(t, m, "steady").State)

		require.Equal(t, []string{"steady/aws"}, providerNames(ep))
		_, ok := ep.Get("gcp")
		require.False(t, ok)
		called := false
		err := ep.Call(context.Background(), "gcp", func(context.Context, cloud) error { called = true; return nil })
		require.ErrorIs(t, err, pluginhost.ErrNotFound)
		require.False(t, called)
		for _, pi := range m.ExtensionPoints()[0].Providers {
			require.False(t, pi.Plugin == "flaky" && pi.Running, "%+v", pi)
		}
	})
}

func TestDropPluginRemovesProvidersAtOnce(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		m, ep := startDeclared(t, e.config(providing("a", []string{"aws", "s3"}), providing("b", []string{"gcp"})))
		require.Equal(t, []string{"a/aws", "a/s3", "b/gcp"}, providerNames(ep))

		pluginhost.DropExtensions(m, "a")
		require.Equal(t, []string{"b/gcp"}, providerNames(ep))
		_, ok := ep.Get("aws")
		require.False(t, ok)
		require.Equal(t, []pluginhost.ExtensionProviderInfo{{Name: "gcp", Plugin: "b", Running: true}},
			m.ExtensionPoints()[0].Providers)
		pluginhost.DropExtensions(m, "a") // again: nothing to do

		// Stopping gates the rest at once, before any drop.
		require.NoError(t, m.Shutdown(context.Background()))
		require.Empty(t, ep.Providers())
		for range ep.All() {
			t.Fatal("a provider of a stopped plugin was yielded")
		}
	})
}

func TestExtensionEachAndCallRecoverPanics(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		boom := &fake{
			manifest: manifest("boom", "1.0.0"),
			init: func(_ context.Context, h *pluginhost.Host) error {
				return pluginhost.Provide[cloud](h, cloudPoint, "gcp", panickyCloud{})
			},
		}
		cfg := e.config(providing("a", []string{"aws"}), boom, providing("c", []string{"oci"}))
		cfg.PanicLimit = -1 // the breaker is tested elsewhere
		m, ep := startDeclared(t, cfg)
		ctx := context.Background()

		var called []string
		err := ep.Each(ctx, func(_ context.Context, p pluginhost.Provider[cloud]) error {
			called = append(called, p.Name)
			p.Impl.Deploy("app")
			if p.Name == "oci" {
				return errTest
			}
			return nil
		})
		require.Equal(t, []string{"aws", "gcp", "oci"}, called, "the other providers are still called")
		var pe *pluginhost.PanicError
		require.ErrorAs(t, err, &pe)
		require.Equal(t, "boom", pe.Plugin)
		require.Equal(t, "extension deploy.cloud/gcp", pe.Phase)
		require.ErrorIs(t, err, errTest)
		require.ErrorContains(t, err, `extension deploy.cloud/oci of plugin "c": test failure`)
		logs := e.logs.String()
		require.Contains(t, logs, "plugin panicked")
		require.Contains(t, logs, "plugin=boom")
		require.Contains(t, logs, `where="extension deploy.cloud/gcp"`)
		require.Contains(t, logs, "kaboom in deploy")
		require.Equal(t, pluginhost.StateRunning, status(t, m, "boom").State)

		err = ep.Call(ctx, "gcp", func(_ context.Context, impl cloud) error { impl.Deploy("app"); return nil })
		require.ErrorAs(t, err, &pe)
		require.Equal(t, "boom", pe.Plugin)
		require.Equal(t, 2, strings.Count(e.logs.String(), "plugin panicked"))

		var deployed string
		err = ep.Call(ctx, "aws", func(_ context.Context, impl cloud) error {
			deployed = impl.Deploy("app")
			return errTest
		})
		require.Same(t, errTest, err, "Call returns fn's error as it is")
		require.Equal(t, "aws:app", deployed)
		require.ErrorIs(t, ep.Call(ctx, "nope", func(context.Context, cloud) error { return nil }), pluginhost.ErrNotFound)

		canceled, cancel := context.WithCancel(ctx)
		cancel()
		called = nil
		err = ep.Each(canceled, func(_ context.Context, p pluginhost.Provider[cloud]) error {
			called = append(called, p.Name)
			return nil
		})
		require.ErrorIs(t, err, context.Canceled)
		require.Empty(t, called)
		err = ep.Call(canceled, "aws", func(context.Context, cloud) error { t.Fatal("called"); return nil })
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestExtensionPointDeclaredByPlugin(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		const point = "widgets.renderer"
		widgets := &fake{
			manifest: manifest("widgets", "1.0.0"),
			init: func(_ context.Context, h *pluginhost.Host) error {
				_, err := pluginhost.DeclareExtensionPoint[cloud](h, point)
				return err
			},
		}
		var seen *pluginhost.ExtensionPoint[cloud]
		charts := &fake{
			manifest: manifest("charts", "1.0.0", deps("widgets")),
			init: func(_ context.Context, h *pluginhost.Host) error {
				ep, err := pluginhost.ExtensionPointOf[cloud](h, point)
				if err != nil {
					return err
				}
				seen = ep
				return pluginhost.Provide[cloud](h, point, "bar", namedCloud("bar"))
			},
		}
		m := e.start(e.config(charts, widgets))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "charts").State, status(t, m, "charts").Reason)

		ep, err := pluginhost.ExtensionPointOf[cloud](m, point)
		require.NoError(t, err)
		require.Same(t, seen, ep)
		require.Equal(t, []string{"charts/bar"}, providerNames(ep))
		infos := m.ExtensionPoints()
		require.Len(t, infos, 1)
		require.Equal(t, "widgets", infos[0].DeclaredBy)

		_, err = pluginhost.DeclareExtensionPoint[fmt.Stringer](m, point)
		require.ErrorContains(t, err, `by plugin "widgets"`)
	})
}

// TestExtensionLookupsRaceWithDrop: lookups running while a plugin's
// providers are dropped and provided again always see a consistent,
// ordered snapshot. Run it with -race.
func TestExtensionLookupsRaceWithDrop(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var hostA *pluginhost.Host
		a := providing("a", []string{"aws"})
		provideA := a.init
		a.init = func(ctx context.Context, h *pluginhost.Host) error {
			hostA = h
			return provideA(ctx, h)
		}
		m, ep := startDeclared(t, e.config(a, providing("b", []string{"gcp"})))

		done := make(chan struct{})
		var wg, ready sync.WaitGroup
		var failures sync.Map
		fail := func(format string, args ...any) { failures.Store(fmt.Sprintf(format, args...), true) }
		for range 4 {
			ready.Add(1)
			wg.Go(func() {
				ready.Done()
				for {
					select {
					case <-done:
						return
					default:
					}
					names := providerNames(ep)
					if got := strings.Join(names, ","); got != "a/aws,b/gcp" && got != "b/gcp" {
						fail("providers %s", got)
					}
					if impl, ok := ep.Get("gcp"); !ok || impl.Deploy("x") != "gcp:x" {
						fail("gcp missing")
					}
					last := ""
					for name := range ep.All() {
						last = name
					}
					if last != "gcp" {
						fail("All ended with %q", last)
					}
					_ = ep.Each(context.Background(), func(context.Context, pluginhost.Provider[cloud]) error { return nil })
					_ = m.ExtensionPoints()
				}
			})
		}
		ready.Wait()
		for range 500 {
			pluginhost.DropExtensions(m, "a")
			if err := pluginhost.Provide[cloud](hostA, cloudPoint, "aws", namedCloud("aws")); err != nil {
				fail("provide: %v", err)
			}
		}
		close(done)
		wg.Wait()
		failures.Range(func(k, _ any) bool {
			t.Error(k)
			return true
		})
		require.Equal(t, []string{"a/aws", "b/gcp"}, providerNames(ep))
	})
}

func TestDisableRemovesProvidersEnableRestoresThem(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		m, ep := startDeclared(t, e.config(
			providing("alpha", []string{"gcp"}, deps("zeta")),
			providing("zeta", []string{"aws"}),
			providing("beta", []string{"oci"}),
		))
		ctx := context.Background()
		require.Equal(t, []string{"beta/oci", "zeta/aws", "alpha/gcp"}, providerNames(ep))

		// Disabling zeta disables its dependent alpha: both disappear.
		require.NoError(t, m.Disable(ctx, "zeta"))
		require.Equal(t, []string{"beta/oci"}, providerNames(ep))
		_, ok := ep.Get("gcp")
		require.False(t, ok)
		require.Equal(t, []pluginhost.ExtensionProviderInfo{{Name: "oci", Plugin: "beta", Running: true}},
			m.ExtensionPoints()[0].Providers, "a stopped plugin's providers are dropped")

		// Enabling it runs Init again, which provides again, in plugin order.
		require.NoError(t, m.Enable(ctx, "zeta"))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "alpha").State, status(t, m, "alpha").Reason)
		require.Equal(t, []string{"beta/oci", "zeta/aws", "alpha/gcp"}, providerNames(ep))
	})
}

// TestEnableAfterBootFailureProvidesAgain: a plugin that provided in Init
// and then failed must not keep its providers, or its Init, run again by
// Enable, finds its own name taken.
func TestEnableAfterBootFailureProvidesAgain(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		flaky := providing("flaky", []string{"gcp"})
		var calls sync.Mutex
		first := true
		flaky.routes = func(chi.Router, *pluginhost.Host) {
			calls.Lock()
			defer calls.Unlock()
			if first {
				first = false
				panic("kaboom in routes, once")
			}
		}
		m, ep := startDeclared(t, e.config(flaky, providing("steady", []string{"aws"})))
		require.Equal(t, pluginhost.StateFailed, status(t, m, "flaky").State)
		require.Equal(t, []string{"steady/aws"}, providerNames(ep))

		require.NoError(t, m.Enable(context.Background(), "flaky"))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "flaky").State, status(t, m, "flaky").Reason)
		require.Equal(t, []string{"flaky/gcp", "steady/aws"}, providerNames(ep))
	})
}
