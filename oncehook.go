package pluginhost

import (
	"context"
	"database/sql"
	"fmt"
)

// A once-hook is plugin code that runs once per database: in the plugin's
// schema transaction, after its tables and migrations, under the migration
// lock, and only while the ledger has no row of its version for the
// plugin; that row is written in the same transaction, so the hook's work
// and the record that it ran commit or roll back together. SeedOnce is
// one; hooks that run once per install or per upgrade fit the same way,
// each with a version of its own.
type onceHook struct {
	version string // its ledger version, on the plugin's line
	where   string // names it in errors, panics and logs
	call    func(ctx context.Context, h *Host, tx *Tx) error
}

// The ledger versions of the once-hooks start with onceVersionPrefix, which
// no migration version (NNNN_name) or table version ("table:") does.
const onceVersionPrefix = "hook:"

// onceHooks returns the once-hooks p implements, in the order they run.
func onceHooks(p Plugin) []onceHook {
	var hooks []onceHook
	if s, ok := p.(SeedOncer); ok {
		hooks = append(hooks, onceHook{version: onceVersionPrefix + "seed-once", where: "seed once", call: s.SeedOnce})
	}
	return hooks
}

// runOnceHooks calls the pending once-hooks of a plan in tx, the plugin's
// schema transaction, each through callHook: bounded by Config.HookTimeout,
// panics contained. The first failure stops it, and the caller rolls tx
// back; a hook left running past its timeout then finds tx over.
func (s *schemaSession) runOnceHooks(ctx context.Context, p *plugin, tx *sql.Tx, hooks []onceHook, g *schemaGuard) error {
	if len(hooks) == 0 {
		return nil
	}
	h := s.m.plugins.hostOf(p)
	for _, hook := range hooks {
		htx := &Tx{tx: tx, db: h.db, hook: fmt.Sprintf("plugin %q: %s", p.id, hook.where)}
		if g != nil {
			htx.guard = g.guard
		}
		err := s.m.callHook(ctx, p, hook.where, func(ctx context.Context) error {
			if err := hook.call(ctx, h, htx); err != nil {
				return fmt.Errorf("%s: %w", hook.where, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}
