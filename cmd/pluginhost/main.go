// Command pluginhost is a tool for the authors of pluginhost plugins. Its
// lint command checks plugin.toml manifests with the library's own parser:
//
//	go run github.com/pluginhost/pluginhost/cmd/pluginhost lint path/to/plugin.toml
//
// It prints every error and warning, one a line, as
//
//	path:line: error|warning: field: message
//
// leaving out the line when it is unknown (a missing field) and the field
// when there is none (a TOML syntax error), and exits 1 when a manifest has
// errors, 0 when it has only warnings or nothing to say, and 2 on a usage
// error, such as a file that cannot be read. With -json it prints the
// findings as a JSON array instead.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/pluginhost/pluginhost"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK       = 0 // no errors; there may be warnings
	exitProblems = 1 // a manifest has errors
	exitUsage    = 2 // a usage error: a bad command or flag, a file that cannot be read
)

const usage = `pluginhost is a tool for the authors of pluginhost plugins.

Usage:

	pluginhost lint [-json] plugin.toml...
	pluginhost help

lint checks each plugin.toml with the host's own manifest parser and prints
every error and warning, one a line, as

	path:line: error|warning: field: message

leaving out the line when it is unknown and the field when there is none.
It exits 1 when a manifest has errors, 0 when there are only warnings, and
2 on a usage error, such as a file that cannot be read.

Flags of lint:

	-json   print the findings as a JSON array of objects with the keys
	        file, line (absent when unknown), severity ("error" or
	        "warning"), plugin and field (absent when unknown) and message

Editors that read JSON Schema (taplo, Even Better TOML) can check and
complete plugin.toml with schema/plugin.schema.json of the repository.
`

// run runs the command line args (without the program name), writing to
// stdout and stderr, and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "lint":
		return lint(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "pluginhost: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}

// finding is one error or warning about a manifest, as -json prints it.
type finding struct {
	File     string `json:"file"`
	Line     int    `json:"line,omitempty"`
	Severity string `json:"severity"` // "error" or "warning"
	Plugin   string `json:"plugin,omitempty"`
	Field    string `json:"field,omitempty"`
	Message  string `json:"message"`
}

// String returns the finding as path:line: severity: field: message.
func (f finding) String() string {
	var b strings.Builder
	b.WriteString(f.File)
	if f.Line > 0 {
		fmt.Fprintf(&b, ":%d", f.Line)
	}
	fmt.Fprintf(&b, ": %s: ", f.Severity)
	if f.Field != "" {
		b.WriteString(f.Field + ": ")
	}
	b.WriteString(f.Message)
	return b.String()
}

// lint runs the lint command on args: flags, then files, in any order.
func lint(args []string, stdout, stderr io.Writer) int {
	asJSON := false
	var files []string
	for i, a := range args {
		if a == "--" {
			files = append(files, args[i+1:]...)
			break
		}
		switch a {
		case "-json", "--json":
			asJSON = true
			continue
		case "-h", "-help", "--help":
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			fmt.Fprintf(stderr, "pluginhost lint: unknown flag %s\n\n%s", a, usage)
			return exitUsage
		}
		files = append(files, a)
	}
	if len(files) == 0 {
		fmt.Fprintf(stderr, "pluginhost lint: no plugin.toml given\n\n%s", usage)
		return exitUsage
	}

	code := exitOK
	findings := []finding{} // [] rather than null in JSON
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintf(stderr, "pluginhost lint: %v\n", err)
			code = exitUsage
			continue
		}
		found := check(file, data)
		if code == exitOK && slices.ContainsFunc(found, func(f finding) bool { return f.Severity == "error" }) {
			code = exitProblems
		}
		findings = append(findings, found...)
	}

	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(findings); err != nil {
			fmt.Fprintf(stderr, "pluginhost lint: %v\n", err)
			return exitUsage
		}
		return code
	}
	for _, f := range findings {
		fmt.Fprintln(stdout, f)
	}
	return code
}

// check returns the errors and warnings of the manifest data read from
// file, in the order of their lines, errors first on a line; those without
// a line (a missing field) come first.
func check(file string, data []byte) []finding {
	errs, warns := pluginhost.CheckManifest(data)
	var out []finding
	for _, e := range errs {
		msg := "invalid manifest"
		if e.Err != nil {
			msg = e.Err.Error()
		}
		out = append(out, finding{File: file, Line: e.Line, Severity: "error", Plugin: e.Plugin, Field: e.Field, Message: oneLine(msg)})
	}
	for _, w := range warns {
		out = append(out, finding{File: file, Line: w.Line, Severity: "warning", Plugin: w.Plugin, Field: w.Field, Message: oneLine(w.Message)})
	}
	slices.SortStableFunc(out, func(a, b finding) int { return a.Line - b.Line })
	return out
}

// oneLine replaces the line breaks of s by spaces, so that a finding takes
// one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\r\n", "\n")), " ")
}
