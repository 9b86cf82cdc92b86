package pluginhost_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/admin"
)

const vaultManifest = `
[[settings]]
key = "vault.token"
type = "string"
encrypted = true
`

// storedValue reads key's stored text straight from the table.
func storedValue(t *testing.T, e *env, key string) string {
	t.Helper()
	var v string
	require.NoError(t, e.db.QueryRow(`SELECT value FROM pluginhost_settings WHERE key = '`+key+`'`).Scan(&v))
	return v
}

// adminValue returns the value the admin API shows for key.
func adminValue(t *testing.T, m *pluginhost.Manager, key string) any {
	t.Helper()
	h, err := admin.New(admin.Config{Manager: m, Insecure: true})
	require.NoError(t, err)
	rec := serve(t, h, "GET", "/settings/"+key, "")
	require.Equal(t, 200, rec.Code, rec.Body.String())
	var got struct {
		Owner     string `json:"owner"`
		Encrypted bool   `json:"encrypted"`
		Value     any    `json:"value"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got))
	return got.Value
}

// A plugin ordered before vault that declares vault.token without
// encrypted does not take the key over: vault owns it, it stays sealed,
// the admin API masks it and a PUT stores it sealed.
func TestSettingsTakeOverIsImpossible(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		thief := &fake{manifest: manifest("aaa", "1.0.0", `
[[settings]]
key = "vault.token"
type = "string"
default = "stolen"
`)}
		vault := &fake{manifest: manifest("vault", "1.0.0", vaultManifest)}
		cfg := e.config(thief, vault)
		cfg.SecretKey = make([]byte, 32)
		m := e.start(cfg)
		s := m.Settings()
		require.Equal(t, "vault", s.Owner("vault.token"))
		for _, def := range s.Definitions() {
			if def.Key == "vault.token" {
				require.True(t, def.Encrypted)
			}
		}
		requireWarning(t, status(t, m, "aaa").Warnings, `setting "vault.token"`, `outside plugin "aaa"'s namespace`)
		require.Equal(t, pluginhost.StateRunning, status(t, m, "aaa").State, "the plugin still loads")
		require.False(t, s.IsSet("vault.token"), "the thief's default was not stored")

		h, err := admin.New(admin.Config{Manager: m, Insecure: true})
		require.NoError(t, err)
		rec := serve(t, h, "PUT", "/settings/vault.token", `{"value": "s3cret"}`)
		require.Equal(t, 200, rec.Code, rec.Body.String())
		require.True(t, strings.HasPrefix(storedValue(t, e, "vault.token"), "gcm1:"), "stored sealed")
		require.Equal(t, "********", adminValue(t, m, "vault.token"))
		require.True(t, logLine(e.logs.String(), "plugin=aaa", "vault.token", "namespace"), e.logs.String())
	})
}

// A later declaration of a key stored sealed, without encrypted, cannot
// unseal it: the key stays encrypted and the admin API masks it.
func TestSettingsEncryptionCannotBeDropped(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cfg := e.config(&fake{manifest: manifest("vault", "1.0.0", vaultManifest)})
		cfg.SecretKey = make([]byte, 32)
		m1, err := pluginhost.New(cfg)
		require.NoError(t, err)
		require.NoError(t, m1.Start(ctx))
		require.NoError(t, m1.Settings().Set(ctx, "vault.token", "s3cret"))
		require.NoError(t, m1.Shutdown(ctx))

		var host *pluginhost.Host
		cfg2 := e.config(&fake{manifest: manifest("vault", "2.0.0", `
[[settings]]
key = "vault.token"
type = "string"
`), init: func(_ context.Context, h *pluginhost.Host) error { host = h; return nil }})
		cfg2.SecretKey = cfg.SecretKey
		m2 := e.start(cfg2)
		requireWarning(t, status(t, m2, "vault").Warnings, `setting "vault.token"`, "stays encrypted")
		require.Equal(t, "********", adminValue(t, m2, "vault.token"))
		got, err := host.Settings().String("vault.token")
		require.NoError(t, err)
		require.Equal(t, "s3cret", got, "its owner still reads it")
		require.NoError(t, host.Settings().Set(ctx, "vault.token", "next"))
		require.True(t, strings.HasPrefix(storedValue(t, e, "vault.token"), "gcm1:"), "the next value is stored sealed")
	})
}

// Through its Host a plugin reads the core's settings and its own, writes
// only its own, and cannot reach another plugin's settings.
func TestHostSettingsBoundaries(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		var host *pluginhost.Host
		vault := &fake{manifest: manifest("vault", "1.0.0", vaultManifest, `
[[settings]]
key = "vault.mode"
type = "string"
default = "strict"
`)}
		reader := &fake{manifest: manifest("my-reader", "1.0.0", `
[[settings]]
key = "myReader.limit"
type = "number"
default = 5

[[settings]]
key = "my-reader.name"
type = "string"
`), init: func(_ context.Context, h *pluginhost.Host) error { host = h; return nil }}
		cfg := e.config(vault, reader)
		cfg.SecretKey = make([]byte, 32)
		cfg.CoreSettings = []pluginhost.Setting{{Key: "app.name", Type: pluginhost.StringType, Default: "core"}}
		m := e.start(cfg)
		require.NoError(t, m.Settings().Set(ctx, "vault.token", "s3cret"))
		ps := host.Settings()

		name, err := ps.String("app.name")
		require.NoError(t, err)
		require.Equal(t, "core", name, "core settings are readable")
		n, err := ps.Int("myReader.limit")
		require.NoError(t, err)
		require.EqualValues(t, 5, n, "the camelCase namespace is the plugin's")
		require.NoError(t, ps.Set(ctx, "myReader.limit", 7))
		require.NoError(t, ps.Set(ctx, "my-reader.name", "r"))

		_, err = ps.String("vault.token")
		require.ErrorIs(t, err, pluginhost.ErrSettingAccess)
		require.ErrorContains(t, err, `plugin "my-reader" cannot read setting "vault.token"`)
		_, err = ps.String("vault.mode")
		require.ErrorIs(t, err, pluginhost.ErrSettingAccess, "another plugin's plain setting needs a grant (none exist yet)")
		require.False(t, ps.IsSet("vault.token"))

		err = ps.Set(ctx, "app.name", "hijacked")
		require.ErrorIs(t, err, pluginhost.ErrSettingAccess)
		require.ErrorContains(t, err, "belongs to the core")
		err = ps.Set(ctx, "vault.token", "plain")
		require.ErrorIs(t, err, pluginhost.ErrSettingAccess)
		got, err := m.Settings().String("app.name")
		require.NoError(t, err)
		require.Equal(t, "core", got, "the refused Set wrote nothing")
		tok, err := m.Settings().String("vault.token")
		require.NoError(t, err)
		require.Equal(t, "s3cret", tok)
		_, err = ps.String("no.such")
		require.ErrorIs(t, err, pluginhost.ErrNotFound)
	})
}
