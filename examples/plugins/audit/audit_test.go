package audit_test

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/examples/plugins/audit"
	"github.com/pluginhost/pluginhost/examples/plugins/notes"
	"github.com/pluginhost/pluginhost/pluginhosttest"
)

func TestAuditRecordsCreatedNotes(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		inst := pluginhosttest.Start(t, opts, notes.New(), audit.New())

		var events []audit.Event
		inst.Do(t, "GET", "/api/plugin/audit/events", nil).JSON(t, &events)
		require.Empty(t, events, "the seeded note is written before audit subscribes")

		var n notes.Note
		inst.Do(t, "POST", "/api/plugin/notes/notes", map[string]string{"title": "hello"}).JSON(t, &n)
		inst.Do(t, "GET", "/api/plugin/audit/events", nil).JSON(t, &events)
		require.Len(t, events, 1)
		require.Equal(t, "note.created", events[0].Kind)
		require.Equal(t, "note/"+itoa(n.ID), events[0].Subject)
		require.JSONEq(t, `{"title":"hello"}`, string(events[0].Detail))
	})
}

// audit reads notes' table and setting through its declared grant; the
// grant is read-only, and notes' other tables and the host's stay out of
// reach.
func TestAuditReadsNotesThroughItsGrant(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		inst := pluginhosttest.Start(t, opts, notes.New(), audit.New())
		var before audit.Summary
		inst.Do(t, "GET", "/api/plugin/audit/summary", nil).JSON(t, &before)
		inst.Do(t, "POST", "/api/plugin/notes/notes", map[string]string{"title": "hello"})
		var after audit.Summary
		inst.Do(t, "GET", "/api/plugin/audit/summary", nil).JSON(t, &after)
		require.Equal(t, before.Notes+1, after.Notes)
		require.Equal(t, before.Events+1, after.Events)
		require.Equal(t, int64(10000), after.MaxBodyLength)

		db := inst.Host(t, "audit").DB()
		_, err := db.ExecContext(t.Context(), `DELETE FROM `+db.TableOf("notes", "notes"))
		var se *pluginhost.SandboxError
		require.ErrorAs(t, err, &se, "the grant is read-only")
		require.Equal(t, "audit", se.Plugin)
		require.Contains(t, se.Object, "notes__notes")
		_, err = db.ExecContext(t.Context(), `SELECT count(*) FROM pluginhost_settings`)
		require.ErrorIs(t, err, pluginhost.ErrSandbox)
		for _, st := range inst.Manager.Status() {
			require.NotContains(t, st.Sandbox, "off", st.ID)
		}
	})
}

func TestAuditNeedsNotes(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		opts.AllowFailures = true
		inst := pluginhosttest.Start(t, opts, audit.New())
		st := inst.Manager.Status()
		require.Len(t, st, 1)
		require.Equal(t, pluginhost.StateFailed, st[0].State)
		require.Contains(t, st[0].Reason, `dependency "notes" is not registered`)
		require.Equal(t, http.StatusServiceUnavailable, inst.Do(t, "GET", "/api/plugin/audit/events", nil).Status)
	})
}

func TestAuditWebhookSecretIsSealed(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		opts.Config.SecretKey = bytes.Repeat([]byte{7}, 32)
		inst := pluginhosttest.Start(t, opts, notes.New(), audit.New())
		require.Contains(t, inst.Manager.Status()[0].MissingSettings, "audit.webhook_secret")

		s := inst.Manager.Settings()
		require.NoError(t, s.Set(t.Context(), "audit.webhook_secret", "hunter2"))
		got, err := s.String("audit.webhook_secret")
		require.NoError(t, err)
		require.Equal(t, "hunter2", got)

		var stored string
		require.NoError(t, inst.DB.QueryRow(`SELECT value FROM pluginhost_settings WHERE key = 'audit.webhook_secret'`).Scan(&stored))
		require.NotContains(t, stored, "hunter2")
		require.True(t, strings.HasPrefix(stored, "gcm1:"))

		inst.Restart(t)
		got, err = inst.Manager.Settings().String("audit.webhook_secret")
		require.NoError(t, err)
		require.Equal(t, "hunter2", got)
		require.Empty(t, inst.Manager.Status()[0].MissingSettings)
	})
}

// The prune job, once per period across the fleet, deletes the events
// older than audit.retention_days and keeps the others.
func TestAuditPrunesOldEvents(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		opts.Config.PluginConfig = map[string]map[string]any{"audit": {"prune_interval": "50ms"}}
		inst := pluginhosttest.Start(t, opts, notes.New(), audit.New())
		require.NoError(t, inst.Manager.Settings().Set(t.Context(), "audit.retention_days", 30))

		db := inst.Host(t, "audit").DB()
		insert := `INSERT INTO ` + db.Table("events") + ` (kind, subject, created_at) VALUES (?, ?, ?)`
		_, err := db.ExecContext(t.Context(), insert, "old", "note/1", time.Now().AddDate(0, 0, -31).UTC())
		require.NoError(t, err)
		_, err = db.ExecContext(t.Context(), insert, "recent", "note/2", time.Now().AddDate(0, 0, -29).UTC())
		require.NoError(t, err)
		inst.Do(t, "POST", "/api/plugin/notes/notes", map[string]string{"title": "now"})

		// Two runs that begin after the inserts: the second began after the
		// first finished.
		runs := prune(t, inst).Runs
		require.Eventually(t, func() bool { w := prune(t, inst); return w.Runs >= runs+2 }, 30*time.Second, 5*time.Millisecond)
		w := prune(t, inst)
		require.Equal(t, pluginhost.OncePerFleet, w.Scope)
		require.Equal(t, 50*time.Millisecond, w.Interval)
		require.Zero(t, w.Failures, w.LastError)

		var events []audit.Event
		inst.Do(t, "GET", "/api/plugin/audit/events", nil).JSON(t, &events)
		var kinds []string
		for _, e := range events {
			kinds = append(kinds, e.Kind)
		}
		require.ElementsMatch(t, []string{"recent", "note.created"}, kinds, "the 31-day-old event is pruned")

		var claimed int
		require.NoError(t, inst.DB.QueryRow(`SELECT count(*) FROM pluginhost_jobs WHERE plugin = 'audit' AND job = '`+audit.PruneJob+`'`).Scan(&claimed))
		require.Equal(t, 1, claimed, "the fleet-once job claims its periods in the library's table")
	})
}

// prune returns the status of audit's prune job.
func prune(t *testing.T, inst *pluginhosttest.Instance) pluginhost.WorkerStatus {
	t.Helper()
	for _, st := range inst.Manager.Status() {
		for _, w := range st.Workers {
			if st.ID == "audit" && w.Name == audit.PruneJob {
				return w
			}
		}
	}
	t.Fatal("audit has no prune job")
	return pluginhost.WorkerStatus{}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
