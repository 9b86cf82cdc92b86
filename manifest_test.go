package pluginhost

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/Masterminds/semver/v3"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost/internal/pluginid"
)

// readManifest reads testdata/manifests/<name>.
func readManifest(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "manifests", name))
	require.NoError(t, err)
	return data
}

// manifestErrors returns the *ManifestError values err holds, in order.
func manifestErrors(t testing.TB, err error) []*ManifestError {
	t.Helper()
	var out []*ManifestError
	errs := []error{err}
	if joined, ok := err.(interface{ Unwrap() []error }); ok {
		errs = joined.Unwrap()
	}
	for _, e := range errs {
		me, ok := e.(*ManifestError)
		require.Truef(t, ok, "%T is not a *ManifestError: %v", e, e)
		out = append(out, me)
	}
	return out
}

// withoutUnexported returns a copy of m without its unexported fields, for
// comparisons.
func withoutUnexported(m *Manifest) Manifest {
	c := *m
	c.version, c.host, c.deps, c.lines = nil, nil, nil, nil
	return c
}

func TestParseManifestGood(t *testing.T) {
	t.Parallel()

	tests := []struct {
		file string
		want Manifest
	}{
		{
			file: "minimal.toml",
			want: Manifest{ID: "minimal", Name: "Minimal", Version: "0.1.0"},
		},
		{
			file: "full.toml",
			want: Manifest{
				ID:          "notes",
				Name:        "Notes",
				Version:     "1.4.2-beta.1+build.7",
				Description: "Keeps notes.\nA multi-line string may hold key = \"value\" lines and [brackets].",
				Author:      "Ada Lovelace <ada@example.com>",
				Host:        ">= 1.0.0, < 2.0.0",
				Dependencies: map[string]string{
					"auth":         "^2.1.0",
					"search-index": "~1.3",
				},
				Permissions: []string{"db.read", "db.write", "http.outbound"},
				Config: []ConfigField{
					{Key: "api_token", Type: StringType, Description: "Token for the notes API.", Required: true, Secret: true, Env: "NOTES_API_TOKEN"},
					{Key: "endpoint", Type: StringType, Default: "https://api.example.com", Env: "PLUGINHOST_NOTES_ENDPOINT"},
					{Key: "max-notes", Type: NumberType, Default: float64(100), Description: "How many notes a user may keep.", Env: "PLUGINHOST_NOTES_MAX_NOTES"},
					{Key: "verbose", Type: BooleanType, Default: false, Env: "PLUGINHOST_NOTES_VERBOSE"},
				},
				SettingGroups: []SettingGroup{
					{ID: "notes", Name: "Notes", Description: "How notes behave.", Icon: "note", SortOrder: 20},
					{ID: "notes-advanced", Name: "Advanced"},
				},
				Settings: []Setting{
					{Key: "notes.max_body_length", Type: NumberType, Default: float64(10000), Description: "Longest note body, in characters.", Group: "notes", Required: true},
					{Key: "notes.ratio", Type: NumberType, Default: 0.75, Group: "notes-advanced"},
					{Key: "notes.public", Type: BooleanType, Default: true, Group: "general"},
					{Key: "notes.webhook_secret", Type: StringType, Description: "Signs outgoing webhooks.", Encrypted: true, Required: true},
					{Key: "notes.title", Type: StringType, Default: "My notes"},
				},
			},
		},
		{
			file: "unknown-keys.toml",
			want: Manifest{
				ID:          "my-plugin",
				Name:        "My Plugin",
				Version:     "2.0.0",
				Permissions: []string{"a", "b"},
				Config: []ConfigField{
					{Key: "api-token", Type: StringType, Required: true, Default: "dev", Env: "PLUGINHOST_MY_PLUGIN_API_TOKEN"},
				},
				SettingGroups: []SettingGroup{{ID: "mine", Name: "Mine"}},
				Settings:      []Setting{{Key: "my-plugin.level", Type: NumberType, Default: float64(3)}},
				Warnings: []string{
					`unknown field "colour" (line 4) ignored`,
					`permission "a" listed twice (line 5): the duplicate is ignored`,
					`unknown field "future" (line 7) ignored`,
					`config "api-token" (line 12): required has no effect because the default always satisfies it`,
					`unknown field "config.api-token.rotate" (line 14) ignored`,
					`unknown field "setting_groups[0].color" (line 19) ignored`,
					`unknown field "settings[0].unit" (line 25) ignored`,
				},
			},
		},
		{
			file: "inline-tables.toml",
			want: Manifest{
				ID:           "inline",
				Name:         "Inline",
				Version:      "3.0.0",
				Dependencies: map[string]string{"auth": "*", "notes": ">=1.0.0"},
				Config: []ConfigField{
					{Key: "region", Type: StringType, Default: "eu", Env: "PLUGINHOST_INLINE_REGION"},
				},
				SettingGroups: []SettingGroup{{ID: "inline", Name: "Inline", SortOrder: -1}},
				Settings: []Setting{
					{Key: "inline.enabled", Type: BooleanType, Default: true, Group: "inline"},
					{Key: "inline.limit", Type: NumberType},
				},
			},
		},
		{
			file: "reads.toml",
			want: Manifest{
				ID:           "audit",
				Name:         "Audit",
				Version:      "1.0.0",
				Dependencies: map[string]string{"notes": "^1.0", "my-vault": "*"},
				Reads: []ReadGrant{
					{Plugin: "notes", Tables: []string{"notes", "note_tags"}, Settings: []string{"notes.max_body_length"}},
					{Plugin: "my-vault", Settings: []string{"myVault.mode", "my-vault.region"}},
				},
				Warnings: []string{`unknown field "reads[0].mode" (line 14) ignored`},
			},
		},
		{
			file: "nav.toml",
			want: Manifest{
				ID:      "notes",
				Name:    "Notes",
				Version: "1.0.0",
				Nav: []NavEntry{
					{Label: "Notes", Path: "index.html", Icon: "notes.svg"},
					{Label: "Archive", Path: "pages/archive.html"},
				},
				Warnings: []string{`unknown field "nav[1].colour" (line 13) ignored`},
			},
		},
		{
			file: "crlf.toml",
			want: Manifest{
				ID:       "crlf",
				Name:     "Windows line endings",
				Version:  "1.0.0",
				Settings: []Setting{{Key: "crlf.path", Type: StringType, Default: `C:\data`}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			m, err := ParseManifest(readManifest(t, filepath.Join("good", tt.file)))
			require.NoError(t, err)
			require.Equal(t, tt.want, withoutUnexported(m))

			require.NotNil(t, m.version)
			require.Equal(t, tt.want.Version, m.version.Original())
			require.Equal(t, tt.want.Host == "", m.host == nil)
			require.Len(t, m.deps, len(tt.want.Dependencies))
			for id := range tt.want.Dependencies {
				require.NotNil(t, m.deps[id], id)
			}
			require.NotZero(t, m.line("id"))
		})
	}
	t.Run("every good file has a row", func(t *testing.T) {
		t.Parallel()
		files, err := filepath.Glob(filepath.Join("testdata", "manifests", "good", "*.toml"))
		require.NoError(t, err)
		for _, f := range files {
			found := false
			for _, tt := range tests {
				found = found || tt.file == filepath.Base(f)
			}
			require.Truef(t, found, "no test row for %s", f)
		}
	})
}

func TestParseManifestParsedFields(t *testing.T) {
	t.Parallel()

	m, err := ParseManifest(readManifest(t, "good/full.toml"))
	require.NoError(t, err)
	require.Equal(t, "1.4.2-beta.1+build.7", m.version.String())
	require.True(t, m.host.Check(semver.MustParse("1.9.0")))
	require.False(t, m.host.Check(semver.MustParse("2.0.0")))
	require.True(t, m.deps["auth"].Check(semver.MustParse("2.5.0")))
	require.False(t, m.deps["auth"].Check(semver.MustParse("3.0.0")))
	require.True(t, m.deps["search-index"].Check(semver.MustParse("1.3.9")))
	require.False(t, m.deps["search-index"].Check(semver.MustParse("1.4.0")))

	require.Equal(t, 57, m.line("settings[0].required"))
	require.Equal(t, 59, m.line("settings[1].required"), "falls back to the [[settings]] header")
	require.Equal(t, 20, m.line("config.api_token.default"), "falls back to [config.api_token]")
	require.Equal(t, 0, m.line("nowhere"))
}

func TestParseManifestBad(t *testing.T) {
	t.Parallel()

	tests := []struct {
		file   string
		plugin string
		field  string
		line   int
		msg    string
	}{
		{file: "not-toml.toml", line: 3, msg: "not valid TOML: strings cannot contain newlines"},
		{file: "missing-id.toml", field: "id", msg: `missing required field: add id = "my-plugin"`},
		{file: "missing-name.toml", plugin: "notes", field: "name", msg: "missing required field"},
		{file: "missing-version.toml", plugin: "notes", field: "version", msg: "missing required field"},
		{file: "id-not-slug.toml", plugin: "notes!", field: "id", line: 2, msg: "may contain only lowercase letters, digits and single hyphens, not '!'"},
		{file: "id-too-long.toml", plugin: "a-plugin-id-that-is-far-too-long-for-postgres", field: "id", line: 1, msg: "45 bytes long and the limit is 40, so that derived table names fit PostgreSQL's 63-byte identifiers"},
		{file: "id-uppercase.toml", plugin: "Notes", field: "id", line: 1, msg: `must be lowercase: use "notes"`},
		{file: "id-underscore.toml", plugin: "my_notes", field: "id", line: 1, msg: `use "-" to separate words, as in "my-notes"`},
		{file: "id-double-hyphen.toml", plugin: "my--notes", field: "id", line: 1, msg: `must not contain "--"`},
		{file: "id-leading-digit.toml", plugin: "2notes", field: "id", line: 1, msg: "must start with a letter"},
		{file: "id-trailing-hyphen.toml", plugin: "notes-", field: "id", line: 1, msg: `must not end with "-"`},
		{file: "id-empty.toml", field: "id", line: 1, msg: "must not be empty"},
		{file: "id-reserved.toml", plugin: "core", field: "id", line: 1, msg: `"core" is reserved`},
		{file: "name-empty.toml", plugin: "notes", field: "name", line: 2, msg: "must not be empty"},
		{file: "version-not-semver.toml", plugin: "notes", field: "version", line: 3, msg: `"1.x" is not a semantic version: invalid semantic version`},
		{file: "version-short.toml", plugin: "notes", field: "version", line: 3, msg: `write "1.0.0"`},
		{file: "version-v-prefix.toml", plugin: "notes", field: "version", line: 3, msg: `write "1.2.3"`},
		{file: "version-wrong-type.toml", plugin: "notes", field: "version", line: 3, msg: "must be a string, not an integer"},
		{file: "host-constraint-invalid.toml", plugin: "notes", field: "host", line: 4, msg: `">= banana" is not a version constraint (such as "^1.2.0" or ">= 1.0.0, < 2.0.0"): improper constraint: ">= banana"; this host provides plugin API 1.0.0`},
		{file: "dependency-constraint-invalid.toml", plugin: "notes", field: "dependencies.search", line: 7, msg: `"^^1" is not a version constraint`},
		{file: "dependency-empty-constraint.toml", plugin: "notes", field: "dependencies.auth", line: 6, msg: `use "*" to accept any version`},
		{file: "dependency-self.toml", plugin: "notes", field: "dependencies.notes", line: 6, msg: "cannot depend on itself"},
		{file: "dependency-not-id.toml", plugin: "notes", field: "dependencies.Auth_Service", line: 6, msg: `dependency "Auth_Service" is not a valid plugin id`},
		{file: "dependency-on-host.toml", plugin: "notes", field: "dependencies.core", line: 6, msg: "is the host, not a plugin"},
		{file: "permissions-not-strings.toml", plugin: "notes", field: "permissions[1]", line: 4, msg: "must be a string, not an integer"},
		{file: "setting-unknown-type.toml", plugin: "notes", field: "settings[0].type", line: 7, msg: `unknown type "integer": use "string", "number" or "boolean"`},
		{file: "setting-missing-type.toml", plugin: "notes", field: "settings[0].type", line: 5, msg: "missing required field"},
		{file: "setting-default-wrong-type.toml", plugin: "notes", field: "settings[1].default", line: 12, msg: `must be a number to match type = "number", not a string`},
		{file: "setting-default-not-finite.toml", plugin: "notes", field: "settings[0].default", line: 8, msg: "must be finite"},
		{file: "setting-duplicate-key.toml", plugin: "notes", field: "settings[2].key", line: 14, msg: `duplicate setting key "notes.limit": already defined at settings[0].key (line 6)`},
		{file: "setting-key-invalid.toml", plugin: "notes", field: "settings[0].key", line: 6, msg: `"notes..limit" is not a valid setting key`},
		{file: "setting-encrypted-not-string.toml", plugin: "notes", field: "settings[0].encrypted", line: 8, msg: "only string settings can be encrypted"},
		{file: "setting-required-not-bool.toml", plugin: "notes", field: "settings[0].required", line: 8, msg: "must be a boolean (true or false), not a string"},
		{file: "settings-not-array.toml", plugin: "notes", field: "settings", line: 4, msg: "must be an array of tables ([[settings]]), not a string"},
		{file: "config-unknown-type.toml", plugin: "notes", field: "config.api_token.type", line: 6, msg: `unknown type "secret"`},
		{file: "config-default-wrong-type.toml", plugin: "notes", field: "config.retries.default", line: 7, msg: `must be a number to match type = "number", not a boolean`},
		{file: "config-env-invalid.toml", plugin: "notes", field: "config.api_token.env", line: 7, msg: `"NOTES-API-TOKEN" is not an environment variable name`},
		{file: "config-key-invalid.toml", plugin: "notes", field: "config.ApiToken", line: 5, msg: `config key "ApiToken" must start with a lowercase letter`},
		{file: "config-not-table.toml", plugin: "notes", field: "config.api_token", line: 6, msg: "must be a table ([config.api_token]), not a string"},
		{file: "group-duplicate-id.toml", plugin: "notes", field: "setting_groups[1].id", line: 10, msg: `duplicate setting group "notes": already defined at setting_groups[0].id (line 6)`},
		{file: "group-sort-order-not-integer.toml", plugin: "notes", field: "setting_groups[0].sort_order", line: 8, msg: "must be an integer, not a float"},
		{file: "reads-not-dependency.toml", plugin: "audit", field: "reads[0].plugin", line: 6, msg: `plugin "notes" is not one of this plugin's dependencies: add notes = "<version constraint>" under [dependencies]`},
		{file: "reads-self.toml", plugin: "audit", field: "reads[0].plugin", line: 9, msg: `plugin "audit" cannot grant itself reads`},
		{file: "reads-duplicate-plugin.toml", plugin: "audit", field: "reads[1].plugin", line: 13, msg: `plugin "notes" already has an entry at reads[0].plugin (line 9)`},
		{file: "reads-grants-nothing.toml", plugin: "audit", field: "reads[0]", line: 8, msg: "grants nothing: list the dependency's tables"},
		{file: "reads-missing-plugin.toml", plugin: "audit", field: "reads[0].plugin", line: 8, msg: "missing required field"},
		{file: "reads-not-array.toml", plugin: "audit", field: "reads", line: 4, msg: "must be an array of tables ([[reads]]), not a string"},
		{file: "reads-table-invalid.toml", plugin: "audit", field: "reads[0].tables[1]", line: 10, msg: `table "notes__notes": invalid name`},
		{file: "reads-table-duplicate.toml", plugin: "audit", field: "reads[0].tables[1]", line: 10, msg: `table "notes" listed twice`},
		{file: "reads-tables-not-array.toml", plugin: "audit", field: "reads[0].tables", line: 10, msg: "must be an array of strings, not a string"},
		{file: "reads-tables-not-strings.toml", plugin: "audit", field: "reads[0].tables[1]", line: 10, msg: "must be a string, not an integer"},
		{file: "reads-setting-outside-namespace.toml", plugin: "audit", field: "reads[0].settings[0]", line: 10, msg: `setting "app.name" is outside plugin "notes"'s namespace (its keys start with "notes.")`},
		{file: "reads-setting-duplicate.toml", plugin: "audit", field: "reads[0].settings[1]", line: 10, msg: `setting "notes.title" listed twice`},
		{file: "reads-setting-key-invalid.toml", plugin: "audit", field: "reads[0].settings[0]", line: 10, msg: `"notes..title" is not a valid setting key`},
		{file: "too-deep.toml", plugin: "notes", line: 7, msg: "nested 17 levels deep, more than the limit of 16 (MaxManifestDepth"},
		// One per field rule, for the schema's agreement test too (manifest_schema_test.go).
		{file: "id-wrong-type.toml", field: "id", line: 1, msg: "must be a string, not an integer"},
		{file: "description-wrong-type.toml", plugin: "notes", field: "description", line: 4, msg: "must be a string, not a boolean"},
		{file: "description-datetime.toml", plugin: "notes", field: "description", line: 4, msg: "must be a string, not a datetime"},
		{file: "author-wrong-type.toml", plugin: "notes", field: "author", line: 4, msg: "must be a string, not an integer"},
		{file: "host-wrong-type.toml", plugin: "notes", field: "host", line: 4, msg: "must be a string, not a float"},
		{file: "dependencies-not-table.toml", plugin: "notes", field: "dependencies", line: 4, msg: "must be a table ([dependencies]), not a string"},
		{file: "dependency-wrong-type.toml", plugin: "notes", field: "dependencies.auth", line: 6, msg: "must be a string, not an integer"},
		{file: "permissions-not-array.toml", plugin: "notes", field: "permissions", line: 4, msg: "must be an array of strings, not a string"},
		{file: "permission-empty.toml", plugin: "notes", field: "permissions[1]", line: 4, msg: "must not be empty: remove it or name the permission"},
		{file: "reads-entry-not-table.toml", plugin: "audit", field: "reads[0]", line: 4, msg: "must be a table, not a string"},
		{file: "reads-plugin-wrong-type.toml", plugin: "audit", field: "reads[0].plugin", line: 9, msg: "must be a string, not an integer"},
		{file: "reads-table-empty.toml", plugin: "audit", field: "reads[0].tables[0]", line: 10, msg: "must not be empty: remove it or write a name"},
		{file: "reads-table-physical-too-long.toml", plugin: "audit", field: "reads[0].tables[0]", line: 10, msg: `physical name "notes__aaaa`},
		{file: "reads-setting-too-long.toml", plugin: "audit", field: "reads[0].settings[0]", line: 10, msg: "setting key is 129 bytes long; the limit is 128"},
		{file: "config-wrong-type.toml", plugin: "notes", field: "config", line: 4, msg: "must be a table ([config.<key>]), not a string"},
		{file: "config-key-too-long.toml", plugin: "notes", field: "config." + strings.Repeat("k", 65), line: 5, msg: "config key is 65 bytes long; the limit is 64"},
		{file: "config-missing-type.toml", plugin: "notes", field: "config.api_token.type", line: 5, msg: "missing required field"},
		{file: "config-secret-not-bool.toml", plugin: "notes", field: "config.api_token.secret", line: 7, msg: "must be a boolean (true or false), not a string"},
		{file: "config-env-wrong-type.toml", plugin: "notes", field: "config.api_token.env", line: 7, msg: "must be a string, not an integer"},
		{file: "groups-not-array.toml", plugin: "notes", field: "setting_groups", line: 4, msg: "must be an array of tables ([[setting_groups]]), not a string"},
		{file: "group-missing-id.toml", plugin: "notes", field: "setting_groups[0].id", line: 5, msg: `missing required field: add id = "my-group"`},
		{file: "group-id-invalid.toml", plugin: "notes", field: "setting_groups[0].id", line: 6, msg: `setting group id "Notes" must start with a lowercase letter`},
		{file: "group-missing-name.toml", plugin: "notes", field: "setting_groups[0].name", line: 5, msg: `missing required field: add name = "My Group"`},
		{file: "group-name-blank.toml", plugin: "notes", field: "setting_groups[0].name", line: 7, msg: "must not be empty: the name is what users see"},
		{file: "group-icon-wrong-type.toml", plugin: "notes", field: "setting_groups[0].icon", line: 8, msg: "must be a string, not an integer"},
		{file: "group-sort-order-whole-float.toml", plugin: "notes", field: "setting_groups[0].sort_order", line: 8, msg: "must be an integer, not a float"},
		{file: "nav-not-array.toml", plugin: "notes", field: "nav", line: 4, msg: "must be an array of tables ([[nav]]), not a string"},
		{file: "nav-missing-label.toml", plugin: "notes", field: "nav[0].label", line: 5, msg: `missing required field: add label = "My Page"`},
		{file: "nav-label-blank.toml", plugin: "notes", field: "nav[0].label", line: 6, msg: "must not be empty: the label is what the console's navigation shows"},
		{file: "nav-label-too-long.toml", plugin: "notes", field: "nav[0].label", line: 6, msg: "label is 65 bytes long; the limit is 64"},
		{file: "nav-label-wrong-type.toml", plugin: "notes", field: "nav[0].label", line: 6, msg: "must be a string, not an integer"},
		{file: "nav-missing-path.toml", plugin: "notes", field: "nav[0].path", line: 5, msg: `missing required field: add path = "index.html"`},
		{file: "nav-path-absolute.toml", plugin: "notes", field: "nav[0].path", line: 7, msg: `"/index.html" is not a path of the plugin's console assets: write a relative path such as "index.html"`},
		{file: "nav-path-dotdot.toml", plugin: "notes", field: "nav[0].path", line: 7, msg: `"../admin/index.html" is not a path of the plugin's console assets`},
		{file: "nav-path-url.toml", plugin: "notes", field: "nav[0].path", line: 7, msg: `"https://example.com/x.html" is not a path of the plugin's console assets`},
		{file: "nav-path-too-long.toml", plugin: "notes", field: "nav[0].path", line: 7, msg: "path is 257 bytes long; the limit is 256"},
		{file: "nav-duplicate-path.toml", plugin: "notes", field: "nav[1].path", line: 11, msg: `duplicate nav path "index.html": already listed at nav[0].path (line 7); list each page once`},
		{file: "nav-icon-not-image.toml", plugin: "notes", field: "nav[0].icon", line: 8, msg: `icon "notes.txt" must be an image file of the plugin's console assets ending in .svg, .png, .gif, .webp or .ico`},
		{file: "nav-icon-absolute.toml", plugin: "notes", field: "nav[0].icon", line: 8, msg: `"/notes.svg" is not a path of the plugin's console assets`},
		{file: "setting-missing-key.toml", plugin: "notes", field: "settings[0].key", line: 5, msg: `missing required field: add key = "my-plugin.option"`},
		{file: "setting-key-too-long.toml", plugin: "notes", field: "settings[0].key", line: 6, msg: "setting key is 129 bytes long; the limit is 128"},
		{file: "setting-encrypted-not-bool.toml", plugin: "notes", field: "settings[0].encrypted", line: 8, msg: "must be a boolean (true or false), not a string"},
		{file: "setting-group-wrong-type.toml", plugin: "notes", field: "settings[0].group", line: 8, msg: "must be a string, not an integer"},
		{file: "setting-description-wrong-type.toml", plugin: "notes", field: "settings[0].description", line: 8, msg: "must be a string, not an array"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			m, err := ParseManifest(readManifest(t, filepath.Join("bad", tt.file)))
			require.Error(t, err)
			require.Nil(t, m)
			require.ErrorIs(t, err, ErrInvalidManifest)

			var me *ManifestError
			require.ErrorAs(t, err, &me)
			require.Len(t, manifestErrors(t, err), 1, "want exactly one error, got: %v", err)
			require.Equal(t, tt.plugin, me.Plugin)
			require.Equal(t, tt.field, me.Field)
			require.Equal(t, tt.line, me.Line)
			require.Contains(t, err.Error(), tt.msg)
		})
	}
	t.Run("every bad file has a row", func(t *testing.T) {
		t.Parallel()
		files, err := filepath.Glob(filepath.Join("testdata", "manifests", "bad", "*.toml"))
		require.NoError(t, err)
		for _, f := range files {
			found := filepath.Base(f) == "group-not-found.toml" // see TestCheckGroups
			for _, tt := range tests {
				found = found || tt.file == filepath.Base(f)
			}
			require.Truef(t, found, "no test row for %s", f)
		}
	})
}

func TestParseManifestUnwrapsCause(t *testing.T) {
	t.Parallel()

	_, err := ParseManifest(readManifest(t, "bad/version-not-semver.toml"))
	require.ErrorIs(t, err, semver.ErrInvalidSemVer)

	_, err = ParseManifest(readManifest(t, "bad/not-toml.toml"))
	var pe toml.ParseError
	require.ErrorAs(t, err, &pe)
	require.Equal(t, 3, pe.Position.Line)
}

func TestParseManifestReportsAllProblems(t *testing.T) {
	t.Parallel()

	src := `id = "Bad_Id"
version = "1.0"
host = "nope"
colour = "red"

[dependencies]
other = "^^"

[config.token]
type = "text"

[[settings]]
key = "a.b"
type = "number"
default = "x"

[[settings]]
key = "a.b"
type = "boolean"
encrypted = true
`
	m, err := ParseManifest([]byte(src))
	require.Nil(t, m)
	require.ErrorIs(t, err, ErrInvalidManifest)

	type problem struct {
		Field string
		Line  int
	}
	var got []problem
	for _, me := range manifestErrors(t, err) {
		require.Equal(t, "Bad_Id", me.Plugin)
		got = append(got, problem{me.Field, me.Line})
	}
	require.Equal(t, []problem{
		{"id", 1},
		{"name", 0},
		{"version", 2},
		{"host", 3},
		{"dependencies.other", 7},
		{"config.token.type", 10},
		{"settings[0].default", 15},
		{"settings[1].key", 18},
		{"settings[1].encrypted", 20},
	}, got)
}

func TestCheckGroups(t *testing.T) {
	t.Parallel()

	m, err := ParseManifest(readManifest(t, "bad/group-not-found.toml"))
	require.NoError(t, err, "an unknown group is only reported by checkGroups")

	tests := []struct {
		name    string
		core    []SettingGroup
		wantErr string
	}{
		{
			name:    "group in neither the manifest nor the core groups",
			core:    []SettingGroup{{ID: "general", Name: "General"}},
			wantErr: `pluginhost: plugin "notes": plugin.toml line 17: field "settings[1].group": unknown setting group "reports": define it with [[setting_groups]] or use one of the known groups ("general", "notes")`,
		},
		{
			name:    "no core groups",
			wantErr: `unknown setting group "reports"`,
		},
		{
			name: "group defined by the host",
			core: []SettingGroup{{ID: "general"}, {ID: "reports", Name: "Reports"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := m.checkGroups(tt.core)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, ErrInvalidManifest)
			var me *ManifestError
			require.ErrorAs(t, err, &me)
			require.Equal(t, "notes", me.Plugin)
			require.Equal(t, "settings[1].group", me.Field)
			require.Equal(t, 17, me.Line)
			require.Contains(t, err.Error(), tt.wantErr)
		})
	}

	t.Run("several unknown groups", func(t *testing.T) {
		t.Parallel()
		m, err := ParseManifest([]byte(`id = "x"
name = "X"
version = "1.0.0"
settings = [{ key = "x.a", type = "string", group = "g1" }, { key = "x.b", type = "string", group = "g2" }]
`))
		require.NoError(t, err)
		errs := manifestErrors(t, m.checkGroups(nil))
		require.Len(t, errs, 2)
		require.Equal(t, "settings[0].group", errs[0].Field)
		require.Equal(t, "settings[1].group", errs[1].Field)
		require.Equal(t, 4, errs[1].Line, "an inline array falls back to the line of its key")
		require.Contains(t, errs[0].Error(), "known groups (none)")
	})
}

func TestManifestError(t *testing.T) {
	t.Parallel()

	cause := errors.New("boom")
	tests := []struct {
		name string
		err  *ManifestError
		want string
	}{
		{
			name: "everything",
			err:  &ManifestError{Plugin: "notes", Field: "version", Line: 3, Err: cause},
			want: `pluginhost: plugin "notes": plugin.toml line 3: field "version": boom`,
		},
		{
			name: "no plugin",
			err:  &ManifestError{Field: "id", Line: 1, Err: cause},
			want: `pluginhost: plugin.toml line 1: field "id": boom`,
		},
		{
			name: "no line",
			err:  &ManifestError{Plugin: "notes", Field: "name", Err: cause},
			want: `pluginhost: plugin "notes": plugin.toml: field "name": boom`,
		},
		{
			name: "no field",
			err:  &ManifestError{Line: 7, Err: cause},
			want: `pluginhost: plugin.toml line 7: boom`,
		},
		{
			name: "no cause",
			err:  &ManifestError{},
			want: `pluginhost: plugin.toml: invalid manifest`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.EqualError(t, tt.err, tt.want)
			require.ErrorIs(t, tt.err, ErrInvalidManifest)
			if tt.err.Err != nil {
				require.ErrorIs(t, tt.err, cause)
			}
		})
	}
}

func TestValidateID(t *testing.T) {
	t.Parallel()

	tests := []struct {
		id      string
		wantErr string
	}{
		{id: "a"},
		{id: "notes"},
		{id: "my-plugin-2"},
		{id: strings.Repeat("a", 40)},
		{id: strings.Repeat("a", 41), wantErr: "41 bytes long"},
		{id: "Ünïcode", wantErr: `not 'Ü': use "n-code"`},
		{id: "-notes", wantErr: `must start with a letter: use "notes"`},
		{id: "pluginhost", wantErr: `"pluginhost" is reserved`},
		{id: "core-extras"},
		{id: "MY__Plugin", wantErr: `must be lowercase: use "my-plugin"`},
		{id: "__", wantErr: `as in "my-plugin"`},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			t.Parallel()
			err := validateID(tt.id)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.NoError(t, validateID(suggestID(tt.id)), "the suggestion must be valid")
		})
	}
}

func TestDefaultEnv(t *testing.T) {
	t.Parallel()

	require.Equal(t, "PLUGINHOST_MY_PLUGIN_API_TOKEN", defaultEnv("my-plugin", "api-token"))
	require.Equal(t, "PLUGINHOST_NOTES_MAX_ITEMS", defaultEnv("notes", "max_items"))
}

// FuzzParseManifest checks that ParseManifest never panics and that what it
// accepts is valid.
func FuzzParseManifest(f *testing.F) {
	root := filepath.Join("testdata", "manifests")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f.Add(data)
		return nil
	})
	require.NoError(f, err)

	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			require.Nil(t, m)
			require.ErrorIs(t, err, ErrInvalidManifest)
			for _, me := range manifestErrors(t, err) {
				require.GreaterOrEqual(t, me.Line, 0)
				require.NotEmpty(t, me.Error())
			}
			return
		}
		require.NoError(t, validateID(m.ID))
		require.LessOrEqual(t, len(m.ID), pluginid.MaxLen)
		_, err = semver.StrictNewVersion(m.Version)
		require.NoError(t, err)
		require.NotNil(t, m.version)
		require.Equal(t, m.Host == "", m.host == nil)
		for id := range m.Dependencies {
			require.NoError(t, validateID(id))
			require.NotNil(t, m.deps[id])
		}
		for _, g := range m.Reads {
			require.Contains(t, m.Dependencies, g.Plugin)
			require.NotEqual(t, m.ID, g.Plugin)
			require.NotEmpty(t, append(slices.Clone(g.Tables), g.Settings...))
			for _, table := range g.Tables {
				_, err := PhysicalTableName(g.Plugin, table)
				require.NoError(t, err)
			}
			for _, key := range g.Settings {
				require.True(t, inNamespace(g.Plugin, key), key)
			}
		}
		for _, s := range m.Settings {
			requireValueOfType(t, s.Type, s.Default)
			require.False(t, s.Encrypted && s.Type != StringType)
		}
		for _, c := range m.Config {
			requireValueOfType(t, c.Type, c.Default)
			require.NotEmpty(t, c.Env)
		}
		_ = m.checkGroups(nil)
	})
}

// requireValueOfType checks that v is nil or a Go value of type typ.
func requireValueOfType(t *testing.T, typ ValueType, v any) {
	t.Helper()
	require.Contains(t, []ValueType{StringType, NumberType, BooleanType}, typ)
	if v == nil {
		return
	}
	switch typ {
	case StringType:
		require.IsType(t, "", v)
	case NumberType:
		require.IsType(t, float64(0), v)
		require.False(t, math.IsNaN(v.(float64)) || math.IsInf(v.(float64), 0))
	case BooleanType:
		require.IsType(t, false, v)
	}
}
