package dialect_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost/internal/dialect"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

func TestBeginMigration(t *testing.T) {
	t.Parallel()
	require.Equal(t, "BEGIN IMMEDIATE", dialect.BeginMigration(dialect.SQLite))
	require.Equal(t, "BEGIN", dialect.BeginMigration(dialect.Postgres))
}

func TestTableExists(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d dialect.Dialect) {
		t.Parallel()
		db, _ := testdb.Open(t, d)
		ctx := t.Context()
		ok, err := dialect.TableExists(ctx, d, db, "things")
		require.NoError(t, err)
		require.False(t, ok)

		_, err = db.ExecContext(ctx, `CREATE TABLE things (name TEXT)`)
		require.NoError(t, err)
		ok, err = dialect.TableExists(ctx, d, db, "things")
		require.NoError(t, err)
		require.True(t, ok)

		// A transaction sees its own new table; a migration looks up tables
		// inside one.
		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback() }()
		_, err = tx.ExecContext(ctx, `CREATE TABLE others (name TEXT)`)
		require.NoError(t, err)
		ok, err = dialect.TableExists(ctx, d, tx, "others")
		require.NoError(t, err)
		require.True(t, ok)
	})
}
