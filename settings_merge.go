package pluginhost

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
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
	out := make(map[string]*settingsOutcome, len(sources))
	groupOwner := map[string]string{}
	var groups []SettingGroup
	var defs []Setting
	byKey := map[string]*settingValue{}

	for _, src := range sources {
		res := &settingsOutcome{}
		out[src.owner] = res
		if res.err = s.admissible(src); res.err != nil {
			continue
		}
		for _, g := range src.groups {
			if prev, dup := groupOwner[g.ID]; dup {
				res.warnings = append(res.warnings, fmt.Sprintf("setting group %q is already defined by %s; keeping that definition", g.ID, prev))
				continue
			}
			groupOwner[g.ID] = src.owner
			groups = append(groups, g)
		}
		for _, def := range src.settings {
			if prev, dup := byKey[def.Key]; dup {
				res.warnings = append(res.warnings, fmt.Sprintf("setting %q is already defined by %s; ignored", def.Key, prev.owner))
				continue
			}
			byKey[def.Key] = &settingValue{def: def, owner: src.owner}
			defs = append(defs, def)
		}
	}
	slices.SortStableFunc(groups, func(a, b SettingGroup) int {
		if c := cmp.Compare(a.SortOrder, b.SortOrder); c != 0 {
			return c // not a.SortOrder - b.SortOrder, which can overflow
		}
		return strings.Compare(a.ID, b.ID)
	})

	stored, err := s.readStored(ctx)
	if err != nil {
		return nil, err
	}
	type write struct{ key, value string }
	var writes []write
	for _, def := range defs {
		v := byKey[def.Key]
		if text, ok := stored[def.Key]; ok {
			if err := v.decode(text, s.sealer); err != nil {
				out[v.owner].warnings = append(out[v.owner].warnings,
					fmt.Sprintf("setting %q: %v; the stored value is kept and the default used", def.Key, err))
			} else {
				continue
			}
		}
		if def.Default == nil {
			continue
		}
		if err := v.assign(def.Default); err != nil {
			return nil, fmt.Errorf("pluginhost: setting %q default: %w", def.Key, err)
		}
		if _, ok := stored[def.Key]; ok {
			continue // unreadable stored value: use the default, never overwrite
		}
		if def.Encrypted && s.sealer == nil {
			// Only an empty default gets here: admissible and
			// Config.validate refuse the others. It is used but cannot be
			// sealed, so it is not stored; a start with a key stores it.
			continue
		}
		text, err := s.encode(v)
		if err != nil {
			return nil, err
		}
		writes = append(writes, write{def.Key, text})
	}
	if len(writes) > 0 {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("pluginhost: write setting defaults: %w", err)
		}
		for _, w := range writes {
			// DO NOTHING: a value another process wrote meanwhile wins.
			if _, err := tx.ExecContext(ctx, `INSERT INTO `+settingsTable+` (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, w.key, w.value); err != nil {
				_ = tx.Rollback()
				return nil, fmt.Errorf("pluginhost: write default of setting %q: %w", w.key, err)
			}
		}
		if err := tx.Commit(); err != nil {
			return nil, fmt.Errorf("pluginhost: write setting defaults: %w", err)
		}
	}
	s.mu.Lock()
	s.publish(&settingsSnapshot{groups: groups, defs: defs, byKey: byKey})
	s.mu.Unlock()
	return out, nil
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
