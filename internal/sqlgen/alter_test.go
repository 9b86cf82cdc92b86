package sqlgen

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestEditCreateTable(t *testing.T) {
	t.Parallel()
	const stmt = `CREATE TABLE "p__t" (
  "id" INTEGER PRIMARY KEY,
  "title" TEXT NOT NULL DEFAULT 'a, NOT NULL' CHECK ("title" <> 'NOT NULL'),
  [rank] INTEGER CONSTRAINT nn NOT NULL ON CONFLICT ABORT DEFAULT (1 + 2), -- NOT NULL in a comment
  "note" TEXT, -- "title" NOT NULL
  CONSTRAINT u UNIQUE ("title")
, "added" TIMESTAMP NOT NULL DEFAULT -1)`
	tests := []struct {
		name    string
		edit    Edit
		want    string // the column's definition after the edit
		changed bool
	}{
		{"drop not null", Edit{Column: "title", DropNotNull: true}, `"title" TEXT DEFAULT 'a, NOT NULL' CHECK ("title" <> 'NOT NULL')`, true},
		{"drop named not null with conflict clause", Edit{Column: "rank", DropNotNull: true}, `[rank] INTEGER DEFAULT (1 + 2)`, true},
		{"drop not null of an added column", Edit{Column: "added", DropNotNull: true}, `"added" TIMESTAMP DEFAULT -1`, true},
		{"nothing to drop", Edit{Column: "note", DropNotNull: true}, `"note" TEXT`, false},
		{"replace a default", Edit{Column: "title", SetDefault: true, Default: "'b'"}, `"title" TEXT NOT NULL CHECK ("title" <> 'NOT NULL') DEFAULT 'b'`, true},
		{"replace a parenthesized default", Edit{Column: "rank", SetDefault: true, Default: "CURRENT_TIMESTAMP"}, `[rank] INTEGER CONSTRAINT nn NOT NULL ON CONFLICT ABORT DEFAULT CURRENT_TIMESTAMP`, true},
		{"drop a signed default", Edit{Column: "added", SetDefault: true}, `"added" TIMESTAMP NOT NULL`, true},
		{"same default", Edit{Column: "added", SetDefault: true, Default: "-1"}, `"added" TIMESTAMP NOT NULL DEFAULT -1`, false},
		{"add a default", Edit{Column: "note", SetDefault: true, Default: "'n'"}, `"note" TEXT DEFAULT 'n'`, true},
		{"append a foreign key", Edit{Column: "note", Append: ` REFERENCES "p__o" ("id")`}, `"note" TEXT REFERENCES "p__o" ("id")`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed, err := EditCreateTable(stmt, tt.edit)
			require.NoError(t, err)
			require.Equal(t, tt.changed, changed)
			toks, err := sqliteTokens(got)
			require.NoError(t, err)
			def, err := columnDef(toks, tt.edit.Column)
			require.NoError(t, err)
			require.Equal(t, tt.want, got[def[0].start:def[len(def)-1].end])
			// The other columns are untouched.
			for _, other := range []string{"id", "title", "rank", "note", "added"} {
				if other == tt.edit.Column {
					continue
				}
				was, _ := sqliteTokens(stmt)
				wasDef, _ := columnDef(was, other)
				nowDef, err := columnDef(toks, other)
				require.NoError(t, err)
				require.Equal(t, stmt[wasDef[0].start:wasDef[len(wasDef)-1].end], got[nowDef[0].start:nowDef[len(nowDef)-1].end])
			}
		})
	}
	_, _, err := EditCreateTable(stmt, Edit{Column: "u", DropNotNull: true})
	require.ErrorContains(t, err, `no column "u"`, "a table constraint is no column")
	_, _, err = EditCreateTable(`CREATE TABLE t (a TEXT 'x`, Edit{Column: "a", DropNotNull: true})
	require.ErrorContains(t, err, "unterminated quote")
}

func build(t *testing.T, tables ...Table) *Schema {
	t.Helper()
	s, err := Build("p__", tables)
	require.NoError(t, err)
	return s
}

// actualOf is the catalog of a table exactly as declared.
func actualOf(d Dialect, r *Resolved) *ActualTable {
	a := &ActualTable{Physical: r.Physical, PrimaryKey: r.PrimaryKey}
	for _, c := range r.Columns {
		ac := ActualColumn{Name: c.Name, Type: NativeType(d, c.Type), NotNull: c.NotNull, Default: defaultExpr(d, &c)}
		if c.References != nil {
			ac.References = &ActualReference{Table: c.References.Physical, Column: c.References.Column, OnDelete: c.OnDelete}
		}
		if c.Unique {
			a.Indexes = append(a.Indexes, ActualIndex{Name: r.Physical + "_" + c.Name + "_key", Columns: []string{c.Name}, Unique: true, Constraint: true})
		}
		a.Columns = append(a.Columns, ac)
	}
	for _, ix := range r.Indexes {
		a.Indexes = append(a.Indexes, ActualIndex{Name: ix.Name, Columns: ix.Columns, Unique: ix.Unique})
	}
	return a
}

func TestEvolveClassifies(t *testing.T) {
	t.Parallel()
	base := Table{Name: "t", Columns: []Column{
		{Name: "id", PrimaryKey: true},
		{Name: "title", NotNull: true},
		{Name: "code", Unique: true},
		{Name: "n", Type: TypeInteger, Default: 1},
	}, Indexes: []Index{{Columns: []string{"title"}}}}
	clone := func() Table {
		c := base
		c.Columns = append([]Column(nil), base.Columns...)
		c.Indexes = append([]Index(nil), base.Indexes...)
		return c
	}
	tests := []struct {
		name   string
		change func(t *Table)
		want   []string // change: "+" additive, "-" refused
	}{
		{"nothing", func(*Table) {}, nil},
		{"column added", func(t *Table) { t.Columns = append(t.Columns, Column{Name: "x"}) }, []string{`+column "x" added`}},
		{"primary key column added", func(t *Table) {
			t.Columns[0].PrimaryKey = false
			t.Columns = append(t.Columns, Column{Name: "k", Type: TypeInteger})
			t.PrimaryKey = []string{"id", "k"}
		}, []string{`-column "k" added to the primary key`, `-primary key (id) → (id, k)`}},
		{"column removed", func(t *Table) { t.Columns = t.Columns[:3] }, []string{`-column "n" removed`}},
		{"type changed", func(t *Table) { t.Columns[3].Type = TypeReal; t.Columns[3].Default = 1.5 }, []string{`-column "n": type integer → real`, `+column "n": default → 1.5`}},
		{"not null dropped", func(t *Table) { t.Columns[1].NotNull = false }, []string{`+column "title": not null true → false`}},
		{"not null set", func(t *Table) { t.Columns[2].NotNull = true }, []string{`-column "code": not null false → true`}},
		{"unique dropped", func(t *Table) { t.Columns[2].Unique = false }, []string{`-column "code": unique true → false`}},
		{"unique set", func(t *Table) { t.Columns[1].Unique = true }, []string{`+column "title": unique false → true`}},
		{"default changed", func(t *Table) { t.Columns[3].Default = 2 }, []string{`+column "n": default → 2`}},
		{"index added and removed", func(t *Table) { t.Indexes = []Index{{Columns: []string{"n"}, Unique: true}} }, []string{`+unique index (n) added`, `+index (title) removed`}},
		{"columns reordered", func(t *Table) { t.Columns[1], t.Columns[2] = t.Columns[2], t.Columns[1] }, []string{`+column order (id, title, code, n) → (id, code, title, n)`}},
	}
	for _, d := range []Dialect{SQLite, Postgres} {
		for _, tt := range tests {
			t.Run(string(d)+"/"+tt.name, func(t *testing.T) {
				old := build(t, base).Tables[0]
				nt := clone()
				tt.change(&nt)
				next := build(t, nt).Tables[0]
				alts, err := Evolve(d, old.Canonical, &next, actualOf(d, &old), nil)
				require.NoError(t, err)
				var got []string
				for _, a := range alts {
					sign := "+"
					if a.Refused {
						sign = "-"
					}
					got = append(got, sign+a.Change)
					if a.Refused {
						require.NotEmpty(t, a.SQL, a.Change)
						require.Empty(t, a.Steps)
					}
				}
				require.Len(t, got, len(tt.want), "%q", got)
				for i := range tt.want {
					require.True(t, strings.HasPrefix(got[i], tt.want[i]), "%q is not %q", got[i], tt.want[i])
				}
			})
		}
	}
}

func TestEvolveAcceptsWhatAMigrationDid(t *testing.T) {
	t.Parallel()
	old := build(t, Table{Name: "t", Columns: []Column{{Name: "id", PrimaryKey: true}, {Name: "title"}}}).Tables[0]
	next := build(t, Table{Name: "t", Columns: []Column{{Name: "id", PrimaryKey: true}, {Name: "name"}, {Name: "rank", Type: TypeInteger}}}).Tables[0]
	for _, d := range []Dialect{SQLite, Postgres} {
		// Before the migration: title removed (refused, a rename
		// suggested), name and rank added.
		alts, err := Evolve(d, old.Canonical, &next, actualOf(d, &old), nil)
		require.NoError(t, err)
		require.Len(t, alts, 3)
		require.True(t, alts[2].Refused)
		require.Contains(t, alts[2].SQL, `ALTER TABLE "p__t" RENAME COLUMN "title" TO "name"`)
		require.Contains(t, alts[2].SQL, `ALTER TABLE "p__t" DROP COLUMN "title"`)

		// After it renamed title and added rank (as INT: of the same
		// family), and made a column of its own: only what the
		// declaration says and the catalog lacks remains.
		a := actualOf(d, &old)
		a.Columns[1].Name = "name"
		intType := "INT"
		if d == Postgres {
			intType = "integer"
		}
		a.Columns = append(a.Columns, ActualColumn{Name: "rank", Type: intType}, ActualColumn{Name: "mine", Type: "TEXT"})
		alts, err = Evolve(d, old.Canonical, &next, a, nil)
		require.NoError(t, err)
		require.Empty(t, alts)
	}
}
