package pluginhost_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/pluginhost/pluginhost"
)

// BenchmarkMetricsSnapshot is the cost of Manager.Metrics, which a console
// polls: ten plugins of ten routes each, every route served once.
func BenchmarkMetricsSnapshot(b *testing.B) {
	var plugins []pluginhost.Plugin
	for i := range 10 {
		plugins = append(plugins, &fake{manifest: manifest(fmt.Sprintf("p%d", i), "1.0.0"), routes: func(r chi.Router, _ *pluginhost.Host) {
			for j := range 10 {
				r.Get(fmt.Sprintf("/r%d/{id}", j), func(http.ResponseWriter, *http.Request) {})
			}
		}})
	}
	m := startSQLite(b, nil, plugins...)
	for i := range 10 {
		for j := range 10 {
			serve(b, m.Handler(), "GET", fmt.Sprintf("/api/plugin/p%d/r%d/x", i, j), "")
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if len(m.Metrics()) != 10 {
			b.Fatal("plugins missing")
		}
	}
}
