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
