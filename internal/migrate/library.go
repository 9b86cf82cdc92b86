package migrate

import (
	"embed"
	"io/fs"

	"github.com/pluginhost/pluginhost/internal/dialect"
	"github.com/pluginhost/pluginhost/internal/pluginid"
)

//go:embed library
var library embed.FS

// Library holds the migrations of pluginhost's own tables (settings, plugin
// state), in folders "sqlite" and "postgres", applied on the ledger line
// [LibraryLine] before the host's core migrations.
var Library, _ = fs.Sub(library, "library")

// The ledger lines of pluginhost's own tables and of the host's core
// migrations: the ids [pluginid.Reserved] keeps from plugins.
const (
	LibraryLine = pluginid.Library
	CoreLine    = pluginid.Core
)

// LedgerDDL returns the statement that creates the ledger table for a
// dialect.
func LedgerDDL(d dialect.Dialect) string {
	ts := "TIMESTAMP"
	if d == dialect.Postgres {
		ts = "timestamptz"
	}
	return `CREATE TABLE IF NOT EXISTS ` + LedgerTable + ` (
    line       TEXT NOT NULL,
    version    TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    definition TEXT NOT NULL DEFAULT '',
    applied_at ` + ts + ` NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (line, version)
)`
}
