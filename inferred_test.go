package pluginhost_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// inferredNote is what a mismatch on the inferred id of table items says.
const inferredNote = `column "id" of table "items" is integer, inferred from its name; declare Type: pluginhost.Text for a text id`

// requireDriverError checks that err's chain still holds the driver's own
// error: SQLite's SQLITE_MISMATCH, PostgreSQL's invalid input (22P02).
func requireDriverError(t *testing.T, e *env, err error) {
	t.Helper()
	if e.dialect == testdb.SQLite {
		var se sqlite3.Error
		require.ErrorAs(t, err, &se)
		require.Equal(t, sqlite3.ErrMismatch, se.Code)
		return
	}
	var pe *pgconn.PgError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, "22P02", pe.Code)
}

// TestInferredIDMismatchNamesType: a text id inserted into a table whose
// undeclared id column was inferred as an integer fails with an error that
// says so, through Exec and Query of the DB and of a Tx, with the driver's
// error still in the chain; a text id declared Type: Text works.
func TestInferredIDMismatchNamesType(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		p := &fake{manifest: manifest("inf", "1.0.0"), tables: []pluginhost.Table{
			{Name: "items", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "title"}, {Name: "created_at"}}},
			{Name: "items_archive", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "count"}}},
			{Name: "stacks", Columns: []pluginhost.Column{{Name: "id", Type: pluginhost.Text, PrimaryKey: true}, {Name: "title"}}},
		}}
		_, h := startHost(e, p)
		db := h.DB()
		items := db.Table("items")

		_, err := db.ExecContext(ctx, `INSERT INTO `+items+` (id, title) VALUES ('abc', 'x')`)
		require.ErrorContains(t, err, inferredNote)
		requireDriverError(t, e, err)
		t.Log(err)
		// Only the columns that could not take the value, of the table named.
		require.NotContains(t, err.Error(), "created_at")
		require.NotContains(t, err.Error(), "items_archive")
		require.NotContains(t, err.Error(), "title")

		_, err = db.ExecContext(ctx, `INSERT INTO `+items+` (id, title) VALUES (?, ?)`, "abc", "x")
		require.ErrorContains(t, err, inferredNote)

		rows, err := db.QueryContext(ctx, `SELECT id FROM `+items+` WHERE id = 'abc'`)
		if e.dialect == testdb.Postgres { // SQLite compares, it does not convert
			require.ErrorContains(t, err, inferredNote)
			requireDriverError(t, e, err)
		} else {
			require.NoError(t, err)
			require.NoError(t, rows.Close())
		}

		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, `INSERT INTO `+items+` (id, title) VALUES ('abc', 'x')`)
		require.ErrorContains(t, err, inferredNote)
		requireDriverError(t, e, err)
		require.NoError(t, tx.Rollback())

		if e.dialect == testdb.Postgres { // SQLite stores any text in a timestamp column
			_, err = db.ExecContext(ctx, `INSERT INTO `+items+` (id, title, created_at) VALUES (1, 'x', 'yesterday-ish')`)
			require.ErrorContains(t, err, `column "created_at" of table "items" is timestamp, inferred from its name`)
			require.NotContains(t, err.Error(), `column "id"`)
			var pe *pgconn.PgError
			require.ErrorAs(t, err, &pe)
			require.Equal(t, "22007", pe.Code)
		}

		// A table whose name starts with another's: only its own columns.
		_, err = db.ExecContext(ctx, `INSERT INTO `+db.Table("items_archive")+` (id) VALUES ('abc')`)
		require.ErrorContains(t, err, `(note: column "id" of table "items_archive" is integer, inferred from its name; declare Type: pluginhost.Text for a text id)`)
		require.NotContains(t, err.Error(), `table "items"`)

		// Other errors are left as they are.
		_, err = db.ExecContext(ctx, `INSERT INTO `+items+`_missing (id) VALUES (1)`)
		require.Error(t, err)
		require.NotContains(t, err.Error(), "inferred")

		// A declared text id works.
		_, err = db.ExecContext(ctx, `INSERT INTO `+db.Table("stacks")+` (id, title) VALUES ('deploy-1', 'x')`)
		require.NoError(t, err)
		var title string
		require.NoError(t, db.QueryRowContext(ctx, `SELECT title FROM `+db.Table("stacks")+` WHERE id = ?`, "deploy-1").Scan(&title))
		require.Equal(t, "x", title)

		// An integer id still works.
		_, err = db.ExecContext(ctx, `INSERT INTO `+items+` (id, title) VALUES (?, ?)`, 7, "x")
		require.NoError(t, err)
	})
}

// TestInferredMismatchInSeedOnce: the same note reaches a SeedOnce hook's
// statements, whose Tx the Manager made.
func TestInferredMismatchInSeedOnce(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var seedErr error
		p := &seedOnceFake{fake: &fake{manifest: manifest("infs", "1.0.0"), tables: []pluginhost.Table{
			{Name: "items", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "title"}}},
		}}, seedOnce: func(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx) error {
			_, seedErr = tx.ExecContext(ctx, `INSERT INTO `+tx.Table("items")+` (id, title) VALUES (?, ?)`, "welcome", "Welcome")
			return seedErr
		}}
		m, err := pluginhost.New(e.config(p))
		require.NoError(t, err)
		require.NoError(t, m.Start(context.Background()))
		t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
		st := status(t, m, "infs")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.ErrorContains(t, seedErr, inferredNote)
		require.Contains(t, st.Reason, inferredNote)
		if e.dialect == testdb.SQLite {
			require.ErrorContains(t, seedErr, "datatype mismatch")
		}
	})
}

// TestInferredNoteCostsNothing: a successful statement through the plugin's
// DB allocates no more than the same statement on the *sql.DB: the
// note is made on the error path only.
func TestInferredNoteCostsNothing(t *testing.T) {
	// Not parallel: AllocsPerRun counts the allocations of the process.
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		e := newEnv(t, d)
		ctx := context.Background()
		p := &fake{manifest: manifest("infa", "1.0.0"), tables: []pluginhost.Table{
			{Name: "items", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "title"}}},
		}}
		var h *pluginhost.Host
		p.init = func(_ context.Context, host *pluginhost.Host) error { h = host; return nil }
		cfg := e.config(p)
		cfg.Unsandboxed = []string{"infa"} // the note's cost alone: the sandbox's is BenchmarkSandbox's
		e.start(cfg)
		require.NotNil(t, h)
		db := h.DB()
		q := `UPDATE ` + db.Table("items") + ` SET title = ? WHERE id = ?`
		raw := db.Rebind(q)
		var errs []error
		viaDB := testing.AllocsPerRun(200, func() {
			if _, err := db.ExecContext(ctx, q, "t", 1); err != nil {
				errs = append(errs, err)
			}
		})
		viaSQL := testing.AllocsPerRun(200, func() {
			if _, err := db.Unsandboxed().ExecContext(ctx, raw, "t", 1); err != nil {
				errs = append(errs, err)
			}
		})
		require.NoError(t, errors.Join(errs...))
		// Rebind's result on PostgreSQL is the one allocation the DB adds.
		extra := 0.0
		if e.dialect == testdb.Postgres {
			extra = 1
		}
		t.Logf("allocations per Exec: DB %v, *sql.DB %v", viaDB, viaSQL)
		require.LessOrEqual(t, viaDB, viaSQL+extra, "allocations per Exec: DB %v, *sql.DB %v", viaDB, viaSQL)
	})
}
