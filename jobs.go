package pluginhost

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// JobScope says where a periodic job of [Host.Every] runs.
type JobScope string

// The scopes of a periodic job.
const (
	// EveryReplica runs the job on every Manager that runs the plugin,
	// once per period each.
	EveryReplica JobScope = "every-replica"
	// OncePerFleet runs the job once per period across every Manager on
	// the database: the first to claim the period runs it, the others
	// skip it.
	OncePerFleet JobScope = "once-per-fleet"
)

// MinJobInterval is the shortest interval [Host.Every] accepts.
const MinJobInterval = 10 * time.Millisecond

// jobsTable records, per plugin and job, the last period a OncePerFleet
// job was claimed for (internal/migrate/library/*/0002_jobs.sql).
const jobsTable = "pluginhost_jobs"

// Every runs fn periodically, supervised by the Manager, until the
// plugin's run ends. Time is cut into periods of interval aligned on the
// Unix epoch (period n begins at n×interval), the same on every replica
// whose clock is right: a job every hour runs on the hour. The job runs
// once in the period Every is called in, at once, then at the start of
// each later period. Runs never overlap: a run that lasts past the end of
// its period makes the job skip the periods it missed.
//
// Where it runs is scope's choice. [EveryReplica]: on each Manager, every
// period. [OncePerFleet]: once per period among every Manager on the
// database, SQLite and PostgreSQL alike (several Managers in one process,
// or several processes on one PostgreSQL database or SQLite file): before
// a run, the Manager claims the period in the library's table
// pluginhost_jobs, with a conditional write that succeeds only if no
// Manager claimed this period or a later one, in a transaction that on
// PostgreSQL first takes pg_try_advisory_xact_lock on (plugin, job,
// period), so that a replica finding it taken skips at once rather than
// waiting. The claim commits before fn runs; no library lock is held while
// it runs. A period is run at most once: if the Manager that claimed it
// stops or fails during the run, the period is not run again elsewhere. A
// claim that fails (the database) skips the period, with a warning and
// LastError set.
//
// Each run gets a context that is canceled when the run has lasted
// Config.HookTimeout, or when the plugin's run ends: it is disabled, fails
// (its circuit breaker included) or the Manager shuts down. From then on no
// run begins: a run that has not begun when Disable returns never does.
// A panic in fn is recovered and counted against the plugin's circuit
// breaker, like a handler's; a run that has not returned by
// Config.HookTimeout is counted as an overrun (and so is runtime.Goexit,
// which also ends the job). An error fn returns is logged and shown in
// the plugin's status (PluginStatus.Workers); the job goes on at the next
// period. As a plugin stops, the Manager waits for a run in progress as
// [Host.Go] describes.
//
// name identifies the job in logs and status, and across replicas for
// OncePerFleet: it must be non-empty and unique among the run's goroutines
// and jobs. Every returns an error, and runs nothing, for a bad name, an
// interval under [MinJobInterval], an unknown scope or a nil fn, and one
// wrapping [ErrPluginStopped] when the plugin is not starting or running.
// Every is safe for concurrent use; plugins usually call it from Init.
func (h *Host) Every(name string, interval time.Duration, scope JobScope, fn func(ctx context.Context) error) error {
	switch {
	case fn == nil:
		return fmt.Errorf("pluginhost: plugin %q: Every(%q): nil function", h.id, name)
	case interval < MinJobInterval:
		return fmt.Errorf("pluginhost: plugin %q: Every(%q): interval %s is under the minimum, %s", h.id, name, interval, MinJobInterval)
	case scope != EveryReplica && scope != OncePerFleet:
		return fmt.Errorf("pluginhost: plugin %q: Every(%q): unknown scope %q (want %q or %q)", h.id, name, scope, EveryReplica, OncePerFleet)
	}
	w := &bgWorker{name: name, kind: WorkerJob, scope: scope, interval: interval}
	ctx, err := h.addWorker(w, "Every")
	if err != nil {
		return err
	}
	go h.runJob(ctx, w, fn)
	return nil
}

// JobPeriod returns the number of the period that a run of a job of
// [Host.Every] runs for, from the context the run receives: period n
// begins at n×interval after the Unix epoch. It is the same on every
// replica, so that a OncePerFleet job can use it as an idempotency key.
// ok is false for any other context.
func JobPeriod(ctx context.Context) (n int64, ok bool) {
	n, ok = ctx.Value(jobPeriodKey{}).(int64)
	return n, ok
}

// jobPeriodKey is the context key of JobPeriod.
type jobPeriodKey struct{}

// periodOf returns the number of the period of interval that t falls in.
func periodOf(t time.Time, interval time.Duration) int64 {
	return t.UnixNano() / int64(interval)
}

// periodStart returns when period n of interval begins.
func periodStart(n int64, interval time.Duration) time.Time {
	return time.Unix(0, n*int64(interval))
}

// runJob is the goroutine of job w: it runs fn once per period until ctx,
// the run's context, is canceled.
func (h *Host) runJob(ctx context.Context, w *bgWorker, fn func(ctx context.Context) error) {
	defer close(w.done)
	last := int64(-1) << 62 // the last period handled
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Now()
		if n := periodOf(now, w.interval); n > last {
			last = n
			if h.claim(ctx, w, n) {
				h.runJobOnce(ctx, w, n, fn)
			}
		}
		next := periodStart(last+1, w.interval)
		h.work.update(w, func(w *bgWorker) { w.nextRun = next })
		timer.Reset(time.Until(next))
	}
}

// claim reports whether this Manager runs job w in period n: always for
// EveryReplica; for OncePerFleet, when it claims the period (see
// Host.Every).
func (h *Host) claim(ctx context.Context, w *bgWorker, n int64) bool {
	if w.scope != OncePerFleet {
		return true
	}
	ok, err := h.m.claimPeriod(ctx, h.id, w.name, n)
	if err != nil {
		if ctx.Err() == nil {
			h.logger.Warn("could not claim a period of a job: skipping it", "job", w.name, "period", n, "err", err)
			h.work.update(w, func(w *bgWorker) { w.lastErr = "claim period: " + err.Error() })
		}
		return false
	}
	return ok
}

// claimPeriod claims period n of job of plugin for this Manager, and
// reports whether it did: no Manager claimed it, or a later one, before.
func (m *Manager) claimPeriod(ctx context.Context, plugin, job string, n int64) (bool, error) {
	claimed := false
	err := inTx(ctx, m.db, func(tx *Tx) error {
		claimed = false
		if m.cfg.Dialect == Postgres {
			var locked bool
			key := plugin + "/" + strconv.FormatInt(n, 10) + "/" + job // a plugin id has no "/"
			if err := tx.QueryRowContext(ctx, `SELECT pg_try_advisory_xact_lock(hashtextextended('pluginhost.job.' || current_schema() || '.' || ?, 0))`, key).Scan(&locked); err != nil {
				return err
			}
			if !locked {
				return nil // another replica is claiming it
			}
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO `+jobsTable+` (plugin, job, period, ran_at, replica) VALUES (?, ?, ?, CURRENT_TIMESTAMP, ?)
ON CONFLICT (plugin, job) DO UPDATE SET period = excluded.period, ran_at = excluded.ran_at, replica = excluded.replica
WHERE `+jobsTable+`.period < excluded.period`, plugin, job, n, m.instance)
		if err != nil {
			return err
		}
		rows, err := res.RowsAffected()
		claimed = rows == 1
		return err
	})
	return claimed, err
}

// runJobOnce runs fn once for job w in period n, bounded by
// Config.HookTimeout. A call of runtime.Goexit in fn ends the job's
// goroutine.
func (h *Host) runJobOnce(ctx context.Context, w *bgWorker, n int64, fn func(ctx context.Context) error) {
	if !h.work.begin(w, time.Now()) {
		return // the run ended: the loop sees ctx canceled
	}
	where := "job " + w.name
	bound := h.m.cfg.HookTimeout
	rctx, cancel := context.WithTimeout(context.WithValue(ctx, jobPeriodKey{}, n), bound)
	defer cancel()
	overrun := fmt.Errorf("%s did not return within Config.HookTimeout (%s): %w", where, bound, context.DeadlineExceeded)
	watchdog := time.AfterFunc(bound, func() {
		if h.work.overran(w) {
			h.m.recordOverrun(h.id, where, overrun)
		}
	})
	var err error
	returned := false
	defer func() {
		if !watchdog.Stop() {
			err = overrun
		}
		if !returned {
			err = fmt.Errorf("%s %w", where, errGoexit)
			h.m.recordOverrun(h.id, where, err)
		}
		h.finish(ctx, w, err)
	}()
	err = h.m.contain(h.id, where, func() error { return fn(rctx) })
	returned = true
}
