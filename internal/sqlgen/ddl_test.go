package sqlgen

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite testdata/ddl/*.golden from the generated DDL")

const goldenDir = "../../testdata/ddl"

// testPrefix is the prefix of plugin "my-plugin".
const testPrefix = "my_plugin__"

// goldenCase is a named schema rendered to testdata/ddl/<name>.<dialect>.golden
// and executed on each database.
type goldenCase struct {
	name   string
	prefix string
	tables []Table
}

var goldenCases = []goldenCase{
	{name: "notes", prefix: testPrefix, tables: []Table{{
		Name: "notes",
		Columns: []Column{
			{Name: "id", PrimaryKey: true},
			{Name: "title", NotNull: true},
			{Name: "body", Default: ""},
			{Name: "pinned", Type: TypeBoolean, NotNull: true, Default: false},
			{Name: "created_at", NotNull: true, DefaultNow: true},
			{Name: "updated_at"},
		},
		Indexes: []Index{{Columns: []string{"created_at"}}, {Columns: []string{"pinned", "created_at"}}},
	}}},
	{name: "types", prefix: testPrefix, tables: []Table{{
		Name: "samples",
		Columns: []Column{
			// Inferred.
			{Name: "id", PrimaryKey: true},
			{Name: "count"},
			{Name: "created_at"},
			{Name: "birthdate"},
			{Name: "message"},
			{Name: "account_id"},
			{Name: "discount"},
			// Explicit.
			{Name: "a_text", Type: TypeText},
			{Name: "an_integer", Type: TypeInteger},
			{Name: "a_real", Type: TypeReal},
			{Name: "a_boolean", Type: TypeBoolean},
			{Name: "a_timestamp", Type: TypeTimestamp},
			{Name: "a_json", Type: TypeJSON},
			{Name: "a_blob", Type: TypeBlob},
		},
	}}},
	{name: "composite_pk", prefix: testPrefix, tables: []Table{{
		Name: "memberships",
		Columns: []Column{
			{Name: "team", Type: TypeText},
			{Name: "member_id", Type: TypeInteger},
			{Name: "role", NotNull: true, Default: "member"},
			{Name: "joined_at", DefaultNow: true},
		},
		PrimaryKey: []string{"team", "member_id"},
	}}},
	{name: "foreign_keys", prefix: testPrefix, tables: []Table{
		// Declared children first: Build puts the referenced tables first.
		{Name: "tasks", Columns: []Column{
			{Name: "id", PrimaryKey: true},
			{Name: "project_id", Type: TypeInteger, NotNull: true, References: "projects.id", OnDelete: OnDeleteCascade},
			{Name: "assignee", References: "users.email", OnDelete: OnDeleteSetNull},
			{Name: "reviewer_id", Type: TypeInteger, References: "users.id", OnDelete: OnDeleteRestrict},
			{Name: "creator_id", Type: TypeInteger, References: "users.id"},
		}},
		{Name: "projects", Columns: []Column{
			{Name: "id", PrimaryKey: true},
			{Name: "owner_id", Type: TypeInteger, NotNull: true, References: "users.id", OnDelete: OnDeleteCascade},
			{Name: "name", NotNull: true},
		}},
		{Name: "users", Columns: []Column{
			{Name: "id", PrimaryKey: true},
			{Name: "email", NotNull: true, Unique: true},
		}},
	}},
	{name: "indexes", prefix: "a_plugin_with_a_rather_long_identifier__", tables: []Table{{
		Name: "events",
		Columns: []Column{
			{Name: "id", PrimaryKey: true},
			{Name: "kind", NotNull: true},
			{Name: "source"},
			{Name: "external_reference", Unique: true},
			{Name: "happened_at"},
		},
		Indexes: []Index{
			{Columns: []string{"kind"}},
			{Columns: []string{"source"}, Unique: true},
			{Columns: []string{"kind", "happened_at"}},
			{Columns: []string{"source", "kind", "happened_at"}, Unique: true},
		},
	}, {
		// A 61-byte physical name: every index name is hashed and the
		// physical name truncated to fit.
		Name: "attachment_versions",
		Columns: []Column{
			{Name: "event_id", Type: TypeInteger, NotNull: true, References: "events.id", OnDelete: OnDeleteCascade},
			{Name: "version", Type: TypeInteger, NotNull: true},
			{Name: "external_reference", Unique: true},
		},
		PrimaryKey: []string{"event_id", "version"},
		Indexes:    []Index{{Columns: []string{"version"}}, {Columns: []string{"external_reference", "version"}, Unique: true}},
	}}},
	{name: "defaults", prefix: testPrefix, tables: []Table{{
		Name: "defaults",
		Columns: []Column{
			{Name: "plain", Default: "hello"},
			{Name: "quoted", Default: `it's "quoted" -- not a comment; ?`},
			{Name: "empty", Default: ""},
			{Name: "doc", Type: TypeJSON, Default: `{"tags": ["a", "b"], "n": 1}`},
			{Name: "starts_at", Default: "2024-01-02T03:04:05Z"},
			{Name: "due_date", Default: "2024-12-31"},
			{Name: "seen_at", DefaultNow: true},
			{Name: "score", Type: TypeInteger, Default: -42},
			{Name: "tiny", Type: TypeInteger, Default: int8(7)},
			{Name: "big", Type: TypeInteger, Default: uint64(9007199254740993)},
			{Name: "ratio", Type: TypeReal, Default: 0.25},
			{Name: "whole", Type: TypeReal, Default: 3},
			{Name: "single", Type: TypeReal, Default: float32(0.1)},
			{Name: "huge", Type: TypeReal, Default: 1e21},
			{Name: "enabled", Type: TypeBoolean, Default: true},
			{Name: "disabled", Type: TypeBoolean, Default: false},
		},
	}}},
	{name: "self_reference", prefix: testPrefix, tables: []Table{{
		Name: "categories",
		Columns: []Column{
			{Name: "id", PrimaryKey: true},
			{Name: "parent_id", Type: TypeInteger, References: "categories.id", OnDelete: OnDeleteCascade},
			{Name: "slug", NotNull: true, Unique: true},
			{Name: "alias_of", References: "categories.slug", OnDelete: OnDeleteSetNull},
		},
	}}},
	{name: "host_tables", prefix: "", tables: []Table{{
		Name: "schema_ledger",
		Columns: []Column{
			{Name: "line", NotNull: true},
			{Name: "version", Type: TypeInteger, NotNull: true},
			{Name: "checksum", NotNull: true},
			{Name: "applied_at", NotNull: true, DefaultNow: true},
		},
		PrimaryKey: []string{"line", "version"},
	}}},
}

// render returns the statements of a schema as the golden files hold them.
func render(s *Schema, d Dialect) string {
	return strings.Join(s.Create(d), ";\n") + ";\n"
}

func mustBuild(t *testing.T, prefix string, tables []Table) *Schema {
	t.Helper()
	s, err := Build(prefix, tables)
	require.NoError(t, err)
	return s
}

func TestGoldenDDL(t *testing.T) {
	t.Parallel()
	for _, tc := range goldenCases {
		for _, d := range []Dialect{SQLite, Postgres} {
			t.Run(tc.name+"/"+string(d), func(t *testing.T) {
				t.Parallel()
				got := render(mustBuild(t, tc.prefix, tc.tables), d)
				path := filepath.Join(goldenDir, tc.name+"."+string(d)+".golden")
				if *update {
					require.NoError(t, os.MkdirAll(goldenDir, 0o755))
					require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
				}
				want, err := os.ReadFile(path)
				require.NoError(t, err, "run go test ./internal/sqlgen -update to create it")
				require.Equal(t, string(want), got)
			})
		}
	}
}

func TestCreateTableGeneratedKey(t *testing.T) {
	t.Parallel()
	s := mustBuild(t, testPrefix, []Table{{Name: "items", Columns: []Column{{Name: "id", PrimaryKey: true}}}})
	require.Equal(t, []string{"CREATE TABLE \"my_plugin__items\" (\n  \"id\" INTEGER PRIMARY KEY\n)"}, CreateTable(SQLite, &s.Tables[0]))
	require.Equal(t, []string{"CREATE TABLE \"my_plugin__items\" (\n  \"id\" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY\n)"}, CreateTable(Postgres, &s.Tables[0]))
	require.Equal(t, `DROP TABLE IF EXISTS "my_plugin__items"`, DropTable(Postgres, &s.Tables[0]))
}

func TestNativeType(t *testing.T) {
	t.Parallel()
	want := map[string][2]string{
		TypeText: {"TEXT", "text"}, TypeInteger: {"INTEGER", "bigint"}, TypeReal: {"REAL", "double precision"},
		TypeBoolean: {"BOOLEAN", "boolean"}, TypeTimestamp: {"TIMESTAMP", "timestamptz"},
		TypeJSON: {"TEXT", "jsonb"}, TypeBlob: {"BLOB", "bytea"},
	}
	require.Len(t, want, len(validTypes))
	for typ, native := range want {
		require.Equal(t, native[0], NativeType(SQLite, typ), typ)
		require.Equal(t, native[1], NativeType(Postgres, typ), typ)
	}
	require.Panics(t, func() { NativeType("mysql", TypeText) })
	require.Panics(t, func() { NativeType(SQLite, "varchar") })
}

func TestLiteral(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name           string
		v              any
		sqlite, postgr string
	}{
		{"string", "a'b''c", "'a''b''''c'", "'a''b''''c'"},
		{"backslash", `C:\dir`, `'C:\dir'`, `'C:\dir'`},
		{"integer", int64(-9), "-9", "-9"},
		{"float", 2.5, "2.5", "2.5"},
		{"tiny float", 1e-7, "1e-07", "1e-07"},
		{"true", true, "1", "TRUE"},
		{"false", false, "0", "FALSE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.sqlite, literal(SQLite, tc.v))
			require.Equal(t, tc.postgr, literal(Postgres, tc.v))
		})
	}
}
