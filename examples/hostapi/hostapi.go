// Package hostapi is what the example host offers its plugins beyond
// pluginhost itself: the interface of its extension point. Plugins that
// contribute import it; so does the host.
package hostapi

import "context"

// StatusReporters is the name of the extension point through which plugins
// add a section to the host's GET /api/health.
const StatusReporters = "host.status"

// StatusReporter reports a plugin's own status, shown under its provider
// name in GET /api/health.
type StatusReporter interface {
	Status(ctx context.Context) (any, error)
}
