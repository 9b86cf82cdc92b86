package pluginhost_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// startReplicas starts n Managers on the env's database, each on a pool of
// its own, with the plugins plugins(i) returns; they are shut down when the
// test ends.
func (e *env) startReplicas(n int, plugins func(i int) []pluginhost.Plugin) []*pluginhost.Manager {
	e.t.Helper()
	managers := make([]*pluginhost.Manager, n)
	for i := range n {
		pool := testdb.OpenAgain(e.t, e.dialect, e.dsn)
		pool.SetMaxOpenConns(3)
		managers[i] = e.start(pluginhost.Config{
			DB: pool, Registry: registry(e.t, plugins(i)...), Logger: discardLogger(), RequireAll: true,
			MaxConns: 1, // each plugin's pool of one connection, within the server's max_connections
		})
	}
	return managers
}

// jobRuns records the runs of a job on several replicas, by period.
type jobRuns struct {
	mu       sync.Mutex
	byPeriod map[int64][]int // period: the replicas that ran it
	ran      chan struct{}   // a run was recorded
	missing  atomic.Int64    // runs whose context had no period
}

func newJobRuns() *jobRuns {
	return &jobRuns{byPeriod: map[int64][]int{}, ran: make(chan struct{}, 1)}
}

// job returns the job function of replica i.
func (r *jobRuns) job(i int) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		n, ok := pluginhost.JobPeriod(ctx)
		if !ok {
			r.missing.Add(1)
		}
		r.mu.Lock()
		r.byPeriod[n] = append(r.byPeriod[n], i)
		r.mu.Unlock()
		select {
		case r.ran <- struct{}{}:
		default:
		}
		return nil
	}
}

// waitUntil waits, within a deadline, for runs that satisfy done.
func (r *jobRuns) waitUntil(t *testing.T, what string, done func(byPeriod map[int64][]int) bool) {
	t.Helper()
	deadline := time.NewTimer(stuckBound)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ok := done(r.byPeriod)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.ran:
		case <-deadline.C:
			t.Fatalf("waiting for %s: runs by period %v", what, r.snapshot())
		}
	}
}

func (r *jobRuns) snapshot() map[int64][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[int64][]int, len(r.byPeriod))
	for n, rs := range r.byPeriod {
		out[n] = slices.Clone(rs)
	}
	return out
}

// jobPlugin is a plugin whose Init starts one job.
func jobPlugin(id, job string, interval time.Duration, scope pluginhost.JobScope, fn func(ctx context.Context) error) *hostKeeper {
	return newHostKeeper(id, func(h *pluginhost.Host) error { return h.Every(job, interval, scope, fn) })
}

const jobInterval = 200 * time.Millisecond

// An EveryReplica job runs on each replica, once per period on each.
func TestJobEveryReplicaRunsOnEach(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		const replicas = 3
		runs := newJobRuns()
		managers := e.startReplicas(replicas, func(i int) []pluginhost.Plugin {
			return []pluginhost.Plugin{jobPlugin("ticker", "tick", jobInterval, pluginhost.EveryReplica, runs.job(i))}
		})
		// Three periods that every replica ran.
		runs.waitUntil(t, "three periods run by every replica", func(byPeriod map[int64][]int) bool {
			full := 0
			for _, rs := range byPeriod {
				if len(rs) == replicas {
					full++
				}
			}
			return full >= 3
		})
		for _, m := range managers {
			require.NoError(t, m.Shutdown(context.Background()))
		}
		require.Zero(t, runs.missing.Load(), "every run's context has its period")
		for n, rs := range runs.snapshot() {
			slices.Sort(rs)
			require.Equal(t, slices.Compact(slices.Clone(rs)), rs, "period %d: a replica ran it twice", n)
		}
		var none int
		require.NoError(t, e.db.QueryRow(`SELECT count(*) FROM pluginhost_jobs`).Scan(&none))
		require.Zero(t, none, "EveryReplica claims nothing")
	})
}

// A OncePerFleet job runs once per period across three replicas, each with
// a pool of its own: on PostgreSQL and on one SQLite database alike.
func TestJobOncePerFleetAcrossReplicas(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		const replicas, periods = 3, 8
		runs := newJobRuns()
		managers := e.startReplicas(replicas, func(i int) []pluginhost.Plugin {
			return []pluginhost.Plugin{jobPlugin("pruner", "prune", jobInterval, pluginhost.OncePerFleet, runs.job(i))}
		})
		runs.waitUntil(t, fmt.Sprintf("%d periods", periods), func(byPeriod map[int64][]int) bool { return len(byPeriod) >= periods })
		for _, m := range managers {
			require.NoError(t, m.Shutdown(context.Background()))
		}
		got := runs.snapshot()
		require.Zero(t, runs.missing.Load())
		ns := slices.Sorted(maps.Keys(got))
		ranBy := map[int]int{}
		for _, n := range ns {
			require.Len(t, got[n], 1, "period %d ran on replicas %v: once per fleet wants one", n, got[n])
			ranBy[got[n][0]]++
		}
		require.Equal(t, ns[len(ns)-1]-ns[0]+1, int64(len(ns)), "no period was skipped by all: %v", ns)
		t.Logf("%d periods of %s, run by replica: %v", len(ns), jobInterval, ranBy)

		var last int64
		var rows int
		require.NoError(t, e.db.QueryRow(`SELECT count(*), max(period) FROM pluginhost_jobs WHERE plugin = 'pruner' AND job = 'prune'`).Scan(&rows, &last))
		require.Equal(t, 1, rows)
		require.Equal(t, ns[len(ns)-1], last, "the table records the last period claimed")
	})
}

// Disable cancels a job's run in progress and waits for it; no run begins
// after Disable returns, while another plugin's job goes on.
func TestJobStopsAtOnceOnDisable(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var disabled, lateRuns, runs atomic.Int64
		var returned atomic.Bool
		inRun := make(chan struct{})
		stopme := jobPlugin("stopme", "fast", 10*time.Millisecond, pluginhost.EveryReplica, func(ctx context.Context) error {
			if disabled.Load() == 1 {
				lateRuns.Add(1)
			}
			if runs.Add(1) == 3 { // the third run lasts until the plugin stops
				close(inRun)
				<-ctx.Done()
				returned.Store(true)
				return ctx.Err()
			}
			return nil
		})
		ticks := make(chan struct{}, 1)
		clock := jobPlugin("clock", "tick", 10*time.Millisecond, pluginhost.EveryReplica, func(context.Context) error {
			select {
			case ticks <- struct{}{}:
			default:
			}
			return nil
		})
		m := e.start(e.config(stopme, clock))
		<-inRun
		require.True(t, workerStatus(t, m, "stopme", "fast").Running)
		require.NoError(t, m.Disable(context.Background(), "stopme"))
		disabled.Store(1)
		require.True(t, returned.Load(), "Disable waited for the run in progress, whose context it canceled")
		for range 10 { // ten periods of the other plugin's job
			<-ticks
		}
		require.Zero(t, lateRuns.Load(), "no run began after Disable returned")
		w := workerStatus(t, m, "stopme", "fast")
		require.False(t, w.Running)
		require.Equal(t, int64(3), w.Runs)
		require.Zero(t, w.Failures, "a run canceled by Disable is no failure")

		// Enabled again, the plugin's new run starts its job again.
		require.NoError(t, m.Enable(context.Background(), "stopme"))
		waitFor(t, "the job runs in the new run", func() bool { return runs.Load() > 3 })
	})
}

// A panic in a job is recovered and counts against the circuit breaker;
// a run past Config.HookTimeout is an overrun.
func TestJobPanicsAndOverruns(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		boom := jobPlugin("boom", "explode", 10*time.Millisecond, pluginhost.EveryReplica, func(context.Context) error { panic("job kaboom") })
		release := make(chan struct{})
		defer close(release)
		var slowRuns atomic.Int64
		slow := jobPlugin("slow", "crawl", 10*time.Millisecond, pluginhost.OncePerFleet, func(ctx context.Context) error {
			if slowRuns.Add(1) == 1 {
				<-release // ignores its context
			}
			return nil
		})
		cfg := e.config(boom, slow)
		cfg.PanicLimit = 3
		cfg.HookTimeout = 200 * time.Millisecond
		m := e.start(cfg)
		waitFor(t, "the breaker trips", func() bool { return status(t, m, "boom").State == pluginhost.StateFailed })
		st := status(t, m, "boom")
		require.GreaterOrEqual(t, st.Panics, 3)
		require.Contains(t, st.Reason, "job explode")
		require.Contains(t, st.Reason, "job kaboom")
		require.Equal(t, pluginhost.StateRunning, status(t, m, "slow").State, "the other plugin runs")

		waitFor(t, "the overrun is counted", func() bool { return status(t, m, "slow").Overruns == 1 })
		w := workerStatus(t, m, "slow", "crawl")
		require.True(t, w.Running, "an overrunning run is not abandoned while the plugin runs: runs never overlap")
		require.Equal(t, int64(1), slowRuns.Load())
	})
}

// Shutdown cancels a job's run in progress and waits for it.
func TestShutdownWaitsForAJobRun(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		inRun := make(chan struct{})
		var returned atomic.Bool
		p := jobPlugin("long", "run", time.Hour, pluginhost.EveryReplica, func(ctx context.Context) error {
			close(inRun)
			<-ctx.Done()
			returned.Store(true)
			return nil
		})
		m := e.start(e.config(p))
		<-inRun
		require.NoError(t, m.Shutdown(context.Background()))
		require.True(t, returned.Load())
		require.Zero(t, status(t, m, "long").Overruns)
	})
}
