package pluginhost

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/pluginhost/pluginhost/internal/migrate"
	"github.com/pluginhost/pluginhost/internal/pluginid"
	"github.com/pluginhost/pluginhost/internal/sqlgen"
)

// Plugins that left: a plugin the database records (it has rows on its
// line of the migration ledger) but that is not registered is listed by
// Status as removed, with what it left behind, until Purge removes it.

// removedReason is the Reason of a removed plugin's status.
const removedReason = "recorded in the database but not registered: its tables, settings and ledger rows are left in place; Manager.Export writes its rows, Manager.Purge removes them"

// removedPlugin is what the database records of a plugin that is not
// registered.
type removedPlugin struct {
	id       string
	version  string   // the manifest version its schema was last brought to, if recorded
	tables   []string // declared names, sorted
	settings []string // stored keys in its namespace, sorted
	ledger   []string // versions of its ledger rows, sorted
	since    time.Time
}

// removedState is the Manager's list of removed plugins, as last read.
type removedState struct {
	mu      sync.Mutex
	plugins map[string]*removedPlugin
}

// set replaces the list.
func (r *removedState) set(ps map[string]*removedPlugin) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, p := range ps {
		if old := r.plugins[id]; old != nil {
			p.since = old.since // removed since it was first seen
		}
	}
	r.plugins = ps
}

// statuses returns the removed plugins' statuses.
func (r *removedState) statuses() []PluginStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]PluginStatus, 0, len(r.plugins))
	for _, p := range r.plugins {
		out = append(out, PluginStatus{
			ID:          p.id,
			Version:     p.version,
			State:       StateRemoved,
			Reason:      removedReason,
			Since:       p.since,
			Tables:      slices.Clone(p.tables),
			SettingKeys: slices.Clone(p.settings),
			LedgerRows:  slices.Clone(p.ledger),
		})
	}
	return out
}

// removedLines returns the plugin lines of ledger l whose plugin is not
// registered, sorted.
func (m *Manager) removedLines(l migrate.Ledger) []string {
	var ids []string
	for line := range l {
		if pluginid.Reserved(line) || m.plugins.get(line) != nil || len(l[line]) == 0 {
			continue
		}
		ids = append(ids, line)
	}
	slices.Sort(ids)
	return ids
}

// readRemoved reads what the database records of the plugins that are not
// registered, from the session's ledger and catalog, and replaces the
// Manager's list. A boot whose ledger has no such plugin reads nothing
// more; otherwise it reads the stored setting keys, in one query, and the
// catalog when no plugin's schema work read it already (one query on
// SQLite, two on PostgreSQL).
func (m *Manager) readRemoved(ctx context.Context, s *schemaSession) error {
	ids := m.removedLines(s.ledger)
	out := make(map[string]*removedPlugin, len(ids))
	if len(ids) == 0 {
		m.removed.set(out)
		return nil
	}
	if s.conn == nil {
		return s.lockErr // the session broke (see heal)
	}
	cat, err := s.catalog(ctx)
	if err != nil {
		return err
	}
	keys, err := storedKeys(ctx, s.conn)
	if err != nil {
		return err
	}
	now := time.Now()
	for _, id := range ids {
		rp := &removedPlugin{id: id, since: now}
		rp.version, _ = recordedVersion(s.ledger, id)
		rp.ledger = slices.Sorted(maps.Keys(s.ledger[id]))
		tables := map[string]bool{}
		for name := range cat.tables {
			if t, ok := ownTable(id, name); ok {
				tables[t] = true
			}
		}
		rp.tables = slices.Sorted(maps.Keys(tables))
		for _, k := range keys {
			if inNamespace(id, k) {
				rp.settings = append(rp.settings, k)
			}
		}
		out[id] = rp
	}
	m.removed.set(out)
	return nil
}

// ownTable reports whether phys, a relation's name, is one of plugin id's
// tables, and returns its declared name.
func ownTable(id, phys string) (string, bool) {
	owner, table, ok := sqlgen.SplitPhysical(phys)
	if !ok || owner+"__" != tablePrefix(id) {
		return "", false
	}
	return table, true
}

// rowsQueryer runs queries: a *sql.Conn, a *Tx.
type rowsQueryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// storedKeys returns the keys of every stored setting, sorted.
func storedKeys(ctx context.Context, q rowsQueryer) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT key FROM `+settingsTable)
	if err != nil {
		return nil, fmt.Errorf("read the stored setting keys: %w", err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("read the stored setting keys: %w", err)
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, rows.Err()
}

// removedStatus returns the removed plugins' statuses, without the stored
// keys in their namespace that a registered owner (the core) defines.
func (m *Manager) removedStatus() []PluginStatus {
	out := m.removed.statuses()
	for i := range out {
		out[i].SettingKeys = slices.DeleteFunc(out[i].SettingKeys, func(k string) bool {
			owner := m.settings.Owner(k)
			return owner != "" && owner != out[i].ID
		})
		if len(out[i].SettingKeys) == 0 {
			out[i].SettingKeys = nil
		}
	}
	return out
}
