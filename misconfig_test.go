package pluginhost_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// shopPlugin declares two tables, the second with a foreign key to the
// first.
func shopPlugin() *fake {
	return &fake{
		manifest: manifest("shop", "1.0.0"),
		tables: []pluginhost.Table{
			{Name: "customers", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "name"}}},
			{Name: "orders", Columns: []pluginhost.Column{
				{Name: "id", PrimaryKey: true},
				{Name: "customer_id", Type: pluginhost.Integer, NotNull: true, References: "customers.id", OnDelete: "cascade"},
			}},
		},
	}
}

// withoutForeignKeys returns a config on the env's database through a pool
// whose SQLite connections do not enforce foreign keys. On PostgreSQL,
// which always does, it is the env's config.
func withoutForeignKeys(t *testing.T, e *env, plugins ...pluginhost.Plugin) pluginhost.Config {
	cfg := e.config(plugins...)
	if e.dialect == testdb.SQLite {
		dsn := strings.Replace(e.dsn, "_foreign_keys=1", "_foreign_keys=0", 1)
		require.NotEqual(t, e.dsn, dsn)
		cfg.DB = testdb.OpenAgain(t, testdb.SQLite, dsn)
	}
	return cfg
}

// On SQLite a declared foreign key that the connection does not enforce
// would let a dangling row in, silently: Start fails, naming the DSN
// option and the opt-out.
func TestUnenforcedForeignKeysFailStart(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		cfg := withoutForeignKeys(t, e, shopPlugin(), itemsPlugin("plain"))
		m, err := e.tryStart(cfg)
		if e.dialect == testdb.Postgres {
			require.NoError(t, err, "PostgreSQL enforces foreign keys")
			require.Equal(t, pluginhost.StateRunning, status(t, m, "shop").State)
			_, err := e.db.Exec(`INSERT INTO shop__orders (customer_id) VALUES (42)`)
			require.Error(t, err, "a dangling row is refused")
			return
		}
		require.Error(t, err)
		require.ErrorContains(t, err, `plugin "shop"`)
		require.ErrorContains(t, err, `"orders"`)
		require.ErrorContains(t, err, "_foreign_keys=1")
		require.ErrorContains(t, err, "Config.AllowForeignKeysOff")
		require.False(t, e.hasTable("shop__orders"), "refused before the plugin's tables are created")

		// Enforced on the env's own pool: it starts, and a dangling row is
		// refused.
		m = e.start(e.config(shopPlugin(), itemsPlugin("plain")))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "shop").State)
		_, err = e.db.Exec(`INSERT INTO shop__orders (customer_id) VALUES (42)`)
		require.ErrorContains(t, err, "FOREIGN KEY constraint failed")
	})
}

func TestAllowForeignKeysOffStartsWithAWarning(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		cfg := withoutForeignKeys(t, e, shopPlugin(), itemsPlugin("plain"))
		cfg.AllowForeignKeysOff = true
		m := e.start(cfg)
		st := status(t, m, "shop")
		require.Equal(t, pluginhost.StateRunning, st.State, st.Reason)
		require.Empty(t, status(t, m, "plain").Warnings, "no foreign keys, no warning")
		if e.dialect == testdb.Postgres {
			require.Empty(t, st.Warnings, "PostgreSQL enforces them")
			return
		}
		require.Len(t, st.Warnings, 1)
		require.Contains(t, st.Warnings[0], "not enforced")
		require.Contains(t, st.Warnings[0], "_foreign_keys=1")
	})
}

// Enabling a plugin at runtime checks too.
func TestEnableChecksForeignKeyEnforcement(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		if e.dialect == testdb.Postgres {
			return // always enforced: covered above
		}
		cfg := withoutForeignKeys(t, e, shopPlugin(), itemsPlugin("plain"))
		cfg.Disabled = []string{"shop"}
		m := e.start(cfg)
		require.Equal(t, pluginhost.StateRunning, status(t, m, "plain").State)
		err := m.Enable(context.Background(), "shop")
		require.ErrorContains(t, err, "_foreign_keys=1")
		require.NotEqual(t, pluginhost.StateRunning, status(t, m, "shop").State)
		require.False(t, e.hasTable("shop__orders"))
	})
}

// hookLike has methods named like capabilities with the wrong signatures:
// each is a warning on its status naming the signature wanted.
type hookLike struct{ fake }

func (p *hookLike) RegisterRoutes(r chi.Router, h pluginhost.Host) {}             // Host by value
func (p *hookLike) Init(ctx context.Context) error                 { return nil } // no Host
func (p *hookLike) CheckHealth() error                             { return nil } // no context
func (p *hookLike) Tables() []string                               { return nil }
func (p *hookLike) Migrations() fs.ReadDirFS                       { return nil }
func (p *hookLike) Manifest() []byte                               { return []byte(manifest("hooklike", "1.0.0")) }

// valueOnly is registered as a value, with its Init on the pointer.
type valueOnly struct{}

func (valueOnly) Manifest() []byte                                    { return []byte(manifest("value-only", "1.0.0")) }
func (*valueOnly) Init(ctx context.Context, h *pluginhost.Host) error { return nil }

func TestMisnamedCapabilitiesAreWarnings(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		m := e.start(e.config(&hookLike{}, valueOnly{}, itemsPlugin("right")))
		st := status(t, m, "hooklike")
		require.Equal(t, pluginhost.StateRunning, st.State, "a warning, not a failure")
		want := map[string]string{
			"RegisterRoutes": "RegisterRoutes(chi.Router, pluginhost.Host) does not match pluginhost.RouteRegistrar, so it is never called: want RegisterRoutes(chi.Router, *pluginhost.Host)",
			"Init":           "Init(context.Context) error does not match pluginhost.Initializer, so it is never called: want Init(context.Context, *pluginhost.Host) error",
			"CheckHealth":    "CheckHealth() error does not match pluginhost.HealthChecker, so it is never called: want CheckHealth(context.Context) error",
			"Tables":         "Tables() []string does not match pluginhost.TableProvider, so it is never called: want Tables() []pluginhost.Table",
			"Migrations":     "Migrations() fs.ReadDirFS does not match pluginhost.Migrator, so it is never called: want Migrations() fs.FS",
		}
		require.Len(t, st.Warnings, len(want), "%q", st.Warnings)
		for name, w := range want {
			found := false
			for _, got := range st.Warnings {
				found = found || strings.Contains(got, w)
			}
			require.True(t, found, "%s: no warning %q in %q", name, w, st.Warnings)
		}
		require.Empty(t, st.Routes)

		st = status(t, m, "value-only")
		require.Equal(t, []string{"method Init(context.Context, *pluginhost.Host) error is declared on *pluginhost_test.valueOnly, " +
			"but the plugin is registered as a pluginhost_test.valueOnly, whose methods do not include it, so it is never called: register a *pluginhost_test.valueOnly"},
			st.Warnings)

		require.Empty(t, status(t, m, "right").Warnings)
	})
}

// A host whose plugins are not imported starts with none: a warning with
// the likely cause, not an Info line.
func TestNoRegisteredPluginsIsAWarning(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		cfg, logs := withLogs(e.config())
		e.start(cfg)
		var warn string
		for line := range strings.SplitSeq(logs.String(), "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "no plugins are registered") {
				warn = line
			}
		}
		require.NotEmpty(t, warn, logs.String())
		require.Contains(t, warn, `import _ \"`)

		cfg, logs = withLogs(e.config(itemsPlugin("p")))
		e.start(cfg)
		require.NotContains(t, logs.String(), "no plugins are registered")
	})
}
