package admin

import "net/http"

// health serves GET /health: [pluginhost.Manager.Health], the ping of the
// database and the checks of the running plugins, 200 with the report
// whether or not it is ready (its "ready" field says).
func (a *api) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.m.Health(r.Context()))
}
