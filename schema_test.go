package pluginhost_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/sqlgen"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// sqlFiles builds a migrations file system: name → SQL, placed in the
// folders of both dialects ("sqlite/0001_x.sql", "postgres/0001_x.sql"),
// unless the name already starts with one of them.
func sqlFiles(m map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, body := range m {
		if strings.HasPrefix(name, "sqlite/") || strings.HasPrefix(name, "postgres/") {
			fsys[name] = &fstest.MapFile{Data: []byte(body)}
			continue
		}
		fsys["sqlite/"+name] = &fstest.MapFile{Data: []byte(body)}
		fsys["postgres/"+name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fsys
}

func checksum(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// bind rewrites "?" placeholders for the env's dialect.
func (e *env) bind(q string) string { return sqlgen.Rebind(sqlgen.Dialect(e.dialect), q) }

// exec runs a statement with "?" placeholders on the env's database.
func (e *env) exec(q string, args ...any) {
	e.t.Helper()
	_, err := e.db.ExecContext(context.Background(), e.bind(q), args...)
	require.NoError(e.t, err, q)
}

// count runs a query returning one integer.
func (e *env) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	require.NoError(e.t, e.db.QueryRowContext(context.Background(), e.bind(q), args...).Scan(&n), q)
	return n
}

// hasTable reports whether a table exists in the test's database.
func (e *env) hasTable(name string) bool {
	e.t.Helper()
	q := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`
	if e.dialect == testdb.Postgres {
		q = `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = ?`
	}
	return e.count(q, name) > 0
}

// tablesLike lists the tables whose names start with prefix.
func (e *env) tablesLike(prefix string) []string {
	e.t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND substr(name, 1, length(?)) = ? ORDER BY name`
	if e.dialect == testdb.Postgres {
		q = `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND substr(tablename, 1, length(?)) = ? ORDER BY tablename`
	}
	return e.strings(q, prefix, prefix)
}

// strings runs a query returning one text column.
func (e *env) strings(q string, args ...any) []string {
	e.t.Helper()
	rows, err := e.db.QueryContext(context.Background(), e.bind(q), args...)
	require.NoError(e.t, err, q)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(e.t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(e.t, rows.Err())
	return out
}

// ledger returns a line's ledger rows: version → checksum.
func (e *env) ledger(line string) map[string]string {
	e.t.Helper()
	rows, err := e.db.QueryContext(context.Background(), e.bind(`SELECT version, checksum FROM pluginhost_ledger WHERE line = ?`), line)
	require.NoError(e.t, err)
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var v, c string
		require.NoError(e.t, rows.Scan(&v, &c))
		out[v] = c
	}
	require.NoError(e.t, rows.Err())
	return out
}

// ledgerDump returns every ledger row in a stable order, with applied_at
// and the row's physical identity (SQLite's rowid, PostgreSQL's xmin), which
// change when a row is written again.
func (e *env) ledgerDump() []string {
	e.t.Helper()
	id := "rowid"
	if e.dialect == testdb.Postgres {
		id = "xmin"
	}
	return e.strings(`SELECT line || '|' || version || '|' || checksum || '|' || CAST(applied_at AS TEXT) || '|' || CAST(` + id + ` AS TEXT)
FROM pluginhost_ledger ORDER BY line, version`)
}

// tryStart starts a manager and returns Start's error; the manager is shut
// down when the test ends.
func (e *env) tryStart(cfg pluginhost.Config) (*pluginhost.Manager, error) {
	e.t.Helper()
	m, err := pluginhost.New(cfg)
	require.NoError(e.t, err)
	e.t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	return m, m.Start(context.Background())
}

// withLogs returns cfg logging to a fresh buffer.
func withLogs(cfg pluginhost.Config) (pluginhost.Config, *logBuffer) {
	logs := &logBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return cfg, logs
}

// itemsPlugin is a plugin with one table "items".
func itemsPlugin(id string) *fake {
	return &fake{
		manifest: manifest(id, "1.0.0"),
		tables:   []pluginhost.Table{{Name: "items", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "title"}}}},
	}
}

func TestStartCreatesLibraryTablesAndLedger(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		e.start(e.config(itemsPlugin("p")))
		for _, name := range []string{"pluginhost_ledger", "pluginhost_settings", "pluginhost_plugins", "p__items"} {
			require.True(t, e.hasTable(name), name)
		}
		require.NotEmpty(t, e.ledger("pluginhost"), "the library's own migrations are recorded")
		require.Contains(t, e.ledger("p"), "table:items")
		require.Empty(t, e.ledger("core"))
	})
}

func TestCoreMigrationsApplyInNumericOrder(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		files := map[string]string{
			"sqlite/0001_steps.sql":   `CREATE TABLE steps (n INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL)`,
			"postgres/0001_steps.sql": `CREATE TABLE steps (n serial PRIMARY KEY, v text NOT NULL)`,
			"0010_ten.sql":            `INSERT INTO steps (v) VALUES ('0010')`,
			"0002_two.sql":            `INSERT INTO steps (v) VALUES ('0002')`,
			"10000_big.sql":           `INSERT INTO steps (v) VALUES ('10000')`,
			"9999_nines.sql":          `INSERT INTO steps (v) VALUES ('9999'); INSERT INTO steps (v) VALUES ('9999b')`,
			"README.md":               "not a migration",
		}
		cfg, logs := withLogs(e.config())
		cfg.CoreMigrations = sqlFiles(files)
		e.start(cfg)
		require.Equal(t, []string{"0002", "0010", "9999", "9999b", "10000"}, e.strings(`SELECT v FROM steps ORDER BY n`))

		dir := string(e.dialect) + "/"
		want := map[string]string{}
		for _, v := range []string{"0001_steps", "0002_two", "0010_ten", "9999_nines", "10000_big"} {
			body, ok := files[v+".sql"]
			if !ok {
				body = files[dir+v+".sql"]
			}
			want[v] = checksum(body)
		}
		require.Equal(t, want, e.ledger("core"))
		require.Contains(t, logs.String(), "applied migration")
		require.Contains(t, logs.String(), "version=0002_two")
	})
}

func TestFailingCoreMigrationLeavesDatabaseAsBefore(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		good := map[string]string{
			"0001_a.sql": `CREATE TABLE core_a (x INTEGER)`,
			"0002_b.sql": `CREATE TABLE core_b (x INTEGER); INSERT INTO core_b (x) VALUES (2)`,
		}
		bad := `CREATE TABLE core_partial (x INTEGER); INSERT INTO core_b (x) VALUES (3); INSERT INTO no_such_table VALUES (1)`
		files := map[string]string{"0003_bad.sql": bad, "0004_after.sql": `CREATE TABLE core_after (x INTEGER)`}
		for k, v := range good {
			files[k] = v
		}
		cfg := e.config(itemsPlugin("p"))
		cfg.CoreMigrations = sqlFiles(files)
		m, err := e.tryStart(cfg)
		require.Error(t, err)
		require.Contains(t, err.Error(), "0003_bad")
		require.Contains(t, err.Error(), "no_such_table", "the database's message")

		require.True(t, e.hasTable("core_a"))
		require.Equal(t, 1, e.count(`SELECT count(*) FROM core_b`), "earlier migrations committed, the failing one's insert is gone")
		require.False(t, e.hasTable("core_partial"), "partial statements of the failing migration are rolled back")
		require.False(t, e.hasTable("core_after"))
		require.Equal(t, map[string]string{"0001_a": checksum(good["0001_a.sql"]), "0002_b": checksum(good["0002_b.sql"])}, e.ledger("core"))
		require.False(t, e.hasTable("p__items"), "no plugin schema runs after a failed core migration")
		require.Empty(t, e.ledger("p"))
		require.NotEqual(t, pluginhost.StateRunning, status(t, m, "p").State)

		// Fixed, the next boot applies the rest.
		files["0003_bad.sql"] = `CREATE TABLE core_partial (x INTEGER)`
		cfg = e.config(itemsPlugin("p"))
		cfg.CoreMigrations = sqlFiles(files)
		m = e.start(cfg)
		require.Equal(t, pluginhost.StateRunning, status(t, m, "p").State)
		require.True(t, e.hasTable("core_partial"))
		require.True(t, e.hasTable("core_after"))
		require.True(t, e.hasTable("p__items"))
		require.Len(t, e.ledger("core"), 4)
		require.Equal(t, checksum(files["0003_bad.sql"]), e.ledger("core")["0003_bad"])
	})
}

func TestChangedCoreMigrationIsRefused(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		cfg := e.config()
		cfg.CoreMigrations = sqlFiles(map[string]string{"0001_a.sql": `CREATE TABLE core_a (x INTEGER)`})
		e.start(cfg)
		before := e.ledgerDump()

		cfg = e.config(itemsPlugin("p"))
		cfg.CoreMigrations = sqlFiles(map[string]string{
			"0001_a.sql": `CREATE TABLE core_a (x INTEGER, y INTEGER)`,
			"0002_b.sql": `CREATE TABLE core_b (x INTEGER)`,
		})
		_, err := e.tryStart(cfg)
		require.Error(t, err)
		require.Contains(t, err.Error(), "core migrations")
		require.Contains(t, err.Error(), "0001_a")
		require.Contains(t, err.Error(), "changed")
		require.Contains(t, err.Error(), "add a new migration")
		require.Equal(t, before, e.ledgerDump())
		require.False(t, e.hasTable("core_b"))
		require.False(t, e.hasTable("p__items"))
	})
}

func TestCoreMigrationBadFileNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"no padding", map[string]string{"0001_ok.sql": "SELECT 1", "1_x.sql": "SELECT 1"}, []string{"1_x.sql"}},
		{"duplicate number", map[string]string{"0001_a.sql": "SELECT 1", "0001_b.sql": "SELECT 1"}, []string{"0001_a.sql", "0001_b.sql"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachEnv(t, func(t *testing.T, e *env) {
				cfg := e.config()
				cfg.CoreMigrations = sqlFiles(tt.files)
				_, err := e.tryStart(cfg)
				require.Error(t, err)
				require.Contains(t, err.Error(), "CoreMigrations")
				for _, w := range tt.want {
					require.Contains(t, err.Error(), string(e.dialect)+"/"+w)
				}
				require.False(t, e.hasTable("pluginhost_ledger"), "a broken Config writes nothing, not even the ledger")
			})
		})
	}
}

func TestCoreMigrationsWithoutDialectFolder(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		other := "postgres"
		if e.dialect == testdb.Postgres {
			other = "sqlite"
		}
		// SQL files for another dialect only: an error, not nothing applied
		// silently.
		cfg := e.config(itemsPlugin("p"))
		cfg.CoreMigrations = fstest.MapFS{other + "/0001_a.sql": {Data: []byte(`CREATE TABLE core_a (x INTEGER)`)}}
		_, err := e.tryStart(cfg)
		require.ErrorContains(t, err, "Config.CoreMigrations")
		require.ErrorContains(t, err, `no folder "`+string(e.dialect)+`"`)
		require.ErrorContains(t, err, other+"/0001_a.sql")
		require.False(t, e.hasTable("core_a"))
		require.False(t, e.hasTable("p__items"))

		// A folder for the dialect without SQL files: none needed.
		cfg = e.config(itemsPlugin("p"))
		cfg.CoreMigrations = fstest.MapFS{
			other + "/0001_a.sql":            {Data: []byte(`CREATE TABLE core_a (x INTEGER)`)},
			string(e.dialect) + "/README.md": {Data: []byte("nothing for this dialect")},
		}
		m := e.start(cfg)
		require.Equal(t, pluginhost.StateRunning, status(t, m, "p").State)
		require.False(t, e.hasTable("core_a"))
		require.Empty(t, e.ledger("core"))
	})
}

func TestConcurrentSQLiteBootsMigrateOnce(t *testing.T) {
	t.Parallel()
	for i := range 5 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			db, dsn := testdb.Open(t, testdb.SQLite)
			dbs := []*sql.DB{db, testdb.OpenAgain(t, testdb.SQLite, dsn)}
			core := sqlFiles(map[string]string{
				"0001_boots.sql": `CREATE TABLE boots (n INTEGER NOT NULL)`,
				"0002_once.sql":  `INSERT INTO boots (n) VALUES (1)`,
			})
			plugins := func() []pluginhost.Plugin {
				p := itemsPlugin("p")
				p.manifest = manifest("p", "1.0.0", "[config.mode]", `type = "string"`, `default = "x"`)
				p.migrations = sqlFiles(map[string]string{"0001_seed.sql": `INSERT INTO p__items (title) VALUES ('once')`})
				q := itemsPlugin("q")
				q.manifest = manifest("q", "1.0.0", "[dependencies]", `p = "^1.0"`)
				return []pluginhost.Plugin{p, q}
			}
			// Config.LookupEnv runs while Start resolves the plugins: after
			// it has read the ledger, before it migrates. A rendezvous there
			// lines both boots up on the same, empty database, the worst
			// case. It gives up waiting after a while, so that an
			// implementation that locks before reading the ledger cannot
			// deadlock here.
			var arrived sync.WaitGroup
			arrived.Add(len(dbs))
			together := make(chan struct{})
			go func() { arrived.Wait(); close(together) }()
			release := make(chan struct{})
			errs := make([]error, len(dbs))
			managers := make([]*pluginhost.Manager, len(dbs))
			var wg sync.WaitGroup
			for j, db := range dbs {
				require.NoError(t, db.Ping())
				var once sync.Once
				m, err := pluginhost.New(pluginhost.Config{
					DB: db, Registry: registry(t, plugins()...), Logger: discardLogger(), CoreMigrations: core, RequireAll: true,
					LookupEnv: func(string) (string, bool) {
						once.Do(func() {
							arrived.Done()
							select {
							case <-together:
							case <-time.After(5 * time.Second):
							}
						})
						return "", false
					},
				})
				require.NoError(t, err)
				t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
				managers[j] = m
				wg.Go(func() {
					<-release
					errs[j] = m.Start(context.Background())
				})
			}
			close(release)
			wg.Wait()
			require.NoError(t, errors.Join(errs...))
			e := &env{t: t, dialect: testdb.SQLite, db: db}
			require.Equal(t, 1, e.count(`SELECT count(*) FROM boots`), "core migration applied once")
			require.Equal(t, 1, e.count(`SELECT count(*) FROM p__items`), "plugin migration applied once")
			require.Len(t, e.ledger("core"), 2)
			require.Len(t, e.ledger("p"), 3, "table, migration, manifest version")
			require.Len(t, e.ledger("q"), 2, "table, manifest version")
			for _, m := range managers {
				require.Equal(t, pluginhost.StateRunning, status(t, m, "q").State)
			}
		})
	}
}
