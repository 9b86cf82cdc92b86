package pluginhost_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// readsPlugins returns a plugin "shelf" with tables books and loans, and
// a plugin "reader" depending on it, with the [[reads]] lines given, whose
// Host is stored in *h.
func readsPlugins(h **pluginhost.Host, reads ...string) (*fake, *fake) {
	shelf := &fake{manifest: manifest("shelf", "1.0.0"), tables: []pluginhost.Table{
		{Name: "books", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "title"}}},
		{Name: "loans", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "who"}}},
	}, seed: func(ctx context.Context, host *pluginhost.Host) error {
		db := host.DB()
		_, err := db.ExecContext(ctx, `INSERT INTO `+db.Table("books")+` (title) VALUES ('Dune')`)
		return err
	}}
	extra := append([]string{"[dependencies]", `shelf = "^1.0"`}, reads...)
	reader := &fake{manifest: manifest("reader", "1.0.0", extra...), tables: []pluginhost.Table{
		{Name: "notes", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "body"}}},
	}, init: func(_ context.Context, host *pluginhost.Host) error { *h = host; return nil }}
	return shelf, reader
}

// A plugin reads the tables of a dependency its manifest declares it
// reads, and only reads them: the database refuses a write, and the
// dependency's other tables stay out of reach.
func TestReadGrantIsReadOnlyAndExact(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var h *pluginhost.Host
		shelf, reader := readsPlugins(&h, "[[reads]]", `plugin = "shelf"`, `tables = ["books"]`)
		m := e.start(e.config(shelf, reader))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "reader").State, status(t, m, "reader").Reason)
		require.Equal(t, []pluginhost.ReadGrant{{Plugin: "shelf", Tables: []string{"books"}}}, status(t, m, "reader").Reads)
		ctx := context.Background()
		db := h.DB()
		books := db.TableOf("shelf", "books")
		require.Equal(t, "shelf__books", books)

		var title string
		require.NoError(t, db.QueryRowContext(ctx, `SELECT title FROM `+books).Scan(&title))
		require.Equal(t, "Dune", title)
		var n int
		require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM `+books).Scan(&n))
		require.Equal(t, 1, n)
		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		require.NoError(t, tx.QueryRowContext(ctx, `SELECT count(*) FROM `+tx.TableOf("shelf", "books")).Scan(&n))
		require.NoError(t, tx.Rollback())

		for _, stmt := range []string{
			`INSERT INTO shelf__books (title) VALUES ('x')`,
			`UPDATE shelf__books SET title = 'x'`,
			`DELETE FROM shelf__books`,
			`SELECT who FROM shelf__loans`,
			`SELECT count(*) FROM shelf__loans`,
		} {
			_, err := db.ExecContext(ctx, stmt)
			var se *pluginhost.SandboxError
			require.ErrorAs(t, err, &se, stmt)
			require.Equal(t, "reader", se.Plugin, stmt)
			require.Regexp(t, `shelf__(books|loans)`, se.Object, stmt)
		}
		require.NoError(t, db.QueryRowContext(ctx, `SELECT title FROM `+books).Scan(&title), "nothing was written")
		require.Equal(t, "Dune", title)
		require.PanicsWithError(t, `pluginhost: plugin "reader": DB.TableOf("shelf", "loans"): not a table it declared it reads of plugin "shelf" in [[reads]] (it reads: books)`,
			func() { db.TableOf("shelf", "loans") })
	})
}

// A grant the manifest no longer declares is gone at the next boot: the
// engine refuses the read again.
func TestReadGrantDroppedFromTheManifestIsRevoked(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var h *pluginhost.Host
		shelf, reader := readsPlugins(&h, "[[reads]]", `plugin = "shelf"`, `tables = ["books"]`)
		m := e.start(e.config(shelf, reader))
		ctx := context.Background()
		var n int
		require.NoError(t, h.DB().QueryRowContext(ctx, `SELECT count(*) FROM shelf__books`).Scan(&n))
		require.NoError(t, m.Shutdown(ctx))

		shelf, reader = readsPlugins(&h)
		m = e.start(e.config(shelf, reader))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "reader").State, status(t, m, "reader").Reason)
		err := h.DB().QueryRowContext(ctx, `SELECT count(*) FROM shelf__books`).Scan(&n)
		require.ErrorIs(t, err, pluginhost.ErrSandbox)
	})
}

// A grant on a table the dependency does not have fails the reader, with
// the field and its line; the dependency runs.
func TestReadGrantOnAMissingTableFailsThePlugin(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		var h *pluginhost.Host
		shelf, reader := readsPlugins(&h, "[[reads]]", `plugin = "shelf"`, `tables = ["books", "maps"]`)
		m := e.start(e.config(shelf, reader))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "shelf").State)
		st := status(t, m, "reader")
		require.Equal(t, pluginhost.StateFailed, st.State)
		var me *pluginhost.ManifestError
		require.ErrorAs(t, st.Err, &me)
		require.Equal(t, "reads[0].tables[1]", me.Field)
		require.Equal(t, 8, me.Line)
		require.Contains(t, st.Reason, `plugin "shelf" has no table "maps" (shelf__maps)`)
	})
}
