package sqlgen

import "testing"

func TestRoleControl(t *testing.T) {
	for _, tc := range []struct {
		d      Dialect
		script string
		want   string
	}{
		{Postgres, "RESET ROLE", "RESET ROLE"},
		{Postgres, "CREATE TABLE a (x int);\nset role postgres;", "SET ROLE"},
		{Postgres, "SET LOCAL ROLE postgres", "SET LOCAL ROLE"},
		{Postgres, "SET SESSION ROLE postgres", "SET SESSION ROLE"},
		{Postgres, "SET SESSION AUTHORIZATION postgres", "SET SESSION AUTHORIZATION"},
		{Postgres, "SET LOCAL SESSION AUTHORIZATION postgres", "SET LOCAL SESSION AUTHORIZATION"},
		{Postgres, "RESET SESSION AUTHORIZATION", "RESET SESSION AUTHORIZATION"},
		{Postgres, "RESET ALL", "RESET ALL"},
		{Postgres, "SET search_path = x; RESET search_path", ""},
		{Postgres, "INSERT INTO t VALUES ('SET ROLE x'); -- RESET ROLE", ""},
		{Postgres, "DO $$ BEGIN EXECUTE 'RESET ROLE'; END $$", ""},
		{Postgres, "UPDATE t SET role = 1", ""},
		{SQLite, "CREATE TABLE role (set_role TEXT)", ""},
	} {
		kw, _, ok := RoleControl(tc.d, tc.script)
		if kw != tc.want || ok != (tc.want != "") {
			t.Errorf("RoleControl(%q) = %q, %v; want %q", tc.script, kw, ok, tc.want)
		}
	}
}
