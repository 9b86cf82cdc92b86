package admin

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// The console's files: index.html (a template), console.css, console.js.
//
//go:embed console
var consoleFS embed.FS

// ConsoleCSP is the Content-Security-Policy of every file of the console:
// scripts, styles, images, frames and requests from the console's own
// origin only (no inline script or style, nothing from another host), and
// the console itself framed by no page.
const ConsoleCSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// ConsoleConfig configures the web console built by [Console].
type ConsoleConfig struct {
	// API is the URL path at which the browser reaches the admin API that
	// [New] built, such as "/api/admin": an absolute path on the console's
	// own origin. Required.
	API string
}

// Console returns the web console: a page, its stylesheet and its script,
// embedded in the binary, that operators open in a browser to see and
// operate the Manager through the admin API. Its paths are relative
// (/, /console.css, /console.js), so that the host mounts it under the
// prefix it chooses, with a trailing slash:
//
//	console, err := admin.Console(admin.ConsoleConfig{API: "/api/admin"})
//	router.Mount("/admin/", http.StripPrefix("/admin", console))
//
// The console holds no data and takes no credentials itself, so it is
// served to anyone: every datum comes from the admin API, with the bearer
// token the operator types into its login form (kept in the tab's
// sessionStorage and sent as "Authorization: Bearer <token>"), so it is
// behind the API's Config.Authorize. When the API answers 401 the console
// returns to its login form. A host whose Authorize takes other
// credentials than a bearer token (cookies) still works, since the browser
// sends those itself.
//
// Pages: the plugins with their state, reason, warnings, version,
// permissions, routes, health (GET /health) and counters, polled; enable
// and disable, after a confirmation; the settings by group, with inputs of
// their type, encrypted values masked and writable; the routes; the recent
// lifecycle events (GET /events); the Plan (GET /plan); the plugins'
// own pages (GET /nav, shown in a frame); and, when the API lists plugins
// in state "removed", those. Fields the API adds later, such as per-plugin
// metrics, workers and jobs, are shown when present.
//
// Every response carries [ConsoleCSP], X-Content-Type-Options: nosniff and
// Cache-Control: no-cache. Any other path is a 404; methods other than GET
// and HEAD are a 405.
func Console(cfg ConsoleConfig) (http.Handler, error) {
	if !strings.HasPrefix(cfg.API, "/") || strings.HasPrefix(cfg.API, "//") {
		return nil, fmt.Errorf("admin: ConsoleConfig.API %q must be an absolute URL path on the console's origin, such as \"/api/admin\"", cfg.API)
	}
	tmpl, err := template.ParseFS(consoleFS, "console/index.html")
	if err != nil {
		return nil, err
	}
	var index bytes.Buffer
	if err := tmpl.Execute(&index, map[string]string{"API": strings.TrimSuffix(cfg.API, "/")}); err != nil {
		return nil, err
	}
	files := map[string][]byte{"index.html": index.Bytes()}
	for _, name := range []string{"console.css", "console.js"} {
		b, err := fs.ReadFile(consoleFS, path.Join("console", name))
		if err != nil {
			return nil, err
		}
		files[name] = b
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ConsoleCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		h.Set("Referrer-Policy", "no-referrer")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, "/")
		if name == "" {
			name = "index.html"
		}
		b, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
	}), nil
}
