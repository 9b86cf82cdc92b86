package pluginhost

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"weak"
)

// The SQLite sandbox: an authorizer on the connection.
//
// SQLite asks a connection's authorizer about every table, column, pragma
// and function a statement uses while it compiles the statement (and again
// if it recompiles it after a schema change). The authorizer is
// mattn/go-sqlite3's (*SQLiteConn).RegisterAuthorizer, reached through
// sql.Conn.Raw with an interface assertion, so that this package does not
// import the cgo driver and builds with CGO_ENABLED=0.
//
// The host's pool is shared between the host and the plugins, so the
// authorizer is registered once per connection (a guard) and consults the
// policy the guard holds at that moment: none (the host's statements: all
// allowed) or one plugin's. A plugin's statement takes a connection of its
// own from the pool (sql.Conn), sets its policy on the connection's guard,
// compiles and runs, and clears the policy before the connection goes back
// to the pool; a query clears it once compiled, while its rows are read,
// and the connection returns when they are closed.

// The authorizer's action codes and answers, from sqlite3.h.
const (
	sqliteOK   = 0
	sqliteDeny = 1

	sqliteCreateIndex     = 1
	sqliteCreateTable     = 2
	sqliteCreateTempIndex = 3
	sqliteCreateTempTable = 4
	sqliteCreateTempTrig  = 5
	sqliteCreateTempView  = 6
	sqliteCreateTrigger   = 7
	sqliteCreateView      = 8
	sqliteDelete          = 9
	sqliteDropIndex       = 10
	sqliteDropTable       = 11
	sqliteDropTempIndex   = 12
	sqliteDropTempTable   = 13
	sqliteDropTempTrigger = 14
	sqliteDropTempView    = 15
	sqliteDropTrigger     = 16
	sqliteDropView        = 17
	sqliteInsert          = 18
	sqlitePragma          = 19
	sqliteRead            = 20
	sqliteSelect          = 21
	sqliteTransaction     = 22
	sqliteUpdate          = 23
	sqliteAttach          = 24
	sqliteDetach          = 25
	sqliteAlterTable      = 26
	sqliteReindex         = 27
	sqliteAnalyze         = 28
	sqliteCreateVTable    = 29
	sqliteDropVTable      = 30
	sqliteFunction        = 31
	sqliteSavepoint       = 32
	sqliteRecursive       = 33
)

// sqliteAuthorizer is what mattn/go-sqlite3's connection offers.
type sqliteAuthorizer interface {
	RegisterAuthorizer(func(op int, arg1, arg2, arg3 string) int)
}

// sqlitePolicy is what one plugin's statements may do on SQLite.
type sqlitePolicy struct {
	plugin string
	prefix string          // its tables' physical prefix
	reads  map[string]bool // physical names it may read of its dependencies
	ddl    bool            // its schema work: it may create, alter and drop its tables
	// denyAll refuses everything: checkSQLiteStmtCache's probe.
	denyAll bool
	// tables holds the names of the database's tables, as the schema
	// phase last read them (shared by the Manager's policies).
	tables *atomic.Pointer[map[string]bool]
}

// isTable reports whether name is a table of the database; true when the
// tables are unknown, so that such a read is refused.
func (p *sqlitePolicy) isTable(name string) bool {
	if p.tables == nil {
		return true
	}
	m := p.tables.Load()
	return m == nil || (*m)[name]
}

// readPragmas may be run without an argument: they read, and change
// nothing. tablePragmas take a table or an index of the plugin's.
var (
	readPragmas = map[string]bool{
		"foreign_keys": true, "user_version": true, "schema_version": true, "data_version": true,
		"page_size": true, "page_count": true, "encoding": true, "journal_mode": true,
		"busy_timeout": true, "compile_options": true, "freelist_count": true,
	}
	tablePragmas = map[string]bool{
		"table_info": true, "table_xinfo": true, "index_list": true, "index_info": true,
		"index_xinfo": true, "foreign_key_list": true,
	}
)

// sqliteSchemaTables are SQLite's catalog: reading it reveals the schema,
// not data, and SQLite reads it itself to compile statements.
var sqliteSchemaTables = map[string]bool{
	"sqlite_master": true, "sqlite_schema": true, "sqlite_temp_master": true, "sqlite_temp_schema": true,
}

// sqliteFuncTables are the table-valued functions a plugin may read: they
// read their arguments, not the database.
var sqliteFuncTables = map[string]bool{
	"json_each": true, "json_tree": true, "jsonb_each": true, "jsonb_tree": true, "generate_series": true,
}

// denial is what the authorizer refused, for the error.
type denial struct{ action, object string }

// authorize answers SQLite for one action of a statement of the plugin.
func (p *sqlitePolicy) authorize(op int, a1, a2, a3 string) *denial {
	own := func(t string) bool { return strings.HasPrefix(t, p.prefix) && a3ok(a3) }
	if p.denyAll {
		return &denial{"run", "anything"}
	}
	switch op {
	case sqliteTransaction:
		if p.ddl {
			return &denial{"begin or end", "the schema transaction, which the Manager commits with its ledger rows"}
		}
		return nil
	case sqliteSelect, sqliteSavepoint, sqliteRecursive:
		return nil
	case sqliteFunction:
		if strings.EqualFold(a2, "load_extension") {
			return &denial{"call", "function load_extension"}
		}
		return nil
	case sqliteRead:
		if own(a1) || p.reads[a1] && a3ok(a3) || sqliteSchemaTables[a1] || a1 == "sqlite_sequence" || sqliteFuncTables[a1] {
			return nil
		}
		// SQLite names no database for a common table expression, and
		// none either for a table read without a column (count(*)): a
		// name that is no table of the database is the former.
		if a3 == "" && !p.isTable(a1) {
			return nil
		}
		return &denial{"read", fmt.Sprintf("table %q", a1)}
	case sqliteInsert, sqliteUpdate, sqliteDelete:
		// SQLite asks to write its catalog for a schema change, which it
		// then authorizes itself (a statement cannot write the catalog
		// without PRAGMA writable_schema, which is refused).
		// SQLite writes sqlite_sequence itself when a table with an
		// AUTOINCREMENT key is renamed or dropped: in schema work only.
		if own(a1) || sqliteSchemaTables[a1] || p.ddl && a1 == "sqlite_sequence" && a3ok(a3) {
			return nil
		}
		if p.reads[a1] {
			return &denial{"write", fmt.Sprintf("table %q, which it may only read", a1)}
		}
		return &denial{"write", fmt.Sprintf("table %q", a1)}
	case sqlitePragma:
		return p.pragma(a1, a2)
	case sqliteAttach, sqliteDetach:
		return &denial{"attach or detach", fmt.Sprintf("database %q", a1)}
	case sqliteCreateTempIndex, sqliteCreateTempTable, sqliteCreateTempTrig, sqliteCreateTempView,
		sqliteDropTempIndex, sqliteDropTempTable, sqliteDropTempTrigger, sqliteDropTempView:
		return &denial{"create or drop", fmt.Sprintf("temporary object %q, which could hide a table of the host's connection", a1)}
	}
	return p.schemaChange(op, a1, a2, a3)
}

// a3ok: the object is in the main database, the only one a plugin uses.
func a3ok(db string) bool { return db == "" || db == "main" }

// pragma allows the pragmas that read, on the plugin's own tables.
func (p *sqlitePolicy) pragma(name, arg string) *denial {
	name = strings.ToLower(name)
	switch {
	case tablePragmas[name] && (strings.HasPrefix(arg, p.prefix) || p.reads[arg]):
		return nil
	case arg == "" && readPragmas[name]:
		return nil
	}
	if arg != "" {
		return &denial{"run", fmt.Sprintf("PRAGMA %s(%s)", name, arg)}
	}
	return &denial{"run", fmt.Sprintf("PRAGMA %s", name)}
}

// schemaChange allows creating, altering and dropping the plugin's own
// tables, indexes, views and triggers during its schema work only.
func (p *sqlitePolicy) schemaChange(op int, a1, a2, a3 string) *denial {
	var object, table string
	switch op {
	case sqliteCreateTable, sqliteDropTable, sqliteCreateView, sqliteDropView, sqliteAnalyze:
		object, table = fmt.Sprintf("table %q", a1), a1
	case sqliteCreateIndex, sqliteDropIndex, sqliteCreateTrigger, sqliteDropTrigger:
		object, table = fmt.Sprintf("table %q", a2), a2
	case sqliteAlterTable:
		object, table = fmt.Sprintf("table %q", a2), a2
		a3 = a1 // ALTER TABLE passes the database first
	case sqliteCreateVTable, sqliteDropVTable:
		object, table = fmt.Sprintf("virtual table %q", a1), a1
	case sqliteReindex:
		object, table = fmt.Sprintf("index %q", a1), a1
	default:
		return &denial{"run", fmt.Sprintf("an action SQLite numbers %d", op)}
	}
	switch {
	case op == sqliteCreateTable && table == "sqlite_sequence" && p.ddl:
		return nil // SQLite's, for the first AUTOINCREMENT column
	case !strings.HasPrefix(table, p.prefix) || !a3ok(a3):
		return &denial{"change the schema of", object + ", which is not one of its tables"}
	case !p.ddl && op != sqliteAnalyze && op != sqliteReindex:
		return &denial{"change the schema of", object + " outside its migrations: tables change through its declarations and migrations"}
	}
	return nil
}

// sqliteGuard is the authorizer state of one connection.
type sqliteGuard struct {
	conn   weak.Pointer[byte] // its connection
	policy atomic.Pointer[sqlitePolicy]
	denied atomic.Pointer[denial] // the last action refused
}

// callback is the authorizer registered on the guard's connection.
func (g *sqliteGuard) callback(op int, a1, a2, a3 string) int {
	p := g.policy.Load()
	if p == nil {
		return sqliteOK
	}
	if d := p.authorize(op, a1, a2, a3); d != nil {
		g.denied.Store(d)
		return sqliteDeny
	}
	return sqliteOK
}

// guards maps the address of each driver connection the sandbox used to
// its guard. An entry is checked against the guard's weak pointer to its
// connection, since a connection the pool closed and the collector freed
// may leave its address to a new one; a cleanup drops it.
var guards sync.Map // uintptr → *sqliteGuard

// guardKey is what a guard's cleanup drops.
type guardKey struct {
	addr uintptr
	g    *sqliteGuard
}

// guardOf returns the guard of a driver connection, registering its
// authorizer the first time.
func guardOf(dc any) (*sqliteGuard, error) {
	a, ok := dc.(sqliteAuthorizer)
	if !ok {
		return nil, fmt.Errorf("the SQLite driver's connection (%T) has no RegisterAuthorizer: the sandbox needs github.com/mattn/go-sqlite3; or set Config.SandboxOff", dc)
	}
	v := reflect.ValueOf(dc)
	if v.Kind() != reflect.Pointer {
		return nil, fmt.Errorf("the SQLite driver's connection (%T) is not a pointer", dc)
	}
	base := (*byte)(v.UnsafePointer())
	addr := uintptr(v.UnsafePointer())
	if g, ok := guards.Load(addr); ok && g.(*sqliteGuard).conn.Value() == base {
		return g.(*sqliteGuard), nil
	}
	g := &sqliteGuard{conn: weak.Make(base)}
	a.RegisterAuthorizer(g.callback)
	guards.Store(addr, g)
	runtime.AddCleanup(base, func(k guardKey) { guards.CompareAndDelete(k.addr, k.g) }, guardKey{addr, g})
	return g, nil
}

// setPolicy sets (or, with nil, clears) the policy of conn's guard.
func setPolicy(conn *sql.Conn, p *sqlitePolicy) (*sqliteGuard, error) {
	var g *sqliteGuard
	err := conn.Raw(func(dc any) error {
		var err error
		if g, err = guardOf(dc); err != nil {
			return err
		}
		g.policy.Store(p)
		if p != nil {
			g.denied.Store(nil)
		}
		return nil
	})
	return g, err
}

// sqliteOutside returns what the sandbox checks outside the plugin's
// namespace (prefix), read on dc as the host: the tables and views (type
// → name; temporary ones too) and the host's rows of sqlite_sequence.
func sqliteOutside(dc any, prefix string) (map[string]string, error) {
	q, ok := dc.(driver.QueryerContext)
	if !ok {
		return nil, fmt.Errorf("the SQLite driver's connection (%T) cannot query", dc)
	}
	out := map[string]string{}
	args := []driver.NamedValue{{Ordinal: 1, Value: int64(len(prefix))}, {Ordinal: 2, Value: prefix}}
	err := queryPairs(q, `SELECT 'table ' || quote(name), type FROM sqlite_master
		WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND substr(name, 1, ?) <> ?
		UNION ALL SELECT 'temporary table ' || quote(name), type FROM sqlite_temp_master WHERE type IN ('table', 'view')`, args, out)
	if err != nil {
		return nil, err
	}
	seq := map[string]string{}
	if err := queryPairs(q, `SELECT name, 'x' FROM sqlite_master WHERE name = 'sqlite_sequence'`, nil, seq); err != nil {
		return nil, err
	}
	if len(seq) > 0 {
		err = queryPairs(q, `SELECT 'row ' || quote(name) || ' of sqlite_sequence', seq FROM sqlite_sequence WHERE substr(name, 1, ?) <> ?`, args, out)
	}
	return out, err
}

// queryPairs adds the rows of a two-column query to out.
func queryPairs(q driver.QueryerContext, query string, args []driver.NamedValue, out map[string]string) error {
	rows, err := q.QueryContext(context.Background(), query, args)
	if err != nil {
		return err
	}
	defer rows.Close()
	row := make([]driver.Value, 2)
	for {
		if err := rows.Next(row); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		out[fmt.Sprint(row[0])] = fmt.Sprint(row[1])
	}
}

// outsideChanged returns the *SandboxError for the first change of the
// plugin's schema work outside its namespace, or nil.
func outsideChanged(p *sqlitePolicy, before, after map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(after)) {
		if v, ok := before[k]; !ok || v != after[k] {
			// A table or view that is new, or a sequence that changed.
			if strings.HasSuffix(k, " of sqlite_sequence") {
				return &SandboxError{Plugin: p.plugin, Action: "write", Object: fmt.Sprintf("table \"sqlite_sequence\": the %s, which is the host's", strings.TrimSuffix(k, " of sqlite_sequence"))}
			}
			return &SandboxError{Plugin: p.plugin, Action: "create", Object: fmt.Sprintf("%s, outside its namespace: its tables' names start with %q", k, p.prefix)}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(before)) {
		if _, ok := after[k]; !ok {
			return &SandboxError{Plugin: p.plugin, Action: "change", Object: fmt.Sprintf("%s, which is not one of its tables", k)}
		}
	}
	return nil
}

// explainDenial turns err, the error of a statement the guard's policy
// refused, into a *SandboxError; other errors are returned as they are.
func (g *sqliteGuard) explainDenial(plugin string, err error) error {
	if err == nil || g == nil || !strings.Contains(err.Error(), "not authorized") && !strings.Contains(err.Error(), "is prohibited") && !strings.Contains(err.Error(), "authorization denied") {
		return err
	}
	d := g.denied.Load()
	if d == nil {
		return err
	}
	return &SandboxError{Plugin: plugin, Action: d.action, Object: d.object, Err: err}
}

// checkSQLiteStmtCache fails when the connections keep compiled
// statements between uses (go-sqlite3's _stmt_cache_size): a cached
// statement runs without asking the authorizer again, so a plugin could
// run one the host compiled. It compiles a probe as the host, then runs it
// again under a policy that refuses everything: only a statement served
// from a cache is not refused.
func checkSQLiteStmtCache(ctx context.Context, db *sql.DB) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// Registering an authorizer expires the connection's compiled
	// statements; changing a guard's policy does not. Register first.
	if _, err := setPolicy(conn, nil); err != nil {
		return err
	}
	const probe = `SELECT 1 WHERE 0 /* pluginhost sandbox probe */`
	var n int
	if err := conn.QueryRowContext(ctx, probe).Scan(&n); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sandbox probe: %w", err)
	}
	if _, err := setPolicy(conn, &sqlitePolicy{denyAll: true}); err != nil {
		return err
	}
	err = conn.QueryRowContext(ctx, probe).Scan(&n)
	if _, rerr := setPolicy(conn, nil); rerr != nil {
		return rerr
	}
	if err == nil || errors.Is(err, sql.ErrNoRows) {
		return errors.New("the SQLite connections cache compiled statements (_stmt_cache_size in the DSN), which would run a cached statement without asking the sandbox's authorizer: remove _stmt_cache_size, or set Config.SandboxOff")
	}
	return nil
}
