package sqlgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Schema evolution: what turns a table as the database holds it into the
// table its plugin now declares.
//
// [Evolve] compares three things: the definition recorded when the table
// was last brought up to date (the ledger's canonical JSON), the new
// declaration, and the table as its catalog shows it ([ActualTable]), read
// after the plugin's pending migrations when they run first. The recorded
// definition says what the declaration changed; the catalog says what is
// still to do, since a migration may have done part of it. Each change is
// an [Alteration]: additive (nothing is lost or reinterpreted), with the
// statements that make it and possibly a [Check] on the data, or refused,
// with the SQL a migration of the plugin would need.

// ActualTable is a table as the database's catalog shows it.
type ActualTable struct {
	Physical   string
	Columns    []ActualColumn // in the table's order
	PrimaryKey []string
	Indexes    []ActualIndex
}

// ActualColumn is a column of an [ActualTable].
type ActualColumn struct {
	Name string
	// Type is as the catalog shows it: the declared type on SQLite,
	// format_type on PostgreSQL.
	Type    string
	NotNull bool
	// Default is the default's expression, "" for none.
	Default string
	// References is the column's single-column foreign key, or nil.
	References *ActualReference
}

// ActualReference is a foreign key of an [ActualColumn].
type ActualReference struct {
	// Table is the referenced table's physical name.
	Table, Column string
	// OnDelete is "", "cascade", "set null", "restrict" or "set default".
	OnDelete string
	// Constraint is the constraint's name (PostgreSQL).
	Constraint string
}

// ActualIndex is an index of an [ActualTable].
type ActualIndex struct {
	Name    string
	Columns []string
	Unique  bool
	// Constraint: the index of a PRIMARY KEY or UNIQUE constraint, dropped
	// with the constraint only.
	Constraint bool
	// Partial: a partial or expression index, which no declared index is.
	Partial bool
}

// Column returns the named column, or nil.
func (a *ActualTable) Column(name string) *ActualColumn {
	if a == nil {
		return nil
	}
	for i := range a.Columns {
		if a.Columns[i].Name == name {
			return &a.Columns[i]
		}
	}
	return nil
}

// index returns an index on exactly cols with that uniqueness, or nil.
func (a *ActualTable) index(cols []string, unique bool) *ActualIndex {
	if a == nil {
		return nil
	}
	for i := range a.Indexes {
		ix := &a.Indexes[i]
		if !ix.Partial && ix.Unique == unique && slices.Equal(ix.Columns, cols) {
			return ix
		}
	}
	return nil
}

// uniqueOn reports whether the table has a unique index (or its primary
// key) on exactly cols.
func (a *ActualTable) uniqueOn(cols []string) bool {
	return a.index(cols, true) != nil || slices.Equal(a.PrimaryKey, cols)
}

// Alteration is one change of a table, additive or refused.
type Alteration struct {
	// Change says what changed, e.g. `column "body" added`.
	Change string
	// Refused is set when the change would lose or reinterpret data, or
	// when no statement makes it in place.
	Refused bool
	// SQL is, for an additive change, the statements Steps run, as text;
	// for a refused one, what a migration of the plugin would need.
	SQL string
	// Steps make an additive change: statements and, on SQLite, edits of
	// the table's CREATE statement.
	Steps []Step
	// Check, when set, is a condition on the data an additive change
	// needs: when its query returns a row, the change is refused.
	Check *Check
}

// Step is a statement, or on SQLite an [Edit] of a table's CREATE
// statement (sqlite.org/lang_altertable.html, section 8).
type Step struct {
	SQL  string
	Edit *Edit
	// Table is the physical table an Edit applies to.
	Table string
}

// Check is a condition on the data that an additive change needs.
type Check struct {
	// Query is a read-only query that returns a row when the change
	// cannot be made: its values are an example of the rows in the way.
	Query string
	// Problem says what the rows in the way are, e.g. `column "email"
	// holds duplicate values`; Columns names the values Query returns.
	Problem string
	Columns []string
	// SQL is what a migration would need to make the change possible.
	SQL string
}

// canonical decoding of a recorded definition.

func parseCanonical(def string) (*canonTable, error) {
	var ct canonTable
	dec := json.NewDecoder(strings.NewReader(def))
	dec.UseNumber()
	if err := dec.Decode(&ct); err != nil {
		return nil, err
	}
	return &ct, nil
}

func (ct *canonTable) column(name string) *canonColumn {
	for i := range ct.Columns {
		if ct.Columns[i].Name == name {
			return &ct.Columns[i]
		}
	}
	return nil
}

// sameDefault reports whether a recorded default equals a resolved one.
func sameDefault(raw json.RawMessage, v any) bool {
	if v == nil {
		return len(raw) == 0
	}
	return bytes.Equal(raw, mustJSON(v))
}

// Evolve returns the alterations that turn the table into t, in order:
// oldDef is the canonical definition recorded for it (see
// [Resolved.Canonical]), actual the table as the database holds it (nil
// when it does not exist: t is then created whole), and tables the other
// tables of the database t's foreign keys reference, by physical name (a
// missing one is taken as empty: it is created in the same transaction).
// A change the recorded definition does not show but the catalog does (a
// migration made it, or part of it) counts too; a column the catalog holds
// that neither definition names belongs to the plugin's migrations and is
// left alone.
func Evolve(d Dialect, oldDef string, t *Resolved, actual *ActualTable, tables map[string]*ActualTable) ([]Alteration, error) {
	dialectTypes(d)
	old, err := parseCanonical(oldDef)
	if err != nil {
		return nil, fmt.Errorf("table %q: the recorded definition cannot be read: %w", t.Name, err)
	}
	if actual == nil {
		stmts := CreateTable(d, t)
		return []Alteration{{Change: "table created (recorded, but missing from the database)", SQL: joinSQL(stmts), Steps: sqlSteps(stmts)}}, nil
	}
	e := &evolver{d: d, t: t, old: old, a: actual, tables: tables}
	e.columns()
	e.primaryKey()
	e.indexes()
	e.order()
	return e.out, nil
}

// evolver builds the alterations of one table.
type evolver struct {
	d      Dialect
	t      *Resolved
	old    *canonTable
	a      *ActualTable
	tables map[string]*ActualTable
	out    []Alteration
}

func (e *evolver) add(alt Alteration) {
	if alt.SQL == "" && len(alt.Steps) > 0 {
		alt.SQL = stepsSQL(alt.Steps)
	}
	e.out = append(e.out, alt)
}

func (e *evolver) refuse(change, sql string) {
	e.add(Alteration{Change: change, Refused: true, SQL: sql})
}

func (e *evolver) tbl() string { return Quote(e.t.Physical) }

// columns handles the declared columns, then the recorded ones no longer
// declared.
func (e *evolver) columns() {
	var added []*ResolvedColumn // not in the table: candidates for a rename
	for i := range e.t.Columns {
		c := &e.t.Columns[i]
		ac := e.a.Column(c.Name)
		if ac == nil {
			e.addColumn(c)
			added = append(added, c)
			continue
		}
		e.columnChanges(c, e.old.column(c.Name), ac)
	}
	for _, oc := range e.old.Columns {
		if slices.ContainsFunc(e.t.Columns, func(c ResolvedColumn) bool { return c.Name == oc.Name }) || e.a.Column(oc.Name) == nil {
			continue // still declared, or gone already (a migration dropped or renamed it)
		}
		e.removedColumn(oc, added)
	}
}

// removedColumn refuses a recorded column that is no longer declared but
// still in the table, suggesting a rename to an added column of the same
// type, then a drop.
func (e *evolver) removedColumn(oc canonColumn, added []*ResolvedColumn) {
	var b strings.Builder
	for _, c := range added {
		if c.Type == oc.Type {
			fmt.Fprintf(&b, "-- if %s was renamed to %s:\nALTER TABLE %s RENAME COLUMN %s TO %s;\n", Quote(oc.Name), Quote(c.Name), e.tbl(), Quote(oc.Name), Quote(c.Name))
		}
	}
	if b.Len() > 0 {
		b.WriteString("-- or, to drop it and its data:\n")
	}
	fmt.Fprintf(&b, "ALTER TABLE %s DROP COLUMN %s", e.tbl(), Quote(oc.Name))
	if e.d == SQLite {
		b.WriteString("\n-- (SQLite drops no column that is indexed, UNIQUE, a key or in a foreign key: drop its indexes first, or rebuild the table)")
	}
	e.refuse(fmt.Sprintf("column %q removed (its data would be lost)", oc.Name), b.String())
}

// hasDefault reports whether a column gets a value without one given.
func hasDefault(c *ResolvedColumn) bool { return c.Default != nil || c.DefaultNow || c.Generated }

// addColumn adds a declared column the table lacks.
func (e *evolver) addColumn(c *ResolvedColumn) {
	change := fmt.Sprintf("column %q added", c.Name)
	if c.PrimaryKey || slices.Contains(e.t.PrimaryKey, c.Name) {
		e.refuse(change+" to the primary key (the table's key would change)", e.rebuildSQL(""))
		return
	}
	alt := Alteration{Change: change}
	switch e.d {
	case Postgres:
		var b strings.Builder
		writeColumn(&b, e.d, dialectTypes(e.d), c)
		alt.Steps = sqlSteps([]string{"ALTER TABLE " + e.tbl() + " ADD COLUMN " + b.String()})
	case SQLite:
		alt.Steps = e.sqliteAddColumn(c)
	}
	switch {
	case c.NotNull && !hasDefault(c):
		// Possible only when the table is empty.
		alt.Check = &Check{
			Query:   "SELECT 1 FROM " + e.tbl() + " LIMIT 1",
			Problem: "it is NOT NULL without a default and the table has rows",
			SQL:     e.notNullColumnSQL(c),
		}
	case c.Unique:
		alt.Check = e.uniqueCheck([]string{c.Name}, map[string]*ResolvedColumn{c.Name: c})
	}
	if ref := c.References; ref != nil && alt.Check == nil && (c.Default != nil || c.DefaultNow) {
		alt.Check = e.referenceCheck(c, ref)
	}
	e.add(alt)
}

// sqliteAddColumn makes a column on SQLite, whose ADD COLUMN takes no
// UNIQUE, no non-constant default, no NOT NULL without a default and no
// REFERENCES with a default other than NULL: such a column is added
// without it, then completed by an index, an UPDATE and edits of the
// table's CREATE statement.
func (e *evolver) sqliteAddColumn(c *ResolvedColumn) []Step {
	bare := *c
	bare.Unique = false
	var steps, after []Step
	placeholder := c.NotNull && !hasDefault(c) || c.NotNull && c.DefaultNow
	if c.DefaultNow {
		bare.DefaultNow = false
		after = append(after, Step{SQL: "UPDATE " + e.tbl() + " SET " + Quote(c.Name) + " = CURRENT_TIMESTAMP"})
		after = append(after, Step{Table: e.t.Physical, Edit: &Edit{Column: c.Name, SetDefault: true, Default: "CURRENT_TIMESTAMP"}})
	}
	if placeholder {
		bare.Default = int64(0) // a constant the table's rows never keep: it is empty, or UPDATEd
		if !c.DefaultNow {
			after = append(after, Step{Table: e.t.Physical, Edit: &Edit{Column: c.Name, SetDefault: true}})
		}
	}
	var fk string
	if c.References != nil && bare.Default != nil {
		// Added by an edit after the column.
		fk = referencesClause(c)
		bare.References = nil
	}
	var b strings.Builder
	writeColumn(&b, e.d, dialectTypes(e.d), &bare)
	steps = append(steps, Step{SQL: "ALTER TABLE " + e.tbl() + " ADD COLUMN " + b.String()})
	if fk != "" {
		// REFERENCES is a column constraint an edit can append: it changes
		// no row, and the check before made sure the rows satisfy it.
		steps = append(steps, Step{Table: e.t.Physical, Edit: &Edit{Column: c.Name, Append: fk}})
	}
	steps = append(steps, after...)
	if c.Unique && !e.declaresUnique([]string{c.Name}) {
		steps = append(steps, Step{SQL: "CREATE UNIQUE INDEX " + Quote(IndexName(e.t.Physical, []string{c.Name}, true)) + " ON " + e.tbl() + " (" + Quote(c.Name) + ")"})
	}
	return steps
}

// notNullColumnSQL is what a migration adding a NOT NULL column without a
// default to a table with rows needs.
func (e *evolver) notNullColumnSQL(c *ResolvedColumn) string {
	native := NativeType(e.d, c.Type)
	col := Quote(c.Name)
	if e.d == Postgres {
		return fmt.Sprintf("-- give the existing rows a value (or declare a Default for the column):\nALTER TABLE %s ADD COLUMN %s %s;\nUPDATE %s SET %s = <value>;\nALTER TABLE %s ALTER COLUMN %s SET NOT NULL",
			e.tbl(), col, native, e.tbl(), col, e.tbl(), col)
	}
	return fmt.Sprintf("-- give the existing rows a value (or declare a Default for the column):\nALTER TABLE %s ADD COLUMN %s %s NOT NULL DEFAULT <value>",
		e.tbl(), col, native)
}

// columnChanges handles a declared column the table has: oc is its
// recorded definition, nil when the declaration adds it and a migration
// made it already.
func (e *evolver) columnChanges(c *ResolvedColumn, oc *canonColumn, ac *ActualColumn) {
	name := c.Name
	switch {
	case oc != nil && oc.Type != c.Type && !sameType(e.d, c.Type, ac.Type):
		e.refuse(fmt.Sprintf("column %q: type %s → %s (its values would be reinterpreted)", name, oc.Type, c.Type), e.typeSQL(c))
	case oc == nil && !compatibleType(e.d, c.Type, ac.Type):
		e.refuse(fmt.Sprintf("column %q: type %s → %s (its values would be reinterpreted)", name, ac.Type, c.Type), e.typeSQL(c))
	}
	inKey := c.PrimaryKey || slices.Contains(e.t.PrimaryKey, name)
	actualNotNull := ac.NotNull || slices.Contains(e.a.PrimaryKey, name)
	switch {
	case c.NotNull && !actualNotNull:
		e.refuse(fmt.Sprintf("column %q: not null false → true (rows may hold NULL)", name), e.setNotNullSQL(c))
	case !c.NotNull && actualNotNull && !inKey:
		e.dropNotNull(c)
	}
	// Defaults: the recorded definition says whether the declaration
	// changed it; a column a migration made is compared with the catalog.
	if oc != nil {
		if !sameDefault(oc.Default, c.Default) || oc.DefaultNow != c.DefaultNow {
			e.setDefault(c)
		}
	} else if !c.Generated && !defaultMatches(e.d, c, ac.Default) {
		e.setDefault(c)
	}
	if !c.PrimaryKey {
		switch uniq := e.a.uniqueOn([]string{name}); {
		case c.Unique && !uniq && !e.declaresUnique([]string{name}):
			e.addUnique(c) // (a declared unique index on it is created by indexes)
		case !c.Unique && uniq && oc != nil && oc.Unique && !e.declaresUnique([]string{name}):
			e.refuse(fmt.Sprintf("column %q: unique true → false", name), e.dropUniqueSQL(name))
		}
	}
	e.reference(c, ac)
}

// reference handles a change of a column's foreign key.
func (e *evolver) reference(c *ResolvedColumn, ac *ActualColumn) {
	ref, aref := c.References, ac.References
	switch {
	case ref == nil && aref == nil:
		return
	case ref != nil && aref != nil && aref.Table == ref.Physical && aref.Column == ref.Column && aref.OnDelete == c.OnDelete:
		return
	case ref != nil && aref == nil:
		alt := Alteration{Change: fmt.Sprintf("column %q: references none → %s", c.Name, ref.Table+"."+ref.Column)}
		clause := referencesClause(c)
		if e.d == Postgres {
			alt.Steps = sqlSteps([]string{"ALTER TABLE " + e.tbl() + " ADD FOREIGN KEY (" + Quote(c.Name) + ")" + clause})
		} else {
			alt.Steps = []Step{{Table: e.t.Physical, Edit: &Edit{Column: c.Name, Append: clause}}}
		}
		alt.Check = e.referenceCheck(c, ref)
		e.add(alt)
	default:
		from, to := "none", "none"
		if aref != nil {
			from = aref.Table + "." + aref.Column
			if aref.OnDelete != "" {
				from += " on delete " + aref.OnDelete
			}
		}
		if ref != nil {
			to = ref.Table + "." + ref.Column
			if c.OnDelete != "" {
				to += " on delete " + c.OnDelete
			}
		}
		var sql string
		if e.d == Postgres {
			name := pgObjectName(e.t.Physical, c.Name, "fkey")
			if aref != nil && aref.Constraint != "" {
				name = aref.Constraint
			}
			sql = "ALTER TABLE " + e.tbl() + " DROP CONSTRAINT " + Quote(name)
			if ref != nil {
				sql += ";\nALTER TABLE " + e.tbl() + " ADD FOREIGN KEY (" + Quote(c.Name) + ")" + referencesClause(c)
			}
		} else {
			sql = e.rebuildSQL("")
		}
		e.refuse(fmt.Sprintf("column %q: foreign key %s → %s (what deleting a referenced row does would change)", c.Name, from, to), sql)
	}
}

// referenceCheck is the check that the rows satisfy c's foreign key ref.
func (e *evolver) referenceCheck(c *ResolvedColumn, ref *Reference) *Check {
	col := Quote(c.Name)
	parent, pcol := Quote(ref.Physical), Quote(ref.Column)
	// The value each row will hold: the column's, or for a column being
	// added, its default.
	value := e.tbl() + "." + col
	if e.a.Column(c.Name) == nil {
		switch {
		case c.Default != nil:
			value = literal(e.d, c.Default)
		default:
			return nil // NULL in every row
		}
	}
	var q string
	if pt := e.tables[ref.Physical]; pt == nil && ref.Physical != e.t.Physical {
		// The referenced table is created in the same transaction: empty.
		q = "SELECT " + value + " FROM " + e.tbl() + " WHERE " + value + " IS NOT NULL LIMIT 1"
	} else {
		q = "SELECT " + value + " FROM " + e.tbl() + " WHERE " + value + " IS NOT NULL AND NOT EXISTS (SELECT 1 FROM " + parent + " p WHERE p." + pcol + " = " + value + ") LIMIT 1"
	}
	return &Check{
		Query:   q,
		Problem: fmt.Sprintf("rows reference %s values that %q does not hold", ref.Table+"."+ref.Column, ref.Table),
		Columns: []string{c.Name},
		SQL: fmt.Sprintf("-- clear (or delete) the references to missing rows first, then the declaration applies:\nUPDATE %s SET %s = NULL WHERE %s IS NOT NULL AND %s NOT IN (SELECT %s FROM %s)",
			e.tbl(), col, col, col, pcol, parent),
	}
}

// dropNotNull makes a column nullable.
func (e *evolver) dropNotNull(c *ResolvedColumn) {
	alt := Alteration{Change: fmt.Sprintf("column %q: not null true → false", c.Name)}
	if e.d == Postgres {
		alt.Steps = sqlSteps([]string{"ALTER TABLE " + e.tbl() + " ALTER COLUMN " + Quote(c.Name) + " DROP NOT NULL"})
	} else {
		alt.Steps = []Step{{Table: e.t.Physical, Edit: &Edit{Column: c.Name, DropNotNull: true}}}
	}
	e.add(alt)
}

// setDefault gives a column its declared default.
func (e *evolver) setDefault(c *ResolvedColumn) {
	expr := defaultExpr(e.d, c)
	what := "default → none"
	if expr != "" {
		what = "default → " + expr
	}
	alt := Alteration{Change: fmt.Sprintf("column %q: %s", c.Name, what)}
	switch {
	case e.d == Postgres && expr == "":
		alt.Steps = sqlSteps([]string{"ALTER TABLE " + e.tbl() + " ALTER COLUMN " + Quote(c.Name) + " DROP DEFAULT"})
	case e.d == Postgres:
		alt.Steps = sqlSteps([]string{"ALTER TABLE " + e.tbl() + " ALTER COLUMN " + Quote(c.Name) + " SET DEFAULT " + expr})
	default:
		// A row written before the column was added by ADD COLUMN holds no
		// value for it: SQLite reads the column's default as the schema
		// states it now, so editing the default would change what such
		// rows hold. Rewriting every row first stores the value each one
		// reads, and the edit changes no row.
		alt.Steps = []Step{
			{SQL: "UPDATE " + e.tbl() + " SET " + Quote(c.Name) + " = " + Quote(c.Name)},
			{Table: e.t.Physical, Edit: &Edit{Column: c.Name, SetDefault: true, Default: expr}},
		}
	}
	e.add(alt)
}

// defaultExpr is a column's default as an SQL expression, "" for none.
func defaultExpr(d Dialect, c *ResolvedColumn) string {
	switch {
	case c.DefaultNow:
		return "CURRENT_TIMESTAMP"
	case c.Default != nil:
		return literal(d, c.Default)
	}
	return ""
}

// defaultMatches reports whether the catalog's default expression is the
// column's declared default, as far as it can tell.
func defaultMatches(d Dialect, c *ResolvedColumn, actual string) bool {
	want := defaultExpr(d, c)
	actual = strings.TrimSpace(actual)
	if d == Postgres {
		actual = stripCasts(actual)
		want = stripCasts(want)
		if strings.EqualFold(actual, "now()") {
			actual = "CURRENT_TIMESTAMP"
		}
	}
	if strings.EqualFold(want, actual) {
		return true
	}
	// A number the catalog quotes, such as '-1'::integer.
	if u, err := strconv.Unquote(`"` + strings.Trim(actual, "'") + `"`); err == nil && u == want {
		return true
	}
	if actual == "" || want == "" {
		return false
	}
	// PostgreSQL shows a timestamp in its own form: take its word for it.
	return d == Postgres && c.Type == TypeTimestamp && strings.HasPrefix(actual, "'")
}

// stripCasts removes trailing "::type" casts of a PostgreSQL expression.
func stripCasts(s string) string {
	for {
		i := strings.LastIndex(s, "::")
		if i < 0 || strings.ContainsAny(s[i:], "'()") {
			return s
		}
		s = s[:i]
	}
}

// declaresUnique reports whether the declaration has a unique index on
// exactly cols.
func (e *evolver) declaresUnique(cols []string) bool {
	return slices.ContainsFunc(e.t.Indexes, func(ix ResolvedIndex) bool { return ix.Unique && slices.Equal(ix.Columns, cols) })
}

// compatibleTypes are, per dialect and declared type, the catalog types
// (PostgreSQL) or SQLite affinities that hold its values as they are: a
// column a migration made with one of them matches the declaration.
var compatibleTypes = map[Dialect]map[string][]string{
	Postgres: {
		TypeText:      {"text", "character varying", "character", "name"},
		TypeInteger:   {"bigint", "integer", "smallint"},
		TypeReal:      {"double precision", "real"},
		TypeBoolean:   {"boolean"},
		TypeTimestamp: {"timestamp with time zone", "timestamp without time zone"},
		TypeJSON:      {"jsonb", "json"},
		TypeBlob:      {"bytea"},
	},
}

// compatibleType reports whether a column a migration made, of the
// catalog's type actual, holds the values of the declared type as they
// are: on SQLite, the same affinity; on PostgreSQL, a type of the same
// family (integer for bigint, varchar for text).
func compatibleType(d Dialect, typ, actual string) bool {
	if sameType(d, typ, actual) {
		return true
	}
	if d == SQLite {
		return sqliteAffinity(NativeType(d, typ)) == sqliteAffinity(actual)
	}
	base := actual
	if i := strings.IndexByte(base, '('); i >= 0 {
		base = strings.TrimSpace(base[:i])
	}
	return slices.Contains(compatibleTypes[d][typ], base)
}

// sqliteAffinity is the affinity of a declared SQLite type
// (sqlite.org/datatype3.html, section 3.1).
func sqliteAffinity(typ string) string {
	t := strings.ToUpper(typ)
	switch {
	case strings.Contains(t, "INT"):
		return "INTEGER"
	case strings.Contains(t, "CHAR"), strings.Contains(t, "CLOB"), strings.Contains(t, "TEXT"):
		return "TEXT"
	case strings.Contains(t, "BLOB"), t == "":
		return "BLOB"
	case strings.Contains(t, "REAL"), strings.Contains(t, "FLOA"), strings.Contains(t, "DOUB"):
		return "REAL"
	}
	return "NUMERIC"
}

// sameType reports whether the catalog's type is a declared type's.
func sameType(d Dialect, typ, actual string) bool {
	native := NativeType(d, typ)
	if strings.EqualFold(native, actual) {
		return true
	}
	if d == Postgres {
		return native == "timestamptz" && actual == "timestamp with time zone"
	}
	return false
}

// addUnique makes an existing column unique, with a unique index.
func (e *evolver) addUnique(c *ResolvedColumn) {
	cols := []string{c.Name}
	stmt := "CREATE UNIQUE INDEX " + Quote(IndexName(e.t.Physical, cols, true)) + " ON " + e.tbl() + " (" + Quote(c.Name) + ")"
	e.add(Alteration{
		Change: fmt.Sprintf("column %q: unique false → true", c.Name),
		Steps:  sqlSteps([]string{stmt}),
		Check:  e.uniqueCheck(cols, nil),
	})
}

// uniqueCheck is the check that no two rows will hold the same values in
// cols; added are the columns among them being added, whose value in
// every row is their default.
func (e *evolver) uniqueCheck(cols []string, added map[string]*ResolvedColumn) *Check {
	var sel, group []string
	for _, name := range cols {
		if c := added[name]; c != nil || e.a.Column(name) == nil {
			if c == nil {
				c = e.t.column(name)
			}
			if c == nil || c.Default == nil && !c.DefaultNow {
				return nil // NULL in every row: never equal
			}
			sel = append(sel, defaultExpr(e.d, c))
			continue
		}
		sel = append(sel, Quote(name))
		group = append(group, Quote(name))
	}
	var q string
	if len(group) == 0 {
		q = "SELECT " + strings.Join(sel, ", ") + " FROM (SELECT count(*) AS n FROM " + e.tbl() + ") c WHERE n > 1"
	} else {
		var notNull []string
		for _, g := range group {
			notNull = append(notNull, g+" IS NOT NULL")
		}
		q = "SELECT " + strings.Join(sel, ", ") + " FROM " + e.tbl() + " WHERE " + strings.Join(notNull, " AND ") +
			" GROUP BY " + strings.Join(group, ", ") + " HAVING count(*) > 1 LIMIT 1"
	}
	rowID := "rowid"
	if e.d == Postgres {
		rowID = "ctid"
	}
	label := "column " + strconv.Quote(cols[0])
	if len(cols) > 1 {
		label = "columns " + list(cols)
	}
	sql := "-- make the values unique first, e.g. keep one row of each group of duplicates:\nDELETE FROM " + e.tbl() + " WHERE " + rowID + " NOT IN (SELECT min(" + rowID + ") FROM " + e.tbl() + " GROUP BY " + quoteList(cols) + ")"
	if len(group) < len(cols) {
		sql = "-- the rows would all get the same default: declare the column without a default (NULL is never a duplicate), or fill it in a migration with distinct values"
	}
	return &Check{Query: q, Problem: label + " would hold duplicate values", Columns: cols, SQL: sql}
}

// primaryKey refuses a change of the primary key.
func (e *evolver) primaryKey() {
	if slices.Equal(e.a.PrimaryKey, e.t.PrimaryKey) {
		return
	}
	var sql string
	if e.d == Postgres {
		sql = "ALTER TABLE " + e.tbl() + " DROP CONSTRAINT " + Quote(pgObjectName(e.t.Physical, "", "pkey"))
		if len(e.t.PrimaryKey) > 0 {
			sql += ";\nALTER TABLE " + e.tbl() + " ADD PRIMARY KEY (" + quoteList(e.t.PrimaryKey) + ")"
		}
	} else {
		sql = e.rebuildSQL("")
	}
	e.refuse(fmt.Sprintf("primary key %s → %s (rows are identified differently)", list(e.a.PrimaryKey), list(e.t.PrimaryKey)), sql)
}

// indexes creates the declared indexes the table lacks and drops the
// recorded ones no longer declared.
func (e *evolver) indexes() {
	for _, ix := range e.t.Indexes {
		if e.a.index(ix.Columns, ix.Unique) != nil {
			continue
		}
		create := "CREATE INDEX "
		if ix.Unique {
			create = "CREATE UNIQUE INDEX "
		}
		alt := Alteration{
			Change: indexLabel(ix.Columns, ix.Unique) + " added",
			Steps:  sqlSteps([]string{create + Quote(ix.Name) + " ON " + e.tbl() + " (" + quoteList(ix.Columns) + ")"}),
		}
		if ix.Unique {
			added := map[string]*ResolvedColumn{}
			for _, name := range ix.Columns {
				if e.a.Column(name) == nil {
					added[name] = e.t.column(name)
				}
			}
			alt.Check = e.uniqueCheck(ix.Columns, added)
		}
		e.add(alt)
	}
	for _, oix := range e.old.Indexes {
		if slices.ContainsFunc(e.t.Indexes, func(ix ResolvedIndex) bool { return ix.Unique == oix.Unique && slices.Equal(ix.Columns, oix.Columns) }) {
			continue
		}
		ax := e.a.index(oix.Columns, oix.Unique)
		if ax == nil || ax.Constraint {
			continue // gone already
		}
		e.add(Alteration{
			Change: indexLabel(oix.Columns, oix.Unique) + " removed (no data is lost)",
			Steps:  sqlSteps([]string{"DROP INDEX " + Quote(ax.Name)}),
		})
	}
}

// order notes a new order of the columns kept, which changes nothing in
// the table.
func (e *evolver) order() {
	var oldOrder, newOrder []string
	for _, oc := range e.old.Columns {
		if e.t.column(oc.Name) != nil {
			oldOrder = append(oldOrder, oc.Name)
		}
	}
	for _, c := range e.t.Columns {
		if e.old.column(c.Name) != nil {
			newOrder = append(newOrder, c.Name)
		}
	}
	if !slices.Equal(oldOrder, newOrder) {
		e.add(Alteration{Change: fmt.Sprintf("column order %s → %s (the table keeps its order; name the columns in statements)", list(oldOrder), list(newOrder))})
	}
}

// typeSQL is what a migration changing a column's type needs.
func (e *evolver) typeSQL(c *ResolvedColumn) string {
	if e.d == Postgres {
		native := NativeType(e.d, c.Type)
		return fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s::%s", e.tbl(), Quote(c.Name), native, Quote(c.Name), native)
	}
	return e.rebuildSQL(c.Name)
}

// setNotNullSQL is what a migration making a column NOT NULL needs.
func (e *evolver) setNotNullSQL(c *ResolvedColumn) string {
	fill := fmt.Sprintf("-- give the rows without a value one first:\nUPDATE %s SET %s = <value> WHERE %s IS NULL", e.tbl(), Quote(c.Name), Quote(c.Name))
	if e.d == Postgres {
		return fill + ";\nALTER TABLE " + e.tbl() + " ALTER COLUMN " + Quote(c.Name) + " SET NOT NULL"
	}
	return fill + ";\n" + e.rebuildSQL("")
}

// dropUniqueSQL is what a migration dropping a column's UNIQUE needs.
func (e *evolver) dropUniqueSQL(col string) string {
	if e.d == Postgres {
		name := pgObjectName(e.t.Physical, col, "key")
		for _, ix := range e.a.Indexes {
			if ix.Unique && slices.Equal(ix.Columns, []string{col}) {
				name = ix.Name
				if !ix.Constraint {
					return "DROP INDEX " + Quote(name)
				}
			}
		}
		return "ALTER TABLE " + e.tbl() + " DROP CONSTRAINT " + Quote(name)
	}
	for _, ix := range e.a.Indexes {
		if ix.Unique && !ix.Constraint && slices.Equal(ix.Columns, []string{col}) {
			return "DROP INDEX " + Quote(ix.Name)
		}
	}
	return e.rebuildSQL("")
}

// rebuildSQL is the SQLite procedure that rebuilds the table as declared
// (sqlite.org/lang_altertable.html, section 7), copying the columns the
// table and the declaration share; cast names a column whose values are
// converted to its declared type.
func (e *evolver) rebuildSQL(cast string) string {
	tmp := *e.t
	tmp.Physical = e.t.Physical + "__new"
	stmts := CreateTable(e.d, e.t)
	create := CreateTable(e.d, &tmp)[0]
	var cols, vals []string
	for _, c := range e.t.Columns {
		if e.a.Column(c.Name) == nil {
			continue
		}
		cols = append(cols, Quote(c.Name))
		v := Quote(c.Name)
		if c.Name == cast {
			v = "CAST(" + v + " AS " + NativeType(e.d, c.Type) + ")"
		}
		vals = append(vals, v)
	}
	var b strings.Builder
	b.WriteString("-- SQLite changes this only by rebuilding the table (sqlite.org/lang_altertable.html#otheralter);\n")
	b.WriteString("-- with foreign keys on, DROP TABLE first deletes its rows, which runs the ON DELETE\n")
	b.WriteString("-- actions of the tables that reference it: rebuild those too, or change the data first.\n")
	b.WriteString(create + ";\n")
	fmt.Fprintf(&b, "INSERT INTO %s (%s) SELECT %s FROM %s;\n", Quote(tmp.Physical), strings.Join(cols, ", "), strings.Join(vals, ", "), e.tbl())
	fmt.Fprintf(&b, "DROP TABLE %s;\n", e.tbl())
	fmt.Fprintf(&b, "ALTER TABLE %s RENAME TO %s", Quote(tmp.Physical), e.tbl())
	for _, s := range stmts[1:] {
		b.WriteString(";\n" + s)
	}
	return b.String()
}

// DropTableSQL is the SQL a migration dropping a table needs.
func DropTableSQL(physical string) string { return "DROP TABLE " + Quote(physical) }

// sqlSteps makes statements steps.
func sqlSteps(stmts []string) []Step {
	steps := make([]Step, len(stmts))
	for i, s := range stmts {
		steps[i] = Step{SQL: s}
	}
	return steps
}

// stepsSQL renders steps as text: statements, and edits as comments.
func stepsSQL(steps []Step) string {
	var parts []string
	for _, s := range steps {
		if s.Edit != nil {
			parts = append(parts, fmt.Sprintf("-- in sqlite_schema, the CREATE TABLE of %s: %s (PRAGMA writable_schema, sqlite.org/lang_altertable.html#otheralter)", Quote(s.Table), s.Edit))
			continue
		}
		parts = append(parts, s.SQL)
	}
	return joinSQL(parts)
}

func joinSQL(stmts []string) string { return strings.Join(stmts, ";\n") }
