package pluginhost

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
)

// ConsolePath is where, under a plugin's mount, the Manager serves the
// files of a plugin that implements [ConsoleAssets]: plugin "notes" serves
// its index.html at /api/plugin/notes/_console/index.html.
const ConsolePath = "/_console/"

// consoleCSP is the Content-Security-Policy of a plugin's console files:
// nothing from another origin, no inline script, and framed only by pages
// of the host's own origin (the console).
const consoleCSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"

// consoleRegistrar registers a plugin's routes, then serves its console
// assets under ConsolePath. Both run inside the routes phase's hook call.
type consoleRegistrar struct {
	rr RouteRegistrar // nil for a plugin that registers no routes
	ca ConsoleAssets
}

func (c consoleRegistrar) RegisterRoutes(r chi.Router, h *Host) {
	if c.rr != nil {
		c.rr.RegisterRoutes(r, h)
	}
	fsys := c.ca.ConsoleAssets()
	if fsys == nil {
		return
	}
	r.Get(ConsolePath+"*", consoleFiles(fsys))
}

// consoleFiles serves the files of fsys, the path after ConsolePath
// naming one; a directory (the empty path included) serves its
// index.html. It runs in the plugin's mount, like the plugin's handlers:
// a panic in fsys is recovered and counts against the plugin. It lists no directory and answers 404 for what fsys does not
// hold, a name that is not a valid fs path included (such as one with ".."
// segments).
func consoleFiles(fsys fs.FS) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimSuffix(chi.URLParam(r, "*"), "/")
		if name == "" {
			name = "."
		}
		if !fs.ValidPath(name) {
			writeJSONError(w, http.StatusNotFound, "not found", "")
			return
		}
		data, err := readConsoleFile(fsys, name)
		if errors.Is(err, errIsDir) {
			name = path.Join(name, "index.html")
			data, err = readConsoleFile(fsys, name)
		}
		if err != nil {
			writeJSONError(w, http.StatusNotFound, "not found", "")
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", consoleCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, path.Base(name), time.Time{}, bytes.NewReader(data))
	}
}

var errIsDir = errors.New("is a directory")

// readConsoleFile reads file name of fsys, or returns errIsDir.
func readConsoleFile(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, errIsDir
	}
	return io.ReadAll(f)
}
