package pluginhost

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pluginhost/pluginhost/internal/sqlgen"
)

// The PostgreSQL sandbox: a role per plugin.
//
// Each sandboxed plugin has a role, Config.SandboxRolePrefix plus its id
// with "-" as "_" (NOLOGIN, created by the host when its role may create
// roles, else provisioned by the operator: see Manager.SandboxRoles). The
// role owns the plugin's tables and holds SELECT on the tables the plugin
// declared it reads; it has no other privilege the host grants, so the
// engine refuses the rest: the host's tables, the library's, the other
// plugins'.
//
//   - The plugin's schema work (its declared tables, its migrations, its
//     once-hooks) runs in the host's schema transaction under SET LOCAL
//     ROLE, with CREATE on the schema granted inside that transaction and
//     revoked before it commits; tables it created outside its namespace
//     fail the transaction.
//   - Its statements at run time run on a pool of its own: by default the
//     host's connection settings with SET ROLE once per connection, or,
//     with Config.PluginDB, a pool the host opens that logs in as the
//     role. In the default mode a plugin's own SQL could RESET ROLE; with
//     Config.PluginDB there is nothing to reset to.

// defaultRolePrefix is Config.SandboxRolePrefix's default.
const defaultRolePrefix = "pluginhost_"

// roleName returns the PostgreSQL role of plugin id.
func (c *Config) roleName(id string) string {
	prefix := c.SandboxRolePrefix
	if prefix == "" {
		prefix = defaultRolePrefix
	}
	return prefix + strings.ReplaceAll(id, "-", "_")
}

// pgSandbox is the Manager's PostgreSQL sandbox state: what it learnt of
// the host's role, and the plugins' pools.
type pgSandbox struct {
	dialect  Dialect
	prefix   string // the roles' prefix
	mu       sync.Mutex
	hostRole string // current_user
	schema   string // current_schema()
	database string // current_database()
	super    bool
	create   bool // CREATEROLE
	pools    map[string]*sql.DB
	opened   map[string]bool // pools the Manager opened, and closes
}

// queryer is what the sandbox's catalog statements run on.
type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// pgRole is what the catalog says of a plugin's role: whether the host's
// role is a member that inherits its privileges (pg_has_role USAGE:
// through such a membership it may also SET ROLE to it, and on
// PostgreSQL 16 the ADMIN-only membership CREATEROLE gives a role's
// creator does not count), and whether the role may use the schema.
type pgRole struct{ member, usage bool }

// loadRoles reads the host's role and the roles with the sandbox's
// prefix, in one query.
func (b *pgSandbox) loadRoles(ctx context.Context, q queryer) (map[string]pgRole, error) {
	rows, err := q.QueryContext(ctx, `SELECT current_user, current_database(), current_schema(), h.rolsuper, h.rolcreaterole, r.rolname,
		COALESCE(pg_has_role(current_user, r.oid, 'USAGE'), false),
		COALESCE(has_schema_privilege(r.oid, current_schema(), 'USAGE'), false)
		FROM pg_roles h LEFT JOIN pg_roles r ON r.rolname LIKE $1 ESCAPE '\'
		WHERE h.rolname = current_user`, likePrefix(b.prefix))
	if err != nil {
		return nil, fmt.Errorf("sandbox: read the roles: %w", err)
	}
	defer rows.Close()
	roles := map[string]pgRole{}
	for rows.Next() {
		var name sql.NullString
		var r pgRole
		if err := rows.Scan(&b.hostRole, &b.database, &b.schema, &b.super, &b.create, &name, &r.member, &r.usage); err != nil {
			return nil, err
		}
		if name.Valid {
			roles[name.String] = r
		}
	}
	return roles, rows.Err()
}

// ensureRole makes sure plugin role exists, that the host may act as
// it, and that it may use the schema: creating and granting what it can,
// under the migration lock (lock), else an error naming what is missing.
// roles is the catalog's, read again under the lock.
func (b *pgSandbox) ensureRole(ctx context.Context, q queryer, c *sandboxCatalog, plugin, role string, lock func(context.Context) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for locked := false; ; locked = true {
		r, exists := c.roles[role]
		if exists && (r.member || b.super) && r.usage {
			return nil
		}
		if !exists && !b.super && !b.create {
			return fmt.Errorf("sandbox: plugin %q: role %s does not exist, and the host's role %s may not create it (that needs CREATEROLE): provision it (Manager.SandboxRoles lists every plugin's) or leave the plugin outside the sandbox with Config.Unsandboxed; as an administrator, run: %s",
				plugin, sqlgen.Quote(role), sqlgen.Quote(b.hostRole), b.provision(role))
		}
		if !locked {
			if err := lock(ctx); err != nil {
				return err
			}
			if err := c.load(ctx, q, b); err != nil { // another replica may have done it meanwhile
				return err
			}
			continue
		}
		if err := b.provisionRole(ctx, q, plugin, role, exists, r.member || b.super, r.usage); err != nil {
			return err
		}
		c.roles[role] = pgRole{member: true, usage: true}
		return nil
	}
}

// provisionRole creates role, makes the host a member and grants it USAGE
// on the schema, as far as each is missing.
func (b *pgSandbox) provisionRole(ctx context.Context, q queryer, plugin, role string, exists, member, usage bool) error {
	if !exists {
		if _, err := q.ExecContext(ctx, `CREATE ROLE `+sqlgen.Quote(role)+` NOLOGIN`); err != nil && !isDuplicate(err) {
			return fmt.Errorf("sandbox: plugin %q: create role %s: %w", plugin, sqlgen.Quote(role), err)
		}
	}
	if !member {
		if _, err := q.ExecContext(ctx, b.grantRole(role)); err != nil {
			return fmt.Errorf("sandbox: plugin %q: the host's role %s must be a member of role %s, to do the plugin's schema work as it (%w); as an administrator, run: %s;",
				plugin, sqlgen.Quote(b.hostRole), sqlgen.Quote(role), err, b.grantRole(role))
		}
	}
	if !usage {
		if _, err := q.ExecContext(ctx, b.grantUsage(role)); err != nil {
			return fmt.Errorf("sandbox: plugin %q: role %s needs USAGE on schema %s, which the host's role %s may not grant (%w); as an administrator, run: %s;",
				plugin, sqlgen.Quote(role), sqlgen.Quote(b.schema), sqlgen.Quote(b.hostRole), err, b.grantUsage(role))
		}
	}
	return nil
}

// grantRole is the statement that makes the host's role a member of role.
func (b *pgSandbox) grantRole(role string) string {
	return `GRANT ` + sqlgen.Quote(role) + ` TO ` + sqlgen.Quote(b.hostRole)
}

// grantUsage is the statement that lets role use the host's schema.
func (b *pgSandbox) grantUsage(role string) string {
	return `GRANT USAGE ON SCHEMA ` + sqlgen.Quote(b.schema) + ` TO ` + sqlgen.Quote(role)
}

// isDuplicate: another process created the object first.
func isDuplicate(err error) bool {
	var se sqlStater
	if errors.As(err, &se) {
		switch se.SQLState() {
		case "42710", "23505": // duplicate_object; a concurrent insert into pg_authid
			return true
		case "XX000": // internal_error, which a concurrent CREATE ROLE can give
			return strings.Contains(err.Error(), "tuple concurrently updated")
		}
	}
	return false
}

// likePrefix returns a LIKE pattern matching names that start with prefix.
func likePrefix(prefix string) string {
	r := strings.NewReplacer(`\`, `\\`, `_`, `\_`, `%`, `\%`)
	return r.Replace(prefix) + "%"
}

// pgRelkinds are the relations a plugin owns by name: tables, views,
// materialized views, partitioned and foreign tables.
const pgRelkinds = `('r','p','v','m','f')`

// adoptTables makes the role own the plugin's tables that exist (created
// before the sandbox, by the host) and grants and revokes SELECT on its
// dependencies' tables as its reads say, under the migration lock when
// there is anything to change, in one transaction. A new owner must hold
// CREATE on the table's schema (unless the host's role is a superuser):
// the transaction grants it for the ALTERs and revokes it before it
// commits, as enterSchema and leaveSchema do.
func (b *pgSandbox) adoptTables(ctx context.Context, conn *sql.Conn, c *sandboxCatalog, plugin, prefix, role string, reads []string, lock func(context.Context) error) error {
	if len(c.tableChanges(prefix, role, reads)) == 0 {
		return nil
	}
	if err := lock(ctx); err != nil {
		return err
	}
	if err := c.load(ctx, conn, b); err != nil {
		return err
	}
	stmts := c.tableChanges(prefix, role, reads)
	if len(stmts) == 0 {
		return nil
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sandbox: plugin %q: %w", plugin, err)
	}
	defer func() { _ = tx.Rollback() }()
	granted := false
	for _, stmt := range stmts {
		if strings.HasPrefix(stmt, "ALTER") && !granted && !b.super {
			if granted, err = b.grantCreate(ctx, tx, role); err != nil {
				return fmt.Errorf("sandbox: plugin %q: adopt its tables made before the sandbox: %w", plugin, err)
			}
		}
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("sandbox: plugin %q: %s: %w", plugin, stmt, err)
		}
	}
	if granted {
		if _, err := tx.ExecContext(ctx, b.revokeCreate(role)); err != nil {
			return fmt.Errorf("sandbox: plugin %q: %w", plugin, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sandbox: plugin %q: %w", plugin, err)
	}
	c.stale = true
	return nil
}

// revokeCreate is the statement that ends what grantCreate granted.
func (b *pgSandbox) revokeCreate(role string) string {
	return `REVOKE CREATE ON SCHEMA ` + sqlgen.Quote(b.schema) + ` FROM ` + sqlgen.Quote(role)
}

// grantCreate grants role CREATE on the schema in tx, unless it holds it;
// it reports whether it granted it, for the caller to revoke in tx.
func (b *pgSandbox) grantCreate(ctx context.Context, tx *sql.Tx, role string) (granted bool, err error) {
	var can bool
	if err := tx.QueryRowContext(ctx, `SELECT has_schema_privilege($1, current_schema(), 'CREATE')`, role).Scan(&can); err != nil {
		return false, err
	}
	if can {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, `GRANT CREATE ON SCHEMA `+sqlgen.Quote(b.schema)+` TO `+sqlgen.Quote(role)); err != nil {
		return false, fmt.Errorf("grant role %s CREATE on schema %s (the host's role must own the schema or hold CREATE on it WITH GRANT OPTION): %w", sqlgen.Quote(role), sqlgen.Quote(b.schema), err)
	}
	return true, nil
}

// pool returns the plugin's pool, opening it the first time.
func (b *pgSandbox) pool(ctx context.Context, m *Manager, conn *sql.Conn, id, role string) (*sql.DB, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pools == nil {
		b.pools, b.opened = map[string]*sql.DB{}, map[string]bool{}
	}
	if db := b.pools[id]; db != nil {
		return db, nil
	}
	var db *sql.DB
	if m.cfg.PluginDB != nil {
		var err error
		if db, err = m.cfg.PluginDB(id, role); err != nil {
			return nil, fmt.Errorf("sandbox: plugin %q: Config.PluginDB: %w", id, err)
		}
		if db == nil {
			return nil, fmt.Errorf("sandbox: plugin %q: Config.PluginDB returned no pool and no error", id)
		}
		if err := b.checkPluginDB(ctx, db, id, role); err != nil {
			return nil, err
		}
	} else {
		cc, err := hostConnConfig(conn)
		if err != nil {
			return nil, err
		}
		setRole := `SET ROLE ` + sqlgen.Quote(role)
		db = stdlib.OpenDB(*cc, stdlib.OptionAfterConnect(func(ctx context.Context, c *pgx.Conn) error {
			_, err := c.Exec(ctx, setRole)
			return err
		}))
		b.opened[id] = true
	}
	open := m.cfg.DB.Stats().MaxOpenConnections
	if _, n := m.cfg.limits(id); n > 0 {
		open = n
	}
	db.SetMaxOpenConns(open)
	// Few idle: each plugin's pool adds to what the host holds.
	db.SetMaxIdleConns(1)
	db.SetConnMaxIdleTime(30 * time.Second)
	b.pools[id] = db
	return db, nil
}

// checkPluginDB checks that db, Config.PluginDB's pool for plugin id,
// logs in as role, the plugin's (its session user, not only its current
// user: a login that sets the role could reset it), on the host's database
// and schema.
func (b *pgSandbox) checkPluginDB(ctx context.Context, db *sql.DB, id, role string) error {
	var session, current, database, schema sql.NullString
	if err := db.QueryRowContext(ctx, `SELECT session_user, current_user, current_database(), current_schema()`).Scan(&session, &current, &database, &schema); err != nil {
		return fmt.Errorf("sandbox: plugin %q: Config.PluginDB's pool: %w", id, err)
	}
	switch {
	case session.String != role || current.String != role:
		return fmt.Errorf("sandbox: plugin %q: Config.PluginDB's pool logs in as %s (current role %s); it must log in as the plugin's role, %s (created WITH LOGIN: see Manager.SandboxRoles)",
			id, sqlgen.Quote(session.String), sqlgen.Quote(current.String), sqlgen.Quote(role))
	case database.String != b.database || schema.String != b.schema:
		return fmt.Errorf("sandbox: plugin %q: Config.PluginDB's pool, logged in as %s, uses database %s, schema %s; it must use the host's, database %s, schema %s (set its search_path)",
			id, sqlgen.Quote(role), sqlgen.Quote(database.String), sqlgen.Quote(schema.String), sqlgen.Quote(b.database), sqlgen.Quote(b.schema))
	}
	return nil
}

// hostConnConfig returns the connection settings of the host's pool, read
// from conn, one of its pgx connections.
func hostConnConfig(conn *sql.Conn) (*pgx.ConnConfig, error) {
	var cc *pgx.ConnConfig
	err := conn.Raw(func(dc any) error {
		c, ok := dc.(interface{ Conn() *pgx.Conn })
		if !ok || c.Conn() == nil {
			return fmt.Errorf("sandbox: the host's PostgreSQL driver (%T) is not pgx's stdlib: open the database with github.com/jackc/pgx/v5/stdlib, give each plugin its pool with Config.PluginDB, or set Config.SandboxOff", dc)
		}
		cc = c.Conn().Config()
		return nil
	})
	return cc, err
}

// close closes the pools the Manager opened.
func (b *pgSandbox) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, db := range b.pools {
		if b.opened[id] {
			_ = db.Close()
		}
		delete(b.pools, id)
	}
}

// enterSchema makes the statements of tx that follow run as the plugin's
// role, with CREATE on the schema for its schema work. It reports whether
// it granted CREATE, for leaveSchema to revoke.
func (b *pgSandbox) enterSchema(ctx context.Context, tx *sql.Tx, role string) (granted bool, err error) {
	if granted, err = b.grantCreate(ctx, tx, role); err != nil {
		return false, fmt.Errorf("sandbox: for the plugin's schema work: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `SET LOCAL ROLE `+sqlgen.Quote(role)); err != nil {
		return false, fmt.Errorf("sandbox: %w", err)
	}
	return granted, nil
}

// leaveSchema ends what enterSchema began: it checks the plugin's code
// did not change role, returns to the host's role, revokes CREATE and
// fails when the plugin created a table, view or function outside its
// namespace, or a temporary table.
//
// What it does not catch (the README says so): the schema work runs in the
// host's transaction under SET LOCAL ROLE, and the host's role is a member
// of the plugin's. Migrations with a statement that changes the role are
// refused before they run (runSandboxed) and a hook's Tx refuses them, but
// SQL run dynamically (EXECUTE in a DO block, set_config) can act as the
// host, or as another plugin, and set the role back before the work ends:
// PostgreSQL keeps no trace of the role a statement ran as
// (TestPGSandboxMigrationResetAndSetBack). The robust mode
// (Config.PluginDB) covers the statements at run time, not the schema
// work, which stays in the host's transaction with the ledger.
func (b *pgSandbox) leaveSchema(ctx context.Context, tx *sql.Tx, plugin, prefix, role string, granted bool) error {
	var user string
	if err := tx.QueryRowContext(ctx, `SELECT current_user`).Scan(&user); err != nil {
		return err
	}
	if user != role {
		return &SandboxError{Plugin: plugin, Action: "change", Object: fmt.Sprintf("its role: its schema work ended as %s instead of %s", user, role)}
	}
	// The schema session's connection goes back to the host's pool: what
	// the plugin's SQL set for the session goes with it.
	if _, err := tx.ExecContext(ctx, `RESET ROLE; RESET search_path`); err != nil {
		return err
	}
	if granted {
		if _, err := tx.ExecContext(ctx, b.revokeCreate(role)); err != nil {
			return err
		}
	}
	var stray string
	// A temporary table would outlive the transaction on the host's
	// connection, and hide a table of the same name from the host.
	// A function outside the namespace could take a name the host needs,
	// or be one the host's SQL calls.
	err := tx.QueryRowContext(ctx, `SELECT name FROM (
		SELECT 'table ' || quote_ident(c.relname) AS name FROM pg_class c WHERE c.relowner = $1::regrole
			AND c.relkind IN `+pgRelkinds+` AND (c.relname NOT LIKE $2 ESCAPE '\' OR c.relnamespace = pg_my_temp_schema())
		UNION ALL
		SELECT 'function ' || quote_ident(p.proname) FROM pg_proc p WHERE p.proowner = $1::regrole AND p.proname NOT LIKE $2 ESCAPE '\'
		) x ORDER BY name LIMIT 1`, role, likePrefix(prefix)).Scan(&stray)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return err
	}
	return &SandboxError{Plugin: plugin, Action: "create", Object: fmt.Sprintf("%s, outside its namespace (or temporary): the names of its tables and functions start with %q", stray, prefix)}
}

// pgDenied matches PostgreSQL's insufficient_privilege messages, for the
// object they name.
var pgDenied = regexp.MustCompile(`^(?:permission denied for|must be owner of) (\w+ .+)$`)

// explainPG turns err, a statement's error, into a *SandboxError when
// PostgreSQL refused it for want of a privilege (SQLSTATE 42501).
func explainPG(plugin string, err error) error {
	var pe *pgconn.PgError
	if err == nil || !errors.As(err, &pe) || pe.Code != "42501" {
		return err
	}
	action, object := "use", pe.Message
	if mm := pgDenied.FindStringSubmatch(pe.Message); mm != nil {
		object = mm[1]
		if strings.HasPrefix(pe.Message, "must be owner") {
			action = "change"
		}
	}
	return &SandboxError{Plugin: plugin, Action: action, Object: object, Err: err}
}

// provision is the SQL an administrator runs to provision role for the
// host.
func (b *pgSandbox) provision(role string) string {
	return `CREATE ROLE ` + sqlgen.Quote(role) + ` NOLOGIN; ` + b.grantRole(role) + `;`
}
