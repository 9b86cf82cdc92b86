package pluginhost

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/pluginhost/pluginhost/internal/dialect"
	"github.com/pluginhost/pluginhost/internal/migrate"
)

// Plan is what Start would do on the database as it is now, as
// [Manager.Plan] reports it: for the core and for each registered plugin.
type Plan struct {
	// Dialect is the database's dialect.
	Dialect Dialect `json:"dialect"`
	// Work is set when Start would change the database: a migration to
	// apply, a table to create, a schema change to make, a once-hook to run
	// or a setting default to store. A database a Start (or Migrate and a
	// Start) has just brought up to date has none.
	Work bool `json:"work"`
	// Error is why Start would fail as a whole: a core migration that
	// changed, a required plugin that would not start, a database
	// misconfigured for a plugin (foreign keys not enforced).
	Error string `json:"error,omitempty"`
	// Core is the library's and the host's part.
	Core CorePlan `json:"core"`
	// Plugins lists every registered plugin, sorted by id.
	Plugins []PluginPlan `json:"plugins"`
}

// CorePlan is the core's part of a [Plan].
type CorePlan struct {
	// LibraryMigrations are the versions of the library's own migrations
	// not applied yet, in order; on a database pluginhost never touched,
	// all of them (the ledger is created with the first).
	LibraryMigrations []string `json:"library_migrations,omitempty"`
	// Migrations are the versions of the host's migrations
	// (Config.CoreMigrations) not applied yet, in order.
	Migrations []string `json:"migrations,omitempty"`
	// Settings are the core settings (Config.CoreSettings) to add: see
	// PlanSetting.
	Settings []PlanSetting `json:"settings_to_add,omitempty"`
	// Error is why the core migrations cannot be planned (an applied
	// migration that changed, a folder that does not read): Start would
	// fail with it.
	Error string `json:"error,omitempty"`
}

// PluginPlan is one plugin's part of a [Plan].
type PluginPlan struct {
	ID string `json:"id"`
	// Version is the version its manifest declares; RecordedVersion the one
	// the database records its schema was last brought to, "" when none is.
	Version         string `json:"version,omitempty"`
	RecordedVersion string `json:"recorded_version,omitempty"`
	// Start says whether Start would bring the plugin up past its schema
	// and settings. When it would not, State says how it would end
	// (disabled or failed) and Reason why: disabled by Config or an
	// operator, incompatible, a dependency missing or not starting, a
	// manifest that does not parse, a schema or settings that would fail.
	// Seed, Init and routes, which Plan does not run, may still fail it.
	Start  bool   `json:"start"`
	State  State  `json:"state,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Migrations are the versions of its migrations not applied yet, in
	// order.
	Migrations []string `json:"migrations,omitempty"`
	// Tables are the declared tables Start would create, in creation order.
	Tables []string `json:"tables_to_create,omitempty"`
	// Recreated are, under Config.DevMode, the tables Start would drop and
	// create again, each with what changed: their data would be lost.
	Recreated []string `json:"tables_to_recreate,omitempty"`
	// Changes are the differences between its declared tables and the
	// database's: the ones Start would make and the ones it refuses.
	Changes []SchemaChange `json:"schema_changes,omitempty"`
	// OnceHooks name the once-per-database hooks that would run in its
	// schema transaction, in order, such as "seed once".
	OnceHooks []string `json:"once_hooks,omitempty"`
	// Settings are the settings it declares that Start would add: see
	// PlanSetting.
	Settings []PlanSetting `json:"settings_to_add,omitempty"`
	// Warnings are what Start would warn about: unknown manifest fields,
	// undeclared config values, ignored settings, recorded tables no
	// longer declared.
	Warnings []string `json:"warnings,omitempty"`
	// Error is why its schema cannot be planned, or why its schema phase
	// would fail: a declared table that changed, an applied migration that
	// changed, a declaration that does not validate, a hook that panicked.
	Error string `json:"error,omitempty"`
}

// PlanSetting is a setting Start would add: declared (and kept by the
// merge: not a key defined earlier, not outside the plugin's namespace),
// without a value in the database, and not defined yet in the registry
// of the Manager Plan was called on (before its Start, none is).
type PlanSetting struct {
	Key  string    `json:"key"`
	Type ValueType `json:"type"`
	// WritesDefault is set when Start would store the setting's default:
	// it has one, and it can be sealed if it is encrypted. Otherwise the
	// setting would have no value until one is set.
	WritesDefault bool `json:"writes_default,omitempty"`
	// Required is the setting's Required: without a default, it would be
	// listed in the owner's missing settings.
	Required bool `json:"required,omitempty"`
}

// Plan reports what Start would do, for the core and for each registered
// plugin, on the database as it is now, and changes nothing: it takes no
// lock, creates nothing (not the ledger of a fresh database, not a
// sandbox role), writes no row, and of the plugins' code calls only their
// declarations (Manifest, Tables, Migrations), through the bounds Start
// puts on plugin code; no once-hook, Seed or Init runs.
//
// It works before Start (which then runs as it would have) and on a
// running Manager, whose state it leaves alone: it discovers and resolves
// the plugins on a Manager of its own built from the same Config, reading
// the persisted enable flags, the ledger and the stored settings' keys as
// Start would. Without the migration lock, a Plan made while another
// replica migrates may see part of that work done: it describes the
// database as its reads found it. It does not check the tables a
// plugin's [[reads]] names, which Start checks once its dependencies'
// schema work is done.
//
// The error is for a database Plan cannot read; what would fail Start is
// reported in the Plan.
func (m *Manager) Plan(ctx context.Context) (*Plan, error) {
	cfg := m.cfg
	cfg.Logger = slog.New(slog.DiscardHandler)
	scratch, err := New(cfg)
	if err != nil {
		return nil, fmt.Errorf("pluginhost: plan: %w", err)
	}
	defer func() { _ = scratch.Shutdown(context.WithoutCancel(ctx)) }()
	return scratch.plan(ctx, m.settings)
}

// plan makes the Plan on m, a Manager made for it that never starts; live
// is the settings store of the Manager Plan was called on.
func (m *Manager) plan(ctx context.Context, live *Settings) (*Plan, error) {
	m.discover()
	// The session only reads: it opens a connection and reads the ledger,
	// and takes the migration lock only when asked to, which Plan never
	// does.
	sess, err := openSchemaSession(ctx, m)
	if err != nil {
		return nil, fmt.Errorf("pluginhost: plan: %w", err)
	}
	defer sess.close(ctx)
	if err := m.resolve(ctx, sess); err != nil {
		return nil, fmt.Errorf("pluginhost: plan: %w", err)
	}
	plan := &Plan{Dialect: m.cfg.Dialect}
	plan.Core = planCore(sess.ledger, m.cfg)
	reports := map[string]*PluginPlan{}
	for _, p := range m.plugins.list() {
		pp := &PluginPlan{ID: p.id}
		if p.manifest != nil {
			pp.Version = p.manifest.Version
		}
		pp.RecordedVersion, _ = recordedVersion(sess.ledger, p.id)
		reports[p.id] = pp
	}

	// The schema phase, planned: a plugin whose schema would fail is failed
	// here, with its dependents, as Start fails them.
	plugins := m.plugins.ordered()
	m.runPhase(plugins, PhaseSchema, func(p *plugin) error { return m.planPlugin(ctx, sess, p, reports[p.id]) })

	// The settings phase, planned.
	stored, err := storedSettingKeys(ctx, sess)
	if err != nil {
		return nil, fmt.Errorf("pluginhost: plan: %w", err)
	}
	m.planSettings(plugins, stored, live, plan, reports)

	for _, st := range m.plugins.statuses(func(string) []string { return nil }, func(string) int64 { return 0 }) {
		pp := reports[st.ID]
		pp.Start = st.State == StateStarting
		if !pp.Start {
			pp.State, pp.Reason = st.State, st.Reason
		}
		pp.Warnings = append(st.Warnings, pp.Warnings...)
		plan.Plugins = append(plan.Plugins, *pp)
	}
	plan.Error = startError(plan.Core.Error, sess.misconfigured, m.requiredErr())
	plan.Work = plan.hasWork()
	return plan, nil
}

// planCore lists the library's and the host's migrations not applied yet.
func planCore(l migrate.Ledger, cfg Config) CorePlan {
	var cp CorePlan
	dir := string(cfg.Dialect)
	library, err := migrate.Read(migrate.Library, dir)
	if err == nil {
		var core []migrate.Migration
		if core, err = migrate.Read(cfg.CoreMigrations, dir); err != nil {
			err = fmt.Errorf("Config.CoreMigrations: %w", err)
		} else if cp.LibraryMigrations, err = pendingVersions(l, migrate.LibraryLine, library); err == nil {
			cp.Migrations, err = pendingVersions(l, migrate.CoreLine, core)
		}
	}
	if err != nil {
		cp.Error = fmt.Sprintf("core migrations: %v", err)
	}
	return cp
}

// pendingVersions returns the versions of the migrations of line not
// applied yet.
func pendingVersions(l migrate.Ledger, line string, all []migrate.Migration) ([]string, error) {
	pending, err := migrate.Pending(l, line, all)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, mig := range pending {
		out = append(out, mig.Version)
	}
	return out, nil
}

// planPlugin plans plugin p's schema, as migratePlugin would do it, into
// pp: its declarations (plugin code, through callHook), the foreign-key
// check and the plan from the session's ledger.
func (m *Manager) planPlugin(ctx context.Context, sess *schemaSession, p *plugin, pp *PluginPlan) error {
	decl, err := sess.declare(ctx, p)
	if err == nil {
		err = sess.checkForeignKeys(ctx, p, decl)
	}
	if err != nil {
		pp.Error = err.Error()
		return err
	}
	sp, err := planPluginSchema(ctx, sess.conn, sess.dialect, p.id, decl, sess.ledger, sess.devMode)
	pp.addSchema(sp, err)
	return err
}

// addSchema reports the schema plan of the plugin, or the error planning
// it: the one place where a schema plan becomes a report.
func (pp *PluginPlan) addSchema(sp *schemaPlan, err error) {
	if err != nil {
		pp.Error = err.Error()
	}
	if sp == nil {
		return
	}
	for _, mig := range sp.migrations {
		pp.Migrations = append(pp.Migrations, mig.Version)
	}
	for _, t := range sp.create {
		if what := sp.changed[t.Name]; what != "" {
			pp.Recreated = append(pp.Recreated, fmt.Sprintf("%s: %s", t.Name, what))
			continue
		}
		pp.Tables = append(pp.Tables, t.Name)
	}
	pp.Changes = append(pp.Changes, sp.changes...)
	for _, hook := range sp.once {
		pp.OnceHooks = append(pp.OnceHooks, hook.where)
	}
	pp.Warnings = append(pp.Warnings, sp.warnings...)
}

// storedSettingKeys returns the keys the database holds a value of: none
// before the library's tables exist.
func storedSettingKeys(ctx context.Context, sess *schemaSession) (map[string]bool, error) {
	keys := map[string]bool{}
	if len(sess.ledger[migrate.LibraryLine]) == 0 {
		return keys, nil
	}
	exists, err := dialect.TableExists(ctx, sess.dialect, sess.conn, settingsTable)
	if err != nil || !exists {
		return keys, err
	}
	stored, err := storedKeys(ctx, sess.conn)
	for _, k := range stored {
		keys[k] = true
	}
	return keys, err
}

// planSettings merges the settings of the core and of the plugins still
// starting among plugins as Start's settings phase would, fails the
// plugins whose settings would be refused, and reports the settings to
// add, against stored (the keys the database holds) and live (the
// registry of the Manager Plan was called on).
func (m *Manager) planSettings(plugins []*plugin, stored map[string]bool, live *Settings, plan *Plan, reports map[string]*PluginPlan) {
	sources := []settingsSource{{owner: migrate.CoreLine, groups: m.cfg.CoreSettingGroups, settings: m.cfg.CoreSettings}}
	sources = append(sources, m.unmergedSources(plugins)...)
	merged := m.settings.merge(sources)
	for _, src := range sources[1:] {
		p, o := m.plugins.get(src.owner), merged.outcomes[src.owner]
		reports[src.owner].Warnings = append(reports[src.owner].Warnings, o.warnings...)
		if o.err != nil {
			m.plugins.fail(p, PhaseSettings, o.err)
		}
	}
	defined := live.snap.Load().byKey
	for _, def := range merged.defs {
		owner := merged.byKey[def.Key].owner
		if stored[def.Key] || defined[def.Key] != nil || merged.outcomes[owner].err != nil {
			continue
		}
		// As useDefault decides: an encrypted default needs the key.
		ps := PlanSetting{Key: def.Key, Type: def.Type, Required: def.Required,
			WritesDefault: def.Default != nil && (!def.Encrypted || m.settings.sealer != nil)}
		if owner == migrate.CoreLine {
			plan.Core.Settings = append(plan.Core.Settings, ps)
		} else {
			reports[owner].Settings = append(reports[owner].Settings, ps)
		}
	}
}

// startError is the text of why Start would fail as a whole, "" when it
// would not.
func startError(core string, misconfigured, required error) string {
	var out []string
	if core != "" {
		out = append(out, core)
	}
	if misconfigured != nil {
		out = append(out, misconfigured.Error())
	}
	if required != nil {
		out = append(out, required.Error())
	}
	return strings.Join(out, "\n")
}

// hasWork reports whether Start would change the database.
func (p *Plan) hasWork() bool {
	if len(p.Core.LibraryMigrations)+len(p.Core.Migrations) > 0 || slices.ContainsFunc(p.Core.Settings, writesDefault) {
		return true
	}
	for _, pp := range p.Plugins {
		if !pp.Start {
			continue
		}
		if len(pp.Migrations)+len(pp.Tables)+len(pp.Recreated)+len(pp.OnceHooks) > 0 || slices.ContainsFunc(pp.Settings, writesDefault) {
			return true
		}
		if slices.ContainsFunc(pp.Changes, func(c SchemaChange) bool { return !c.Refused }) {
			return true
		}
	}
	return false
}

func writesDefault(s PlanSetting) bool { return s.WritesDefault }
