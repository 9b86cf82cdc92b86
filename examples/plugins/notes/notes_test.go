package notes_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost/examples/plugins/notes"
	"github.com/pluginhost/pluginhost/pluginhosttest"
)

func TestNotesAPI(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		inst := pluginhosttest.Start(t, opts, notes.New())

		var list []notes.Note
		inst.Do(t, "GET", "/api/plugin/notes/notes", nil).JSON(t, &list)
		require.Len(t, list, 1)
		require.Equal(t, "Welcome", list[0].Title, "the seed wrote a welcome note")

		resp := inst.Do(t, "POST", "/api/plugin/notes/notes", map[string]string{"title": "Groceries", "body": "milk"})
		require.Equal(t, http.StatusCreated, resp.Status)
		var created notes.Note
		resp.JSON(t, &created)
		require.Equal(t, "Groceries", created.Title)
		require.Equal(t, "milk", created.Body)
		require.NotZero(t, created.ID)
		require.False(t, created.CreatedAt.IsZero())

		var got notes.Note
		resp = inst.Do(t, "GET", "/api/plugin/notes/notes/"+itoa(created.ID), nil)
		require.Equal(t, http.StatusOK, resp.Status)
		resp.JSON(t, &got)
		require.Equal(t, created.ID, got.ID)
		require.Equal(t, created.Title, got.Title)

		require.Equal(t, http.StatusNoContent, inst.Do(t, "DELETE", "/api/plugin/notes/notes/"+itoa(created.ID), nil).Status)
		for _, path := range []string{"/api/plugin/notes/notes/" + itoa(created.ID), "/api/plugin/notes/notes/nope"} {
			resp = inst.Do(t, "GET", path, nil)
			require.Equal(t, http.StatusNotFound, resp.Status)
			var body map[string]string
			resp.JSON(t, &body)
			require.Equal(t, "note not found", body["error"])
		}
		require.Equal(t, http.StatusNotFound, inst.Do(t, "DELETE", "/api/plugin/notes/notes/"+itoa(created.ID), nil).Status)
	})
}

func TestNotesValidation(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		inst := pluginhosttest.Start(t, opts, notes.New())
		tests := []struct {
			name, body, want string
		}{
			{"missing title", `{"body":"x"}`, "title is required"},
			{"not json", `nope`, "body must be a JSON object with title and body"},
			{"body too long", `{"title":"t","body":"` + strings.Repeat("x", 10001) + `"}`, "body is 10001 bytes; the limit is 10000"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				resp := inst.Do(t, "POST", "/api/plugin/notes/notes", tt.body)
				require.Equal(t, http.StatusBadRequest, resp.Status)
				var body map[string]string
				resp.JSON(t, &body)
				require.Equal(t, tt.want, body["error"])
			})
		}
	})
}

func TestNotesBodyLimitIsASetting(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		inst := pluginhosttest.Start(t, opts, notes.New())
		require.NoError(t, inst.Manager.Settings().Set(t.Context(), "notes.max_body_length", 3))
		require.Equal(t, http.StatusBadRequest, inst.Do(t, "POST", "/api/plugin/notes/notes", map[string]string{"title": "t", "body": "four"}).Status)
		require.Equal(t, http.StatusCreated, inst.Do(t, "POST", "/api/plugin/notes/notes", map[string]string{"title": "t", "body": "one"}).Status)
	})
}

func TestNotesSeedOnceAndDataSurvivesRestart(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		inst := pluginhosttest.Start(t, opts, notes.New())
		require.Equal(t, http.StatusCreated, inst.Do(t, "POST", "/api/plugin/notes/notes", map[string]string{"title": "kept"}).Status)
		inst.Restart(t)
		var list []notes.Note
		inst.Do(t, "GET", "/api/plugin/notes/notes", nil).JSON(t, &list)
		require.Len(t, list, 2, "the welcome note is not seeded twice and the created note survives")
		require.Equal(t, []string{"Welcome", "kept"}, []string{list[0].Title, list[1].Title})
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
