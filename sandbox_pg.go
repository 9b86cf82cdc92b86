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

// quoteIdent quotes a PostgreSQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// pgSandbox is the Manager's PostgreSQL sandbox state: what it learnt of
// the host's role, and the plugins' pools.
type pgSandbox struct {
	dialect  Dialect
	prefix   string // the roles' prefix
	mu       sync.Mutex
	hostRole string // current_user
	schema   string // current_schema()
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

// pgRole is what the catalog says of a plugin's role.
type pgRole struct{ member, usage bool }

// loadRoles reads the host's role and the roles with the sandbox's
// prefix, in one query.
func (b *pgSandbox) loadRoles(ctx context.Context, q queryer, prefix string) (map[string]pgRole, error) {
	rows, err := q.QueryContext(ctx, `SELECT current_user, current_schema(), h.rolsuper, h.rolcreaterole, r.rolname,
		COALESCE(pg_has_role(current_user, r.oid, 'MEMBER'), false),
		COALESCE(has_schema_privilege(r.oid, current_schema(), 'USAGE'), false)
		FROM pg_roles h LEFT JOIN pg_roles r ON r.rolname LIKE $1 ESCAPE '\'
		WHERE h.rolname = current_user`, likePrefix(prefix))
	if err != nil {
		return nil, fmt.Errorf("sandbox: read the roles: %w", err)
	}
	defer rows.Close()
	roles := map[string]pgRole{}
	for rows.Next() {
		var name sql.NullString
		var r pgRole
		if err := rows.Scan(&b.hostRole, &b.schema, &b.super, &b.create, &name, &r.member, &r.usage); err != nil {
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
func (b *pgSandbox) ensureRole(ctx context.Context, q queryer, c *sandboxCatalog, role string, lock func(context.Context) error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for locked := false; ; locked = true {
		r, exists := c.roles[role]
		if exists && (r.member || b.super) && r.usage {
			return nil
		}
		if !exists && !b.super && !b.create {
			return fmt.Errorf("sandbox: role %s does not exist, and the host's role %s may not create it (it needs CREATEROLE): run %q as an administrator (Manager.SandboxRoles lists every plugin's), or leave the plugin outside the sandbox with Config.Unsandboxed",
				role, b.hostRole, b.provision(role))
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
		if err := b.provisionRole(ctx, q, role, exists, r.member, r.usage); err != nil {
			return err
		}
		c.roles[role] = pgRole{member: true, usage: true}
		return nil
	}
}

// provisionRole creates role, makes the host a member and grants it USAGE
// on the schema, as far as each is missing.
func (b *pgSandbox) provisionRole(ctx context.Context, q queryer, role string, exists, member, usage bool) error {
	if !exists {
		if _, err := q.ExecContext(ctx, `CREATE ROLE `+quoteIdent(role)+` NOLOGIN`); err != nil && !isDuplicate(err) {
			return fmt.Errorf("sandbox: create role %s: %w", role, err)
		}
	}
	if !member && !b.super {
		if _, err := q.ExecContext(ctx, `GRANT `+quoteIdent(role)+` TO `+quoteIdent(b.hostRole)); err != nil {
			return fmt.Errorf("sandbox: the host's role %s must be a member of role %s, to create the plugin's tables as it: run %q as an administrator: %w",
				b.hostRole, role, "GRANT "+quoteIdent(role)+" TO "+quoteIdent(b.hostRole), err)
		}
	}
	if !usage {
		if _, err := q.ExecContext(ctx, `GRANT USAGE ON SCHEMA `+quoteIdent(b.schema)+` TO `+quoteIdent(role)); err != nil {
			return fmt.Errorf("sandbox: role %s needs USAGE on schema %s: %w", role, b.schema, err)
		}
	}
	return nil
}

// isDuplicate: another process created the object first.
func isDuplicate(err error) bool {
	var se sqlStater
	if errors.As(err, &se) {
		switch se.SQLState() {
		case "42710", "23505", "XX000": // duplicate_object; a concurrent insert into pg_authid
			return true
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
// there is anything to change.
func (b *pgSandbox) adoptTables(ctx context.Context, q queryer, c *sandboxCatalog, prefix, role string, reads []string, lock func(context.Context) error) error {
	stmts := c.tableChanges(prefix, role, reads)
	if len(stmts) == 0 {
		return nil
	}
	if err := lock(ctx); err != nil {
		return err
	}
	if err := c.load(ctx, q, b); err != nil {
		return err
	}
	for _, stmt := range c.tableChanges(prefix, role, reads) {
		if _, err := q.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("sandbox: %s: %w", stmt, err)
		}
	}
	c.stale = true
	return nil
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
			return nil, fmt.Errorf("sandbox: Config.PluginDB: %w", err)
		}
		var user string
		if err := db.QueryRowContext(ctx, `SELECT current_user`).Scan(&user); err != nil {
			return nil, fmt.Errorf("sandbox: Config.PluginDB's pool: %w", err)
		}
		if user != role {
			return nil, fmt.Errorf("sandbox: Config.PluginDB's pool logs in as %s; it must log in as the plugin's role, %s", user, role)
		}
	} else {
		cc, err := hostConnConfig(conn)
		if err != nil {
			return nil, err
		}
		setRole := `SET ROLE ` + quoteIdent(role)
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
	var can bool
	if err := tx.QueryRowContext(ctx, `SELECT has_schema_privilege($1, current_schema(), 'CREATE')`, role).Scan(&can); err != nil {
		return false, fmt.Errorf("sandbox: %w", err)
	}
	if !can {
		if _, err := tx.ExecContext(ctx, `GRANT CREATE ON SCHEMA `+quoteIdent(b.schema)+` TO `+quoteIdent(role)); err != nil {
			return false, fmt.Errorf("sandbox: grant role %s CREATE on schema %s for its schema work (the host's role must own the schema or hold CREATE on it WITH GRANT OPTION): %w", role, b.schema, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `SET LOCAL ROLE `+quoteIdent(role)); err != nil {
		return false, fmt.Errorf("sandbox: %w", err)
	}
	return !can, nil
}

// leaveSchema ends what enterSchema began: it checks the plugin's code
// did not change role, returns to the host's role, revokes CREATE and
// fails when the plugin created a table or view outside its namespace.
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
		if _, err := tx.ExecContext(ctx, `REVOKE CREATE ON SCHEMA `+quoteIdent(b.schema)+` FROM `+quoteIdent(role)); err != nil {
			return err
		}
	}
	var stray string
	// A temporary table would outlive the transaction on the host's
	// connection, and hide a table of the same name from the host.
	err := tx.QueryRowContext(ctx, `SELECT c.relname FROM pg_class c WHERE c.relowner = $1::regrole
		AND c.relkind IN `+pgRelkinds+` AND (c.relname NOT LIKE $2 ESCAPE '\' OR c.relnamespace = pg_my_temp_schema())
		ORDER BY c.relname LIMIT 1`, role, likePrefix(prefix)).Scan(&stray)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return err
	}
	return &SandboxError{Plugin: plugin, Action: "create", Object: fmt.Sprintf("table %q, outside its namespace (or temporary): its tables' names start with %q", stray, prefix)}
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
	return fmt.Sprintf("CREATE ROLE %s NOLOGIN; GRANT %s TO %s;", quoteIdent(role), quoteIdent(role), quoteIdent(b.hostRole))
}
