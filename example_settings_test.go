package pluginhost_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"

	_ "github.com/mattn/go-sqlite3" // the SQLite driver

	"github.com/pluginhost/pluginhost"
)

// limitsPlugin contributes a group and a setting to the global settings.
type limitsPlugin struct{}

func (limitsPlugin) Manifest() []byte {
	return []byte(`
id = "limits"
name = "Limits"
version = "1.0.0"

[[setting_groups]]
id = "limits"
name = "Limits"
sort_order = 20

[[settings]]
key = "limits.max_items"
type = "number"
default = 100
group = "limits"

[[settings]]
key = "app.name" # outside the plugin's namespace: ignored, with a warning
type = "string"
`)
}

func ExampleSettings() {
	ctx := context.Background()
	db, err := sql.Open("sqlite3", "file:/example_settings?vfs=memdb")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()

	reg := pluginhost.NewRegistry()
	if err := reg.Register(limitsPlugin{}); err != nil {
		fmt.Println(err)
		return
	}
	m, err := pluginhost.New(pluginhost.Config{
		DB:                db,
		Registry:          reg,
		Logger:            slog.New(slog.DiscardHandler),
		CoreSettingGroups: []pluginhost.SettingGroup{{ID: "general", Name: "General", SortOrder: 10}},
		CoreSettings: []pluginhost.Setting{
			{Key: "app.name", Type: pluginhost.StringType, Default: "My service", Group: "general"},
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

	s := m.Settings()
	for _, def := range s.Definitions() {
		fmt.Println(def.Key, def.Type, def.Group)
	}
	fmt.Println(m.Status()[0].Warnings)

	// Set checks the type and persists the value; reads never allocate.
	if err := s.Set(ctx, "limits.max_items", 250); err != nil {
		fmt.Println(err)
		return
	}
	n, _ := s.Int("limits.max_items")
	name, _ := s.String("app.name")
	fmt.Println(name, n)

	err = s.Set(ctx, "limits.max_items", "many")
	fmt.Println(errors.Is(err, pluginhost.ErrSettingType))
	_, err = s.Bool("no.such.key")
	fmt.Println(errors.Is(err, pluginhost.ErrNotFound))
	// Output:
	// app.name string general
	// limits.max_items number limits
	// [setting "app.name" is outside plugin "limits"'s namespace (its keys start with "limits."); ignored]
	// My service 250
	// true
	// true
}
