package pluginhost

import (
	"context"
	"errors"
	"fmt"
)

// migrateOnlyReason is the reason of the plugins Migrate brought through
// the schema phase, once it stopped.
const migrateOnlyReason = "migrate only: the manager stopped after the schema phase"

// Migrate applies the schema and stops, for a release job that migrates
// the database before the new replicas roll out: it runs Start's phases up
// to the schema (discover, resolve, the library's and Config.CoreMigrations'
// migrations, then each plugin's tables, migrations and once-hooks such as
// SeedOnce, in the plugin's schema transaction, under the migration lock
// as Start takes it) and nothing after: no settings phase (no defaults are
// written), no Seed, no Init, no routes, no listener of other replicas'
// changes. A Start on the migrated database then finds the schema work
// done.
//
// Migrate is called instead of Start, once. Afterwards the Manager is shut
// down: Start and Migrate return ErrClosed, Shutdown returns nil, Status
// reports each plugin Migrate brought through its schema as stopped (with
// the reason "migrate only: …"), and the others as disabled or failed, with
// their reasons; the settings store refuses writes (ErrClosed). Called
// after Start, Migrate returns ErrAlreadyStarted; after Shutdown, ErrClosed.
//
// Migrate returns an error when the database cannot be reached, a core
// migration fails, a migration lock cannot be taken, a required plugin
// (Config.Required, RequireAll) does not make it through its schema, and
// also when any plugin failed (its manifest, resolve or schema phase), so
// that the release job stops: the error names each such plugin and wraps
// ErrStartFailed and the plugin's failure (see PluginStatus.Err). A
// disabled plugin is no failure; its schema is not touched.
func (m *Manager) Migrate(ctx context.Context) error {
	m.life.Lock()
	defer m.life.Unlock()
	if err := m.beginLocked(); err != nil {
		return err
	}
	_, err := m.migrateSchema(ctx, m.requiredErr)
	if err == nil {
		err = m.failedErr()
	}
	// No hook is owed (nothing was initialized): stop only moves the
	// plugins to stopped and closes what the schema phase opened (the
	// sandbox's pools), within a bound even if ctx is already done.
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startUndoTimeout)
	defer cancel()
	m.stopped = true
	m.stopErr = m.stop(stopCtx, migrateOnlyReason)
	if err != nil {
		return err
	}
	m.log.Info("pluginhost migrated the schema and stopped (migrate only)")
	return m.stopErr
}

// failedErr returns an error naming every failed plugin, each wrapping
// ErrStartFailed and its failure.
func (m *Manager) failedErr() error {
	var errs []error
	for _, p := range m.plugins.list() {
		if state, reason, err := m.plugins.outcome(p); state == StateFailed {
			errs = append(errs, withCauses(fmt.Sprintf("pluginhost: migrate: plugin %q failed: %s", p.id, reason), ErrStartFailed, err))
		}
	}
	return errors.Join(errs...)
}
