package pluginhost_test

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

func TestSettingsMergeOrderAndDuplicates(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
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
		require.Equal(t, []string{"app.name", "app.port", "zeta.a", "alpha.a"}, settingKeys(s.Definitions()),
			"core first, then plugins in dependency order; keys outside a plugin's namespace ignored")

		require.Equal(t, "Core name", readSetting(t, s, "app.name"), "core keys win")
		_, err := s.String("shared.key")
		require.ErrorIs(t, err, pluginhost.ErrNotFound, "a key in nobody's namespace is nobody's")

		zw := status(t, m, "zeta").Warnings
		requireWarning(t, zw, `setting "app.name"`, `outside plugin "zeta"'s namespace`)
		requireWarning(t, zw, `setting "shared.key"`, `outside plugin "zeta"'s namespace`)
		requireWarning(t, zw, `setting group "general"`, "already defined by core")
		aw := status(t, m, "alpha").Warnings
		requireWarning(t, aw, `setting "shared.key"`, `outside plugin "alpha"'s namespace`)
		requireWarning(t, aw, `setting group "zgroup"`, "already defined by zeta")
		logs := e.logs.String()
		require.True(t, logLine(logs, "plugin=zeta", "app.name", "namespace"), logs)
		require.True(t, logLine(logs, "plugin=alpha", "shared.key", "namespace"), logs)
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
	eachEnv(t, func(t *testing.T, e *env) {
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
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
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

func TestSettingsEncryptedWithoutKey(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
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
