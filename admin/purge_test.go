package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/admin"
	"github.com/pluginhost/pluginhost/pluginhosttest"
)

// memo is a plugin with a table, a row written once and a setting.
type memo struct{ *plugin }

var _ pluginhost.SeedOncer = memo{}

func (memo) Tables() []pluginhost.Table {
	return []pluginhost.Table{{Name: "memos", Columns: []pluginhost.Column{
		{Name: "id", PrimaryKey: true}, {Name: "body"}, {Name: "pinned", Type: pluginhost.Boolean},
	}}}
}

func (memo) SeedOnce(ctx context.Context, _ *pluginhost.Host, tx *pluginhost.Tx) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO `+tx.Table("memos")+` (body, pinned) VALUES (?, ?), (?, ?)`, "first", true, "second", false)
	return err
}

func newMemo() memo {
	return memo{newPlugin("memo", `
[[settings]]
key = "memo.size"
type = "number"
default = 3
`)}
}

// adminOf returns the admin API of inst's Manager, open to anyone.
func adminOf(t *testing.T, inst *pluginhosttest.Instance) http.Handler {
	t.Helper()
	api, err := admin.New(admin.Config{Manager: inst.Manager, Insecure: true})
	require.NoError(t, err)
	return api
}

func call(api http.Handler, method, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	return rec
}

// Through the admin API: the list shows a removed plugin; export streams
// its rows; purge wants the id repeated, and is refused while the plugin
// runs.
func TestExportAndPurgeThroughTheAPI(t *testing.T) {
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		inst := pluginhosttest.Start(t, opts, newMemo(), newPlugin("keeper"))
		api := adminOf(t, inst)

		rec := call(api, "POST", "/plugins/memo/purge", `{"confirm":"memo"}`)
		require.Equal(t, http.StatusConflict, rec.Code, rec.Body.String())
		require.Contains(t, rec.Body.String(), "disable it first")

		inst.Restart(t, newPlugin("keeper"))
		api = adminOf(t, inst)

		var list struct {
			Plugins []pluginhost.PluginStatus `json:"plugins"`
		}
		rec = call(api, "GET", "/plugins", "")
		require.Equal(t, http.StatusOK, rec.Code)
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
		require.Len(t, list.Plugins, 2)
		require.Equal(t, "keeper", list.Plugins[0].ID)
		removed := list.Plugins[1]
		require.Equal(t, "memo", removed.ID)
		require.Equal(t, pluginhost.StateRemoved, removed.State)
		require.Equal(t, []string{"memos"}, removed.Tables)
		require.Equal(t, []string{"memo.size"}, removed.SettingKeys)
		require.Contains(t, removed.LedgerRows, "table:memos")
		rec = call(api, "GET", "/plugins/memo", "")
		require.Equal(t, http.StatusOK, rec.Code)
		require.Contains(t, rec.Body.String(), `"state":"removed"`)

		rec = call(api, "GET", "/plugins/memo/export", "")
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.Equal(t, "application/x-ndjson", rec.Header().Get("Content-Type"))
		require.Equal(t, `{"table":"memos","row":{"id":1,"body":"first","pinned":true}}
{"table":"memos","row":{"id":2,"body":"second","pinned":false}}
`, rec.Body.String())
		rec = call(api, "GET", "/plugins/keeper/export", "")
		require.Equal(t, http.StatusOK, rec.Code, "a plugin without tables exports nothing")
		require.Empty(t, rec.Body.String())
		rec = call(api, "GET", "/plugins/ghost/export", "")
		require.Equal(t, http.StatusNotFound, rec.Code)
		require.Equal(t, "application/json", rec.Header().Get("Content-Type"))

		for _, body := range []string{``, `{}`, `{"confirm":"mem"}`, `{"confirm":"memo","x":1}`, `not json`, `{"confirm":1}`} {
			rec = call(api, "POST", "/plugins/memo/purge", body)
			require.Equal(t, http.StatusBadRequest, rec.Code, body)
			require.Contains(t, rec.Body.String(), `the body must be {\"confirm\": \"memo\"}`, body)
		}
		require.Equal(t, pluginhost.StateRemoved, status(t, inst, "memo").State, "a refused purge changes nothing")

		rec = call(api, "POST", "/plugins/ghost/purge", `{"confirm":"ghost"}`)
		require.Equal(t, http.StatusNotFound, rec.Code, rec.Body.String())

		rec = call(api, "POST", "/plugins/memo/purge", `{"confirm":"memo"}`)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		require.JSONEq(t, `{"purged":"memo"}`, rec.Body.String())
		var n int
		require.NoError(t, inst.DB.QueryRow(`SELECT count(*) FROM pluginhost_ledger WHERE line = 'memo'`).Scan(&n))
		require.Zero(t, n)
		require.NoError(t, inst.DB.QueryRow(`SELECT count(*) FROM pluginhost_settings WHERE key = 'memo.size'`).Scan(&n))
		require.Zero(t, n)
		rec = call(api, "GET", "/plugins/memo", "")
		require.Equal(t, http.StatusNotFound, rec.Code, "purged: no longer listed")
		rec = call(api, "GET", "/plugins/memo/export", "")
		require.Equal(t, http.StatusNotFound, rec.Code)
	})
}

func status(t *testing.T, inst *pluginhosttest.Instance, id string) pluginhost.PluginStatus {
	t.Helper()
	for _, st := range inst.Manager.Status() {
		if st.ID == id {
			return st
		}
	}
	t.Fatalf("no plugin %q", id)
	return pluginhost.PluginStatus{}
}
