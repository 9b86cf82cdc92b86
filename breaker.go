package pluginhost

import (
	"fmt"
	"time"
)

// recordPanic logs a panic recovered from a plugin's code with the stack,
// counts it, and trips the plugin's circuit breaker when Config.PanicLimit
// panics fell within Config.PanicWindow: the plugin is then failed and
// gated until it is enabled again. It is safe for concurrent use and does
// not block: the plugin is stopped by the Manager's control goroutine.
func (m *Manager) recordPanic(pe *PanicError) {
	p, trip, count := m.plugins.countPanic(pe.Plugin, time.Now(), m.cfg.PanicLimit, m.cfg.PanicWindow)
	if p == nil {
		return
	}
	p.logger.Error("plugin panicked", "where", pe.Phase, "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
	if trip {
		m.ctl.requestTrip(pe.Plugin, fmt.Sprintf("circuit breaker: %d panics within %s (last in %s: %v); enable the plugin to try again",
			count, m.cfg.PanicWindow, pe.Phase, pe.Value))
	}
}
