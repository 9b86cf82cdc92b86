package pluginhost_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// A plugin whose migration creates, besides a table, the other objects its
// dialect lets it name in its namespace (on PostgreSQL a sequence, a
// function and a type; on SQLite an index and a trigger), purged while
// disabled and enabled again, starts afresh: its migration runs again.
func TestPurgeDropsEveryObjectOfItsMigrations(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		migration := `CREATE TABLE gadget__parts (id INTEGER PRIMARY KEY, n INTEGER);
CREATE INDEX gadget__parts_n ON gadget__parts (n);
CREATE TRIGGER gadget__parts_t AFTER INSERT ON gadget__parts BEGIN UPDATE gadget__parts SET n = 1 WHERE n IS NULL; END;
INSERT INTO gadget__parts (id) VALUES (1);`
		if e.dialect == testdb.Postgres {
			migration = `CREATE SEQUENCE gadget__counter;
CREATE TYPE gadget__mood AS ENUM ('up', 'down');
CREATE DOMAIN gadget__positive AS integer CHECK (VALUE > 0);
CREATE FUNCTION gadget__twice(x integer) RETURNS integer LANGUAGE sql AS 'SELECT 2 * x';
CREATE TABLE gadget__parts (id integer PRIMARY KEY DEFAULT nextval('gadget__counter'), mood gadget__mood, n gadget__positive);
INSERT INTO gadget__parts (mood, n) VALUES ('up', gadget__twice(1));`
		}
		gadget := func() pluginhost.Plugin {
			return &fake{manifest: manifest("gadget", "1.0.0"), migrations: sqlFiles(map[string]string{"0001_parts.sql": migration})}
		}
		m := e.start(e.config(gadget()))
		require.Equal(t, pluginhost.StateRunning, status(t, m, "gadget").State, status(t, m, "gadget").Reason)
		require.NoError(t, m.Disable(ctx, "gadget"))
		require.NoError(t, m.Purge(ctx, "gadget"))
		require.NoError(t, m.Enable(ctx, "gadget"))
		st := status(t, m, "gadget")
		require.Equal(t, pluginhost.StateRunning, st.State, "the migration runs again: %s", st.Reason)
		require.Equal(t, 1, dbCount(t, e, `SELECT count(*) FROM gadget__parts`))
		require.NoError(t, m.Shutdown(ctx))

		// Removed from the binary, then purged: nothing of it is left.
		m = e.start(e.config())
		require.Equal(t, pluginhost.StateRemoved, status(t, m, "gadget").State)
		require.NoError(t, m.Purge(ctx, "gadget"))
		left := `SELECT count(*) FROM sqlite_master WHERE name LIKE 'gadget%'`
		if e.dialect == testdb.Postgres {
			left = `SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relname LIKE 'gadget%')
				+ (SELECT count(*) FROM pg_proc WHERE pronamespace = current_schema()::regnamespace AND proname LIKE 'gadget%')
				+ (SELECT count(*) FROM pg_type WHERE typnamespace = current_schema()::regnamespace AND typname LIKE '%gadget%')`
		}
		require.Zero(t, dbCount(t, e, left), "every object of its migrations is dropped")
	})
}
