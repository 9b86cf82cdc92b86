package sqlgen

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// users is a valid table other cases reference.
var users = Table{Name: "users", Columns: []Column{
	{Name: "id", PrimaryKey: true},
	{Name: "email", Unique: true},
	{Name: "nickname"},
}}

// notes returns a one-table schema whose "title" column is c.
func notesWith(c Column) []Table {
	c.Name = cmpOr(c.Name, "title")
	return []Table{{Name: "notes", Columns: []Column{{Name: "id", PrimaryKey: true}, c}}}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestBuildErrors(t *testing.T) {
	t.Parallel()
	id40 := strings.Repeat("p", 40)
	tests := []struct {
		name   string
		prefix string
		tables []Table
		// table and column the error is about ("" column for a table-level
		// problem), and a part of its message.
		table, column, want string
	}{
		{"invalid table name", testPrefix, []Table{{Name: "Notes", Columns: []Column{{Name: "a"}}}},
			"Notes", "", "invalid name: use lowercase letters"},
		{"physical name too long", id40 + "__", []Table{{Name: strings.Repeat("t", 22), Columns: []Column{{Name: "a"}}}},
			strings.Repeat("t", 22), "", "is 64 bytes, over PostgreSQL's limit of 63; shorten the table name or the plugin id"},
		{"no columns", testPrefix, []Table{{Name: "empty"}},
			"empty", "", "no columns; declare at least one"},
		{"duplicate table", testPrefix, []Table{users, users},
			"users", "", "declared more than once"},
		{"invalid column name", testPrefix, notesWith(Column{Name: "Title"}),
			"notes", "Title", "invalid name"},
		{"system column name", testPrefix, notesWith(Column{Name: "xmin"}),
			"notes", "xmin", "reserved by PostgreSQL for a system column"},
		{"duplicate column", testPrefix, []Table{{Name: "notes", Columns: []Column{{Name: "title"}, {Name: "title", Type: TypeInteger}}}},
			"notes", "title", "declared more than once"},
		{"unknown type", testPrefix, notesWith(Column{Type: "varchar"}),
			"notes", "title", `unknown type "varchar" (valid: text, integer, real, boolean, timestamp, json, blob)`},
		{"integer default on text", testPrefix, notesWith(Column{Default: 5}),
			"notes", "title", "default 5 is an integer, the column is text"},
		{"bool default on text", testPrefix, notesWith(Column{Default: true}),
			"notes", "title", "default true is a bool, the column is text"},
		{"bytes default on text", testPrefix, notesWith(Column{Default: []byte("x")}),
			"notes", "title", "default of type []uint8, the column is text"},
		{"NUL in a default", testPrefix, notesWith(Column{Default: "a\x00b"}),
			"notes", "title", `default "a\x00b" contains a NUL byte`},
		{"invalid UTF-8 default", testPrefix, notesWith(Column{Default: "a\xffb"}),
			"notes", "title", "is not valid UTF-8"},
		{"invalid JSON default", testPrefix, notesWith(Column{Type: TypeJSON, Default: "{nope"}),
			"notes", "title", `default "{nope" is not valid JSON`},
		{"invalid timestamp default", testPrefix, notesWith(Column{Type: TypeTimestamp, Default: "yesterday"}),
			"notes", "title", `default "yesterday" is not a timestamp`},
		{"float default on integer", testPrefix, notesWith(Column{Type: TypeInteger, Default: 1.5}),
			"notes", "title", "default 1.5 is a float, the column is integer (write an integer)"},
		{"whole float default on integer", testPrefix, notesWith(Column{Type: TypeInteger, Default: 2.0}),
			"notes", "title", "default 2 is a float, the column is integer"},
		{"string default on integer", testPrefix, notesWith(Column{Type: TypeInteger, Default: "5"}),
			"notes", "title", `default "5" is a string, the column is integer`},
		{"uint64 out of range", testPrefix, notesWith(Column{Type: TypeInteger, Default: uint64(math.MaxUint64)}),
			"notes", "title", "default 18446744073709551615 is out of the range of a 64-bit integer"},
		{"NaN default", testPrefix, notesWith(Column{Type: TypeReal, Default: math.NaN()}),
			"notes", "title", "default NaN is not a finite number"},
		{"infinite default", testPrefix, notesWith(Column{Type: TypeReal, Default: float32(math.Inf(1))}),
			"notes", "title", "default +Inf is not a finite number"},
		{"inexact real default", testPrefix, notesWith(Column{Type: TypeReal, Default: int64(1<<53 + 1)}),
			"notes", "title", "default 9007199254740993 cannot be represented exactly as a real"},
		{"string default on real", testPrefix, notesWith(Column{Type: TypeReal, Default: "1.5"}),
			"notes", "title", `default "1.5" is a string, the column is real`},
		{"integer default on boolean", testPrefix, notesWith(Column{Type: TypeBoolean, Default: 1}),
			"notes", "title", "default 1 is an integer, the column is boolean"},
		{"default on blob", testPrefix, notesWith(Column{Type: TypeBlob, Default: "x"}),
			"notes", "title", "blob columns take no literal default"},
		{"DefaultNow on text", testPrefix, notesWith(Column{DefaultNow: true}),
			"notes", "title", "DefaultNow on a text column; it is for timestamp columns"},
		{"DefaultNow and Default", testPrefix, notesWith(Column{Name: "seen_at", DefaultNow: true, Default: "2024-01-01"}),
			"notes", "seen_at", "both Default and DefaultNow are set; use one"},
		{"both primary key forms", testPrefix, []Table{{Name: "notes", Columns: []Column{{Name: "id", PrimaryKey: true}, {Name: "v"}}, PrimaryKey: []string{"id", "v"}}},
			"notes", "id", "PrimaryKey is set on the column and Table.PrimaryKey is (id, v); use one"},
		{"two primary key columns", testPrefix, []Table{{Name: "notes", Columns: []Column{{Name: "a", PrimaryKey: true}, {Name: "b", PrimaryKey: true}}}},
			"notes", "b", `PrimaryKey is set on columns "a", "b"; list them in Table.PrimaryKey`},
		{"unknown primary key column", testPrefix, []Table{{Name: "notes", Columns: []Column{{Name: "a"}}, PrimaryKey: []string{"a", "b"}}},
			"notes", "b", "listed in Table.PrimaryKey but not declared"},
		{"repeated primary key column", testPrefix, []Table{{Name: "notes", Columns: []Column{{Name: "a"}}, PrimaryKey: []string{"a", "a"}}},
			"notes", "a", "listed more than once in Table.PrimaryKey"},
		{"default on a generated key", testPrefix, []Table{{Name: "notes", Columns: []Column{{Name: "id", PrimaryKey: true, Default: 1}}}},
			"notes", "id", "a generated integer primary key cannot have a default"},
		{"OnDelete without References", testPrefix, notesWith(Column{OnDelete: OnDeleteCascade}),
			"notes", "title", `OnDelete "cascade" is set without References`},
		{"unknown OnDelete", testPrefix, []Table{users, {Name: "notes", Columns: []Column{{Name: "author", References: "users.email", OnDelete: "nullify"}}}},
			"notes", "author", `unknown on delete action "nullify" (valid: cascade, set null, restrict)`},
		{"set null on not null", testPrefix, []Table{users, {Name: "notes", Columns: []Column{{Name: "author", NotNull: true, References: "users.email", OnDelete: OnDeleteSetNull}}}},
			"notes", "author", `on delete "set null" on a not null column`},
		{"set null on a primary key", testPrefix, []Table{users, {Name: "profiles", Columns: []Column{{Name: "id", PrimaryKey: true, References: "users.id", OnDelete: OnDeleteSetNull}}}},
			"profiles", "id", `on delete "set null" on a primary key column`},
		{"malformed reference", testPrefix, []Table{users, {Name: "notes", Columns: []Column{{Name: "author", References: "users"}}}},
			"notes", "author", `references "users": write "table.column" with declared names`},
		{"reference with physical name", testPrefix, []Table{users, {Name: "notes", Columns: []Column{{Name: "author", References: "my_plugin__users.email"}}}},
			"notes", "author", `references "my_plugin__users.email": write "table.column"`},
		{"reference to an unknown table", testPrefix, []Table{{Name: "notes", Columns: []Column{{Name: "author", References: "people.email"}}}},
			"notes", "author", `references unknown table "people" (only tables declared together can be referenced)`},
		{"reference to an unknown column", testPrefix, []Table{users, {Name: "notes", Columns: []Column{{Name: "author", References: "users.mail"}}}},
			"notes", "author", `references unknown column "mail" of table "users"`},
		{"reference type mismatch", testPrefix, []Table{users, {Name: "notes", Columns: []Column{{Name: "user_id", References: "users.id"}}}},
			"notes", "user_id", `type text does not match integer, the type of "users"."id" it references; set Type`},
		{"reference to a plain column", testPrefix, []Table{users, {Name: "notes", Columns: []Column{{Name: "author", References: "users.nickname"}}}},
			"notes", "author", `references "users"."nickname", which is neither the single-column primary key of "users" nor Unique`},
		{"reference into a composite key", testPrefix, []Table{
			{Name: "versions", Columns: []Column{{Name: "doc"}, {Name: "version", Type: TypeInteger}}, PrimaryKey: []string{"doc", "version"}},
			{Name: "notes", Columns: []Column{{Name: "doc", References: "versions.doc"}}}},
			"notes", "doc", "neither the single-column primary key"},
		{"cycle", testPrefix, []Table{
			{Name: "a", Columns: []Column{{Name: "id", PrimaryKey: true}, {Name: "b_id", Type: TypeInteger, References: "b.id"}}},
			{Name: "b", Columns: []Column{{Name: "id", PrimaryKey: true}, {Name: "a_id", Type: TypeInteger, References: "a.id"}}}},
			"a", "", "foreign keys form a cycle: a -> b -> a; drop one of the references"},
		{"longer cycle", testPrefix, []Table{
			{Name: "root", Columns: []Column{{Name: "id", PrimaryKey: true}}},
			{Name: "a", Columns: []Column{{Name: "id", PrimaryKey: true}, {Name: "r", Type: TypeInteger, References: "root.id"}, {Name: "b", Type: TypeInteger, References: "b.id"}}},
			{Name: "c", Columns: []Column{{Name: "id", PrimaryKey: true}, {Name: "a", Type: TypeInteger, References: "a.id"}}},
			{Name: "b", Columns: []Column{{Name: "id", PrimaryKey: true}, {Name: "c", Type: TypeInteger, References: "c.id"}}}},
			"a", "", "foreign keys form a cycle: a -> b -> c -> a"},
		{"cycle named from its earliest table", testPrefix, []Table{
			{Name: "x", Columns: []Column{{Name: "id", PrimaryKey: true}, {Name: "b", Type: TypeInteger, References: "b.id"}}},
			{Name: "a", Columns: []Column{{Name: "id", PrimaryKey: true}, {Name: "b", Type: TypeInteger, References: "b.id"}}},
			{Name: "b", Columns: []Column{{Name: "id", PrimaryKey: true}, {Name: "a", Type: TypeInteger, References: "a.id"}}}},
			"a", "", "foreign keys form a cycle: a -> b -> a; drop one of the references"},
		{"index without columns", testPrefix, []Table{{Name: "notes", Columns: []Column{{Name: "a"}}, Indexes: []Index{{}}}},
			"notes", "", "index 1 has no columns"},
		{"index on an unknown column", testPrefix, []Table{{Name: "notes", Columns: []Column{{Name: "a"}}, Indexes: []Index{{Columns: []string{"a", "b"}}}}},
			"notes", "b", "index (a, b) names an undeclared column"},
		{"index with a repeated column", testPrefix, []Table{{Name: "notes", Columns: []Column{{Name: "a"}}, Indexes: []Index{{Columns: []string{"a", "a"}, Unique: true}}}},
			"notes", "a", "unique index (a, a) lists the column more than once"},
		{"identical indexes", testPrefix, []Table{{Name: "notes", Columns: []Column{{Name: "a"}, {Name: "b"}}, Indexes: []Index{{Columns: []string{"a", "b"}}, {Columns: []string{"a", "b"}}}}},
			"notes", "", "index (a, b) is declared more than once"},
		{"table named like an implicit index", testPrefix, []Table{
			{Name: "user", Columns: []Column{{Name: "email", Unique: true}}},
			{Name: "user_email_key", Columns: []Column{{Name: "a"}}}},
			"user_email_key", "", `the table and PostgreSQL's unique index of column "email" of table "user" would both be named "my_plugin__user_email_key" in PostgreSQL; rename one`},
		{"table named like an identity sequence", testPrefix, []Table{
			{Name: "items_id_seq", Columns: []Column{{Name: "a"}}},
			{Name: "items", Columns: []Column{{Name: "id", PrimaryKey: true}}}},
			"items", "", `PostgreSQL's identity sequence of column "id" and the table of table "items_id_seq" would both be named "my_plugin__items_id_seq"`},
		{"implicit name truncated out of the prefix", id40 + "__", []Table{{Name: "t", Columns: []Column{{Name: strings.Repeat("c", 60), Unique: true}}}},
			"t", "", `PostgreSQL's unique index of column "` + strings.Repeat("c", 60) + `" would be named "` + strings.Repeat("p", 29) + "_" + strings.Repeat("c", 29) + `_key", outside the prefix`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := Build(tc.prefix, tc.tables)
			require.Nil(t, s)
			require.Error(t, err)
			var found bool
			for _, e := range joined(err) {
				var se *Error
				require.ErrorAs(t, e, &se, "every error is an *Error")
				if se.Table == tc.table && se.Column == tc.column && strings.Contains(se.Err.Error(), tc.want) {
					found = true
					prefix := "table " + `"` + tc.table + `": `
					if tc.column != "" {
						prefix += `column "` + tc.column + `": `
					}
					require.True(t, strings.HasPrefix(se.Error(), prefix), "message %q names the table and column", se.Error())
				}
			}
			require.True(t, found, "no error about table %q column %q containing %q in:\n%v", tc.table, tc.column, tc.want, err)
		})
	}
}

// joined returns the errors joined by errors.Join.
func joined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestBuildCollectsAllErrors(t *testing.T) {
	t.Parallel()
	_, err := Build(testPrefix, []Table{
		{Name: "notes", Columns: []Column{
			{Name: "title", Default: 5},
			{Name: "Body"},
			{Name: "rank", Type: "int"},
		}},
		{Name: "Bad"},
	})
	require.Len(t, joined(err), 5, "%v", err)
	require.EqualError(t, err, strings.Join([]string{
		`table "notes": column "title": default 5 is an integer, the column is text`,
		`table "notes": column "Body": invalid name: use lowercase letters, digits and single underscores, starting with a letter`,
		`table "notes": column "rank": unknown type "int" (valid: text, integer, real, boolean, timestamp, json, blob)`,
		`table "Bad": invalid name: use lowercase letters, digits and single underscores, starting with a letter`,
		`table "Bad": no columns; declare at least one`,
	}, "\n"))
}

func TestBuildInvalidPrefix(t *testing.T) {
	t.Parallel()
	_, err := Build("My-Plugin__", []Table{users})
	require.ErrorContains(t, err, `invalid table prefix "My-Plugin__"`)
	var se *Error
	require.False(t, errors.As(joined(err)[0], &se), "a prefix problem is about no table")
}

func TestBuildNormalizes(t *testing.T) {
	t.Parallel()
	s := mustBuild(t, testPrefix, []Table{
		{Name: "users", Columns: []Column{{Name: "id", PrimaryKey: true, Unique: true}}},
		{Name: "codes", Columns: []Column{{Name: "code", Unique: true}, {Name: "n", Type: TypeReal, Default: int8(3)}, {Name: "f", Type: TypeReal, Default: float32(0.1)}}, PrimaryKey: []string{"code"}},
		{Name: "pairs", Columns: []Column{{Name: "a"}, {Name: "count"}, {Name: "i", Type: TypeInteger, Default: uint16(9)}}, PrimaryKey: []string{"a", "count"}},
		{Name: "logs", Columns: []Column{{Name: "message"}}},
	})
	u := s.Lookup("users")
	require.Equal(t, "my_plugin__users", u.Physical)
	require.Equal(t, []string{"id"}, u.PrimaryKey)
	require.Equal(t, ResolvedColumn{Name: "id", Type: TypeInteger, PrimaryKey: true, Generated: true, NotNull: true}, u.Columns[0])

	c := s.Lookup("codes")
	require.Equal(t, []string{"code"}, c.PrimaryKey)
	require.Equal(t, ResolvedColumn{Name: "code", Type: TypeText, PrimaryKey: true, NotNull: true}, c.Columns[0])
	require.Equal(t, float64(3), c.Columns[1].Default)
	require.Equal(t, 0.1, c.Columns[2].Default)

	p := s.Lookup("pairs")
	require.Equal(t, []string{"a", "count"}, p.PrimaryKey)
	require.Equal(t, ResolvedColumn{Name: "a", Type: TypeText, NotNull: true}, p.Columns[0])
	require.Equal(t, ResolvedColumn{Name: "count", Type: TypeInteger, NotNull: true}, p.Columns[1])
	require.Equal(t, int64(9), p.Columns[2].Default)

	l := s.Lookup("logs")
	require.Nil(t, l.PrimaryKey)
	require.Equal(t, TypeText, l.Columns[0].Type)
	require.Nil(t, s.Lookup("nope"))
}

func TestBuildOrder(t *testing.T) {
	t.Parallel()
	ref := func(name, target string) Column {
		return Column{Name: name, Type: TypeInteger, References: target + ".id"}
	}
	id := Column{Name: "id", PrimaryKey: true}
	s := mustBuild(t, testPrefix, []Table{
		{Name: "tasks", Columns: []Column{id, ref("project_id", "projects"), ref("parent_id", "tasks")}},
		{Name: "tags", Columns: []Column{id}},
		{Name: "projects", Columns: []Column{id, ref("owner_id", "users")}},
		{Name: "users", Columns: []Column{id, ref("invited_by", "users")}},
		{Name: "task_tags", Columns: []Column{ref("task_id", "tasks"), ref("tag_id", "tags")}},
	})
	var names []string
	for _, t := range s.Tables {
		names = append(names, t.Name)
	}
	require.Equal(t, []string{"tags", "users", "projects", "tasks", "task_tags"}, names)
}

func TestBuildEmpty(t *testing.T) {
	t.Parallel()
	s := mustBuild(t, testPrefix, nil)
	require.Empty(t, s.Tables)
	require.Empty(t, s.Create(SQLite))
}
