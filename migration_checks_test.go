package pluginhost_test

import (
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// A migration that commits and begins again would commit the plugin's
// schema work so far without its ledger rows: it is refused before any of
// it runs.
func TestMigrationWithTransactionControlIsRefused(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := itemsPlugin("mc")
		p.migrations = sqlFiles(map[string]string{
			"0001_first.sql": "CREATE TABLE mc__first (x INTEGER);",
			"0002_split.sql": "CREATE TABLE mc__extra (x INTEGER);\n-- done with the first part\nCOMMIT;\nBEGIN;\n" +
				"CREATE TABLE mc__more (x INTEGER);\nSELECT x FROM mc__no_such_table;",
		})
		m := e.start(e.config(p))
		st := status(t, m, "mc")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, string(e.dialect)+"/0002_split.sql line 3")
		require.Contains(t, st.Reason, "COMMIT")
		require.Contains(t, st.Reason, "transaction")
		for _, table := range []string{"mc__items", "mc__first", "mc__extra", "mc__more"} {
			require.False(t, e.hasTable(table), "%s: nothing of the plugin's schema work runs", table)
		}
		require.Empty(t, e.ledger("mc"))

		cfg := e.config(p)
		cfg.Required = []string{"mc"}
		_, err := e.tryStart(cfg)
		require.ErrorContains(t, err, `plugin "mc"`)
		require.ErrorContains(t, err, "0002_split.sql line 3")
	})
}

func TestCoreMigrationWithTransactionControlIsRefused(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		cfg := e.config(itemsPlugin("p"))
		cfg.CoreMigrations = sqlFiles(map[string]string{
			"0001_a.sql": "CREATE TABLE core_a (x INTEGER);",
			"0002_b.sql": "CREATE TABLE core_b (x INTEGER);\n\nsavepoint s1;\nCREATE TABLE core_c (x INTEGER);",
		})
		_, err := e.tryStart(cfg)
		require.ErrorContains(t, err, "Config.CoreMigrations")
		require.ErrorContains(t, err, string(e.dialect)+"/0002_b.sql line 3")
		require.ErrorContains(t, err, "SAVEPOINT")
		require.False(t, e.hasTable("core_a"), "the check runs before any migration")
		require.False(t, e.hasTable("core_b"))
		require.False(t, e.hasTable("p__items"))
	})
}

// gooseFile is a migration written for goose: an Up section whose statement
// is wrapped in StatementBegin/End, and a Down section that undoes it.
const gooseFile = `-- A goose migration.
-- +goose Up
-- +goose StatementBegin
CREATE TABLE gs__up (x INTEGER);
-- +goose StatementEnd
INSERT INTO gs__up (x) VALUES (1);

-- +goose Down
-- +goose StatementBegin
DROP TABLE gs__up;
-- +goose StatementEnd
`

func TestGooseMigrationRunsItsUpSectionOnly(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := &fake{manifest: manifest("gs", "1.0.0"), migrations: sqlFiles(map[string]string{"0001_up.sql": gooseFile})}
		m := e.start(e.config(p))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "gs").State, status(t, m, "gs").Reason)
		require.True(t, e.hasTable("gs__up"), "the Down section did not run")
		require.Equal(t, 1, e.count(`SELECT count(*) FROM gs__up`))
		require.Equal(t, checksum(gooseFile), e.ledger("gs")["0001_up"], "the checksum is the whole file's")

		m = e.start(e.config(p))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "gs").State, status(t, m, "gs").Reason)
		require.Equal(t, 1, e.count(`SELECT count(*) FROM gs__up`), "applied once")
	})
}

func TestGooseAnnotationsThatCannotBeHonouredAreRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, sql string
		want      []string
	}{
		{"no transaction", "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE TABLE gs__x (x INTEGER);\n",
			[]string{"0001_x.sql line 1", "NO TRANSACTION", "in a transaction"}},
		{"statement before up", "CREATE TABLE gs__x (x INTEGER);\n-- +goose Up\nSELECT 1;\n",
			[]string{"0001_x.sql line 1", "before -- +goose Up"}},
		{"down without up", "-- +goose Down\nDROP TABLE gs__x;\n",
			[]string{"0001_x.sql line 1", "-- +goose Down", "-- +goose Up"}},
		{"unclosed statement", "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE gs__x (x INTEGER);\n-- +goose Down\n",
			[]string{"0001_x.sql line 2", "StatementBegin", "StatementEnd"}},
		{"transaction control in the up section", "-- +goose Up\nCREATE TABLE gs__x (x INTEGER);\nCOMMIT;\n-- +goose Down\nDROP TABLE gs__x;\n",
			[]string{"0001_x.sql line 3", "COMMIT"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachEnv(t, func(t *testing.T, e *env) {
				p := &fake{manifest: manifest("gs", "1.0.0"), migrations: sqlFiles(map[string]string{"0001_x.sql": tt.sql})}
				m := e.start(e.config(p))
				st := status(t, m, "gs")
				require.Equal(t, pluginhost.StateFailed, st.State)
				for _, w := range tt.want {
					require.Contains(t, st.Reason, w)
				}
				require.False(t, e.hasTable("gs__x"))
				require.Empty(t, e.ledger("gs"))
			})
		})
	}
}

// A Migrations() file system made with //go:embed migrations, without
// fs.Sub, has its dialect folders one level down: it is an error, not a
// plugin that silently applies nothing.
func TestMigrationsWithoutDialectFolderFailThePlugin(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := itemsPlugin("emb")
		p.migrations = fstest.MapFS{
			"migrations/sqlite/0001_a.sql":   {Data: []byte("CREATE TABLE emb__a (x INTEGER)")},
			"migrations/postgres/0001_a.sql": {Data: []byte("CREATE TABLE emb__a (x INTEGER)")},
		}
		m := e.start(e.config(p))
		st := status(t, m, "emb")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, `no folder "`+string(e.dialect)+`"`)
		require.Contains(t, st.Reason, "migrations/"+string(e.dialect)+"/0001_a.sql")
		require.Contains(t, st.Reason, "sqlite/NNNN_name.sql")
		require.Contains(t, st.Reason, "postgres/NNNN_name.sql")
		require.Contains(t, st.Reason, `fs.Sub(fsys, "migrations")`)
		require.False(t, e.hasTable("emb__items"))

		cfg := e.config(p)
		cfg.Required = []string{"emb"}
		_, err := e.tryStart(cfg)
		require.ErrorContains(t, err, `plugin "emb"`)
		require.ErrorContains(t, err, `fs.Sub`)
	})
}
