package sqlgen

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestTransactionControl(t *testing.T) {
	t.Parallel()
	both := []Dialect{SQLite, Postgres}
	tests := []struct {
		name     string
		dialects []Dialect
		script   string
		want     string // keywords; "" for none
		at       string // the script from the statement on, when want is set
	}{
		{"none", both, "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);", "", ""},
		{"empty", both, "", "", ""},
		{"only comments", both, "-- COMMIT\n/* BEGIN */", "", ""},
		{"commit then begin", both, "CREATE TABLE a (x INTEGER);\nCOMMIT;\nBEGIN;\nCREATE TABLE b (x INTEGER);", "COMMIT", "COMMIT;\nBEGIN;"},
		{"first", both, "BEGIN; CREATE TABLE a (x INTEGER); COMMIT;", "BEGIN", "BEGIN; CREATE"},
		{"lower case", both, "create table a (x integer); commit", "COMMIT", "commit"},
		{"mixed case with a mode", both, "Begin Immediate Transaction;", "BEGIN", "Begin"},
		{"end", both, "SELECT 1; END;", "END", "END;"},
		{"end transaction", both, "SELECT 1; END TRANSACTION", "END", "END TRANSACTION"},
		{"rollback", both, "SELECT 1;ROLLBACK", "ROLLBACK", "ROLLBACK"},
		{"rollback to savepoint", both, "SELECT 1; ROLLBACK TO SAVEPOINT s", "ROLLBACK", "ROLLBACK TO"},
		{"abort", both, "SELECT 1; ABORT;", "ABORT", "ABORT;"},
		{"savepoint", both, "SAVEPOINT a; SELECT 1;", "SAVEPOINT", "SAVEPOINT a"},
		{"release", both, "SELECT 1; RELEASE SAVEPOINT a", "RELEASE", "RELEASE SAVEPOINT"},
		{"release without savepoint", both, "SELECT 1; RELEASE a", "RELEASE", "RELEASE a"},
		{"start transaction", both, "SELECT 1; START TRANSACTION;", "START TRANSACTION", "START TRANSACTION;"},
		{"start transaction on two lines", both, "SELECT 1; START\n  TRANSACTION;", "START TRANSACTION", "START\n"},
		{"prepare transaction", both, "SELECT 1; PREPARE TRANSACTION 'x';", "PREPARE TRANSACTION", "PREPARE TRANSACTION"},
		{"prepare statement", both, "PREPARE q AS SELECT 1;", "", ""},
		{"after a comment", both, "SELECT 1; /* why */ -- really\n COMMIT", "COMMIT", "COMMIT"},
		{"comment between statements", both, "SELECT 1 -- ;\n; COMMIT", "COMMIT", "COMMIT"},
		{"no semicolon at the end", both, "SELECT 1; COMMIT", "COMMIT", "COMMIT"},
		{"keyword as a column", both, "CREATE TABLE t (\"commit\" TEXT, x INTEGER); SELECT x, \"end\" FROM t;", "", ""},
		{"keyword not first", both, "SELECT 1 AS commit_count; UPDATE t SET x = 1 WHERE y = 'END';", "", ""},
		{"word starting with a keyword", both, "COMMITS;", "", ""},
		{"case expression", both, "SELECT CASE WHEN 1 THEN 2 END; SELECT 3;", "", ""},
		{"in a string", both, "INSERT INTO t VALUES ('a; COMMIT; b');", "", ""},
		{"in a string with a doubled quote", both, "INSERT INTO t VALUES ('it''s; COMMIT');", "", ""},
		{"in an identifier", both, `SELECT 1 AS "x; COMMIT";`, "", ""},
		{"in a line comment", both, "SELECT 1; -- COMMIT;\nSELECT 2;", "", ""},
		{"in a block comment", both, "SELECT 1; /* ; COMMIT; */ SELECT 2;", "", ""},
		{"in parentheses", both, "SELECT (1); SELECT (SELECT 1; COMMIT);", "", ""},
		{"after parentheses close", both, "SELECT (1;) ; COMMIT", "COMMIT", "COMMIT"},
		{"unterminated string", both, "SELECT 'x; COMMIT", "", ""},
		{"sqlite trigger", both,
			"CREATE TRIGGER t_ins AFTER INSERT ON t BEGIN\n  UPDATE c SET n = n + 1;\n  INSERT INTO log VALUES ('x');\nEND;\nSELECT 1;", "", ""},
		{"temp trigger with a case", both,
			"CREATE TEMP TRIGGER IF NOT EXISTS tr BEFORE UPDATE ON t FOR EACH ROW WHEN new.x > 0 BEGIN\n UPDATE t SET y = CASE WHEN new.x > 1 THEN 1 END;\nEND; COMMIT;", "COMMIT", "COMMIT;"},
		{"after a trigger", both, "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END; END;", "END", "END;"},
		{"begin atomic", both,
			"CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\nCREATE PROCEDURE p() BEGIN ATOMIC INSERT INTO t VALUES (1); END; SELECT 3;", "", ""},
		{"after begin atomic", both, "CREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1; END; ROLLBACK;", "ROLLBACK", "ROLLBACK;"},
		{"table named trigger", both, "CREATE TABLE trigger (x INTEGER); BEGIN;", "BEGIN", "BEGIN;"},
		{"trigger body never closed", both, "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; COMMIT;", "", ""},

		{"dollar quoted", []Dialect{Postgres},
			"CREATE FUNCTION f() RETURNS trigger AS $$ BEGIN COMMIT; RETURN NEW; END; $$ LANGUAGE plpgsql; SELECT 1;", "", ""},
		{"tagged dollar quoted", []Dialect{Postgres}, "DO $body$ BEGIN ROLLBACK; END $body$; SELECT 1;", "", ""},
		{"after a dollar quote", []Dialect{Postgres}, "DO $$ BEGIN NULL; END $$;\nCOMMIT;", "COMMIT", "COMMIT;"},
		{"escape string", []Dialect{Postgres}, `SELECT E'\'; COMMIT; '; SELECT 1;`, "", ""},
		{"nested comment", []Dialect{Postgres}, "SELECT 1; /* a /* b */ COMMIT; */ SELECT 2;", "", ""},
		{"positional parameter", []Dialect{Postgres}, "SELECT $1; COMMIT", "COMMIT", "COMMIT"},

		{"sqlite comments do not nest", []Dialect{SQLite}, "SELECT 1; /* a /* b */ COMMIT; */ SELECT 2;", "COMMIT", "COMMIT; */"},
		{"sqlite backslash is no escape", []Dialect{SQLite}, `SELECT '\'; COMMIT; SELECT 'x';`, "COMMIT", "COMMIT;"},
		{"sqlite has no dollar quotes", []Dialect{SQLite}, "SELECT $$; COMMIT; $$", "COMMIT", "COMMIT;"},
		{"sqlite backquoted identifier", []Dialect{SQLite}, "SELECT `a; COMMIT`;", "", ""},
		{"sqlite bracketed identifier", []Dialect{SQLite}, "SELECT [a; COMMIT];", "", ""},
		{"postgres brackets are arrays", []Dialect{Postgres}, "SELECT ARRAY[1]; COMMIT", "COMMIT", "COMMIT"},
	}
	for _, tc := range tests {
		for _, d := range tc.dialects {
			t.Run(tc.name+"/"+string(d), func(t *testing.T) {
				t.Parallel()
				kw, off, ok := TransactionControl(d, tc.script)
				if tc.want == "" {
					require.False(t, ok, "found %q at %d", kw, off)
					return
				}
				require.True(t, ok)
				require.Equal(t, tc.want, kw)
				require.True(t, strings.HasPrefix(tc.script[off:], tc.at), "statement at %d: %q", off, tc.script[off:])
			})
		}
	}
}

func FuzzTransactionControl(f *testing.F) {
	f.Add("CREATE TABLE a (x INTEGER); COMMIT;")
	f.Add("CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; END; BEGIN;")
	f.Add("DO $$ BEGIN COMMIT; END $$; /* /* */ */ ROLLBACK")
	f.Fuzz(func(t *testing.T, script string) {
		for _, d := range []Dialect{SQLite, Postgres} {
			kw, off, ok := TransactionControl(d, script)
			if !ok {
				continue
			}
			if off < 0 || off >= len(script) || !strings.EqualFold(script[off:off+len(strings.Fields(kw)[0])], strings.Fields(kw)[0]) {
				t.Fatalf("%s: %q at %d does not start the statement: %q", d, kw, off, script)
			}
		}
	})
}

func BenchmarkTransactionControl(b *testing.B) {
	script := strings.Repeat("CREATE TABLE t (x INTEGER, y TEXT DEFAULT 'a;b'); -- note\nINSERT INTO t VALUES (1, 'COMMIT');\n", 200)
	b.SetBytes(int64(len(script)))
	for b.Loop() {
		_, _, _ = TransactionControl(Postgres, script)
	}
}
