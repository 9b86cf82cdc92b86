package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/pluginhosttest"
)

// GET /metrics lists every plugin's metrics by id; GET /plugins/{id} has
// the plugin's in "metrics", next to its status.
func TestMetricsRoutes(t *testing.T) {
	t.Parallel()
	f := start(t, pluginhosttest.Options{})
	plugins := f.inst.Manager.Handler()
	for range 2 {
		rec := httptest.NewRecorder()
		plugins.ServeHTTP(rec, httptest.NewRequest("GET", "/api/plugin/notes/hello", nil))
		require.Equal(t, http.StatusOK, rec.Code)
	}

	all := decode[struct {
		Plugins []pluginhost.PluginMetrics `json:"plugins"`
	}](t, f.do(t, "GET", "/metrics", ""), http.StatusOK).Plugins
	var ids []string
	for _, pm := range all {
		ids = append(ids, pm.Plugin)
	}
	require.Equal(t, []string{"auth", "broken", "notes", "reports"}, ids)
	notes := all[2]
	require.Equal(t, uint64(2), notes.Requests)
	require.Equal(t, pluginhost.StatusClasses{Success: 2}, notes.Responses)
	require.Len(t, notes.Routes, 1)
	require.Equal(t, "/hello", notes.Routes[0].Pattern)
	require.Equal(t, uint64(2), notes.Routes[0].Latency.Count)
	require.Equal(t, uint64(1), hookCount(notes, "init"))

	rec := f.do(t, "GET", "/plugins/notes", "")
	st := decode[struct {
		pluginhost.PluginStatus
		Metrics *pluginhost.PluginMetrics `json:"metrics"`
	}](t, rec, http.StatusOK)
	require.Equal(t, "notes", st.ID)
	require.Equal(t, pluginhost.StateRunning, st.State)
	require.NotEmpty(t, st.Routes)
	require.NotNil(t, st.Metrics)
	require.Equal(t, uint64(2), st.Metrics.Requests)
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &raw))
	require.Contains(t, raw, "metrics")
	require.Contains(t, raw, "state") // the status's fields stay at the top level

	broken := decode[struct {
		Metrics *pluginhost.PluginMetrics `json:"metrics"`
	}](t, f.do(t, "GET", "/plugins/broken", ""), http.StatusOK).Metrics
	require.NotNil(t, broken)
	require.Equal(t, uint64(1), hookErrors(*broken, "init"))
}

func hookCount(pm pluginhost.PluginMetrics, hook string) uint64 {
	for _, h := range pm.Hooks {
		if h.Hook == hook {
			return h.Duration.Count
		}
	}
	return 0
}

func hookErrors(pm pluginhost.PluginMetrics, hook string) uint64 {
	for _, h := range pm.Hooks {
		if h.Hook == hook {
			return h.Errors
		}
	}
	return 0
}
