package pluginhost

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/pluginhost/pluginhost/internal/migrate"
	"github.com/pluginhost/pluginhost/internal/sqlgen"
)

// Schema evolution: a plugin's declared table that changed since it was
// recorded in the ledger is brought up to date in the plugin's schema
// transaction when the change is additive, and the plugin fails with a
// *SchemaChangeError naming what a migration would need otherwise.
//
// Planning (resolve) only reads: the table's catalog and, for the changes
// that depend on the data (a NOT NULL column without a default, a unique
// index, a foreign key), one query each. Start runs it in the schema
// transaction; Manager.Plan can run it on any connection.
//
// When a change is refused and the plugin has pending migrations, the
// migrations run first, in the same transaction, and the tables are
// planned again from their catalog: what the migrations did is accepted,
// what remains additive is applied, what remains refused fails the plugin
// (and the transaction is rolled back).

// SchemaChangeError is the error of a plugin whose declared tables changed
// in ways Start does not make by itself: they would lose or reinterpret
// data (a column removed or renamed, a type changed, a table no longer
// declared, a NOT NULL column without a default added to a table with
// rows, a unique index or foreign key the rows violate, …). Reach it with
// errors.As on a plugin's error; [PluginStatus].Reason holds its text.
//
// Each change comes with the SQL a migration of the plugin would need, in
// the database's dialect. A migration that makes the change, shipped with
// the new declaration, lets the plugin start: the tables are compared with
// the declaration after the plugin's pending migrations ran.
type SchemaChangeError struct {
	// Plugin is the plugin's id.
	Plugin string
	// Changes are the refused changes, in table order.
	Changes []SchemaChange
	// AfterMigrations is set when the plugin's pending migrations ran
	// first (and were rolled back with the rest).
	AfterMigrations bool
}

// Error lists the refused changes with their SQL.
func (e *SchemaChangeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "plugin %q: its declared tables changed in ways that would lose or reinterpret data, which Start does not do by itself", e.Plugin)
	if e.AfterMigrations {
		b.WriteString(" (compared after its pending migrations)")
	}
	b.WriteString(":")
	for _, c := range e.Changes {
		fmt.Fprintf(&b, "\ntable %q: %s; a migration would need:", c.Table, c.Change)
		for line := range strings.SplitSeq(c.SQL, "\n") {
			b.WriteString("\n    " + line)
		}
	}
	b.WriteString("\nwrite a migration that makes the change (the tables are compared with the declaration after it runs), restore the declaration, or set Config.DevMode to drop and recreate the tables")
	return b.String()
}

// tableEvolution is a recorded table whose declaration changed: declared
// differently, or no longer declared (t nil).
type tableEvolution struct {
	name     string
	physical string
	t        *sqlgen.Resolved
	old      migrate.Entry
	alts     []sqlgen.Alteration // resolved
	gone     bool                // no longer declared and no longer in the database
}

// planEvolutions lists the tables recorded for plugin id whose
// declaration changed, and, outside development mode, the recorded tables
// it no longer declares (in development mode they are a warning, as they
// are left in place).
func (pl *schemaPlan) planEvolutions(id string, tables []sqlgen.Resolved, l migrate.Ledger, devMode bool) {
	declared := map[string]bool{}
	for i := range tables {
		t := &tables[i]
		declared[t.Name] = true
		e, applied := l.Get(id, tableVersion(t.Name))
		if applied && e.Checksum != t.Checksum {
			pl.evolve = append(pl.evolve, &tableEvolution{name: t.Name, physical: t.Physical, t: t, old: e})
		}
	}
	if devMode {
		pl.warnings = undeclaredTables(l[id], tables)
		return
	}
	var gone []string
	for version := range l[id] {
		if name, ok := strings.CutPrefix(version, tableVersionPrefix); ok && !declared[name] {
			gone = append(gone, name)
		}
	}
	slices.Sort(gone)
	for _, name := range gone {
		if from, kept := strings.CutPrefix(l[id][tableVersion(name)].Checksum, keptTablePrefix); kept {
			pl.warnings = append(pl.warnings, keptTableWarning(name, from))
			continue
		}
		pl.evolve = append(pl.evolve, &tableEvolution{name: name, physical: tablePrefix(id) + name, old: l[id][tableVersion(name)]})
	}
}

// keptTablePrefix starts the ledger checksum of a table that a downgrade
// Config.AllowDowngrade let through left in place while the lower version
// does not declare it; the recorded definition stays the higher version's,
// so that declaring the table again compares it with what it was.
const keptTablePrefix = "kept-by-downgrade-from:"

func keptTableWarning(name, from string) string {
	return fmt.Sprintf("table %q is not declared by this version; it was left in place with its data by the downgrade from %s", name, from)
}

// keepTables makes an allowed downgrade change no table: the lower
// version boots on the tables as the higher one left them. A table it
// declares differently is recorded with its declaration (the next boot
// has nothing to do; an upgrade again compares the declaration with the
// catalog, which holds what the higher version made) and a table it no
// longer declares is marked kept; both are warnings.
func (pl *schemaPlan) keepTables(id string, st *versionStep) {
	for _, ev := range pl.evolve {
		if ev.t == nil {
			pl.entries = append(pl.entries, migrate.Entry{Line: id, Version: tableVersion(ev.name), Checksum: keptTablePrefix + st.from, Definition: ev.old.Definition})
			pl.warnings = append(pl.warnings, keptTableWarning(ev.name, st.from))
			continue
		}
		pl.entries = append(pl.entries, migrate.Entry{Line: id, Version: tableVersion(ev.name), Checksum: ev.t.Checksum, Definition: ev.t.Canonical})
		pl.warnings = append(pl.warnings, fmt.Sprintf("table %q is declared differently by this version; the downgrade from %s kept it as it is", ev.name, st.from))
	}
	pl.evolve = nil
}

// resolve plans each evolving table from its catalog on q, runs the
// checks its changes need on the data, and fills pl.changes: the tables
// created on an upgrade, then every change, additive and refused, in
// table order. It only reads.
func (pl *schemaPlan) resolve(ctx context.Context, q queryer, d Dialect, id string, upgrade bool) error {
	pl.changes = nil
	if upgrade {
		for _, t := range pl.create {
			if pl.changed[t.Name] == "" {
				pl.changes = append(pl.changes, SchemaChange{Plugin: id, Table: t.Name, Change: "table added", SQL: strings.Join(sqlgen.CreateTable(d, t), ";\n")})
			}
		}
	}
	for _, ev := range pl.evolve {
		if err := ev.resolve(ctx, q, d); err != nil {
			return fmt.Errorf("plan the changes of table %q: %w", ev.name, err)
		}
		for _, a := range ev.alts {
			pl.changes = append(pl.changes, SchemaChange{Plugin: id, Table: ev.name, Change: a.Change, SQL: a.SQL, Refused: a.Refused})
		}
	}
	return nil
}

// resolve plans one table.
func (ev *tableEvolution) resolve(ctx context.Context, q queryer, d Dialect) error {
	ev.alts, ev.gone = nil, false
	actual, err := introspectTable(ctx, q, d, ev.physical)
	if err != nil {
		return err
	}
	if ev.t == nil {
		if actual == nil {
			ev.gone = true
			ev.alts = []sqlgen.Alteration{{Change: "table no longer declared, and dropped already (by a migration): its ledger row is removed"}}
			return nil
		}
		ev.alts = []sqlgen.Alteration{{Change: "table no longer declared (dropping it would lose its data)", Refused: true, SQL: sqlgen.DropTableSQL(ev.physical)}}
		return nil
	}
	others := map[string]*sqlgen.ActualTable{}
	for _, c := range ev.t.Columns {
		if ref := c.References; ref != nil && ref.Physical != ev.physical {
			if _, done := others[ref.Physical]; !done {
				if others[ref.Physical], err = introspectTable(ctx, q, d, ref.Physical); err != nil {
					return err
				}
			}
		}
	}
	others[ev.physical] = actual
	alts, err := sqlgen.Evolve(d, ev.old.Definition, ev.t, actual, others)
	if err != nil {
		return err
	}
	for i := range alts {
		a := &alts[i]
		if a.Refused || a.Check == nil {
			continue
		}
		example, found, err := checkRow(ctx, q, a.Check.Query)
		if err != nil {
			return fmt.Errorf("%s: check the data: %w", a.Change, err)
		}
		if found {
			a.Refused = true
			a.Change += ": " + a.Check.Problem
			if example != "" && len(a.Check.Columns) > 0 {
				a.Change += ", e.g. " + example
			}
			a.SQL = a.Check.SQL
		}
	}
	ev.alts = alts
	return nil
}

// checkRow runs a check's query and renders the first row it returns.
func checkRow(ctx context.Context, q queryer, query string) (string, bool, error) {
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return "", false, err
	}
	defer rows.Close()
	if !rows.Next() {
		return "", false, rows.Err()
	}
	cols, err := rows.Columns()
	if err != nil {
		return "", false, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return "", false, err
	}
	parts := make([]string, len(vals))
	for i, v := range vals {
		switch x := v.(type) {
		case nil:
			parts[i] = "NULL"
		case []byte:
			parts[i] = fmt.Sprintf("%q", x)
		case string:
			parts[i] = fmt.Sprintf("%q", x)
		default:
			parts[i] = fmt.Sprint(x)
		}
	}
	example := strings.Join(parts, ", ")
	if len(parts) > 1 {
		example = "(" + example + ")"
	}
	return example, true, rows.Err()
}

// refused returns the refused changes.
func (pl *schemaPlan) refused() []SchemaChange {
	var out []SchemaChange
	for _, c := range pl.changes {
		if c.Refused {
			out = append(out, c)
		}
	}
	return out
}

// refusal is the plugin's error for the refused changes, nil when none.
func (pl *schemaPlan) refusal(id string) error {
	if r := pl.refused(); len(r) > 0 {
		return &SchemaChangeError{Plugin: id, Changes: r, AfterMigrations: pl.reconcile}
	}
	return nil
}

// recreateRefused turns, in development mode, the tables with refused
// changes into tables dropped and recreated (with the tables referencing
// them), as a changed table was before schema evolution.
func (pl *schemaPlan) recreateRefused(id string, tables []sqlgen.Resolved, l migrate.Ledger) {
	var keep []*tableEvolution
	for _, ev := range pl.evolve {
		refused := slices.ContainsFunc(ev.alts, func(a sqlgen.Alteration) bool { return a.Refused })
		if refused && ev.t != nil {
			var what []string
			for _, a := range ev.alts {
				what = append(what, a.Change)
			}
			pl.changed[ev.name] = strings.Join(what, "; ")
			continue
		}
		keep = append(keep, ev)
	}
	pl.evolve = keep
	pl.drop, pl.create = nil, nil
	pl.entries = slices.DeleteFunc(pl.entries, func(e migrate.Entry) bool { return strings.HasPrefix(e.Version, tableVersionPrefix) })
	pl.planTables(id, tables, l)
	// A table recreated because it references one is no longer evolved.
	pl.evolve = slices.DeleteFunc(pl.evolve, func(ev *tableEvolution) bool { return pl.changed[ev.name] != "" })
}

// evolutionEntries returns the ledger rows of the evolved tables, with
// their new definitions.
func (pl *schemaPlan) evolutionEntries(id string) []migrate.Entry {
	var out []migrate.Entry
	for _, ev := range pl.evolve {
		if ev.t != nil {
			out = append(out, migrate.Entry{Line: id, Version: tableVersion(ev.name), Checksum: ev.t.Checksum, Definition: ev.t.Canonical})
		}
	}
	return out
}

// forgotten returns the ledger versions of the tables no longer declared
// that are gone from the database.
func (pl *schemaPlan) forgotten() []string {
	var out []string
	for _, ev := range pl.evolve {
		if ev.gone {
			out = append(out, tableVersion(ev.name))
		}
	}
	return out
}

// asHost runs fn with the SQLite sandbox's policy lifted: the library's
// own statements (catalog reads, checks, the DDL it generates, edits of
// sqlite_schema). On PostgreSQL they stay in the plugin's role, which owns
// its tables.
func (g *schemaGuard) asHost(fn func() error) error {
	if g == nil || g.guard == nil {
		return fn()
	}
	p := g.guard.policy.Swap(nil)
	defer g.guard.policy.Store(p)
	return fn()
}

// resolveIn plans the evolving tables in the schema transaction.
func (s *schemaSession) resolveIn(ctx context.Context, tx *sql.Tx, id string, plan *schemaPlan, g *schemaGuard) error {
	return g.asHost(func() error { return plan.resolve(ctx, tx, s.dialect, id, plan.upgrade) })
}

// applyEvolutions makes the additive changes of the evolving tables.
func (s *schemaSession) applyEvolutions(ctx context.Context, tx *sql.Tx, plan *schemaPlan, g *schemaGuard) error {
	return g.asHost(func() error {
		for _, ev := range plan.evolve {
			for _, a := range ev.alts {
				if a.Refused {
					continue
				}
				for _, st := range a.Steps {
					var err error
					if st.Edit != nil {
						err = editSQLiteTable(ctx, tx, st.Table, *st.Edit)
					} else {
						_, err = tx.ExecContext(ctx, st.SQL)
					}
					if err != nil {
						return fmt.Errorf("table %q: %s: %w", ev.name, a.Change, err)
					}
				}
			}
		}
		return nil
	})
}

// editSQLiteTable applies an edit to the CREATE TABLE statement of table
// phys in sqlite_schema, by the procedure of sqlite.org/lang_altertable.html
// (section 8) for the changes that leave the rows on disk as they are: in
// the transaction, PRAGMA writable_schema, the new statement, the schema
// version incremented, then an integrity check of the table.
func editSQLiteTable(ctx context.Context, tx *sql.Tx, phys string, e sqlgen.Edit) error {
	var stmt string
	if err := tx.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?`, phys).Scan(&stmt); err != nil {
		return fmt.Errorf("read its CREATE TABLE statement: %w", err)
	}
	edited, changed, err := sqlgen.EditCreateTable(stmt, e)
	if err != nil || !changed {
		return err
	}
	var version int64
	if err := tx.QueryRowContext(ctx, `PRAGMA schema_version`).Scan(&version); err != nil {
		return fmt.Errorf("read the schema version: %w", err)
	}
	steps := []struct {
		q    string
		args []any
	}{
		{`PRAGMA writable_schema = ON`, nil},
		{`UPDATE sqlite_master SET sql = ? WHERE type = 'table' AND name = ?`, []any{edited, phys}},
		{fmt.Sprintf(`PRAGMA schema_version = %d`, version+1), nil},
		{`PRAGMA writable_schema = OFF`, nil},
	}
	for i, st := range steps {
		if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
			if i > 0 {
				// A pragma the rollback does not undo: the connection
				// goes back to the pool.
				_, _ = tx.ExecContext(ctx, `PRAGMA writable_schema = OFF`)
			}
			return fmt.Errorf("edit sqlite_schema (%s): %w", e, err)
		}
	}
	var problems []string
	var result string
	err = scanRows(ctx, tx, `PRAGMA integrity_check(`+sqlgen.Quote(phys)+`)`, nil, []any{&result}, func() error {
		if result != "ok" {
			problems = append(problems, result)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("integrity check after the edit (%s): %w", e, err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("integrity check after the edit (%s): %s", e, strings.Join(problems, "; "))
	}
	return nil
}

// forget deletes the ledger rows of the given versions of plugin id.
func (s *schemaSession) forget(ctx context.Context, ex migrate.Execer, id string, versions []string) error {
	for _, v := range versions {
		if _, err := ex.ExecContext(ctx, s.rebind(`DELETE FROM `+migrate.LedgerTable+` WHERE line = ? AND version = ?`), id, v); err != nil {
			return fmt.Errorf("remove %s %s from the ledger: %w", id, v, err)
		}
	}
	return nil
}

// planPluginSchema plans plugin id's schema work without changing
// anything, for a dry run: planSchema, then the evolving tables planned on
// q from their catalog and data. The changes are in plan.changes. When a
// change is refused and the plugin has pending migrations, which Start
// runs first, the changes are as they stand before them, and the error is
// nil: Start compares again after the migrations. Otherwise a refused
// change is a *SchemaChangeError.
func planPluginSchema(ctx context.Context, q queryer, d Dialect, id string, decl *declaration, l migrate.Ledger, devMode bool) (*schemaPlan, error) {
	plan, err := planSchema(id, decl, l, devMode)
	if err != nil {
		return nil, err
	}
	if err := plan.resolve(ctx, q, d, id, plan.upgrade); err != nil {
		return plan, err
	}
	if len(plan.refused()) > 0 && !devMode && len(plan.migrations) == 0 {
		return plan, plan.refusal(id)
	}
	return plan, nil
}
