package migrate_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost/internal/migrate"
)

// files builds a file system from name → contents.
func files(m map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, body := range m {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	return fsys
}

func versions(ms []migrate.Migration) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Version
	}
	return out
}

func TestReadOrdersByNumber(t *testing.T) {
	t.Parallel()
	fsys := files(map[string]string{
		"sqlite/0010_ten.sql":       "SELECT 10",
		"sqlite/0002_two.sql":       "SELECT 2",
		"sqlite/9999_last_four.sql": "SELECT 9999",
		"sqlite/10000_five.sql":     "SELECT 10000",
		"sqlite/0012_a.sql":         "SELECT 12",
		"sqlite/00013_b.sql":        "SELECT 13", // wider padding, later number
		"sqlite/0001_one-dash.sql":  "SELECT 1",
		"postgres/0003_other.sql":   "SELECT 3",
	})
	ms, err := migrate.Read(fsys, "sqlite")
	require.NoError(t, err)
	require.Equal(t, []string{
		"0001_one-dash", "0002_two", "0010_ten", "0012_a", "00013_b", "9999_last_four", "10000_five",
	}, versions(ms))
	require.Equal(t, "SELECT 2", ms[1].SQL)
	sum := sha256.Sum256([]byte("SELECT 2"))
	require.Equal(t, hex.EncodeToString(sum[:]), ms[1].Checksum)
	require.Equal(t, migrate.Checksum([]byte("SELECT 2")), ms[1].Checksum)
}

func TestReadIgnoresOtherFiles(t *testing.T) {
	t.Parallel()
	fsys := files(map[string]string{
		"sqlite/README.md":            "notes",
		"sqlite/0001_x.sql.bak":       "old",
		"sqlite/.keep":                "",
		"sqlite/nested/0002_deep.sql": "SELECT 2",
		"sqlite/0001_x.sql":           "SELECT 1",
	})
	ms, err := migrate.Read(fsys, "sqlite")
	require.NoError(t, err)
	require.Equal(t, []string{"0001_x"}, versions(ms))
}

func TestReadMissingDir(t *testing.T) {
	t.Parallel()
	ms, err := migrate.Read(nil, "sqlite")
	require.NoError(t, err)
	require.Empty(t, ms)

	ms, err = migrate.Read(files(map[string]string{"README.md": "no SQL here", "docs/notes.txt": ""}), "sqlite")
	require.NoError(t, err, "no SQL files anywhere: no migrations")
	require.Empty(t, ms)

	ms, err = migrate.Read(files(map[string]string{"sqlite/README": "none needed", "postgres/0001_x.sql": "SELECT 1"}), "sqlite")
	require.NoError(t, err, "a dialect folder without SQL files: no migrations for it")
	require.Empty(t, ms)
}

func TestReadSQLFilesWithoutDialectFolder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"embedded without fs.Sub", map[string]string{"migrations/sqlite/0001_x.sql": "SELECT 1", "migrations/postgres/0001_x.sql": "SELECT 1"},
			[]string{`no folder "sqlite"`, "migrations/sqlite/0001_x.sql", "sqlite/NNNN_name.sql", "postgres/NNNN_name.sql", `fs.Sub(fsys, "migrations")`}},
		{"deeper", map[string]string{"db/migrations/sqlite/0001_x.sql": "SELECT 1"},
			[]string{"db/migrations/sqlite/0001_x.sql", `fs.Sub(fsys, "db/migrations")`}},
		{"another dialect only", map[string]string{"postgres/0001_x.sql": "SELECT 1"},
			[]string{`no folder "sqlite"`, "only SQL files for postgres", "postgres/0001_x.sql", "sqlite/NNNN_name.sql", "sqlite/README"}},
		{"flat", map[string]string{"0001_x.sql": "SELECT 1"},
			[]string{`no folder "sqlite"`, "0001_x.sql", "sqlite/NNNN_name.sql", "fs.Sub"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := migrate.Read(files(tt.files), "sqlite")
			require.Error(t, err)
			for _, w := range tt.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

func TestReadRefusesTransactionControl(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, dialect, sql string
		want               []string // substrings of the error; none: accepted
	}{
		{"commit and begin", "sqlite", "CREATE TABLE a (x INTEGER);\nCOMMIT;\nBEGIN;\n",
			[]string{"migration sqlite/0001_x.sql line 2: COMMIT ends the transaction", "remove it"}},
		{"begin", "postgres", "\n\nbegin;\nCREATE TABLE a (x INTEGER);", []string{"postgres/0001_x.sql line 3: BEGIN starts a transaction"}},
		{"savepoint", "sqlite", "SAVEPOINT a;", []string{"line 1: SAVEPOINT divides the transaction"}},
		{"rollback", "postgres", "SELECT 1;\n  ROLLBACK;", []string{"line 2: ROLLBACK rolls the transaction back"}},
		{"start transaction", "postgres", "START TRANSACTION;", []string{"line 1: START TRANSACTION starts a transaction"}},
		{"in a string", "sqlite", "INSERT INTO t VALUES ('COMMIT; BEGIN');", nil},
		{"in a comment", "postgres", "-- COMMIT;\nSELECT 1; /* BEGIN; */", nil},
		{"in a function body", "postgres", "CREATE FUNCTION f() RETURNS void AS $$ BEGIN COMMIT; END $$ LANGUAGE plpgsql;", nil},
		{"in a trigger", "sqlite", "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE t SET x = 1; END;", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ms, err := migrate.Read(files(map[string]string{tt.dialect + "/0001_x.sql": tt.sql}), tt.dialect)
			if tt.want == nil {
				require.NoError(t, err)
				require.Len(t, ms, 1)
				return
			}
			require.Error(t, err)
			for _, w := range tt.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

func TestReadGoose(t *testing.T) {
	t.Parallel()
	const file = "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE a (x INTEGER);\n-- +goose StatementEnd\n\n-- +goose Down\nDROP TABLE a;\n"
	ms, err := migrate.Read(files(map[string]string{"sqlite/0001_x.sql": file}), "sqlite")
	require.NoError(t, err)
	require.Len(t, ms, 1)
	require.Equal(t, "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE a (x INTEGER);\n-- +goose StatementEnd\n\n", ms[0].SQL,
		"the Up section runs, on the lines it has in the file")
	require.Equal(t, migrate.Checksum([]byte(file)), ms[0].Checksum, "the checksum is the whole file's")

	good := map[string]string{
		"up only":                  "-- +goose Up\nCREATE TABLE a (x INTEGER);",
		"comments before up":       "-- a comment\n\n-- +goose Up\nSELECT 1;",
		"lower case":               "-- +goose up\nSELECT 1;\n-- +goose down\nSELECT 2;",
		"spaces":                   "--   +goose   Up  \nSELECT 1;",
		"statements in the down":   "-- +goose Up\nSELECT 1;\n-- +goose Down\n-- +goose StatementBegin\nCOMMIT;\n-- +goose StatementEnd",
		"not goose":                "-- goose Up\nSELECT 1;",
		"annotation-like sql text": "SELECT '-- +goose Down';",
	}
	for name, body := range good {
		_, err := migrate.Read(files(map[string]string{"sqlite/0001_x.sql": body}), "sqlite")
		require.NoError(t, err, name)
	}

	bad := map[string][]string{
		"-- +goose Up\nSELECT 1;\n-- +goose Up\n":                          {"line 3", "second -- +goose Up", "line 1"},
		"-- +goose Up\n-- +goose Down\n-- +goose Down\n":                   {"line 3", "second -- +goose Down"},
		"-- +goose Down\nSELECT 1;\n-- +goose Up\nSELECT 2;":               {"line 1", "without -- +goose Up before it"},
		"SELECT 1;\n-- +goose Up\nSELECT 2;":                               {"line 1", "SQL before -- +goose Up"},
		"-- +goose Up\n-- +goose StatementEnd\n":                           {"line 2", "StatementEnd without"},
		"-- +goose Up\n-- +goose StatementBegin\n-- +goose StatementBegin": {"line 3", "inside another, opened on line 2"},
		"-- +goose Up\n-- +goose StatementBegin\nSELECT 1;":                {"line 2", "without -- +goose StatementEnd"},
		"-- +goose NO TRANSACTION\n-- +goose Up\nSELECT 1;":                {"line 1", "NO TRANSACTION cannot be honoured"},
		"-- +goose Up\n-- +goose ENVSUB ON\nSELECT '${X}';":                {"line 2", "ENVSUB ON is not supported"},
		"-- +goose Up\n-- +goose Sideways\n":                               {"line 2", "unknown goose annotation", "Sideways"},
		"-- +goose Up\nSELECT 1;\nCOMMIT;\n-- +goose Down\n":               {"line 3", "COMMIT"},
	}
	for body, want := range bad {
		_, err := migrate.Read(files(map[string]string{"sqlite/0001_x.sql": body}), "sqlite")
		require.Error(t, err, body)
		require.ErrorContains(t, err, "migration sqlite/0001_x.sql ", body)
		for _, w := range want {
			require.ErrorContains(t, err, w, body)
		}
	}
}

func TestReadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error
	}{
		{"one digit", map[string]string{"sqlite/1_x.sql": ""}, []string{"sqlite/1_x.sql", "NNNN_name.sql"}},
		{"three digits", map[string]string{"sqlite/001_x.sql": ""}, []string{"sqlite/001_x.sql"}},
		{"no name", map[string]string{"sqlite/0001.sql": ""}, []string{"sqlite/0001.sql"}},
		{"no underscore", map[string]string{"sqlite/0001-x.sql": ""}, []string{"sqlite/0001-x.sql"}},
		{"space", map[string]string{"sqlite/0001_a b.sql": ""}, []string{"sqlite/0001_a b.sql"}},
		{"duplicate number", map[string]string{"sqlite/0001_a.sql": "", "sqlite/0001_b.sql": ""},
			[]string{"sqlite/0001_a.sql", "sqlite/0001_b.sql", "same number"}},
		{"duplicate number, other padding", map[string]string{"sqlite/0007_a.sql": "", "sqlite/00007_b.sql": ""},
			[]string{"sqlite/0007_a.sql", "sqlite/00007_b.sql", "same number"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := migrate.Read(files(tt.files), "sqlite")
			require.Error(t, err)
			for _, w := range tt.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestReadUnreadableDir(t *testing.T) {
	t.Parallel()
	// "sqlite" is a file, not a folder.
	_, err := migrate.Read(files(map[string]string{"sqlite": "x"}), "sqlite")
	require.Error(t, err)
}

func TestLibraryMigrationsRead(t *testing.T) {
	t.Parallel()
	for _, d := range []string{"sqlite", "postgres"} {
		ms, err := migrate.Read(migrate.Library, d)
		require.NoError(t, err, d)
		require.NotEmpty(t, ms, d)
	}
}

func TestPending(t *testing.T) {
	t.Parallel()
	ms, err := migrate.Read(files(map[string]string{
		"sqlite/0001_a.sql": "SELECT 1",
		"sqlite/0002_b.sql": "SELECT 2",
		"sqlite/0003_c.sql": "SELECT 3",
	}), "sqlite")
	require.NoError(t, err)

	l := migrate.Ledger{}
	pending, err := migrate.Pending(l, "core", ms)
	require.NoError(t, err)
	require.Equal(t, []string{"0001_a", "0002_b", "0003_c"}, versions(pending))

	l.Put(migrate.Entry{Line: "core", Version: "0001_a", Checksum: ms[0].Checksum})
	l.Put(migrate.Entry{Line: "other", Version: "0002_b", Checksum: ms[1].Checksum})
	pending, err = migrate.Pending(l, "core", ms)
	require.NoError(t, err)
	require.Equal(t, []string{"0002_b", "0003_c"}, versions(pending), "another line's entries do not count")

	e, ok := l.Get("core", "0001_a")
	require.True(t, ok)
	require.Equal(t, ms[0].Checksum, e.Checksum)
	_, ok = l.Get("core", "0002_b")
	require.False(t, ok)
}

func TestPendingChangedChecksum(t *testing.T) {
	t.Parallel()
	ms, err := migrate.Read(files(map[string]string{
		"sqlite/0001_a.sql": "SELECT 1 -- edited",
		"sqlite/0002_b.sql": "SELECT 2",
	}), "sqlite")
	require.NoError(t, err)
	l := migrate.Ledger{}
	l.Put(migrate.Entry{Line: "notes", Version: "0001_a", Checksum: migrate.Checksum([]byte("SELECT 1"))})

	_, err = migrate.Pending(l, "notes", ms)
	require.Error(t, err)
	var changed *migrate.ChangedError
	require.True(t, errors.As(err, &changed), "%T", err)
	require.Equal(t, "notes", changed.Line)
	require.Contains(t, err.Error(), "0001_a")
	require.Contains(t, err.Error(), "changed")
	require.Contains(t, err.Error(), "add a new migration")
	require.Contains(t, err.Error(), migrate.Checksum([]byte("SELECT 1"))[:12])
}

func TestLedgerDDL(t *testing.T) {
	t.Parallel()
	require.Contains(t, migrate.LedgerDDL("sqlite"), migrate.LedgerTable)
	require.Contains(t, migrate.LedgerDDL("postgres"), "timestamptz")
	require.NotContains(t, migrate.LedgerDDL("sqlite"), "timestamptz")
}
