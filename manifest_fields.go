package pluginhost

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/pluginhost/pluginhost/internal/pluginid"
	"github.com/pluginhost/pluginhost/internal/sqlgen"
)

// Limits on the other names a manifest declares.
const (
	maxConfigKeyLen  = 64
	maxSettingKeyLen = 128
	maxNavLabelLen   = 64
	maxNavPathLen    = 256
)

var (
	configKeyRE  = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	groupIDRE    = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	settingKeyRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$`)
	envNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// navPathRE is a relative path of slash-separated segments, none
	// starting with "." (so neither "." nor ".." nor a hidden file).
	navPathRE = regexp.MustCompile(`^[A-Za-z0-9_~-][A-Za-z0-9._~-]*(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*$`)
	navIconRE = regexp.MustCompile(`\.(svg|png|gif|webp|ico)$`)
)

// manifestFields lists the fields the parser reads in each table of
// plugin.toml, by the table's place: "" for the top level, then
// [[reads]], [config.<key>], [[setting_groups]], [[settings]] and [[nav]]. Other
// keys are warned of as unknown ([dependencies] maps plugin ids, and
// [config] config keys). schema/plugin.schema.json describes each field; a
// test keeps the two in step.
var manifestFields = map[string][]string{
	"": {"id", "name", "version", "description", "author", "host",
		"dependencies", "permissions", "reads", "config", "setting_groups", "settings", "nav"},
	"reads[]":          {"plugin", "tables", "settings"},
	"config.<key>":     {"type", "description", "required", "secret", "default", "env"},
	"setting_groups[]": {"id", "name", "description", "icon", "sort_order"},
	"settings[]":       {"key", "type", "default", "description", "group", "encrypted", "required"},
	"nav[]":            {"label", "path", "icon"},
}

// parse reads the top-level table of plugin.toml into p.m.
func (p *manifestParser) parse(top tomlTable) {
	top.warnUnknown(manifestFields[""]...)
	p.id(top)
	p.name(top)
	p.version(top)
	p.m.Description, _ = top.str("description")
	p.m.Author, _ = top.str("author")
	p.host(top)
	p.dependencies(top)
	p.permissions(top)
	p.reads(top)
	p.config(top)
	p.settingGroups(top)
	p.settings(top)
	p.nav(top)
}

// id reads the required id, which later errors name as their plugin.
func (p *manifestParser) id(top tomlTable) {
	if !top.require("id", `id = "my-plugin"`) {
		return
	}
	if id, ok := top.str("id"); ok {
		p.plugin = id
		p.m.ID = id
		if err := validateID(id); err != nil {
			p.fail("id", err)
		}
	}
}

// name reads the required name, which must not be blank.
func (p *manifestParser) name(top tomlTable) {
	if !top.require("name", `name = "My Plugin"`) {
		return
	}
	if name, ok := top.str("name"); ok {
		p.m.Name = name
		if strings.TrimSpace(name) == "" {
			p.fail("name", errors.New(`must not be empty: give the plugin a human-readable name such as "My Plugin"`))
		}
	}
}

// version reads the required version, a semantic version.
func (p *manifestParser) version(top tomlTable) {
	if !top.require("version", `version = "1.0.0"`) {
		return
	}
	if v, ok := top.str("version"); ok {
		p.m.Version = v
		sv, err := parseVersion(v)
		if err != nil {
			p.fail("version", err)
		}
		p.m.version = sv
	}
}

// host reads the optional constraint on the host's plugin API version.
func (p *manifestParser) host(top tomlTable) {
	host, ok := top.str("host")
	if !ok || host == "" {
		return
	}
	p.m.Host = host
	c, err := parseConstraint(host)
	if err != nil {
		p.fail("host", fmt.Errorf("%w; this host provides plugin API %s", err, APIVersion))
	}
	p.m.host = c
}

// dependencies reads [dependencies]: plugin id → version constraint.
func (p *manifestParser) dependencies(top tomlTable) {
	deps, ok := top.sub("dependencies", "[dependencies]")
	if !ok {
		return
	}
	for _, id := range deps.keys() {
		field := deps.field(id)
		constraint, isString := deps.str(id)
		if isString {
			if p.m.Dependencies == nil {
				p.m.Dependencies = map[string]string{}
				p.m.deps = map[string]*semver.Constraints{}
			}
			p.m.Dependencies[id] = constraint
		}
		// The id is checked even when the constraint is not a string, which
		// is reported already: both are problems to fix.
		if pluginid.Reserved(id) {
			p.fail(field, fmt.Errorf("%q is the host, not a plugin: remove this dependency and constrain the host's version with host = \"...\" instead", id))
			continue
		}
		if err := validateID(id); err != nil {
			p.fail(field, fmt.Errorf("dependency %w", err))
			continue
		}
		if id == p.plugin {
			p.fail(field, fmt.Errorf("plugin %q cannot depend on itself: remove this line", id))
			continue
		}
		if !isString {
			continue
		}
		c, err := parseConstraint(constraint)
		if err != nil {
			p.fail(field, err)
			continue
		}
		p.m.deps[id] = c
	}
}

// permissions reads the permissions array. Duplicates are dropped with a
// warning.
func (p *manifestParser) permissions(top tomlTable) {
	v, ok := top.m["permissions"]
	if !ok {
		return
	}
	list, ok := v.([]any)
	if !ok {
		top.wrongType("permissions", "an array of strings", v)
		return
	}
	for i, e := range list {
		field := fmt.Sprintf("permissions[%d]", i)
		s, ok := e.(string)
		switch {
		case !ok:
			p.fail(field, fmt.Errorf("must be a string, not %s", tomlType(e)))
		case s == "":
			p.fail(field, errors.New("must not be empty: remove it or name the permission"))
		case slices.Contains(p.m.Permissions, s):
			p.warn(field, fmt.Sprintf("permission %q listed twice", s), ": the duplicate is ignored")
		default:
			p.m.Permissions = append(p.m.Permissions, s)
		}
	}
}

// reads reads the [[reads]] tables, the plugin's read grants on its
// dependencies' tables and settings. It runs after dependencies, whose ids
// each entry's plugin must be one of.
func (p *manifestParser) reads(top tomlTable) {
	seen := map[string]string{} // plugin id → path of the entry naming it
	for _, t := range top.tables("reads") {
		t.warnUnknown(manifestFields["reads[]"]...)
		plugin, valid := p.readsPlugin(t, seen)
		tables, nt := t.strs("tables")
		settings, ns := t.strs("settings")
		if nt == 0 && ns == 0 { // absent or empty; -1 is a type already reported
			p.fail(t.path, errors.New(`grants nothing: list the dependency's tables (tables = ["name"]) or settings (settings = ["key"]) to read, or remove this entry`))
		}
		p.m.Reads = append(p.m.Reads, ReadGrant{
			Plugin:   plugin,
			Tables:   p.readsTables(tables, plugin, valid),
			Settings: p.readsSettings(settings, plugin, valid),
		})
	}
}

// readsPlugin reads the plugin of a [[reads]] entry, which must be one of
// the manifest's dependencies, not the plugin itself, and named by no other
// entry. valid reports whether it is a well-formed plugin id, against which
// tables and setting keys can be checked.
func (p *manifestParser) readsPlugin(t tomlTable, seen map[string]string) (plugin string, valid bool) {
	if !t.require("plugin", `plugin = "<a dependency's id>"`) {
		return "", false
	}
	plugin, ok := t.str("plugin")
	if !ok {
		return "", false
	}
	field := t.field("plugin")
	_, isDep := p.m.Dependencies[plugin]
	switch first, dup := seen[plugin]; {
	case plugin == p.plugin:
		p.fail(field, fmt.Errorf("plugin %q cannot grant itself reads: its own tables and settings are its own already; remove this entry", plugin))
	case !isDep:
		p.fail(field, fmt.Errorf("plugin %q is not one of this plugin's dependencies: add %s = \"<version constraint>\" under [dependencies], or remove this entry", plugin, tomlKey(plugin)))
	case dup:
		p.fail(field, fmt.Errorf("plugin %q already has an entry at %s%s: list all its tables and settings in that one", plugin, first, p.at(first)))
	default:
		seen[plugin] = field
	}
	return plugin, validateID(plugin) == nil
}

// readsTables checks the tables of a [[reads]] entry: declared table names
// of plugin (valid: a well-formed id), each once.
func (p *manifestParser) readsTables(tables []listItem, plugin string, valid bool) []string {
	var out []string
	for _, it := range tables {
		err := sqlgen.ValidName("table", it.s)
		switch {
		case slices.Contains(out, it.s):
			err = fmt.Errorf("table %q listed twice: list each table once", it.s)
		case err != nil:
			err = fmt.Errorf("%w; write the table's name as plugin %q declares it, not its physical name", err, plugin)
		case valid:
			_, err = PhysicalTableName(plugin, it.s)
		}
		if err != nil {
			p.fail(it.path, err)
			continue
		}
		out = append(out, it.s)
	}
	return out
}

// readsSettings checks the settings of a [[reads]] entry: keys in plugin's
// namespace (valid: a well-formed id), each once.
func (p *manifestParser) readsSettings(keys []listItem, plugin string, valid bool) []string {
	var out []string
	for _, it := range keys {
		var err error
		switch {
		case slices.Contains(out, it.s):
			err = fmt.Errorf("setting %q listed twice: list each setting once", it.s)
		case len(it.s) > maxSettingKeyLen:
			err = fmt.Errorf("setting key is %d bytes long; the limit is %d", len(it.s), maxSettingKeyLen)
		case !settingKeyRE.MatchString(it.s):
			err = fmt.Errorf("%q is not a valid setting key: use dot-separated words of letters, digits, \"_\" and \"-\", starting with a letter, such as \"notes.max_items\"", it.s)
		case valid && !inNamespace(plugin, it.s):
			err = fmt.Errorf("setting %q is outside plugin %q's namespace (its keys start with %s): a grant names the dependency's own settings", it.s, plugin, namespaceHint(plugin))
		}
		if err != nil {
			p.fail(it.path, err)
			continue
		}
		out = append(out, it.s)
	}
	return out
}

// tomlKey returns id as a TOML key, quoted when a bare key cannot hold it.
func tomlKey(id string) string {
	if id != "" && strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == "" {
		return id
	}
	return fmt.Sprintf("%q", id)
}

// config reads the [config.<key>] tables, in the order of their keys.
func (p *manifestParser) config(top tomlTable) {
	config, ok := top.sub("config", "[config.<key>]")
	if !ok {
		return
	}
	for _, key := range config.keys() {
		t, ok := config.sub(key, "[config."+key+"]")
		if !ok {
			continue
		}
		p.m.Config = append(p.m.Config, p.configField(key, t))
	}
}

// configField reads one [config.<key>] table.
func (p *manifestParser) configField(key string, t tomlTable) ConfigField {
	t.warnUnknown(manifestFields["config.<key>"]...)
	f := ConfigField{Key: key}
	switch {
	case len(key) > maxConfigKeyLen:
		p.fail(t.path, fmt.Errorf("config key is %d bytes long; the limit is %d", len(key), maxConfigKeyLen))
	case !configKeyRE.MatchString(key):
		p.fail(t.path, fmt.Errorf("config key %q must start with a lowercase letter and contain only lowercase letters, digits, \"_\" and \"-\"", key))
	}
	f.Type, _ = t.valueType()
	f.Description, _ = t.str("description")
	f.Required, _ = t.boolean("required")
	f.Secret, _ = t.boolean("secret")
	f.Default = t.defaultValue(f.Type)
	if f.Required && f.Default != nil {
		p.warn(t.field("required"), fmt.Sprintf("config %q", key), ": required has no effect because the default always satisfies it")
	}
	if env, ok := t.str("env"); ok {
		f.Env = env
		if !envNameRE.MatchString(env) {
			p.fail(t.field("env"), fmt.Errorf("%q is not an environment variable name: use letters, digits and \"_\", not starting with a digit", env))
		}
	} else {
		f.Env = defaultEnv(p.plugin, key)
	}
	return f
}

// defaultEnv returns PLUGINHOST_<ID>_<KEY>, upper-cased, with "-" replaced
// by "_".
func defaultEnv(id, key string) string {
	name := "PLUGINHOST_" + id + "_" + key
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// settingGroups reads the [[setting_groups]] tables.
func (p *manifestParser) settingGroups(top tomlTable) {
	seen := map[string]string{} // group id → path of the table defining it
	for _, t := range top.tables("setting_groups") {
		t.warnUnknown(manifestFields["setting_groups[]"]...)
		var g SettingGroup
		if t.require("id", `id = "my-group"`) {
			if id, ok := t.str("id"); ok {
				g.ID = id
				switch first, dup := seen[id]; {
				case !groupIDRE.MatchString(id):
					p.fail(t.field("id"), fmt.Errorf("setting group id %q must start with a lowercase letter and contain only lowercase letters, digits, \"_\" and \"-\"", id))
				case dup:
					p.fail(t.field("id"), fmt.Errorf("duplicate setting group %q: already defined at %s%s; give each group its own id", id, first, p.at(first)))
				default:
					seen[id] = t.field("id")
				}
			}
		}
		if t.require("name", `name = "My Group"`) {
			if name, ok := t.str("name"); ok {
				g.Name = name
				if strings.TrimSpace(name) == "" {
					p.fail(t.field("name"), errors.New("must not be empty: the name is what users see"))
				}
			}
		}
		g.Description, _ = t.str("description")
		g.Icon, _ = t.str("icon")
		g.SortOrder, _ = t.integer("sort_order")
		p.m.SettingGroups = append(p.m.SettingGroups, g)
	}
}

// settings reads the [[settings]] tables.
func (p *manifestParser) settings(top tomlTable) {
	seen := map[string]string{} // setting key → path of the key defining it
	for _, t := range top.tables("settings") {
		t.warnUnknown(manifestFields["settings[]"]...)
		var s Setting
		if t.require("key", `key = "my-plugin.option"`) {
			if key, ok := t.str("key"); ok {
				s.Key = key
				switch first, dup := seen[key]; {
				case len(key) > maxSettingKeyLen:
					p.fail(t.field("key"), fmt.Errorf("setting key is %d bytes long; the limit is %d", len(key), maxSettingKeyLen))
				case !settingKeyRE.MatchString(key):
					p.fail(t.field("key"), fmt.Errorf("%q is not a valid setting key: use dot-separated words of letters, digits, \"_\" and \"-\", starting with a letter, such as \"my-plugin.max_items\"", key))
				case dup:
					p.fail(t.field("key"), fmt.Errorf("duplicate setting key %q: already defined at %s%s; each key must be unique", key, first, p.at(first)))
				default:
					seen[key] = t.field("key")
				}
			}
		}
		s.Type, _ = t.valueType()
		s.Default = t.defaultValue(s.Type)
		s.Description, _ = t.str("description")
		if g, ok := t.str("group"); ok {
			s.Group = g
			if g != "" {
				p.groups = append(p.groups, groupRef{group: g, field: t.field("group")})
			}
		}
		s.Required, _ = t.boolean("required")
		if enc, ok := t.boolean("encrypted"); ok {
			s.Encrypted = enc
			if enc && s.Type != "" && s.Type != StringType {
				p.fail(t.field("encrypted"), fmt.Errorf("only string settings can be encrypted, and this one is a %s: remove encrypted or use type = \"string\"", s.Type))
			}
		}
		p.m.Settings = append(p.m.Settings, s)
	}
}

// nav reads the [[nav]] tables: the console pages of the plugin, each a
// file of its ConsoleAssets, once.
func (p *manifestParser) nav(top tomlTable) {
	seen := map[string]string{} // path → field of the entry naming it first
	for _, t := range top.tables("nav") {
		t.warnUnknown(manifestFields["nav[]"]...)
		var e NavEntry
		if t.require("label", `label = "My Page"`) {
			if label, ok := t.str("label"); ok {
				e.Label = label
				switch {
				case strings.TrimSpace(label) == "":
					p.fail(t.field("label"), errors.New("must not be empty: the label is what the console's navigation shows"))
				case len(label) > maxNavLabelLen:
					p.fail(t.field("label"), fmt.Errorf("label is %d bytes long; the limit is %d", len(label), maxNavLabelLen))
				}
			}
		}
		if t.require("path", `path = "index.html"`) {
			if path, ok := t.str("path"); ok {
				e.Path = path
				switch first, dup := seen[path]; {
				case p.navPath(t.field("path"), path):
				case dup:
					p.fail(t.field("path"), fmt.Errorf("duplicate nav path %q: already listed at %s%s; list each page once", path, first, p.at(first)))
				default:
					seen[path] = t.field("path")
				}
			}
		}
		if icon, ok := t.str("icon"); ok {
			e.Icon = icon
			if !p.navPath(t.field("icon"), icon) && !navIconRE.MatchString(icon) {
				p.fail(t.field("icon"), fmt.Errorf("icon %q must be an image file of the plugin's console assets ending in .svg, .png, .gif, .webp or .ico", icon))
			}
		}
		p.m.Nav = append(p.m.Nav, e)
	}
}

// navPath reports a path of a [[nav]] entry that is not a relative path
// of the plugin's console assets, and returns true when it did.
func (p *manifestParser) navPath(field, path string) bool {
	switch {
	case len(path) > maxNavPathLen:
		p.fail(field, fmt.Errorf("path is %d bytes long; the limit is %d", len(path), maxNavPathLen))
	case !navPathRE.MatchString(path):
		p.fail(field, fmt.Errorf("%q is not a path of the plugin's console assets: write a relative path such as \"index.html\" or \"pages/list.html\", of letters, digits, \".\", \"_\", \"~\" and \"-\" in segments separated by \"/\", none starting with \".\", without a leading \"/\", a query or a URL", path))
	default:
		return false
	}
	return true
}

// parseVersion parses a version in the full MAJOR.MINOR.PATCH form of
// SemVer 2.0.0. For a version that is only nearly right, such as "1.0" or
// "v1.2.3", the error says how to write it.
func parseVersion(v string) (*semver.Version, error) {
	sv, err := semver.StrictNewVersion(v)
	if err == nil {
		return sv, nil
	}
	if loose, lerr := semver.NewVersion(v); lerr == nil {
		return nil, fmt.Errorf("%q is not a semantic version: write %q (MAJOR.MINOR.PATCH): %w", v, loose.String(), err)
	}
	return nil, fmt.Errorf("%q is not a semantic version: %w", v, err)
}

// parseConstraint parses a semver constraint such as "^1.2.0" or
// ">= 1.0.0, < 2.0.0".
func parseConstraint(c string) (*semver.Constraints, error) {
	if strings.TrimSpace(c) == "" {
		return nil, errors.New(`empty version constraint: use "*" to accept any version`)
	}
	cs, err := semver.NewConstraint(c)
	if err != nil {
		return nil, fmt.Errorf("%q is not a version constraint (such as \"^1.2.0\" or \">= 1.0.0, < 2.0.0\"): %w", c, err)
	}
	return cs, nil
}
