package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/admin"
	"github.com/pluginhost/pluginhost/pluginhosttest"
)

// plugin is a test plugin: a manifest, a route and an optional failing
// Init.
type plugin struct {
	manifest string
	initErr  error
}

var (
	_ pluginhost.Initializer    = (*plugin)(nil)
	_ pluginhost.RouteRegistrar = (*plugin)(nil)
)

func (p *plugin) Manifest() []byte { return []byte(p.manifest) }

func (p *plugin) Init(context.Context, *pluginhost.Host) error { return p.initErr }

func (p *plugin) RegisterRoutes(r chi.Router, h *pluginhost.Host) {
	r.Get("/hello", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello from "+h.ID()) })
}

func newPlugin(id string, extra ...string) *plugin {
	return &plugin{manifest: fmt.Sprintf("id = %q\nname = %q\nversion = \"1.2.3\"\n", id, "Plugin "+id) + strings.Join(extra, "\n")}
}

const (
	secretValue = "hunter2-do-not-leak"
	token       = "test-token"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// fixture is a started Manager with four plugins (notes; reports, which
// depends on notes; auth, required; broken, whose Init fails) and the admin
// API mounted at /api/admin behind a bearer token.
type fixture struct {
	inst    *pluginhosttest.Instance
	handler http.Handler // the host's router
	denied  atomic.Int32 // requests the test middleware refused
}

func start(t *testing.T, opts pluginhosttest.Options) *fixture {
	t.Helper()
	notes := newPlugin("notes", `
[[setting_groups]]
id = "notes"
name = "Notes"
sort_order = 100

[[settings]]
key = "notes.max_length"
type = "number"
default = 100
description = "Longest note."
group = "notes"

[[settings]]
key = "notes.api_url"
type = "string"
required = true
group = "notes"
`)
	reports := newPlugin("reports", "[dependencies]\nnotes = \"^1.0\"")
	auth := newPlugin("auth")
	broken := newPlugin("broken")
	broken.initErr = errors.New("cannot reach the mail server")

	opts.AllowFailures = true
	opts.Config.Required = []string{"auth"}
	opts.Config.CoreSettingGroups = []pluginhost.SettingGroup{{ID: "general", Name: "General", SortOrder: 0}}
	opts.Config.CoreSettings = append([]pluginhost.Setting{
		{Key: "app.name", Type: pluginhost.StringType, Default: "example", Group: "general", Description: "The name."},
		{Key: "app.debug", Type: pluginhost.BooleanType, Default: false},
		{Key: "app.api_key", Type: pluginhost.StringType, Encrypted: true, Group: "general"},
		{Key: "app.other_key", Type: pluginhost.StringType, Encrypted: true},
	}, opts.Config.CoreSettings...)
	f := &fixture{inst: pluginhosttest.Start(t, opts, notes, reports, auth, broken)}

	api, err := admin.New(admin.Config{Manager: f.inst.Manager, Authorize: f.bearer})
	require.NoError(t, err)
	r := chi.NewRouter()
	r.Mount("/api/admin", api)
	f.handler = r
	return f
}

// startWithSecret starts the fixture with a secret key and the encrypted
// setting app.api_key set.
func startWithSecret(t *testing.T) *fixture {
	t.Helper()
	f := start(t, pluginhosttest.Options{Config: pluginhost.Config{SecretKey: testKey}})
	require.NoError(t, f.inst.Manager.Settings().Set(context.Background(), "app.api_key", secretValue))
	return f
}

// bearer is the host's authorization middleware in these tests.
func (f *fixture) bearer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			f.denied.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"unauthorized"}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// do sends an authorized request to the admin API; body, when not "", is
// sent as is.
func (f *fixture) do(t *testing.T, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "/api/admin"+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	f.handler.ServeHTTP(rec, req)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"), "%s %s: %s", method, path, rec.Body)
	require.NotContains(t, rec.Body.String(), secretValue, "%s %s sent an encrypted value", method, path)
	return rec
}

// decode decodes a JSON response, checking its status.
func decode[T any](t *testing.T, rec *httptest.ResponseRecorder, status int) T {
	t.Helper()
	require.Equal(t, status, rec.Code, rec.Body.String())
	var v T
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &v), rec.Body.String())
	return v
}

type errorBody struct {
	Error string `json:"error"`
}

func TestNewRequiresAuthorizeAndManager(t *testing.T) {
	t.Parallel()
	inst := pluginhosttest.Start(t, pluginhosttest.Options{}, newPlugin("notes"))

	_, err := admin.New(admin.Config{Manager: inst.Manager})
	require.ErrorContains(t, err, "Config.Authorize is required")
	require.ErrorContains(t, err, "Config.Insecure")

	_, err = admin.New(admin.Config{Authorize: func(h http.Handler) http.Handler { return h }})
	require.ErrorContains(t, err, "Config.Manager is required")

	_, err = admin.New(admin.Config{})
	require.ErrorContains(t, err, "Config.Manager")
	require.ErrorContains(t, err, "Config.Authorize")

	open, err := admin.New(admin.Config{Manager: inst.Manager, Insecure: true})
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	open.ServeHTTP(rec, httptest.NewRequest("GET", "/plugins", nil))
	require.Equal(t, http.StatusOK, rec.Code, "Insecure serves without authorization")
}

func TestAuthorizeWrapsEveryRoute(t *testing.T) {
	t.Parallel()
	f := startWithSecret(t)
	routes := []struct{ method, path, body string }{
		{"GET", "/plugins", ""},
		{"GET", "/plugins/notes", ""},
		{"POST", "/plugins/notes/enable", ""},
		{"POST", "/plugins/notes/disable", ""},
		{"GET", "/settings", ""},
		{"GET", "/settings/app.api_key", ""},
		{"PUT", "/settings/app.name", `{"value":"x"}`},
		{"GET", "/routes", ""},
		{"GET", "/health", ""},
		{"GET", "/events", ""},
		{"GET", "/nav", ""},
		{"GET", "/metrics", ""},
		{"GET", "/plan", ""},
		{"GET", "/plugins/notes/export", ""},
		{"POST", "/plugins/notes/purge", `{"confirm":"notes"}`},
		{"GET", "/no/such/path", ""},
		{"DELETE", "/plugins", ""},
	}
	for _, rt := range routes {
		for _, auth := range []string{"", "Bearer wrong"} {
			req := httptest.NewRequest(rt.method, "/api/admin"+rt.path, strings.NewReader(rt.body))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			rec := httptest.NewRecorder()
			f.handler.ServeHTTP(rec, req)
			require.Equal(t, http.StatusUnauthorized, rec.Code, "%s %s", rt.method, rt.path)
			require.JSONEq(t, `{"error":"unauthorized"}`, rec.Body.String())
		}
	}
	require.Equal(t, int32(2*len(routes)), f.denied.Load())
	require.Equal(t, "example", mustString(t, f.inst.Manager.Settings(), "app.name"), "the refused PUT changed nothing")
	require.Equal(t, pluginhost.StateRunning, f.status(t, "notes").State, "the refused disable did nothing")
}

func mustString(t *testing.T, s *pluginhost.Settings, key string) string {
	t.Helper()
	v, err := s.String(key)
	require.NoError(t, err)
	return v
}

func (f *fixture) status(t *testing.T, id string) pluginhost.PluginStatus {
	t.Helper()
	return decode[pluginhost.PluginStatus](t, f.do(t, "GET", "/plugins/"+id, ""), http.StatusOK)
}

func TestPlugins(t *testing.T) {
	t.Parallel()
	f := start(t, pluginhosttest.Options{})

	list := decode[struct{ Plugins []pluginhost.PluginStatus }](t, f.do(t, "GET", "/plugins", ""), http.StatusOK)
	var ids []string
	for _, st := range list.Plugins {
		ids = append(ids, st.ID)
	}
	require.Equal(t, []string{"auth", "broken", "notes", "reports"}, ids)

	notes := f.status(t, "notes")
	require.Equal(t, pluginhost.StateRunning, notes.State)
	require.Equal(t, "1.2.3", notes.Version)
	require.Equal(t, "Plugin notes", notes.Name)
	require.Equal(t, []string{"notes.api_url"}, notes.MissingSettings)
	require.Equal(t, []pluginhost.RouteInfo{{Method: "GET", Pattern: "/api/plugin/notes/hello", Plugin: "notes"}}, notes.Routes)
	require.Equal(t, list.Plugins[2].ID, "notes")
	require.Equal(t, notes.Routes, list.Plugins[2].Routes)

	broken := f.status(t, "broken")
	require.Equal(t, pluginhost.StateFailed, broken.State)
	require.Contains(t, broken.Reason, "cannot reach the mail server")
	require.Empty(t, broken.Routes)

	rec := f.do(t, "GET", "/plugins/ghost", "")
	require.Equal(t, `no plugin "ghost"`, decode[errorBody](t, rec, http.StatusNotFound).Error)

	rec = f.do(t, "GET", "/no/such/path", "")
	require.Equal(t, "not found", decode[errorBody](t, rec, http.StatusNotFound).Error)
	rec = f.do(t, "DELETE", "/plugins/notes", "")
	require.Equal(t, "method not allowed", decode[errorBody](t, rec, http.StatusMethodNotAllowed).Error)
	rec = f.do(t, "GET", "/plugins/notes/disable", "")
	require.Equal(t, http.StatusMethodNotAllowed, rec.Code, "enable and disable take POST")
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	f := start(t, pluginhosttest.Options{})
	got := decode[struct{ Routes []pluginhost.RouteInfo }](t, f.do(t, "GET", "/routes", ""), http.StatusOK)
	require.Equal(t, f.inst.Manager.Routes(), got.Routes)
	require.Contains(t, got.Routes, pluginhost.RouteInfo{Method: "GET", Pattern: "/api/plugin/reports/hello", Plugin: "reports"})
	for _, rt := range got.Routes {
		require.NotEqual(t, "broken", rt.Plugin, "a failed plugin has no routes")
	}
}

func TestDisableAndEnable(t *testing.T) {
	t.Parallel()
	f := start(t, pluginhosttest.Options{})

	t.Run("unknown plugin", func(t *testing.T) {
		for _, op := range []string{"enable", "disable"} {
			rec := f.do(t, "POST", "/plugins/ghost/"+op, "")
			require.Equal(t, `no plugin "ghost"`, decode[errorBody](t, rec, http.StatusNotFound).Error, op)
		}
	})

	t.Run("a required plugin cannot be disabled", func(t *testing.T) {
		rec := f.do(t, "POST", "/plugins/auth/disable", "")
		require.Contains(t, decode[errorBody](t, rec, http.StatusConflict).Error, "required")
		require.Equal(t, pluginhost.StateRunning, f.status(t, "auth").State)
	})

	t.Run("disable stops the plugin and its dependents", func(t *testing.T) {
		st := decode[pluginhost.PluginStatus](t, f.do(t, "POST", "/plugins/notes/disable", ""), http.StatusOK)
		require.Equal(t, "notes", st.ID)
		require.Equal(t, pluginhost.StateDisabled, st.State)
		require.Empty(t, st.Routes)

		reports := f.status(t, "reports")
		require.Equal(t, pluginhost.StateDisabled, reports.State)
		require.Equal(t, "dependency notes disabled", reports.Reason)
		require.Equal(t, http.StatusServiceUnavailable, f.inst.Do(t, "GET", "/api/plugin/notes/hello", nil).Status)
	})

	t.Run("enabling a plugin whose dependency is not running", func(t *testing.T) {
		rec := f.do(t, "POST", "/plugins/reports/enable", "")
		require.Contains(t, decode[errorBody](t, rec, http.StatusConflict).Error, `"notes"`)
		require.Equal(t, pluginhost.StateDisabled, f.status(t, "reports").State)
	})

	t.Run("enable brings it back", func(t *testing.T) {
		st := decode[pluginhost.PluginStatus](t, f.do(t, "POST", "/plugins/notes/enable", ""), http.StatusOK)
		require.Equal(t, pluginhost.StateRunning, st.State)
		require.NotEmpty(t, st.Routes)
		resp := f.inst.Do(t, "GET", "/api/plugin/notes/hello", nil)
		require.Equal(t, http.StatusOK, resp.Status)
		require.Equal(t, "hello from notes", string(resp.Body))
	})

	t.Run("enabling a running plugin is a no-op", func(t *testing.T) {
		st := decode[pluginhost.PluginStatus](t, f.do(t, "POST", "/plugins/notes/enable", ""), http.StatusOK)
		require.Equal(t, pluginhost.StateRunning, st.State)
	})

	t.Run("enabling a plugin that fails again", func(t *testing.T) {
		rec := f.do(t, "POST", "/plugins/broken/enable", "")
		require.Contains(t, decode[errorBody](t, rec, http.StatusConflict).Error, "cannot reach the mail server")
		st := f.status(t, "broken")
		require.Equal(t, pluginhost.StateFailed, st.State)
		require.Contains(t, st.Reason, "cannot reach the mail server")
	})
}

func TestDisableAfterShutdown(t *testing.T) {
	t.Parallel()
	f := start(t, pluginhosttest.Options{})
	require.NoError(t, f.inst.Manager.Shutdown(context.Background()))
	for _, op := range []string{"enable", "disable"} {
		rec := f.do(t, "POST", "/plugins/notes/"+op, "")
		require.Contains(t, decode[errorBody](t, rec, http.StatusServiceUnavailable).Error, "not running", op)
	}
}

func TestSettingsList(t *testing.T) {
	t.Parallel()
	f := startWithSecret(t)

	type listing struct {
		Groups []struct {
			ID        string           `json:"id"`
			Name      string           `json:"name"`
			SortOrder int              `json:"sort_order"`
			Settings  []map[string]any `json:"settings"`
		} `json:"groups"`
		Ungrouped []map[string]any `json:"ungrouped"`
	}
	got := decode[listing](t, f.do(t, "GET", "/settings", ""), http.StatusOK)
	require.Len(t, got.Groups, 2)
	require.Equal(t, "general", got.Groups[0].ID, "groups in Groups() order")
	require.Equal(t, "General", got.Groups[0].Name)
	require.Equal(t, "notes", got.Groups[1].ID)
	require.Equal(t, 100, got.Groups[1].SortOrder)

	require.Equal(t, []map[string]any{
		{"key": "app.name", "type": "string", "description": "The name.", "group": "general", "owner": "core",
			"default": "example", "set": true, "value": "example"},
		{"key": "app.api_key", "type": "string", "group": "general", "owner": "core", "encrypted": true,
			"set": true, "value": "********"},
	}, got.Groups[0].Settings)
	require.Equal(t, []map[string]any{
		{"key": "notes.max_length", "type": "number", "description": "Longest note.", "group": "notes", "owner": "notes",
			"default": 100.0, "set": true, "value": 100.0},
		{"key": "notes.api_url", "type": "string", "group": "notes", "owner": "notes", "required": true,
			"set": false, "value": nil},
	}, got.Groups[1].Settings)
	require.Equal(t, []map[string]any{
		{"key": "app.debug", "type": "boolean", "owner": "core", "default": false, "set": true, "value": false},
		{"key": "app.other_key", "type": "string", "owner": "core", "encrypted": true, "set": false, "value": nil},
	}, got.Ungrouped)

	one := decode[map[string]any](t, f.do(t, "GET", "/settings/app.api_key", ""), http.StatusOK)
	require.Equal(t, "********", one["value"])
	rec := f.do(t, "GET", "/settings/no.such", "")
	require.Equal(t, `no setting "no.such"`, decode[errorBody](t, rec, http.StatusNotFound).Error)
}

func TestSettingsSet(t *testing.T) {
	t.Parallel()
	f := startWithSecret(t)
	s := f.inst.Manager.Settings()

	got := decode[map[string]any](t, f.do(t, "PUT", "/settings/notes.max_length", `{"value": 250}`), http.StatusOK)
	require.Equal(t, 250.0, got["value"])
	n, err := s.Number("notes.max_length")
	require.NoError(t, err)
	require.Equal(t, 250.0, n)

	got = decode[map[string]any](t, f.do(t, "PUT", "/settings/app.debug", `{"value": true}`), http.StatusOK)
	require.Equal(t, true, got["value"])

	const newSecret = "s3cret-rotated-value"
	rec := f.do(t, "PUT", "/settings/app.api_key", `{"value": "`+newSecret+`"}`)
	require.NotContains(t, rec.Body.String(), newSecret)
	got = decode[map[string]any](t, rec, http.StatusOK)
	require.Equal(t, "********", got["value"])
	require.Equal(t, newSecret, mustString(t, s, "app.api_key"))

	errorCases := []struct {
		name, key, body string
		status          int
		want            string // in the error
	}{
		{"wrong type", "notes.max_length", `{"value": "many"}`, http.StatusBadRequest, "want a number, got string"},
		{"wrong type for a boolean", "app.debug", `{"value": 1}`, http.StatusBadRequest, "want a bool, got float64"},
		{"wrong type for a secret", "app.api_key", `{"value": 42}`, http.StatusBadRequest, "want a string, got float64"},
		{"null", "app.name", `{"value": null}`, http.StatusBadRequest, "want a string, got <nil>"},
		{"object", "app.name", `{"value": {"a": 1}}`, http.StatusBadRequest, "want a string"},
		{"malformed JSON", "app.name", `{"value": `, http.StatusBadRequest, "must be a JSON object"},
		{"not an object", "app.name", `"x"`, http.StatusBadRequest, "must be a JSON object"},
		{"no value", "app.name", `{}`, http.StatusBadRequest, `no "value"`},
		{"unknown field", "app.name", `{"value": "x", "valeu": "y"}`, http.StatusBadRequest, "unknown field"},
		{"trailing data", "app.name", `{"value": "x"} {}`, http.StatusBadRequest, "nothing after it"},
		{"unknown key", "no.such", `{"value": 1}`, http.StatusNotFound, `no setting "no.such"`},
	}
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			rec := f.do(t, "PUT", "/settings/"+tc.key, tc.body)
			require.Contains(t, decode[errorBody](t, rec, tc.status).Error, tc.want)
		})
	}
	require.Equal(t, "example", mustString(t, s, "app.name"), "refused writes change nothing")
	require.Equal(t, newSecret, mustString(t, s, "app.api_key"))
}

func TestSettingsSetEncryptedWithoutSecretKey(t *testing.T) {
	t.Parallel()
	f := start(t, pluginhosttest.Options{})
	rec := f.do(t, "PUT", "/settings/app.api_key", `{"value": "`+secretValue+`"}`)
	require.Contains(t, decode[errorBody](t, rec, http.StatusConflict).Error, "Config.SecretKey")
	require.False(t, f.inst.Manager.Settings().IsSet("app.api_key"))
}

// The encrypted value must not appear in any response: do checks every
// body; this test visits every route.
func TestEncryptedValueIsNeverSent(t *testing.T) {
	t.Parallel()
	f := startWithSecret(t)
	for _, rt := range []struct{ method, path, body string }{
		{"GET", "/plugins", ""},
		{"GET", "/plugins/notes", ""},
		{"POST", "/plugins/reports/disable", ""},
		{"POST", "/plugins/reports/enable", ""},
		{"GET", "/settings", ""},
		{"GET", "/settings/app.api_key", ""},
		{"PUT", "/settings/app.api_key", `{"value": "` + secretValue + `"}`},
		{"PUT", "/settings/app.api_key", `{"value": ["` + secretValue + `"]}`},
		{"PUT", "/settings/app.api_key", `{"value": "` + secretValue + `", "x": 1}`},
		{"GET", "/routes", ""},
		{"GET", "/metrics", ""},
	} {
		rec := f.do(t, rt.method, rt.path, rt.body)
		require.Less(t, rec.Code, 500, "%s %s: %s", rt.method, rt.path, rec.Body)
	}
}

func TestMountedUnderAnyPrefix(t *testing.T) {
	t.Parallel()
	inst := pluginhosttest.Start(t, pluginhosttest.Options{}, newPlugin("notes"))
	api, err := admin.New(admin.Config{Manager: inst.Manager, Insecure: true})
	require.NoError(t, err)

	chiRouter := chi.NewRouter()
	chiRouter.Route("/deep/prefix", func(r chi.Router) { r.Mount("/admin", api) })
	mux := http.NewServeMux()
	mux.Handle("/ops/admin/", http.StripPrefix("/ops/admin", api))

	for _, tc := range []struct {
		name   string
		h      http.Handler
		prefix string
	}{
		{"chi Mount", chiRouter, "/deep/prefix/admin"},
		{"net/http StripPrefix", mux, "/ops/admin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tc.h.ServeHTTP(rec, httptest.NewRequest("GET", tc.prefix+"/plugins/notes", nil))
			st := decode[pluginhost.PluginStatus](t, rec, http.StatusOK)
			require.Equal(t, "notes", st.ID)

			rec = httptest.NewRecorder()
			tc.h.ServeHTTP(rec, httptest.NewRequest("PUT", tc.prefix+"/settings/none", strings.NewReader(`{"value":1}`)))
			require.Equal(t, `no setting "none"`, decode[errorBody](t, rec, http.StatusNotFound).Error)
		})
	}
}

func TestBeforeStart(t *testing.T) {
	t.Parallel()
	inst := pluginhosttest.Start(t, pluginhosttest.Options{}, newPlugin("notes"))
	m, err := pluginhost.New(pluginhost.Config{DB: inst.DB, Registry: pluginhost.NewRegistry()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	api, err := admin.New(admin.Config{Manager: m, Insecure: true})
	require.NoError(t, err)

	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, httptest.NewRequest("GET", "/plugins", nil))
	require.JSONEq(t, `{"plugins":[]}`, rec.Body.String())
	rec = httptest.NewRecorder()
	api.ServeHTTP(rec, httptest.NewRequest("POST", "/plugins/notes/disable", nil))
	require.Equal(t, http.StatusServiceUnavailable, rec.Code, "the Manager has not started")
	rec = httptest.NewRecorder()
	api.ServeHTTP(rec, httptest.NewRequest("GET", "/settings", nil))
	require.JSONEq(t, `{"groups":[],"ungrouped":[]}`, rec.Body.String())
	rec = httptest.NewRecorder()
	api.ServeHTTP(rec, httptest.NewRequest("GET", "/routes", nil))
	require.JSONEq(t, `{"routes":[]}`, rec.Body.String())
}
