package pluginhost_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// startHost starts the plugins and returns the first one's Host, captured
// in its Init hook.
func startHost(e *env, p *fake, others ...pluginhost.Plugin) (*pluginhost.Manager, *pluginhost.Host) {
	e.t.Helper()
	var host *pluginhost.Host
	p.init = func(_ context.Context, h *pluginhost.Host) error {
		host = h
		return nil
	}
	m := e.start(e.config(append([]pluginhost.Plugin{p}, others...)...))
	st := status(e.t, m, host.ID())
	require.Equal(e.t, pluginhost.StateRunning, st.State, st.Reason)
	return m, host
}

// columnTypes returns a table's native column types by column name.
func (e *env) columnTypes(table string) map[string]string {
	e.t.Helper()
	q := `SELECT name || '=' || type FROM pragma_table_info(?)`
	if e.dialect == testdb.Postgres {
		q = `SELECT column_name || '=' || data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?`
	}
	out := map[string]string{}
	for _, kv := range e.strings(q, table) {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

// indexes lists the names of a table's indexes.
func (e *env) indexes(table string) []string {
	e.t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?`
	if e.dialect == testdb.Postgres {
		q = `SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ?`
	}
	return e.strings(q, table)
}

func TestColumnTypesRoundTrip(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := &fake{manifest: manifest("types", "1.0.0"), tables: []pluginhost.Table{{Name: "vals", Columns: []pluginhost.Column{
			{Name: "id", PrimaryKey: true},
			{Name: "t", Type: pluginhost.Text},
			{Name: "i", Type: pluginhost.Integer},
			{Name: "r", Type: pluginhost.Real},
			{Name: "b", Type: pluginhost.Boolean},
			{Name: "ts", Type: pluginhost.Timestamp},
			{Name: "j", Type: pluginhost.JSON},
			{Name: "bl", Type: pluginhost.Blob},
		}}}}
		_, h := startHost(e, p)
		ctx := context.Background()
		db := h.DB()
		require.Equal(t, pluginhost.Dialect(e.dialect), db.Dialect())
		require.Same(t, e.db, db.Unsandboxed())

		want := map[string]string{
			"id": "INTEGER", "t": "TEXT", "i": "INTEGER", "r": "REAL", "b": "BOOLEAN", "ts": "TIMESTAMP", "j": "TEXT", "bl": "BLOB",
		}
		if e.dialect == testdb.Postgres {
			want = map[string]string{
				"id": "bigint", "t": "text", "i": "bigint", "r": "double precision", "b": "boolean",
				"ts": "timestamp with time zone", "j": "jsonb", "bl": "bytea",
			}
		}
		require.Equal(t, want, e.columnTypes("types__vals"))

		ts := time.Date(2024, 2, 29, 23, 59, 58, 123456000, time.UTC)
		res, err := db.ExecContext(ctx, `INSERT INTO `+db.Table("vals")+` (t, i, r, b, ts, j, bl) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			"héllo 'quoted'", int64(1)<<40, 3.25, true, ts, `{"a": [1, 2], "b": "x"}`, []byte{0, 1, 2, 255})
		require.NoError(t, err)
		n, err := res.RowsAffected()
		require.NoError(t, err)
		require.EqualValues(t, 1, n)

		var (
			gotT  string
			gotI  int64
			gotR  float64
			gotB  bool
			gotTS time.Time
			gotJ  string
			gotBl []byte
		)
		err = db.QueryRowContext(ctx, `SELECT t, i, r, b, ts, j, bl FROM `+db.Table("vals")+` WHERE i = ? AND b = ?`, int64(1)<<40, true).
			Scan(&gotT, &gotI, &gotR, &gotB, &gotTS, &gotJ, &gotBl)
		require.NoError(t, err)
		require.Equal(t, "héllo 'quoted'", gotT)
		require.Equal(t, int64(1)<<40, gotI)
		require.Equal(t, 3.25, gotR)
		require.True(t, gotB)
		require.True(t, ts.Equal(gotTS), "timestamp %v, want %v", gotTS, ts)
		require.JSONEq(t, `{"a": [1, 2], "b": "x"}`, gotJ)
		require.Equal(t, []byte{0, 1, 2, 255}, gotBl)

		// False and the generated id come back too.
		_, err = db.ExecContext(ctx, `INSERT INTO `+db.Table("vals")+` (b) VALUES (?)`, false)
		require.NoError(t, err)
		rows, err := db.QueryContext(ctx, `SELECT id, b FROM `+db.Table("vals")+` ORDER BY id`)
		require.NoError(t, err)
		defer rows.Close()
		var ids []int64
		var bools []bool
		for rows.Next() {
			var id int64
			var b bool
			require.NoError(t, rows.Scan(&id, &b))
			ids, bools = append(ids, id), append(bools, b)
		}
		require.NoError(t, rows.Err())
		require.Equal(t, []int64{1, 2}, ids)
		require.Equal(t, []bool{true, false}, bools)
	})
}

func TestInferredColumnTypes(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := &fake{manifest: manifest("infer", "1.0.0"), tables: []pluginhost.Table{{Name: "t", Columns: []pluginhost.Column{
			{Name: "id", PrimaryKey: true}, {Name: "count"}, {Name: "created_at"}, {Name: "birthdate"},
			{Name: "message"}, {Name: "account_id"}, {Name: "discount"}, {Name: "at_home"}, {Name: "dated_by"},
		}}}}
		startHost(e, p)
		integer, timestamp, text := "INTEGER", "TIMESTAMP", "TEXT"
		if e.dialect == testdb.Postgres {
			integer, timestamp, text = "bigint", "timestamp with time zone", "text"
		}
		require.Equal(t, map[string]string{
			"id": integer, "count": integer, "created_at": timestamp, "birthdate": timestamp,
			"message": text, "account_id": text, "discount": text, "at_home": text, "dated_by": text,
		}, e.columnTypes("infer__t"))
	})
}

func TestTableConstraintsAndDefaults(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := &fake{manifest: manifest("c", "1.0.0"), tables: []pluginhost.Table{{
			Name:       "rows",
			PrimaryKey: []string{"a", "b"},
			Columns: []pluginhost.Column{
				{Name: "a", Type: pluginhost.Integer},
				{Name: "b", Type: pluginhost.Text},
				{Name: "title", NotNull: true},
				{Name: "code", Unique: true},
				{Name: "status", Default: "draft"},
				{Name: "n", Type: pluginhost.Integer, Default: 7},
				{Name: "ratio", Type: pluginhost.Real, Default: 1.5},
				{Name: "flag", Type: pluginhost.Boolean, Default: true},
				{Name: "created_at", NotNull: true, DefaultNow: true},
			},
		}}}
		_, h := startHost(e, p)
		ctx := context.Background()
		db := h.DB()
		insert := func(a int, b, title, code any) error {
			_, err := db.ExecContext(ctx, `INSERT INTO `+db.Table("rows")+` (a, b, title, code) VALUES (?, ?, ?, ?)`, a, b, title, code)
			return err
		}
		require.NoError(t, insert(1, "x", "t", "c1"))
		require.NoError(t, insert(1, "y", "t", "c2"), "the key is the pair")
		require.NoError(t, insert(2, "x", "t", nil))
		require.Error(t, insert(1, "x", "t", "c3"), "composite primary key")
		require.Error(t, insert(3, nil, "t", "c4"), "primary key columns are not null")
		require.Error(t, insert(3, "x", nil, "c5"), "not null")
		require.Error(t, insert(3, "x", "t", "c1"), "unique")
		require.NoError(t, insert(3, "x", "t", nil), "unique allows several nulls")

		var (
			status    string
			n         int64
			ratio     float64
			flag      bool
			createdAt time.Time
		)
		require.NoError(t, db.QueryRowContext(ctx, `SELECT status, n, ratio, flag, created_at FROM `+db.Table("rows")+` WHERE a = ? AND b = ?`, 1, "x").
			Scan(&status, &n, &ratio, &flag, &createdAt))
		require.Equal(t, "draft", status)
		require.EqualValues(t, 7, n)
		require.Equal(t, 1.5, ratio)
		require.True(t, flag)
		require.WithinDuration(t, time.Now(), createdAt, time.Minute)
	})
}

func TestForeignKeyCascade(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := &fake{manifest: manifest("fk", "1.0.0"), tables: []pluginhost.Table{
			// Declared before the table it references: creation order follows the references.
			{Name: "items", Columns: []pluginhost.Column{
				{Name: "id", PrimaryKey: true},
				{Name: "list_id", Type: pluginhost.Integer, NotNull: true, References: "lists.id", OnDelete: "cascade"},
			}},
			{Name: "lists", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "name"}}},
		}}
		_, h := startHost(e, p)
		ctx := context.Background()
		db := h.DB()
		for _, q := range []string{
			`INSERT INTO fk__lists (id, name) VALUES (1, 'a')`,
			`INSERT INTO fk__lists (id, name) VALUES (2, 'b')`,
			`INSERT INTO fk__items (list_id) VALUES (1)`,
			`INSERT INTO fk__items (list_id) VALUES (1)`,
			`INSERT INTO fk__items (list_id) VALUES (2)`,
		} {
			_, err := db.ExecContext(ctx, q)
			require.NoError(t, err, q)
		}
		_, err := db.ExecContext(ctx, `INSERT INTO fk__items (list_id) VALUES (?)`, 99)
		require.Error(t, err, "the foreign key is enforced")

		_, err = db.ExecContext(ctx, `DELETE FROM fk__lists WHERE id = ?`, 1)
		require.NoError(t, err)
		require.Equal(t, 0, e.count(`SELECT count(*) FROM fk__items WHERE list_id = 1`), "on delete cascade")
		require.Equal(t, 1, e.count(`SELECT count(*) FROM fk__items`))
	})
}

func TestIndexesExist(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := &fake{manifest: manifest("ix", "1.0.0"), tables: []pluginhost.Table{{
			Name:    "t",
			Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "title"}, {Name: "a"}, {Name: "b"}},
			Indexes: []pluginhost.Index{{Columns: []string{"title"}}, {Columns: []string{"a", "b"}, Unique: true}},
		}}}
		startHost(e, p)
		ix := e.indexes("ix__t")
		require.Contains(t, ix, "ix__t__ix_title")
		require.Contains(t, ix, "ix__t__ux_a__b")

		e.exec(`INSERT INTO ix__t (a, b) VALUES ('1', '2')`)
		_, err := e.db.ExecContext(context.Background(), `INSERT INTO ix__t (a, b) VALUES ('1', '2')`)
		require.Error(t, err, "the unique index is enforced")
	})
}

func TestPhysicalTableName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		id, table, want, err string
	}{
		{id: "my-plugin", table: "entities", want: "my_plugin__entities"},
		{id: "notes", table: "notes", want: "notes__notes"},
		{id: "a-b", table: "c_d", want: "a_b__c_d"},
		{id: "a-b-c", table: "d", want: "a_b_c__d"},
		{id: "a", table: "b_c_d", want: "a__b_c_d"},
		{id: strings.Repeat("p", 40), table: strings.Repeat("t", 21), want: strings.Repeat("p", 40) + "__" + strings.Repeat("t", 21)},
		{id: strings.Repeat("p", 40), table: strings.Repeat("t", 22), err: "63"},
		{id: "My_Plugin", table: "t", err: "lowercase"},
		{id: "ok", table: "Entities", err: "Entities"},
		{id: "ok", table: "a__b", err: "a__b"},
		{id: "ok", table: "1st", err: "1st"},
		{id: "ok", table: "", err: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.id+"/"+tt.table, func(t *testing.T) {
			t.Parallel()
			got, err := pluginhost.PhysicalTableName(tt.id, tt.table)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestPhysicalNamesDoNotCollide(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		// "a-b"/"c_d", "a-b-c"/"d" and "a"/"b_c_d" would all be "a_b_c_d" with
		// a one-underscore separator.
		col := []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "owner"}}
		ab := &fake{manifest: manifest("a-b", "1.0.0"), tables: []pluginhost.Table{{Name: "c_d", Columns: col}}}
		abc := &fake{manifest: manifest("a-b-c", "1.0.0"), tables: []pluginhost.Table{{Name: "d", Columns: col}}}
		a := &fake{manifest: manifest("a", "1.0.0"), tables: []pluginhost.Table{{Name: "b_c_d", Columns: col}}}
		m, h := startHost(e, ab, abc, a)
		for _, id := range []string{"a-b-c", "a"} {
			require.Equal(t, pluginhost.StateRunning, status(t, m, id).State, status(t, m, id).Reason)
		}
		want, err := pluginhost.PhysicalTableName("a-b", "c_d")
		require.NoError(t, err)
		require.Equal(t, want, h.DB().Table("c_d"))
		require.Equal(t, "a_b__c_d", h.DB().Table("c_d"))

		ctx := context.Background()
		_, err = h.DB().ExecContext(ctx, `INSERT INTO `+h.DB().Table("c_d")+` (owner) VALUES (?)`, "a-b")
		require.NoError(t, err)
		for _, name := range []string{"a_b__c_d", "a_b_c__d", "a__b_c_d"} {
			require.True(t, e.hasTable(name), name)
		}
		require.Equal(t, 1, e.count(`SELECT count(*) FROM a_b__c_d`))
		require.Equal(t, 0, e.count(`SELECT count(*) FROM a_b_c__d`))
		require.Equal(t, 0, e.count(`SELECT count(*) FROM a__b_c_d`))
	})
}

func TestInvalidIdentifiersFailPluginBeforeSQL(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("t", 40)
	good := pluginhost.Table{Name: "good", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}}}
	tests := []struct {
		name, id string
		table    pluginhost.Table
		want     []string
	}{
		{"table name", "p", pluginhost.Table{Name: "Bad-Table", Columns: []pluginhost.Column{{Name: "id"}}},
			[]string{`table "Bad-Table"`, "invalid name"}},
		{"table name with double underscore", "p", pluginhost.Table{Name: "a__b", Columns: []pluginhost.Column{{Name: "id"}}},
			[]string{`table "a__b"`}},
		{"column name", "p", pluginhost.Table{Name: "items", Columns: []pluginhost.Column{{Name: "id"}, {Name: `ti"tle`}}},
			[]string{`table "items"`, `column "ti\"tle"`}},
		{"physical name over 63 bytes", "a-rather-long-plugin-id", pluginhost.Table{Name: long, Columns: []pluginhost.Column{{Name: "id"}}},
			[]string{`table "` + long + `"`, "a_rather_long_plugin_id__" + long, "63"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eachEnv(t, func(t *testing.T, e *env) {
				prefix := strings.ReplaceAll(tt.id, "-", "_") + "__"
				// Had any SQL of the plugin run, creating "good" would fail
				// first, on this table taking its name.
				e.exec(`CREATE TABLE ` + prefix + `good (x INTEGER)`)
				p := &fake{
					manifest:   manifest(tt.id, "1.0.0"),
					tables:     []pluginhost.Table{good, tt.table},
					migrations: sqlFiles(map[string]string{"0001_m.sql": `CREATE TABLE ` + prefix + `from_migration (x INTEGER)`}),
				}
				cfg := e.config(p, itemsPlugin("other"))
				cfg.Required = []string{tt.id}
				m, err := e.tryStart(cfg)
				require.ErrorIs(t, err, pluginhost.ErrRequired)
				require.Contains(t, err.Error(), `plugin "`+tt.id+`"`)
				reason := status(t, m, tt.id).Reason
				for _, w := range append(tt.want, "schema") {
					require.Contains(t, err.Error(), w)
					require.Contains(t, reason, w)
				}
				require.NotContains(t, reason, "already", "no SQL ran")
				require.Equal(t, []string{prefix + "good"}, e.tablesLike(prefix))
				require.Empty(t, e.ledger(tt.id))
			})
		})
	}
}

func TestDBTransactionsRebind(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		_, h := startHost(e, itemsPlugin("tx"))
		db := h.DB()
		ctx := context.Background()
		if e.dialect == testdb.Postgres {
			require.Equal(t, `SELECT $1, '?', $2`, db.Rebind(`SELECT ?, '?', ?`))
		} else {
			require.Equal(t, `SELECT ?, '?', ?`, db.Rebind(`SELECT ?, '?', ?`))
		}

		tx, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, `INSERT INTO `+db.Table("items")+` (title) VALUES (?)`, "rolled back")
		require.NoError(t, err)
		require.NoError(t, tx.Rollback())

		tx, err = db.BeginTx(ctx, nil)
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, `INSERT INTO `+db.Table("items")+` (title) VALUES (?)`, "kept")
		require.NoError(t, err)
		var n int
		require.NoError(t, tx.QueryRowContext(ctx, `SELECT count(*) FROM `+db.Table("items")+` WHERE title = ?`, "kept").Scan(&n))
		require.Equal(t, 1, n)
		require.NotNil(t, tx.SQL())
		require.NoError(t, tx.Commit())
		require.Equal(t, []string{"kept"}, e.strings(`SELECT title FROM tx__items`))
	})
}
