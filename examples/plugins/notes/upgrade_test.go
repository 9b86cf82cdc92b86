package notes_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/examples/plugins/notes"
	"github.com/pluginhost/pluginhost/pluginhosttest"
)

// notesV11 is notes 1.1.0 as its author would ship it: the same plugin
// with a column (pinned) and an index (on created_at) added to its table,
// and no migration written.
type notesV11 struct{ *notes.Plugin }

func (p notesV11) Manifest() []byte {
	return bytes.Replace(p.Plugin.Manifest(), []byte(`version = "1.0.0"`), []byte(`version = "1.1.0"`), 1)
}

func (p notesV11) Tables() []pluginhost.Table {
	tables := p.Plugin.Tables()
	tables[0].Columns = append(tables[0].Columns, pluginhost.Column{Name: "pinned", Type: pluginhost.Boolean, NotNull: true, Default: false})
	tables[0].Indexes = append(tables[0].Indexes, pluginhost.Index{Columns: []string{"created_at"}})
	return tables
}

func TestNotesUpgradeAddsAColumnAndAnIndexWithoutAMigration(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		require.Contains(t, string(notes.New().Manifest()), `version = "1.0.0"`)
		inst := pluginhosttest.Start(t, opts, notes.New())
		for _, title := range []string{"Groceries", "Chores"} {
			resp := inst.Do(t, "POST", "/api/plugin/notes/notes", map[string]string{"title": title, "body": "b"})
			require.Equal(t, http.StatusCreated, resp.Status)
		}
		var before []notes.Note
		inst.Do(t, "GET", "/api/plugin/notes/notes", nil).JSON(t, &before)
		require.Len(t, before, 3) // the welcome note and two

		inst.Restart(t, notesV11{notes.New()})
		st := inst.Manager.Status()
		require.Len(t, st, 1)
		require.Equal(t, pluginhost.StateRunning, st[0].State, st[0].Reason)
		require.Equal(t, "1.1.0", st[0].Version)

		// The rows are kept, as the API shows them.
		var after []notes.Note
		inst.Do(t, "GET", "/api/plugin/notes/notes", nil).JSON(t, &after)
		require.Equal(t, before, after)

		// The new column is there, with its default, and usable through
		// the plugin's handle.
		ctx := context.Background()
		db := inst.Host(t, "notes").DB()
		var pinned int
		require.NoError(t, db.QueryRowContext(ctx, `SELECT count(*) FROM `+db.Table("notes")+` WHERE pinned = ?`, false).Scan(&pinned))
		require.Equal(t, 3, pinned)
		_, err := db.ExecContext(ctx, `UPDATE `+db.Table("notes")+` SET pinned = ? WHERE id = ?`, true, after[1].ID)
		require.NoError(t, err)
		var title string
		require.NoError(t, db.QueryRowContext(ctx, `SELECT title FROM `+db.Table("notes")+` WHERE pinned = ?`, true).Scan(&title))
		require.Equal(t, "Groceries", title)
		resp := inst.Do(t, "POST", "/api/plugin/notes/notes", map[string]string{"title": "New", "body": "b"})
		require.Equal(t, http.StatusCreated, resp.Status, "the 1.0.0 API still writes, the new column takes its default")

		// And so is the index.
		q := `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = $1`
		if opts.PostgresURL != "" {
			q = `SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = $1`
		}
		var n int
		require.NoError(t, inst.DB.QueryRowContext(ctx, q, "notes__notes__ix_created_at").Scan(&n))
		require.Equal(t, 1, n)

		// A restart of 1.1.0 has nothing more to do, and keeps the data.
		inst.Restart(t)
		var again []notes.Note
		inst.Do(t, "GET", "/api/plugin/notes/notes", nil).JSON(t, &again)
		require.Len(t, again, 4)
	})
}
