package pluginhost

// extensionRegistry holds the extension points and their providers.
// (Stub, being written.)
type extensionRegistry struct{ m *Manager }

func newExtensionRegistry(m *Manager) *extensionRegistry { return &extensionRegistry{m: m} }

// dropPlugin removes every provider of plugin id, at once: it is called
// when the plugin stops.
func (r *extensionRegistry) dropPlugin(id string) {}
