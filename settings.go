package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/pluginhost/pluginhost/internal/migrate"
	"github.com/pluginhost/pluginhost/internal/secret"
)

// ErrSettingAccess is returned when a plugin reads or writes a setting it may not reach
// through its Host: another plugin's setting, or a core setting it tried
// to set (see [PluginSettings]).
var ErrSettingAccess = errors.New("pluginhost: setting not accessible to the plugin")

// coreOwner is the owner of the core's settings.
const coreOwner = migrate.CoreLine

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
// plugins define theirs in their manifests ([[settings]]), in their own
// namespace only (see [PluginSettings]). A key that already exists keeps its
// first definition: core settings always win.
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

// Settings is the store of global settings: the host's core settings and
// those plugins contribute. Reads are served from an in-memory snapshot and
// do not allocate; writes go to the database first, then replace the
// snapshot. A Settings is safe for concurrent use. Values of keys that are
// not defined are neither readable nor writable. The Manager's Start loads
// the settings: before it, reads and writes return an error wrapping
// ErrNotRunning; after its Shutdown, reads serve the last values and
// writes return an error wrapping ErrClosed.
type Settings struct {
	// Set when the Manager is created, then only read: no lock.
	db     *DB
	sealer *secret.Sealer
	logger *slog.Logger
	// onChange, when set, is told of each value that changed, here or in
	// another Manager, after the snapshot shows it.
	onChange func(ctx context.Context, key, owner string)

	// snap is read without a lock; it is replaced only under mu, by
	// publish.
	snap atomic.Pointer[settingsSnapshot]

	// life is where the Manager is in its life: settingsNew before Start,
	// settingsStarted from Start on, settingsClosed after Shutdown (or a
	// Start that failed). Read without a lock; written under mu.
	life atomic.Int32

	mu     sync.Mutex // serializes writers and reloads; guards the fields below
	feed   feed       // announces changes to other Managers; nil before Start
	origin string     // the Manager's instance id, in announcements
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

// The values of Settings.life.
const (
	settingsNew int32 = iota
	settingsStarted
	settingsClosed
)

// begin records that the Manager's Start began.
func (s *Settings) begin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.life.CompareAndSwap(settingsNew, settingsStarted)
}

// close records that the Manager shut down: from its return on, Set
// refuses to write, and a Set that was writing has finished.
func (s *Settings) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.life.Store(settingsClosed)
}

// writable returns nil while Set may write key, or the error saying why it
// may not. s.mu must be held.
func (s *Settings) writable(key string) error {
	switch s.life.Load() {
	case settingsNew:
		return fmt.Errorf("%w: setting %q cannot be set: the manager has not started (settings are loaded by Start)", ErrNotRunning, key)
	case settingsClosed:
		return fmt.Errorf("%w: setting %q cannot be set after Shutdown", ErrClosed, key)
	}
	return nil
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

// with returns a copy of the snapshot with v replacing the value of its key.
func (sn *settingsSnapshot) with(v *settingValue) *settingsSnapshot {
	next := &settingsSnapshot{groups: sn.groups, defs: sn.defs, byKey: maps.Clone(sn.byKey)}
	next.byKey[v.def.Key] = v
	return next
}

// changed returns a channel that is closed at the next change of any value
// or definition.
func (s *Settings) changed() <-chan struct{} { return s.snap.Load().changed }

// String returns the value of a string setting; "" when it has no value.
// It returns an error wrapping ErrNotFound for an undefined key,
// ErrSettingType for a setting of another type and ErrNotRunning before
// Start; the other typed reads return the same errors.
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

// Int returns the value of a number setting as an int64; 0 when it has no
// value. A value that is not a whole number within the range of int64
// (2.5, 1e19) is an error wrapping ErrSettingType, as is a setting of
// another type: Int never rounds, truncates or wraps. Read such a value
// with Number.
func (s *Settings) Int(key string) (int64, error) {
	n, err := s.Number(key)
	if err != nil {
		return 0, err
	}
	// -2⁶³ is exactly a float64, and so is 2⁶³, the first value past
	// MaxInt64; NaN fails the first comparison.
	if n != math.Trunc(n) || n < math.MinInt64 || n >= -math.MinInt64 {
		return 0, fmt.Errorf("%w: setting %q holds %s, which is not a whole number within the range of int64; read it with Number",
			ErrSettingType, key, strconv.FormatFloat(n, 'g', -1, 64))
	}
	return int64(n), nil
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
		if s.life.Load() == settingsNew {
			return nil, fmt.Errorf("%w: setting %q cannot be read: the manager has not started (settings are loaded by Start)", ErrNotRunning, key)
		}
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
