package pluginhost

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// HealthReport is the result of [Manager.Health].
type HealthReport struct {
	// Ready is true when Start has finished, Shutdown has not begun, the
	// database answered a ping, and the check of every running plugin
	// passed. Plugins that are disabled or failed do not make the host
	// unready: the others serve.
	Ready bool `json:"ready"`
	// Database is the ping of the host's database, Config.DB.
	Database DatabaseHealth `json:"database"`
	// Plugins lists every registered plugin, sorted by id.
	Plugins []PluginHealth `json:"plugins"`

	serving bool // Start has finished and Shutdown has not begun
}

// DatabaseHealth is the database's part of a [HealthReport]: a ping of
// Config.DB within Config.HealthTimeout.
type DatabaseHealth struct {
	// Error is the ping's error, or "" when the database answered.
	Error string `json:"error,omitempty"`
	// Latency is how long the ping took, or how long it was waited for
	// when it did not answer in time.
	Latency time.Duration `json:"latency_ns,omitempty"`
	// LastChecked is when the reported ping started.
	LastChecked time.Time `json:"last_checked,omitzero"`
}

// PluginHealth is one plugin's part of a [HealthReport].
type PluginHealth struct {
	ID    string `json:"id"`
	State State  `json:"state"`
	// Checked is true when the plugin is running and implements
	// [HealthChecker], so that Error and Latency are its check's. A running
	// plugin without a check is healthy, with Checked false.
	Checked bool `json:"checked"`
	// Error is the check's error, or "" when it passed. For a plugin that
	// is not running it is the reason, as [Manager.Status] reports it.
	Error string `json:"error,omitempty"`
	// Latency is how long the check took, or how long it was waited for
	// when it did not answer in time.
	Latency time.Duration `json:"latency_ns,omitempty"`
	// LastChecked is when the reported check started.
	LastChecked time.Time `json:"last_checked,omitzero"`
}

// failing returns the ids of the plugins whose check failed.
func (r HealthReport) failing() []string {
	out := []string{}
	for _, ph := range r.Plugins {
		if ph.Checked && ph.Error != "" {
			out = append(out, ph.ID)
		}
	}
	return out
}

// Health pings the database and runs the checks of the running plugins
// that implement [HealthChecker], all concurrently, each bounded by
// Config.HealthTimeout, and reports the database's answer and every
// plugin's state, its check's error and latency. A database that does not
// answer makes the report not ready: the host cannot serve without it.
//
// Health returns within Config.HealthTimeout, or when ctx is done, even if
// a check or the ping has not answered: it is reported as failing ("did
// not answer within …") and its goroutine is left running until it
// returns. While a check runs, later calls wait for that same check (until
// its own deadline) instead of starting another, so a check that hangs
// holds one goroutine, not one per call; the ping ends at its deadline, and
// each call pings anew. Checks and the ping run with ctx's values but not
// its cancellation, so that a caller that goes away does not fail a check
// that other callers may be waiting for.
//
// Health is safe for concurrent use. Before Start it reports no plugins and
// Ready false. A check may still be running when its plugin is disabled.
func (m *Manager) Health(ctx context.Context) HealthReport {
	type target struct {
		index   int // in report.Plugins
		id      string
		checker HealthChecker
	}
	var report HealthReport
	var targets []target
	for _, st := range m.registeredStatus() { // a removed plugin has no health
		ph := PluginHealth{ID: st.ID, State: st.State}
		if st.State != StateRunning {
			ph.Error = st.Reason
		} else if hc, ok := m.plugins.get(st.ID).plugin.(HealthChecker); ok {
			targets = append(targets, target{len(report.Plugins), st.ID, hc})
		}
		report.Plugins = append(report.Plugins, ph)
	}

	hs := m.healthState()
	ping := startRun(ctx, m.cfg.HealthTimeout, m.pingDatabase)
	runs := make([]*healthRun, len(targets))
	for i, t := range targets {
		runs[i] = hs.run(ctx, m, t.id, m.pluginCheck(t.id, t.checker))
	}
	report.Database.LastChecked = ping.started
	report.Database.Latency, report.Database.Error = ping.await(ctx)
	healthy := report.Database.Error == ""
	for i, t := range targets {
		ph := &report.Plugins[t.index]
		ph.Checked = true
		ph.LastChecked = runs[i].started
		ph.Latency, ph.Error = runs[i].await(ctx)
		if ph.Error != "" {
			healthy = false
		}
	}
	report.serving = m.ctl.accepting()
	report.Ready = healthy && report.serving
	return report
}

// pingDatabase reports whether the database answers a ping on a
// connection. sql.DB.PingContext does not try another connection when the
// idle one it took has died (see freshConn): that says nothing about the
// database. database/sql and the drivers end a ping at its context's
// deadline, so, unlike the plugins' checks, each Health call pings anew.
func (m *Manager) pingDatabase(ctx context.Context) error {
	conn, err := freshConn(ctx, m.cfg.DB)
	if err != nil {
		return err
	}
	return conn.Close()
}

// pluginCheck returns the check of plugin id, contained: a panic is its
// error.
func (m *Manager) pluginCheck(id string, hc HealthChecker) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		err := m.contain(id, "health check", func() error { return hc.CheckHealth(ctx) })
		if pe, ok := err.(*PanicError); ok {
			err = fmt.Errorf("health check panicked: %v", pe.Value)
		}
		return err
	}
}

// healthState keeps the latest check of each plugin. Its zero value is
// ready to use.
type healthState struct {
	mu   sync.Mutex
	runs map[string]*healthRun // by plugin id
}

// healthRun is one call of a plugin's CheckHealth, or one ping.
type healthRun struct {
	started  time.Time
	timeout  time.Duration
	deadline time.Time
	done     chan struct{} // closed when the check has returned

	// Set before done is closed.
	err  error
	took time.Duration
}

// run returns the check of plugin id still in progress, or starts check as
// a new one.
func (hs *healthState) run(ctx context.Context, m *Manager, id string, check func(ctx context.Context) error) *healthRun {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if r := hs.runs[id]; r != nil {
		select {
		case <-r.done:
		default:
			return r // still running: wait for it rather than pile up
		}
	}
	r := startRun(ctx, m.cfg.HealthTimeout, check)
	if hs.runs == nil {
		hs.runs = map[string]*healthRun{}
	}
	hs.runs[id] = r
	return r
}

// startRun starts check, with ctx's values, bounded by timeout.
func startRun(ctx context.Context, timeout time.Duration, check func(ctx context.Context) error) *healthRun {
	now := time.Now()
	r := &healthRun{
		started:  now,
		timeout:  timeout,
		deadline: now.Add(timeout),
		done:     make(chan struct{}),
	}
	go r.check(context.WithoutCancel(ctx), check)
	return r
}

// check calls check with the run's deadline.
func (r *healthRun) check(ctx context.Context, check func(ctx context.Context) error) {
	defer close(r.done)
	ctx, cancel := context.WithDeadline(ctx, r.deadline)
	defer cancel()
	r.err = check(ctx)
	r.took = time.Since(r.started)
}

// await waits for the check until its deadline or until ctx is done, and
// returns its latency and error text.
func (r *healthRun) await(ctx context.Context) (time.Duration, string) {
	result := func() (time.Duration, string) {
		if r.err != nil {
			return r.took, r.err.Error()
		}
		return r.took, ""
	}
	timer := time.NewTimer(time.Until(r.deadline))
	defer timer.Stop()
	select {
	case <-r.done:
		return result()
	case <-timer.C:
	case <-ctx.Done():
	}
	select {
	case <-r.done: // answered just in time
		return result()
	default:
	}
	if err := ctx.Err(); err != nil {
		return time.Since(r.started), fmt.Sprintf("no answer before the health request ended: %v", err)
	}
	return time.Since(r.started), fmt.Sprintf("did not answer within %s", r.timeout)
}

func (m *Manager) healthState() *healthState { return &m.health }

// readiness is the body of the ReadinessHandler's responses.
type readiness struct {
	Ready bool `json:"ready"`
	// Failing names the running plugins whose check failed.
	Failing []string `json:"failing"`
	// Reason says why the host is not ready when it is not because of a
	// plugin's check: the database, or not serving.
	Reason string `json:"reason,omitempty"`
	// Database is the database's ping, when it failed or with verbose.
	Database *DatabaseHealth `json:"database,omitempty"`
	Plugins  []PluginHealth  `json:"plugins,omitempty"`
}

// ReadinessHandler returns an http.Handler for a readiness probe, such as
// Kubernetes' readinessProbe. It runs [Manager.Health] with the request's
// context and answers 200 when the report is ready and 503 otherwise:
// before Start has finished, after Shutdown has begun, while the database
// does not answer a ping within Config.HealthTimeout, and while a running
// plugin's check fails. The JSON body names the failing plugins, and the
// database when it does not answer:
//
//	{"ready":false,"failing":["billing"]}
//	{"ready":false,"failing":[],"reason":"the database does not answer: …","database":{"error":"…","latency_ns":…}}
//
// With the query parameter verbose, whatever its value (/readyz?verbose),
// the body also holds the database's ping under "database" and lists every
// plugin's [PluginHealth] under "plugins". The handler answers any method,
// is safe for concurrent use and valid before Start. Set the probe's
// timeout above Config.HealthTimeout.
func (m *Manager) ReadinessHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		report := m.Health(r.Context())
		body := readiness{Ready: report.Ready, Failing: report.failing()}
		var reasons []string
		if report.Database.Error != "" {
			reasons = append(reasons, "the database does not answer: "+report.Database.Error)
			body.Database = &report.Database
		}
		if !report.serving {
			reasons = append(reasons, "not serving: Start has not finished or Shutdown has begun")
		}
		body.Reason = strings.Join(reasons, "; ")
		if r.URL.Query().Has("verbose") {
			body.Database = &report.Database
			body.Plugins = report.Plugins
		}
		status := http.StatusOK
		if !report.Ready {
			status = http.StatusServiceUnavailable
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, status, body)
	})
}
