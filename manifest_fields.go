package pluginhost

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"
)

// maxIDLen is the longest plugin id, in bytes: derived names such as
// plugin_<id>_<table> must fit PostgreSQL's 63-byte identifiers.
const maxIDLen = 40

// Limits on the other names a manifest declares.
const (
	maxConfigKeyLen  = 64
	maxSettingKeyLen = 128
)

// reservedIDs are ids no plugin may take: the migration ledger records the
// host's own migrations under them.
var reservedIDs = []string{"core", "pluginhost"}

var (
	configKeyRE  = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	groupIDRE    = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)
	settingKeyRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$`)
	envNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// parse reads the top-level table of plugin.toml into p.m.
func (p *manifestParser) parse(top tomlTable) {
	m := p.m
	top.warnUnknown("id", "name", "version", "description", "author", "host",
		"dependencies", "permissions", "config", "setting_groups", "settings")

	if top.require("id", `id = "my-plugin"`) {
		if id, ok := top.str("id"); ok {
			p.plugin = id
			m.ID = id
			if err := validateID(id); err != nil {
				p.fail("id", err)
			}
		}
	}
	if top.require("name", `name = "My Plugin"`) {
		if name, ok := top.str("name"); ok {
			m.Name = name
			if strings.TrimSpace(name) == "" {
				p.fail("name", errors.New(`must not be empty: give the plugin a human-readable name such as "My Plugin"`))
			}
		}
	}
	if top.require("version", `version = "1.0.0"`) {
		if v, ok := top.str("version"); ok {
			m.Version = v
			sv, err := parseVersion(v)
			if err != nil {
				p.fail("version", err)
			}
			m.version = sv
		}
	}
	m.Description, _ = top.str("description")
	m.Author, _ = top.str("author")
	if host, ok := top.str("host"); ok && host != "" {
		m.Host = host
		c, err := parseConstraint(host)
		if err != nil {
			p.fail("host", fmt.Errorf("%w; this host provides plugin API %s", err, APIVersion))
		}
		m.host = c
	}

	p.dependencies(top)
	p.permissions(top)
	p.config(top)
	p.settingGroups(top)
	p.settings(top)
}

// dependencies reads [dependencies]: plugin id → version constraint.
func (p *manifestParser) dependencies(top tomlTable) {
	deps, ok := top.sub("dependencies", "[dependencies]")
	if !ok {
		return
	}
	for _, id := range deps.keys() {
		field := deps.field(id)
		constraint, ok := deps.str(id)
		if !ok {
			continue
		}
		if p.m.Dependencies == nil {
			p.m.Dependencies = map[string]string{}
			p.m.deps = map[string]*semver.Constraints{}
		}
		p.m.Dependencies[id] = constraint
		if slices.Contains(reservedIDs, id) {
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
			p.warn(field, fmt.Sprintf("permission %q listed twice%s: the duplicate is ignored", s, p.at(field)))
		default:
			p.m.Permissions = append(p.m.Permissions, s)
		}
	}
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
	t.warnUnknown("type", "description", "required", "secret", "default", "env")
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
		p.warn(t.field("required"), fmt.Sprintf("config %q%s: required has no effect because the default always satisfies it", key, p.at(t.field("required"))))
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
		t.warnUnknown("id", "name", "description", "icon", "sort_order")
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
		t.warnUnknown("key", "type", "default", "description", "group", "encrypted", "required")
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
		s.Group, _ = t.str("group")
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

// validateID checks that id is a plugin id: a slug of lowercase letters,
// digits and single hyphens, starting with a letter, at most maxIDLen bytes,
// and not reserved. The error says what to change.
func validateID(id string) error {
	var reason string
	bad := strings.IndexFunc(id, func(r rune) bool { return !isSlugRune(r) })
	switch {
	case id == "":
		return errors.New(`must not be empty: use a short slug such as "my-plugin"`)
	case len(id) > maxIDLen:
		reason = fmt.Sprintf("it is %d bytes long and the limit is %d, so that derived table names fit PostgreSQL's 63-byte identifiers: use a shorter id",
			len(id), maxIDLen)
	case strings.ContainsFunc(id, func(r rune) bool { return r >= 'A' && r <= 'Z' }):
		reason = fmt.Sprintf("it must be lowercase: use %q", suggestID(id))
	case strings.Contains(id, "_"):
		reason = fmt.Sprintf(`it must not contain "_": use "-" to separate words, as in %q`, suggestID(id))
	case bad >= 0:
		r, _ := utf8.DecodeRuneInString(id[bad:])
		reason = fmt.Sprintf("it may contain only lowercase letters, digits and single hyphens, not %q: use %q",
			r, suggestID(id))
	case id[0] < 'a' || id[0] > 'z':
		reason = fmt.Sprintf("it must start with a letter: use %q", suggestID(id))
	case strings.Contains(id, "--"):
		reason = fmt.Sprintf(`it must not contain "--": separate words with a single hyphen, as in %q`, suggestID(id))
	case strings.HasSuffix(id, "-"):
		reason = fmt.Sprintf(`it must not end with "-": use %q`, suggestID(id))
	case slices.Contains(reservedIDs, id):
		return fmt.Errorf("%q is reserved: the migration ledger records the host's own migrations under it; choose another id", id)
	default:
		return nil
	}
	return fmt.Errorf("%q is not a valid plugin id: %s", id, reason)
}

// isSlugRune reports whether r may appear in a plugin id.
func isSlugRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-'
}

// suggestID turns an invalid id into a valid one to suggest: lowercase,
// words joined by single hyphens, starting with a letter. It returns
// "my-plugin" when nothing usable is left.
func suggestID(id string) string {
	var b strings.Builder
	hyphen := false // a hyphen is pending, to be written before the next letter or digit
	for _, r := range strings.ToLower(id) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9' && b.Len() > 0:
			if hyphen && b.Len() > 0 {
				b.WriteByte('-')
			}
			hyphen = false
			b.WriteRune(r)
		default:
			hyphen = true
		}
	}
	s := b.String()
	if len(s) > maxIDLen {
		s = strings.TrimRight(s[:maxIDLen], "-")
	}
	if s == "" || slices.Contains(reservedIDs, s) {
		return "my-plugin"
	}
	return s
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
