package pluginhost

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pluginhost/pluginhost/internal/secret"
)

// ValueType is the type of a setting or of a plugin config value.
type ValueType string

// The value types of settings and plugin config values. In Go, a string value
// is a string, a number is a float64 and a boolean is a bool.
const (
	StringType  ValueType = "string"
	NumberType  ValueType = "number"
	BooleanType ValueType = "boolean"
)

// SettingGroup is a named group of settings, for display. Groups are defined
// by the host in [Config] and by plugins in their manifests
// ([[setting_groups]]); a group id that already exists keeps its first
// definition.
type SettingGroup struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Icon        string `json:"icon,omitempty"`
	SortOrder   int    `json:"sort_order"`
}

// Setting defines one global setting. Core settings come from [Config];
// plugins define theirs in their manifests ([[settings]]). A key that already
// exists keeps its first definition: core settings always win.
type Setting struct {
	// Key is the setting's unique name, such as "notes.max_body_length".
	Key string `json:"key"`
	// Type is the value's type; values of any other type are rejected.
	Type ValueType `json:"type"`
	// Default is written to the store when the key has no value yet. It is
	// nil (no default), a string, a float64 or a bool, matching Type.
	Default any `json:"default,omitempty"`
	// Description says what the setting does.
	Description string `json:"description,omitempty"`
	// Group is the id of the SettingGroup the setting belongs to, or empty.
	Group string `json:"group,omitempty"`
	// Encrypted settings are stored sealed with AES-256-GCM under
	// Config.SecretKey and never logged.
	Encrypted bool `json:"encrypted,omitempty"`
	// Required settings without a value are listed in the owner's status.
	Required bool `json:"required,omitempty"`
}

// settingsTable stores setting values, one row per key.
const settingsTable = "pluginhost_settings"

// Settings is the store of global settings: the host's core settings and
// those plugins contribute. Reads are served from an in-memory snapshot and
// do not allocate; writes go to the database first, then replace the
// snapshot. A Settings is safe for concurrent use. Values of keys that are
// not defined are neither readable nor writable.
type Settings struct {
	db     *DB
	sealer *secret.Sealer
	logger *slog.Logger

	mu     sync.Mutex // serializes writers and reloads
	snap   atomic.Pointer[settingsSnapshot]
	feed   feed   // announces changes to other Managers; nil before Start
	origin string // the Manager's instance id, in announcements
	// onChange, when set, is told of each value that changed, here or in
	// another Manager, after the snapshot shows it.
	onChange func(ctx context.Context, key, owner string)
}

// settingsSnapshot is an immutable view of the definitions and values.
type settingsSnapshot struct {
	groups  []SettingGroup
	defs    []Setting
	byKey   map[string]*settingValue
	changed chan struct{} // closed when a newer snapshot replaces this one
}

// settingValue is one setting's definition, owner and current value.
type settingValue struct {
	def   Setting
	owner string // "core" or the plugin id
	set   bool   // a value is stored (or the default was written)
	str   string
	num   float64
	b     bool
}

func newSettings(db *DB, sealer *secret.Sealer, logger *slog.Logger) *Settings {
	s := &Settings{db: db, sealer: sealer, logger: logger}
	s.snap.Store(&settingsSnapshot{byKey: map[string]*settingValue{}, changed: make(chan struct{})})
	return s
}

// setFeed makes Set announce its changes. It is called by Start before the
// settings are loaded.
func (s *Settings) setFeed(f feed, origin string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.feed, s.origin = f, origin
}

// publish replaces the snapshot and wakes whoever waits for a change.
// s.mu must be held.
func (s *Settings) publish(next *settingsSnapshot) {
	next.changed = make(chan struct{})
	close(s.snap.Swap(next).changed)
}

// changed returns a channel that is closed at the next change of any value
// or definition.
func (s *Settings) changed() <-chan struct{} { return s.snap.Load().changed }

// String returns the value of a string setting; "" when it has no value.
// It returns an error wrapping ErrNotFound for an undefined key and
// ErrSettingType for a setting of another type.
func (s *Settings) String(key string) (string, error) {
	v, err := s.lookup(key, StringType)
	if err != nil {
		return "", err
	}
	return v.str, nil
}

// Number returns the value of a number setting; 0 when it has no value.
func (s *Settings) Number(key string) (float64, error) {
	v, err := s.lookup(key, NumberType)
	if err != nil {
		return 0, err
	}
	return v.num, nil
}

// Int returns the value of a number setting as an int64, truncating any
// fraction.
func (s *Settings) Int(key string) (int64, error) {
	n, err := s.Number(key)
	return int64(n), err
}

// Bool returns the value of a boolean setting; false when it has no value.
func (s *Settings) Bool(key string) (bool, error) {
	v, err := s.lookup(key, BooleanType)
	if err != nil {
		return false, err
	}
	return v.b, nil
}

// Owner returns who defined the setting: "core" or the id of the plugin
// whose manifest did; "" for an undefined key.
func (s *Settings) Owner(key string) string {
	if v := s.snap.Load().byKey[key]; v != nil {
		return v.owner
	}
	return ""
}

// hasValue reports whether v has a value; an empty string counts as none.
func (v *settingValue) hasValue() bool { return v.set && !(v.def.Type == StringType && v.str == "") }

// missing lists owner's required settings that have no value (or an empty
// string), in definition order.
func (s *Settings) missing(owner string) []string {
	sn := s.snap.Load()
	var out []string
	for _, def := range sn.defs {
		if v := sn.byKey[def.Key]; v.owner == owner && def.Required && !v.hasValue() {
			out = append(out, def.Key)
		}
	}
	return out
}

// IsSet reports whether the setting has a value.
func (s *Settings) IsSet(key string) bool {
	v := s.snap.Load().byKey[key]
	return v != nil && v.set
}

func (s *Settings) lookup(key string, want ValueType) (*settingValue, error) {
	v := s.snap.Load().byKey[key]
	if v == nil {
		return nil, fmt.Errorf("%w: setting %q is not defined", ErrNotFound, key)
	}
	if v.def.Type != want {
		return nil, fmt.Errorf("%w: setting %q is a %s, not a %s", ErrSettingType, key, v.def.Type, want)
	}
	return v, nil
}

// Groups returns the setting groups ordered by SortOrder, then id.
func (s *Settings) Groups() []SettingGroup {
	return slices.Clone(s.snap.Load().groups)
}

// Definitions returns the setting definitions: core settings first, then
// each plugin's, in plugin order.
func (s *Settings) Definitions() []Setting {
	return slices.Clone(s.snap.Load().defs)
}

// Set validates value against the setting's type and stores it: a string
// for string settings, a bool for boolean settings and any Go integer or
// finite float for numbers. Encrypted settings are sealed before they are
// written; without Config.SecretKey that is an error wrapping
// ErrNoSecretKey.
func (s *Settings) Set(ctx context.Context, key string, value any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.snap.Load()
	cur := old.byKey[key]
	if cur == nil {
		return fmt.Errorf("%w: setting %q is not defined", ErrNotFound, key)
	}
	next := *cur
	if err := next.assign(value); err != nil {
		return fmt.Errorf("%w: setting %q: %w", ErrSettingType, key, err)
	}
	stored, err := s.encode(&next)
	if err != nil {
		return err
	}
	c := change{Kind: changeSettings, Key: key, Origin: s.origin}
	if err := s.store(ctx, key, stored, c); err != nil {
		return err
	}
	s.publish(old.with(&next))
	if s.feed != nil {
		s.feed.committed(c)
	}
	s.logger.Info("setting changed", "key", key, "owner", next.owner)
	if s.onChange != nil {
		s.onChange(ctx, key, next.owner)
	}
	return nil
}

// store writes one value and announces the change in the same transaction.
func (s *Settings) store(ctx context.Context, key, stored string, c change) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("pluginhost: store setting %q: %w", key, err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := s.write(ctx, tx, key, stored); err != nil {
		return err
	}
	if s.feed != nil {
		if err := s.feed.announce(ctx, tx, c); err != nil {
			return fmt.Errorf("pluginhost: announce the change of setting %q: %w", key, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("pluginhost: store setting %q: %w", key, err)
	}
	return nil
}

// reload reads every stored value again, after another Manager changed
// one, and publishes them; definitions are unchanged. A value that does not
// decode keeps its previous one.
func (s *Settings) reload(ctx context.Context) error {
	changed, err := s.reloadValues(ctx)
	if err != nil || s.onChange == nil {
		return err
	}
	for _, v := range changed {
		s.onChange(ctx, v.def.Key, v.owner)
	}
	return nil
}

// reloadValues is reload under the writers' lock; it returns the values
// that changed.
func (s *Settings) reloadValues(ctx context.Context) ([]*settingValue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.snap.Load()
	if len(old.defs) == 0 {
		return nil, nil
	}
	stored, err := s.readStored(ctx)
	if err != nil {
		return nil, err
	}
	var changed []*settingValue
	next := &settingsSnapshot{groups: old.groups, defs: old.defs, byKey: make(map[string]*settingValue, len(old.byKey))}
	for key, cur := range old.byKey {
		v := &settingValue{def: cur.def, owner: cur.owner}
		text, ok := stored[key]
		switch {
		case ok:
			if err := v.decode(text, s.sealer); err != nil {
				s.logger.Warn("reloaded setting does not decode; keeping its value", "key", key, "err", err)
				v = cur
			}
		case cur.def.Default != nil:
			_ = v.assign(cur.def.Default)
		}
		if v.set != cur.set || v.str != cur.str || v.num != cur.num || v.b != cur.b {
			changed = append(changed, v)
		}
		next.byKey[key] = v
	}
	s.publish(next)
	slices.SortFunc(changed, func(a, b *settingValue) int { return strings.Compare(a.def.Key, b.def.Key) })
	return changed, nil
}

// with returns a copy of the snapshot with v replacing the value of its key.
func (sn *settingsSnapshot) with(v *settingValue) *settingsSnapshot {
	next := &settingsSnapshot{groups: sn.groups, defs: sn.defs, byKey: maps.Clone(sn.byKey)}
	next.byKey[v.def.Key] = v
	return next
}

// assign sets v's value from a Go value of the setting's type.
func (v *settingValue) assign(value any) error {
	switch v.def.Type {
	case StringType:
		s, ok := value.(string)
		if !ok {
			return fmt.Errorf("want a string, got %T", value)
		}
		v.str = s
	case NumberType:
		n, ok := toFloat(value)
		if !ok {
			return fmt.Errorf("want a number, got %T", value)
		}
		if math.IsNaN(n) || math.IsInf(n, 0) {
			return fmt.Errorf("want a finite number, got %v", n)
		}
		v.num = n
	case BooleanType:
		b, ok := value.(bool)
		if !ok {
			return fmt.Errorf("want a bool, got %T", value)
		}
		v.b = b
	default:
		return fmt.Errorf("unknown type %q", v.def.Type)
	}
	v.set = true
	return nil
}

// decode sets v's value from its stored text.
func (v *settingValue) decode(stored string, sealer *secret.Sealer) error {
	switch v.def.Type {
	case StringType:
		if v.def.Encrypted {
			plain, err := sealer.Open(v.def.Key, stored)
			if err != nil {
				return err
			}
			stored = plain
		}
		v.str = stored
	case NumberType:
		n, err := strconv.ParseFloat(stored, 64)
		if err != nil {
			return fmt.Errorf("stored value %q is not a number", stored)
		}
		v.num = n
	case BooleanType:
		b, err := strconv.ParseBool(stored)
		if err != nil {
			return fmt.Errorf("stored value %q is not a boolean", stored)
		}
		v.b = b
	}
	v.set = true
	return nil
}

// encode returns v's value as stored text, sealed when encrypted.
func (s *Settings) encode(v *settingValue) (string, error) {
	switch v.def.Type {
	case NumberType:
		return strconv.FormatFloat(v.num, 'g', -1, 64), nil
	case BooleanType:
		return strconv.FormatBool(v.b), nil
	}
	if !v.def.Encrypted {
		return v.str, nil
	}
	if s.sealer == nil {
		return "", fmt.Errorf("%w: setting %q is encrypted; set Config.SecretKey to store it", ErrNoSecretKey, v.def.Key)
	}
	return s.sealer.Seal(v.def.Key, v.str)
}

// write upserts one stored value.
func (s *Settings) write(ctx context.Context, ex interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, key, stored string) error {
	_, err := ex.ExecContext(ctx, `INSERT INTO `+settingsTable+` (key, value, updated_at) VALUES (?, ?, CURRENT_TIMESTAMP)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, key, stored)
	if err != nil {
		return fmt.Errorf("pluginhost: store setting %q: %w", key, err)
	}
	return nil
}

// readStored reads every stored value in one query.
func (s *Settings) readStored(ctx context.Context) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT key, value FROM `+settingsTable)
	if err != nil {
		return nil, fmt.Errorf("pluginhost: read settings: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("pluginhost: read settings: %w", err)
		}
		out[k] = v
	}
	return out, rows.Err()
}

func toFloat(value any) (float64, bool) {
	switch n := value.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	}
	return 0, false
}

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
