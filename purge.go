package pluginhost

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/pluginhost/pluginhost/internal/migrate"
	"github.com/pluginhost/pluginhost/internal/sqlgen"
)

// ErrNotPurgeable is the error of a Purge the plugins' state forbids: the
// plugin is registered and not disabled, or another registered plugin
// declares a [[reads]] grant on it.
var ErrNotPurgeable = errors.New("pluginhost: plugin cannot be purged")

// Purge removes what plugin id left in the database, in one transaction
// (all of it, or nothing on any failure): it drops its tables and views
// (every relation whose name has its prefix, those its migrations created
// included) and, on PostgreSQL, the other objects of its prefix its
// migrations may create (sequences, functions and procedures, types and
// domains), so that its migrations can run again; it deletes its stored settings (the keys in its namespace that no
// other owner defines), its rows in the migration ledger and, when it is
// not registered, its enable/disable override. It runs under the
// migration lock, so that it cannot interleave with the schema work of a
// replica booting on the same database, and on the Manager's control
// goroutine, one at a time with Enable and Disable.
//
// A plugin that is registered must be disabled (by an operator or by
// Config): it stays registered and disabled, and its override is kept, so
// that it stays disabled. Enabled again, it starts afresh: its tables are
// created, its migrations and once-hooks run, its settings get their
// defaults.
//
// Purge fails with an error wrapping ErrNotPurgeable while the plugin is
// registered and not disabled, or while another registered plugin's
// manifest declares a [[reads]] grant on its tables or settings (the error
// names it); with ErrNotFound for an id the database does not record and
// that is not registered; with ErrNotRunning before Start has finished.
//
// On PostgreSQL the plugin's role owns its tables; the host's role is a
// member of it, so it drops them. Purge revokes what the role holds in the
// host's schema (SELECT on other plugins' tables, USAGE on the schema) but
// does not drop the role: roles belong to the whole cluster, and another
// database or schema of the cluster may use it. An administrator drops it,
// when nothing uses it any more, with DROP ROLE.
//
// The database does not know which replicas register a plugin: purge a
// removed plugin once no replica runs it any more. The other replicas list
// a plugin purged here as removed until they restart. Write its rows first
// with [Manager.Export] to keep a copy.
func (m *Manager) Purge(ctx context.Context, id string) error {
	return m.ctl.submit(ctx, func(ctx context.Context) error { return m.purge(ctx, id) })
}

// purged is what a purge removed.
type purged struct {
	relations []relation
	objects   []string // on PostgreSQL, what else its migrations created: "sequence x", …
	settings  []string
	ledger    int
	override  bool
}

// purge is Purge on the control goroutine.
func (m *Manager) purge(ctx context.Context, id string) error {
	if validateID(id) != nil {
		return fmt.Errorf("%w: no plugin %q", ErrNotFound, id)
	}
	p := m.plugins.get(id)
	if p != nil {
		if state, _, _ := m.plugins.stateOf(p); state != StateDisabled {
			return fmt.Errorf("%w: plugin %q is %s: disable it first", ErrNotPurgeable, id, state)
		}
	}
	if readers := m.readersOf(id); len(readers) > 0 {
		return fmt.Errorf("%w: plugin %q: plugin %s declares a [[reads]] grant on its tables or settings; remove the grant from its manifest, or that plugin, first",
			ErrNotPurgeable, id, strings.Join(readers, ", "))
	}
	sess, err := openSchemaSession(ctx, m)
	if err != nil {
		return fmt.Errorf("pluginhost: purge plugin %q: %w", id, err)
	}
	defer sess.close(ctx)
	if err := sess.lock(ctx); err != nil {
		return fmt.Errorf("pluginhost: purge plugin %q: %w", id, err)
	}
	ch := change{Kind: changeSettings, Key: id, Origin: m.instance}
	feed := m.ctl.changeFeed()
	done, err := m.purgeTx(ctx, sess, id, p != nil, ch, feed)
	if err != nil {
		return err
	}
	delete(sess.ledger, id)
	if len(done.settings) > 0 {
		feed.committed(ch)
		if err := m.settings.reload(ctx); err != nil {
			m.log.Warn("purged plugin: could not reload the settings", "plugin", id, "err", err)
		}
	}
	if err := m.readRemoved(ctx, sess); err != nil {
		m.log.Warn("purged plugin: could not list the removed plugins again", "plugin", id, "err", err)
	}
	var names []string
	for _, r := range done.relations {
		names = append(names, r.table)
	}
	m.log.Info("purged plugin", "plugin", id, "tables", names, "objects", done.objects, "settings", done.settings, "ledger_rows", done.ledger, "override", done.override)
	return nil
}

// readersOf returns the registered plugins other than id whose manifest
// declares a [[reads]] grant on plugin id, sorted.
func (m *Manager) readersOf(id string) []string {
	var out []string
	for _, q := range m.plugins.list() {
		if q.id == id || q.manifest == nil {
			continue
		}
		if q.manifest.readsOf(id) != nil {
			out = append(out, fmt.Sprintf("%q", q.id))
		}
	}
	slices.Sort(out)
	return out
}

// purgeTx does the purge's one transaction on the session, which holds the
// migration lock, and announces ch on feed in it when settings go.
func (m *Manager) purgeTx(ctx context.Context, sess *schemaSession, id string, registered bool, ch change, feed feed) (done purged, err error) {
	fail := func(err error) (purged, error) {
		return purged{}, fmt.Errorf("pluginhost: purge plugin %q: %w", id, err)
	}
	stx, err := sess.beginWrite(ctx)
	if err != nil {
		return fail(err)
	}
	committed := false
	defer func() {
		if !committed {
			_ = stx.Rollback()
		}
	}()
	tx := &Tx{tx: stx, db: m.db}

	// What the database records of the plugin, read under the lock.
	if err := sess.ledger.Refresh(ctx, tx, sess.rebind, id); err != nil {
		return fail(err)
	}
	done.ledger = len(sess.ledger[id])
	if done.relations, err = pluginRelations(ctx, tx, sess.dialect, id); err != nil {
		return fail(err)
	}
	keys, err := storedKeys(ctx, tx)
	if err != nil {
		return fail(err)
	}
	for _, k := range keys {
		if owner := m.settings.Owner(k); inNamespace(id, k) && (owner == "" || owner == id) {
			done.settings = append(done.settings, k)
		}
	}
	var enabled sql.NullBool
	switch err := tx.QueryRowContext(ctx, `SELECT enabled FROM `+pluginsTable+` WHERE id = ?`, id).Scan(&enabled); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return fail(fmt.Errorf("read its override: %w", err))
	default:
		done.override = !registered
	}
	switch {
	case !registered && done.ledger == 0 && len(done.relations) == 0 && len(done.settings) == 0 && !done.override:
		return purged{}, fmt.Errorf("%w: no plugin %q: it is not registered, and the database records nothing of it", ErrNotFound, id)
	case registered && enabled.Valid && enabled.Bool:
		return purged{}, fmt.Errorf("%w: plugin %q was enabled meanwhile, by another replica", ErrNotPurgeable, id)
	}

	// The library's rows first, then the plugin's relations: a relation
	// another object depends on fails the purge, which undoes all of it.
	if len(done.settings) > 0 {
		if err := deleteKeys(ctx, tx, done.settings); err != nil {
			return fail(err)
		}
		if err := feed.announce(ctx, tx, ch); err != nil {
			return fail(fmt.Errorf("announce it: %w", err))
		}
	}
	if done.override {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+pluginsTable+` WHERE id = ?`, id); err != nil {
			return fail(fmt.Errorf("delete its override: %w", err))
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+migrate.LedgerTable+` WHERE line = ?`, id); err != nil {
		return fail(fmt.Errorf("delete its ledger rows: %w", err))
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+jobsTable+` WHERE plugin = ?`, id); err != nil {
		return fail(fmt.Errorf("delete its jobs' rows: %w", err))
	}
	if err := dropRelations(ctx, tx, sess.dialect, done.relations); err != nil {
		return fail(err)
	}
	if sess.dialect == Postgres {
		if done.objects, err = dropPGObjects(ctx, tx, id); err != nil {
			return fail(err)
		}
	}
	if sess.dialect == Postgres && !m.cfg.SandboxOff {
		if err := revokeRole(ctx, tx, m.cfg.roleName(id)); err != nil {
			return fail(err)
		}
	}
	if err := stx.Commit(); err != nil {
		if sess.dialect == SQLite && strings.Contains(err.Error(), "FOREIGN KEY") {
			// Checked at commit: dropRelations defers the foreign keys.
			return fail(fmt.Errorf("commit: %w: a table outside the plugin has rows that reference one of its tables", err))
		}
		return fail(fmt.Errorf("commit: %w", err))
	}
	committed = true
	return done, nil
}

// relation is one of a plugin's tables or views.
type relation struct {
	name  string // physical
	table string // declared: without the plugin's prefix
	kind  string // "table", "view"; on PostgreSQL also "materialized view", "foreign table"
}

// pluginRelations returns plugin id's tables and views, by their prefix,
// in creation order.
func pluginRelations(ctx context.Context, q rowsQueryer, d Dialect, id string) ([]relation, error) {
	query := `SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') AND name LIKE ? ESCAPE '\' ORDER BY rowid`
	if d == Postgres {
		query = `SELECT relname, CASE relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table' ELSE 'table' END
			FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind IN ` + pgRelkinds + ` AND relname LIKE ? ESCAPE '\' ORDER BY oid`
	}
	rows, err := q.QueryContext(ctx, query, likePrefix(tablePrefix(id)))
	if err != nil {
		return nil, fmt.Errorf("read its tables: %w", err)
	}
	defer rows.Close()
	var out []relation
	for rows.Next() {
		var r relation
		if err := rows.Scan(&r.name, &r.kind); err != nil {
			return nil, fmt.Errorf("read its tables: %w", err)
		}
		var ok bool
		if r.table, ok = ownTable(id, r.name); ok {
			out = append(out, r)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read its tables: %w", err)
	}
	return out, nil
}

// dropRelations drops rels, given in creation order: the views first, then
// the tables, the latest first (on PostgreSQL, each kind in one statement).
// On SQLite the foreign keys are checked at commit: the tables are dropped
// together, whatever order their references ask for.
func dropRelations(ctx context.Context, tx *Tx, d Dialect, rels []relation) error {
	if len(rels) == 0 {
		return nil
	}
	byKind := map[string][]string{}
	var kinds []string
	for _, r := range slices.Backward(rels) {
		if byKind[r.kind] == nil {
			kinds = append(kinds, r.kind)
		}
		byKind[r.kind] = append(byKind[r.kind], sqlgen.Quote(r.name))
	}
	// Views depend on tables, never the other way.
	slices.SortStableFunc(kinds, func(a, b string) int {
		return boolOrder(strings.HasSuffix(a, "view"), strings.HasSuffix(b, "view"))
	})
	if d == SQLite {
		if _, err := tx.ExecContext(ctx, `PRAGMA defer_foreign_keys = ON`); err != nil {
			return err
		}
	}
	for _, kind := range kinds {
		names := byKind[kind]
		stmts := []string{`DROP ` + strings.ToUpper(kind) + ` ` + strings.Join(names, ", ")}
		if d == SQLite {
			stmts = stmts[:0]
			for _, n := range names {
				stmts = append(stmts, `DROP `+strings.ToUpper(kind)+` `+n)
			}
		}
		for _, stmt := range stmts {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
		}
	}
	return nil
}

// pgObjects are the kinds of object other than tables and views that a
// plugin's migrations can create in its namespace on PostgreSQL, in the
// order Purge drops them (what may depend on a later kind first), each with
// the query of their names by prefix in the current schema (the tables and
// views dropped already, with the sequences and types they own).
var pgObjects = []struct{ kind, query string }{
	{"sequence", `SELECT quote_ident(relname) FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind = 'S' AND relname LIKE ? ESCAPE '\' ORDER BY oid`},
	{"routine", `SELECT oid::regprocedure::text FROM pg_proc WHERE pronamespace = current_schema()::regnamespace AND proname LIKE ? ESCAPE '\' ORDER BY oid`},
	{"type", `SELECT quote_ident(t.typname) FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid
		WHERE t.typnamespace = current_schema()::regnamespace AND t.typtype = 'c' AND c.relkind = 'c' AND t.typname LIKE ? ESCAPE '\' ORDER BY t.oid`},
	{"domain", `SELECT quote_ident(typname) FROM pg_type WHERE typnamespace = current_schema()::regnamespace AND typtype = 'd' AND typname LIKE ? ESCAPE '\' ORDER BY oid`},
	{"type", `SELECT quote_ident(typname) FROM pg_type WHERE typnamespace = current_schema()::regnamespace AND typtype IN ('e', 'r') AND typname LIKE ? ESCAPE '\' ORDER BY oid`},
}

// dropPGObjects drops, once its tables and views are, what else plugin
// id's migrations created in its namespace on PostgreSQL (sequences no
// column owns, functions and procedures, types and domains), so that its
// migrations can run again, and returns what it dropped ("sequence x").
// Something outside the plugin that depends on one of them fails the
// purge.
func dropPGObjects(ctx context.Context, tx *Tx, id string) ([]string, error) {
	var dropped []string
	for _, o := range pgObjects {
		rows, err := tx.QueryContext(ctx, o.query, likePrefix(tablePrefix(id)))
		if err != nil {
			return nil, fmt.Errorf("read its %ss: %w", o.kind, err)
		}
		var names []string
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read its %ss: %w", o.kind, err)
			}
			names = append(names, name)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read its %ss: %w", o.kind, err)
		}
		if len(names) == 0 {
			continue
		}
		stmt := `DROP ` + strings.ToUpper(o.kind) + ` ` + strings.Join(names, ", ")
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("%s: %w", stmt, err)
		}
		for _, n := range names {
			dropped = append(dropped, o.kind+" "+n)
		}
	}
	return dropped, nil
}

// boolOrder orders true before false.
func boolOrder(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return -1
	}
	return 1
}

// deleteKeys deletes the stored settings keys, in one statement.
func deleteKeys(ctx context.Context, tx *Tx, keys []string) error {
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(keys)), ", ")
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+settingsTable+` WHERE key IN (`+marks+`)`, args...); err != nil {
		return fmt.Errorf("delete its settings: %w", err)
	}
	return nil
}

// revokeRole revokes what role, a plugin's, holds in the current schema
// once its tables are dropped: its privileges on the tables left (SELECT
// on the tables of the plugins it read) and on the schema. The role itself
// stays: it belongs to the cluster.
func revokeRole(ctx context.Context, tx *Tx, role string) error {
	var exists bool
	var schema string
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ?), current_schema()`, role).Scan(&exists, &schema); err != nil {
		return fmt.Errorf("read its role: %w", err)
	}
	if !exists {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT c.relname FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a
		WHERE c.relnamespace = current_schema()::regnamespace AND a.grantee = ?::regrole ORDER BY c.relname`, role)
	if err != nil {
		return fmt.Errorf("read the privileges of role %s: %w", sqlgen.Quote(role), err)
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	stmts := make([]string, 0, len(tables)+1)
	for _, t := range tables {
		stmts = append(stmts, `REVOKE ALL ON `+sqlgen.Quote(t)+` FROM `+sqlgen.Quote(role))
	}
	stmts = append(stmts, `REVOKE ALL ON SCHEMA `+sqlgen.Quote(schema)+` FROM `+sqlgen.Quote(role))
	for _, stmt := range stmts {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	return nil
}
