package admin_test

import (
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/admin"
	"github.com/pluginhost/pluginhost/pluginhosttest"
)

// tabled is a test plugin with tables.
type tabled struct {
	*plugin
	tables []pluginhost.Table
}

var _ pluginhost.TableProvider = (*tabled)(nil)

func (p *tabled) Tables() []pluginhost.Table { return p.tables }

func items(extra ...string) []pluginhost.Table {
	out := []pluginhost.Table{{Name: "items", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "title"}}}}
	for _, name := range extra {
		out = append(out, pluginhost.Table{Name: name, Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}}})
	}
	return out
}

// serveAdmin mounts the admin API of m at /api/admin behind the bearer
// token.
func serveAdmin(t *testing.T, m *pluginhost.Manager) http.Handler {
	t.Helper()
	f := &fixture{}
	api, err := admin.New(admin.Config{Manager: m, Authorize: f.bearer})
	require.NoError(t, err)
	r := chi.NewRouter()
	r.Mount("/api/admin", api)
	return r
}

// tableCount counts the database's tables.
func tableCount(t *testing.T, db *sql.DB, d pluginhost.Dialect) int {
	t.Helper()
	q := `SELECT count(*) FROM sqlite_schema WHERE type = 'table'`
	if d == pluginhost.Postgres {
		q = `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()`
	}
	var n int
	require.NoError(t, db.QueryRow(q).Scan(&n))
	return n
}

// GET /plan returns the Plan of the Manager: on a running one, nothing to
// do; on one not started yet with a newer plugin, the table it would
// create, which the request does not create.
func TestPlan(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		inst := pluginhosttest.Start(t, opts, &tabled{plugin: newPlugin("notes"), tables: items()})
		f := &fixture{inst: inst, handler: serveAdmin(t, inst.Manager)}

		p := decode[pluginhost.Plan](t, f.do(t, "GET", "/plan", ""), http.StatusOK)
		require.False(t, p.Work, "%+v", p)
		require.Len(t, p.Plugins, 1)
		require.Equal(t, "notes", p.Plugins[0].ID)
		require.True(t, p.Plugins[0].Start)
		require.Empty(t, p.Plugins[0].Tables)

		// A Manager of a newer notes on the same database, not started.
		reg := pluginhost.NewRegistry()
		require.NoError(t, reg.Register(&tabled{plugin: newPlugin("notes"), tables: items("tags")}))
		cfg := opts.Config
		cfg.DB, cfg.Registry = inst.DB, reg
		next, err := pluginhost.New(cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = next.Shutdown(context.Background()) })
		dialect := pluginhost.SQLite
		if opts.PostgresURL != "" {
			dialect = pluginhost.Postgres
		}
		tables := tableCount(t, inst.DB, dialect)
		f.handler = serveAdmin(t, next)
		p = decode[pluginhost.Plan](t, f.do(t, "GET", "/plan", ""), http.StatusOK)
		require.True(t, p.Work)
		require.Equal(t, []string{"tags"}, p.Plugins[0].Tables)
		require.Equal(t, tables, tableCount(t, inst.DB, dialect), "GET /plan created nothing")
	})
}

// GET /plan is behind Authorize, and a database that cannot be read is a
// 500 with the reason.
func TestPlanErrors(t *testing.T) {
	t.Parallel()
	inst := pluginhosttest.Start(t, pluginhosttest.Options{}, newPlugin("notes"))
	h := serveAdmin(t, inst.Manager)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/admin/plan", nil))
	require.Equal(t, http.StatusUnauthorized, rec.Code)

	f := &fixture{inst: inst, handler: h}
	require.NoError(t, inst.DB.Close())
	body := decode[errorBody](t, f.do(t, "GET", "/plan", ""), http.StatusInternalServerError)
	require.Contains(t, body.Error, "plan:")
	require.Contains(t, body.Error, "database is closed")
}
