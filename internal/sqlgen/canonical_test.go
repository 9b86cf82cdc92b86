package sqlgen

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCanonical(t *testing.T) {
	t.Parallel()
	s := mustBuild(t, testPrefix, []Table{users, {
		Name: "notes",
		Columns: []Column{
			{Name: "id", PrimaryKey: true},
			{Name: "title", NotNull: true, Default: "<untitled> & more"},
			{Name: "author", References: "users.email", OnDelete: OnDeleteSetNull},
			{Name: "rank", Type: TypeReal, Default: 2},
			{Name: "draft", Type: TypeBoolean, Default: false},
			{Name: "created_at", DefaultNow: true},
		},
		Indexes: []Index{{Columns: []string{"title"}, Unique: true}, {Columns: []string{"author", "rank"}}},
	}})
	n := s.Lookup("notes")
	require.Equal(t, `{"name":"notes","columns":[`+
		`{"name":"id","type":"integer","not_null":true},`+
		`{"name":"title","type":"text","not_null":true,"default":"<untitled> & more"},`+
		`{"name":"author","type":"text","references":"users.email","on_delete":"set null"},`+
		`{"name":"rank","type":"real","default":2},`+
		`{"name":"draft","type":"boolean","default":false},`+
		`{"name":"created_at","type":"timestamp","default_now":true}],`+
		`"primary_key":["id"],`+
		`"indexes":[{"columns":["author","rank"]},{"columns":["title"],"unique":true}]}`, n.Canonical)
	sum := sha256.Sum256([]byte(n.Canonical))
	require.Equal(t, hex.EncodeToString(sum[:]), n.Checksum)
}

// TestCanonicalEquivalents shows declarations that mean the same table have
// the same checksum, whatever the prefix or the dialect it is created in.
func TestCanonicalEquivalents(t *testing.T) {
	t.Parallel()
	base := Table{Name: "events", Columns: []Column{
		{Name: "id", PrimaryKey: true},
		{Name: "kind"},
		{Name: "happened_at"},
		{Name: "weight", Type: TypeReal, Default: 1.0},
	}, Indexes: []Index{{Columns: []string{"kind"}}, {Columns: []string{"happened_at"}, Unique: true}}}
	want := mustBuild(t, testPrefix, []Table{base}).Tables[0].Checksum

	tests := map[string]struct {
		prefix string
		table  Table
	}{
		"same":         {testPrefix, base},
		"other prefix": {"other_plugin__", base},
		"explicit types": {testPrefix, Table{Name: "events", Columns: []Column{
			{Name: "id", Type: TypeInteger, PrimaryKey: true},
			{Name: "kind", Type: TypeText},
			{Name: "happened_at", Type: TypeTimestamp},
			{Name: "weight", Type: TypeReal, Default: 1},
		}, Indexes: base.Indexes}},
		"table primary key and redundant flags": {testPrefix, Table{Name: "events", Columns: []Column{
			{Name: "id", NotNull: true, Unique: true},
			{Name: "kind"},
			{Name: "happened_at"},
			{Name: "weight", Type: TypeReal, Default: float32(1)},
		}, PrimaryKey: []string{"id"}, Indexes: []Index{base.Indexes[1], base.Indexes[0]}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := mustBuild(t, tc.prefix, []Table{tc.table}).Tables[0]
			require.Equal(t, want, got.Checksum, got.Canonical)
		})
	}

	changed := base
	changed.Columns = append([]Column{}, base.Columns...)
	changed.Columns[1].NotNull = true
	require.NotEqual(t, want, mustBuild(t, testPrefix, []Table{changed}).Tables[0].Checksum)
}

func TestDiff(t *testing.T) {
	t.Parallel()
	canon := func(tb Table, more ...Table) string {
		t.Helper()
		return mustBuild(t, testPrefix, append([]Table{tb}, more...)).Lookup(tb.Name).Canonical
	}
	base := canon(Table{Name: "notes", Columns: []Column{
		{Name: "id", Type: TypeInteger}, {Name: "title"}, {Name: "rank", Type: TypeInteger},
	}, PrimaryKey: []string{"id"}, Indexes: []Index{{Columns: []string{"title"}}}})

	tests := []struct {
		name string
		new  string
		want string
		from string // the old definition, base when empty
	}{
		{name: "equal", new: base, want: ""},
		{name: "the brief's example", new: canon(Table{Name: "notes", Columns: []Column{
			{Name: "id", Type: TypeInteger}, {Name: "version", Type: TypeInteger}, {Name: "title", NotNull: true}, {Name: "body"},
		}, PrimaryKey: []string{"id", "version"}, Indexes: []Index{{Columns: []string{"title"}}, {Columns: []string{"id", "title"}}}}),
			want: `column "version" added; column "title": not null false → true; column "body" added; column "rank" removed; ` +
				`index (id, title) added; primary key (id) → (id, version)`},
		{name: "column properties", new: canon(Table{Name: "notes", Columns: []Column{
			{Name: "id", Type: TypeInteger}, {Name: "title", Unique: true, Default: "x", References: "other.title", OnDelete: OnDeleteCascade}, {Name: "rank", Type: TypeReal},
		}, PrimaryKey: []string{"id"}, Indexes: []Index{{Columns: []string{"title"}, Unique: true}}},
			Table{Name: "other", Columns: []Column{{Name: "title", PrimaryKey: true}}}),
			want: `column "title": unique false → true; column "title": default none → "x"; column "title": references none → other.title; ` +
				`column "title": on delete none → cascade; column "rank": type integer → real; index (title) removed; unique index (title) added`},
		{name: "order and primary key dropped", new: canon(Table{Name: "notes", Columns: []Column{
			{Name: "title"}, {Name: "id", Type: TypeInteger}, {Name: "rank", Type: TypeInteger},
		}, Indexes: []Index{{Columns: []string{"title"}}}}),
			want: `column "id": not null true → false; column order (id, title, rank) → (title, id, rank); primary key (id) → none`},
		{name: "default now", from: canon(Table{Name: "t", Columns: []Column{{Name: "seen_at", Default: "2024-01-01"}}}),
			new:  canon(Table{Name: "t", Columns: []Column{{Name: "seen_at", DefaultNow: true}}}),
			want: `column "seen_at": default "2024-01-01" → none; column "seen_at": default now false → true`},
		{name: "renamed table", new: canon(Table{Name: "memos", Columns: []Column{
			{Name: "id", Type: TypeInteger}, {Name: "title"}, {Name: "rank", Type: TypeInteger},
		}, PrimaryKey: []string{"id"}, Indexes: []Index{{Columns: []string{"title"}}}}),
			want: `table name "notes" → "memos"`},
		{name: "unreadable", new: "{", want: "definition changed (the new definition cannot be read: unexpected end of JSON input)"},
		{name: "same content in another form", new: " " + base, want: "definition changed (only in form)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, Diff(cmpOr(tc.from, base), tc.new))
		})
	}
	require.Equal(t, "definition changed (the old definition cannot be read: unexpected end of JSON input)", Diff("{", base))
}
