package pluginhost

import (
	"context"
	"fmt"

	"github.com/pluginhost/pluginhost/internal/sqlgen"
)

// SandboxRoles returns the SQL an administrator runs, as a superuser or a
// role with CREATEROLE, to provision the PostgreSQL sandbox's roles for
// the host's role (the user Config.DB logs in as) when that role may not
// create them itself: for each registered plugin the sandbox covers, in
// order of id,
//
//	CREATE ROLE "pluginhost_notes" NOLOGIN;
//	GRANT "pluginhost_notes" TO "app";
//	GRANT USAGE ON SCHEMA "public" TO "pluginhost_notes";
//	-- robust mode (Config.PluginDB): ALTER ROLE "pluginhost_notes" LOGIN PASSWORD '…'; …
//
// leaving out each statement whose effect is already there, so that the
// statements, run in order as one script, succeed; once the roles are
// provisioned only the comment lines remain. The comment says how to
// give the role a login of its own, for Config.PluginDB (the robust
// mode). The roles are named by Config.SandboxRolePrefix.
//
// It reads the database's catalog and may be called before Start (say,
// after a Start that failed for want of the roles), concurrently with
// anything. On SQLite, or with Config.SandboxOff, it returns nil, nil.
func (m *Manager) SandboxRoles(ctx context.Context) ([]string, error) {
	if m.cfg.Dialect != Postgres || m.cfg.SandboxOff {
		return nil, nil
	}
	// A sandbox state of its own: the Manager's belongs to Start.
	b := &pgSandbox{dialect: Postgres, prefix: m.sandbox.pg.prefix}
	roles, err := b.loadRoles(ctx, m.cfg.DB)
	if err != nil {
		return nil, fmt.Errorf("pluginhost: %w", err)
	}
	var out []string
	for _, reg := range m.cfg.Registry.snapshot() {
		if reg.manifest == nil || !m.cfg.sandboxed(reg.key) {
			continue
		}
		role := m.cfg.roleName(reg.key)
		r, exists := roles[role]
		if !exists {
			out = append(out, `CREATE ROLE `+sqlgen.Quote(role)+` NOLOGIN;`)
		}
		if !r.member && !b.super {
			out = append(out, b.grantRole(role)+`;`)
		}
		if !r.usage {
			out = append(out, b.grantUsage(role)+`;`)
		}
		out = append(out, fmt.Sprintf("-- robust mode (Config.PluginDB): ALTER ROLE %s LOGIN PASSWORD '…'; then Config.PluginDB(%q, %q) returns a pool that logs in as it, with search_path %s",
			sqlgen.Quote(role), reg.key, role, sqlgen.Quote(b.schema)))
	}
	return out, nil
}
