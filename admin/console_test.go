package admin_test

import (
	"context"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/admin"
	"github.com/pluginhost/pluginhost/pluginhosttest"
)

func TestConsoleServesItsFiles(t *testing.T) {
	t.Parallel()
	console, err := admin.Console(admin.ConsoleConfig{API: "/api/admin"})
	require.NoError(t, err)
	r := chi.NewRouter()
	r.Handle("/admin/*", http.StripPrefix("/admin", console))

	get := func(method, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(method, path, nil)) // no credentials: the shell needs none
		require.Equal(t, admin.ConsoleCSP, rec.Header().Get("Content-Security-Policy"), "%s %s", method, path)
		require.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
		return rec
	}
	require.Contains(t, admin.ConsoleCSP, "default-src 'self'")
	require.Contains(t, admin.ConsoleCSP, "frame-ancestors 'none'")

	for path, typ := range map[string]string{
		"/admin/":            "text/html; charset=utf-8",
		"/admin/index.html":  "text/html; charset=utf-8",
		"/admin/console.js":  "text/javascript; charset=utf-8",
		"/admin/console.css": "text/css; charset=utf-8",
	} {
		rec := get("GET", path)
		require.Equal(t, http.StatusOK, rec.Code, path)
		require.Equal(t, typ, rec.Header().Get("Content-Type"), path)
		body := rec.Body.String()
		// Nothing from another origin: no absolute URL, no inline script
		// or style for the CSP to refuse.
		require.NotContains(t, body, "http://", path)
		require.NotContains(t, body, "https://", path)
		require.NotContains(t, body, "//cdn", path)
		if strings.HasSuffix(typ, "html; charset=utf-8") {
			require.Contains(t, body, `<meta name="pluginhost-admin-api" content="/api/admin">`)
			require.Contains(t, body, `<script src="console.js" defer></script>`)
			require.NotContains(t, body, "<style")
			require.NotContains(t, body, " style=")
			require.Equal(t, 1, strings.Count(body, "<script"), "one script, from a file")
			require.Contains(t, body, `<dialog id="confirm-dialog"`)
			require.Contains(t, body, `<label for="token">`)
		}
	}
	require.Equal(t, http.StatusOK, get("HEAD", "/admin/console.js").Code)
	require.Equal(t, http.StatusNotFound, get("GET", "/admin/nope.js").Code)
	require.Equal(t, http.StatusNotFound, get("GET", "/admin/console/console.js").Code, "the embedded folder is not browsable")
	rec := get("POST", "/admin/")
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code)
	require.Equal(t, "GET, HEAD", rec.Header().Get("Allow"))

	// The shell holds no data: the page has the API's path, nothing else
	// about the host.
	console2, err := admin.Console(admin.ConsoleConfig{API: "/ops/api/"})
	require.NoError(t, err)
	rec = httptest.NewRecorder()
	console2.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	require.Contains(t, rec.Body.String(), `content="/ops/api"`)
}

func TestConsoleConfigAPI(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "api/admin", "//evil.example/api", "https://evil.example/api"} {
		_, err := admin.Console(admin.ConsoleConfig{API: bad})
		require.ErrorContains(t, err, "ConsoleConfig.API", bad)
	}
	// The path is an attribute of the page: escaped, never markup.
	console, err := admin.Console(admin.ConsoleConfig{API: `/a"><script>x</script>`})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	console.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	require.NotContains(t, rec.Body.String(), "<script>x</script>")
}

// paged is a plugin with console assets and [[nav]] entries.
type paged struct {
	plugin
	files fs.FS
}

func (p *paged) ConsoleAssets() fs.FS { return p.files }

var _ pluginhost.ConsoleAssets = (*paged)(nil)

const navManifest = `
[[nav]]
label = "Reports"
path = "index.html"
icon = "icon.svg"

[[nav]]
label = "Archive"
path = "pages/archive.html"
`

// consoleFixture starts a Manager with a plugin "pages" that serves
// console assets, and "nofiles", whose manifest has [[nav]] entries but
// that serves none, with the admin API at /api/admin and the plugins at
// /api/plugin.
func consoleFixture(t *testing.T) (*pluginhosttest.Instance, http.Handler) {
	t.Helper()
	pages := &paged{plugin: *newPlugin("pages", navManifest), files: fstest.MapFS{
		"index.html":         {Data: []byte("<h1>Reports</h1>")},
		"icon.svg":           {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)},
		"pages/archive.html": {Data: []byte("<h1>Archive</h1>")},
		"pages/index.html":   {Data: []byte("<h1>Pages</h1>")},
	}}
	nofiles := newPlugin("nofiles", navManifest)
	inst := pluginhosttest.Start(t, pluginhosttest.Options{AllowFailures: true}, pages, nofiles) // AllowFailures: not RequireAll, so that pages can be disabled
	api, err := admin.New(admin.Config{Manager: inst.Manager, Insecure: true})
	require.NoError(t, err)
	r := chi.NewRouter()
	r.Mount("/api/admin", api)
	r.Mount("/api/plugin", inst.Manager.Handler())
	return inst, r
}

func serve(h http.Handler, method, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestNavAndPluginPages(t *testing.T) {
	t.Parallel()
	inst, h := consoleFixture(t)

	type navList struct{ Nav []admin.NavItem }
	want := []admin.NavItem{
		{Plugin: "pages", PluginName: "Plugin pages", NavEntry: pluginhost.NavEntry{Label: "Reports", Path: "index.html", Icon: "icon.svg"},
			Href: "/api/plugin/pages/_console/index.html", IconHref: "/api/plugin/pages/_console/icon.svg"},
		{Plugin: "pages", PluginName: "Plugin pages", NavEntry: pluginhost.NavEntry{Label: "Archive", Path: "pages/archive.html"},
			Href: "/api/plugin/pages/_console/pages/archive.html"},
	}
	rec := serve(h, "GET", "/api/admin/nav")
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, want, decode[navList](t, rec, http.StatusOK).Nav, "nofiles serves no console: its entries are not listed")

	// The pages are served through the plugin's mount, with a CSP.
	for path, body := range map[string]string{
		"/api/plugin/pages/_console/index.html":         "<h1>Reports</h1>",
		"/api/plugin/pages/_console/":                   "<h1>Reports</h1>",
		"/api/plugin/pages/_console/pages/archive.html": "<h1>Archive</h1>",
		"/api/plugin/pages/_console/pages":              "<h1>Pages</h1>",
		"/api/plugin/pages/_console/pages/":             "<h1>Pages</h1>",
	} {
		rec := serve(h, "GET", path)
		require.Equal(t, http.StatusOK, rec.Code, path)
		require.Equal(t, body, rec.Body.String(), path)
		require.Contains(t, rec.Header().Get("Content-Security-Policy"), "default-src 'self'", path)
		require.Contains(t, rec.Header().Get("Content-Security-Policy"), "frame-ancestors 'self'", path)
	}
	require.Equal(t, "image/svg+xml", serve(h, "GET", "/api/plugin/pages/_console/icon.svg").Header().Get("Content-Type"))
	for _, path := range []string{
		"/api/plugin/pages/_console/missing.html",
		"/api/plugin/pages/_console/../_console/index.html",
		"/api/plugin/pages/_console/pages/../../index.html",
		"/api/plugin/nofiles/_console/index.html",
	} {
		require.Equal(t, http.StatusNotFound, serve(h, "GET", path).Code, path)
	}
	require.Contains(t, inst.Manager.Routes(), pluginhost.RouteInfo{Method: "GET", Pattern: "/api/plugin/pages/_console/*", Plugin: "pages"})

	// Disabled, the plugin's pages answer 503 and its nav entries are gone.
	require.Equal(t, http.StatusOK, serve(h, "POST", "/api/admin/plugins/pages/disable").Code)
	rec = serve(h, "GET", "/api/admin/nav")
	require.Empty(t, decode[navList](t, rec, http.StatusOK).Nav)
	require.Equal(t, http.StatusServiceUnavailable, serve(h, "GET", "/api/plugin/pages/_console/index.html").Code)

	// Enabled again, they are back.
	require.Equal(t, http.StatusOK, serve(h, "POST", "/api/admin/plugins/pages/enable").Code)
	require.Equal(t, want, decode[navList](t, serve(h, "GET", "/api/admin/nav"), http.StatusOK).Nav)
	require.Equal(t, http.StatusOK, serve(h, "GET", "/api/plugin/pages/_console/index.html").Code)
}

func TestEventsAndHealth(t *testing.T) {
	t.Parallel()
	f := start(t, pluginhosttest.Options{})

	type eventList struct{ Events []pluginhost.LifecycleEvent }
	started := decode[eventList](t, f.do(t, "GET", "/events", ""), http.StatusOK).Events
	require.NotEmpty(t, started)
	for _, e := range started {
		require.Equal(t, "plugin_started", e.Type, e)
		require.NotEqual(t, "broken", e.Plugin, "a failed plugin did not start")
	}
	last := started[len(started)-1].Seq

	decode[pluginhost.PluginStatus](t, f.do(t, "POST", "/plugins/notes/disable", ""), http.StatusOK)
	require.NoError(t, f.inst.Manager.Settings().Set(context.Background(), "app.name", "changed"))
	after := decode[eventList](t, f.do(t, "GET", fmtAfter(last), ""), http.StatusOK).Events
	var got []string
	for _, e := range after {
		require.Greater(t, e.Seq, last)
		require.False(t, e.Time.IsZero())
		got = append(got, e.Type+" "+e.Plugin+" "+e.Reason+e.Key)
	}
	require.Equal(t, []string{
		"plugin_disabled notes disabled by an operator",
		"plugin_disabled reports dependency notes disabled",
		"setting_changed core app.name",
	}, got)
	all := decode[eventList](t, f.do(t, "GET", "/events", ""), http.StatusOK).Events
	require.Equal(t, append(started, after...), all, "oldest first")
	require.Contains(t, decode[errorBody](t, f.do(t, "GET", "/events?after=x", ""), http.StatusBadRequest).Error, `after="x"`)

	health := decode[pluginhost.HealthReport](t, f.do(t, "GET", "/health", ""), http.StatusOK)
	require.Empty(t, health.Database.Error)
	states := map[string]pluginhost.State{}
	for _, ph := range health.Plugins {
		states[ph.ID] = ph.State
		if ph.ID == "broken" {
			require.Contains(t, ph.Error, "cannot reach the mail server")
		}
	}
	require.Equal(t, map[string]pluginhost.State{
		"auth": pluginhost.StateRunning, "broken": pluginhost.StateFailed,
		"notes": pluginhost.StateDisabled, "reports": pluginhost.StateDisabled,
	}, states)
}

func fmtAfter(seq uint64) string { return "/events?after=" + strconv.FormatUint(seq, 10) }
