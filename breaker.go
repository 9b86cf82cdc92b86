package pluginhost

import (
	"fmt"
	"time"
)

// recordPanic logs a panic recovered from a plugin's code with the stack
// and counts it against the plugin's circuit breaker (see recordFault).
func (m *Manager) recordPanic(pe *PanicError) {
	if p := m.recordFault(pe.Plugin, pe.Phase, pe, true); p != nil {
		p.logger.Error("plugin panicked", "where", pe.Phase, "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
	}
}

// recordOverrun logs a call into plugin id's code, where, that was
// abandoned with err (it overran its bound or called runtime.Goexit), and
// counts it against the plugin's circuit breaker.
func (m *Manager) recordOverrun(id, where string, err error) {
	if p := m.recordFault(id, where, err, false); p != nil {
		p.logger.Error("plugin code abandoned", "where", where, "err", err)
	}
}

// recordFault counts a fault of plugin id's code, in where: a panic or an
// abandoned call. When Config.PanicLimit faults fell within
// Config.PanicWindow of the plugin's current run, its circuit breaker
// trips: the plugin and its running dependents are failed at once, so that
// their routes answer 503 before the faulting request's response is
// written, and stay so until the plugin is enabled again. It is safe for
// concurrent use and does not block: the control goroutine drops the
// plugins' subscriptions, lets their requests finish and runs their
// Shutdown hooks. It returns the plugin, or nil for an unknown id.
func (m *Manager) recordFault(id, where string, fault error, panicked bool) *plugin {
	why := func(panics, overruns int) error {
		return withCauses(fmt.Sprintf("circuit breaker: %s within %s (last in %s: %v); enable the plugin to try again",
			faultCount(panics, overruns), m.cfg.PanicWindow, where, faultText(fault)), fault)
	}
	p, tripped := m.plugins.countFault(id, panicked, time.Now(), m.cfg.PanicLimit, m.cfg.PanicWindow, why)
	if tripped {
		p.logger.Error("circuit breaker tripped: the plugin failed")
		m.ctl.requestTrip()
	}
	return p
}

// faultCount says how many faults tripped a breaker: "5 panics", "3
// overruns", "4 panics and 1 overrun".
func faultCount(panics, overruns int) string {
	plural := func(n int, what string) string {
		if n == 1 {
			return "1 " + what
		}
		return fmt.Sprintf("%d %ss", n, what)
	}
	switch {
	case overruns == 0:
		return plural(panics, "panic")
	case panics == 0:
		return plural(overruns, "overrun")
	}
	return plural(panics, "panic") + " and " + plural(overruns, "overrun")
}

// faultText is how a breaker's reason names the last fault: a panic by its
// value, as before.
func faultText(fault error) any {
	if pe, ok := fault.(*PanicError); ok {
		return pe.Value
	}
	return fault
}

// countFault counts a fault of plugin id at now: a panic when panicked, or
// else a call abandoned (it overran its bound or called runtime.Goexit).
// When that makes limit faults within window while the plugin runs, its circuit breaker trips:
// the plugin and its running dependents fail at once, with the error
// why(count) (the gate closes before countFault returns), and what is left
// of stopping them is queued for takeWindDowns. It returns nil for an
// unknown id.
func (t *pluginTable) countFault(id string, panicked bool, now time.Time, limit int, window time.Duration, why func(panics, overruns int) error) (p *plugin, tripped bool) {
	t.mu.Lock()
	p = t.byID[id]
	if p == nil {
		t.mu.Unlock()
		return nil, false
	}
	pm := t.m.metrics.of(id)
	if panicked {
		p.panics++
		pm.panics.Add(1)
	} else {
		p.overruns++
		pm.overruns.Add(1)
	}
	p.recent = append(p.recent, fault{at: now, panicked: panicked})
	cut := 0
	for cut < len(p.recent) && now.Sub(p.recent[cut].at) > window {
		cut++
	}
	p.recent = p.recent[cut:]
	if limit <= 0 || len(p.recent) < limit || p.state != StateRunning {
		t.mu.Unlock()
		return p, false
	}
	panics := 0
	for _, f := range p.recent {
		if f.panicked {
			panics++
		}
	}
	pm.trips.Add(1)
	stopped := t.stopLocked(p, StateFailed, why(panics, len(p.recent)-panics))
	closed := t.publishLocked()
	t.dirty = false
	t.windDowns = append(t.windDowns, windDown{stopped: stopped, closed: closed})
	t.unlock()
	for _, c := range closed {
		c.close()
	}
	return p, true
}

// windDown is what is left to do for plugins that stopped without their
// subscriptions dropped, their requests drained and their Shutdown hooks
// run: a breaker trip stops a plugin where the panic happens, and leaves
// the rest to the control goroutine.
type windDown struct {
	stopped []*plugin
	closed  []*mount
}

// takeWindDowns returns the wind-downs pending and clears them.
func (t *pluginTable) takeWindDowns() []windDown {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.windDowns
	t.windDowns = nil
	return w
}

// fault is one fault a breaker counts: a panic, or an abandoned call.
type fault struct {
	at       time.Time
	panicked bool
}
