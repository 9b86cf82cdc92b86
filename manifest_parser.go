package pluginhost

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/pluginhost/pluginhost/internal/tomlpos"
)

// manifestParser extracts and validates a Manifest from a decoded
// plugin.toml, collecting every error and warning along the way.
type manifestParser struct {
	m      *Manifest
	lines  tomlpos.Lines
	plugin string // the id field, once read; for ManifestError.Plugin
	errs   []error
	warns  []manifestWarning
	groups []groupRef // the settings' groups, for CheckManifest
}

// manifestWarning is an entry of Manifest.Warnings, sorted by line: text is
// before, the line of field as " (line N)", and after; without the line it
// is a ManifestWarning's message.
type manifestWarning struct {
	field, before, after string
	line                 int
}

// groupRef is the group a [[settings]] entry names, and the path of its
// group field.
type groupRef struct {
	group, field string
}

// run parses data into p.m, collecting p.errs and p.warns; it returns the
// error that stops parsing before that (a limit, a TOML syntax error).
func run(data []byte) (*manifestParser, *ManifestError) {
	if err := checkLimits(data); err != nil {
		return nil, err.(*ManifestError)
	}
	var doc map[string]any
	if _, err := toml.Decode(string(data), &doc); err != nil {
		return nil, syntaxError(err)
	}
	lines := tomlpos.Index(data)
	p := &manifestParser{m: &Manifest{lines: lines}, lines: lines}
	p.parse(tomlTable{p: p, m: doc})
	return p, nil
}

// ManifestWarning is one warning about a plugin.toml, as [CheckManifest]
// reports it: something the host ignores, such as an unknown field, or that
// may fail later.
type ManifestWarning struct {
	// Plugin is the plugin's id when known, as in [ManifestError.Plugin].
	Plugin string
	// Field is the path of the field, as in [ManifestError.Field].
	Field string
	// Line is the 1-based line in plugin.toml, 0 when unknown.
	Line int
	// Message says what is wrong, without the line.
	Message string
}

// CheckManifest checks the contents of a plugin.toml as [ParseManifest]
// does, and returns every problem found, for tools such as a manifest
// linter. errs holds ParseManifest's errors, one *ManifestError each in the
// order found, nil when ParseManifest succeeds. warnings holds the warnings
// of Manifest.Warnings with their fields and lines, in the order of their
// lines, even when there are errors (ParseManifest then returns no
// Manifest). A limit or a TOML syntax error is reported alone, as by
// ParseManifest.
//
// CheckManifest also warns of each setting whose group the manifest's
// [[setting_groups]] do not define: only the host can define it then
// (Config.CoreSettingGroups), or registering the plugin fails.
func CheckManifest(data []byte) (errs []*ManifestError, warnings []ManifestWarning) {
	p, early := run(data)
	if early != nil {
		return []*ManifestError{early}, nil
	}
	for _, err := range p.errs {
		errs = append(errs, err.(*ManifestError))
	}
	defined := map[string]bool{}
	for _, g := range p.m.SettingGroups {
		defined[g.ID] = true
	}
	for _, ref := range p.groups {
		if !defined[ref.group] {
			p.warn(ref.field, fmt.Sprintf("setting group %q is not defined by this manifest's [[setting_groups]]", ref.group),
				": the host must define it (Config.CoreSettingGroups), or registering the plugin fails")
		}
	}
	p.sortWarnings()
	for _, w := range p.warns {
		warnings = append(warnings, ManifestWarning{Plugin: p.plugin, Field: w.field, Line: w.line, Message: w.before + w.after})
	}
	return errs, warnings
}

// fail records a problem with the field at path.
func (p *manifestParser) fail(path string, err error) {
	p.errs = append(p.errs, &ManifestError{
		Plugin: p.plugin,
		Field:  path,
		Line:   p.lines.Line(path),
		Err:    err,
	})
}

// warn records a warning about the field at path, which Manifest.Warnings
// words as before, the line of path as " (line N)", and after.
func (p *manifestParser) warn(path, before, after string) {
	p.warns = append(p.warns, manifestWarning{field: path, before: before, after: after, line: p.lines.Line(path)})
}

// at returns " (line N)" for the line of path, or "" when it is unknown.
func (p *manifestParser) at(path string) string {
	if line := p.lines.Line(path); line > 0 {
		return fmt.Sprintf(" (line %d)", line)
	}
	return ""
}

// sortWarnings sorts the warnings by line, then by text.
func (p *manifestParser) sortWarnings() {
	slices.SortStableFunc(p.warns, func(a, b manifestWarning) int {
		if a.line != b.line {
			return a.line - b.line
		}
		return strings.Compare(a.before+a.after, b.before+b.after)
	})
}

// warnings returns the warnings of Manifest.Warnings, in the order of their
// lines.
func (p *manifestParser) warnings() []string {
	p.sortWarnings()
	var out []string
	for _, w := range p.warns {
		out = append(out, w.before+p.at(w.field)+w.after)
	}
	return out
}

// tomlTable is one TOML table of the manifest and its path.
type tomlTable struct {
	p    *manifestParser
	path string // "" for the top level
	m    map[string]any
}

// field returns the path of key in t.
func (t tomlTable) field(key string) string {
	if t.path == "" {
		return key
	}
	return t.path + "." + key
}

// has reports whether key is present.
func (t tomlTable) has(key string) bool {
	_, ok := t.m[key]
	return ok
}

// require reports key as missing when it is absent; example shows how to
// write it.
func (t tomlTable) require(key, example string) bool {
	if t.has(key) {
		return true
	}
	t.p.fail(t.field(key), fmt.Errorf("missing required field: add %s", example))
	return false
}

// wrongType reports that key holds v where want (with its article) was
// expected.
func (t tomlTable) wrongType(key, want string, v any) {
	hint := ""
	switch v.(type) {
	case int64, float64, bool, time.Time:
		if want == "a string" {
			hint = ": put the value in quotes"
		}
	}
	t.p.fail(t.field(key), fmt.Errorf("must be %s, not %s%s", want, tomlType(v), hint))
}

// str returns the string at key; ok is false when it is absent or of
// another type, which is reported.
func (t tomlTable) str(key string) (s string, ok bool) {
	v, present := t.m[key]
	if !present {
		return "", false
	}
	if s, ok = v.(string); !ok {
		t.wrongType(key, "a string", v)
	}
	return s, ok
}

// boolean returns the boolean at key, reporting another type.
func (t tomlTable) boolean(key string) (b bool, ok bool) {
	v, present := t.m[key]
	if !present {
		return false, false
	}
	if b, ok = v.(bool); !ok {
		t.wrongType(key, "a boolean (true or false)", v)
	}
	return b, ok
}

// integer returns the integer at key as an int, reporting another type.
func (t tomlTable) integer(key string) (n int, ok bool) {
	v, present := t.m[key]
	if !present {
		return 0, false
	}
	i, ok := v.(int64)
	if !ok {
		t.wrongType(key, "an integer", v)
		return 0, false
	}
	if i < math.MinInt || i > math.MaxInt {
		t.p.fail(t.field(key), fmt.Errorf("%d is out of range", i))
		return 0, false
	}
	return int(i), true
}

// listItem is one string of an array and its path ("reads[0].tables[1]").
type listItem struct {
	s    string
	path string
}

// strs returns the strings of the array at key, reporting another type, an
// element that is not a string and an empty string. n is the array's length,
// its elements in error included; 0 when key is absent, -1 when it is not an
// array.
func (t tomlTable) strs(key string) (items []listItem, n int) {
	v, present := t.m[key]
	if !present {
		return nil, 0
	}
	list, ok := v.([]any)
	if !ok {
		t.wrongType(key, "an array of strings", v)
		return nil, -1
	}
	for i, e := range list {
		path := fmt.Sprintf("%s[%d]", t.field(key), i)
		switch s, ok := e.(string); {
		case !ok:
			t.p.fail(path, fmt.Errorf("must be a string, not %s", tomlType(e)))
		case s == "":
			t.p.fail(path, errors.New("must not be empty: remove it or write a name"))
		default:
			items = append(items, listItem{s: s, path: path})
		}
	}
	return items, len(list)
}

// sub returns the table at key, reporting another type; syntax shows how a
// table is written there.
func (t tomlTable) sub(key, syntax string) (tomlTable, bool) {
	v, present := t.m[key]
	if !present {
		return tomlTable{}, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		t.wrongType(key, "a table ("+syntax+")", v)
		return tomlTable{}, false
	}
	return tomlTable{p: t.p, path: t.field(key), m: m}, true
}

// tables returns the array of tables at key, written [[key]] or as an array
// of inline tables, reporting another type.
func (t tomlTable) tables(key string) []tomlTable {
	v, present := t.m[key]
	if !present {
		return nil
	}
	var elems []any
	switch v := v.(type) {
	case []map[string]any:
		for _, m := range v {
			elems = append(elems, m)
		}
	case []any:
		elems = v
	default:
		t.wrongType(key, fmt.Sprintf("an array of tables ([[%s]])", key), v)
		return nil
	}
	// An element that is not a table is reported, and the tables around it
	// are still read, under their own indexes, so that their problems are
	// reported too; the Manifest, in error, is then discarded.
	var out []tomlTable
	for i, e := range elems {
		path := fmt.Sprintf("%s[%d]", t.field(key), i)
		m, ok := e.(map[string]any)
		if !ok {
			t.p.fail(path, fmt.Errorf("must be a table, not %s", tomlType(e)))
			continue
		}
		out = append(out, tomlTable{p: t.p, path: path, m: m})
	}
	return out
}

// keys returns the keys of t, sorted.
func (t tomlTable) keys() []string {
	keys := make([]string, 0, len(t.m))
	for k := range t.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// warnUnknown adds a warning for each key of t that is not in known.
func (t tomlTable) warnUnknown(known ...string) {
	for _, k := range t.keys() {
		if !slices.Contains(known, k) {
			f := t.field(k)
			t.p.warn(f, fmt.Sprintf("unknown field %q", f), " ignored")
		}
	}
}

// valueType reads a required type field: "string", "number" or "boolean".
func (t tomlTable) valueType() (ValueType, bool) {
	if !t.require("type", `type = "string", "number" or "boolean"`) {
		return "", false
	}
	s, ok := t.str("type")
	if !ok {
		return "", false
	}
	switch typ := ValueType(s); typ {
	case StringType, NumberType, BooleanType:
		return typ, true
	}
	t.p.fail(t.field("type"), fmt.Errorf(`unknown type %q: use "string", "number" or "boolean"`, s))
	return "", false
}

// defaultValue reads the default field, which must match typ; a number is
// returned as a float64. It returns nil when the default is absent, typ is
// unknown (""), or the default does not match, which is reported.
func (t tomlTable) defaultValue(typ ValueType) any {
	v, present := t.m["default"]
	if !present || typ == "" {
		return nil
	}
	switch typ {
	case StringType:
		if s, ok := v.(string); ok {
			return s
		}
	case NumberType:
		switch n := v.(type) {
		case int64:
			return float64(n)
		case float64:
			if math.IsNaN(n) || math.IsInf(n, 0) {
				t.p.fail(t.field("default"), fmt.Errorf("%v is not allowed: the default of a number must be finite", n))
				return nil
			}
			return n
		}
	case BooleanType:
		if b, ok := v.(bool); ok {
			return b
		}
	}
	t.p.fail(t.field("default"), fmt.Errorf("must be %s to match type = %q, not %s",
		typeArticle[typ], typ, tomlType(v)))
	return nil
}

// typeArticle names the TOML value each ValueType takes, for messages.
var typeArticle = map[ValueType]string{
	StringType:  "a string",
	NumberType:  "a number",
	BooleanType: "a boolean (true or false)",
}

// tomlType names the TOML type of a decoded value, with its article, for
// messages.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a datetime"
	case []map[string]any:
		return "an array of tables"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", v)
}
