package pluginhost_test

import (
	"bytes"
	"context"
	"database/sql"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// settingRows returns every row of the settings table, key → stored text.
func settingRows(t testing.TB, db *sql.DB) map[string]string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT key, value FROM pluginhost_settings`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		require.NoError(t, rows.Scan(&k, &v))
		out[k] = v
	}
	require.NoError(t, rows.Err())
	return out
}

// logLine reports whether one line of logs contains every part.
func logLine(logs string, parts ...string) bool {
	for line := range strings.Lines(logs) {
		found := true
		for _, p := range parts {
			found = found && strings.Contains(line, p)
		}
		if found {
			return true
		}
	}
	return false
}

// requireWarning fails unless one of warnings contains every part.
func requireWarning(t testing.TB, warnings []string, parts ...string) {
	t.Helper()
	for _, w := range warnings {
		found := true
		for _, p := range parts {
			found = found && strings.Contains(w, p)
		}
		if found {
			return
		}
	}
	t.Fatalf("no warning contains %q in %q", parts, warnings)
}

func settingKeys(defs []pluginhost.Setting) []string {
	keys := make([]string, len(defs))
	for i, d := range defs {
		keys[i] = d.Key
	}
	return keys
}

// readSetting reads key with the getter of its type, failing the test on an
// error.
func readSetting(t testing.TB, s *pluginhost.Settings, key string) any {
	t.Helper()
	var v any
	var err error
	switch i := slices.IndexFunc(s.Definitions(), func(d pluginhost.Setting) bool { return d.Key == key }); {
	case i >= 0 && s.Definitions()[i].Type == pluginhost.NumberType:
		v, err = s.Number(key)
	case i >= 0 && s.Definitions()[i].Type == pluginhost.BooleanType:
		v, err = s.Bool(key)
	default:
		v, err = s.String(key)
	}
	require.NoError(t, err, key)
	return v
}

// testSecretKey returns a 32-byte AES-256 key made of b.
func testSecretKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// typedConfig returns a config with core settings of every type.
func typedConfig(e *env) pluginhost.Config {
	cfg := e.config()
	cfg.CoreSettings = []pluginhost.Setting{
		{Key: "t.str", Type: pluginhost.StringType, Default: "hello"},
		{Key: "t.num", Type: pluginhost.NumberType, Default: 2.75},
		{Key: "t.int", Type: pluginhost.NumberType, Default: 7},
		{Key: "t.bool", Type: pluginhost.BooleanType, Default: true},
		{Key: "t.empty", Type: pluginhost.StringType},
	}
	return cfg
}

func TestSettingsTypedAccess(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cfg := typedConfig(e)
		m, err := pluginhost.New(cfg)
		require.NoError(t, err)
		_, err = m.Settings().String("t.str")
		require.ErrorIs(t, err, pluginhost.ErrNotRunning, "nothing is loaded before Start")
		require.NoError(t, m.Start(ctx))
		t.Cleanup(func() { _ = m.Shutdown(ctx) })
		s := m.Settings()

		require.Equal(t, "hello", readSetting(t, s, "t.str"))
		require.Equal(t, 2.75, readSetting(t, s, "t.num"))
		require.Equal(t, true, readSetting(t, s, "t.bool"))
		_, err = s.Int("t.num")
		require.ErrorIs(t, err, pluginhost.ErrSettingType, "Int does not truncate 2.75")
		n, err := s.Int("t.int")
		require.NoError(t, err)
		require.EqualValues(t, 7, n)

		_, err = s.String("t.missing")
		require.ErrorIs(t, err, pluginhost.ErrNotFound)
		require.ErrorContains(t, err, "t.missing")
		require.ErrorIs(t, s.Set(ctx, "t.missing", "x"), pluginhost.ErrNotFound)
		require.False(t, s.IsSet("t.missing"))

		wrong := map[string]func() error{
			"Number of a string": func() error { _, err := s.Number("t.str"); return err },
			"Int of a boolean":   func() error { _, err := s.Int("t.bool"); return err },
			"Bool of a number":   func() error { _, err := s.Bool("t.num"); return err },
			"String of a number": func() error { _, err := s.String("t.int"); return err },
			"String of a bool":   func() error { _, err := s.String("t.bool"); return err },
		}
		for name, get := range wrong {
			err := get()
			require.ErrorIs(t, err, pluginhost.ErrSettingType, name)
			require.NotErrorIs(t, err, pluginhost.ErrNotFound, name)
		}

		require.True(t, s.IsSet("t.str"))
		require.False(t, s.IsSet("t.empty"))
		require.Equal(t, "", readSetting(t, s, "t.empty"))
		require.NoError(t, s.Set(ctx, "t.empty", ""))
		require.True(t, s.IsSet("t.empty"), "an empty string is a value")
		require.NoError(t, s.Set(ctx, "t.bool", false))
		require.Equal(t, false, readSetting(t, s, "t.bool"))
	})
}

func TestSettingsRequiredWithoutValue(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		needy := &fake{manifest: manifest("needy", "1.0.0",
			`[[settings]]`, `key = "needy.a"`, `type = "string"`, `required = true`,
			`[[settings]]`, `key = "needy.b"`, `type = "string"`, `required = true`, `default = ""`,
			`[[settings]]`, `key = "needy.c"`, `type = "number"`, `required = true`,
			`[[settings]]`, `key = "needy.d"`, `type = "string"`, `required = true`, `default = "x"`,
			`[[settings]]`, `key = "needy.e"`, `type = "boolean"`, `required = true`, `default = false`,
			`[[settings]]`, `key = "needy.f"`, `type = "string"`)}
		cfg := e.config(needy)
		cfg.CoreSettings = []pluginhost.Setting{{Key: "app.required", Type: pluginhost.StringType, Required: true}}
		m := e.start(cfg)
		st := status(t, m, "needy")
		require.Equal(t, pluginhost.StateRunning, st.State, "a missing setting does not stop the plugin")
		require.Equal(t, []string{"needy.a", "needy.b", "needy.c"}, st.MissingSettings)
		logs := e.logs.String()
		require.True(t, logLine(logs, "plugin=needy", "needy.a", "needy.b", "needy.c"), logs)
		require.True(t, logLine(logs, "required core settings", "app.required"), logs)

		s := m.Settings()
		require.NoError(t, s.Set(ctx, "needy.a", "value"))
		require.NoError(t, s.Set(ctx, "needy.b", ""))
		require.NoError(t, s.Set(ctx, "needy.c", 0))
		require.NoError(t, m.Shutdown(ctx))

		m = e.start(e.config(needy))
		require.Equal(t, []string{"needy.b"}, status(t, m, "needy").MissingSettings, "an empty string is still missing")
		require.NoError(t, m.Settings().Set(ctx, "needy.b", "filled"))
		require.NoError(t, m.Shutdown(ctx))
		m = e.start(e.config(needy))
		require.Empty(t, status(t, m, "needy").MissingSettings)
	})
}

// Status lists missing required settings as they are now, not as they were
// at Start.
func TestMissingSettingsFollowSet(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		m := e.start(e.config(&fake{manifest: manifest("needs", "1.0.0",
			"[[settings]]", `key = "needs.url"`, `type = "string"`, `required = true`)}))
		require.Equal(t, []string{"needs.url"}, status(t, m, "needs").MissingSettings)
		require.Equal(t, "needs", m.Settings().Owner("needs.url"))
		require.Equal(t, "", m.Settings().Owner("nope"))
		require.NoError(t, m.Settings().Set(context.Background(), "needs.url", "https://example.com"))
		require.Empty(t, status(t, m, "needs").MissingSettings)
		require.NoError(t, m.Settings().Set(context.Background(), "needs.url", ""))
		require.Equal(t, []string{"needs.url"}, status(t, m, "needs").MissingSettings)
	})
}
