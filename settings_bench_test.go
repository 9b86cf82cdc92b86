package pluginhost_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// startedSettings returns the settings of a started Manager with a string,
// a number and a boolean setting, on a fresh in-memory SQLite database.
func startedSettings(tb testing.TB) *pluginhost.Settings {
	tb.Helper()
	p := &fake{manifest: manifest("bench", "1.0.0",
		`[[settings]]`, `key = "bench.name"`, `type = "string"`, `default = "pluginhost"`,
		`[[settings]]`, `key = "bench.limit"`, `type = "number"`, `default = 10000`)}
	m, err := pluginhost.New(pluginhost.Config{
		DB:           testdb.OpenSQLite(tb),
		Registry:     registry(tb, p),
		Logger:       discardLogger(),
		CoreSettings: []pluginhost.Setting{{Key: "app.enabled", Type: pluginhost.BooleanType, Default: true}},
	})
	require.NoError(tb, err)
	require.NoError(tb, m.Start(context.Background()))
	tb.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	return m.Settings()
}

// Sinks keep the compiler from discarding the reads.
var (
	sinkString string
	sinkNumber float64
	sinkBool   bool
)

// BenchmarkSettingsGet measures a typed read of an existing key, served from
// the in-memory snapshot: 0 allocs/op, alone and under contention.
func BenchmarkSettingsGet(b *testing.B) {
	s := startedSettings(b)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			v, err := s.String("bench.name")
			if err != nil {
				b.Fatal(err)
			}
			sinkString = v
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var n float64
			for pb.Next() {
				v, err := s.Number("bench.limit")
				if err != nil {
					b.Error(err)
					return
				}
				n += v
			}
			_ = n
		})
	})
}

// TestSettingsGetDoesNotAllocate guards the 0 allocs/op of settings reads.
// It is not parallel: AllocsPerRun counts every allocation in the process,
// so other tests running alongside would be counted too.
func TestSettingsGetDoesNotAllocate(t *testing.T) {
	s := startedSettings(t)
	name, err := s.String("bench.name")
	require.NoError(t, err)
	require.Equal(t, "pluginhost", name)

	allocs := testing.AllocsPerRun(1000, func() {
		sinkString, _ = s.String("bench.name")
		sinkNumber, _ = s.Number("bench.limit")
		n, _ := s.Int("bench.limit")
		sinkNumber += float64(n)
		sinkBool, _ = s.Bool("app.enabled")
		sinkBool = sinkBool && s.IsSet("bench.name")
	})
	require.Zero(t, allocs, "a typed settings read must not allocate")
	require.InDelta(t, 20000, sinkNumber, 0)
	require.True(t, sinkBool)
}
