package pluginhost

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"

	"github.com/Masterminds/semver/v3"

	"github.com/pluginhost/pluginhost/internal/migrate"
)

// A once-hook is plugin code that runs once per database: in the plugin's
// schema transaction, after its tables and migrations, under the migration
// lock, and only while the ledger has no row of its version for the
// plugin; that row is written in the same transaction, so the hook's work
// and the record that it ran commit or roll back together. SeedOnce is
// one; Install and Upgrade are the others, each with a version of its own
// (see planVersion).
type onceHook struct {
	version string // its ledger version, on the plugin's line
	where   string // names it in errors, panics and logs
	call    func(ctx context.Context, h *Host, tx *Tx) error
}

// The ledger versions of the once-hooks start with onceVersionPrefix, which
// no migration version (NNNN_name) or table version ("table:") does.
const onceVersionPrefix = "hook:"

// onceHooks returns the once-hooks p implements that run whatever its
// version does, in the order they run; the install and upgrade hooks,
// which run before them, come from planVersion.
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

// ErrDowngrade is wrapped by the failure of a plugin whose manifest version
// is lower than the version its schema was brought to on this database,
// when Config.AllowDowngrade does not name it. The error names both
// versions.
var ErrDowngrade = errors.New("pluginhost: downgrade refused")

// The ledger versions of the install and upgrade hooks. An upgrade's ends
// with the version it upgraded to: each upgrade runs once per database.
const (
	installVersion       = onceVersionPrefix + "install"
	upgradeVersionPrefix = onceVersionPrefix + "upgrade:"
)

// versionHooks is what a declaration knows of the plugin's manifest version
// and of its install and upgrade hooks.
type versionHooks struct {
	version string          // the manifest's
	semver  *semver.Version // parsed
	// allowDowngrade is whether Config.AllowDowngrade names the plugin.
	allowDowngrade bool
	installer      Installer // nil when the plugin has none
	upgrader       Upgrader  // nil when the plugin has none
}

// newVersionHooks returns the version hooks of p. allowDowngrade is set by
// the caller, which knows the Config.
func newVersionHooks(p *plugin) versionHooks {
	vh := versionHooks{}
	if p.manifest != nil {
		vh.version, vh.semver = p.manifest.Version, p.manifest.version
	}
	vh.installer, _ = p.plugin.(Installer)
	vh.upgrader, _ = p.plugin.(Upgrader)
	return vh
}

// versionStep is what a plugin's schema work does about its manifest
// version: record it, after an install (from empty), an upgrade or, when
// Config.AllowDowngrade allows it, a downgrade.
type versionStep struct {
	from, to  string // from: the recorded version, empty when none is
	downgrade bool
}

// entry is the ledger row that records the step's version for plugin id.
func (st *versionStep) entry(id string) migrate.Entry {
	return migrate.Entry{Line: id, Version: versionEntry, Checksum: st.to}
}

// planVersion compares the plugin's manifest version with the one the
// ledger records and returns the step to take, nil when they are equal,
// with the install or upgrade hook it calls for (whether it already ran is
// for the caller to check, as for any once-hook):
//
//   - no version recorded: the version is recorded; the install hook runs
//     when the ledger has no row for the plugin at all, its schema being
//     created now (a plugin installed before versions were recorded has
//     rows, and only gets its version recorded);
//   - a higher manifest version: the upgrade hook runs, from the recorded
//     version, and the new version is recorded;
//   - a lower one: an error wrapping ErrDowngrade, or, when allowed, the
//     lower version is recorded and no hook runs.
func planVersion(id string, vh *versionHooks, l migrate.Ledger) (*versionStep, []onceHook, error) {
	if vh.semver == nil {
		return nil, nil, nil // no parsed manifest: the plugin failed before its schema
	}
	from, recorded := recordedVersion(l, id)
	if !recorded {
		var hooks []onceHook
		if len(l[id]) == 0 && vh.installer != nil {
			hooks = append(hooks, onceHook{version: installVersion, where: "install", call: vh.installer.Install})
		}
		return &versionStep{to: vh.version}, hooks, nil
	}
	fromSemver, err := semver.NewVersion(from)
	if err != nil {
		return nil, nil, fmt.Errorf("the ledger's %q row of plugin %q holds %q, which is not a semantic version: %w", versionEntry, id, from, err)
	}
	switch c := vh.semver.Compare(fromSemver); {
	case c == 0:
		return nil, nil, nil
	case c < 0 && !vh.allowDowngrade:
		return nil, nil, fmt.Errorf("%w: manifest version %s is lower than %s, the version plugin %q's schema was brought to on this database: run version %s or later, or list %q in Config.AllowDowngrade to boot %s on it",
			ErrDowngrade, vh.version, from, id, from, id, vh.version)
	case c < 0:
		return &versionStep{from: from, to: vh.version, downgrade: true}, nil, nil
	}
	var hooks []onceHook
	if u := vh.upgrader; u != nil {
		hooks = append(hooks, onceHook{
			version: upgradeVersionPrefix + vh.version,
			where:   "upgrade",
			call: func(ctx context.Context, h *Host, tx *Tx) error {
				return u.Upgrade(ctx, h, tx, from)
			},
		})
	}
	return &versionStep{from: from, to: vh.version}, hooks, nil
}

// logVersionStep logs what a carried-out version step did.
func logVersionStep(log *slog.Logger, st *versionStep) {
	switch {
	case st == nil:
	case st.downgrade:
		log.Warn("downgraded: recorded the lower manifest version, as Config.AllowDowngrade allows", "from", st.from, "to", st.to)
	case st.from == "":
		log.Debug("recorded the manifest version", "version", st.to)
	default:
		log.Info("upgraded: recorded the new manifest version", "from", st.from, "to", st.to)
	}
}
