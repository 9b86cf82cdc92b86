package pluginhost

import "context"

// The event bus's Manager-facing methods, for the external tests.

// EmitEvent publishes a built-in event from the host, as the Manager does.
func EmitEvent(ctx context.Context, m *Manager, e any) { m.events.emit(ctx, e) }

// DropSubscriptions ends plugin id's subscriptions, as the Manager does
// when the plugin stops.
func DropSubscriptions(m *Manager, id string) { m.events.dropPlugin(id) }

// CloseEvents stops every subscription and worker, as Shutdown does.
func CloseEvents(m *Manager) { m.events.close() }

// EventsDropped counts the events plugin id's async subscriptions dropped.
func EventsDropped(m *Manager, id string) int64 { return m.events.dropped(id) }

// WaitEventWorkers waits, without a bound, until every async worker
// goroutine the bus started has returned.
func WaitEventWorkers(m *Manager) { m.events.workers.Wait() }
