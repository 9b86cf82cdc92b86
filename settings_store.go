package pluginhost

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/pluginhost/pluginhost/internal/secret"
)

// settingsTable stores setting values, one row per key.
const settingsTable = "pluginhost_settings"

// Set validates value against the setting's type and stores it: a string
// for string settings, a bool for boolean settings and any Go integer or
// finite float for numbers. Encrypted settings are sealed before they are
// written; without Config.SecretKey that is an error wrapping
// ErrNoSecretKey. Before the Manager's Start, Set returns an error wrapping
// ErrNotRunning; after its Shutdown, ErrClosed; neither writes anything.
func (s *Settings) Set(ctx context.Context, key string, value any) error {
	return s.setOwned(ctx, key, value, "")
}

// setOwned is Set, for a setting of owner only when owner is not empty.
func (s *Settings) setOwned(ctx context.Context, key string, value any, only string) error {
	owner, err := s.set(ctx, key, value, only)
	if err != nil {
		return err
	}
	s.logger.Info("setting changed", "key", key, "owner", owner)
	// After the writers' lock is released: subscribers are plugin code,
	// and may set a setting themselves.
	if s.onChange != nil {
		s.onChange(ctx, key, owner)
	}
	return nil
}

// set is Set under the writers' lock: it stores and publishes the value and
// returns the owner of the setting.
func (s *Settings) set(ctx context.Context, key string, value any, only string) (owner string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(key); err != nil {
		return "", err
	}
	old := s.snap.Load()
	cur := old.byKey[key]
	if cur == nil {
		return "", fmt.Errorf("%w: setting %q is not defined", ErrNotFound, key)
	}
	if only != "" && cur.owner != only {
		return "", fmt.Errorf("%w: plugin %q cannot set setting %q: it belongs to %s", ErrSettingAccess, only, key, ownerName(cur.owner))
	}
	next := *cur
	if err := next.assign(value); err != nil {
		return "", fmt.Errorf("%w: setting %q: %w", ErrSettingType, key, err)
	}
	stored, err := s.encode(&next)
	if err != nil {
		return "", err
	}
	c := change{Kind: changeSettings, Key: key, Origin: s.origin}
	if err := s.store(ctx, key, stored, c); err != nil {
		return "", err
	}
	s.publish(old.with(&next))
	if s.feed != nil {
		s.feed.committed(c)
	}
	return next.owner, nil
}

// store writes one value and announces the change in the same
// transaction, run once more on a fresh connection if its connection died
// (see inTx): it writes the same again.
func (s *Settings) store(ctx context.Context, key, stored string, c change) error {
	err := inTx(ctx, s.db, func(tx *Tx) error {
		if err := s.write(ctx, tx, key, stored); err != nil {
			return err
		}
		if s.feed != nil {
			if err := s.feed.announce(ctx, tx, c); err != nil {
				return fmt.Errorf("announce the change: %w", err)
			}
		}
		return nil
	})
	if err != nil {
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
// that changed, sorted by key.
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
		v := s.reloaded(cur, stored)
		if !v.sameValue(cur) {
			changed = append(changed, v)
		}
		next.byKey[key] = v
	}
	s.publish(next)
	slices.SortFunc(changed, func(a, b *settingValue) int { return strings.Compare(a.def.Key, b.def.Key) })
	return changed, nil
}

// reloaded returns the value of cur's key as stored now: the stored value,
// else the default, else none. When the stored value does not decode, it
// returns cur.
func (s *Settings) reloaded(cur *settingValue, stored map[string]string) *settingValue {
	key := cur.def.Key
	v := &settingValue{def: cur.def, owner: cur.owner}
	text, ok := stored[key]
	switch {
	case ok:
		if err := v.decode(text, s.sealer); err != nil {
			s.logger.Warn("reloaded setting does not decode; keeping its value", "key", key, "err", err)
			return cur
		}
	case cur.def.Default != nil:
		_ = v.assign(cur.def.Default)
	}
	return v
}

// sameValue reports whether v and o hold the same value.
func (v *settingValue) sameValue(o *settingValue) bool {
	return v.set == o.set && v.str == o.str && v.num == o.num && v.b == o.b
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
	return err
}

// storedSetting is one key's stored text.
type storedSetting struct{ key, value string }

// writeDefaults stores the defaults of keys that had no value, in one
// transaction; with none, it does nothing.
func (s *Settings) writeDefaults(ctx context.Context, defaults []storedSetting) error {
	if len(defaults) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("pluginhost: write setting defaults: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, w := range defaults {
		// DO NOTHING: a value another process wrote meanwhile wins.
		if _, err := tx.ExecContext(ctx, `INSERT INTO `+settingsTable+` (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, w.key, w.value); err != nil {
			return fmt.Errorf("pluginhost: write default of setting %q: %w", w.key, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("pluginhost: write setting defaults: %w", err)
	}
	return nil
}

// readStored reads every stored value in one query, once more on a fresh
// connection if its connection died (see onConn).
func (s *Settings) readStored(ctx context.Context) (map[string]string, error) {
	var out map[string]string
	err := onConn(ctx, s.db.sql, func(conn *sql.Conn) error {
		rows, err := conn.QueryContext(ctx, `SELECT key, value FROM `+settingsTable)
		if err != nil {
			return err
		}
		defer rows.Close()
		out = map[string]string{}
		for rows.Next() {
			var k, v string
			if err := rows.Scan(&k, &v); err != nil {
				return err
			}
			out[k] = v
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("pluginhost: read settings: %w", err)
	}
	return out, nil
}

// toFloat converts a Go integer or float to a float64; for any other type,
// named numeric types included, it reports false.
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
