package pluginhost

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/pluginhost/pluginhost/internal/secret"
)

// settingsSource is one owner's contribution to the settings: the core's, or
// a plugin's.
type settingsSource struct {
	owner    string // "core" or the plugin id
	groups   []SettingGroup
	settings []Setting
}

// settingsOutcome is what merging found for one owner.
type settingsOutcome struct {
	err      error    // the owner's settings were refused
	warnings []string // ignored duplicates, unreadable stored values
}

// load merges the definitions of sources in order (core first), reads the
// stored values in one query, writes the defaults of keys that have no value
// in one transaction, and publishes the snapshot. A source whose settings
// are refused contributes nothing; its outcome carries the error.
func (s *Settings) load(ctx context.Context, sources []settingsSource) (map[string]*settingsOutcome, error) {
	m := s.merge(sources)
	stored, err := s.readStored(ctx)
	if err != nil {
		return nil, err
	}
	defaults, err := s.fillValues(m, stored)
	if err != nil {
		return nil, err
	}
	if err := s.writeDefaults(ctx, defaults); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.publish(&settingsSnapshot{groups: m.groups, defs: m.defs, byKey: m.byKey})
	s.mu.Unlock()
	return m.outcomes, nil
}

// settingsMerge is what load has merged: the groups and definitions kept, in
// order, and each owner's outcome.
type settingsMerge struct {
	outcomes   map[string]*settingsOutcome
	groups     []SettingGroup
	groupOwner map[string]string // group id → owner of the kept definition
	defs       []Setting
	byKey      map[string]*settingValue // values are filled in by fillValues
}

// merge merges the groups and definitions of sources in order. The first
// definition of a group id or a key is kept; a later one is ignored with a
// warning to its owner. The groups are sorted by SortOrder, then id.
func (s *Settings) merge(sources []settingsSource) *settingsMerge {
	m := &settingsMerge{
		outcomes:   make(map[string]*settingsOutcome, len(sources)),
		groupOwner: map[string]string{},
		byKey:      map[string]*settingValue{},
	}
	for _, src := range sources {
		res := &settingsOutcome{}
		m.outcomes[src.owner] = res
		if res.err = s.admissible(src); res.err != nil {
			continue
		}
		m.addGroups(src, res)
		m.addSettings(src, res)
	}
	slices.SortStableFunc(m.groups, func(a, b SettingGroup) int {
		if c := cmp.Compare(a.SortOrder, b.SortOrder); c != 0 {
			return c // not a.SortOrder - b.SortOrder, which can overflow
		}
		return strings.Compare(a.ID, b.ID)
	})
	return m
}

// addGroups keeps the groups of src whose ids are new.
func (m *settingsMerge) addGroups(src settingsSource, res *settingsOutcome) {
	for _, g := range src.groups {
		if prev, dup := m.groupOwner[g.ID]; dup {
			res.warnings = append(res.warnings, fmt.Sprintf("setting group %q is already defined by %s; keeping that definition", g.ID, prev))
			continue
		}
		m.groupOwner[g.ID] = src.owner
		m.groups = append(m.groups, g)
	}
}

// addSettings keeps the settings of src whose keys are new and, for a
// plugin, in its namespace (see inNamespace): a key outside it is ignored
// with a warning, whoever owns it or not, so that a plugin's keys are its
// own whatever the plugin order.
func (m *settingsMerge) addSettings(src settingsSource, res *settingsOutcome) {
	for _, def := range src.settings {
		if src.owner != coreOwner && !inNamespace(src.owner, def.Key) {
			res.warnings = append(res.warnings, fmt.Sprintf("setting %q is outside plugin %q's namespace (its keys start with %s); ignored",
				def.Key, src.owner, namespaceHint(src.owner)))
			continue
		}
		if prev, dup := m.byKey[def.Key]; dup {
			res.warnings = append(res.warnings, fmt.Sprintf("setting %q is already defined by %s; ignored", def.Key, prev.owner))
			continue
		}
		m.byKey[def.Key] = &settingValue{def: def, owner: src.owner}
		m.defs = append(m.defs, def)
	}
}

// grantWarnings checks the settings that reads, a plugin's [[reads]],
// grant against the merged definitions, and returns a warning for each key
// the plugin will not be able to read: one its owner does not declare, or
// one that is encrypted (another plugin's encrypted setting is never
// readable).
func (s *Settings) grantWarnings(reads []ReadGrant) []string {
	sn := s.snap.Load()
	var out []string
	for _, g := range reads {
		for _, key := range g.Settings {
			switch v := sn.byKey[key]; {
			case v == nil:
				out = append(out, fmt.Sprintf("reads setting %q of plugin %q, which %s does not declare", key, g.Plugin, g.Plugin))
			case v.owner != g.Plugin:
				out = append(out, fmt.Sprintf("reads setting %q of plugin %q, which %s does not own: it belongs to %s", key, g.Plugin, g.Plugin, ownerName(v.owner)))
			case v.def.Encrypted:
				out = append(out, fmt.Sprintf("reads setting %q of plugin %q, which is encrypted: another plugin's encrypted setting is never readable, so reading it is refused", key, g.Plugin))
			}
		}
	}
	return out
}

// fillValues gives each merged setting its stored value or else its
// default, and returns the defaults to store. A stored value that does not
// decode is warned about to its owner and the default used in its place.
func (s *Settings) fillValues(m *settingsMerge, stored map[string]string) ([]storedSetting, error) {
	var defaults []storedSetting
	for i, def := range m.defs {
		v := m.byKey[def.Key]
		text, isStored := stored[def.Key]
		if isStored && !def.Encrypted && def.Type == StringType && secret.IsSealed(text) {
			// A sealed value stays sealed: a declaration without
			// encrypted = true cannot unseal a key that was encrypted.
			v.def.Encrypted = true
			m.defs[i].Encrypted = true
			m.outcomes[v.owner].warnings = append(m.outcomes[v.owner].warnings,
				fmt.Sprintf("setting %q is stored encrypted; a declaration cannot change its encryption, so it stays encrypted", def.Key))
		}
		if isStored {
			err := v.decode(text, s.sealer)
			if err == nil {
				continue
			}
			m.outcomes[v.owner].warnings = append(m.outcomes[v.owner].warnings,
				fmt.Sprintf("setting %q: %v; the stored value is kept and the default used", def.Key, err))
		}
		text, write, err := s.useDefault(v, isStored)
		if err != nil {
			return nil, err
		}
		if write {
			defaults = append(defaults, storedSetting{def.Key, text})
		}
	}
	return defaults, nil
}

// useDefault gives v its default, if it has one, and returns the default's
// stored text and whether to store it: not over a stored value that did not
// decode, and not for an encrypted setting without a secret key.
func (s *Settings) useDefault(v *settingValue, isStored bool) (string, bool, error) {
	def := v.def
	if def.Default == nil {
		return "", false, nil
	}
	if err := v.assign(def.Default); err != nil {
		return "", false, fmt.Errorf("pluginhost: setting %q default: %w", def.Key, err)
	}
	if isStored {
		return "", false, nil // unreadable stored value: use the default, never overwrite
	}
	if def.Encrypted && s.sealer == nil {
		// Only an empty default gets here: admissible and
		// Config.validate refuse the others. It is used but cannot be
		// sealed, so it is not stored; a start with a key stores it.
		return "", false, nil
	}
	text, err := s.encode(v)
	if err != nil {
		return "", false, err
	}
	return text, true, nil
}

// admissible reports why a source's settings cannot be stored: an encrypted
// default without a secret key.
func (s *Settings) admissible(src settingsSource) error {
	if s.sealer != nil {
		return nil
	}
	for _, def := range src.settings {
		if def.Encrypted && def.Default != nil && def.Default != "" {
			return fmt.Errorf("%w: setting %q is encrypted and has a default; set Config.SecretKey to store it", ErrNoSecretKey, def.Key)
		}
	}
	return nil
}

// validateGroup checks a setting group declared in Go (Config).
func validateGroup(g SettingGroup) error {
	if !groupIDRE.MatchString(g.ID) {
		return fmt.Errorf("setting group id %q must start with a lowercase letter and contain only lowercase letters, digits, \"_\" and \"-\"", g.ID)
	}
	if strings.TrimSpace(g.Name) == "" {
		return fmt.Errorf("setting group %q needs a Name", g.ID)
	}
	return nil
}

// validateSetting checks a setting declared in Go (Config): the same rules
// as a manifest's [[settings]], with Default any Go value of the type.
func validateSetting(s Setting) error {
	switch {
	case len(s.Key) > maxSettingKeyLen:
		return fmt.Errorf("setting key is %d bytes long; the limit is %d", len(s.Key), maxSettingKeyLen)
	case !settingKeyRE.MatchString(s.Key):
		return fmt.Errorf("%q is not a valid setting key: use dot-separated words of letters, digits, \"_\" and \"-\", starting with a letter, such as \"app.name\"", s.Key)
	case s.Type != StringType && s.Type != NumberType && s.Type != BooleanType:
		return fmt.Errorf("setting %q: unknown Type %q: use StringType, NumberType or BooleanType", s.Key, s.Type)
	case s.Encrypted && s.Type != StringType:
		return fmt.Errorf("setting %q: only string settings can be encrypted", s.Key)
	}
	if s.Default != nil {
		probe := settingValue{def: s}
		if err := probe.assign(s.Default); err != nil {
			return fmt.Errorf("setting %q: Default: %w", s.Key, err)
		}
	}
	return nil
}

// inNamespace reports whether key is in plugin id's namespace: its first
// dot-separated segment is the id, or the id's camelCase form
// ("myAwesomePlugin" for "my-awesome-plugin").
func inNamespace(id, key string) bool {
	first, _, _ := strings.Cut(key, ".")
	return first == id || first == camelID(id)
}

// camelID returns the camelCase form of a plugin id: the words between
// hyphens joined, each after the first with its first letter upper-cased.
func camelID(id string) string {
	if !strings.Contains(id, "-") {
		return id
	}
	var b strings.Builder
	for i, w := range strings.Split(id, "-") {
		if i > 0 && w != "" && w[0] >= 'a' && w[0] <= 'z' {
			b.WriteByte(w[0] - 'a' + 'A')
			w = w[1:]
		}
		b.WriteString(w)
	}
	return b.String()
}

// namespaceHint says how plugin id's keys start, for messages.
func namespaceHint(id string) string {
	if c := camelID(id); c != id {
		return fmt.Sprintf("%q or %q", id+".", c+".")
	}
	return fmt.Sprintf("%q", id+".")
}
