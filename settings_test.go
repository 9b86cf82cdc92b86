package pluginhost_test

import (
	"bytes"
	"context"
	"database/sql"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/secret"
	"github.com/pluginhost/pluginhost/internal/testdb"
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

func TestSettingsMergeOrderAndDuplicates(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		e := newEnv(t, d)
		// zeta sorts after alpha by id but comes first: alpha depends on it.
		zeta := &fake{manifest: manifest("zeta", "1.0.0", `
[[setting_groups]]
id = "zgroup"
name = "Zeta"
sort_order = 5

[[setting_groups]]
id = "general"
name = "Zeta's general"
sort_order = 99

[[settings]]
key = "zeta.a"
type = "number"
default = 1
group = "general"

[[settings]]
key = "shared.key"
type = "string"
default = "from zeta"
group = "zgroup"

[[settings]]
key = "app.name"
type = "string"
default = "zeta's name"
`)}
		alpha := &fake{manifest: manifest("alpha", "1.0.0", `
[dependencies]
zeta = "^1.0"

[[setting_groups]]
id = "zgroup"
name = "Alpha's zgroup"
sort_order = -100

[[setting_groups]]
id = "agroup"
name = "Alpha"
sort_order = 5

[[settings]]
key = "alpha.a"
type = "boolean"
default = true

[[settings]]
key = "shared.key"
type = "number"
default = 3
`)}
		cfg := e.config(alpha, zeta)
		cfg.CoreSettingGroups = []pluginhost.SettingGroup{
			{ID: "general", Name: "General", SortOrder: 10},
			{ID: "last", Name: "Last", SortOrder: math.MaxInt},
			{ID: "first", Name: "First", SortOrder: math.MinInt},
		}
		cfg.CoreSettings = []pluginhost.Setting{
			{Key: "app.name", Type: pluginhost.StringType, Default: "Core name", Group: "general"},
			{Key: "app.port", Type: pluginhost.NumberType, Default: 8080},
		}
		m := e.start(cfg)
		s := m.Settings()

		for _, id := range []string{"alpha", "zeta"} {
			st := status(t, m, id)
			require.Equal(t, pluginhost.StateRunning, st.State, st.Reason)
		}
		require.Equal(t, []string{"app.name", "app.port", "zeta.a", "shared.key", "alpha.a"}, settingKeys(s.Definitions()),
			"core first, then plugins in dependency order")

		require.Equal(t, "Core name", readSetting(t, s, "app.name"), "core keys win")
		require.Equal(t, "from zeta", readSetting(t, s, "shared.key"), "the earlier plugin's definition is kept")
		_, err := s.Number("shared.key")
		require.ErrorIs(t, err, pluginhost.ErrSettingType)
		for _, def := range s.Definitions() {
			if def.Key == "shared.key" {
				require.Equal(t, "zgroup", def.Group)
			}
		}

		zw := status(t, m, "zeta").Warnings
		requireWarning(t, zw, `setting "app.name"`, "already defined by core")
		requireWarning(t, zw, `setting group "general"`, "already defined by core")
		aw := status(t, m, "alpha").Warnings
		requireWarning(t, aw, `setting "shared.key"`, "already defined by zeta")
		requireWarning(t, aw, `setting group "zgroup"`, "already defined by zeta")
		logs := e.logs.String()
		require.True(t, logLine(logs, "plugin=zeta", "app.name", "already defined by core"), logs)
		require.True(t, logLine(logs, "plugin=alpha", "shared.key", "already defined by zeta"), logs)
		require.True(t, logLine(logs, "plugin=alpha", "zgroup", "already defined by zeta"), logs)

		groups := s.Groups()
		ids := make([]string, len(groups))
		for i, g := range groups {
			ids[i] = g.ID
		}
		require.Equal(t, []string{"first", "agroup", "zgroup", "general", "last"}, ids,
			"groups by sort order, then id; the first definition of an id is kept")
		require.Equal(t, pluginhost.SettingGroup{ID: "general", Name: "General", SortOrder: 10}, groups[3])
		require.Equal(t, "Zeta", groups[2].Name)

		// Listings are copies: changing one does not change the store.
		defs := s.Definitions()
		defs[0].Key = "changed"
		groups[0].ID = "changed"
		require.Equal(t, "app.name", s.Definitions()[0].Key)
		require.Equal(t, "first", s.Groups()[0].ID)
	})
}

func TestSettingsUnknownGroupFailsOnlyThatPlugin(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		e := newEnv(t, d)
		lost := &fake{manifest: manifest("lost", "1.0.0",
			`[[settings]]`,
			`key = "lost.a"`,
			`type = "string"`,
			`group = "nowhere"`)} // line 7
		core := &fake{manifest: manifest("uses-core", "1.0.0",
			`[[settings]]`,
			`key = "uses-core.a"`,
			`type = "string"`,
			`group = "general"`)}
		own := &fake{manifest: manifest("own", "1.0.0",
			`[[setting_groups]]`,
			`id = "mine"`,
			`name = "Mine"`,
			`[[settings]]`,
			`key = "own.a"`,
			`type = "string"`,
			`group = "mine"`)}
		cfg := e.config(lost, core, own)
		cfg.CoreSettingGroups = []pluginhost.SettingGroup{{ID: "general", Name: "General"}}
		m := e.start(cfg)

		st := status(t, m, "lost")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, `field "settings[0].group"`)
		require.Contains(t, st.Reason, "line 7")
		require.Contains(t, st.Reason, `unknown setting group "nowhere"`)
		_, err := m.Settings().String("lost.a")
		require.ErrorIs(t, err, pluginhost.ErrNotFound, "a failed plugin contributes no settings")

		for _, id := range []string{"uses-core", "own"} {
			st := status(t, m, id)
			require.Equal(t, pluginhost.StateRunning, st.State, st.Reason)
		}
		require.Equal(t, []string{"own.a", "uses-core.a"}, settingKeys(m.Settings().Definitions()))
	})
}

func TestSettingsDefaultsOnlyWhereNoValue(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		ctx := context.Background()
		e := newEnv(t, d)
		keep := func(limit, flag string, extra ...string) *fake {
			return &fake{manifest: manifest("keep", "1.0.0", append([]string{
				`[[settings]]`, `key = "keep.limit"`, `type = "number"`, `default = ` + limit,
				`[[settings]]`, `key = "keep.flag"`, `type = "boolean"`, `default = ` + flag,
				`[[settings]]`, `key = "keep.nodefault"`, `type = "string"`,
			}, extra...)...)}
		}
		cfg := e.config(keep("10", "true"))
		cfg.CoreSettings = []pluginhost.Setting{{Key: "app.title", Type: pluginhost.StringType, Default: "one"}}
		m := e.start(cfg)
		require.Equal(t, map[string]string{"app.title": "one", "keep.limit": "10", "keep.flag": "true"}, settingRows(t, e.db))
		require.False(t, m.Settings().IsSet("keep.nodefault"))

		require.NoError(t, m.Settings().Set(ctx, "keep.limit", 42))
		require.Equal(t, "42", settingRows(t, e.db)["keep.limit"], "Set writes through to the database")
		require.NoError(t, m.Shutdown(ctx))

		// A new manager on the same database, with changed defaults and a new
		// setting.
		cfg = e.config(keep("20", "false", `[[settings]]`, `key = "keep.added"`, `type = "string"`, `default = "new"`))
		cfg.CoreSettings = []pluginhost.Setting{{Key: "app.title", Type: pluginhost.StringType, Default: "two"}}
		m = e.start(cfg)
		s := m.Settings()
		n, err := s.Int("keep.limit")
		require.NoError(t, err)
		require.EqualValues(t, 42, n, "the operator's value survives a restart and a changed default")
		require.Equal(t, true, readSetting(t, s, "keep.flag"), "a stored default is a value: a changed default does not replace it")
		require.Equal(t, "one", readSetting(t, s, "app.title"))
		require.Equal(t, "new", readSetting(t, s, "keep.added"))
		require.Equal(t, map[string]string{"app.title": "one", "keep.limit": "42", "keep.flag": "true", "keep.added": "new"}, settingRows(t, e.db))
	})
}

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
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		ctx := context.Background()
		e := newEnv(t, d)
		cfg := typedConfig(e)
		m, err := pluginhost.New(cfg)
		require.NoError(t, err)
		_, err = m.Settings().String("t.str")
		require.ErrorIs(t, err, pluginhost.ErrNotFound, "nothing is defined before Start")
		require.NoError(t, m.Start(ctx))
		t.Cleanup(func() { _ = m.Shutdown(ctx) })
		s := m.Settings()

		require.Equal(t, "hello", readSetting(t, s, "t.str"))
		require.Equal(t, 2.75, readSetting(t, s, "t.num"))
		require.Equal(t, true, readSetting(t, s, "t.bool"))
		n, err := s.Int("t.num")
		require.NoError(t, err)
		require.EqualValues(t, 2, n, "Int truncates")
		n, err = s.Int("t.int")
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

func TestSettingsSetRejectsWrongType(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		ctx := context.Background()
		e := newEnv(t, d)
		s := e.start(typedConfig(e)).Settings()
		before := settingRows(t, e.db)

		for _, tc := range []struct {
			key   string
			value any
		}{
			{"t.num", "3"},
			{"t.num", true},
			{"t.num", nil},
			{"t.num", math.NaN()},
			{"t.num", math.Inf(-1)},
			{"t.int", []int{1}},
			{"t.bool", 1},
			{"t.bool", "true"},
			{"t.bool", nil},
			{"t.str", 5},
			{"t.str", 1.5},
			{"t.str", false},
			{"t.str", []byte("bytes")},
			{"t.str", nil},
		} {
			err := s.Set(ctx, tc.key, tc.value)
			require.ErrorIs(t, err, pluginhost.ErrSettingType, "%s = %#v", tc.key, tc.value)
			require.ErrorContains(t, err, tc.key)
		}
		require.Equal(t, "hello", readSetting(t, s, "t.str"))
		require.Equal(t, 2.75, readSetting(t, s, "t.num"))
		require.Equal(t, 7.0, readSetting(t, s, "t.int"))
		require.Equal(t, true, readSetting(t, s, "t.bool"))
		require.Equal(t, before, settingRows(t, e.db), "a rejected value is not written")
	})
}

func TestSettingsNumbersAcceptGoIntsAndFloats(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		ctx := context.Background()
		e := newEnv(t, d)
		s := e.start(typedConfig(e)).Settings()
		for _, tc := range []struct {
			value any
			want  float64
		}{
			{int(-3), -3}, {int8(-8), -8}, {int16(16), 16}, {int32(-32), -32}, {int64(1 << 40), 1 << 40},
			{uint(3), 3}, {uint8(8), 8}, {uint16(16), 16}, {uint32(32), 32}, {uint64(64), 64},
			{float32(0.5), 0.5}, {float64(-1234.5678), -1234.5678},
		} {
			require.NoError(t, s.Set(ctx, "t.num", tc.value), "%T", tc.value)
			require.Equal(t, tc.want, readSetting(t, s, "t.num"), "%T", tc.value)
		}
		require.Equal(t, "-1234.5678", settingRows(t, e.db)["t.num"])
	})
}

func TestSettingsEncryptedAreSealed(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		ctx := context.Background()
		e := newEnv(t, d)
		const defaultPlain, setPlain = "default-token-PLAIN", "hunter2-PLAINTEXT"
		vault := &fake{manifest: manifest("vault", "1.0.0",
			`[[settings]]`, `key = "vault.token"`, `type = "string"`, `encrypted = true`, `default = "`+defaultPlain+`"`)}
		config := func() pluginhost.Config {
			cfg := e.config(vault)
			cfg.SecretKey = testSecretKey(7)
			cfg.CoreSettings = []pluginhost.Setting{{Key: "app.secret", Type: pluginhost.StringType, Encrypted: true}}
			return cfg
		}
		m := e.start(config())
		require.Equal(t, pluginhost.StateRunning, status(t, m, "vault").State, status(t, m, "vault").Reason)
		s := m.Settings()
		require.NoError(t, s.Set(ctx, "app.secret", setPlain))

		requireSealed := func() {
			t.Helper()
			rows := settingRows(t, e.db)
			require.True(t, secret.IsSealed(rows["vault.token"]), rows["vault.token"])
			require.True(t, secret.IsSealed(rows["app.secret"]), rows["app.secret"])
			for k, v := range rows {
				require.NotContains(t, k+v, defaultPlain)
				require.NotContains(t, k+v, setPlain)
			}
			require.NotContains(t, e.logs.String(), defaultPlain)
			require.NotContains(t, e.logs.String(), setPlain)
		}
		requireSealed()
		requirePlain := func(s *pluginhost.Settings) {
			t.Helper()
			require.Equal(t, defaultPlain, readSetting(t, s, "vault.token"))
			require.Equal(t, setPlain, readSetting(t, s, "app.secret"))
		}
		requirePlain(s)

		require.NoError(t, m.Shutdown(ctx))
		m = e.start(config())
		requirePlain(m.Settings())
		requireSealed()
		require.Empty(t, status(t, m, "vault").Warnings)
	})
}

func TestSettingsEncryptedWithoutKey(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		ctx := context.Background()
		e := newEnv(t, d)
		const plain = "default-SECRET-value"
		withDefault := &fake{manifest: manifest("bad-vault", "1.0.0",
			`[[settings]]`, `key = "bad-vault.token"`, `type = "string"`, `encrypted = true`, `default = "`+plain+`"`)}
		// As in DeployStack's example: an encrypted, required API key whose
		// default is empty.
		emptyDefault := &fake{manifest: manifest("api", "1.0.0",
			`[[settings]]`, `key = "api.key"`, `type = "string"`, `encrypted = true`, `required = true`, `default = ""`,
			`[[settings]]`, `key = "api.other"`, `type = "string"`, `encrypted = true`)}
		other := &fake{manifest: manifest("other", "1.0.0",
			`[[settings]]`, `key = "other.a"`, `type = "number"`, `default = 1`)}
		cfg := e.config(withDefault, emptyDefault, other)
		cfg.CoreSettings = []pluginhost.Setting{{Key: "app.secret", Type: pluginhost.StringType, Encrypted: true, Default: ""}}
		m := e.start(cfg)

		st := status(t, m, "bad-vault")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, "bad-vault.token")
		require.Contains(t, st.Reason, "encrypted")
		require.Contains(t, st.Reason, "Config.SecretKey")
		require.NotContains(t, st.Reason, plain)
		require.NotContains(t, e.logs.String(), plain)
		_, err := m.Settings().String("bad-vault.token")
		require.ErrorIs(t, err, pluginhost.ErrNotFound)

		for _, id := range []string{"api", "other"} {
			st := status(t, m, id)
			require.Equal(t, pluginhost.StateRunning, st.State, st.Reason)
		}
		require.Equal(t, []string{"api.key"}, status(t, m, "api").MissingSettings)

		s := m.Settings()
		before := settingRows(t, e.db)
		// An empty default is used, as for any setting, but cannot be stored.
		for key, isSet := range map[string]bool{"app.secret": true, "api.key": true, "api.other": false} {
			err := s.Set(ctx, key, "x")
			require.ErrorIs(t, err, pluginhost.ErrNoSecretKey, key)
			require.ErrorContains(t, err, key)
			require.Equal(t, isSet, s.IsSet(key), key)
			require.Equal(t, "", readSetting(t, s, key), key)
		}
		require.Equal(t, before, settingRows(t, e.db), "nothing written without a key")
		require.NotContains(t, before, "api.key", "an encrypted default cannot be stored without a key")
		require.NotContains(t, before, "app.secret", "an encrypted default cannot be stored without a key")
	})
}

func TestSettingsSealedUnderAnotherKey(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		ctx := context.Background()
		e := newEnv(t, d)
		const plain = "token-under-key-A"
		vault := &fake{manifest: manifest("vault", "1.0.0",
			`[[settings]]`, `key = "vault.token"`, `type = "string"`, `encrypted = true`)}
		config := func(key []byte) pluginhost.Config {
			cfg := e.config(vault)
			cfg.SecretKey = key
			return cfg
		}
		m := e.start(config(testSecretKey(1)))
		require.NoError(t, m.Settings().Set(ctx, "vault.token", plain))
		sealed := settingRows(t, e.db)["vault.token"]
		require.NoError(t, m.Shutdown(ctx))

		for name, key := range map[string][]byte{"other key": testSecretKey(2), "no key": nil} {
			m = e.start(config(key))
			st := status(t, m, "vault")
			require.Equal(t, pluginhost.StateRunning, st.State, "%s: %s", name, st.Reason)
			requireWarning(t, st.Warnings, `setting "vault.token"`)
			require.True(t, logLine(e.logs.String(), "plugin=vault", "vault.token"), name)
			require.False(t, m.Settings().IsSet("vault.token"), name)
			require.Equal(t, "", readSetting(t, m.Settings(), "vault.token"), name)
			require.Equal(t, sealed, settingRows(t, e.db)["vault.token"], "%s: the stored value is kept", name)
			require.NoError(t, m.Shutdown(ctx))
		}
		require.NotContains(t, e.logs.String(), plain)

		m = e.start(config(testSecretKey(1)))
		require.Equal(t, plain, readSetting(t, m.Settings(), "vault.token"), "the right key opens the kept value again")
	})
}

func TestSettingsRequiredWithoutValue(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		ctx := context.Background()
		e := newEnv(t, d)
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
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		e := newEnv(t, d)
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
