package pluginhost_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// Sinks keep the compiler from discarding the lookups.
var (
	sinkCloud     cloud
	sinkProviders []pluginhost.Provider[cloud]
	sinkCount     int
)

// BenchmarkExtensionLookup measures lookups on an extension point with 10
// providers, one per running plugin: Get and All take no lock and do not
// allocate; Providers allocates its result.
func BenchmarkExtensionLookup(b *testing.B) {
	const n = 10
	var plugins []pluginhost.Plugin
	for i := range n {
		plugins = append(plugins, providing(fmt.Sprintf("p%d", i), []string{fmt.Sprintf("c%d", i)}))
	}
	m, err := pluginhost.New(pluginhost.Config{DB: testdb.OpenSQLite(b), Registry: registry(b, plugins...), Logger: discardLogger()})
	require.NoError(b, err)
	ep, err := pluginhost.DeclareExtensionPoint[cloud](m, cloudPoint)
	require.NoError(b, err)
	require.NoError(b, m.Start(context.Background()))
	b.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	require.Len(b, ep.Providers(), n)
	ctx := context.Background()

	b.Run("get", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			impl, ok := ep.Get("c7")
			if !ok {
				b.Fatal("c7 missing")
			}
			sinkCloud = impl
		}
	})
	b.Run("get-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, ok := ep.Get("c7"); !ok {
					b.Error("c7 missing")
					return
				}
			}
		})
	})
	b.Run("providers", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sinkProviders = ep.Providers()
		}
	})
	b.Run("all", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			count := 0
			for _, impl := range ep.All() {
				sinkCloud = impl
				count++
			}
			sinkCount = count
		}
	})
	b.Run("each", func(b *testing.B) {
		b.ReportAllocs()
		fn := func(_ context.Context, p pluginhost.Provider[cloud]) error { sinkCloud = p.Impl; return nil }
		for b.Loop() {
			if err := ep.Each(ctx, fn); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("call", func(b *testing.B) {
		b.ReportAllocs()
		fn := func(_ context.Context, impl cloud) error { sinkCloud = impl; return nil }
		for b.Loop() {
			if err := ep.Call(ctx, "c7", fn); err != nil {
				b.Fatal(err)
			}
		}
	})
}
