package pluginhost

// DropExtensions exposes extensionRegistry.dropPlugin, which the Manager
// calls when a plugin stops, to the external tests.
func DropExtensions(m *Manager, id string) { m.extensions.dropPlugin(id) }
