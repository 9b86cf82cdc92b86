package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// testdataDir is this package's testdata and rootDir the repository's
// root, found before a test changes the working directory.
var testdataDir, rootDir = abs("testdata"), abs(filepath.Join("..", ".."))

func abs(path string) string {
	dir, err := filepath.Abs(path)
	if err != nil {
		panic(err)
	}
	return dir
}

// lintLine is the format of a line of lint's output.
var lintLine = regexp.MustCompile(`^[^:]+\.toml(:[1-9][0-9]*)?: (error|warning): ([a-z_\-A-Z0-9.\[\]]+: )?\S.*$`)

// runAtRoot runs args with the repository's root as the working directory,
// so that the paths in the output are testdata/manifests/...; it returns the
// exit code, stdout and stderr.
func runAtRoot(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	t.Chdir(rootDir)
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// corpus returns the manifests of testdata/manifests/<dir>, relative to the
// repository's root.
func corpus(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(rootDir, "testdata", "manifests", dir, "*.toml"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for i, f := range files {
		files[i] = filepath.ToSlash(filepath.Join("testdata", "manifests", dir, filepath.Base(f)))
	}
	return files
}

// golden compares got with testdata/<name>, or rewrites it under -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(testdataDir, name)
	if *update {
		require.NoError(t, os.WriteFile(path, []byte(got), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "run go test ./cmd/pluginhost -update to create it")
	require.Equal(t, string(want), got)
}

func TestLintGoodManifests(t *testing.T) {
	code, stdout, stderr := runAtRootGolden(t, "lint-good.golden", append([]string{"lint"}, corpus(t, "good")...)...)
	require.Equal(t, exitOK, code, "warnings alone exit 0")
	require.Empty(t, stderr)
	require.Contains(t, stdout, ": warning: ", "the good corpus has warnings: unknown fields, a duplicate permission")
	require.NotContains(t, stdout, ": error: ")
}

func TestLintBadManifests(t *testing.T) {
	files := corpus(t, "bad")
	code, stdout, stderr := runAtRootGolden(t, "lint-bad.golden", append([]string{"lint"}, files...)...)
	require.Equal(t, exitProblems, code)
	require.Empty(t, stderr)
	for _, f := range files {
		if strings.HasSuffix(f, "/group-not-found.toml") { // an error only against the host's groups
			require.Contains(t, stdout, f+":17: warning: settings[1].group: ")
			continue
		}
		require.Contains(t, stdout, f+":", "every bad manifest is reported")
	}
}

func TestLintReportsEveryProblem(t *testing.T) {
	code, stdout, _ := runAtRootGolden(t, "many-problems.golden", "lint", "cmd/pluginhost/testdata/many-problems.toml")
	require.Equal(t, exitProblems, code)
	require.Len(t, strings.Split(strings.TrimSpace(stdout), "\n"), 14)
	require.Contains(t, stdout, "many-problems.toml: error: name: missing required field", "no line for a missing field")
}

func TestLintJSON(t *testing.T) {
	code, stdout, stderr := runAtRootGolden(t, "lint-json.golden", "lint", "-json",
		"testdata/manifests/bad/missing-id.toml", "testdata/manifests/bad/not-toml.toml", "testdata/manifests/good/reads.toml")
	require.Equal(t, exitProblems, code)
	require.Empty(t, stderr)
	var got []finding
	require.NoError(t, json.Unmarshal([]byte(stdout), &got))
	require.Equal(t, []finding{
		{File: "testdata/manifests/bad/missing-id.toml", Severity: "error", Field: "id", Message: `missing required field: add id = "my-plugin"`},
		{File: "testdata/manifests/bad/not-toml.toml", Line: 3, Severity: "error", Message: "not valid TOML: strings cannot contain newlines"},
		{File: "testdata/manifests/good/reads.toml", Line: 14, Severity: "warning", Plugin: "audit", Field: "reads[0].mode", Message: `unknown field "reads[0].mode" ignored`},
	}, got)

	code, stdout, _ = runAtRoot(t, "lint", "testdata/manifests/good/minimal.toml", "-json")
	require.Equal(t, exitOK, code)
	require.Equal(t, "[]\n", stdout, "flags may follow the files; nothing found is an empty array")
}

// runAtRootGolden is runAtRoot, with stdout checked line by line against
// the format and compared with the golden file name.
func runAtRootGolden(t *testing.T, name string, args ...string) (int, string, string) {
	t.Helper()
	code, stdout, stderr := runAtRoot(t, args...)
	if !strings.HasSuffix(name, "-json.golden") {
		for _, line := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
			require.Regexp(t, lintLine, line)
		}
	}
	golden(t, name, stdout)
	return code, stdout, stderr
}

func TestLintUsageErrors(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no arguments", nil, "Usage:"},
		{"unknown command", []string{"vet"}, `unknown command "vet"`},
		{"no file", []string{"lint"}, "no plugin.toml given"},
		{"unknown flag", []string{"lint", "-v", "testdata/manifests/good/minimal.toml"}, "unknown flag -v"},
		{"missing file", []string{"lint", "testdata/manifests/good/minimal.toml", "nope/plugin.toml"}, "open nope/plugin.toml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runAtRoot(t, tt.args...)
			require.Equal(t, exitUsage, code)
			require.Contains(t, stderr, tt.stderr)
			require.Empty(t, stdout)
		})
	}

	t.Run("a missing file beside manifests in error", func(t *testing.T) {
		code, stdout, stderr := runAtRoot(t, "lint", "nope.toml", "testdata/manifests/bad/missing-id.toml")
		require.Equal(t, exitUsage, code, "the usage error wins")
		require.Contains(t, stderr, "open nope.toml")
		require.Contains(t, stdout, "missing-id.toml: error: id: ", "the other files are still linted")
	})
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"lint", "-h"}} {
		code, stdout, stderr := runAtRoot(t, args...)
		require.Equal(t, exitOK, code, args)
		require.Empty(t, stderr)
		require.Contains(t, stdout, "pluginhost lint [-json] plugin.toml...")
	}
}

// A #:schema directive, which associates the JSON Schema in taplo and Even
// Better TOML, is a TOML comment: the manifest lints as without it, its
// lines counted from the directive's.
func TestLintSchemaDirective(t *testing.T) {
	code, stdout, stderr := runAtRoot(t, "lint", "cmd/pluginhost/testdata/schema-directive.toml")
	require.Equal(t, exitOK, code)
	require.Empty(t, stderr)
	require.Equal(t, `cmd/pluginhost/testdata/schema-directive.toml:5: warning: colour: unknown field "colour" ignored`+"\n", stdout)
}
