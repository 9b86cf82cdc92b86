// Package admin serves an HTTP API for the operators of a pluginhost
// service: list the plugins with their state, enable and disable them at
// runtime, list and change the settings, list the routes.
//
// # Mounting
//
// [New] returns an http.Handler whose routes are relative (/plugins,
// /settings, …), so that the host mounts it under the prefix it chooses.
// With chi:
//
//	api, err := admin.New(admin.Config{Manager: m, Authorize: requireAdmin})
//	if err != nil { ... }
//	router.Mount("/api/admin", api)
//
// With net/http, strip the prefix:
//
//	mux.Handle("/api/admin/", http.StripPrefix("/api/admin", api))
//
// # Authorization
//
// The API changes what the service runs, so New refuses to build it
// without Config.Authorize, the host's middleware that lets operators
// through and answers everyone else (401, 403) itself. It wraps every
// route, unknown paths included. A host that wants the API open, in tests
// or on a private network, says so with Config.Insecure.
//
// # Routes
//
// Every response is JSON; errors are {"error": "..."} with the status
// below.
//
//	GET  /plugins               {"plugins": [status, ...]}, sorted by id
//	GET  /plugins/{id}          the plugin's status, with its metrics in "metrics"; 404 for an unknown id
//	POST /plugins/{id}/enable   start it now; 200 with its new status
//	POST /plugins/{id}/disable  stop it now; 200 with its new status
//	GET  /plugins/{id}/export   its rows as JSON lines (application/x-ndjson)
//	POST /plugins/{id}/purge    body {"confirm": "<id>"}; 200 {"purged": "<id>"}
//	GET  /settings              {"groups": [...], "ungrouped": [...]}
//	GET  /settings/{key}        one setting; 404 for an unknown key
//	PUT  /settings/{key}        body {"value": ...}; 200 with the setting
//	GET  /routes                {"routes": [...]}, every mounted plugin route
//	GET  /plan                  what Start would do now (see plan.go)
//	GET  /health                Manager.Health: the database and the plugins' checks
//	GET  /events                {"events": [...]}, the recent lifecycle events; ?after=seq
//	GET  /nav                   {"nav": [...]}, the console pages of the running plugins
//	GET  /metrics               {"plugins": [metrics, ...]}, every plugin's metrics, sorted by id
//
// [Console] serves the web console, a browser page that operates the
// Manager through these routes.
//
// A plugin's status is [pluginhost.PluginStatus]: state, reason, version,
// warnings, missing required settings, the permissions it declares (with
// the descriptions of the host's catalog), the read grants it declares on
// its dependencies' tables and settings ([[reads]]), routes and phase
// timings.
//
// A plugin's metrics are [pluginhost.PluginMetrics], as
// [pluginhost.Manager.Metrics] reports them: requests, responses by status
// class and latency histograms for the plugin and each route pattern,
// in-flight requests, panics, breaker trips, hook durations, events and
// extension calls, counted since the Manager was created.
//
// Enable and disable persist the operator's choice (see
// [pluginhost.Manager.Enable] and [pluginhost.Manager.Disable]). They answer
// 404 for an unknown plugin; 409 when the plugin is required, or a
// dependency of the plugin to enable is not running or missing, or the
// plugin failed to start or cannot start (its manifest is invalid; the
// body says why, and its status keeps the reason); 503 when the Manager
// has not finished Start (for any id: before Start, the Manager does not
// know its plugins yet) or is shutting down. Once a request is accepted,
// the change runs to its end even if the client goes away.
//
// The list includes the plugins the database records that are no longer
// registered, in state "removed" with their tables, setting keys and ledger
// rows. Export streams a plugin's rows (see [pluginhost.Manager.Export]):
// 404 for an unknown plugin. Purge removes what a plugin left (see
// [pluginhost.Manager.Purge]) once the body repeats its id: 400 otherwise,
// saying what the body must be; 404 for an unknown plugin; 409 when it is
// registered and not disabled, or another plugin reads it; 503 when the
// Manager does not run.
//
// Settings are listed in the order of [pluginhost.Settings.Groups], each
// group with its settings, then the settings of no known group. Each
// setting has its key, type, description, group, flags, default and value
// (null when it has none). The value and default of an encrypted setting
// are never sent: a value that is set reads "********". Setting a value
// checks its type: a JSON string, number or boolean, as the setting's type
// says; the wrong type, malformed JSON or a body without "value" is a 400
// with the reason, which says what the body should be, such as
// {"value": <a number>}; an unknown key is a 404, an encrypted setting on
// a Manager without Config.SecretKey a 409, and a Manager that has not
// started or is shut down a 503.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/go-chi/chi/v5"

	"github.com/pluginhost/pluginhost"
)

// Config configures the admin API built by [New].
type Config struct {
	// Manager is the Manager the API operates. Required.
	Manager *pluginhost.Manager

	// Authorize wraps every admin route, unknown paths included: it calls
	// the next handler for an operator and answers anyone else itself.
	// Required unless Insecure is true.
	Authorize func(http.Handler) http.Handler

	// Insecure serves the API without Authorize, to anyone who can reach
	// it: for tests, or a private network. Default false. When Authorize is
	// set as well, it is used.
	Insecure bool
}

// New validates cfg and returns the admin API handler, to be mounted by the
// host (see the package documentation). The error names each field that is
// missing. The handler is safe for concurrent use.
func New(cfg Config) (http.Handler, error) {
	var errs []error
	if cfg.Manager == nil {
		errs = append(errs, errors.New("admin: Config.Manager is required"))
	}
	if cfg.Authorize == nil && !cfg.Insecure {
		errs = append(errs, errors.New("admin: Config.Authorize is required: pass the host's authorization middleware, or set Config.Insecure to serve the API to anyone"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	a := &api{m: cfg.Manager}
	r := chi.NewRouter()
	if cfg.Authorize != nil {
		r.Use(cfg.Authorize)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not found")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	})
	r.Get("/plugins", a.listPlugins)
	r.Get("/plugins/{id}", a.getPlugin)
	r.Post("/plugins/{id}/enable", a.enable)
	r.Post("/plugins/{id}/disable", a.disable)
	r.Get("/plugins/{id}/export", a.exportPlugin)
	r.Post("/plugins/{id}/purge", a.purgePlugin)
	r.Get("/settings", a.listSettings)
	r.Get("/settings/{key}", a.getSetting)
	r.Put("/settings/{key}", a.putSetting)
	r.Get("/routes", a.listRoutes)
	r.Get("/plan", a.plan)
	r.Get("/health", a.health)
	r.Get("/events", a.events)
	r.Get("/nav", a.nav)
	r.Get("/metrics", a.metrics)
	return r, nil
}

// api holds the handlers.
type api struct {
	m *pluginhost.Manager
}

func (a *api) listPlugins(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"plugins": a.m.Status()})
}

func (a *api) getPlugin(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	st, ok := a.status(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no plugin %q", id))
		return
	}
	writeJSON(w, http.StatusOK, a.withMetrics(st))
}

func (a *api) enable(w http.ResponseWriter, r *http.Request) {
	a.control(w, r, a.m.Enable)
}

func (a *api) disable(w http.ResponseWriter, r *http.Request) {
	a.control(w, r, a.m.Disable)
}

// control runs Enable or Disable and answers with the plugin's new status:
// 404 for an unknown plugin, 409 when the state of the plugins forbids it
// (required, a dependency not running or missing, the plugin cannot
// start), 503 when the Manager does not run (before Start has finished,
// when the Manager cannot tell an unknown id yet, and from Shutdown on),
// 500 for anything else (the database).
func (a *api) control(w http.ResponseWriter, r *http.Request, op func(ctx context.Context, id string) error) {
	id := chi.URLParam(r, "id")
	// Once accepted, the change runs to its end even if the client goes
	// away: a plugin half enabled helps no one. An unknown id changes
	// nothing: the Manager says so (ErrNotFound), or that it does not run.
	if err := op(context.WithoutCancel(r.Context()), id); err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, pluginhost.ErrNotRunning), errors.Is(err, pluginhost.ErrClosed):
			status = http.StatusServiceUnavailable
		case errors.Is(err, pluginhost.ErrNotFound):
			if _, ok := a.status(id); !ok {
				writeError(w, http.StatusNotFound, fmt.Sprintf("no plugin %q", id))
				return
			}
			status = http.StatusConflict // the plugin exists: a dependency does not
		case errors.Is(err, pluginhost.ErrRequired), errors.Is(err, pluginhost.ErrDependency),
			errors.Is(err, pluginhost.ErrStartFailed):
			status = http.StatusConflict
		}
		writeError(w, status, err.Error())
		return
	}
	st, ok := a.status(id)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no plugin %q", id))
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// status returns plugin id's status.
func (a *api) status(id string) (pluginhost.PluginStatus, bool) {
	all := a.m.Status()
	i := slices.IndexFunc(all, func(st pluginhost.PluginStatus) bool { return st.ID == id })
	if i < 0 {
		return pluginhost.PluginStatus{}, false
	}
	return all[i], true
}

func (a *api) listRoutes(w http.ResponseWriter, r *http.Request) {
	routes := a.m.Routes()
	if routes == nil {
		routes = []pluginhost.RouteInfo{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"routes": routes})
}

// writeJSON writes v as the JSON response. Admin responses may carry
// configuration: they are never cached.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
