//go:build race

package pluginhost_test

// raceEnabled: the race detector is on (its sync.Pool drops items at random).
const raceEnabled = true
