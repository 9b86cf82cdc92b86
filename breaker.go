package pluginhost

import (
	"fmt"
	"time"
)

// recordPanic logs a panic recovered from a plugin's code with the stack,
// counts it, and trips the plugin's circuit breaker when Config.PanicLimit
// panics fell within Config.PanicWindow of its current run: the plugin and
// its running dependents are failed at once, so that their routes answer
// 503 before the panicking request's response is written, and stay so
// until the plugin is enabled again. It is safe for concurrent use and does
// not block: the control goroutine drops the plugins' subscriptions, lets
// their requests finish and runs their Shutdown hooks.
func (m *Manager) recordPanic(pe *PanicError) {
	why := func(count int) string {
		return fmt.Sprintf("circuit breaker: %d panics within %s (last in %s: %v); enable the plugin to try again",
			count, m.cfg.PanicWindow, pe.Phase, pe.Value)
	}
	p, tripped := m.plugins.countPanic(pe.Plugin, time.Now(), m.cfg.PanicLimit, m.cfg.PanicWindow, why)
	if p == nil {
		return
	}
	p.logger.Error("plugin panicked", "where", pe.Phase, "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
	if tripped {
		p.logger.Error("circuit breaker tripped: the plugin failed")
		m.ctl.requestTrip()
	}
}
