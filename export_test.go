package pluginhost

// SettingsChanged exposes Settings.changed to the external tests: a channel
// closed at the next change.
func SettingsChanged(s *Settings) <-chan struct{} { return s.changed() }
