package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/pluginhost/pluginhost"
)

// The routes of a plugin's removal: export its rows, purge what it left.
//
//	GET  /plugins/{id}/export  its rows as JSON lines (application/x-ndjson)
//	POST /plugins/{id}/purge   body {"confirm": "<id>"}; 200 {"purged": "<id>"}

// maxPurgeBody bounds the body of a purge request.
const maxPurgeBody = 4 << 10

// exportPlugin streams the plugin's rows as [pluginhost.Manager.Export]
// writes them: 200 with application/x-ndjson, 404 for an id neither
// registered nor recorded, 500 when the export fails before its first
// line. A failure after the first line aborts the response, so that a
// client never mistakes a truncated export for a whole one.
func (a *api) exportPlugin(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	sw := &streamWriter{w: w, id: id}
	err := a.m.Export(r.Context(), id, sw)
	switch {
	case err == nil:
		sw.begin() // a plugin without tables: an empty export
	case sw.begun:
		panic(http.ErrAbortHandler)
	case errors.Is(err, pluginhost.ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("no plugin %q", id))
	default:
		writeError(w, http.StatusInternalServerError, err.Error())
	}
}

// streamWriter sends the export's headers with its first bytes.
type streamWriter struct {
	w     http.ResponseWriter
	id    string
	begun bool
}

func (s *streamWriter) begin() {
	if s.begun {
		return
	}
	s.begun = true
	h := s.w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", s.id+".ndjson"))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	s.w.WriteHeader(http.StatusOK)
}

func (s *streamWriter) Write(p []byte) (int, error) {
	s.begin()
	return s.w.Write(p)
}

// purgePlugin runs [pluginhost.Manager.Purge] once the body repeats the
// plugin's id, {"confirm": "<id>"}: 400 otherwise, with what the body must
// be; 404 for an id neither registered nor recorded; 409 when the plugin
// cannot be purged (registered and not disabled, or read by another
// plugin); 503 when the Manager does not run; 200 {"purged": "<id>"}.
func (a *api) purgePlugin(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	want := fmt.Sprintf(`the body must be {"confirm": %q}, repeating the id of the plugin to purge`, id)
	var body struct {
		Confirm *string `json:"confirm"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxPurgeBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("%s (%v)", want, err))
		return
	}
	if body.Confirm == nil || *body.Confirm != id {
		writeError(w, http.StatusBadRequest, want)
		return
	}
	// Once accepted, the purge runs to its end even if the client goes
	// away: it is one transaction either way.
	if err := a.m.Purge(context.WithoutCancel(r.Context()), id); err != nil {
		status := http.StatusInternalServerError
		switch {
		case errors.Is(err, pluginhost.ErrNotRunning), errors.Is(err, pluginhost.ErrClosed):
			status = http.StatusServiceUnavailable
		case errors.Is(err, pluginhost.ErrNotFound):
			status = http.StatusNotFound
		case errors.Is(err, pluginhost.ErrNotPurgeable):
			status = http.StatusConflict
		}
		writeError(w, status, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"purged": id})
}
