package pluginhost

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/pluginhost/pluginhost/internal/pluginid"
)

// The database sandbox.
//
// Every statement a plugin runs through what the library hands it (its
// DB, its transactions, the transaction of its schema work and once-hooks)
// runs with the plugin's privileges, enforced by the database engine:
//
//   - on SQLite, an authorizer on the connection the statement runs on (see
//     sandbox_sqlite.go) allows the plugin's own tables, the tables it
//     declared it reads, and little else;
//   - on PostgreSQL, the statement runs as the plugin's role (see
//     sandbox_pg.go), which owns the plugin's tables and was granted
//     SELECT on the tables it declared it reads, and nothing else.
//
// What the engine refuses comes back as a *SandboxError naming the plugin
// and the object. The host's own code (core migrations, settings, the
// ledger, admin) keeps full access: it uses the host's pool directly.

// ErrSandbox is wrapped by every error of a statement the sandbox refused;
// see [SandboxError].
var ErrSandbox = errors.New("refused by the sandbox")

// SandboxError reports a statement of a plugin that the database sandbox
// refused: the plugin, what it tried (such as "read", "write", "create
// tables in", "attach") and the object (such as `table "users"`). Err is
// the database's own error.
type SandboxError struct {
	Plugin string
	Action string
	Object string
	Err    error
}

// Error returns a message such as
//
//	pluginhost: plugin "notes": sandbox: may not write table "users": it is not one of the plugin's tables
func (e *SandboxError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pluginhost: plugin %q: sandbox: may not %s %s", e.Plugin, e.Action, e.Object)
	if e.Err != nil {
		fmt.Fprintf(&b, " (%v)", e.Err)
	}
	return b.String()
}

// Unwrap returns the database's error.
func (e *SandboxError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrSandbox].
func (e *SandboxError) Is(target error) bool { return target == ErrSandbox }

// sandboxed reports whether plugin id's statements run sandboxed: unless
// Config.SandboxOff, or Config.Unsandboxed names it.
func (c *Config) sandboxed(id string) bool {
	return !c.SandboxOff && !slices.Contains(c.Unsandboxed, id)
}

// checkSandbox checks the sandbox's fields: a role prefix that makes
// valid, unquoted PostgreSQL role names within its 63 bytes for every
// plugin id, and PluginDB only where there are roles.
func (c *Config) checkSandbox(errs *configErrors) {
	if p := c.SandboxRolePrefix; p != "" {
		maxLen := 63 - pluginid.MaxLen
		switch {
		case len(p) > maxLen:
			errs.add("SandboxRolePrefix %q: at most %d bytes, so that a role name (the prefix and a plugin id of up to %d) fits PostgreSQL's 63", p, maxLen, pluginid.MaxLen)
		case !validRolePrefix(p):
			errs.add("SandboxRolePrefix %q: use lowercase letters, digits and underscores, starting with a letter", p)
		}
	}
	if c.PluginDB != nil && c.Dialect == SQLite {
		errs.add("PluginDB: it opens a plugin's PostgreSQL pool; on SQLite the sandbox is the connection's authorizer: leave it nil")
	}
}

// validRolePrefix: lowercase letters, digits and "_", starting with a letter.
func validRolePrefix(p string) bool {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '_')) {
			return false
		}
	}
	return true
}

// sandboxName is PluginStatus.Sandbox for plugin id.
func (c *Config) sandboxName(id string) string {
	switch {
	case c.SandboxOff:
		return "off: Config.SandboxOff"
	case slices.Contains(c.Unsandboxed, id):
		return "off: Config.Unsandboxed"
	case c.Dialect == Postgres && c.PluginDB != nil:
		return "postgres role " + c.roleName(id) + " (own login)"
	case c.Dialect == Postgres:
		return "postgres role " + c.roleName(id)
	}
	return "sqlite authorizer"
}

// tableSet is what a plugin's DB.Table accepts: its declared tables, the
// tables its migrations created (both as declared names), and per
// dependency the tables it reads.
type tableSet struct {
	own   map[string]bool            // declared name → true
	reads map[string]map[string]bool // plugin → declared name → true
}

// physicalTables returns the physical names of the tables of grant g.
func physicalTables(g ReadGrant) []string {
	out := make([]string, 0, len(g.Tables))
	for _, t := range g.Tables {
		out = append(out, tablePrefix(g.Plugin)+t)
	}
	return out
}

// setTables records the plugin's tables, for Table: the declared ones and
// those its migrations created, found in the database (physical names
// with the plugin's prefix).
func (d *DB) setTables(declared []string, found []string, reads []ReadGrant) {
	ts := &tableSet{own: map[string]bool{}, reads: map[string]map[string]bool{}}
	for _, t := range declared {
		ts.own[t] = true
	}
	for _, p := range found {
		if name, ok := strings.CutPrefix(p, d.prefix); ok {
			ts.own[name] = true
		}
	}
	for _, g := range reads {
		m := map[string]bool{}
		for _, t := range g.Tables {
			m[t] = true
		}
		ts.reads[g.Plugin] = m
	}
	d.tables.Store(ts)
}

// tableErr explains why name is not one of the plugin's tables.
func (d *DB) tableErr(plugin, name string) error {
	ts := d.tables.Load()
	known := "none"
	var names []string
	if ts != nil {
		set := ts.own
		if plugin != d.plugin {
			set = ts.reads[plugin]
		}
		names = slices.Sorted(maps.Keys(set))
	}
	if len(names) > 0 {
		known = strings.Join(names, ", ")
	}
	if plugin != d.plugin {
		return fmt.Errorf("pluginhost: plugin %q: DB.TableOf(%q, %q): not a table it declared it reads of plugin %q in [[reads]] (it reads: %s)",
			d.plugin, plugin, name, plugin, known)
	}
	return fmt.Errorf("pluginhost: plugin %q: DB.Table(%q): not one of its tables, declared or created by its migrations (its tables: %s)",
		d.plugin, name, known)
}
