package pluginhost

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/pluginhost/pluginhost/internal/sqlgen"
)

// The sandbox in the schema phase: each plugin's handle is set up before
// any of the plugin's code gets it, and the plugin's part of its schema
// transaction runs in the sandbox too.

// sandboxState is the Manager's sandbox state.
type sandboxState struct {
	pg pgSandbox
	// tables are the names of the database's tables (SQLite), as the
	// last schema session read them, for the policies.
	tables atomic.Pointer[map[string]bool]
	// sqliteChecked: the SQLite connections were found not to cache
	// compiled statements (checkSQLiteStmtCache); written by the schema
	// phase, which runs one plugin at a time.
	sqliteChecked bool
}

// setUpSandbox sets up plugin p's handle d: on SQLite its policies, on
// PostgreSQL its role, its tables' ownership and grants, and its pool; and
// the tables DB.Table accepts.
func (s *schemaSession) setUpSandbox(ctx context.Context, p *plugin, d *DB, decl *declaration) error {
	cfg := &s.m.cfg
	reads := p.manifest.Reads
	var readTables []string
	for _, g := range reads {
		readTables = append(readTables, physicalTables(g)...)
	}
	if err := s.checkReads(ctx, p); err != nil {
		return err
	}
	if !cfg.sandboxed(p.id) {
		p.logger.Warn("the plugin's statements run outside the database sandbox, with the host's full access", "why", cfg.sandboxName(p.id))
		return s.recordTables(ctx, d, decl, reads)
	}
	if err := s.sandboxHandle(ctx, p, d, readTables); err != nil {
		// The database, not the plugin, is at fault: Start fails.
		if s.misconfigured == nil {
			s.misconfigured = err
		}
		return err
	}
	d.sandboxed = true
	return s.recordTables(ctx, d, decl, reads)
}

// checkReads fails a plugin whose [[reads]] names a table its dependency
// does not have: declared, or created by its migrations.
func (s *schemaSession) checkReads(ctx context.Context, p *plugin) error {
	if len(p.manifest.Reads) == 0 {
		return nil
	}
	cat, err := s.catalog(ctx)
	if err != nil {
		return err
	}
	for i, g := range p.manifest.Reads {
		for j, t := range g.Tables {
			phys := tablePrefix(g.Plugin) + t
			if _, ok := cat.tables[phys]; !ok {
				return &ManifestError{Plugin: p.id, Field: fmt.Sprintf("reads[%d].tables[%d]", i, j), Line: p.manifest.line(fmt.Sprintf("reads[%d].tables[%d]", i, j)),
					Err: fmt.Errorf("plugin %q has no table %q (%s): it reads only tables its dependency declares or creates", g.Plugin, t, phys)}
			}
		}
	}
	return nil
}

// sandboxHandle sets up d's sandbox for the dialect.
func (s *schemaSession) sandboxHandle(ctx context.Context, p *plugin, d *DB, readTables []string) error {
	cfg := &s.m.cfg
	switch s.dialect {
	case SQLite:
		if !s.m.sandbox.sqliteChecked {
			if err := checkSQLiteStmtCache(ctx, cfg.DB); err != nil {
				return fmt.Errorf("sandbox: %w", err)
			}
			s.m.sandbox.sqliteChecked = true
		}
		set := map[string]bool{}
		for _, t := range readTables {
			set[t] = true
		}
		d.policy = &sqlitePolicy{plugin: p.id, prefix: d.prefix, reads: set, tables: &s.m.sandbox.tables}
	case Postgres:
		role := cfg.roleName(p.id)
		b := &s.m.sandbox.pg
		cat, err := s.catalog(ctx)
		if err != nil {
			return err
		}
		if err := b.ensureRole(ctx, s.conn, cat, p.id, role, s.lock); err != nil {
			return err
		}
		if err := b.adoptTables(ctx, s.conn, cat, p.id, d.prefix, role, readTables, s.lock); err != nil {
			return err
		}
		pool, err := b.pool(ctx, s.m, s.conn, p.id, role)
		if err != nil {
			return err
		}
		d.sql = pool
	}
	return nil
}

// recordTables records the tables DB.Table accepts: the declared ones
// and those with the plugin's prefix in the database.
func (s *schemaSession) recordTables(ctx context.Context, d *DB, decl *declaration, reads []ReadGrant) error {
	var declared []string
	for _, t := range decl.schema.Tables {
		declared = append(declared, t.Name)
	}
	cat, err := s.catalog(ctx)
	if err != nil {
		return err
	}
	d.setTables(declared, cat.tablesWith(d.prefix), reads)
	return nil
}

// schemaGuard is the sandbox around the plugin's part of its schema
// transaction: its tables, migrations and once-hooks.
type schemaGuard struct {
	s       *schemaSession
	d       *DB
	role    string // PostgreSQL
	granted bool   // PostgreSQL: CREATE on the schema was granted for it
	guard   *sqliteGuard
	// outside is what lay outside the plugin's namespace when its schema
	// work began (SQLite): what the authorizer cannot see, a table renamed
	// out of the namespace or the host's rows of sqlite_sequence, shows as
	// a change when it ends.
	outside map[string]string
}

// enterSandbox makes the statements that follow in tx, the plugin's
// schema transaction, run in the plugin's sandbox; nil when it is outside.
func (s *schemaSession) enterSandbox(ctx context.Context, tx *sql.Tx, p *plugin, d *DB) (*schemaGuard, error) {
	if !d.sandboxed {
		return nil, nil
	}
	g := &schemaGuard{s: s, d: d}
	switch s.dialect {
	case SQLite:
		policy := *d.policy
		policy.ddl = true
		err := s.conn.Raw(func(dc any) error {
			var err error
			g.outside, err = sqliteOutside(dc, d.prefix)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("sandbox: %w", err)
		}
		if g.guard, err = setPolicy(s.conn, &policy); err != nil {
			return nil, err
		}
	case Postgres:
		g.role = s.m.cfg.roleName(p.id)
		var err error
		if g.granted, err = s.m.sandbox.pg.enterSchema(ctx, tx, g.role); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// explain turns a refusal of the sandbox in the schema work into a
// *SandboxError.
func (g *schemaGuard) explain(err error) error {
	if g == nil || err == nil {
		return err
	}
	if g.guard != nil {
		return g.guard.explainDenial(g.d.plugin, err)
	}
	return explainPG(g.d.plugin, err)
}

// leave returns tx to the host's privileges; see pgSandbox.leaveSchema.
// After a failure it only clears the SQLite policy: the transaction is
// rolled back.
func (g *schemaGuard) leave(ctx context.Context, tx *sql.Tx, failed bool) error {
	if g == nil {
		return nil
	}
	if g.guard != nil {
		if _, err := setPolicy(g.s.conn, nil); err != nil || failed {
			return err
		}
		var after map[string]string
		err := g.s.conn.Raw(func(dc any) error {
			var err error
			after, err = sqliteOutside(dc, g.d.prefix)
			return err
		})
		if err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		return outsideChanged(g.d.policy, g.outside, after)
	}
	if failed {
		return nil
	}
	return g.s.m.sandbox.pg.leaveSchema(ctx, tx, g.d.plugin, g.d.prefix, g.role, g.granted)
}

// sandboxCatalog is what the sandbox reads of the database once per schema
// session: the tables (on PostgreSQL with their owners and the roles
// granted SELECT on them) and, on PostgreSQL, the plugins' roles. A warm
// boot reads it in one query (two on PostgreSQL) for all plugins.
type sandboxCatalog struct {
	stale  bool
	tables map[string]pgTable
	roles  map[string]pgRole
}

// pgTable is a table of the catalog; on SQLite only its name is known.
type pgTable struct {
	owner   string
	readers []string // roles granted SELECT on it directly
}

// catalog returns the session's catalog, read when first needed and again
// after the schema work changed it.
func (s *schemaSession) catalog(ctx context.Context) (*sandboxCatalog, error) {
	if s.cat == nil {
		s.cat = &sandboxCatalog{stale: true}
	}
	if s.cat.stale {
		if err := s.cat.load(ctx, s.conn, &s.m.sandbox.pg); err != nil {
			return nil, err
		}
		names := make(map[string]bool, len(s.cat.tables))
		for name := range s.cat.tables {
			names[name] = true
		}
		s.m.sandbox.tables.Store(&names)
	}
	return s.cat, nil
}

// load reads the catalog.
func (c *sandboxCatalog) load(ctx context.Context, q queryer, b *pgSandbox) error {
	query := `SELECT name, '', '' FROM sqlite_master WHERE type IN ('table', 'view')`
	if b != nil && b.dialect == Postgres {
		var err error
		if c.roles, err = b.loadRoles(ctx, q); err != nil {
			return err
		}
		query = `SELECT c.relname, pg_get_userbyid(c.relowner),
			COALESCE((SELECT string_agg(pg_get_userbyid(a.grantee), ',') FROM aclexplode(c.relacl) a
				WHERE a.privilege_type = 'SELECT' AND a.grantee <> c.relowner), '')
			FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ` + pgRelkinds
	}
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return fmt.Errorf("sandbox: read the tables: %w", err)
	}
	defer rows.Close()
	c.tables = map[string]pgTable{}
	for rows.Next() {
		var name, owner, readers string
		if err := rows.Scan(&name, &owner, &readers); err != nil {
			return err
		}
		t := pgTable{owner: owner}
		if readers != "" {
			t.readers = strings.Split(readers, ",")
		}
		c.tables[name] = t
	}
	if err := rows.Err(); err != nil {
		return err
	}
	c.stale = false
	return nil
}

// tablesWith returns the names of the catalog's tables that start with
// prefix.
func (c *sandboxCatalog) tablesWith(prefix string) []string {
	var out []string
	for name := range c.tables {
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	return out
}

// tableChanges returns the statements that give role what adoptTables
// says: ownership of the plugin's tables, SELECT on the tables it reads
// and nothing on the others.
func (c *sandboxCatalog) tableChanges(prefix, role string, reads []string) []string {
	var stmts []string
	for _, name := range slices.Sorted(maps.Keys(c.tables)) {
		t := c.tables[name]
		mine := strings.HasPrefix(name, prefix)
		readable := slices.Contains(t.readers, role)
		want := slices.Contains(reads, name)
		switch {
		case mine && t.owner != role:
			stmts = append(stmts, `ALTER TABLE `+sqlgen.Quote(name)+` OWNER TO `+sqlgen.Quote(role))
		case !mine && want && !readable:
			stmts = append(stmts, `GRANT SELECT ON `+sqlgen.Quote(name)+` TO `+sqlgen.Quote(role))
		case !mine && !want && readable:
			stmts = append(stmts, `REVOKE ALL ON `+sqlgen.Quote(name)+` FROM `+sqlgen.Quote(role))
		}
	}
	return stmts
}
