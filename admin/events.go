package admin

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/pluginhost/pluginhost"
)

// events serves GET /events: {"events": [...]}, the last built-in events
// of the Manager ([pluginhost.Manager.RecentEvents]), oldest first, each
// with its seq, time, type, plugin, and reason or setting key. With
// ?after=N only the events whose seq is greater than N, for a client that
// polls; a malformed N is a 400.
func (a *api) events(w http.ResponseWriter, r *http.Request) {
	var after uint64
	if s := r.URL.Query().Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("after=%q: give the seq of the last event seen, a whole number", s))
			return
		}
		after = n
	}
	out := []pluginhost.LifecycleEvent{}
	for _, e := range a.m.RecentEvents() {
		if e.Seq > after {
			out = append(out, e)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out})
}
