package admin

import (
	"fmt"
	"net/http"
)

// plan serves GET /plan: what the Manager's Start would do on the database
// as it is now, as [pluginhost.Manager.Plan] reports it (the core's pending
// migrations; for each plugin whether it would start or why not, its
// pending migrations, tables to create, schema changes, once-hooks and
// settings to add), 200 with the Plan as JSON. Making it changes nothing
// and takes no lock; it works before Start, on a running Manager and after
// Shutdown, as long as the database can be read: otherwise 500 with the
// reason.
func (a *api) plan(w http.ResponseWriter, r *http.Request) {
	p, err := a.m.Plan(r.Context())
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("plan: %v", err))
		return
	}
	writeJSON(w, http.StatusOK, p)
}
