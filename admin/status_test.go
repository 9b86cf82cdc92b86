package admin_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/admin"
	"github.com/pluginhost/pluginhost/pluginhosttest"
)

// These tests check the statuses the package documentation promises that
// admin_test.go does not: each names the sentence it checks.

// serveAPI sends a request to api and returns the response, checking that
// it is JSON.
func serveAPI(t *testing.T, api http.Handler, ctx context.Context, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequestWithContext(ctx, method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"), "%s %s: %s", method, path, rec.Body)
	return rec
}

// "409 when ... the plugin failed to start": a plugin whose manifest did
// not parse cannot start, and enabling it says why.
func TestEnableInvalidManifestIsAConflict(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		opts.AllowFailures = true
		inst := pluginhosttest.Start(t, opts, newPlugin("notes"), &plugin{manifest: "id = \"bad\"\nname = \"Bad\"\nversion = \"1.x\"\n"})
		api, err := admin.New(admin.Config{Manager: inst.Manager, Insecure: true})
		require.NoError(t, err)

		rec := serveAPI(t, api, context.Background(), "POST", "/plugins/bad/enable", "")
		msg := decode[errorBody](t, rec, http.StatusConflict).Error
		require.Contains(t, msg, `plugin "bad" cannot be enabled`)
		require.Contains(t, msg, `field "version"`)
		st := decode[pluginhost.PluginStatus](t, serveAPI(t, api, context.Background(), "GET", "/plugins/bad", ""), http.StatusOK)
		require.Equal(t, pluginhost.StateFailed, st.State)
	})
}

// "409 when ... a dependency of the plugin to enable is ... missing".
func TestEnableWithAMissingDependencyIsAConflict(t *testing.T) {
	t.Parallel()
	inst := pluginhosttest.Start(t, pluginhosttest.Options{AllowFailures: true}, newPlugin("reports", "[dependencies]\nghost = \"^1.0\""))
	api, err := admin.New(admin.Config{Manager: inst.Manager, Insecure: true})
	require.NoError(t, err)
	rec := serveAPI(t, api, context.Background(), "POST", "/plugins/reports/enable", "")
	require.Contains(t, decode[errorBody](t, rec, http.StatusConflict).Error, `dependency "ghost" is not registered`)
}

// "503 when the Manager has not finished Start (for any id ...) or is
// shutting down": before Start, while Start runs, while Shutdown runs.
func TestControlWhenNotRunning(t *testing.T) {
	t.Parallel()
	db := pluginhosttest.Start(t, pluginhosttest.Options{}, newPlugin("other")).DB
	slow := &slowInit{plugin: newPlugin("notes"), entered: make(chan struct{}), release: make(chan struct{}),
		stopping: make(chan struct{}), stop: make(chan struct{})}
	reg := pluginhost.NewRegistry()
	require.NoError(t, reg.Register(slow))
	m, err := pluginhost.New(pluginhost.Config{DB: db, Registry: reg})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	api, err := admin.New(admin.Config{Manager: m, Insecure: true})
	require.NoError(t, err)

	for _, path := range []string{"/plugins/notes/enable", "/plugins/notes/disable", "/plugins/ghost/disable"} {
		rec := serveAPI(t, api, context.Background(), "POST", path, "")
		require.Contains(t, decode[errorBody](t, rec, http.StatusServiceUnavailable).Error, "not running", "before Start: %s", path)
	}

	started := make(chan error, 1)
	go func() { started <- m.Start(context.Background()) }()
	<-slow.entered
	for _, op := range []string{"enable", "disable"} {
		rec := serveAPI(t, api, context.Background(), "POST", "/plugins/notes/"+op, "")
		require.Contains(t, decode[errorBody](t, rec, http.StatusServiceUnavailable).Error, "not running", "during Start: %s", op)
	}
	close(slow.release)
	require.NoError(t, <-started)
	rec := serveAPI(t, api, context.Background(), "POST", "/plugins/notes/disable", "")
	require.Equal(t, pluginhost.StateDisabled, decode[pluginhost.PluginStatus](t, rec, http.StatusOK).State)
	rec = serveAPI(t, api, context.Background(), "POST", "/plugins/ghost/disable", "")
	require.Equal(t, `no plugin "ghost"`, decode[errorBody](t, rec, http.StatusNotFound).Error)
	rec = serveAPI(t, api, context.Background(), "POST", "/plugins/notes/enable", "")
	require.Equal(t, pluginhost.StateRunning, decode[pluginhost.PluginStatus](t, rec, http.StatusOK).State)

	stopped := make(chan error, 1)
	go func() { stopped <- m.Shutdown(context.Background()) }()
	<-slow.stopping
	for _, op := range []string{"enable", "disable"} {
		rec := serveAPI(t, api, context.Background(), "POST", "/plugins/notes/"+op, "")
		require.Contains(t, decode[errorBody](t, rec, http.StatusServiceUnavailable).Error, "not running", "during Shutdown: %s", op)
	}
	close(slow.stop)
	require.NoError(t, <-stopped)
}

// slowInit is a plugin whose Init waits for release, the first time, and
// whose Shutdown waits for stop, after the first.
type slowInit struct {
	*plugin
	entered, release chan struct{}
	stopping, stop   chan struct{}
	inits, shutdowns int // only the Manager's control path calls them, one at a time
}

var _ pluginhost.Shutdowner = (*slowInit)(nil)

func (p *slowInit) Shutdown(ctx context.Context, _ *pluginhost.Host) error {
	p.shutdowns++
	if p.shutdowns == 1 {
		return nil // Disable's
	}
	close(p.stopping)
	select {
	case <-p.stop:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *slowInit) Init(ctx context.Context, _ *pluginhost.Host) error {
	p.inits++
	if p.inits > 1 {
		return nil
	}
	close(p.entered)
	select {
	case <-p.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// "Once a request is accepted, the change runs to its end even if the
// client goes away."
func TestControlOutlivesTheClient(t *testing.T) {
	t.Parallel()
	f := start(t, pluginhosttest.Options{})
	api, err := admin.New(admin.Config{Manager: f.inst.Manager, Insecure: true})
	require.NoError(t, err)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	rec := serveAPI(t, api, gone, "POST", "/plugins/notes/disable", "")
	require.Equal(t, pluginhost.StateDisabled, decode[pluginhost.PluginStatus](t, rec, http.StatusOK).State)
	require.Equal(t, pluginhost.StateDisabled, f.status(t, "notes").State)
}

// Setting a value before Start, or after Shutdown, is a 503: the Manager
// does not run.
func TestPutSettingWhenNotRunning(t *testing.T) {
	t.Parallel()
	f := start(t, pluginhosttest.Options{})
	db := f.inst.DB
	m, err := pluginhost.New(pluginhost.Config{DB: db, Registry: pluginhost.NewRegistry(),
		CoreSettings: []pluginhost.Setting{{Key: "app.name", Type: pluginhost.StringType, Default: "example"}}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	api, err := admin.New(admin.Config{Manager: m, Insecure: true})
	require.NoError(t, err)
	rec := serveAPI(t, api, context.Background(), "PUT", "/settings/app.name", `{"value": "early"}`)
	require.Contains(t, decode[errorBody](t, rec, http.StatusServiceUnavailable).Error, "has not started")

	require.NoError(t, f.inst.Manager.Shutdown(context.Background()))
	rec = f.do(t, "PUT", "/settings/app.name", `{"value": "late"}`)
	require.Contains(t, decode[errorBody](t, rec, http.StatusServiceUnavailable).Error, "shut down")
	require.Equal(t, "example", mustString(t, f.inst.Manager.Settings(), "app.name"))
	rec = f.do(t, "GET", "/settings/app.name", "")
	require.Equal(t, "example", decode[map[string]any](t, rec, http.StatusOK)["value"], "reads go on")
}

// "malformed JSON or a body without "value" is a 400 with the reason": the
// reason says what the body should be, with the setting's type, and names
// no Go type.
func TestPutMalformedBodySaysWhatTheBodyShouldBe(t *testing.T) {
	t.Parallel()
	f := start(t, pluginhosttest.Options{})
	cases := []struct {
		name, key, body, want string
	}{
		{"a string", "app.name", `"x"`, `the body must be a JSON object {"value": <a string>}: it is a JSON string`},
		{"an array", "notes.max_length", `[1]`, `the body must be a JSON object {"value": <a number>}: it is a JSON array`},
		{"a number", "app.debug", `42`, `the body must be a JSON object {"value": <true or false>}: it is a JSON number`},
		{"empty", "app.name", ``, `the body must be a JSON object {"value": <a string>}: it is empty`},
		{"cut short", "app.name", `{"value": `, `the body must be a JSON object {"value": <a string>}: it is not valid JSON: it ends early`},
		{"not JSON", "app.name", `{value: 1}`, `the body must be a JSON object {"value": <a string>}: it is not valid JSON: invalid character 'v' looking for beginning of object key string (at byte 2)`},
		{"unknown field", "app.name", `{"value": "x", "valeu": "y"}`, `the body must be a JSON object {"value": <a string>}: it has an unknown field "valeu"`},
		{"no value", "app.name", `{}`, `the body must be a JSON object {"value": <a string>}: it has no "value"`},
		{"trailing data", "app.name", `{"value": "x"} {}`, `the body must be a JSON object {"value": <a string>}, with nothing after it`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			msg := decode[errorBody](t, f.do(t, "PUT", "/settings/"+tc.key, tc.body), http.StatusBadRequest).Error
			require.Equal(t, tc.want, msg)
			for _, goism := range []string{"struct", "json.RawMessage", "Go value", "json:"} {
				require.NotContains(t, msg, goism)
			}
		})
	}
	big := `{"value": "` + strings.Repeat("x", 1<<20) + `"}`
	msg := decode[errorBody](t, f.do(t, "PUT", "/settings/app.name", big), http.StatusBadRequest).Error
	require.Equal(t, `the body must be a JSON object {"value": <a string>}: it is larger than 1 MiB`, msg)
}

// "When Authorize is set as well [as Insecure], it is used."
func TestInsecureWithAuthorizeAuthorizes(t *testing.T) {
	t.Parallel()
	f := start(t, pluginhosttest.Options{})
	api, err := admin.New(admin.Config{Manager: f.inst.Manager, Insecure: true, Authorize: f.bearer})
	require.NoError(t, err)
	rec := serveAPI(t, api, context.Background(), "POST", "/plugins/notes/disable", "")
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Equal(t, pluginhost.StateRunning, f.status(t, "notes").State)
}

// "A plugin's status is [pluginhost.PluginStatus]: ... the permissions it
// declares": listed with the catalog's descriptions, in the list and for
// one plugin, so that a host can map them to its roles.
func TestStatusListsPermissions(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		opts.Config.Permissions = []pluginhost.Permission{{Name: "notes.read", Description: "Read notes"}, {Name: "notes.write"}}
		inst := pluginhosttest.Start(t, opts, newPlugin("notes", `permissions = ["notes.read", "notes.write"]`), newPlugin("plain"))
		api, err := admin.New(admin.Config{Manager: inst.Manager, Insecure: true})
		require.NoError(t, err)

		rec := serveAPI(t, api, context.Background(), "GET", "/plugins/notes", "")
		require.Contains(t, rec.Body.String(), `"permissions":[{"name":"notes.read","description":"Read notes"},{"name":"notes.write"}]`)
		want := []pluginhost.Permission{{Name: "notes.read", Description: "Read notes"}, {Name: "notes.write"}}
		require.Equal(t, want, decode[pluginhost.PluginStatus](t, rec, http.StatusOK).Permissions)

		list := decode[struct{ Plugins []pluginhost.PluginStatus }](t, serveAPI(t, api, context.Background(), "GET", "/plugins", ""), http.StatusOK)
		require.Len(t, list.Plugins, 2)
		require.Equal(t, want, list.Plugins[0].Permissions)
		require.Nil(t, list.Plugins[1].Permissions, "a plugin without permissions lists none")
		require.NotContains(t, serveAPI(t, api, context.Background(), "GET", "/plugins/plain", "").Body.String(), "permissions")
	})
}

// "A plugin's status is [pluginhost.PluginStatus]: ... the read grants it
// declares": listed in the list and for one plugin, absent for a plugin
// without [[reads]].
func TestStatusListsReadGrants(t *testing.T) {
	t.Parallel()
	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		t.Parallel()
		reader := newPlugin("audit", `
[dependencies]
notes = "*"

[[reads]]
plugin = "notes"
settings = ["notes.limit"]`)
		owner := newPlugin("notes", `
[[settings]]
key = "notes.limit"
type = "number"
default = 3`)
		inst := pluginhosttest.Start(t, opts, reader, owner)
		api, err := admin.New(admin.Config{Manager: inst.Manager, Insecure: true})
		require.NoError(t, err)

		rec := serveAPI(t, api, context.Background(), "GET", "/plugins/audit", "")
		require.Contains(t, rec.Body.String(), `"reads":[{"plugin":"notes","settings":["notes.limit"]}]`)
		want := []pluginhost.ReadGrant{{Plugin: "notes", Settings: []string{"notes.limit"}}}
		require.Equal(t, want, decode[pluginhost.PluginStatus](t, rec, http.StatusOK).Reads)

		list := decode[struct{ Plugins []pluginhost.PluginStatus }](t, serveAPI(t, api, context.Background(), "GET", "/plugins", ""), http.StatusOK)
		require.Len(t, list.Plugins, 2)
		require.Equal(t, "audit", list.Plugins[0].ID)
		require.Equal(t, want, list.Plugins[0].Reads)
		require.Nil(t, list.Plugins[1].Reads, "a plugin without [[reads]] lists none")
		require.NotContains(t, serveAPI(t, api, context.Background(), "GET", "/plugins/notes", "").Body.String(), `"reads"`)
	})
}
