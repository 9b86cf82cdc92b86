package testdb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"
)

// Role is a PostgreSQL login role a test created, with a schema it owns.
type Role struct {
	// Name is the role's name; the roles whose names start with Prefix
	// are dropped with it.
	Name   string
	Prefix string
	// Schema is the schema it owns; DSN logs in as Name with Schema as
	// its search path.
	Schema string
	DSN    string
	// Admin is a pool on the server as base's user, a superuser, closed
	// when the test ends.
	Admin *sql.DB
}

// NewRole creates, as base's user (a superuser), a login role with attrs
// (such as "CREATEROLE", or "" for none) and a schema it owns, on the
// server at base. When the test ends the schema is dropped, and so are the
// role and every role whose name starts with its Prefix (Name + "_"),
// each after DROP OWNED BY: a test that gives the roles it provisions
// names starting with Prefix leaves nothing behind.
func NewRole(t testing.TB, base, attrs string) Role {
	t.Helper()
	admin := OpenAgain(t, Postgres, base)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		if os.Getenv(RequirePostgresEnv) == "1" {
			t.Fatalf("PostgreSQL at %s is unreachable: %v", redact(base), err)
		}
		t.Skipf("PostgreSQL at %s is unreachable (%v); set %s=1 to make this a failure", redact(base), err, RequirePostgresEnv)
	}
	name := fmt.Sprintf("tr_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6, counter.Add(1))
	r := Role{Name: name, Prefix: name + "_", Schema: name, Admin: admin}
	if _, err := admin.ExecContext(ctx, `CREATE ROLE `+name+` LOGIN `+attrs); err != nil {
		t.Fatalf("create role %s: %v", name, err)
	}
	t.Cleanup(func() { dropRoles(t, admin, r) })
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+name+` AUTHORIZATION `+name); err != nil {
		t.Fatalf("create schema %s: %v", name, err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("postgres url: %v", err)
	}
	u.User = url.User(name)
	dsn, err := withSearchPath(u.String(), name)
	if err != nil {
		t.Fatalf("postgres url: %v", err)
	}
	r.DSN = dsn
	return r
}

// LoginDSN returns a DSN on r's schema that logs in as role, which the
// test created WITH LOGIN.
func (r Role) LoginDSN(t testing.TB, role string) string {
	t.Helper()
	u, err := url.Parse(r.DSN)
	if err != nil {
		t.Fatalf("postgres url: %v", err)
	}
	u.User = url.User(role)
	return u.String()
}

// dropRoles drops r's schema, the roles that start with r.Prefix, and r.
func dropRoles(t testing.TB, admin *sql.DB, r Role) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, `DROP SCHEMA IF EXISTS `+r.Schema+` CASCADE`); err != nil {
		t.Errorf("drop schema %s: %v", r.Schema, err)
	}
	rows, err := admin.QueryContext(ctx, `SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) OR rolname = $2
		ORDER BY rolname = $2, rolname`, r.Prefix, r.Name)
	if err != nil {
		t.Errorf("list the test's roles: %v", err)
		return
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Errorf("list the test's roles: %v", err)
		}
		names = append(names, n)
	}
	_ = rows.Close()
	for _, n := range names {
		q := `"` + n + `"`
		if _, err := admin.ExecContext(ctx, `DROP OWNED BY `+q); err != nil {
			t.Errorf("drop owned by %s: %v", n, err)
		}
		if _, err := admin.ExecContext(ctx, `DROP ROLE `+q); err != nil {
			t.Errorf("drop role %s: %v", n, err)
		}
	}
}
