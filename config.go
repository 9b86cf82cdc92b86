package pluginhost

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/pluginhost/pluginhost/internal/secret"
)

// Config configures a [Manager]. Only DB is required; every other field's
// zero value is a working default, given in its comment.
type Config struct {
	// DB is the host's database: SQLite through github.com/mattn/go-sqlite3
	// or PostgreSQL through github.com/jackc/pgx/v5/stdlib. The Manager
	// creates its own tables, the core migrations' and the plugins' in it.
	// Required.
	DB *sql.DB

	// Dialect is DB's SQL dialect. Empty: detected from DB's driver.
	Dialect Dialect

	// Registry holds the plugins to run. Nil: DefaultRegistry, where
	// Register adds plugins from their init functions.
	Registry *Registry

	// Logger receives lifecycle logs; each plugin gets it with a "plugin"
	// attribute. Nil: slog.Default().
	Logger *slog.Logger

	// CoreMigrations holds the host's own migrations: folders "sqlite" and
	// "postgres" at its root of files named NNNN_name.sql, applied in order,
	// each in one transaction with its ledger row, before any plugin's
	// tables. They are checked as a plugin's are (see [Migrator]): a
	// statement that controls the transaction, a goose annotation that
	// cannot be honoured, or SQL files without a folder for the current
	// dialect fail Start before any migration runs. Nil: none.
	CoreMigrations fs.FS

	// CoreSettingGroups and CoreSettings are the host's settings. They are
	// merged before any plugin's, so their keys and group ids always win.
	CoreSettingGroups []SettingGroup
	CoreSettings      []Setting

	// SecretKey is the 32-byte AES-256 key that seals encrypted settings.
	// Nil: encrypted settings cannot be written.
	SecretKey []byte

	// Disabled lists ids of plugins not to start. An operator's persisted
	// choice outranks it.
	Disabled []string

	// Required lists ids of plugins that must start: if one fails, Start
	// returns an error naming it and why. RequireAll makes every plugin
	// that is not disabled required. Default: a failing plugin is skipped
	// and the others run.
	Required   []string
	RequireAll bool

	// PluginConfig holds config values per plugin id and key, for the keys
	// plugins declare in [config.<key>]. Environment variables override
	// them.
	PluginConfig map[string]map[string]any

	// LookupEnv reads an environment variable. Nil: os.LookupEnv.
	LookupEnv func(key string) (string, bool)

	// Middleware wraps every plugin route, outermost first, inside the
	// Manager's panic recovery; the plugin id is already in the request
	// context (see PluginID). Nil: none.
	Middleware []func(http.Handler) http.Handler

	// HookObserver, when set, is called around every call the Manager
	// makes into a plugin's lifecycle hooks (the calls
	// PluginMetrics.Hooks counts): Seed, Init, RegisterRoutes, Shutdown,
	// Install, Upgrade, SeedOnce and the declarations of tables and
	// migrations, by the names HookMetrics.Hook lists ("seed", "init",
	// "routes", …). It gets the context the hook will be called with and
	// returns the one to call it with (a tracer's span context, say), and a
	// function the Manager calls once the call is over with its error (nil
	// on success; otherwise the hook's error, a *PanicError, or the error
	// of a call abandoned past Config.HookTimeout); it may be nil. Both run
	// on the goroutine that waits for the hook, before and after it, and
	// may run while the migration lock is held (the once-hooks and the
	// declarations run in the schema transaction): they should be quick
	// and must not panic. The package
	// github.com/pluginhost/pluginhost/otel provides one that starts an
	// OpenTelemetry span per call. Nil: none, at no cost.
	HookObserver func(ctx context.Context, plugin, hook string) (context.Context, func(error))

	// HookTimeout bounds each call the Manager makes into plugin code and
	// waits for: hooks (Seed, Init, RegisterRoutes, Shutdown, …),
	// synchronous event handlers and extension calls (Each, Call). A call
	// that has not returned by then is abandoned: a hook fails its plugin,
	// not the boot; a handler or provider is counted against its plugin's
	// circuit breaker and the caller goes on. Its context carries the
	// deadline and is canceled when the call is abandoned, so SQL the call
	// runs through that context fails; what it does otherwise (its own
	// goroutines, SQL on another context) cannot be stopped in-process, but
	// what it hands the Manager afterwards (routes, subscriptions,
	// providers) is discarded. Zero: 30 seconds.
	HookTimeout time.Duration

	// PanicLimit and PanicWindow make a circuit breaker: a plugin whose
	// code panics PanicLimit times within PanicWindow (in handlers, event
	// handlers, health checks, extension calls or hooks) is failed and its
	// routes answer 503 until it is enabled again. Zero: 5 panics within
	// one minute. A negative PanicLimit turns the breaker off.
	PanicLimit  int
	PanicWindow time.Duration

	// LockTimeout bounds the wait for the migration lock while another
	// replica holds it (PostgreSQL), in Start and Enable, whatever their
	// context's deadline: a replica frozen while it migrates does not hold
	// the others forever. Start's context may end the wait sooner. Zero:
	// 5 minutes.
	LockTimeout time.Duration

	// HealthTimeout bounds each plugin's health check, and the ping of the
	// database, in Manager.Health. Zero: 5 seconds.
	HealthTimeout time.Duration

	// AllowForeignKeysOff lets plugins that declare foreign keys start on a
	// SQLite connection that does not enforce them (PRAGMA foreign_keys is
	// 0, the SQLite default), each with a warning on its status; their
	// references are then not checked and ON DELETE actions do not run.
	// Default (false): such a plugin fails Start, or Enable, with an error
	// that names the DSN option _foreign_keys=1 of mattn/go-sqlite3, which
	// turns enforcement on for every connection of the pool. PostgreSQL
	// always enforces foreign keys.
	AllowForeignKeysOff bool

	// Permissions is the host's permission catalog: the permissions a
	// plugin may declare in its manifest, each with what it allows. A
	// plugin that declares one the catalog does not list fails in the
	// resolve phase with an error wrapping ErrUnknownPermission that names
	// the plugin, the permission and its line in plugin.toml. Nil or empty:
	// no catalog, and every declared permission is accepted, as before
	// permissions were checked.
	Permissions []Permission

	// WarnUnknownPermissions turns the failure for a permission the
	// catalog does not list into a warning on the plugin's status; the
	// plugin starts. Default (false): it fails.
	WarnUnknownPermissions bool

	// Authorize decides whether request r holds permission of plugin, for
	// the routes a plugin protects with [Host.Require]: nil allows the
	// request, an error refuses it with 403 (the error is logged at Debug,
	// not sent). It is called concurrently, inside the plugin's panic
	// recovery. Nil: every such request is refused (deny by default), with
	// one warning logged per plugin run.
	Authorize func(r *http.Request, plugin, permission string) error

	// DevMode drops and recreates a plugin's declared tables whose
	// definition changed since they were created, losing their data, and
	// logs that at Warn. Default (false): a changed table is refused and the
	// plugin fails.
	DevMode bool

	// AllowDowngrade lists ids of plugins that may boot with a manifest
	// version lower than the one their schema was brought to on this
	// database (see [Upgrader]): the lower version is recorded, logged at
	// Warn, and no hook runs. Default: such a plugin fails with an error
	// wrapping ErrDowngrade that names both versions.
	AllowDowngrade []string

	// MaxInFlight bounds the requests each plugin serves at once: a request
	// beyond it is answered 503 with a JSON body and a Retry-After header,
	// without reaching the plugin, and counted in [PluginStatus].Rejected.
	// The core's routes and the other plugins' are not affected. Zero: 256.
	// Negative: no limit.
	MaxInFlight int

	// MaxConns bounds the database connections each plugin's [DB] holds at
	// once: a statement, a query until its rows are closed (or its Row is
	// scanned), a transaction until Commit or Rollback (or its context
	// ends). A statement beyond it waits for a connection of the plugin's
	// to be released, or for its context to end. What the plugin runs on
	// [DB.SQL] is outside the limit. A limited plugin's queries each hold a
	// connection of their own until their rows are closed, so a plugin that
	// runs a query while iterating another's rows needs two. Zero or
	// negative: no limit of the plugin's own (the pool's applies); set it,
	// say to half of DB's MaxOpenConns, to keep one plugin from holding
	// every connection.
	MaxConns int

	// PluginLimits overrides MaxInFlight and MaxConns per plugin id; a zero
	// field keeps Config's value. Nil: none.
	PluginLimits map[string]Limits

	// SandboxOff runs every plugin's statements with the host's full
	// access, and Unsandboxed those of the plugins it lists. Otherwise the
	// database sandbox is on for every plugin: the engine lets a plugin
	// reach its own tables and those it declared it reads, nothing else
	// (see the README's "What a plugin can and cannot reach"). Each
	// plugin left outside it is logged at Warn by Start and reported in
	// PluginStatus.Sandbox.
	SandboxOff  bool
	Unsandboxed []string

	// SandboxRolePrefix begins the PostgreSQL role of each sandboxed
	// plugin: plugin "my-plugin"'s is SandboxRolePrefix + "my_plugin".
	// Roles belong to the whole cluster: give each application sharing
	// one a prefix of its own. Empty: "pluginhost_".
	SandboxRolePrefix string

	// PluginDB, on PostgreSQL, opens the pool of a sandboxed plugin's
	// statements, logged in as role, the plugin's role (provisioned by the
	// operator with LOGIN; Manager.SandboxRoles lists them): then the
	// plugin's own SQL cannot leave the role, as it can by default, where
	// its connections are the host's with SET ROLE. The pool must be on the
	// host's database, with the host's schema first in its search_path;
	// Start checks its login, database and schema. The Manager does not
	// close the pools it returns. Nil: the default.
	PluginDB func(pluginID, role string) (*sql.DB, error)
}

// Limits are one plugin's bulkheads; see Config.MaxInFlight and
// Config.MaxConns. A zero field means Config's value, a negative one no
// limit.
type Limits struct {
	MaxInFlight int
	MaxConns    int
}

// defaultMaxInFlight is the default of Config.MaxInFlight.
const defaultMaxInFlight = 256

// limits returns the bulkheads of plugin id, with 0 for no limit.
func (c *Config) limits(id string) (inflight, conns int) {
	inflight, conns = c.MaxInFlight, c.MaxConns
	if o, ok := c.PluginLimits[id]; ok {
		if o.MaxInFlight != 0 {
			inflight = o.MaxInFlight
		}
		if o.MaxConns != 0 {
			conns = o.MaxConns
		}
	}
	return max(inflight, 0), max(conns, 0)
}

// validate fills in the defaults of c and checks it, reporting every
// problem, each naming its field. It returns the sealer of Config.SecretKey,
// nil without a key.
func (c *Config) validate() (*secret.Sealer, error) {
	var errs configErrors
	if err := c.setDefaults(); err != nil {
		errs.add("Dialect: %w", err)
	}
	c.checkDatabase(&errs)
	c.checkDurations(&errs)
	sealer := c.checkSecretKey(&errs)
	c.checkMiddleware(&errs)
	c.checkRequired(&errs)
	c.checkIDs(&errs)
	c.checkPermissions(&errs)
	c.checkSandbox(&errs)
	groups := c.checkCoreSettingGroups(&errs)
	c.checkCoreSettings(&errs, groups, sealer)
	return sealer, errors.Join(errs...)
}

// configErrors collects the problems validate finds.
type configErrors []error

// add records a problem; format starts with the field's name.
func (e *configErrors) add(format string, args ...any) {
	*e = append(*e, fmt.Errorf("pluginhost: Config."+format, args...))
}

// durationField is a duration of Config with its default.
type durationField struct {
	name string
	v    *time.Duration
	def  time.Duration
}

// durations lists the durations of c whose zero value means a default.
func (c *Config) durations() []durationField {
	return []durationField{
		{"HookTimeout", &c.HookTimeout, 30 * time.Second},
		{"PanicWindow", &c.PanicWindow, time.Minute},
		{"HealthTimeout", &c.HealthTimeout, 5 * time.Second},
		{"LockTimeout", &c.LockTimeout, 5 * time.Minute},
	}
}

// setDefaults fills in the fields left at their zero value with the
// defaults their comments give. An empty Dialect is detected from DB's
// driver; the error says why it could not be.
func (c *Config) setDefaults() error {
	var err error
	if c.DB != nil && c.Dialect == "" {
		c.Dialect, err = detectDialect(c.DB)
	}
	if c.Registry == nil {
		c.Registry = DefaultRegistry
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.LookupEnv == nil {
		c.LookupEnv = os.LookupEnv
	}
	for _, d := range c.durations() {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.PanicLimit == 0 {
		c.PanicLimit = 5
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = defaultMaxInFlight
	}
	return err
}

// checkDatabase requires DB and a supported Dialect.
func (c *Config) checkDatabase(errs *configErrors) {
	if c.DB == nil {
		errs.add("DB is required")
	}
	if c.Dialect != "" && c.Dialect != SQLite && c.Dialect != Postgres {
		errs.add("Dialect %q is not supported; use %q or %q", c.Dialect, SQLite, Postgres)
	}
}

// checkDurations rejects negative durations.
func (c *Config) checkDurations(errs *configErrors) {
	for _, d := range c.durations() {
		if *d.v < 0 {
			errs.add("%s is negative", d.name)
		}
	}
}

// checkSecretKey returns the sealer of SecretKey, nil when there is no key
// or it is not a valid key.
func (c *Config) checkSecretKey(errs *configErrors) *secret.Sealer {
	if c.SecretKey == nil {
		return nil
	}
	s, err := secret.New(c.SecretKey)
	if err != nil {
		errs.add("SecretKey: %w", err)
	}
	return s
}

// checkMiddleware rejects nil middleware.
func (c *Config) checkMiddleware(errs *configErrors) {
	for i, mw := range c.Middleware {
		if mw == nil {
			errs.add("Middleware[%d] is nil", i)
		}
	}
}

// checkRequired rejects plugins both required and disabled.
func (c *Config) checkRequired(errs *configErrors) {
	disabled := map[string]bool{}
	for _, id := range c.Disabled {
		disabled[id] = true
	}
	for _, id := range c.Required {
		if disabled[id] {
			errs.add("Required: plugin %q is also in Config.Disabled", id)
		}
	}
}

// checkIDs requires plugin ids in the fields that list plugins by id for
// a behaviour of their own (AllowDowngrade, Unsandboxed): a typo there
// would silently leave the plugin without it.
func (c *Config) checkIDs(errs *configErrors) {
	for _, f := range []struct {
		name string
		ids  []string
	}{{"AllowDowngrade", c.AllowDowngrade}, {"Unsandboxed", c.Unsandboxed}} {
		for i, id := range f.ids {
			if err := validateID(id); err != nil {
				errs.add("%s[%d]: %w", f.name, i, err)
			}
		}
	}
}

// checkCoreSettingGroups checks the host's setting groups and returns
// their ids.
func (c *Config) checkCoreSettingGroups(errs *configErrors) map[string]bool {
	groups := map[string]bool{}
	for i, g := range c.CoreSettingGroups {
		if err := validateGroup(g); err != nil {
			errs.add("CoreSettingGroups[%d]: %w", i, err)
		}
		if groups[g.ID] {
			errs.add("CoreSettingGroups[%d]: group id %q is defined twice", i, g.ID)
		}
		groups[g.ID] = true
	}
	return groups
}

// checkCoreSettings checks the host's settings, each on its own and against
// the others: their groups must be among groups, and an encrypted default
// needs sealer.
func (c *Config) checkCoreSettings(errs *configErrors, groups map[string]bool, sealer *secret.Sealer) {
	keys := map[string]bool{}
	for i, s := range c.CoreSettings {
		if err := validateSetting(s); err != nil {
			errs.add("CoreSettings[%d]: %w", i, err)
		}
		if keys[s.Key] {
			errs.add("CoreSettings[%d]: key %q is defined twice", i, s.Key)
		}
		keys[s.Key] = true
		if s.Group != "" && !groups[s.Group] {
			errs.add("CoreSettings[%d]: setting %q names group %q, which Config.CoreSettingGroups does not define", i, s.Key, s.Group)
		}
		if s.Encrypted && s.Default != nil && s.Default != "" && sealer == nil {
			errs.add("CoreSettings[%d]: setting %q is encrypted and has a default; set Config.SecretKey", i, s.Key)
		}
	}
}
