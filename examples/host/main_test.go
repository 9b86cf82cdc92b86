package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost/internal/testdb"
)

// startHost runs the host with args until the test ends and returns its
// base URL.
func startHost(t *testing.T, logs io.Writer, args ...string) (base string, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), logs, ready) }()
	select {
	case addr := <-ready:
		var once sync.Once
		var err error
		stop = func() error {
			once.Do(func() { cancel(); err = <-done })
			return err
		}
		t.Cleanup(func() { _ = stop() })
		return "http://" + addr, stop
	case err := <-done:
		cancel()
		t.Fatalf("host did not start: %v", err)
		return "", nil
	}
}

func get(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	require.NoError(t, json.NewDecoder(resp.Body).Decode(v))
	return resp.StatusCode
}

func post(t *testing.T, url, body string) int {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func adminPost(t *testing.T, url, token string) int {
	t.Helper()
	req, err := http.NewRequest("POST", url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

func TestHost(t *testing.T) {
	// Not parallel: it sets PLUGINHOST_ADMIN_TOKEN in the environment.
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		dsn := filepath.Join(t.TempDir(), "example.db")
		if d == testdb.Postgres {
			_, dsn = testdb.OpenPostgres(t)
		}
		var logs bytes.Buffer
		t.Setenv("PLUGINHOST_ADMIN_TOKEN", "s3cret")
		base, stop := startHost(t, &logs, "-db", dsn)

		var health struct {
			Status  string                    `json:"status"`
			App     string                    `json:"app"`
			Plugins map[string]string         `json:"plugins"`
			Reports map[string]map[string]int `json:"reports"`
		}
		require.Equal(t, http.StatusOK, get(t, base+"/api/health", &health))
		require.Equal(t, "ok", health.Status)
		require.Equal(t, "pluginhost example", health.App)
		require.Equal(t, map[string]string{"notes": "running", "audit": "running"}, health.Plugins)
		require.Equal(t, map[string]map[string]int{"notes": {"notes": 1}}, health.Reports, "notes reports through the host's extension point")
		var ready map[string]any
		require.Equal(t, http.StatusOK, get(t, base+"/api/ready", &ready))
		require.Equal(t, true, ready["ready"])

		require.Equal(t, http.StatusCreated, post(t, base+"/api/plugin/notes/notes", `{"title":"from the test","body":"hi"}`))
		var events []map[string]any
		require.Equal(t, http.StatusOK, get(t, base+"/api/plugin/audit/events", &events))
		require.Len(t, events, 1)
		require.Equal(t, "note.created", events[0]["kind"])

		var missing map[string]string
		require.Equal(t, http.StatusNotFound, get(t, base+"/api/plugin/missing/x", &missing))
		require.Equal(t, "plugin not registered", missing["error"])

		// The admin API: a bearer token, then disable and enable notes live.
		require.Equal(t, http.StatusUnauthorized, adminPost(t, base+"/api/admin/plugins/notes/disable", "wrong"))
		require.Equal(t, http.StatusOK, adminPost(t, base+"/api/admin/plugins/notes/disable", "s3cret"))
		var gated map[string]string
		require.Equal(t, http.StatusServiceUnavailable, get(t, base+"/api/plugin/notes/notes", &gated))
		require.Equal(t, "disabled", gated["state"])
		require.Equal(t, http.StatusServiceUnavailable, get(t, base+"/api/plugin/audit/events", &gated), "audit depends on notes")
		require.Equal(t, http.StatusOK, adminPost(t, base+"/api/admin/plugins/notes/enable", "s3cret"))
		var list []map[string]any
		require.Equal(t, http.StatusOK, get(t, base+"/api/plugin/notes/notes", &list))
		require.Equal(t, http.StatusOK, get(t, base+"/api/plugin/audit/events", &events), "audit came back with notes")

		require.NoError(t, stop(), "Ctrl-C shuts down cleanly")
		require.Contains(t, logs.String(), `msg="plugin running" plugin=notes`)
		require.Contains(t, logs.String(), `msg="plugin running" plugin=audit`)
		require.Contains(t, logs.String(), `version=0001_users`)
		require.Contains(t, logs.String(), `msg="pluginhost shut down"`)

		// A restart keeps the data and does not seed twice.
		base, _ = startHost(t, io.Discard, "-db", dsn)
		var notes []map[string]any
		require.Equal(t, http.StatusOK, get(t, base+"/api/plugin/notes/notes", &notes))
		require.Len(t, notes, 2)
		require.Equal(t, "Welcome", notes[0]["title"])
		require.Equal(t, "from the test", notes[1]["title"])
	})
}

func TestHostRejectsBadFlags(t *testing.T) {
	t.Parallel()
	err := run(context.Background(), []string{"-nope"}, io.Discard, nil)
	require.ErrorContains(t, err, "flag provided but not defined")
}

func TestAdminTokenIsMadeAndPrintedWhenUnset(t *testing.T) {
	t.Setenv("PLUGINHOST_ADMIN_TOKEN", "")
	var logs bytes.Buffer
	token, err := adminToken(slog.New(slog.NewTextHandler(&logs, nil)))
	require.NoError(t, err)
	require.Len(t, token, 32)
	require.Contains(t, logs.String(), "token="+token)
	other, err := adminToken(slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	require.NotEqual(t, token, other)
}

// -plan prints the plan as JSON and changes nothing (not even the SQLite
// file is created); -migrate-only applies the schema and exits, running
// no Seed (the notes plugin's welcome note is its SeedOnce's) and writing
// no settings; a -plan afterwards finds the schema done; a start then
// serves.
func TestHostPlanAndMigrateOnly(t *testing.T) {
	// Not parallel: it sets PLUGINHOST_ADMIN_TOKEN in the environment.
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		dsn := filepath.Join(t.TempDir(), "example.db")
		if d == testdb.Postgres {
			_, dsn = testdb.OpenPostgres(t)
		}
		t.Setenv("PLUGINHOST_ADMIN_TOKEN", "s3cret")
		type pluginPlan struct {
			ID         string   `json:"id"`
			Start      bool     `json:"start"`
			Tables     []string `json:"tables_to_create"`
			Migrations []string `json:"migrations"`
			OnceHooks  []string `json:"once_hooks"`
		}
		type plan struct {
			Work bool `json:"work"`
			Core struct {
				Library    []string `json:"library_migrations"`
				Migrations []string `json:"migrations"`
				Settings   []struct {
					Key string `json:"key"`
				} `json:"settings_to_add"`
			} `json:"core"`
			Plugins []pluginPlan `json:"plugins"`
		}
		planOf := func() plan {
			var out bytes.Buffer
			require.NoError(t, runTo(context.Background(), []string{"-plan", "-db", dsn}, &out, io.Discard, nil))
			require.True(t, strings.HasPrefix(out.String(), "{\n  \""), "indented JSON: %s", out.String())
			var p plan
			require.NoError(t, json.Unmarshal(out.Bytes(), &p), out.String())
			return p
		}

		fresh := planOf()
		require.True(t, fresh.Work)
		require.NotEmpty(t, fresh.Core.Library)
		require.Equal(t, []string{"0001_users"}, fresh.Core.Migrations)
		require.Len(t, fresh.Plugins, 2)
		for _, p := range fresh.Plugins {
			require.True(t, p.Start, p.ID)
			require.NotEmpty(t, p.Tables, p.ID)
		}
		if d == testdb.SQLite {
			_, err := os.Stat(dsn)
			require.ErrorIs(t, err, fs.ErrNotExist, "-plan did not create the database file")
			_, err = os.Stat(dsn + ".key")
			require.ErrorIs(t, err, fs.ErrNotExist, "-plan did not make a key file")
		}

		var logs bytes.Buffer
		require.NoError(t, runTo(context.Background(), []string{"-migrate-only", "-db", dsn}, io.Discard, &logs, nil))
		require.Contains(t, logs.String(), `version=0001_users`)
		require.Contains(t, logs.String(), `migrate only`)
		require.NotContains(t, logs.String(), `msg=serving`)

		migrated := planOf()
		require.Empty(t, migrated.Core.Library)
		require.Empty(t, migrated.Core.Migrations)
		require.Equal(t, "app.name", migrated.Core.Settings[0].Key, "settings are Start's")
		for _, p := range migrated.Plugins {
			require.Empty(t, p.Tables, p.ID)
			require.Empty(t, p.Migrations, p.ID)
			require.Empty(t, p.OnceHooks, p.ID)
		}

		base, _ := startHost(t, io.Discard, "-db", dsn)
		var notes []map[string]any
		require.Equal(t, http.StatusOK, get(t, base+"/api/plugin/notes/notes", &notes))
		require.Len(t, notes, 1, "the welcome note, seeded once by -migrate-only")

		err := runTo(context.Background(), []string{"-plan", "-migrate-only"}, io.Discard, io.Discard, nil)
		require.ErrorContains(t, err, "give one")
	})
}
