package pluginhost

import "time"

// SettingsChanged exposes Settings.changed to the external tests: a channel
// closed at the next change.
func SettingsChanged(s *Settings) <-chan struct{} { return s.changed() }

// SetManifestTimeout sets the bound of the Manifest call at Register, for
// the tests, and returns a function that restores it.
func SetManifestTimeout(d time.Duration) (restore func()) {
	old := manifestTimeout.Swap(int64(d))
	return func() { manifestTimeout.Store(old) }
}
