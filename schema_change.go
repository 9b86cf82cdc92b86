package pluginhost

import "github.com/pluginhost/pluginhost/internal/migrate"

// SchemaChange is one difference between a table a plugin declares and the
// table its database holds: a change Start applies by itself (additive:
// nothing is lost or reinterpreted) or one it refuses, as Start's error and
// [Manager.Plan] report it.
type SchemaChange struct {
	// Plugin is the plugin's id; Table the table's declared name.
	Plugin string `json:"plugin"`
	Table  string `json:"table"`
	// Change says what changed, such as `column "body" added`.
	Change string `json:"change"`
	// SQL is, for an additive change, the DDL Start runs for it; for a
	// refused one, the statements a migration of the plugin would need, in
	// the current dialect.
	SQL string `json:"sql"`
	// Refused is set when Start does not make the change itself: it would
	// lose or reinterpret data.
	Refused bool `json:"refused,omitempty"`
}

// versionEntry is the ledger version, on a plugin's line, of the row that
// records the manifest version the plugin's schema was last brought to;
// its checksum column holds that version.
const versionEntry = "manifest-version"

// recordedVersion returns the manifest version recorded for plugin id, and
// whether one is.
func recordedVersion(l migrate.Ledger, id string) (string, bool) {
	e, ok := l.Get(id, versionEntry)
	return e.Checksum, ok
}
