package pluginhost_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

func TestStartServesRunningPlugin(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		e := newEnv(t, d)
		p := &fake{
			manifest: manifest("hello", "1.0.0"),
			tables:   []pluginhost.Table{{Name: "items", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}, {Name: "title", NotNull: true}}}},
			routes: func(r chi.Router, h *pluginhost.Host) {
				r.Get("/hi", func(w http.ResponseWriter, r *http.Request) {
					_, _ = w.Write([]byte("hi from " + pluginhost.PluginID(r.Context())))
				})
			},
		}
		m := e.start(e.config(p))
		st := status(t, m, "hello")
		require.Equal(t, pluginhost.StateRunning, st.State, st.Reason)
		rec := serve(t, m.Handler(), "GET", "/api/plugin/hello/hi", "")
		require.Equal(t, 200, rec.Code)
		require.Equal(t, "hi from hello", rec.Body.String())
		_, err := e.db.ExecContext(context.Background(), `INSERT INTO hello__items (title) VALUES ('x')`)
		require.NoError(t, err)
	})
}
