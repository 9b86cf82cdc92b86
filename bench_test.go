package pluginhost_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// benchHandler is the trivial handler both routing benchmarks serve.
func benchHandler(w http.ResponseWriter, r *http.Request) {
	if chi.URLParam(r, "id") == "" {
		w.WriteHeader(http.StatusBadRequest)
	}
}

// BenchmarkRouteBareChi is the baseline of BenchmarkRoutePlugin: a chi
// router with a sub-router mounted at the same depth.
func BenchmarkRouteBareChi(b *testing.B) {
	sub := chi.NewRouter()
	sub.Get("/items/{id}", benchHandler)
	root := chi.NewRouter()
	root.Mount("/api/plugin/bench", sub)
	benchRoute(b, root)
}

// BenchmarkRoutePlugin serves the same handler through the Manager.
func BenchmarkRoutePlugin(b *testing.B) {
	p := &fake{
		manifest: manifest("bench", "1.0.0"),
		routes:   func(r chi.Router, _ *pluginhost.Host) { r.Get("/items/{id}", benchHandler) },
	}
	m, err := pluginhost.New(pluginhost.Config{DB: testdb.OpenSQLite(b), Registry: registry(b, p), Logger: discardLogger()})
	require.NoError(b, err)
	require.NoError(b, m.Start(context.Background()))
	b.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	benchRoute(b, m.Handler())
}

func benchRoute(b *testing.B, h http.Handler) {
	req := httptest.NewRequest("GET", "/api/plugin/bench/items/42", nil)
	w := &nopWriter{h: http.Header{}}
	h.ServeHTTP(w, req)
	if w.status != 0 && w.status != 200 {
		b.Fatalf("status %d", w.status)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}

type nopWriter struct {
	h      http.Header
	status int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(s int)           { w.status = s }

var _ = fmt.Sprint
