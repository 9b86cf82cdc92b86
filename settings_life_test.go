package pluginhost_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// Settings are not readable or writable before Start, which loads them: a
// read or a Set says the Manager has not started (ErrNotRunning). After
// Shutdown, or a Start that failed, Set returns ErrClosed and writes
// nothing; reads still serve the last values.
func TestSettingsOutsideTheManagersLife(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cfg := e.config(&fake{manifest: manifest("calm", "1.0.0")})
		cfg.CoreSettings = []pluginhost.Setting{
			{Key: "app.name", Type: pluginhost.StringType, Default: "example"},
			{Key: "app.limit", Type: pluginhost.NumberType, Default: 10},
			{Key: "app.debug", Type: pluginhost.BooleanType},
		}
		m, err := pluginhost.New(cfg)
		require.NoError(t, err)
		s := m.Settings()

		_, err = s.String("app.name")
		require.ErrorIs(t, err, pluginhost.ErrNotRunning)
		require.EqualError(t, err, `pluginhost: manager is not running: setting "app.name" cannot be read: the manager has not started (settings are loaded by Start)`)
		_, err = s.Number("app.limit")
		require.ErrorIs(t, err, pluginhost.ErrNotRunning)
		_, err = s.Int("app.limit")
		require.ErrorIs(t, err, pluginhost.ErrNotRunning)
		_, err = s.Bool("app.debug")
		require.ErrorIs(t, err, pluginhost.ErrNotRunning)
		require.NotErrorIs(t, err, pluginhost.ErrNotFound)
		err = s.Set(ctx, "app.name", "early")
		require.ErrorIs(t, err, pluginhost.ErrNotRunning)
		require.ErrorContains(t, err, `setting "app.name" cannot be set: the manager has not started`)

		require.NoError(t, m.Start(ctx))
		require.Equal(t, "example", mustSetting(t, s, "app.name"), "the early Set wrote nothing")
		require.NoError(t, s.Set(ctx, "app.name", "running"))
		_, err = s.String("no.such")
		require.ErrorIs(t, err, pluginhost.ErrNotFound)

		require.NoError(t, m.Shutdown(ctx))
		err = s.Set(ctx, "app.name", "late")
		require.ErrorIs(t, err, pluginhost.ErrClosed)
		require.ErrorContains(t, err, `setting "app.name" cannot be set after Shutdown`)
		require.Equal(t, "running", mustSetting(t, s, "app.name"), "reads serve the last values")
		var stored string
		require.NoError(t, e.db.QueryRowContext(ctx, `SELECT value FROM pluginhost_settings WHERE key = 'app.name'`).Scan(&stored))
		require.Equal(t, "running", stored, "the late Set wrote nothing")
	})
}

// A Start that failed leaves a Manager that cannot start again: Set
// returns ErrClosed.
func TestSettingsSetAfterAFailedStart(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		cfg := e.config(failingInit("req", errFromTheHook))
		cfg.Required = []string{"req"}
		cfg.CoreSettings = []pluginhost.Setting{{Key: "app.name", Type: pluginhost.StringType, Default: "example"}}
		m, err := pluginhost.New(cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
		require.ErrorIs(t, m.Start(context.Background()), pluginhost.ErrRequired)
		require.ErrorIs(t, m.Settings().Set(context.Background(), "app.name", "x"), pluginhost.ErrClosed)
	})
}

func mustSetting(t *testing.T, s *pluginhost.Settings, key string) string {
	t.Helper()
	v, err := s.String(key)
	require.NoError(t, err)
	return v
}
