package pluginhost

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pluginhost/pluginhost/internal/dialect"
	"github.com/pluginhost/pluginhost/internal/migrate"
	"github.com/pluginhost/pluginhost/internal/sqlgen"
)

// pluginsTable holds the persisted per-plugin enable flags.
const pluginsTable = "pluginhost_plugins"

// tableVersion is the ledger version of a declared table.
func tableVersion(name string) string { return "table:" + name }

// tablePrefix is the physical name prefix of a plugin's tables.
func tablePrefix(id string) string { return sqlgen.PluginPrefix(id) }

// schemaSession is Start's dedicated connection for schema work, with the
// ledger as last read and, while migrations run, the migration lock.
type schemaSession struct {
	m      *Manager
	conn   *sql.Conn
	ledger migrate.Ledger
	unlock func(context.Context) // nil while the lock is not held
	// lockErr is why the lock could not be taken: every later attempt
	// fails with it too, rather than wait again or use a closed connection.
	lockErr error
}

// openSchemaSession takes a connection and reads the whole ledger in one
// query: on a warm boot that read alone decides that nothing is to be done,
// and no lock is taken.
func (m *Manager) openSchemaSession(ctx context.Context) (*schemaSession, error) {
	conn, err := m.cfg.DB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("pluginhost: cannot start: the database is unreachable: %w", err)
	}
	s := &schemaSession{m: m, conn: conn}
	if s.ledger, err = m.loadLedger(ctx, conn); err != nil {
		conn.Close()
		return nil, fmt.Errorf("pluginhost: cannot start: %w", err)
	}
	return s, nil
}

// lock takes the migration lock, if not held yet, and reads the ledger
// again: another replica may have migrated while this one waited.
func (s *schemaSession) lock(ctx context.Context) error {
	if s.unlock != nil {
		return nil
	}
	if s.lockErr != nil {
		return s.lockErr
	}
	unlock, err := s.m.lockMigrations(ctx, s.conn)
	if err != nil {
		s.lockErr = err
		return err
	}
	s.unlock = unlock
	l, err := s.m.loadLedger(ctx, s.conn)
	if err != nil {
		return err
	}
	maps.Copy(s.ledger, l)
	return nil
}

// close releases the lock, if held, and the connection. It may be called
// more than once.
func (s *schemaSession) close(ctx context.Context) {
	if s.unlock != nil {
		s.unlock(ctx)
		s.unlock = nil
	}
	_ = s.conn.Close()
}

// loadLedger reads the whole ledger in one query, or an empty ledger on a
// database pluginhost has never touched.
func (m *Manager) loadLedger(ctx context.Context, conn *sql.Conn) (migrate.Ledger, error) {
	exists := func(ctx context.Context, name string) (bool, error) {
		return dialect.TableExists(ctx, m.cfg.Dialect, conn, name)
	}
	l, _, err := migrate.Load(ctx, conn, exists)
	return l, err
}

// readOverrides reads the persisted enable flags: id → enabled. Before the
// library's tables exist (according to l, when given) there are none.
func (m *Manager) readOverrides(ctx context.Context, conn *sql.Conn, l migrate.Ledger) (map[string]bool, error) {
	out := map[string]bool{}
	if l != nil && len(l[migrate.LibraryLine]) == 0 {
		return out, nil // the table does not exist yet
	}
	rows, err := conn.QueryContext(ctx, `SELECT id, enabled FROM `+pluginsTable+` WHERE enabled IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("read plugin overrides: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var enabled bool
		if err := rows.Scan(&id, &enabled); err != nil {
			return nil, fmt.Errorf("read plugin overrides: %w", err)
		}
		out[id] = enabled
	}
	return out, rows.Err()
}

// migrateCore applies the library's own migrations and the host's core
// migrations, each in one transaction with its ledger row, creating the
// ledger first. When nothing is pending it neither writes nor locks.
func (m *Manager) migrateCore(ctx context.Context, s *schemaSession) error {
	d := string(m.cfg.Dialect)
	library, err := migrate.Read(migrate.Library, d)
	if err != nil {
		return err
	}
	core, err := migrate.Read(m.cfg.CoreMigrations, d)
	if err != nil {
		return fmt.Errorf("Config.CoreMigrations: %w", err)
	}
	pendingLibrary, err := migrate.Pending(s.ledger, migrate.LibraryLine, library)
	if err != nil {
		return err
	}
	pendingCore, err := migrate.Pending(s.ledger, migrate.CoreLine, core)
	if err != nil {
		return err
	}
	if len(pendingLibrary)+len(pendingCore) == 0 {
		return nil
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	err = migrate.InTx(ctx, s.conn, dialect.BeginMigration(m.cfg.Dialect), func(ex migrate.Execer) error {
		_, err := ex.ExecContext(ctx, migrate.LedgerDDL(m.cfg.Dialect))
		return err
	})
	if err != nil {
		return fmt.Errorf("create the migration ledger: %w", err)
	}
	if err := m.applyMigrations(ctx, s.conn, s.ledger, migrate.LibraryLine, library); err != nil {
		return err
	}
	return m.applyMigrations(ctx, s.conn, s.ledger, migrate.CoreLine, core)
}

// applyMigrations applies the pending migrations of a line one by one, each
// in its own transaction; the first failure stops it, leaving the database
// as it was before that migration. Each transaction re-reads the line's
// ledger rows first, under the write lock: another process booting on the
// same database may have applied the migration since l was loaded.
func (m *Manager) applyMigrations(ctx context.Context, conn *sql.Conn, l migrate.Ledger, line string, all []migrate.Migration) error {
	pending, err := migrate.Pending(l, line, all)
	if err != nil {
		return err
	}
	for _, mig := range pending {
		e := migrate.Entry{Line: line, Version: mig.Version, Checksum: mig.Checksum}
		applied := false
		err := migrate.InTx(ctx, conn, dialect.BeginMigration(m.cfg.Dialect), func(ex migrate.Execer) error {
			if err := l.Refresh(ctx, ex, m.db.Rebind, line); err != nil {
				return err
			}
			if still, err := migrate.Pending(l, line, []migrate.Migration{mig}); err != nil || len(still) == 0 {
				return err
			}
			if _, err := ex.ExecContext(ctx, mig.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", mig.Version, err)
			}
			applied = true
			return migrate.Record(ctx, ex, m.db.Rebind, e)
		})
		if err != nil {
			return err
		}
		if applied {
			l.Put(e)
			m.log.Info("applied migration", "line", line, "version", mig.Version)
		}
	}
	return nil
}

// declaration is what a plugin declares for its schema: its validated
// tables and its migrations for the dialect. It is built once per Start.
type declaration struct {
	schema     *sqlgen.Schema
	migrations []migrate.Migration
}

// declare calls the plugin's Tables and Migrations and validates them.
func (m *Manager) declare(p *plugin) (*declaration, error) {
	var tables []Table
	if tp, ok := p.plugin.(TableProvider); ok {
		tables = tp.Tables()
	}
	schema, err := sqlgen.Build(tablePrefix(p.id), toSQLGen(tables))
	if err != nil {
		return nil, err
	}
	d := &declaration{schema: schema}
	if mg, ok := p.plugin.(Migrator); ok {
		if d.migrations, err = migrate.Read(mg.Migrations(), string(m.cfg.Dialect)); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// schemaPlan is the work one plugin's schema needs: nothing on a warm boot.
type schemaPlan struct {
	drop       []*sqlgen.Resolved // changed tables, development mode only, in drop order
	create     []*sqlgen.Resolved // new and recreated tables, in creation order
	migrations []migrate.Migration
	entries    []migrate.Entry // ledger rows to write with the work
	changed    map[string]string
	warnings   []string // for the plugin's status: recorded tables no longer declared
}

func (pl *schemaPlan) empty() bool { return len(pl.create) == 0 && len(pl.migrations) == 0 }

// migratePlugin creates the plugin's new tables and applies its pending
// migrations in one transaction: on failure none of it stays. When there is
// work, it is planned again inside the transaction from the plugin's ledger
// rows read under the write lock, since another process booting on the same
// database may have done it since l was loaded.
func (m *Manager) migratePlugin(ctx context.Context, s *schemaSession, p *plugin) error {
	var decl *declaration
	err := m.callHook(ctx, p, "declare tables and migrations", func(context.Context) error {
		var err error
		decl, err = m.declare(p)
		return err
	})
	if err != nil {
		return err
	}
	l := s.ledger
	plan, err := m.planSchema(p.id, decl, l)
	if err == nil && !plan.empty() {
		if err := s.lock(ctx); err != nil {
			return err
		}
		plan, err = m.planSchema(p.id, decl, l)
	}
	if err != nil {
		return err
	}
	if plan.empty() {
		m.addWarnings(p, plan.warnings)
		return nil
	}
	d := m.cfg.Dialect
	err = migrate.InTx(ctx, s.conn, dialect.BeginMigration(m.cfg.Dialect), func(ex migrate.Execer) error {
		if err := l.Refresh(ctx, ex, m.db.Rebind, p.id); err != nil {
			return err
		}
		var err error
		if plan, err = m.planSchema(p.id, decl, l); err != nil {
			return err
		}
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
		for _, mig := range plan.migrations {
			if _, err := ex.ExecContext(ctx, mig.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", mig.Version, err)
			}
		}
		return migrate.Record(ctx, ex, m.db.Rebind, plan.entries...)
	})
	if err != nil {
		return err
	}
	m.addWarnings(p, plan.warnings)
	for _, e := range plan.entries {
		l.Put(e)
	}
	for _, t := range plan.create {
		if what := plan.changed[t.Name]; what != "" {
			p.logger.Warn("development mode: dropped and recreated a changed table; its data is gone",
				"table", t.Name, "changed", what)
		} else {
			p.logger.Debug("created table", "table", t.Name, "physical", t.Physical)
		}
	}
	for _, mig := range plan.migrations {
		p.logger.Info("applied migration", "version", mig.Version)
	}
	return nil
}

// planSchema compares a plugin's declaration with the ledger. A table whose
// definition changed is an error naming it and what changed, unless
// Config.DevMode is on; so is a changed applied migration.
func (m *Manager) planSchema(id string, decl *declaration, l migrate.Ledger) (*schemaPlan, error) {
	plan := &schemaPlan{changed: map[string]string{}}
	tables := decl.schema.Tables
	var errs []error
	declared := map[string]bool{}
	for i := range tables {
		t := &tables[i]
		declared[tableVersion(t.Name)] = true
		e, applied := l.Get(id, tableVersion(t.Name))
		if !applied || e.Checksum == t.Checksum {
			continue
		}
		plan.changed[t.Name] = sqlgen.Diff(e.Definition, t.Canonical)
		if !m.cfg.DevMode {
			errs = append(errs, fmt.Errorf("table %q changed since it was created: %s (restore its declaration and change the table with a migration, or set Config.DevMode to drop and recreate it)",
				t.Name, plan.changed[t.Name]))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// Development mode recreates the changed tables and the tables that
	// reference them; creation order puts referenced tables first.
	for i := range tables {
		t := &tables[i]
		_, applied := l.Get(id, tableVersion(t.Name))
		recreate := plan.changed[t.Name] != ""
		for _, c := range t.Columns {
			if applied && !recreate && c.References != nil && plan.changed[c.References.Table] != "" {
				plan.changed[t.Name] = fmt.Sprintf("references recreated table %q", c.References.Table)
				recreate = true
			}
		}
		if recreate {
			plan.drop = append(plan.drop, t)
		}
		if recreate || !applied {
			plan.create = append(plan.create, t)
			plan.entries = append(plan.entries, migrate.Entry{
				Line: id, Version: tableVersion(t.Name), Checksum: t.Checksum, Definition: t.Canonical,
			})
		}
	}
	slices.Reverse(plan.drop)
	for version := range l[id] {
		if strings.HasPrefix(version, "table:") && !declared[version] {
			plan.warnings = append(plan.warnings, fmt.Sprintf("table %q is no longer declared; it was left in place with its data", strings.TrimPrefix(version, "table:")))
		}
	}
	slices.Sort(plan.warnings)

	var err error
	if plan.migrations, err = migrate.Pending(l, id, decl.migrations); err != nil {
		return nil, err
	}
	for _, mig := range plan.migrations {
		plan.entries = append(plan.entries, migrate.Entry{Line: id, Version: mig.Version, Checksum: mig.Checksum})
	}
	return plan, nil
}

// addWarnings appends warnings to the plugin's status.
func (m *Manager) addWarnings(p *plugin, warnings []string) {
	if len(warnings) == 0 {
		return
	}
	m.mu.Lock()
	p.warnings = append(p.warnings, warnings...)
	m.mu.Unlock()
}
