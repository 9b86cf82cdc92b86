package pluginhost

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// corpusFiles returns the manifests of testdata/manifests/<dir>.
func corpusFiles(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "manifests", dir, "*.toml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	return files
}

// On the whole corpus, CheckManifest reports ParseManifest's errors, and
// ParseManifest's warnings with the field and line of each.
func TestCheckManifestAgreesWithParseManifest(t *testing.T) {
	t.Parallel()
	sawWarning := false
	for _, f := range append(corpusFiles(t, "good"), corpusFiles(t, "bad")...) {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		m, perr := ParseManifest(data)
		errs, warns := CheckManifest(data)
		if perr != nil {
			require.Equal(t, manifestErrors(t, perr), errs, f)
			continue
		}
		require.Empty(t, errs, f)
		var plain []ManifestWarning // all but CheckManifest's own, on groups
		for _, w := range warns {
			require.NotEmpty(t, w.Field, f)
			require.Positivef(t, w.Line, "%s: warning %q has no line", f, w.Message)
			if !strings.HasPrefix(w.Message, "setting group ") {
				plain = append(plain, w)
			}
		}
		require.Len(t, m.Warnings, len(plain), f)
		for i, w := range plain {
			at := fmt.Sprintf(" (line %d)", w.Line)
			require.Contains(t, m.Warnings[i], at, f)
			require.Equal(t, w.Message, strings.Replace(m.Warnings[i], at, "", 1), f)
			sawWarning = true
		}
	}
	require.True(t, sawWarning, "the corpus has warnings to compare")
}

// CheckManifest reports the warnings of a manifest in error too, which
// ParseManifest cannot return.
func TestCheckManifestWarnsDespiteErrors(t *testing.T) {
	t.Parallel()
	errs, warns := CheckManifest([]byte(`id = "notes"
name = "Notes"
version = "1.0"
colour = "blue"
permissions = ["a", "a"]

[config.token]
type = "string"
required = true
default = "x"
`))
	require.Len(t, errs, 1)
	require.Equal(t, "version", errs[0].Field)
	require.Equal(t, 3, errs[0].Line)
	require.Equal(t, []ManifestWarning{
		{Plugin: "notes", Field: "colour", Line: 4, Message: `unknown field "colour" ignored`},
		{Plugin: "notes", Field: "permissions[1]", Line: 5, Message: `permission "a" listed twice: the duplicate is ignored`},
		{Plugin: "notes", Field: "config.token.required", Line: 9, Message: `config "token": required has no effect because the default always satisfies it`},
	}, warns)
}

// A setting's group that the manifest does not define is an error only at
// registration, against the host's groups; CheckManifest warns of it.
func TestCheckManifestWarnsOfGroupsTheManifestDoesNotDefine(t *testing.T) {
	t.Parallel()
	errs, warns := CheckManifest(readManifest(t, "bad/group-not-found.toml"))
	require.Empty(t, errs)
	require.Equal(t, []ManifestWarning{{
		Plugin: "notes", Field: "settings[1].group", Line: 17,
		Message: `setting group "reports" is not defined by this manifest's [[setting_groups]]: the host must define it (Config.CoreSettingGroups), or registering the plugin fails`,
	}}, warns)
}

// A syntax error or a limit is reported alone, with its line.
func TestCheckManifestStopsAtSyntaxErrors(t *testing.T) {
	t.Parallel()
	errs, warns := CheckManifest(readManifest(t, "bad/not-toml.toml"))
	require.Len(t, errs, 1)
	require.Equal(t, 3, errs[0].Line)
	require.Empty(t, warns)

	errs, _ = CheckManifest(readManifest(t, "bad/too-deep.toml"))
	require.Len(t, errs, 1)
	require.Equal(t, 7, errs[0].Line)
}

// Past an element of [[settings]] that is not a table, and a dependency
// whose constraint is not a string, the parser still reports the problems
// of the other elements and of the dependency's id.
func TestParseManifestReportsProblemsPastABadElement(t *testing.T) {
	t.Parallel()
	_, err := ParseManifest([]byte(`id = "notes"
name = "Notes"
version = "1.0.0"
settings = [1, { key = "notes.a", type = "text" }]
reads = [{ plugin = "notes", tables = ["t"] }, "x"]

[dependencies]
Bad_Id = 2
`))
	type problem struct {
		Field string
		Line  int
	}
	var got []problem
	for _, me := range manifestErrors(t, err) {
		got = append(got, problem{me.Field, me.Line})
	}
	require.Equal(t, []problem{
		{"dependencies.Bad_Id", 8}, // must be a string
		{"dependencies.Bad_Id", 8}, // not a valid plugin id
		{"reads[1]", 5},
		{"reads[0].plugin", 5}, // cannot grant itself reads
		{"settings[0]", 4},
		{"settings[1].type", 4},
	}, got)
}
