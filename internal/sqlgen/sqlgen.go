// Package sqlgen validates a plugin's declared tables and renders them as DDL
// for SQLite and PostgreSQL.
//
// It is the only place where identifiers from plugins meet SQL: every
// declared name is checked against a strict grammar (see [ValidName]) and
// then quoted (see [Quote]) wherever it appears in a statement, and every
// default value is checked against its column's type before it is rendered
// as a literal.
//
// # Flow
//
// The root package converts a plugin's public declarations to [Table] values
// and calls [Build] with the plugin's prefix ([PluginPrefix]). Build checks
// everything at once, reporting every problem it finds joined with
// [errors.Join], and returns a [Schema]: the tables in creation order, each
// with its physical name, resolved column types, primary key, index names and
// a canonical, dialect-independent definition with its checksum. [CreateTable]
// and [DropTable] render statements for one dialect; [Diff] describes the
// change between two canonical definitions; [Rebind] rewrites "?"
// placeholders for PostgreSQL.
//
// # Names
//
// A plugin table's physical name is its plugin id with "-" replaced by "_",
// then "__", then the declared name: plugin "my-plugin", table "entities" is
// "my_plugin__entities". Ids are slugs and declared names contain no "__",
// so the first "__" of a physical name splits it back ([SplitPhysical]) and
// no two (plugin, table) pairs share a physical name. Index names contain a
// second "__" and therefore never collide with a table.
//
// The package imports nothing from the root package; all values are plain
// data and safe to use from several goroutines once built.
package sqlgen

import "github.com/pluginhost/pluginhost/internal/dialect"

// Dialect is the SQL dialect, [dialect.Dialect], under the name the
// functions of this package use.
type Dialect = dialect.Dialect

// The supported dialects. Functions taking a Dialect panic on any other
// value: the root package validates the dialect before calling them.
const (
	SQLite   = dialect.SQLite
	Postgres = dialect.Postgres
)

// The column types, as written in [Column.Type].
const (
	TypeText      = "text"
	TypeInteger   = "integer"
	TypeReal      = "real"
	TypeBoolean   = "boolean"
	TypeTimestamp = "timestamp"
	TypeJSON      = "json"
	TypeBlob      = "blob"
)

// The foreign key actions, as written in [Column.OnDelete].
const (
	OnDeleteCascade  = "cascade"
	OnDeleteSetNull  = "set null"
	OnDeleteRestrict = "restrict"
)

// MaxIdentifier is the longest identifier, in bytes, that PostgreSQL keeps
// (NAMEDATALEN-1). Longer physical table names are an error; longer index
// names are shortened with a hash.
const MaxIdentifier = 63

// Table is a declared table, the input of [Build]. Table, [Column] and
// [Index] mirror the root package's types of the same names, field for
// field, with plain strings; a test there fails when they drift apart.
type Table struct {
	// Name is the declared name: lowercase letters, digits and single
	// underscores, starting with a letter (see [ValidName]).
	Name    string
	Columns []Column
	// PrimaryKey names the columns of a composite primary key. A single name
	// is accepted too and means the same as setting Column.PrimaryKey on
	// that column.
	PrimaryKey []string
	// Indexes lists secondary indexes.
	Indexes []Index
}

// Column is a declared column of a [Table].
type Column struct {
	// Name is the declared name, with the same grammar as a table name.
	Name string
	// Type is one of the Type* constants, or "" to infer it from Name with
	// [InferType].
	Type string
	// PrimaryKey makes this column the table's single-column primary key.
	PrimaryKey bool
	NotNull    bool
	Unique     bool
	// Default is nil (no default) or a literal matching Type: a string for
	// text, json (valid JSON) and timestamp (RFC 3339, "2006-01-02
	// 15:04:05" or "2006-01-02"); any Go integer type for integer; an
	// integer or a float for real; a bool for boolean. Blob columns take no
	// literal default.
	Default any
	// DefaultNow makes the current time the default of a timestamp column.
	DefaultNow bool
	// References is a foreign key, "table.column", naming a table of the
	// same [Build] call and a column of it that is its single-column primary
	// key or Unique.
	References string
	// OnDelete is the foreign key's action: "", "cascade", "set null" or
	// "restrict".
	OnDelete string
}

// Index is a declared secondary index.
type Index struct {
	Columns []string
	Unique  bool
}

// Schema is a validated, normalized set of one prefix's tables, built by
// [Build]. It is immutable once returned.
type Schema struct {
	// Tables in creation order: every table comes after the tables it
	// references, ties broken by declaration order. Drop in reverse order.
	Tables []Resolved
}

// Resolved is a validated table with everything derived from its
// declaration.
type Resolved struct {
	// Name is the declared name; Physical is the prefixed name used in SQL.
	Name, Physical string
	// Columns in declaration order, each with its Type set.
	Columns []ResolvedColumn
	// PrimaryKey names the primary key's columns (one or more), or is nil
	// when the table has no primary key.
	PrimaryKey []string
	// Indexes in declaration order, each with its generated name.
	Indexes []ResolvedIndex
	// Canonical is the JSON form of the normalized definition, independent
	// of the dialect, of the prefix and of whether types were inferred.
	Canonical string
	// Checksum is the hex SHA-256 of Canonical.
	Checksum string
}

// ResolvedColumn is a validated column.
type ResolvedColumn struct {
	Name string
	// Type is always set, inferred when the declaration left it empty.
	Type string
	// PrimaryKey is set on the column of a single-column primary key (not on
	// the members of a composite key, see [Resolved.PrimaryKey]).
	PrimaryKey bool
	// Generated is set when the column is a single integer primary key,
	// whose values the database generates: SQLite's rowid, a PostgreSQL
	// identity column.
	Generated bool
	// NotNull is also set on every primary key column. Unique is cleared on
	// a single-column primary key, which is unique already.
	NotNull, Unique bool
	// Default is nil or the normalized literal: a string, an int64, a
	// float64 or a bool.
	Default    any
	DefaultNow bool
	// References is the foreign key, or nil.
	References *Reference
	// OnDelete is "", "cascade", "set null" or "restrict".
	OnDelete string
}

// Reference is a resolved foreign key target.
type Reference struct {
	// Table and Column are declared names; Physical is the table's physical
	// name.
	Table, Column, Physical string
}

// ResolvedIndex is a validated index with its generated name (see
// [IndexName]).
type ResolvedIndex struct {
	Name    string
	Columns []string
	Unique  bool
}

// Lookup returns the table with the declared name, or nil.
func (s *Schema) Lookup(name string) *Resolved {
	for i := range s.Tables {
		if s.Tables[i].Name == name {
			return &s.Tables[i]
		}
	}
	return nil
}

// Create returns the statements that create every table of the schema and
// its indexes, in creation order.
func (s *Schema) Create(d Dialect) []string {
	var stmts []string
	for i := range s.Tables {
		stmts = append(stmts, CreateTable(d, &s.Tables[i])...)
	}
	return stmts
}

// column returns the named column, or nil.
func (t *Resolved) column(name string) *ResolvedColumn {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i]
		}
	}
	return nil
}
