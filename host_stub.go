package pluginhost

// Host is the per-plugin handle every hook receives. (stub, being written)
type Host struct{}
