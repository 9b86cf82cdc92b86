package pluginhosttest_test

import (
	"bytes"
	"context"
	"database/sql"
	"io"
	iofs "io/fs"
	"net/http"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/go-chi/chi/v5"
	_ "github.com/mattn/go-sqlite3"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/pluginhosttest"
)

// hits counts the rows of the counter's table through the plugin's own
// Host.
func hits(t *testing.T, inst *pluginhosttest.Instance, id string) int {
	t.Helper()
	db := inst.Host(t, id).DB()
	var n int
	require.NoError(t, db.QueryRowContext(t.Context(), `SELECT count(*) FROM `+db.Table("hits")).Scan(&n))
	return n
}

func TestHostReachesThePluginsTables(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		inst := pluginhosttest.Start(t, opts, &counter{id: "counter"})
		inst.Do(t, "POST", "/api/plugin/counter/hit", nil)
		h := inst.Host(t, "counter")
		require.Equal(t, "counter", h.ID())
		require.Equal(t, "counter__hits", h.DB().Table("hits"))
		require.Equal(t, 1, hits(t, inst, "counter"))
		// The test writes where the plugin reads.
		_, err := h.DB().ExecContext(t.Context(), `INSERT INTO `+h.DB().Table("hits")+` DEFAULT VALUES`)
		require.NoError(t, err)
		var body struct{ Hits int }
		inst.Do(t, "POST", "/api/plugin/counter/hit", nil).JSON(t, &body)
		require.Equal(t, 3, body.Hits)
	})
}

func TestHostOfAPluginWithoutOne(t *testing.T) {
	t.Parallel()
	inst := pluginhosttest.Start(t, pluginhosttest.Options{Config: pluginhost.Config{Disabled: []string{"off"}}},
		&counter{id: "counter"}, &counter{id: "off"})
	_, err := inst.Manager.Host("nope")
	require.ErrorIs(t, err, pluginhost.ErrNotFound)
	require.ErrorContains(t, err, `plugin "nope" is not registered`)
	_, err = inst.Manager.Host("off")
	require.ErrorIs(t, err, pluginhost.ErrNotFound)
	require.ErrorContains(t, err, `plugin "off" has no Host: it is disabled`)
}

// A database the test opened itself: an SQLite file here. Start uses it
// as is and leaves it open.
func TestBringYourOwnDB(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "own.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000&_foreign_keys=1&_journal_mode=WAL")
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })

	t.Run("first", func(t *testing.T) {
		inst := pluginhosttest.Start(t, pluginhosttest.Options{Config: pluginhost.Config{DB: db}}, &counter{id: "counter"})
		require.Same(t, db, inst.DB)
		inst.Do(t, "POST", "/api/plugin/counter/hit", nil)
	})
	require.NoError(t, db.Ping(), "the test's database stays open")
	var n int
	require.NoError(t, db.QueryRow(`SELECT count(*) FROM counter__hits`).Scan(&n))
	require.Equal(t, 1, n)

	t.Run("again", func(t *testing.T) {
		inst := pluginhosttest.Start(t, pluginhosttest.Options{Config: pluginhost.Config{DB: db}}, &counter{id: "counter"})
		var body struct{ Hits int }
		inst.Do(t, "POST", "/api/plugin/counter/hit", nil).JSON(t, &body)
		require.Equal(t, 2, body.Hits, "the same database")
	})
}

// counterV2 is the next version of counter: a migration adds a column to
// the table version 1 created, and a route reads it.
type counterV2 struct{ counter }

func (c *counterV2) Manifest() []byte {
	return []byte("id = \"" + c.id + "\"\nname = \"Counter\"\nversion = \"1.1.0\"\n")
}

func (c *counterV2) Migrations() iofs.FS {
	sql := `ALTER TABLE ` + c.id + `__hits ADD COLUMN source TEXT NOT NULL DEFAULT 'v1'`
	return fstest.MapFS{
		"sqlite/0001_source.sql":   {Data: []byte(sql)},
		"postgres/0001_source.sql": {Data: []byte(sql)},
	}
}

func (c *counterV2) RegisterRoutes(r chi.Router, h *pluginhost.Host) {
	c.counter.RegisterRoutes(r, h)
	r.Get("/sources", func(w http.ResponseWriter, r *http.Request) {
		var n int
		_ = h.DB().QueryRowContext(r.Context(), `SELECT count(*) FROM `+h.DB().Table("hits")+` WHERE source = 'v1'`).Scan(&n)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"v1":` + strconv.Itoa(n) + `}`))
	})
}

func TestRestartWithANewVersionUpgradesThePlugin(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		inst := pluginhosttest.Start(t, opts, &counter{id: "counter"})
		inst.Do(t, "POST", "/api/plugin/counter/hit", nil)
		inst.Do(t, "POST", "/api/plugin/counter/hit", nil)
		require.Equal(t, http.StatusNotFound, inst.Do(t, "GET", "/api/plugin/counter/sources", nil).Status)

		inst.Restart(t, &counterV2{counter{id: "counter"}})
		require.Equal(t, "1.1.0", inst.Manager.Status()[0].Version)
		var body struct{ V1 int }
		inst.Do(t, "GET", "/api/plugin/counter/sources", nil).JSON(t, &body)
		require.Equal(t, 2, body.V1, "the migration ran on the rows version 1 wrote")

		inst.Restart(t) // the new set stays
		require.Equal(t, "1.1.0", inst.Manager.Status()[0].Version)
		require.Equal(t, 2, hits(t, inst, "counter"))

		inst.Restart(t, &counter{id: "other"}) // counter removed
		require.Equal(t, http.StatusNotFound, inst.Do(t, "GET", "/api/plugin/counter/sources", nil).Status)
		require.Equal(t, 0, hits(t, inst, "other"))
	})
}

func TestEachDatabaseOnOneDialect(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var ran []string
	record := func(t *testing.T, opts pluginhosttest.Options) {
		mu.Lock()
		defer mu.Unlock()
		d := "sqlite"
		if opts.PostgresURL != "" {
			d = "postgres"
		}
		ran = append(ran, t.Name()+" on "+d)
	}
	pluginhosttest.EachDatabase(t, record, pluginhost.SQLite)
	require.Equal(t, []string{"TestEachDatabaseOnOneDialect/sqlite on sqlite"}, ran)

	ran = nil
	pluginhosttest.EachDatabase(t, record, pluginhost.Postgres)
	for _, r := range ran {
		require.Equal(t, "TestEachDatabaseOnOneDialect/postgres on postgres", r, "only PostgreSQL, when it is configured")
	}
	require.LessOrEqual(t, len(ran), 1)
}

// outputTB is a test whose output the test reads.
type outputTB struct {
	testing.TB
	out *lines
}

func (o outputTB) Output() io.Writer { return o.out }

type lines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// logger logs from its Init, with its Host's logger.
type logger struct{ line int }

func (*logger) Manifest() []byte {
	return []byte("id = \"logger\"\nname = \"Logger\"\nversion = \"1.0.0\"\n")
}

func (l *logger) Init(ctx context.Context, h *pluginhost.Host) error {
	_, _, l.line, _ = runtime.Caller(0)
	h.Logger().Info("hello from Init", "n", 1)
	return nil
}

// The Manager's log lines are located where they were logged: the plugin's
// line for its own, the library's for the library's, never this package.
func TestLogLinesAreLocatedAtTheirCaller(t *testing.T) {
	t.Parallel()
	tb := outputTB{TB: t, out: &lines{}}
	p := &logger{}
	pluginhosttest.Start(tb, pluginhosttest.Options{}, p)
	out := tb.out.String()
	t.Log(out)
	want := "kit_test.go:" + strconv.Itoa(p.line+1) + `: level=INFO msg="hello from Init" plugin=logger n=1` + "\n"
	require.Contains(t, out, want)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	require.Greater(t, len(lines), 2)
	for _, line := range lines {
		require.NotContains(t, line, "pluginhosttest.go", "located in the kit")
		require.NotContains(t, line, "time=")
		file, _, ok := strings.Cut(line, ": level=")
		require.True(t, ok, "line %q starts with file:line", line)
		require.Regexp(t, `^[a-z_]+\.go:[0-9]+$`, file)
	}
	require.Contains(t, out, `level=INFO msg="pluginhost started"`)
}
