package pluginhost

import (
	"sync"
	"time"
)

// RecentEventsLimit is how many built-in events [Manager.RecentEvents]
// keeps: the oldest is forgotten when a newer one comes.
const RecentEventsLimit = 200

// LifecycleEvent is a built-in event the Manager published, as
// [Manager.RecentEvents] reports it.
type LifecycleEvent struct {
	// Seq numbers the events of this Manager from 1, in the order they
	// were published.
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"`
	// Type is "plugin_started", "plugin_enabled", "plugin_disabled",
	// "plugin_failed" or "setting_changed": [PluginStarted],
	// [PluginEnabled], [PluginDisabled], [PluginFailed], [SettingChanged].
	Type string `json:"type"`
	// Plugin is the plugin the event is about; for a setting, its owner
	// ("core" for the host's own).
	Plugin string `json:"plugin,omitempty"`
	// Reason is why a plugin was disabled or failed.
	Reason string `json:"reason,omitempty"`
	// Key is the key of the setting that changed.
	Key string `json:"key,omitempty"`
}

// eventLog is a ring of the last RecentEventsLimit lifecycle events.
type eventLog struct {
	mu   sync.Mutex
	ring []LifecycleEvent // at most RecentEventsLimit; ring[next] is the oldest once full
	next int
	seq  uint64
}

// record adds e, numbering and timing it.
func (l *eventLog) record(e LifecycleEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	e.Seq, e.Time = l.seq, time.Now()
	if len(l.ring) < RecentEventsLimit {
		l.ring = append(l.ring, e)
		return
	}
	l.ring[l.next] = e
	l.next = (l.next + 1) % RecentEventsLimit
}

// list returns the events, oldest first.
func (l *eventLog) list() []LifecycleEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]LifecycleEvent, 0, len(l.ring))
	out = append(out, l.ring[l.next:]...)
	return append(out, l.ring[:l.next]...)
}

// lifecycleEvent returns the built-in event e as the log keeps it.
func lifecycleEvent(e any) (LifecycleEvent, bool) {
	switch e := e.(type) {
	case PluginStarted:
		return LifecycleEvent{Type: "plugin_started", Plugin: e.Plugin}, true
	case PluginEnabled:
		return LifecycleEvent{Type: "plugin_enabled", Plugin: e.Plugin}, true
	case PluginDisabled:
		return LifecycleEvent{Type: "plugin_disabled", Plugin: e.Plugin, Reason: e.Reason}, true
	case PluginFailed:
		return LifecycleEvent{Type: "plugin_failed", Plugin: e.Plugin, Reason: e.Reason}, true
	case SettingChanged:
		return LifecycleEvent{Type: "setting_changed", Plugin: e.Owner, Key: e.Key}, true
	}
	return LifecycleEvent{}, false
}

// RecentEvents returns the last built-in events the Manager published
// (at most [RecentEventsLimit]), oldest first: plugins started, enabled,
// disabled and failed, and settings changed (here or on another replica).
// It is kept in memory by this Manager only, from New on. It is safe for
// concurrent use.
func (m *Manager) RecentEvents() []LifecycleEvent { return m.events.log.list() }
