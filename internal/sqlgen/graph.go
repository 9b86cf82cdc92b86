package sqlgen

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pluginhost/pluginhost/internal/depgraph"
)

// resolveReferences checks the foreign keys of one table against the other
// tables of the same Build call.
func resolveReferences(r *Resolved, t *Table, byName map[string]*Resolved, errs *problems) {
	done := make(map[string]bool, len(t.Columns))
	for i := range t.Columns {
		c := &t.Columns[i]
		if c.References == "" || done[c.Name] {
			continue // a duplicate column is reported already
		}
		done[c.Name] = true
		rc := r.column(c.Name)
		table, column, ok := strings.Cut(c.References, ".")
		if !ok || nameProblem(table) != "" || nameProblem(column) != "" {
			errs.add(r.Name, c.Name, `references %q: write "table.column" with declared names`, c.References)
			continue
		}
		target := byName[table]
		if target == nil {
			errs.add(r.Name, c.Name, "references unknown table %q (only tables declared together can be referenced)", table)
			continue
		}
		tc := target.column(column)
		switch {
		case tc == nil:
			errs.add(r.Name, c.Name, "references unknown column %q of table %q", column, table)
			continue
		case tc.Type != rc.Type:
			errs.add(r.Name, c.Name, "type %s does not match %s, the type of %q.%q it references; set Type", rc.Type, tc.Type, table, column)
		case !tc.PrimaryKey && !tc.Unique:
			errs.add(r.Name, c.Name, "references %q.%q, which is neither the single-column primary key of %q nor Unique", table, column, table)
		}
		rc.References = &Reference{Table: table, Column: column, Physical: target.Physical}
	}
}

// orderTables returns the tables so that every table comes after the tables
// it references, choosing at each step the earliest declared table whose
// references are all placed ([depgraph.SortInOrder]). A table's references
// to itself do not order it. Each set of tables whose foreign keys form a
// cycle is reported once, as "a -> b -> a" from its earliest declared table,
// and left out of the order: Build fails then.
func orderTables(tables []*Resolved, errs *problems) []*Resolved {
	names := make([]string, len(tables))
	byName := make(map[string]*Resolved, len(tables))
	deps := make(map[string][]string, len(tables))
	for i, t := range tables {
		names[i] = t.Name
		byName[t.Name] = t
		for _, c := range t.Columns {
			if c.References != nil && c.References.Table != t.Name {
				deps[t.Name] = append(deps[t.Name], c.References.Table)
			}
		}
	}
	sorted := depgraph.SortInOrder(names, deps)
	reported := map[string]bool{}
	for _, name := range names {
		if cycle, ok := sorted.Cycles[name]; ok && !reported[cycle] {
			reported[cycle] = true
			errs.add(name, "", "foreign keys form a cycle: %s; drop one of the references", cycle)
		}
	}
	out := make([]*Resolved, len(sorted.Order))
	for i, name := range sorted.Order {
		out[i] = byName[name]
	}
	return out
}

// relation is a name in PostgreSQL's per-schema namespace of tables,
// indexes and sequences.
type relation struct {
	name, what, table string
	implicit          bool // named by PostgreSQL, which avoids taken names
}

// checkRelationNames rejects names that would collide in PostgreSQL, where
// tables, indexes and sequences share one namespace: the physical tables
// and the generated index names, and the names PostgreSQL gives the indexes
// and sequences that CREATE TABLE makes implicitly (see [relations]).
// PostgreSQL picks another name for an implicit relation whose name is
// taken, but a table or index created after it with that name fails, so any
// clash involving an explicit name is an error. An implicit name that would
// leave the prefix (a long name truncated into it) is an error too, since it
// could take a name of another plugin or of the host.
func checkRelationNames(prefix string, tables []*Resolved, errs *problems) {
	first := make(map[string]relation)
	for _, r := range relations(tables) {
		if r.implicit && !strings.HasPrefix(r.name, prefix) {
			errs.add(r.table, "", "%s would be named %q, outside the prefix %q; shorten the names", r.what, r.name, prefix)
		}
		prev, taken := first[r.name]
		if !taken {
			first[r.name] = r
			continue
		}
		errs.add(r.table, "", "%s and %s of table %q would both be named %q in PostgreSQL; rename one",
			r.what, prev.what, prev.table, r.name)
	}
}

// relations lists the relations that creating the tables in order makes in
// PostgreSQL. Implicit names are chosen as PostgreSQL's ChooseRelationName
// does: in the order CREATE TABLE makes them (identity sequences, then the
// primary key index, then unique indexes in column order), each
// pgObjectName(table, column, label) with label "seq", "pkey" or "key", and
// when that name is taken by an earlier implicit relation, label+"1",
// label+"2" and so on.
func relations(tables []*Resolved) []relation {
	var rels []relation
	implicit := make(map[string]bool)
	choose := func(t *Resolved, column, label, what string) {
		name := pgObjectName(t.Physical, column, label)
		for pass := 1; implicit[name]; pass++ {
			name = pgObjectName(t.Physical, column, label+strconv.Itoa(pass))
		}
		implicit[name] = true
		rels = append(rels, relation{name, what, t.Name, true})
	}
	for _, t := range tables {
		rels = append(rels, relation{t.Physical, "the table", t.Name, false})
		for _, c := range t.Columns {
			if c.Generated {
				choose(t, c.Name, "seq", fmt.Sprintf("PostgreSQL's identity sequence of column %q", c.Name))
			}
		}
		if len(t.PrimaryKey) > 0 {
			choose(t, "", "pkey", "PostgreSQL's primary key index")
		}
		for _, c := range t.Columns {
			if c.Unique {
				choose(t, c.Name, "key", fmt.Sprintf("PostgreSQL's unique index of column %q", c.Name))
			}
		}
		for _, ix := range t.Indexes {
			rels = append(rels, relation{ix.Name, "the " + indexLabel(ix.Columns, ix.Unique), t.Name, false})
		}
	}
	return rels
}
