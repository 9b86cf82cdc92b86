package pluginhost_test

import (
	"errors"
	"fmt"

	"github.com/pluginhost/pluginhost"
)

func ExampleParseManifest() {
	m, err := pluginhost.ParseManifest([]byte(`
id = "notes"
name = "Notes"
version = "1.2.0"
colour = "blue" # unknown: a warning, not an error

[config.api-token]
type = "string"
secret = true

[[settings]]
key = "notes.max_length"
type = "number"
default = 500
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.ID, m.Version)
	fmt.Println(m.Config[0].Key, m.Config[0].Env)
	fmt.Println(m.Settings[0].Key, m.Settings[0].Default)
	fmt.Println(m.Warnings)
	// Output:
	// notes 1.2.0
	// api-token PLUGINHOST_NOTES_API_TOKEN
	// notes.max_length 500
	// [unknown field "colour" (line 5) ignored]
}

func ExampleParseManifest_error() {
	_, err := pluginhost.ParseManifest([]byte(`id = "notes"
name = "Notes"
version = "1.0"
`))
	var me *pluginhost.ManifestError
	if errors.As(err, &me) {
		fmt.Println(me.Plugin, me.Field, me.Line)
	}
	fmt.Println(errors.Is(err, pluginhost.ErrInvalidManifest))
	fmt.Println(err)
	// Output:
	// notes version 3
	// true
	// pluginhost: plugin "notes": plugin.toml line 3: field "version": "1.0" is not a semantic version: write "1.0.0" (MAJOR.MINOR.PATCH): invalid semantic version
}
