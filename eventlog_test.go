package pluginhost

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The log keeps the last RecentEventsLimit events, oldest first, numbered
// from 1 without gaps.
func TestEventLogKeepsTheLast(t *testing.T) {
	t.Parallel()
	var l eventLog
	require.Empty(t, l.list())
	for i := range RecentEventsLimit + 7 {
		e, ok := lifecycleEvent(PluginDisabled{Plugin: "p", Reason: string(rune('a' + i%26))})
		require.True(t, ok)
		l.record(e)
	}
	got := l.list()
	require.Len(t, got, RecentEventsLimit)
	for i, e := range got {
		require.Equal(t, uint64(8+i), e.Seq, "oldest first, the first 7 forgotten")
		require.Equal(t, "plugin_disabled", e.Type)
		require.False(t, e.Time.IsZero())
	}
	require.False(t, got[len(got)-1].Time.Before(got[0].Time))

	_, ok := lifecycleEvent(PluginError{Plugin: "p"})
	require.False(t, ok, "a handler's failure is not a lifecycle event")
	e, _ := lifecycleEvent(SettingChanged{Key: "app.name", Owner: "core"})
	require.Equal(t, LifecycleEvent{Type: "setting_changed", Plugin: "core", Key: "app.name"}, e)
}
