package pluginhost

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/Masterminds/semver/v3"

	"github.com/pluginhost/pluginhost/internal/tomlpos"
)

// ErrInvalidManifest is reported, through errors.Is, by every error about a
// plugin's manifest: a TOML syntax error, a missing or malformed field. The
// errors themselves are [*ManifestError] values.
var ErrInvalidManifest = errors.New("pluginhost: invalid manifest")

// ManifestError describes one problem in a plugin's manifest. errors.Is
// reports it as [ErrInvalidManifest]; through Unwrap, errors.Is and errors.As
// also reach the underlying cause, such as semver.ErrInvalidSemVer or a
// toml.ParseError.
type ManifestError struct {
	// Plugin is the plugin's id when known: the id field was present, even if
	// it is itself invalid. It is empty for TOML syntax errors.
	Plugin string
	// Field is the path of the field, such as "version",
	// "settings[1].default" or "config.api_token.type"; empty for syntax
	// errors.
	Field string
	// Line is the 1-based line in plugin.toml, 0 when unknown (for instance
	// for a required field that is missing).
	Line int
	// Err is the cause.
	Err error
}

// Error returns a message such as
//
//	pluginhost: plugin "notes": plugin.toml line 3: field "version": "1.x" is not a semantic version: invalid semantic version
//
// leaving out the plugin, the line and the field when they are unknown.
func (e *ManifestError) Error() string {
	var b strings.Builder
	b.WriteString("pluginhost: ")
	if e.Plugin != "" {
		fmt.Fprintf(&b, "plugin %q: ", e.Plugin)
	}
	b.WriteString("plugin.toml")
	if e.Line > 0 {
		fmt.Fprintf(&b, " line %d", e.Line)
	}
	b.WriteString(": ")
	if e.Field != "" {
		fmt.Fprintf(&b, "field %q: ", e.Field)
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		b.WriteString("invalid manifest")
	}
	return b.String()
}

// Unwrap returns the cause, e.Err.
func (e *ManifestError) Unwrap() error { return e.Err }

// Is reports whether target is [ErrInvalidManifest].
func (e *ManifestError) Is(target error) bool { return target == ErrInvalidManifest }

// Manifest is a plugin's validated plugin.toml. Obtain one with
// [ParseManifest]; the zero value is not a valid manifest. Treat a parsed
// Manifest as read-only: it is then safe for concurrent reads.
type Manifest struct {
	// ID is the plugin's unique slug: lowercase letters, digits and single
	// hyphens, starting with a letter, at most 40 bytes.
	ID string
	// Name is the human-readable name.
	Name string
	// Version is the plugin's semantic version, in the full
	// MAJOR.MINOR.PATCH form of SemVer 2.0.0 with optional pre-release and
	// build parts, without a "v" prefix: "1.4.0", "2.0.0-rc.1".
	Version string
	// Description and Author are free text.
	Description string
	Author      string
	// Host is a semver constraint on [APIVersion], or empty for any.
	Host string
	// Dependencies maps plugin ids this plugin needs to semver constraints
	// on their versions.
	Dependencies map[string]string
	// Permissions lists the permissions the plugin needs, each once, in
	// the order of the manifest. The host checks them against its catalog
	// (Config.Permissions) and a plugin protects its routes with them
	// ([Host.Require]).
	Permissions []string
	// Reads lists what the plugin reads of its dependencies: their tables,
	// granted read-only by the database engine, and their settings. Each
	// names a plugin of Dependencies.
	Reads []ReadGrant
	// Config declares the plugin's config keys ([config.<key>]), in the order
	// of their keys.
	Config []ConfigField
	// SettingGroups and Settings are the plugin's contributions to the
	// global settings.
	SettingGroups []SettingGroup
	Settings      []Setting
	// Nav lists the console pages the plugin adds to the navigation of
	// the host's web console ([[nav]]), in the order of the manifest.
	Nav []NavEntry
	// Warnings lists what was ignored, such as unknown keys, with their
	// lines.
	Warnings []string

	version *semver.Version                // parsed Version
	host    *semver.Constraints            // parsed Host; nil when empty
	deps    map[string]*semver.Constraints // parsed Dependencies
	lines   map[string]int                 // field path → line, from tomlpos
}

// ReadGrant is one [[reads]] entry: read-only access to tables and settings of a dependency.
//
// In plugin.toml:
//
//	[dependencies]
//	notes = "^1.0"
//
//	[[reads]]
//	plugin = "notes"
//	tables = ["notes"]
//	settings = ["notes.max_body_length"]
//
// Plugin is one of the manifest's Dependencies, never the plugin itself,
// and has one entry at most. Tables are declared (not physical) table
// names of that plugin, each once; Settings are keys in its namespace
// (their first dot-separated segment is its id or camelCase id), each once.
// An entry lists at least one table or setting. A granted setting is
// readable through the plugin's [Host.Settings], unless it is encrypted:
// another plugin's encrypted setting is never readable.
type ReadGrant struct {
	Plugin   string   `json:"plugin"`
	Tables   []string `json:"tables,omitempty"`
	Settings []string `json:"settings,omitempty"`
}

// NavEntry is one [[nav]] entry: a page of the plugin that the host's web
// console lists in its navigation while the plugin runs.
//
// In plugin.toml:
//
//	[[nav]]
//	label = "Notes"
//	path = "index.html"
//	icon = "notes.svg"
//
// Label is what the navigation shows: not blank, at most 64 bytes. Path
// names a file of the plugin's [ConsoleAssets], served at
// /api/plugin/<id>/_console/<path>: a relative path ("index.html",
// "pages/list.html") whose segments are letters, digits, ".", "_", "~" and
// "-", none starting with ".", at most 256 bytes; each path is listed once.
// Icon, optional, is an image of the same assets under the same rules,
// ending in .svg, .png, .gif, .webp or .ico.
type NavEntry struct {
	Label string `json:"label"`
	Path  string `json:"path"`
	Icon  string `json:"icon,omitempty"`
}

// readsOf returns the manifest's grant on plugin, or nil when it has none.
func (m *Manifest) readsOf(plugin string) *ReadGrant {
	for i := range m.Reads {
		if m.Reads[i].Plugin == plugin {
			return &m.Reads[i]
		}
	}
	return nil
}

// cloneGrants returns a deep copy of grants, nil for none.
func cloneGrants(grants []ReadGrant) []ReadGrant {
	if len(grants) == 0 {
		return nil
	}
	out := make([]ReadGrant, len(grants))
	for i, g := range grants {
		out[i] = ReadGrant{Plugin: g.Plugin, Tables: slices.Clone(g.Tables), Settings: slices.Clone(g.Settings)}
	}
	return out
}

// ConfigField declares one plugin config key ([config.<key>] in plugin.toml).
// Values come from Config.PluginConfig and from the environment.
type ConfigField struct {
	// Key is the <key> of [config.<key>]: a lowercase letter, then lowercase
	// letters, digits, "_" and "-", at most 64 bytes.
	Key string
	// Type is the type of the value.
	Type ValueType
	// Description says what the value is for.
	Description string
	// Required keys must have a value, from the environment,
	// Config.PluginConfig or Default; otherwise the plugin does not start.
	Required bool
	// Secret values are never logged.
	Secret bool
	// Default is nil, a string, a float64 or a bool, matching Type.
	Default any
	// Env names the environment variable that supplies the value; when empty
	// it is PLUGINHOST_<ID>_<KEY>, upper-cased, with "-" replaced by "_".
	Env string
}

// ParseManifest parses and validates the contents of a plugin.toml.
//
// A manifest larger than [MaxManifestSize] bytes or nested deeper than
// [MaxManifestDepth] levels is refused before it is decoded, as a
// *ManifestError naming the limit and, for the nesting, the line. A TOML
// syntax error is returned alone, as a [*ManifestError] with the line. Otherwise every problem found is reported: the error is one
// *ManifestError, or several joined with [errors.Join], each naming the
// field and, where the field is present, its line. Either way errors.Is(err,
// [ErrInvalidManifest]) is true and the returned *Manifest is nil.
//
// Unknown fields, at any level, are not errors: they are listed in
// Manifest.Warnings, so that plugins written for a newer host still load.
// A setting's group is checked later, against the groups of the host and of
// the manifest, when the plugin is registered with a Manager.
//
// ParseManifest is safe for concurrent use.
func ParseManifest(data []byte) (*Manifest, error) {
	p, early := run(data)
	if early != nil {
		return nil, early
	}
	if err := joinErrors(p.errs); err != nil {
		return nil, err
	}
	p.m.Warnings = p.warnings()
	return p.m, nil
}

// The limits of a manifest, checked before it is decoded: a decoder's time
// grows with the square of the nesting (a 32 KB manifest of nested inline
// tables took 13 s), and a plugin.toml is a few kilobytes, three levels
// deep (config.api_token.type, settings[1].default).
const (
	// MaxManifestSize is the largest manifest, in bytes: 64 KiB.
	MaxManifestSize = 64 << 10
	// MaxManifestDepth is how deep a manifest may nest keys, tables and
	// arrays. Each part of a table header or dotted key is a level, and so
	// are an array's elements and the keys of an inline table: under
	// [config.token], type is 3 levels deep; in x = { a = [1] }, the 1 is.
	MaxManifestDepth = 16
)

// checkLimits refuses data larger than MaxManifestSize or nested deeper
// than MaxManifestDepth, naming the plugin when its top-level id can be
// read without decoding.
func checkLimits(data []byte) error {
	if len(data) <= MaxManifestSize {
		if line, depth := tomlpos.Deeper(data, MaxManifestDepth); line > 0 {
			return &ManifestError{Plugin: idOf(data), Line: line, Err: fmt.Errorf(
				"nested %d levels deep, more than the limit of %d (MaxManifestDepth; each part of a dotted key or table header, each array and each inline table's key is a level)",
				depth, MaxManifestDepth)}
		}
		return nil
	}
	return &ManifestError{Plugin: idOf(data[:MaxManifestSize]), Err: fmt.Errorf(
		"%d bytes, more than the limit of %d (MaxManifestSize)", len(data), MaxManifestSize)}
}

// idOf returns the top-level id of a manifest not decoded, or "".
func idOf(data []byte) string {
	id, _ := tomlpos.TopString(data, "id")
	return id
}

// line returns the line that defines path in plugin.toml or, when path is
// not there, the line of its nearest ancestor; 0 when unknown.
func (m *Manifest) line(path string) int {
	return tomlpos.Lines(m.lines).Line(path)
}

// checkGroups reports the settings whose group is defined neither by the
// manifest's [[setting_groups]] nor in core, the host's groups. It returns
// nil, a *ManifestError, or several joined.
func (m *Manifest) checkGroups(core []SettingGroup) error {
	known := make(map[string]bool, len(core)+len(m.SettingGroups))
	for _, g := range core {
		known[g.ID] = true
	}
	for _, g := range m.SettingGroups {
		known[g.ID] = true
	}
	var errs []error
	for i, s := range m.Settings {
		if s.Group == "" || known[s.Group] {
			continue
		}
		field := fmt.Sprintf("settings[%d].group", i)
		errs = append(errs, &ManifestError{
			Plugin: m.ID,
			Field:  field,
			Line:   m.line(field),
			Err: fmt.Errorf("unknown setting group %q: define it with [[setting_groups]] or use one of the known groups (%s)",
				s.Group, quotedList(known)),
		})
	}
	return joinErrors(errs)
}

// syntaxError turns a TOML decoding error into a *ManifestError.
func syntaxError(err error) *ManifestError {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &ManifestError{Line: pe.Position.Line, Err: &tomlSyntaxError{pe: pe}}
	}
	return &ManifestError{Err: fmt.Errorf("not valid TOML: %w", err)}
}

// tomlSyntaxError words a toml.ParseError without repeating its line, which
// ManifestError already shows, and unwraps to it.
type tomlSyntaxError struct {
	pe toml.ParseError
}

func (e *tomlSyntaxError) Error() string { return "not valid TOML: " + e.pe.Message }

func (e *tomlSyntaxError) Unwrap() error { return e.pe }

// joinErrors returns nil for no errors, the error itself for one, and
// errors.Join of them for more.
func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}

// quotedList returns the keys of set, sorted and quoted, or "none".
func quotedList(set map[string]bool) string {
	if len(set) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, fmt.Sprintf("%q", k))
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}
