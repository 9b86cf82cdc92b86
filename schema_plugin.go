package pluginhost

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/pluginhost/pluginhost/internal/migrate"
	"github.com/pluginhost/pluginhost/internal/sqlgen"
)

// tableVersionPrefix starts the ledger version of a declared table.
const tableVersionPrefix = "table:"

// tableVersion is the ledger version of a declared table.
func tableVersion(name string) string { return tableVersionPrefix + name }

// declaration is what a plugin declares for its schema: its validated
// tables, its migrations for the dialect and its once-hooks. It is built
// once per Start.
type declaration struct {
	schema     *sqlgen.Schema
	migrations []migrate.Migration
	once       []onceHook
	versions   versionHooks // the manifest version, the install and upgrade hooks
	// inferred lists the columns declared without a type that were given
	// one other than text, for the errors of the plugin's statements.
	inferred []inferredColumn
}

// declare calls the plugin's Tables and Migrations and validates them; the
// migrations are those for dialect d. It runs plugin code, so it is called
// through Manager.callHook.
func declare(p *plugin, d Dialect) (*declaration, error) {
	var tables []Table
	if tp, ok := p.plugin.(TableProvider); ok {
		tables = tp.Tables()
	}
	schema, err := sqlgen.Build(tablePrefix(p.id), toSQLGen(tables))
	if err != nil {
		return nil, err
	}
	decl := &declaration{schema: schema, once: onceHooks(p.plugin), versions: newVersionHooks(p), inferred: inferredColumns(tables, schema)}
	if mg, ok := p.plugin.(Migrator); ok {
		if decl.migrations, err = migrate.Read(mg.Migrations(), string(d)); err != nil {
			return nil, err
		}
	}
	return decl, nil
}

// declare calls the plugin's declarations through callHook and completes
// them with what Config says of the plugin, for migratePlugin and Plan.
func (s *schemaSession) declare(ctx context.Context, p *plugin) (*declaration, error) {
	var decl *declaration
	err := s.m.callHook(ctx, p, "declare tables and migrations", func(context.Context) error {
		var err error
		decl, err = declare(p, s.dialect)
		return err
	})
	if err != nil {
		return nil, err
	}
	decl.versions.allowDowngrade = slices.Contains(s.m.cfg.AllowDowngrade, p.id)
	return decl, nil
}

// schemaPlan is the work one plugin's schema needs: nothing on a warm boot.
type schemaPlan struct {
	drop       []*sqlgen.Resolved // changed tables, development mode only, in drop order
	create     []*sqlgen.Resolved // new and recreated tables, in creation order
	migrations []migrate.Migration
	once       []onceHook        // the once-hooks not run yet on this database
	version    *versionStep      // the manifest version to record; nil when recorded already
	entries    []migrate.Entry   // ledger rows to write with the work
	changed    map[string]string // table → what changed, for the tables recreated
	changes    []SchemaChange    // additive changes to apply and refused ones, in order
	warnings   []string          // for the plugin's status: recorded tables no longer declared
	// evolve are the recorded tables whose declaration changed (see
	// schema_evolve.go); upgrade is set when the plugin had tables
	// already; reconcile when refused changes made its pending migrations
	// run before the tables are compared again.
	evolve    []*tableEvolution
	upgrade   bool
	reconcile bool
}

func (pl *schemaPlan) empty() bool {
	return len(pl.create) == 0 && len(pl.migrations) == 0 && len(pl.once) == 0 && len(pl.evolve) == 0 && pl.version == nil
}

// migratePlugin creates the plugin's new tables, applies its pending
// migrations and runs its pending once-hooks in one transaction: on failure
// none of it stays. When there is no work it takes no lock and writes
// nothing.
func (s *schemaSession) migratePlugin(ctx context.Context, p *plugin) error {
	decl, err := s.declare(ctx, p)
	if err != nil {
		return err
	}
	// Before the once-hooks, whose statements may need it. The Host is this
	// run's: no other run's statements are explained by this declaration.
	h := s.m.plugins.hostOf(p)
	if h != nil {
		h.db.setInferred(decl.inferred)
		if err := s.setUpSandbox(ctx, p, h.db, decl); err != nil {
			return err
		}
	}
	if err := s.checkForeignKeys(ctx, p, decl); err != nil {
		return err
	}
	plan, err := s.planUnderLock(ctx, p.id, decl)
	if err != nil {
		return err
	}
	if !plan.empty() {
		if plan, err = s.applySchema(ctx, p, decl); err != nil {
			s.heal(ctx) // for the plugins after this one
			return err
		}
		if s.cat != nil {
			s.cat.stale = true // the schema work changed it
		}
		if h != nil {
			if err := s.recordTables(ctx, h.db, decl, p.manifest.Reads); err != nil {
				return err
			}
		}
	}
	s.m.plugins.addWarnings(p, plan.warnings...)
	logSchemaWork(p.logger, s.dialect, plan)
	return nil
}

// planUnderLock plans the plugin's schema work from the session's ledger.
// When there is work, it takes the migration lock, which reads the ledger
// again, and plans again: another replica may have done the work while this
// one waited.
func (s *schemaSession) planUnderLock(ctx context.Context, id string, decl *declaration) (*schemaPlan, error) {
	plan, err := planSchema(id, decl, s.ledger, s.devMode)
	if err != nil || plan.empty() {
		return plan, err
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	return planSchema(id, decl, s.ledger, s.devMode)
}

// applySchema does the plugin's schema work in one transaction and returns
// the plan it carried out. The plan is made again inside the transaction,
// from the plugin's ledger rows read under the write lock, since another
// process booting on the same database may have done the work since the
// session's ledger was read. The ledger rows written are added to the
// session's ledger.
func (s *schemaSession) applySchema(ctx context.Context, p *plugin, decl *declaration) (plan *schemaPlan, err error) {
	tx, err := s.beginWrite(ctx)
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		// Rolled back already if ctx ended: database/sql did it.
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			err = errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
		}
	}()
	if err := s.ledger.Refresh(ctx, tx, s.rebind, p.id); err != nil {
		return nil, err
	}
	if plan, err = planSchema(p.id, decl, s.ledger, s.devMode); err != nil {
		return nil, err
	}
	if err := s.runSandboxed(ctx, tx, p, decl, plan); err != nil {
		return nil, err
	}
	entries := append(slices.Clone(plan.entries), plan.evolutionEntries(p.id)...)
	if err := migrate.Record(ctx, tx, s.rebind, entries...); err != nil {
		return nil, err
	}
	if err := s.forget(ctx, tx, p.id, plan.forgotten()); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	committed = true
	for _, e := range entries {
		s.ledger.Put(e)
	}
	for _, v := range plan.forgotten() {
		delete(s.ledger[p.id], v)
	}
	return plan, nil
}

// runSandboxed runs the plugin's part of its schema transaction (its
// tables, migrations and once-hooks) in its sandbox.
func (s *schemaSession) runSandboxed(ctx context.Context, tx *sql.Tx, p *plugin, decl *declaration, plan *schemaPlan) error {
	var d *DB
	if h := s.m.plugins.hostOf(p); h != nil {
		d = h.db
	} else {
		d = &DB{} // not sandboxed
	}
	if d.sandboxed {
		for _, mig := range plan.migrations {
			if kw, _, found := sqlgen.RoleControl(s.dialect, mig.SQL); found {
				return &SandboxError{Plugin: p.id, Action: "run", Object: fmt.Sprintf("%s in migration %s: its schema work runs as its role", kw, mig.Version)}
			}
		}
	}
	g, err := s.enterSandbox(ctx, tx, p, d)
	if err != nil {
		return err
	}
	err = s.execSchema(ctx, tx, p.id, decl, plan, g)
	if err == nil {
		err = s.runOnceHooks(ctx, p, tx, plan.once, g)
	}
	err = g.explain(err)
	return errors.Join(err, g.leave(ctx, tx, err != nil))
}

// sqliteWriteLock is the first statement of a plugin's schema transaction
// on SQLite: a write that changes nothing, which takes the database's write
// lock, waiting for the busy timeout, as BEGIN IMMEDIATE does. The
// transaction reads the ledger before it writes, and a read lock that must
// be upgraded later would fail at once instead of waiting when another
// connection writes.
const sqliteWriteLock = `DELETE FROM ` + migrate.LedgerTable + ` WHERE 0`

// beginWrite begins a transaction on the session's connection that holds
// the write lock from the start on SQLite. It is a *sql.Tx, rather than
// statements on the connection, so that a hook's statements after the
// transaction ended fail instead of running outside it.
func (s *schemaSession) beginWrite(ctx context.Context) (*sql.Tx, error) {
	tx, err := s.conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	if s.dialect == SQLite {
		if _, err := tx.ExecContext(ctx, sqliteWriteLock); err != nil {
			_ = tx.Rollback()
			return nil, fmt.Errorf("begin transaction: take the write lock: %w", err)
		}
	}
	return tx, nil
}

// execSchema does the plan's schema work in tx: the evolving tables
// planned from their catalog (in development mode, those with refused
// changes are recreated instead), drops, creations, the additive changes
// and the migrations; when a change is refused and the plugin has pending
// migrations, the migrations run first and the tables are planned again
// after them. A change still refused fails it with a *SchemaChangeError.
func (s *schemaSession) execSchema(ctx context.Context, tx *sql.Tx, id string, decl *declaration, plan *schemaPlan, g *schemaGuard) error {
	if len(plan.evolve) > 0 {
		if err := s.resolveIn(ctx, tx, id, plan, g); err != nil {
			return err
		}
		if len(plan.refused()) > 0 {
			switch {
			case s.devMode:
				plan.recreateRefused(id, decl.schema.Tables, s.ledger)
			case len(plan.migrations) > 0:
				plan.reconcile = true
			default:
				return plan.refusal(id)
			}
		}
	}
	if err := s.execTables(ctx, tx, plan); err != nil {
		return err
	}
	if !plan.reconcile {
		if err := s.applyEvolutions(ctx, tx, plan, g); err != nil {
			return err
		}
	}
	if err := s.execMigrations(ctx, tx, plan); err != nil {
		return err
	}
	if plan.reconcile {
		if err := s.resolveIn(ctx, tx, id, plan, g); err != nil {
			return err
		}
		if err := plan.refusal(id); err != nil {
			return err
		}
		return s.applyEvolutions(ctx, tx, plan, g)
	}
	return nil
}

// execTables drops (development mode) and creates the plan's tables.
func (s *schemaSession) execTables(ctx context.Context, ex migrate.Execer, plan *schemaPlan) error {
	d := s.dialect
	for _, t := range plan.drop {
		if _, err := ex.ExecContext(ctx, sqlgen.DropTable(d, t)); err != nil {
			return fmt.Errorf("drop table %s: %w", t.Physical, err)
		}
	}
	for _, t := range plan.create {
		if _, err := ex.ExecContext(ctx, strings.Join(sqlgen.CreateTable(d, t), ";\n")); err != nil {
			return fmt.Errorf("create table %q (%s): %w", t.Name, t.Physical, err)
		}
	}
	return nil
}

// execMigrations applies the plan's migrations. The ledger rows are
// written after the once-hooks.
func (s *schemaSession) execMigrations(ctx context.Context, ex migrate.Execer, plan *schemaPlan) error {
	for _, mig := range plan.migrations {
		if _, err := ex.ExecContext(ctx, mig.SQL); err != nil {
			return fmt.Errorf("migration %s: %w", mig.Version, err)
		}
	}
	return nil
}

// logSchemaWork logs what a carried-out plan did: the tables it created or,
// in development mode, recreated, and the migrations it applied.
func logSchemaWork(log *slog.Logger, d Dialect, plan *schemaPlan) {
	for _, t := range plan.create {
		switch what := plan.changed[t.Name]; {
		case what != "":
			log.Warn("development mode: dropped and recreated a changed table; its data is gone",
				"table", t.Name, "changed", what)
		case plan.upgrade:
			log.Info("created table", "table", t.Name, "physical", t.Physical, "sql", strings.Join(sqlgen.CreateTable(d, t), ";\n"))
		default:
			log.Debug("created table", "table", t.Name, "physical", t.Physical)
		}
	}
	for _, ev := range plan.evolve {
		for _, a := range ev.alts {
			log.Info("applied a schema change", "table", ev.name, "change", a.Change, "sql", a.SQL)
		}
	}
	for _, mig := range plan.migrations {
		log.Info("applied migration", "version", mig.Version)
	}
	for _, hook := range plan.once {
		log.Info("ran a once-per-database hook", "hook", hook.where, "ledger_version", hook.version)
	}
	logVersionStep(log, plan.version)
}

// planSchema compares a plugin's declaration with the ledger, without
// reading the database: the tables to create, the recorded tables whose
// declaration changed (planned from their catalog in the schema
// transaction, see schema_evolve.go), the pending migrations and
// once-hooks. A changed applied migration is an error.
func planSchema(id string, decl *declaration, l migrate.Ledger, devMode bool) (*schemaPlan, error) {
	tables := decl.schema.Tables
	plan := &schemaPlan{changed: map[string]string{}}
	for version := range l[id] {
		if strings.HasPrefix(version, tableVersionPrefix) {
			plan.upgrade = true
			break
		}
	}
	plan.planTables(id, tables, l)
	plan.planEvolutions(id, tables, l, devMode)
	var err error
	if plan.migrations, err = migrate.Pending(l, id, decl.migrations); err != nil {
		return nil, err
	}
	for _, mig := range plan.migrations {
		plan.entries = append(plan.entries, migrate.Entry{Line: id, Version: mig.Version, Checksum: mig.Checksum})
	}
	step, hooks, err := planVersion(id, &decl.versions, l)
	if err != nil {
		return nil, err
	}
	for _, hook := range append(hooks, decl.once...) {
		if _, done := l.Get(id, hook.version); !done {
			plan.once = append(plan.once, hook)
			plan.entries = append(plan.entries, migrate.Entry{Line: id, Version: hook.version})
		}
	}
	if step != nil {
		plan.version = step
		plan.entries = append(plan.entries, step.entry(id))
		if step.downgrade {
			plan.keepTables(id, step)
		}
	}
	return plan, nil
}

// planTables adds the tables to create, with their ledger rows: the new
// tables and, in development mode, the changed tables and the tables that
// reference them, which are dropped first. tables are in creation order,
// which puts referenced tables first.
func (pl *schemaPlan) planTables(id string, tables []sqlgen.Resolved, l migrate.Ledger) {
	for i := range tables {
		t := &tables[i]
		_, applied := l.Get(id, tableVersion(t.Name))
		recreate := applied && pl.recreates(t)
		if recreate {
			pl.drop = append(pl.drop, t)
		}
		if recreate || !applied {
			pl.create = append(pl.create, t)
			pl.entries = append(pl.entries, migrate.Entry{
				Line: id, Version: tableVersion(t.Name), Checksum: t.Checksum, Definition: t.Canonical,
			})
		}
	}
	slices.Reverse(pl.drop)
}

// recreates reports whether a created table is recreated: it changed, or it
// references a table that is recreated, which is then recorded as its
// change. Tables come in creation order, so a referenced table's fate is
// known.
func (pl *schemaPlan) recreates(t *sqlgen.Resolved) bool {
	if pl.changed[t.Name] != "" {
		return true
	}
	for _, c := range t.Columns {
		if c.References != nil && pl.changed[c.References.Table] != "" {
			pl.changed[t.Name] = fmt.Sprintf("references recreated table %q", c.References.Table)
			return true
		}
	}
	return false
}

// undeclaredTables returns a warning, sorted, for each table recorded among
// a plugin's ledger rows that it no longer declares.
func undeclaredTables(rows map[string]migrate.Entry, tables []sqlgen.Resolved) []string {
	declared := make(map[string]bool, len(tables))
	for i := range tables {
		declared[tableVersion(tables[i].Name)] = true
	}
	var warnings []string
	for version := range rows {
		if strings.HasPrefix(version, tableVersionPrefix) && !declared[version] {
			warnings = append(warnings, fmt.Sprintf("table %q is no longer declared; it was left in place with its data", strings.TrimPrefix(version, tableVersionPrefix)))
		}
	}
	slices.Sort(warnings)
	return warnings
}
