package admin_test

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/go-chi/chi/v5"
	_ "github.com/mattn/go-sqlite3" // the SQLite driver

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/admin"
)

// greeter is a plugin with one route.
type greeter struct{}

func (greeter) Manifest() []byte {
	return []byte("id = \"greeter\"\nname = \"Greeter\"\nversion = \"1.0.0\"\n")
}

func (greeter) RegisterRoutes(r chi.Router, h *pluginhost.Host) {
	r.Get("/hello", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") })
}

// requireToken is the host's authorization middleware: a bearer token.
func requireToken(token string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// The host mounts the admin API at /api/admin, behind its own
// authorization, next to the plugin routes; an operator disables a plugin
// and enables it again without a restart.
func Example() {
	ctx := context.Background()
	db, err := sql.Open("sqlite3", "file:/example_admin?vfs=memdb")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	reg := pluginhost.NewRegistry()
	if err := reg.Register(greeter{}); err != nil {
		fmt.Println(err)
		return
	}
	m, err := pluginhost.New(pluginhost.Config{DB: db, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := m.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer m.Shutdown(ctx)

	api, err := admin.New(admin.Config{Manager: m, Authorize: requireToken("s3cret")})
	if err != nil {
		fmt.Println(err)
		return
	}
	r := chi.NewRouter()
	r.Mount("/api/plugin", m.Handler())
	r.Mount("/api/admin", api)
	// With net/http instead:
	//	mux.Handle("/api/admin/", http.StripPrefix("/api/admin", api))

	call := func(method, path, token string) {
		req := httptest.NewRequest(method, path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		fmt.Println(method, path, rec.Code)
	}
	call("POST", "/api/admin/plugins/greeter/disable", "")
	call("POST", "/api/admin/plugins/greeter/disable", "s3cret")
	call("GET", "/api/plugin/greeter/hello", "")
	call("POST", "/api/admin/plugins/greeter/enable", "s3cret")
	call("GET", "/api/plugin/greeter/hello", "")
	// Output:
	// POST /api/admin/plugins/greeter/disable 401
	// POST /api/admin/plugins/greeter/disable 200
	// GET /api/plugin/greeter/hello 503
	// POST /api/admin/plugins/greeter/enable 200
	// GET /api/plugin/greeter/hello 200
}

// Settings are listed by group; an encrypted value is masked, and a value
// of the wrong type is refused with the reason.
func Example_settings() {
	ctx := context.Background()
	db, err := sql.Open("sqlite3", "file:/example_admin_settings?vfs=memdb")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	m, err := pluginhost.New(pluginhost.Config{
		DB:                db,
		Registry:          pluginhost.NewRegistry(),
		Logger:            slog.New(slog.DiscardHandler),
		SecretKey:         []byte("0123456789abcdef0123456789abcdef"), // from your secret store
		CoreSettingGroups: []pluginhost.SettingGroup{{ID: "mail", Name: "Mail"}},
		CoreSettings: []pluginhost.Setting{
			{Key: "mail.port", Type: pluginhost.NumberType, Default: 25, Group: "mail"},
			{Key: "mail.password", Type: pluginhost.StringType, Encrypted: true, Group: "mail"},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := m.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer m.Shutdown(ctx)
	api, err := admin.New(admin.Config{Manager: m, Insecure: true}) // a test: no authorization
	if err != nil {
		fmt.Println(err)
		return
	}

	call := func(method, path, body string) {
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		fmt.Print(rec.Code, " ", rec.Body)
	}
	call("PUT", "/settings/mail.password", `{"value": "hunter2"}`)
	call("PUT", "/settings/mail.port", `{"value": "587"}`)
	call("GET", "/settings", "")
	// Output:
	// 200 {"key":"mail.password","type":"string","group":"mail","owner":"core","encrypted":true,"set":true,"value":"********"}
	// 400 {"error":"pluginhost: wrong setting type: setting \"mail.port\": want a number, got string"}
	// 200 {"groups":[{"id":"mail","name":"Mail","sort_order":0,"settings":[{"key":"mail.port","type":"number","group":"mail","owner":"core","default":25,"set":true,"value":25},{"key":"mail.password","type":"string","group":"mail","owner":"core","encrypted":true,"set":true,"value":"********"}]}],"ungrouped":[]}
}
