package pluginhost

import (
	"fmt"
	"time"
)

// recordPanic logs a recovered panic in plugin id's code with the stack,
// counts it, and trips the plugin's circuit breaker when Config.PanicLimit
// panics fell within Config.PanicWindow: the plugin is then failed and
// gated until it is enabled again. where says what panicked ("handler GET
// /notes", "event handler", …). It is safe for concurrent use and does not
// block: the plugin is stopped by the Manager's control goroutine.
func (m *Manager) recordPanic(id, where string, rv any, stack []byte) {
	m.mu.Lock()
	p := m.byID[id]
	if p == nil {
		m.mu.Unlock()
		return
	}
	now := time.Now()
	p.panics++
	p.recent = append(p.recent, now)
	cut := 0
	for cut < len(p.recent) && now.Sub(p.recent[cut]) > m.cfg.PanicWindow {
		cut++
	}
	p.recent = p.recent[cut:]
	trip := m.cfg.PanicLimit > 0 && len(p.recent) >= m.cfg.PanicLimit && p.state == StateRunning
	count := len(p.recent)
	m.mu.Unlock()

	p.logger.Error("plugin panicked", "where", where, "panic", fmt.Sprint(rv), "stack", string(stack))
	if trip {
		m.requestTrip(id, fmt.Sprintf("circuit breaker: %d panics within %s (last in %s: %v); enable the plugin to try again",
			count, m.cfg.PanicWindow, where, rv))
	}
}
