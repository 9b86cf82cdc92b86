package pluginhost

import (
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
	// "postgres" of files named NNNN_name.sql, applied in order, each in one
	// transaction with its ledger row, before any plugin's tables. Nil: none.
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

	// HookTimeout bounds each call of a plugin hook (Seed, Init,
	// RegisterRoutes, Shutdown, …): a hook that has not returned by then
	// fails its plugin, not the boot. Its context carries the deadline.
	// Zero: 30 seconds.
	HookTimeout time.Duration

	// PanicLimit and PanicWindow make a circuit breaker: a plugin whose
	// code panics PanicLimit times within PanicWindow (in handlers, event
	// handlers, health checks, extension calls or hooks) is failed and its
	// routes answer 503 until it is enabled again. Zero: 5 panics within
	// one minute. A negative PanicLimit turns the breaker off.
	PanicLimit  int
	PanicWindow time.Duration

	// HealthTimeout bounds each plugin's health check in Manager.Health.
	// Zero: 5 seconds.
	HealthTimeout time.Duration

	// DevMode drops and recreates a plugin's declared tables whose
	// definition changed since they were created, losing their data, and
	// logs that at Warn. Default (false): a changed table is refused and the
	// plugin fails.
	DevMode bool
}

// validate checks the config and fills in defaults; every error names the
// field.
func (c *Config) validate() (*secret.Sealer, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("pluginhost: Config."+format, args...))
	}
	if c.DB == nil {
		bad("DB is required")
	} else if c.Dialect == "" {
		d, err := detectDialect(c.DB)
		if err != nil {
			bad("Dialect: %w", err)
		}
		c.Dialect = d
	}
	if c.Dialect != "" && c.Dialect != SQLite && c.Dialect != Postgres {
		bad("Dialect %q is not supported; use %q or %q", c.Dialect, SQLite, Postgres)
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
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{{"HookTimeout", &c.HookTimeout, 30 * time.Second}, {"PanicWindow", &c.PanicWindow, time.Minute}, {"HealthTimeout", &c.HealthTimeout, 5 * time.Second}} {
		switch {
		case *d.v < 0:
			bad("%s is negative", d.name)
		case *d.v == 0:
			*d.v = d.def
		}
	}
	if c.PanicLimit == 0 {
		c.PanicLimit = 5
	}
	var sealer *secret.Sealer
	if c.SecretKey != nil {
		s, err := secret.New(c.SecretKey)
		if err != nil {
			bad("SecretKey: %w", err)
		}
		sealer = s
	}
	for i, mw := range c.Middleware {
		if mw == nil {
			bad("Middleware[%d] is nil", i)
		}
	}
	disabled := map[string]bool{}
	for _, id := range c.Disabled {
		disabled[id] = true
	}
	for _, id := range c.Required {
		if disabled[id] {
			bad("Required: plugin %q is also in Config.Disabled", id)
		}
	}
	groups := map[string]bool{}
	for i, g := range c.CoreSettingGroups {
		if err := validateGroup(g); err != nil {
			bad("CoreSettingGroups[%d]: %w", i, err)
		}
		if groups[g.ID] {
			bad("CoreSettingGroups[%d]: group id %q is defined twice", i, g.ID)
		}
		groups[g.ID] = true
	}
	keys := map[string]bool{}
	for i, s := range c.CoreSettings {
		if err := validateSetting(s); err != nil {
			bad("CoreSettings[%d]: %w", i, err)
		}
		if keys[s.Key] {
			bad("CoreSettings[%d]: key %q is defined twice", i, s.Key)
		}
		keys[s.Key] = true
		if s.Group != "" && !groups[s.Group] {
			bad("CoreSettings[%d]: setting %q names group %q, which Config.CoreSettingGroups does not define", i, s.Key, s.Group)
		}
		if s.Encrypted && s.Default != nil && s.Default != "" && sealer == nil {
			bad("CoreSettings[%d]: setting %q is encrypted and has a default; set Config.SecretKey", i, s.Key)
		}
	}
	return sealer, errors.Join(errs...)
}
