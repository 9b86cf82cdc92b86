package sqlgen

import (
	"fmt"
	"strconv"
	"strings"
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
// references are all placed. A cycle is reported as "a -> b -> a", and its
// tables are then placed in declaration order so that further cycles are
// found too.
func orderTables(tables []*Resolved, errs *problems) []*Resolved {
	index := make(map[string]int, len(tables))
	for i, t := range tables {
		index[t.Name] = i
	}
	deps := make([][]int, len(tables))
	for i, t := range tables {
		for _, c := range t.Columns {
			if c.References == nil || c.References.Table == t.Name {
				continue
			}
			if j, ok := index[c.References.Table]; ok && !containsInt(deps[i], j) {
				deps[i] = append(deps[i], j)
			}
		}
	}
	placed := make([]bool, len(tables))
	ready := func(i int) bool {
		for _, j := range deps[i] {
			if !placed[j] {
				return false
			}
		}
		return true
	}
	out := make([]*Resolved, 0, len(tables))
	for len(out) < len(tables) {
		next := -1
		for i := range tables {
			if !placed[i] && ready(i) {
				next = i
				break
			}
		}
		if next >= 0 {
			placed[next] = true
			out = append(out, tables[next])
			continue
		}
		cycle := findCycle(deps, placed)
		names := make([]string, len(cycle))
		for k, i := range cycle {
			names[k] = tables[i].Name
		}
		errs.add(names[0], "", "foreign keys form a cycle: %s -> %s; drop one of the references",
			strings.Join(names, " -> "), names[0])
		for _, i := range cycle {
			placed[i] = true
			out = append(out, tables[i])
		}
	}
	return out
}

// findCycle follows unplaced references from the earliest unplaced table,
// which must lie on or lead to a cycle since no unplaced table is ready,
// and returns the cycle in the order of the references.
func findCycle(deps [][]int, placed []bool) []int {
	start := 0
	for placed[start] {
		start++
	}
	pos := map[int]int{}
	var path []int
	for i := start; ; {
		if k, seen := pos[i]; seen {
			return path[k:]
		}
		pos[i] = len(path)
		path = append(path, i)
		for _, j := range deps[i] {
			if !placed[j] {
				i = j
				break
			}
		}
	}
}

func containsInt(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
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
