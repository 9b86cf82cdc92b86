package pluginhost_test

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/secret"
)

func TestSettingsSetRejectsWrongType(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
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
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
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
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
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

func TestSettingsSealedUnderAnotherKey(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
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
