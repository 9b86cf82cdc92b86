package pluginhosttest_test

import (
	"net/http"
	"os"
	"strconv"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/pluginhosttest"
)

type counter struct{ id string }

func (c *counter) Manifest() []byte {
	return []byte("id = \"" + c.id + "\"\nname = \"Counter\"\nversion = \"1.0.0\"\n")
}

func (c *counter) Tables() []pluginhost.Table {
	return []pluginhost.Table{{Name: "hits", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}}}}
}

func (c *counter) RegisterRoutes(r chi.Router, h *pluginhost.Host) {
	r.Post("/hit", func(w http.ResponseWriter, r *http.Request) {
		if _, err := h.DB().ExecContext(r.Context(), `INSERT INTO `+h.DB().Table("hits")+` DEFAULT VALUES`); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		var n int
		_ = h.DB().QueryRowContext(r.Context(), `SELECT count(*) FROM `+h.DB().Table("hits")).Scan(&n)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"hits":` + strconv.Itoa(n) + `}`))
	})
}

// Parallel tests each get a database of their own: every one of them sees
// exactly its own hits.
func TestParallelTestsDoNotShareADatabase(t *testing.T) {
	t.Parallel()
	for i := range 8 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			inst := pluginhosttest.Start(t, pluginhosttest.Options{}, &counter{id: "counter"})
			for want := 1; want <= 3; want++ {
				var body struct{ Hits int }
				inst.Do(t, "POST", "/api/plugin/counter/hit", nil).JSON(t, &body)
				require.Equal(t, want, body.Hits)
			}
		})
	}
}

func TestRestartKeepsTheDatabase(t *testing.T) {
	t.Parallel()
	inst := pluginhosttest.Start(t, pluginhosttest.Options{}, &counter{id: "counter"})
	inst.Do(t, "POST", "/api/plugin/counter/hit", nil)
	first := inst.Manager
	inst.Restart(t)
	require.NotSame(t, first, inst.Manager)
	var body struct{ Hits int }
	inst.Do(t, "POST", "/api/plugin/counter/hit", nil).JSON(t, &body)
	require.Equal(t, 2, body.Hits)
}

func TestAllowFailures(t *testing.T) {
	t.Parallel()
	inst := pluginhosttest.Start(t, pluginhosttest.Options{AllowFailures: true}, &counter{id: "Bad_ID"}, &counter{id: "good"})
	var failed, running int
	for _, st := range inst.Manager.Status() {
		switch st.State {
		case pluginhost.StateFailed:
			failed++
		case pluginhost.StateRunning:
			running++
		}
	}
	require.Equal(t, 1, failed)
	require.Equal(t, 1, running)
}

func TestStartOnPostgres(t *testing.T) {
	t.Parallel()
	url := os.Getenv("PLUGINHOST_TEST_POSTGRES_URL")
	if url == "" {
		t.Skip("set PLUGINHOST_TEST_POSTGRES_URL (for example postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run the PostgreSQL tests")
	}
	inst := pluginhosttest.Start(t, pluginhosttest.Options{PostgresURL: url}, &counter{id: "counter"})
	var body struct{ Hits int }
	inst.Do(t, "POST", "/api/plugin/counter/hit", nil).JSON(t, &body)
	require.Equal(t, 1, body.Hits)
	var version string
	require.NoError(t, inst.DB.QueryRow(`SELECT version()`).Scan(&version))
	require.Contains(t, version, "PostgreSQL")
}
