package notes_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/examples/plugins/notes"
	"github.com/pluginhost/pluginhost/internal/testdb"
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

// The welcome note is seeded once per database, not whenever the table is
// empty: an operator who deleted it does not get it back at the next boot.
func TestNotesWelcomeNoteDeletedStaysDeleted(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		inst := pluginhosttest.Start(t, opts, notes.New())
		var list []notes.Note
		inst.Do(t, "GET", "/api/plugin/notes/notes", nil).JSON(t, &list)
		require.Len(t, list, 1)
		require.Equal(t, http.StatusNoContent, inst.Do(t, "DELETE", "/api/plugin/notes/notes/"+itoa(list[0].ID), nil).Status)
		inst.Restart(t)
		inst.Do(t, "GET", "/api/plugin/notes/notes", nil).JSON(t, &list)
		require.Empty(t, list, "the welcome note was seeded once; deleting it is the operator's choice")
	})
}

// Hosts booting together on a fresh database write the welcome note once:
// 16 on PostgreSQL, each with a pool of its own, and 8 on one SQLite file,
// round after round.
func TestNotesWelcomeNoteOnceWithReplicas(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		t.Parallel()
		n, rounds := 16, 20
		if d == testdb.SQLite {
			n, rounds = 8, 10
		}
		for round := range rounds {
			t.Run(fmt.Sprintf("round%02d", round), func(t *testing.T) {
				var dsn string
				if d == testdb.Postgres {
					_, dsn = testdb.OpenPostgres(t)
				} else {
					dsn = "file:" + filepath.Join(t.TempDir(), "notes.db") + "?_busy_timeout=30000&_foreign_keys=1&_journal_mode=WAL"
					// Created, in WAL mode, before the hosts open it: SQLite answers
					// "database is locked" to connections that switch a new file to
					// WAL while others do.
					require.NoError(t, testdb.OpenAgain(t, d, dsn).Ping())
				}
				pools := bootHosts(t, d, dsn, n)
				var welcome int
				require.NoError(t, pools[0].QueryRow(`SELECT count(*) FROM notes__notes WHERE title = 'Welcome'`).Scan(&welcome))
				require.Equal(t, 1, welcome, "%d hosts booted together on a fresh database", n)
			})
			if t.Failed() {
				return
			}
		}
	})
}

// bootHosts starts n Managers with the notes plugin, each on a pool of its
// own on dsn, at the same moment, and returns their pools once all have
// started with notes running. Everything is closed when the test ends.
func bootHosts(t *testing.T, d testdb.Dialect, dsn string, n int) []*sql.DB {
	t.Helper()
	pools := make([]*sql.DB, n)
	managers := make([]*pluginhost.Manager, n)
	for i := range n {
		pools[i] = testdb.OpenAgain(t, d, dsn)
		pools[i].SetMaxOpenConns(2) // 16 hosts within the server's max_connections, shared with other tests
		reg := pluginhost.NewRegistry()
		require.NoError(t, reg.Register(notes.New()))
		m, err := pluginhost.New(pluginhost.Config{DB: pools[i], Registry: reg, Logger: slog.New(slog.DiscardHandler), RequireAll: true})
		require.NoError(t, err)
		t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
		managers[i] = m
	}
	release := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, m := range managers {
		wg.Go(func() {
			<-release
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			errs[i] = m.Start(ctx)
		})
	}
	close(release)
	wg.Wait()
	require.NoError(t, errors.Join(errs...))
	return pools
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
