package sqlgen

import (
	"errors"
	"fmt"
	"strings"
)

// Error is a problem with one declared table, or with one of its columns.
// Its message names both: `table "notes": column "title": default 5 is an
// integer, the column is text`.
type Error struct {
	// Table is the declared table name, "" for a problem with the prefix.
	Table string
	// Column is the declared column name, "" for a table-level problem.
	Column string
	Err    error
}

// Error returns `table "t": column "c": ` followed by the problem.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Table != "" {
		fmt.Fprintf(&b, "table %q: ", e.Table)
	}
	if e.Column != "" {
		fmt.Fprintf(&b, "column %q: ", e.Column)
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// problems collects validation errors.
type problems []error

func (p *problems) add(table, column, format string, args ...any) {
	*p = append(*p, &Error{Table: table, Column: column, Err: fmt.Errorf(format, args...)})
}

// validTypes lists the column types in the order error messages show them.
var validTypes = []string{TypeText, TypeInteger, TypeReal, TypeBoolean, TypeTimestamp, TypeJSON, TypeBlob}

func validType(t string) bool {
	for _, v := range validTypes {
		if t == v {
			return true
		}
	}
	return false
}

// Build validates one prefix's tables and resolves them into a [Schema].
// prefix is "", a [PluginPrefix] or, for the host's own tables, a name
// followed by "_". Build checks names, types, defaults, primary keys,
// indexes and foreign keys (which may only name tables of the same call),
// orders the tables so that referenced tables come first, and rejects
// foreign key cycles and names that would collide in PostgreSQL. It reports
// every problem it finds, joined with [errors.Join]: each is an [*Error],
// except a problem with the prefix, which is about no table.
func Build(prefix string, tables []Table) (*Schema, error) {
	var errs problems
	if p := prefixProblem(prefix); p != "" {
		errs = append(errs, errors.New(p))
	}
	resolved := make([]*Resolved, 0, len(tables))
	byName := make(map[string]*Resolved, len(tables))
	decls := make(map[string]*Table, len(tables))
	for i := range tables {
		t := &tables[i]
		if _, dup := byName[t.Name]; dup {
			errs.add(t.Name, "", "declared more than once")
			continue
		}
		r := resolveTable(prefix, t, &errs)
		resolved = append(resolved, r)
		byName[t.Name] = r
		decls[t.Name] = t
	}
	for _, r := range resolved {
		resolveReferences(r, decls[r.Name], byName, &errs)
	}
	ordered := orderTables(resolved, &errs)
	checkRelationNames(prefix, resolved, &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	s := &Schema{Tables: make([]Resolved, len(ordered))}
	for i, r := range ordered {
		r.Canonical, r.Checksum = canonical(r)
		s.Tables[i] = *r
	}
	return s, nil
}

// resolveTable checks one table on its own (everything but its foreign key
// targets) and returns its resolved form.
func resolveTable(prefix string, t *Table, errs *problems) *Resolved {
	r := &Resolved{Name: t.Name, Physical: prefix + t.Name}
	if p := nameProblem(t.Name); p != "" {
		errs.add(t.Name, "", "%s", p)
	} else if prefixProblem(prefix) == "" {
		if _, err := PhysicalTable(prefix, t.Name); err != nil {
			*errs = append(*errs, err)
		}
	}
	if len(t.Columns) == 0 {
		errs.add(t.Name, "", "no columns; declare at least one")
	}
	var colPK []string
	for i := range t.Columns {
		c := &t.Columns[i]
		if p := columnProblem(c.Name); p != "" {
			errs.add(t.Name, c.Name, "%s", p)
		}
		if r.column(c.Name) != nil {
			errs.add(t.Name, c.Name, "declared more than once")
			continue
		}
		r.Columns = append(r.Columns, resolveColumn(t.Name, c, errs))
		if c.PrimaryKey {
			colPK = append(colPK, c.Name)
		}
	}
	resolvePrimaryKey(r, t, colPK, errs)
	for i := range r.Columns {
		c := &r.Columns[i]
		if c.Generated && c.Default != nil {
			errs.add(t.Name, c.Name, "a generated integer primary key cannot have a default")
		}
		if c.OnDelete == OnDeleteSetNull && c.NotNull {
			what := "not null"
			if c.PrimaryKey || contains(r.PrimaryKey, c.Name) {
				what = "primary key"
			}
			errs.add(t.Name, c.Name, `on delete "set null" on a %s column; use "cascade" or "restrict", or allow null`, what)
		}
	}
	resolveIndexes(r, t, errs)
	return r
}

// resolveColumn checks a column's type, default and foreign key action.
func resolveColumn(table string, c *Column, errs *problems) ResolvedColumn {
	rc := ResolvedColumn{
		Name: c.Name, Type: c.Type, NotNull: c.NotNull, Unique: c.Unique,
		DefaultNow: c.DefaultNow, OnDelete: c.OnDelete,
	}
	if rc.Type == "" {
		rc.Type = InferType(c.Name)
	} else if !validType(rc.Type) {
		errs.add(table, c.Name, "unknown type %q (valid: %s)", c.Type, strings.Join(validTypes, ", "))
	}
	switch {
	case c.DefaultNow && c.Default != nil:
		errs.add(table, c.Name, "both Default and DefaultNow are set; use one")
	case c.DefaultNow && rc.Type != TypeTimestamp:
		errs.add(table, c.Name, "DefaultNow on a %s column; it is for timestamp columns", rc.Type)
	case c.Default != nil && validType(rc.Type):
		norm, p := normalizeDefault(rc.Type, c.Default)
		if p != "" {
			errs.add(table, c.Name, "%s", p)
		}
		rc.Default = norm
	}
	switch c.OnDelete {
	case "", OnDeleteCascade, OnDeleteSetNull, OnDeleteRestrict:
	default:
		errs.add(table, c.Name, "unknown on delete action %q (valid: %s, %s, %s)",
			c.OnDelete, OnDeleteCascade, OnDeleteSetNull, OnDeleteRestrict)
	}
	if c.OnDelete != "" && c.References == "" {
		errs.add(table, c.Name, "OnDelete %q is set without References", c.OnDelete)
	}
	return rc
}

// resolvePrimaryKey settles the table's primary key from Column.PrimaryKey
// or Table.PrimaryKey and normalizes its columns.
func resolvePrimaryKey(r *Resolved, t *Table, colPK []string, errs *problems) {
	switch {
	case len(colPK) > 0 && len(t.PrimaryKey) > 0:
		errs.add(t.Name, colPK[0], "PrimaryKey is set on the column and Table.PrimaryKey is (%s); use one", strings.Join(t.PrimaryKey, ", "))
		return
	case len(colPK) > 1:
		errs.add(t.Name, colPK[1], "PrimaryKey is set on columns %s; list them in Table.PrimaryKey for a composite key", quotedList(colPK))
		return
	case len(colPK) == 1:
		r.PrimaryKey = colPK
	case len(t.PrimaryKey) > 0:
		ok := true
		for i, name := range t.PrimaryKey {
			switch {
			case r.column(name) == nil:
				errs.add(t.Name, name, "listed in Table.PrimaryKey but not declared")
				ok = false
			case contains(t.PrimaryKey[:i], name):
				errs.add(t.Name, name, "listed more than once in Table.PrimaryKey")
				ok = false
			}
		}
		if !ok {
			return
		}
		r.PrimaryKey = append([]string(nil), t.PrimaryKey...)
	default:
		return
	}
	for _, name := range r.PrimaryKey {
		c := r.column(name)
		c.NotNull = true
		if len(r.PrimaryKey) == 1 {
			c.PrimaryKey = true
			c.Unique = false
			c.Generated = c.Type == TypeInteger
		}
	}
}

// resolveIndexes checks the declared indexes and names them.
func resolveIndexes(r *Resolved, t *Table, errs *problems) {
	seen := make(map[string]bool, len(t.Indexes))
	for i, ix := range t.Indexes {
		label := indexLabel(ix.Columns, ix.Unique)
		if len(ix.Columns) == 0 {
			errs.add(t.Name, "", "index %d has no columns", i+1)
			continue
		}
		ok := true
		for j, name := range ix.Columns {
			switch {
			case r.column(name) == nil:
				errs.add(t.Name, name, "%s names an undeclared column", label)
				ok = false
			case contains(ix.Columns[:j], name):
				errs.add(t.Name, name, "%s lists the column more than once", label)
				ok = false
			}
		}
		key := fmt.Sprint(ix.Unique, ix.Columns)
		if seen[key] {
			errs.add(t.Name, "", "%s is declared more than once", label)
			ok = false
		}
		seen[key] = true
		if ok {
			cols := append([]string(nil), ix.Columns...)
			r.Indexes = append(r.Indexes, ResolvedIndex{Name: IndexName(r.Physical, cols, ix.Unique), Columns: cols, Unique: ix.Unique})
		}
	}
}

// indexLabel describes an index in messages: "unique index (a, b)".
func indexLabel(cols []string, unique bool) string {
	s := "index (" + strings.Join(cols, ", ") + ")"
	if unique {
		s = "unique " + s
	}
	return s
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// quotedList renders names as `"a", "b"`.
func quotedList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
