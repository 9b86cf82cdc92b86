package pluginhost_test

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// followBound is how long a replica may take to follow a change before a
// test declares it stale.
const followBound = 10 * time.Second

// stateWatch is a plugin of a replica that signals every built-in plugin
// state event the replica publishes, so that a test can wait for a state
// instead of polling Status.
type stateWatch struct {
	*fake
	changed chan struct{}
}

func newStateWatch() *stateWatch {
	w := &stateWatch{fake: &fake{manifest: manifest("watch", "1.0.0")}, changed: make(chan struct{}, 1)}
	w.init = func(_ context.Context, h *pluginhost.Host) error {
		signal := func() {
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
		pluginhost.Subscribe(h, func(context.Context, pluginhost.PluginDisabled) error { signal(); return nil })
		pluginhost.Subscribe(h, func(context.Context, pluginhost.PluginEnabled) error { signal(); return nil })
		pluginhost.Subscribe(h, func(context.Context, pluginhost.PluginStarted) error { signal(); return nil })
		pluginhost.Subscribe(h, func(context.Context, pluginhost.PluginFailed) error { signal(); return nil })
		return nil
	}
	return w
}

// await waits, without polling, until plugin id of m is in state want.
func (w *stateWatch) await(t testing.TB, m *pluginhost.Manager, id string, want pluginhost.State) {
	t.Helper()
	deadline := time.After(followBound)
	for {
		st := status(t, m, id)
		if st.State == want {
			return
		}
		select {
		case <-w.changed:
		case <-deadline:
			t.Fatalf("plugin %s is still %s (%s), want %s", id, st.State, st.Reason, want)
		}
	}
}

// followPlugins are the plugins of the replicas in the tests below: a
// setting, a plugin with a route, and the watch.
func followPlugins(w *stateWatch) []pluginhost.Plugin {
	notes := &fake{
		manifest: manifest("notes", "1.0.0", "[[settings]]", `key = "notes.max"`, `type = "number"`, `default = 1`),
		routes: func(r chi.Router, _ *pluginhost.Host) {
			r.Get("/hello", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("hello")) })
		},
	}
	return []pluginhost.Plugin{notes, w}
}

// startReplica starts a Manager on db with followPlugins and returns it
// with its watch.
func startReplica(t *testing.T, db *sql.DB, d testdb.Dialect, logger *slog.Logger) (*pluginhost.Manager, *stateWatch) {
	t.Helper()
	if logger == nil {
		logger = discardLogger()
	}
	w := newStateWatch()
	m, err := pluginhost.New(pluginhost.Config{DB: db, Dialect: d, Registry: registry(t, followPlugins(w)...), Logger: logger})
	require.NoError(t, err)
	require.NoError(t, m.Start(context.Background()))
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	return m, w
}

func TestChangeDuringStartIsFollowed(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		b, _ := startReplica(t, e.db, e.dialect, nil)
		poolA := e.db // SQLite: Managers of one process follow each other on one pool
		if e.dialect == testdb.Postgres {
			poolA = testdb.OpenAgain(t, e.dialect, e.dsn)
		}
		// A's Start waits in the Init of a plugin while another replica
		// disables notes, until A has heard of it.
		inInit, release := make(chan struct{}), make(chan struct{})
		gate := &fake{manifest: manifest("gate", "1.0.0"), init: func(ctx context.Context, _ *pluginhost.Host) error {
			close(inInit)
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
		heard := newLogCount("change announced by another manager")
		w := newStateWatch()
		a, err := pluginhost.New(pluginhost.Config{DB: poolA, Registry: registry(t, append(followPlugins(w), gate)...), Logger: slog.New(heard)})
		require.NoError(t, err)
		t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
		started := make(chan error, 1)
		go func() { started <- a.Start(context.Background()) }()
		<-inInit
		require.NoError(t, b.Disable(context.Background(), "notes"))
		heard.await(t, 1)
		close(release)
		require.NoError(t, <-started)
		w.await(t, a, "notes", pluginhost.StateDisabled)
	})
}

func TestFailedFollowIsRetried(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		dsn := e.dsn
		if e.dialect == testdb.SQLite {
			// Managers of one process with pools of their own follow each
			// other through a database file.
			dsn = "file:" + filepath.Join(t.TempDir(), "replicas.db") + "?_busy_timeout=10000&_foreign_keys=1&_journal_mode=WAL"
		}
		poolA, faults := testdb.OpenFaulty(t, e.dialect, dsn)
		a, watchA := startReplica(t, poolA, e.dialect, nil)
		b, _ := startReplica(t, testdb.OpenAgain(t, e.dialect, dsn), e.dialect, nil)
		ctx := context.Background()

		// A's reads of what other replicas change fail, three times each.
		faults.Fail("FROM pluginhost_settings", 3, errTest)
		faults.Fail("FROM pluginhost_plugins", 3, errTest)
		require.NoError(t, b.Settings().Set(ctx, "notes.max", 9))
		require.NoError(t, b.Disable(ctx, "notes"))

		waitSetting(t, a, "notes.max", 9)
		watchA.await(t, a, "notes", pluginhost.StateDisabled)
		require.Equal(t, 6, faults.Failed(), "every injected failure happened, and was retried")
	})
}

// logCount counts a Manager's log records with one message.
type logCount struct {
	msg     string
	n       atomic.Int32
	changed chan struct{}
}

func newLogCount(msg string) *logCount { return &logCount{msg: msg, changed: make(chan struct{}, 1)} }

func (w *logCount) Enabled(context.Context, slog.Level) bool { return true }

func (w *logCount) Handle(_ context.Context, r slog.Record) error {
	if r.Message == w.msg {
		w.n.Add(1)
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
	return nil
}

func (w *logCount) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *logCount) WithGroup(string) slog.Handler      { return w }

// await waits until the message was logged n times.
func (w *logCount) await(t testing.TB, n int32) {
	t.Helper()
	deadline := time.After(followBound)
	for w.n.Load() < n {
		select {
		case <-w.changed:
		case <-deadline:
			t.Fatalf("%q logged %d times, want %d", w.msg, w.n.Load(), n)
		}
	}
}
