package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
	pluginotel "github.com/pluginhost/pluginhost/otel"
)

// scrape GETs base/metrics with token (none when empty) and returns the
// status and body.
func scrape(t *testing.T, base, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", base+"/metrics", nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// /metrics serves the plugins' metrics as Prometheus text through the
// OpenTelemetry exporter, behind the admin token: counters, responses by
// route and status class, the latency histograms and hook durations.
func TestHostMetrics(t *testing.T) {
	// Not parallel: it sets PLUGINHOST_ADMIN_TOKEN in the environment.
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		dsn := filepath.Join(t.TempDir(), "example.db")
		if d == testdb.Postgres {
			_, dsn = testdb.OpenPostgres(t)
		}
		t.Setenv("PLUGINHOST_ADMIN_TOKEN", "s3cret")
		base, _ := startHost(t, io.Discard, "-db", dsn)

		code, body := scrape(t, base, "")
		require.Equal(t, http.StatusUnauthorized, code)
		require.NotContains(t, body, "pluginhost_")
		code, _ = scrape(t, base, "wrong")
		require.Equal(t, http.StatusUnauthorized, code)

		require.Equal(t, http.StatusCreated, post(t, base+"/api/plugin/notes/notes", `{"title":"t","body":"b"}`))
		var notes []map[string]any
		require.Equal(t, http.StatusOK, get(t, base+"/api/plugin/notes/notes", &notes))
		var missing map[string]any
		require.Equal(t, http.StatusNotFound, get(t, base+"/api/plugin/notes/nowhere", &missing))

		code, body = scrape(t, base, "s3cret")
		require.Equal(t, http.StatusOK, code)
		lines := strings.Split(body, "\n")
		for _, want := range []string{
			`# TYPE pluginhost_plugin_requests_total counter`,
			`pluginhost_plugin_requests_total{plugin_id="notes"} 3`,
			`pluginhost_plugin_requests_total{plugin_id="audit"} 0`,
			`pluginhost_plugin_responses_total{http_response_status_class="2xx",http_route="/api/plugin/notes/notes",plugin_id="notes"} 2`,
			`pluginhost_plugin_responses_total{http_response_status_class="4xx",plugin_id="notes"} 1`,
			`pluginhost_plugin_events_published_total{plugin_id="notes"} 1`,
			`pluginhost_plugin_panics_total{plugin_id="notes"} 0`,
			`http_server_active_requests{plugin_id="notes"} 0`,
			`# TYPE http_server_request_duration_seconds histogram`,
			`http_server_request_duration_seconds_count{http_route="/api/plugin/notes/notes",plugin_id="notes"} 2`,
			`http_server_request_duration_seconds_bucket{http_route="/api/plugin/notes/notes",plugin_id="notes",le="+Inf"} 2`,
			`http_server_request_duration_seconds_count{plugin_id="notes"} 1`,
			`pluginhost_plugin_hook_duration_seconds_count{plugin_id="notes",pluginhost_hook="init"} 1`,
			`pluginhost_plugin_hook_errors_total{plugin_id="notes",pluginhost_hook="init"} 0`,
		} {
			require.Contains(t, lines, want, body)
		}
		// Every bucket bound of the Manager's histograms is there.
		for _, le := range []string{"0.001", "0.0025", "0.1", "10"} {
			require.Contains(t, body, `http_server_request_duration_seconds_bucket{http_route="/api/plugin/notes/notes",plugin_id="notes",le="`+le+`"}`)
		}
	})
}

// The host starts a span for each plugin request and each hook call on
// its tracer provider.
func TestHostTraces(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		dsn := filepath.Join(t.TempDir(), "example.db")
		if d == testdb.Postgres {
			_, dsn = testdb.OpenPostgres(t)
		}
		opts, err := parseOptions([]string{"-db", dsn})
		require.NoError(t, err)
		sr := tracetest.NewSpanRecorder()
		app, err := newApp(context.Background(), opts, pluginhost.DefaultRegistry, slog.New(slog.DiscardHandler), "s3cret",
			newTelemetry(sdktrace.WithSpanProcessor(sr)))
		require.NoError(t, err)
		t.Cleanup(app.close)
		srv := httptest.NewServer(app.handler)
		t.Cleanup(srv.Close)

		var notes []map[string]any
		require.Equal(t, http.StatusOK, get(t, srv.URL+"/api/plugin/notes/notes", &notes))
		plugins := map[string][]string{} // span name → the plugin.id of each
		for _, s := range sr.Ended() {
			for _, kv := range s.Attributes() {
				if kv.Key == pluginotel.AttrPluginID {
					plugins[s.Name()] = append(plugins[s.Name()], kv.Value.AsString())
				}
			}
		}
		require.Equal(t, []string{"notes"}, plugins["GET /api/plugin/notes/notes"], "%v", plugins)
		require.ElementsMatch(t, []string{"notes", "audit"}, plugins["pluginhost.hook init"], "%v", plugins)
	})
}
