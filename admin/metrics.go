package admin

import (
	"net/http"

	"github.com/pluginhost/pluginhost"
)

// metrics serves GET /metrics: {"plugins": [metrics, ...]}, the
// [pluginhost.PluginMetrics] of every registered plugin, sorted by id (an
// empty list before Start). It is cheap to poll every few seconds: the
// Manager reads its counters without taking any lock of the request path.
func (a *api) metrics(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"plugins": a.m.Metrics()})
}

// pluginWithMetrics is the body of GET /plugins/{id}: the plugin's status
// with its metrics in the sibling field "metrics".
type pluginWithMetrics struct {
	pluginhost.PluginStatus
	Metrics *pluginhost.PluginMetrics `json:"metrics,omitempty"`
}

// withMetrics adds the metrics of st's plugin to st, when the Manager has
// them (from Start on).
func (a *api) withMetrics(st pluginhost.PluginStatus) pluginWithMetrics {
	out := pluginWithMetrics{PluginStatus: st}
	if pm, ok := a.m.PluginMetrics(st.ID); ok {
		out.Metrics = &pm
	}
	return out
}
