package pluginhost_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// envMap is a Config.LookupEnv over a map, so tests need not touch the
// process environment and can run in parallel.
func envMap(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func TestPluginConfigSourcesAndPrecedence(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		type seen struct {
			str, secret       string
			num, fromInt      float64
			flag              bool
			lookups           map[string]any
			unset, undeclared bool
		}
		var got seen
		p := &fake{
			manifest: manifest("cfg-app", "1.0.0", `
[config.only-default]
type = "number"
default = 5

[config.from-config]
type = "string"
default = "from default"

[config.env-wins]
type = "number"
default = 1

[config.custom-env]
type = "boolean"
env = "MY_FLAG"

[config.unset]
type = "string"

[config.from-int]
type = "number"
default = 0.5

[config.token]
type = "string"
secret = true
required = true
`),
			init: func(_ context.Context, h *pluginhost.Host) error {
				c := h.Config()
				got.str = c.String("from-config")
				got.num = c.Number("env-wins")
				got.flag = c.Bool("custom-env")
				got.fromInt = c.Number("from-int")
				got.secret = c.String("token")
				got.lookups = map[string]any{}
				for _, k := range []string{"only-default", "from-config", "env-wins", "custom-env", "from-int"} {
					got.lookups[k], _ = c.Lookup(k)
				}
				_, got.unset = c.Lookup("unset")
				_, got.undeclared = c.Lookup("not-declared")
				return nil
			},
		}
		cfg := e.config(p)
		cfg.PluginConfig = map[string]map[string]any{"cfg-app": {
			"from-config": "from Config",
			"env-wins":    2,
			"custom-env":  false,
			"from-int":    int64(7),
		}}
		const secretValue = "tok-SECRET-4711"
		cfg.LookupEnv = envMap(map[string]string{
			"PLUGINHOST_CFG_APP_ENV_WINS":   "3.5",
			"MY_FLAG":                       "true",
			"PLUGINHOST_CFG_APP_CUSTOM_ENV": "false", // not the variable the manifest names
			"PLUGINHOST_CFG_APP_TOKEN":      secretValue,
		})
		m := e.start(cfg)
		st := status(t, m, "cfg-app")
		require.Equal(t, pluginhost.StateRunning, st.State, st.Reason)
		require.Empty(t, st.Warnings)

		require.Equal(t, "from Config", got.str, "Config wins over the default")
		require.InDelta(t, 3.5, got.num, 0, "the environment wins over Config")
		require.True(t, got.flag, "the manifest's env names the variable")
		require.InDelta(t, 7, got.fromInt, 0, "a Go int in Config is a number")
		require.Equal(t, secretValue, got.secret)
		require.Equal(t, map[string]any{
			"only-default": 5.0,
			"from-config":  "from Config",
			"env-wins":     3.5,
			"custom-env":   true,
			"from-int":     7.0,
		}, got.lookups)
		require.False(t, got.unset, "no value and no default: Lookup says so")
		require.False(t, got.undeclared, "an undeclared key has no value")
		require.NotContains(t, e.logs.String(), secretValue)
	})
}

func TestPluginConfigRequiredMissing(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		initCalled := false
		needs := &fake{
			manifest: manifest("needs-token", "1.0.0", `[config.api-token]`, `type = "string"`, `required = true`),
			init:     func(context.Context, *pluginhost.Host) error { initCalled = true; return nil },
		}
		custom := &fake{manifest: manifest("custom", "1.0.0",
			`[config.port]`, `type = "number"`, `required = true`, `env = "CUSTOM_PORT"`)}
		given := &fake{manifest: manifest("given", "1.0.0", `[config.url]`, `type = "string"`, `required = true`)}
		cfg := e.config(needs, custom, given)
		cfg.PluginConfig = map[string]map[string]any{"given": {"url": "http://x"}}
		cfg.LookupEnv = envMap(nil)
		m := e.start(cfg)

		st := status(t, m, "needs-token")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, `"api-token"`)
		require.Contains(t, st.Reason, "PLUGINHOST_NEEDS_TOKEN_API_TOKEN")
		require.Contains(t, st.Reason, `Config.PluginConfig["needs-token"]["api-token"]`)
		require.False(t, initCalled, "a skipped plugin is not initialized")

		st = status(t, m, "custom")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, `"port"`)
		require.Contains(t, st.Reason, "CUSTOM_PORT")
		require.NotContains(t, st.Reason, "PLUGINHOST_CUSTOM_PORT")

		st = status(t, m, "given")
		require.Equal(t, pluginhost.StateRunning, st.State, st.Reason)
	})
}

func TestPluginConfigWrongType(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		cases := []struct {
			id, typ  string
			config   any    // Config.PluginConfig[id]["value"], when not nil
			env      string // PLUGINHOST_<ID>_VALUE, when not empty
			contains []string
		}{
			{"num-env", "number", nil, "abc", []string{"PLUGINHOST_NUM_ENV_VALUE", `"abc"`, "not a finite number"}},
			{"nan-env", "number", nil, "NaN", []string{"PLUGINHOST_NAN_ENV_VALUE", `"NaN"`, "not a finite number"}},
			{"inf-config", "number", math.Inf(1), "", []string{`Config.PluginConfig["inf-config"]["value"]`, "want a finite number"}},
			{"bool-env", "boolean", nil, "maybe", []string{"PLUGINHOST_BOOL_ENV_VALUE", `"maybe"`, "not a boolean"}},
			{"num-config", "number", "12", "", []string{`Config.PluginConfig["num-config"]["value"]`, "got string"}},
			{"bool-config", "boolean", 1, "", []string{`Config.PluginConfig["bool-config"]["value"]`, "got int"}},
			{"str-config", "string", 2.5, "", []string{`Config.PluginConfig["str-config"]["value"]`, "got float64"}},
		}
		plugins := []pluginhost.Plugin{&fake{manifest: manifest("fine", "1.0.0")}}
		given := map[string]map[string]any{}
		vars := map[string]string{}
		for _, tc := range cases {
			plugins = append(plugins, &fake{manifest: manifest(tc.id, "1.0.0", `[config.value]`, `type = "`+tc.typ+`"`)})
			if tc.config != nil {
				given[tc.id] = map[string]any{"value": tc.config}
			}
			if tc.env != "" {
				vars[pluginhostEnvName(tc.id)] = tc.env
			}
		}
		cfg := e.config(plugins...)
		cfg.PluginConfig = given
		cfg.LookupEnv = envMap(vars)
		m := e.start(cfg)

		for _, tc := range cases {
			st := status(t, m, tc.id)
			require.Equal(t, pluginhost.StateFailed, st.State, tc.id)
			require.Contains(t, st.Reason, `config key "value"`, tc.id)
			for _, part := range tc.contains {
				require.Contains(t, st.Reason, part, tc.id)
			}
		}
		require.Equal(t, pluginhost.StateRunning, status(t, m, "fine").State)
	})
}

// pluginhostEnvName returns the default variable of key "value" of plugin id.
func pluginhostEnvName(id string) string {
	return "PLUGINHOST_" + strings.ToUpper(strings.ReplaceAll(id, "-", "_")) + "_VALUE"
}

func TestPluginConfigSecretsNeverShown(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		const envSecret, configSecret, goodSecret = "env-S3CRET-value", "config-S3CRET-value", "good-S3CRET-value"
		secretKey := func(id, typ string) *fake {
			return &fake{manifest: manifest(id, "1.0.0", `[config.key]`, `type = "`+typ+`"`, `secret = true`)}
		}
		cfg := e.config(secretKey("sec-env", "number"), secretKey("sec-config", "string"), secretKey("sec-ok", "string"))
		cfg.PluginConfig = map[string]map[string]any{"sec-config": {"key": []byte(configSecret)}}
		cfg.LookupEnv = envMap(map[string]string{
			"PLUGINHOST_SEC_ENV_KEY": envSecret,
			"PLUGINHOST_SEC_OK_KEY":  goodSecret,
		})
		m := e.start(cfg)

		st := status(t, m, "sec-env")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, `config key "key"`)
		require.Contains(t, st.Reason, "PLUGINHOST_SEC_ENV_KEY")
		require.NotContains(t, st.Reason, envSecret)

		st = status(t, m, "sec-config")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, `Config.PluginConfig["sec-config"]["key"]`)
		require.NotContains(t, st.Reason, configSecret)

		require.Equal(t, pluginhost.StateRunning, status(t, m, "sec-ok").State)
		logs := e.logs.String()
		require.True(t, logLine(logs, "plugin=sec-env", "PLUGINHOST_SEC_ENV_KEY"), "the failure is logged: %s", logs)
		for _, v := range []string{envSecret, configSecret, goodSecret} {
			require.NotContains(t, logs, v)
		}
	})
}

func TestPluginConfigUndeclaredKeysWarn(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var value string
		p := &fake{
			manifest: manifest("undecl", "1.0.0", `[config.declared]`, `type = "string"`),
			init: func(_ context.Context, h *pluginhost.Host) error {
				value = h.Config().String("declared")
				return nil
			},
		}
		cfg := e.config(p)
		const typoValue = "typo-VALUE-maybe-secret"
		cfg.PluginConfig = map[string]map[string]any{"undecl": {"declared": "yes", "declraed": typoValue, "another": 1}}
		cfg.LookupEnv = envMap(nil)
		m := e.start(cfg)

		st := status(t, m, "undecl")
		require.Equal(t, pluginhost.StateRunning, st.State, st.Reason)
		require.Equal(t, "yes", value)
		require.Len(t, st.Warnings, 2)
		requireWarning(t, st.Warnings, `Config.PluginConfig["undecl"]["another"]`, "not declared")
		requireWarning(t, st.Warnings, `Config.PluginConfig["undecl"]["declraed"]`, "not declared")
		logs := e.logs.String()
		require.True(t, logLine(logs, "plugin=undecl", "declraed", "not declared"), logs)
		require.NotContains(t, logs, typoValue, "an undeclared value may be a mistyped secret")
	})
}

func TestPluginConfigEnvOverridesAWrongConfigValueAndEmptyIsMissing(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var port float64
		overridden := &fake{
			manifest: manifest("overridden", "1.0.0", `[config.port]`, `type = "number"`),
			init: func(_ context.Context, h *pluginhost.Host) error {
				port = h.Config().Number("port")
				return nil
			},
		}
		empty := &fake{manifest: manifest("empty", "1.0.0", `[config.token]`, `type = "string"`, `required = true`)}
		cfg := e.config(overridden, empty)
		cfg.PluginConfig = map[string]map[string]any{"overridden": {"port": "not a number"}}
		cfg.LookupEnv = envMap(map[string]string{"PLUGINHOST_OVERRIDDEN_PORT": "8081", "PLUGINHOST_EMPTY_TOKEN": ""})
		m := e.start(cfg)

		require.Equal(t, pluginhost.StateRunning, status(t, m, "overridden").State, "the environment wins, so the Config value is not used")
		require.Equal(t, 8081.0, port)
		st := status(t, m, "empty")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, `config key "token" is required: set the environment variable PLUGINHOST_EMPTY_TOKEN`)
	})
}
