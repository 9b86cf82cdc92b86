// Package pluginid holds the rules on plugin ids that several packages rely
// on: the longest id and the ids reserved for the host. Manifest validation
// in the root package, the table names of internal/sqlgen and the ledger
// lines of internal/migrate all take them from here.
package pluginid

import "slices"

// MaxLen is the longest plugin id, in bytes, so that derived names such as
// <id>__<table> fit PostgreSQL's 63-byte identifiers. The documentation of
// pluginhost.Manifest.ID states the number: change it with this.
const MaxLen = 40

// The ids under which the migration ledger records the host's own
// migrations: Library for pluginhost's tables, Core for the host's core
// migrations.
const (
	Library = "pluginhost"
	Core    = "core"
)

// reserved lists the ids no plugin may take.
var reserved = []string{Core, Library}

// Reserved reports whether id is reserved for the host, so that no plugin
// may take it.
func Reserved(id string) bool { return slices.Contains(reserved, id) }
