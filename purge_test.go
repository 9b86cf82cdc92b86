package pluginhost_test

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// The plugin "jot-pad" of the removal tests: two declared tables (pages,
// and marks referencing it), a migration that creates a third (extra, with
// a text key), a SeedOnce hook that writes rows of every type, and two
// settings, one in each form of its namespace.
const jotManifest = `id = "jot-pad"
name = "Jot pad"
version = "1.0.0"

[[settings]]
key = "jot-pad.limit"
type = "number"
default = 10

[[settings]]
key = "jotPad.motto"
type = "string"
default = "hi"
`

var jotTables = []pluginhost.Table{
	{Name: "pages", Columns: []pluginhost.Column{
		{Name: "id", PrimaryKey: true},
		{Name: "title", NotNull: true},
		{Name: "done", Type: pluginhost.Boolean},
		{Name: "written_at"},
		{Name: "data", Type: pluginhost.Blob},
		{Name: "meta", Type: pluginhost.JSON},
		{Name: "score", Type: pluginhost.Real},
	}},
	{Name: "marks", Columns: []pluginhost.Column{
		{Name: "id", PrimaryKey: true},
		{Name: "page_id", Type: pluginhost.Integer, References: "pages.id"},
		{Name: "label"},
	}},
}

// jotPad returns the plugin; calls, when not nil, counts its SeedOnce
// calls.
func jotPad(calls *atomic.Int32) *seedOnceFake {
	return &seedOnceFake{
		fake: &fake{manifest: jotManifest, tables: jotTables, migrations: sqlFiles(map[string]string{
			"0001_extra.sql": `CREATE TABLE jot_pad__extra (k TEXT PRIMARY KEY, v INTEGER);
INSERT INTO jot_pad__extra (k, v) VALUES ('a', 1), ('B', 2);`,
		})},
		seedOnce: func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx) error {
			if calls != nil {
				calls.Add(1)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO `+tx.Table("pages")+` (title, done, written_at, data, meta, score) VALUES (?, ?, ?, ?, ?, ?)`,
				"x & <y>", true, time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), []byte{0, 1, 2, 255}, `{"b": 1, "a": [true, null]}`, 1.5)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO `+tx.Table("pages")+` (title) VALUES (?)`, "bare"); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO `+tx.Table("marks")+` (page_id, label) VALUES (?, ?)`, 1, "first")
			return err
		},
	}
}

// jotExport is what Export writes of jot-pad's rows, on both dialects.
const jotExport = `{"table":"pages","row":{"id":1,"title":"x & <y>","done":true,"written_at":"2024-05-01T10:00:00Z","data":"AAEC/w==","meta":{"a":[true,null],"b":1},"score":1.5}}
{"table":"pages","row":{"id":2,"title":"bare","done":null,"written_at":null,"data":null,"meta":null,"score":null}}
{"table":"marks","row":{"id":1,"page_id":1,"label":"first"}}
{"table":"extra","row":{"k":"B","v":2}}
{"table":"extra","row":{"k":"a","v":1}}
`

// leaveJotPad boots jot-pad with a setting changed and an operator's
// override (disabled), then boots again without it, with others, and
// returns the second Manager.
func leaveJotPad(t *testing.T, e *env, others ...pluginhost.Plugin) *pluginhost.Manager {
	t.Helper()
	ctx := context.Background()
	first, err := pluginhost.New(e.config(jotPad(nil)))
	require.NoError(t, err)
	require.NoError(t, first.Start(ctx))
	require.Equal(t, pluginhost.StateRunning, status(t, first, "jot-pad").State, status(t, first, "jot-pad").Reason)
	require.NoError(t, first.Settings().Set(ctx, "jot-pad.limit", 42))
	require.NoError(t, first.Disable(ctx, "jot-pad"))
	require.NoError(t, first.Shutdown(ctx))
	return e.start(e.config(others...))
}

// dbCount runs a count query on the env's database.
func dbCount(t *testing.T, e *env, query string) int {
	t.Helper()
	var n int
	require.NoError(t, e.db.QueryRowContext(context.Background(), query).Scan(&n), query)
	return n
}

// jotLeft returns what the database holds of jot-pad: the names of its
// relations (tables, views, indexes, sequences) in the catalog, its
// settings rows, ledger rows and override rows.
func jotLeft(t *testing.T, e *env) (relations []string, settings, ledger, overrides int) {
	t.Helper()
	query := `SELECT name FROM sqlite_master WHERE substr(name, 1, 9) = 'jot_pad__' ORDER BY name`
	if e.dialect == testdb.Postgres {
		query = `SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND left(relname, 9) = 'jot_pad__' ORDER BY relname`
	}
	rows, err := e.db.Query(query)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		relations = append(relations, name)
	}
	require.NoError(t, rows.Err())
	settings = dbCount(t, e, `SELECT count(*) FROM pluginhost_settings WHERE key LIKE 'jot-pad.%' OR key LIKE 'jotPad.%'`)
	ledger = dbCount(t, e, `SELECT count(*) FROM pluginhost_ledger WHERE line = 'jot-pad'`)
	overrides = dbCount(t, e, `SELECT count(*) FROM pluginhost_plugins WHERE id = 'jot-pad'`)
	return relations, settings, ledger, overrides
}

// ledgerVersions returns the versions of jot-pad's ledger rows, sorted.
func ledgerVersions(t *testing.T, e *env) []string {
	t.Helper()
	rows, err := e.db.Query(`SELECT version FROM pluginhost_ledger WHERE line = 'jot-pad'`)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		require.NoError(t, rows.Scan(&v))
		out = append(out, v)
	}
	require.NoError(t, rows.Err())
	slices.Sort(out)
	return out
}

// A plugin the database records but that is no longer registered is
// listed as removed, with its tables, stored settings and ledger rows; it
// is served nothing and cannot be enabled.
func TestRemovedPluginIsListedWithWhatItLeft(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		keeper := &fake{manifest: manifest("keeper", "1.0.0")}
		m := leaveJotPad(t, e, keeper)
		all := m.Status()
		require.Len(t, all, 2)
		require.Equal(t, []string{"jot-pad", "keeper"}, []string{all[0].ID, all[1].ID}, "sorted by id")
		st := all[0]
		require.Equal(t, pluginhost.StateRemoved, st.State)
		require.Contains(t, st.Reason, "not registered")
		require.Equal(t, []string{"extra", "marks", "pages"}, st.Tables)
		require.Equal(t, []string{"jot-pad.limit", "jotPad.motto"}, st.SettingKeys)
		versions := ledgerVersions(t, e)
		require.Subset(t, versions, []string{"0001_extra", "table:marks", "table:pages"})
		require.Equal(t, versions, st.LedgerRows)
		require.Empty(t, st.Sandbox)

		data, err := json.Marshal(st)
		require.NoError(t, err)
		require.Contains(t, string(data), `"state":"removed"`)
		require.Contains(t, string(data), `"tables":["extra","marks","pages"]`)
		require.Contains(t, string(data), `"setting_keys":["jot-pad.limit","jotPad.motto"]`)
		require.Contains(t, string(data), `"ledger_rows":[`)
		require.NotContains(t, status(t, m, "keeper").Tables, "extra", "a registered plugin lists no leftovers")

		require.ErrorIs(t, m.Enable(context.Background(), "jot-pad"), pluginhost.ErrNotFound)
		require.Equal(t, 404, serve(t, m.Handler(), "GET", "/jot-pad/", "").Code)
		require.Contains(t, e.logs.String(), "plugin removed")
		require.Equal(t, pluginhost.StateRunning, status(t, m, "keeper").State, "the health of the others is not affected")
		for _, ph := range m.Health(context.Background()).Plugins {
			require.NotEqual(t, "jot-pad", ph.ID, "a removed plugin has no health")
		}
	})
}

// Export writes the rows of every table of a plugin as JSON lines, typed
// the same on both dialects, in creation and primary key order, for a
// running plugin and for a removed one.
func TestExportWritesEveryRowTheSameOnBothDialects(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		running := e.start(e.config(jotPad(nil)))
		var out bytes.Buffer
		require.NoError(t, running.Export(ctx, "jot-pad", &out))
		require.Equal(t, jotExport, out.String())
		require.NoError(t, running.Shutdown(ctx))

		m := e.start(e.config())
		require.Equal(t, pluginhost.StateRemoved, status(t, m, "jot-pad").State)
		out.Reset()
		require.NoError(t, m.Export(ctx, "jot-pad", &out))
		require.Equal(t, jotExport, out.String(), "a removed plugin exports the same")
		for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
			var obj struct {
				Table string         `json:"table"`
				Row   map[string]any `json:"row"`
			}
			require.NoError(t, json.Unmarshal([]byte(line), &obj), line)
			require.NotEmpty(t, obj.Table)
			require.NotEmpty(t, obj.Row)
		}

		out.Reset()
		require.ErrorIs(t, m.Export(ctx, "ghost", &out), pluginhost.ErrNotFound)
		require.ErrorIs(t, m.Export(ctx, "Not An Id", &out), pluginhost.ErrNotFound)
		require.Empty(t, out.String())
	})
}

// Purge removes a removed plugin's tables, settings, override and ledger
// rows; the status no longer lists it, and the next boot is clean.
func TestPurgeRemovesEverythingOfARemovedPlugin(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		m := leaveJotPad(t, e)
		rels, settings, ledger, overrides := jotLeft(t, e)
		require.Subset(t, rels, []string{"jot_pad__pages", "jot_pad__marks", "jot_pad__extra"})
		require.Equal(t, 2, settings)
		require.Positive(t, ledger)
		require.Equal(t, 1, overrides)
		// A OncePerFleet job's claim, as a run of it would leave.
		_, err := e.db.ExecContext(ctx, `INSERT INTO pluginhost_jobs (plugin, job, period) VALUES ('jot-pad', 'prune', 7), ('other', 'prune', 7)`)
		require.NoError(t, err)

		require.NoError(t, m.Purge(ctx, "jot-pad"))
		require.Zero(t, dbCount(t, e, `SELECT count(*) FROM pluginhost_jobs WHERE plugin = 'jot-pad'`), "its jobs' claims are gone")
		require.Equal(t, 1, dbCount(t, e, `SELECT count(*) FROM pluginhost_jobs`), "another plugin's stay")
		rels, settings, ledger, overrides = jotLeft(t, e)
		require.Empty(t, rels, "tables, indexes and sequences are gone")
		require.Zero(t, settings)
		require.Zero(t, ledger)
		require.Zero(t, overrides)
		require.Empty(t, m.Status())
		require.ErrorIs(t, m.Purge(ctx, "jot-pad"), pluginhost.ErrNotFound, "nothing is left")
		require.ErrorIs(t, m.Purge(ctx, "ghost"), pluginhost.ErrNotFound)
		require.ErrorIs(t, m.Export(ctx, "jot-pad", &bytes.Buffer{}), pluginhost.ErrNotFound)
		if e.dialect == testdb.Postgres {
			var exists, usage bool
			require.NoError(t, e.db.QueryRow(`SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pluginhost_jot_pad'),
				has_schema_privilege('pluginhost_jot_pad', current_schema(), 'USAGE')`).Scan(&exists, &usage))
			require.True(t, exists, "the role stays: it belongs to the cluster")
			require.False(t, usage, "its privileges in the schema are revoked")
		}
		require.NoError(t, m.Shutdown(ctx))

		again := e.start(e.config())
		require.Empty(t, again.Status(), "the next boot is clean")
	})
}

// Purge is refused while the plugin runs, and while another registered
// plugin declares a read grant on it; it changes nothing then.
func TestPurgeRefusedWhileRunningOrRead(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		m := e.start(e.config(jotPad(nil)))
		err := m.Purge(ctx, "jot-pad")
		require.ErrorIs(t, err, pluginhost.ErrNotPurgeable)
		require.Contains(t, err.Error(), `plugin "jot-pad" is running: disable it first`)
		rels, settings, ledger, _ := jotLeft(t, e)
		require.NotEmpty(t, rels)
		require.Equal(t, 2, settings)
		require.Positive(t, ledger)
		require.NoError(t, m.Shutdown(ctx))

		var h *pluginhost.Host
		shelf, reader := readsPlugins(&h, "[[reads]]", `plugin = "shelf"`, `tables = ["books"]`)
		m = e.start(e.config(shelf, reader))
		require.NoError(t, m.Disable(ctx, "shelf"))
		require.Equal(t, pluginhost.StateDisabled, status(t, m, "reader").State, "disabled with its dependency")
		err = m.Purge(ctx, "shelf")
		require.ErrorIs(t, err, pluginhost.ErrNotPurgeable)
		require.Contains(t, err.Error(), `plugin "reader" declares a [[reads]] grant`)
		require.Equal(t, 1, dbCount(t, e, `SELECT count(*) FROM shelf__books`), "nothing was dropped")
	})
}

// A purge that fails half-way (a host table references one of the
// plugin's, so that it cannot be dropped) leaves everything as it was.
func TestPurgeFailingHalfWayLeavesEverything(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		m := leaveJotPad(t, e)
		_, err := e.db.Exec(`CREATE TABLE host_refs (page_id INTEGER REFERENCES jot_pad__pages (id))`)
		require.NoError(t, err)
		_, err = e.db.Exec(`INSERT INTO host_refs (page_id) VALUES (1)`)
		require.NoError(t, err)
		relsBefore, settingsBefore, ledgerBefore, overridesBefore := jotLeft(t, e)

		err = m.Purge(ctx, "jot-pad")
		require.Error(t, err)
		require.Contains(t, err.Error(), `purge plugin "jot-pad"`)
		require.Regexp(t, `reference one of its tables|other objects depend on them`, err.Error())
		rels, settings, ledger, overrides := jotLeft(t, e)
		require.Equal(t, relsBefore, rels)
		require.Equal(t, settingsBefore, settings)
		require.Equal(t, ledgerBefore, ledger)
		require.Equal(t, overridesBefore, overrides)
		require.Equal(t, 2, dbCount(t, e, `SELECT count(*) FROM jot_pad__pages`))
		require.Equal(t, 2, dbCount(t, e, `SELECT count(*) FROM jot_pad__extra`))
		require.Equal(t, pluginhost.StateRemoved, status(t, m, "jot-pad").State)

		_, err = e.db.Exec(`DROP TABLE host_refs`)
		require.NoError(t, err)
		require.NoError(t, m.Purge(ctx, "jot-pad"))
		rels, _, _, _ = jotLeft(t, e)
		require.Empty(t, rels)
	})
}

// A registered plugin that is disabled can be purged: it stays disabled,
// its override kept, and enabled again it starts afresh: its tables
// created, its migration and SeedOnce hook run again, its settings back
// to their defaults.
func TestPurgeDisabledPluginComesBackFresh(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		var calls atomic.Int32
		m := e.start(e.config(jotPad(&calls)))
		require.NoError(t, m.Settings().Set(ctx, "jot-pad.limit", 42))
		_, err := e.db.Exec(`DELETE FROM jot_pad__extra`)
		require.NoError(t, err)
		require.NoError(t, m.Disable(ctx, "jot-pad"))

		require.NoError(t, m.Purge(ctx, "jot-pad"))
		rels, settings, ledger, overrides := jotLeft(t, e)
		require.Empty(t, rels)
		require.Zero(t, settings)
		require.Zero(t, ledger)
		require.Equal(t, 1, overrides, "the override is kept: the plugin stays disabled")
		st := status(t, m, "jot-pad")
		require.Equal(t, pluginhost.StateDisabled, st.State)
		limit, err := m.Settings().Number("jot-pad.limit")
		require.NoError(t, err)
		require.Equal(t, 10.0, limit, "the stored value is gone: the default again")

		require.NoError(t, m.Enable(ctx, "jot-pad"))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "jot-pad").State)
		require.Equal(t, int32(2), calls.Load(), "the SeedOnce hook ran again")
		require.Equal(t, 2, dbCount(t, e, `SELECT count(*) FROM jot_pad__pages`))
		require.Equal(t, 2, dbCount(t, e, `SELECT count(*) FROM jot_pad__extra`), "the migration ran again")
		var out bytes.Buffer
		require.NoError(t, m.Export(ctx, "jot-pad", &out))
		require.Equal(t, jotExport, out.String())
		limit, err = m.Settings().Number("jot-pad.limit")
		require.NoError(t, err)
		require.Equal(t, 10.0, limit)
	})
}

// Purge takes the migration lock: while another session holds it, as a
// replica doing its schema work would, Purge waits and, past its context,
// fails having changed nothing. (PostgreSQL only: on SQLite the schema
// work's lock is the database's write lock, which the purge's transaction
// takes as a plugin's schema transaction does.)
func TestPurgeWaitsForTheMigrationLock(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testdb.Postgres)
	m := leaveJotPad(t, e)
	ctx := context.Background()
	conn, err := e.db.Conn(ctx)
	require.NoError(t, err)
	defer conn.Close()
	_, err = conn.ExecContext(ctx, `SELECT pg_advisory_lock(hashtextextended('pluginhost.migrations.' || current_schema(), 0))`)
	require.NoError(t, err)
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, m.Purge(short, "jot-pad"), context.DeadlineExceeded)
	rels, _, ledger, _ := jotLeft(t, e)
	require.NotEmpty(t, rels)
	require.Positive(t, ledger)
	_, err = conn.ExecContext(ctx, `SELECT pg_advisory_unlock_all()`)
	require.NoError(t, err)
	require.NoError(t, m.Purge(ctx, "jot-pad"))
	rels, _, _, _ = jotLeft(t, e)
	require.Empty(t, rels)
}

// A warm boot whose database records a removed plugin reads one statement
// more than the same boot once it is purged: the stored setting keys (the
// ledger and the catalog are read anyway).
func TestWarmBootWithARemovedPluginCostsOneQuery(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		keeper := func() pluginhost.Plugin {
			return &fake{manifest: manifest("keeper", "1.0.0"), tables: []pluginhost.Table{{Name: "things", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}}}}}
		}
		cold := e.start(e.config(jotPad(nil), keeper()))
		require.NoError(t, cold.Shutdown(ctx))
		boot := func() (*pluginhost.Manager, []string) {
			db, rec := testdb.OpenCounting(t, e.dialect, e.dsn)
			m := e.start(pluginhost.Config{DB: db, Dialect: pluginhost.Dialect(e.dialect), Registry: registry(t, keeper()), Logger: discardLogger()})
			return m, rec.Statements()
		}
		m, withRemoved := boot()
		require.Equal(t, pluginhost.StateRemoved, status(t, m, "jot-pad").State)
		require.NoError(t, m.Purge(ctx, "jot-pad"))
		require.NoError(t, m.Shutdown(ctx))
		_, clean := boot()
		require.Len(t, withRemoved, len(clean)+1, "with a removed plugin: %q\nwithout: %q", withRemoved, clean)
		require.Contains(t, withRemoved, `SELECT key FROM pluginhost_settings`)
		require.NotContains(t, clean, `SELECT key FROM pluginhost_settings`)
	})
}
