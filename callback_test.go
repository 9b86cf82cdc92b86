package pluginhost_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// A synchronous SettingChanged subscriber may set a setting itself: no
// plugin code runs while Set holds its lock.
func TestSettingChangedSubscriberMaySet(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		nested := make(chan error, 1)
		p := listener("p", func(h *pluginhost.Host) {
			pluginhost.Subscribe(h, func(ctx context.Context, c pluginhost.SettingChanged) error {
				if c.Key == "p.a" {
					nested <- h.Settings().Set(ctx, "p.b", "from the subscriber")
				}
				return nil
			})
		}, "[[settings]]", `key = "p.a"`, `type = "string"`, "[[settings]]", `key = "p.b"`, `type = "string"`)
		m := e.start(e.config(p))
		set := make(chan error, 1)
		go func() { set <- m.Settings().Set(context.Background(), "p.a", "from the test") }()
		require.NoError(t, receiveWithin(t, set, 5*time.Second))
		require.NoError(t, receiveWithin(t, nested, 5*time.Second))
		got, err := m.Settings().String("p.b")
		require.NoError(t, err)
		require.Equal(t, "from the subscriber", got)
	})
}
