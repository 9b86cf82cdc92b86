package sqlgen

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRebind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, query, want string
	}{
		{"none", "SELECT 1", "SELECT 1"},
		{"one", "SELECT * FROM t WHERE id = ?", "SELECT * FROM t WHERE id = $1"},
		{"several", "INSERT INTO t (a, b, c) VALUES (?, ?,?)", "INSERT INTO t (a, b, c) VALUES ($1, $2,$3)"},
		{"ten and more", strings.Repeat("?,", 11) + "?", "$1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12"},
		{"cast", "SELECT ?::int", "SELECT $1::int"},
		{"string", "SELECT '?', ?", "SELECT '?', $1"},
		{"string with doubled quote", "SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"},
		{"empty string", "SELECT '', ?", "SELECT '', $1"},
		{"adjacent strings", "SELECT '?''?' || '?', ?", "SELECT '?''?' || '?', $1"},
		{"escape string", `SELECT E'\'?', ?`, `SELECT E'\'?', $1`},
		{"escape string lowercase", `SELECT e'a\\', ?`, `SELECT e'a\\', $1`},
		{"not an escape string", `SELECT name'\', ?`, `SELECT name'\', $1`},
		{"plain string with backslash", `SELECT '\', ?`, `SELECT '\', $1`},
		{"identifier", `SELECT "what?" FROM t WHERE x = ?`, `SELECT "what?" FROM t WHERE x = $1`},
		{"identifier with doubled quote", `SELECT "a""?" , ?`, `SELECT "a""?" , $1`},
		{"line comment", "SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2"},
		{"line comment at the end", "SELECT ? -- why?", "SELECT $1 -- why?"},
		{"minus", "SELECT 1-?", "SELECT 1-$1"},
		{"block comment", "SELECT /* ? */ ?", "SELECT /* ? */ $1"},
		{"nested block comment", "SELECT /* a /* ? */ ? */ ?", "SELECT /* a /* ? */ ? */ $1"},
		{"division", "SELECT ?/?", "SELECT $1/$2"},
		{"dollar quoted", "SELECT $$ ? $$, ?", "SELECT $$ ? $$, $1"},
		{"tagged dollar quoted", "SELECT $fn$ ? $$ ? $fn$, ?", "SELECT $fn$ ? $$ ? $fn$, $1"},
		{"dollar quote with an underscore tag", "SELECT $_x1$?$_x1$, ?", "SELECT $_x1$?$_x1$, $1"},
		{"positional parameter is not a quote", "SELECT $1, ?", "SELECT $1, $1"},
		{"dollar inside an identifier", "SELECT a$b$ FROM t WHERE x = ?", "SELECT a$b$ FROM t WHERE x = $1"},
		{"unterminated string", "SELECT ?, 'abc ?", "SELECT $1, 'abc ?"},
		{"unterminated identifier", `SELECT ?, "abc ?`, `SELECT $1, "abc ?`},
		{"unterminated comment", "SELECT ? /* ?", "SELECT $1 /* ?"},
		{"unterminated dollar quote", "SELECT ? $q$ ?", "SELECT $1 $q$ ?"},
		{"lone dollar", "SELECT ? $", "SELECT $1 $"},
		{"utf-8", "SELECT 'café ?', ? -- ☕?", "SELECT 'café ?', $1 -- ☕?"},
		{"everything", "/* ? */ SELECT \"?\", '?', $t$?$t$, ? -- ?\nWHERE a = ?",
			"/* ? */ SELECT \"?\", '?', $t$?$t$, $1 -- ?\nWHERE a = $2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, Rebind(Postgres, tc.query))
			require.Equal(t, tc.query, Rebind(SQLite, tc.query), "SQLite understands ?")
		})
	}
}

func BenchmarkRebind(b *testing.B) {
	queries := map[string]string{
		"none": `SELECT "id", "title" FROM "my_plugin__notes" ORDER BY "id"`,
		"typical": `SELECT "id", "title" FROM "my_plugin__notes" WHERE "owner" = ? AND "title" <> 'it''s ?' ` +
			`AND "created_at" > ? -- newest?` + "\n" + `ORDER BY "id" LIMIT ?`,
		"many": "INSERT INTO t VALUES (" + strings.Repeat("?, ", 99) + "?)",
	}
	for name, q := range queries {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(q)))
			for b.Loop() {
				_ = Rebind(Postgres, q)
			}
		})
	}
}
