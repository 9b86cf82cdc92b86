package sqlgen

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"slices"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "github.com/mattn/go-sqlite3"
	"github.com/stretchr/testify/require"
)

// postgresEnv names the PostgreSQL server the tests use when set, such as
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const postgresEnv = "PLUGINHOST_TEST_POSTGRES_URL"

// testDB is one fresh, empty database on a single connection.
type testDB struct {
	dialect Dialect
	conn    *sql.Conn
	schema  string // PostgreSQL only
}

// openSQLite returns an in-memory SQLite database with foreign keys on.
func openSQLite(t *testing.T) *testDB {
	t.Helper()
	db, err := sql.Open("sqlite3", ":memory:")
	require.NoError(t, err)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	conn, err := db.Conn(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	_, err = conn.ExecContext(t.Context(), "PRAGMA foreign_keys = ON")
	require.NoError(t, err)
	return &testDB{dialect: SQLite, conn: conn}
}

// openPostgres returns a connection whose search_path is a new schema that
// is dropped when the test ends, or skips the test when no server is
// configured.
func openPostgres(t *testing.T) *testDB {
	t.Helper()
	url := os.Getenv(postgresEnv)
	if url == "" {
		t.Skipf("set %s (such as postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run the PostgreSQL tests", postgresEnv)
	}
	db, err := sql.Open("pgx", url)
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	conn, err := db.Conn(t.Context())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	suffix := make([]byte, 8)
	_, _ = rand.Read(suffix)
	schema := "sqlgen_test_" + hex.EncodeToString(suffix)
	_, err = conn.ExecContext(t.Context(), "CREATE SCHEMA "+Quote(schema))
	require.NoError(t, err)
	t.Cleanup(func() {
		// t.Context is done by now.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := conn.ExecContext(ctx, "DROP SCHEMA "+Quote(schema)+" CASCADE")
		require.NoError(t, err)
	})
	_, err = conn.ExecContext(t.Context(), "SET search_path TO "+Quote(schema))
	require.NoError(t, err)
	return &testDB{dialect: Postgres, conn: conn, schema: schema}
}

// opener opens a fresh database of one dialect.
type opener struct {
	dialect Dialect
	open    func(*testing.T) *testDB
}

var openers = []opener{{SQLite, openSQLite}, {Postgres, openPostgres}}

func (db *testDB) exec(t *testing.T, query string, args ...any) sql.Result {
	t.Helper()
	res, err := db.conn.ExecContext(t.Context(), Rebind(db.dialect, query), args...)
	require.NoError(t, err, query)
	return res
}

func (db *testDB) create(t *testing.T, s *Schema) {
	t.Helper()
	for _, stmt := range s.Create(db.dialect) {
		db.exec(t, stmt)
	}
}

// TestExecuteGolden runs every golden schema on each database, then drops
// it in reverse order.
func TestExecuteGolden(t *testing.T) {
	t.Parallel()
	for _, o := range openers {
		for _, tc := range goldenCases {
			t.Run(string(o.dialect)+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				db := o.open(t)
				s := mustBuild(t, tc.prefix, tc.tables)
				db.create(t, s)
				if db.dialect == Postgres {
					requirePostgresRelations(t, db, s)
				}
				for i := len(s.Tables) - 1; i >= 0; i-- {
					db.exec(t, DropTable(db.dialect, &s.Tables[i]))
				}
			})
		}
	}
}

// requirePostgresRelations checks that the tables, indexes and sequences
// PostgreSQL made are exactly those [relations] predicts, which is what the
// collision check in Build relies on.
func requirePostgresRelations(t *testing.T, db *testDB, s *Schema) {
	t.Helper()
	rows, err := db.conn.QueryContext(t.Context(), `SELECT c.relname FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'i', 'S') ORDER BY c.relname`, db.schema)
	require.NoError(t, err)
	var got []string
	for rows.Next() {
		var name string
		require.NoError(t, rows.Scan(&name))
		got = append(got, name)
	}
	require.NoError(t, rows.Err())
	tables := make([]*Resolved, len(s.Tables))
	for i := range s.Tables {
		tables[i] = &s.Tables[i]
	}
	var want []string
	for _, r := range relations(tables) {
		want = append(want, r.name)
	}
	slices.Sort(want)
	require.Equal(t, want, got)
}

// TestExecuteBehavior shows on each database that the defaults, the
// generated key, the constraints and the foreign key actions work.
func TestExecuteBehavior(t *testing.T) {
	t.Parallel()
	for _, o := range openers {
		t.Run(string(o.dialect), func(t *testing.T) {
			t.Parallel()
			t.Run("defaults", func(t *testing.T) {
				t.Parallel()
				testDefaults(t, o.open(t))
			})
			t.Run("notes", func(t *testing.T) {
				t.Parallel()
				testNotes(t, o.open(t))
			})
			t.Run("foreign keys", func(t *testing.T) {
				t.Parallel()
				testForeignKeys(t, o.open(t))
			})
			t.Run("self reference", func(t *testing.T) {
				t.Parallel()
				testSelfReference(t, o.open(t))
			})
		})
	}
}

func goldenSchema(t *testing.T, name string) *Schema {
	t.Helper()
	for _, tc := range goldenCases {
		if tc.name == name {
			return mustBuild(t, tc.prefix, tc.tables)
		}
	}
	t.Fatalf("no golden case %q", name)
	return nil
}

func testDefaults(t *testing.T, db *testDB) {
	s := goldenSchema(t, "defaults")
	db.create(t, s)
	before := time.Now().Add(-time.Minute)
	db.exec(t, `INSERT INTO "my_plugin__defaults" ("plain") VALUES (?)`, "set")

	var (
		plain, quoted, empty, doc  string
		startsAt, dueDate, seenAt  time.Time
		score, tiny, big           int64
		ratio, whole, single, huge float64
		enabled, disabled          bool
	)
	row := db.conn.QueryRowContext(t.Context(), `SELECT "plain", "quoted", "empty", "doc", "starts_at", "due_date", "seen_at",
		"score", "tiny", "big", "ratio", "whole", "single", "huge", "enabled", "disabled" FROM "my_plugin__defaults"`)
	require.NoError(t, row.Scan(&plain, &quoted, &empty, &doc, &startsAt, &dueDate, &seenAt,
		&score, &tiny, &big, &ratio, &whole, &single, &huge, &enabled, &disabled))
	require.Equal(t, "set", plain)
	require.Equal(t, `it's "quoted" -- not a comment; ?`, quoted)
	require.Empty(t, empty)
	require.JSONEq(t, `{"tags": ["a", "b"], "n": 1}`, doc)
	require.True(t, startsAt.Equal(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)), "starts_at %v", startsAt)
	require.Equal(t, "2024-12-31", dueDate.Format(time.DateOnly))
	require.True(t, seenAt.After(before) && seenAt.Before(time.Now().Add(time.Minute)), "seen_at %v", seenAt)
	require.Equal(t, []int64{-42, 7, 9007199254740993}, []int64{score, tiny, big})
	require.Equal(t, []float64{0.25, 3, 0.1, 1e21}, []float64{ratio, whole, single, huge})
	require.True(t, enabled)
	require.False(t, disabled)
}

func testNotes(t *testing.T, db *testDB) {
	db.create(t, goldenSchema(t, "notes"))
	insert := `INSERT INTO "my_plugin__notes" ("title") VALUES (?) RETURNING "id"`
	var first, second int64
	require.NoError(t, db.conn.QueryRowContext(t.Context(), Rebind(db.dialect, insert), "first").Scan(&first))
	require.NoError(t, db.conn.QueryRowContext(t.Context(), Rebind(db.dialect, insert), "second").Scan(&second))
	require.Positive(t, first)
	require.Equal(t, first+1, second, "the database generates the key")
	if db.dialect == SQLite {
		var rowid int64
		require.NoError(t, db.conn.QueryRowContext(t.Context(), `SELECT rowid FROM "my_plugin__notes" WHERE "id" = ?`, second).Scan(&rowid))
		require.Equal(t, second, rowid, "the key aliases the rowid")
	}

	var (
		body      string
		pinned    bool
		createdAt time.Time
		updatedAt sql.NullTime
	)
	require.NoError(t, db.conn.QueryRowContext(t.Context(), Rebind(db.dialect,
		`SELECT "body", "pinned", "created_at", "updated_at" FROM "my_plugin__notes" WHERE "id" = ?`), second).
		Scan(&body, &pinned, &createdAt, &updatedAt))
	require.Empty(t, body)
	require.False(t, pinned)
	require.WithinDuration(t, time.Now(), createdAt, time.Minute)
	require.False(t, updatedAt.Valid)

	_, err := db.conn.ExecContext(t.Context(), `INSERT INTO "my_plugin__notes" ("body") VALUES ('no title')`)
	require.Error(t, err, "title is NOT NULL")
}

func testForeignKeys(t *testing.T, db *testDB) {
	db.create(t, goldenSchema(t, "foreign_keys"))
	db.exec(t, `INSERT INTO "my_plugin__users" ("id", "email") VALUES (1, 'ann@example.com'), (2, 'bob@example.com')`)
	_, err := db.conn.ExecContext(t.Context(), `INSERT INTO "my_plugin__users" ("id", "email") VALUES (3, 'ann@example.com')`)
	require.Error(t, err, "email is UNIQUE")
	db.exec(t, `INSERT INTO "my_plugin__projects" ("id", "owner_id", "name") VALUES (10, 1, 'ann''s'), (20, 2, 'bob''s')`)
	db.exec(t, `INSERT INTO "my_plugin__tasks" ("id", "project_id", "assignee", "reviewer_id", "creator_id")
		VALUES (100, 10, 'bob@example.com', NULL, 1), (200, 20, 'ann@example.com', NULL, NULL), (300, 20, NULL, 1, NULL)`)
	_, err = db.conn.ExecContext(t.Context(), `INSERT INTO "my_plugin__tasks" ("project_id") VALUES (99)`)
	require.Error(t, err, "project 99 does not exist")

	// RESTRICT: ann reviews task 300, so she cannot go.
	_, err = db.conn.ExecContext(t.Context(), `DELETE FROM "my_plugin__users" WHERE "id" = 1`)
	require.Error(t, err)
	db.exec(t, `DELETE FROM "my_plugin__tasks" WHERE "id" = 300`)

	// Bob goes: his project and its tasks cascade, and task 100 loses its
	// assignee (SET NULL).
	db.exec(t, `DELETE FROM "my_plugin__users" WHERE "id" = 2`)
	require.Equal(t, []string{"10"}, queryStrings(t, db, `SELECT CAST("id" AS TEXT) FROM "my_plugin__projects" ORDER BY "id"`))
	require.Equal(t, []string{"100"}, queryStrings(t, db, `SELECT CAST("id" AS TEXT) FROM "my_plugin__tasks" ORDER BY "id"`))
	var assignee sql.NullString
	require.NoError(t, db.conn.QueryRowContext(t.Context(), `SELECT "assignee" FROM "my_plugin__tasks" WHERE "id" = 100`).Scan(&assignee))
	require.False(t, assignee.Valid)

	// A plain reference (no action) blocks the delete too.
	db.exec(t, `INSERT INTO "my_plugin__users" ("id", "email") VALUES (3, 'carol@example.com')`)
	db.exec(t, `INSERT INTO "my_plugin__tasks" ("id", "project_id", "creator_id") VALUES (400, 10, 3)`)
	_, err = db.conn.ExecContext(t.Context(), `DELETE FROM "my_plugin__users" WHERE "id" = 3`)
	require.Error(t, err)
	db.exec(t, `UPDATE "my_plugin__tasks" SET "creator_id" = NULL WHERE "id" = 400`)
	db.exec(t, `DELETE FROM "my_plugin__users" WHERE "id" = 3`)
}

func testSelfReference(t *testing.T, db *testDB) {
	db.create(t, goldenSchema(t, "self_reference"))
	db.exec(t, `INSERT INTO "my_plugin__categories" ("id", "parent_id", "slug", "alias_of") VALUES
		(1, NULL, 'root', NULL), (2, 1, 'child', NULL), (3, 2, 'grandchild', NULL), (4, NULL, 'other', 'child')`)
	db.exec(t, `DELETE FROM "my_plugin__categories" WHERE "id" = 1`)
	require.Equal(t, []string{"other"}, queryStrings(t, db, `SELECT "slug" FROM "my_plugin__categories"`))
	var alias sql.NullString
	require.NoError(t, db.conn.QueryRowContext(t.Context(), `SELECT "alias_of" FROM "my_plugin__categories" WHERE "id" = 4`).Scan(&alias))
	require.False(t, alias.Valid, "alias_of is SET NULL when its target goes")
}

func queryStrings(t *testing.T, db *testDB, query string) []string {
	t.Helper()
	rows, err := db.conn.QueryContext(t.Context(), query)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		out = append(out, s)
	}
	require.NoError(t, rows.Err())
	return out
}
