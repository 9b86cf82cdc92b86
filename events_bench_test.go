package pluginhost_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// benchEvent is a typical event: a few fields, published by value.
type benchEvent struct {
	ID   int64
	Name string
}

// BenchmarkPublish publishes from the host to N synchronous subscribers,
// one per plugin, with a trivial handler. ns/subscriber is the time per
// publish divided by N.
func BenchmarkPublish(b *testing.B) {
	for _, n := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			calls := 0
			plugins := make([]pluginhost.Plugin, n)
			for i := range plugins {
				plugins[i] = listener(fmt.Sprintf("sub%03d", i), func(h *pluginhost.Host) {
					pluginhost.Subscribe(h, func(_ context.Context, e benchEvent) error {
						calls += int(e.ID)
						return nil
					})
				})
			}
			m, err := pluginhost.New(pluginhost.Config{DB: testdb.OpenSQLite(b), Registry: registry(b, plugins...), Logger: discardLogger()})
			require.NoError(b, err)
			require.NoError(b, m.Start(context.Background()))
			b.Cleanup(func() { _ = m.Shutdown(context.Background()) })
			ctx := context.Background()
			ev := benchEvent{ID: 1, Name: "created"}
			calls = 0
			b.ReportAllocs()
			for b.Loop() {
				pluginhost.Publish(ctx, m, ev)
			}
			require.Equal(b, b.N*n, calls)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/subscriber")
		})
	}
}
