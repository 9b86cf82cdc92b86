package pluginhost

import "context"

// eventBus delivers typed events to plugins. (Stub, being written.)
type eventBus struct{ m *Manager }

func newEventBus(m *Manager) *eventBus { return &eventBus{m: m} }

// dropPlugin removes every subscription of plugin id, at once: it is called
// when the plugin stops (disabled, failed, shut down).
func (b *eventBus) dropPlugin(id string) {}

// emit publishes a built-in event from the host.
func (b *eventBus) emit(ctx context.Context, e any) {}

// close stops the asynchronous deliveries; called by Shutdown.
func (b *eventBus) close() {}

// dropped counts the events plugin id's asynchronous subscriptions dropped.
func (b *eventBus) dropped(id string) int64 { return 0 }

// Built-in events (stub).
type (
	PluginStarted  struct{ Plugin string }
	PluginEnabled  struct{ Plugin string }
	PluginDisabled struct{ Plugin, Reason string }
	PluginFailed   struct{ Plugin, Reason string }
	SettingChanged struct{ Key, Owner string }
)
