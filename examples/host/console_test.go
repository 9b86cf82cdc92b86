package main

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost/admin"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// The host serves the console at /admin/ to anyone (it holds no data), the
// admin API lists the notes page in /api/admin/nav behind the token, and
// the page, served by notes itself, goes away with it.
func TestHostServesTheConsole(t *testing.T) {
	// Not parallel: it sets PLUGINHOST_ADMIN_TOKEN in the environment.
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		dsn := filepath.Join(t.TempDir(), "example.db")
		if d == testdb.Postgres {
			_, dsn = testdb.OpenPostgres(t)
		}
		t.Setenv("PLUGINHOST_ADMIN_TOKEN", "s3cret")
		base, _ := startHost(t, io.Discard, "-db", dsn)

		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noRedirect.Get(base + "/admin")
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusMovedPermanently, resp.StatusCode)
		require.Equal(t, "/admin/", resp.Header.Get("Location"))

		resp, err = http.Get(base + "/admin/")
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, admin.ConsoleCSP, resp.Header.Get("Content-Security-Policy"))
		require.Contains(t, string(body), `content="/api/admin"`)

		nav := func(token string) (int, []admin.NavItem) {
			req, err := http.NewRequest("GET", base+"/api/admin/nav", nil)
			require.NoError(t, err)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var out struct{ Nav []admin.NavItem }
			_ = json.NewDecoder(resp.Body).Decode(&out)
			return resp.StatusCode, out.Nav
		}
		code, _ := nav("wrong")
		require.Equal(t, http.StatusUnauthorized, code)
		code, items := nav("s3cret")
		require.Equal(t, http.StatusOK, code)
		require.Len(t, items, 1)
		require.Equal(t, "notes", items[0].Plugin)
		require.Equal(t, "Notes", items[0].Label)
		require.Equal(t, "/api/plugin/notes/_console/index.html", items[0].Href)

		page := func() int {
			resp, err := http.Get(base + items[0].Href)
			require.NoError(t, err)
			resp.Body.Close()
			return resp.StatusCode
		}
		require.Equal(t, http.StatusOK, page())
		require.Equal(t, http.StatusOK, adminPost(t, base+"/api/admin/plugins/notes/disable", "s3cret"))
		require.Equal(t, http.StatusServiceUnavailable, page())
		_, items2 := nav("s3cret")
		require.Empty(t, items2)
	})
}
