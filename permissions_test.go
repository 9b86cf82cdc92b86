package pluginhost_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

var catalog = []pluginhost.Permission{
	{Name: "notes.read", Description: "Read notes"},
	{Name: "notes.write", Description: "Create and change notes"},
}

func TestUnknownPermissionFailsThePluginNamingPermissionAndLine(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		// The line is that of the permissions array: tomlpos does not index its elements.
		bad := &fake{manifest: manifest("bad", "1.0.0", "permissions = [", `  "notes.read",`, `  "notes.nuke",`, "]")}
		good := &fake{manifest: manifest("good", "1.0.0", `permissions = ["notes.write", "notes.read"]`)}
		cfg := e.config(bad, good)
		cfg.Permissions = catalog
		m := e.start(cfg)

		st := status(t, m, "bad")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.ErrorIs(t, st.Err, pluginhost.ErrUnknownPermission)
		require.Contains(t, st.Reason, `plugin "bad": permission "notes.nuke" (plugin.toml line 4) is not in the host's catalog`)
		require.Contains(t, st.Reason, `Config.Permissions lists "notes.read", "notes.write"`)
		require.Contains(t, st.Reason, pluginhost.PhaseResolve)

		st = status(t, m, "good")
		require.Equal(t, pluginhost.StateRunning, st.State)
		require.Equal(t, []pluginhost.Permission{
			{Name: "notes.write", Description: "Create and change notes"},
			{Name: "notes.read", Description: "Read notes"},
		}, st.Permissions, "in the manifest's order, with the catalog's descriptions")
	})
}

func TestUnknownPermissionWarnsWhenConfigSaysSo(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := &fake{manifest: manifest("lax", "1.0.0", `permissions = ["notes.read", "notes.nuke"]`)}
		cfg := e.config(p)
		cfg.Permissions = catalog
		cfg.WarnUnknownPermissions = true
		m := e.start(cfg)

		st := status(t, m, "lax")
		require.Equal(t, pluginhost.StateRunning, st.State)
		require.Len(t, st.Warnings, 1)
		require.Contains(t, st.Warnings[0], `plugin "lax": permission "notes.nuke" (plugin.toml line 4) is not in the host's catalog`)
		require.Equal(t, []pluginhost.Permission{{Name: "notes.read", Description: "Read notes"}, {Name: "notes.nuke"}}, st.Permissions)
	})
}

func TestWithoutCatalogEveryPermissionIsAccepted(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := &fake{manifest: manifest("free", "1.0.0", `permissions = ["db.read", "http.outbound"]`)}
		plain := &fake{manifest: manifest("plain", "1.0.0"), routes: okRoute("/x", "x")}
		m := e.start(e.config(p, plain))

		st := status(t, m, "free")
		require.Equal(t, pluginhost.StateRunning, st.State)
		require.Empty(t, st.Warnings)
		require.Equal(t, []pluginhost.Permission{{Name: "db.read"}, {Name: "http.outbound"}}, st.Permissions)

		st = status(t, m, "plain")
		require.Equal(t, pluginhost.StateRunning, st.State)
		require.Nil(t, st.Permissions)
		require.Equal(t, http.StatusOK, serve(t, m.Handler(), "GET", "/api/plugin/plain/x", "").Code)
	})
}

// guarded registers GET /open, and GET /read and POST /write protected by
// notes.read and notes.write.
func guarded(r chi.Router, h *pluginhost.Host) {
	ok := func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }
	r.Get("/open", ok)
	r.With(h.Require("notes.read")).Get("/read", ok)
	r.With(h.Require("notes.write")).Post("/write", ok)
}

func TestRequireAsksTheAuthorizerAndAnswers403JSON(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := &fake{manifest: manifest("notes", "1.0.0", `permissions = ["notes.read", "notes.write"]`), routes: guarded}
		cfg := e.config(p)
		cfg.Permissions = catalog
		cfg.Authorize = func(r *http.Request, plugin, permission string) error {
			// The role in the header holds the permissions it lists.
			if plugin == "notes" && slices.Contains(strings.Split(r.Header.Get("X-Grants"), ","), permission) {
				return nil
			}
			return errors.New("role lacks " + permission)
		}
		m := e.start(cfg)

		rec := serveAs(t, m.Handler(), "GET", "/api/plugin/notes/open", "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		rec = serveAs(t, m.Handler(), "GET", "/api/plugin/notes/read", "notes.read")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.Equal(t, "ok", rec.Body.String())

		rec = serveAs(t, m.Handler(), "POST", "/api/plugin/notes/write", "notes.read")
		require.Equal(t, http.StatusForbidden, rec.Code)
		require.Equal(t, map[string]any{"error": "permission denied", "plugin": "notes", "permission": "notes.write"}, jsonBody(t, rec))
		require.NotContains(t, rec.Body.String(), "role lacks", "the authorizer's reason is logged, not sent")

		rec = serveAs(t, m.Handler(), "POST", "/api/plugin/notes/write", "notes.read,notes.write")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.Contains(t, e.logs.String(), "role lacks notes.write")
	})
}

func TestRequireWithoutAuthorizerDeniesAndWarnsOnce(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := &fake{manifest: manifest("notes", "1.0.0", `permissions = ["notes.read", "notes.write"]`), routes: guarded}
		m := e.start(e.config(p))

		for range 2 {
			rec := serve(t, m.Handler(), "GET", "/api/plugin/notes/read", "")
			require.Equal(t, http.StatusForbidden, rec.Code)
			require.Equal(t, "permission denied", jsonBody(t, rec)["error"])
		}
		require.Equal(t, http.StatusOK, serve(t, m.Handler(), "GET", "/api/plugin/notes/open", "").Code)
		require.Equal(t, 1, strings.Count(e.logs.String(), "set Config.Authorize"), e.logs.String())
	})
}

func TestRequiringAnUndeclaredPermissionFailsThePluginAtRouteRegistration(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		p := &fake{manifest: manifest("notes", "1.0.0", `permissions = ["notes.read"]`), routes: guarded}
		other := &fake{manifest: manifest("other", "1.0.0"), routes: okRoute("/x", "x")}
		cfg := e.config(p, other)
		cfg.Authorize = func(*http.Request, string, string) error { return nil }
		m := e.start(cfg)

		st := status(t, m, "notes")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.ErrorIs(t, st.Err, pluginhost.ErrUndeclaredPermission)
		require.Contains(t, st.Reason, pluginhost.PhaseRoutes)
		require.Contains(t, st.Reason, `plugin "notes" requires permission "notes.write" on a route, which its manifest does not declare`)
		require.Equal(t, http.StatusServiceUnavailable, serve(t, m.Handler(), "GET", "/api/plugin/notes/open", "").Code)
		require.Equal(t, http.StatusOK, serve(t, m.Handler(), "GET", "/api/plugin/other/x", "").Code)
	})
}

func TestPermissionCatalogIsChecked(t *testing.T) {
	t.Parallel()
	_, err := pluginhost.New(pluginhost.Config{
		DB: testdb.OpenSQLite(t), Registry: pluginhost.NewRegistry(), Logger: discardLogger(),
		Permissions: []pluginhost.Permission{{Name: "a"}, {Name: ""}, {Name: " b"}, {Name: "a"}},
	})
	require.Error(t, err)
	require.Contains(t, err.Error(), "Config.Permissions[1]: Name is empty")
	require.Contains(t, err.Error(), `Config.Permissions[2]: name " b" has leading or trailing space`)
	require.Contains(t, err.Error(), `Config.Permissions[3]: permission "a" is listed twice`)
}

// serveAs serves a request whose X-Grants header lists grants.
func serveAs(t *testing.T, h http.Handler, method, path, grants string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	req.Header.Set("X-Grants", grants)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
