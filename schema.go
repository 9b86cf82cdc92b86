package pluginhost

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"time"

	"github.com/pluginhost/pluginhost/internal/dialect"
	"github.com/pluginhost/pluginhost/internal/migrate"
)

// pluginsTable holds the persisted per-plugin enable flags.
const pluginsTable = "pluginhost_plugins"

// schemaSession is Start's dedicated connection for schema work, with the
// ledger as last read and, while migrations run, the migration lock. It
// does the schema work: the ledger, the core migrations and each plugin's
// tables and migrations.
type schemaSession struct {
	m           *Manager // for calls into plugin code and the plugins' warnings
	dialect     Dialect
	devMode     bool          // Config.DevMode: changed tables are dropped and recreated
	lockTimeout time.Duration // Config.LockTimeout: the bound of a wait for the migration lock
	log         *slog.Logger
	rebind      func(string) string // rewrites "?" placeholders for the dialect

	conn   *sql.Conn
	ledger migrate.Ledger
	unlock func(context.Context) // nil while the lock is not held
	// lockErr is why the lock could not be taken: every later attempt
	// fails with it too, rather than wait again or use a closed connection.
	lockErr error
	// foreignKeys is whether the connection enforces foreign keys (SQLite),
	// once read; misconfigured is the database's misconfiguration a plugin
	// ran into (foreign keys not enforced), which fails the bring-up.
	foreignKeys   *bool
	misconfigured error
	// cat is the sandbox's view of the catalog, read once (see catalog).
	cat *sandboxCatalog
}

// openSchemaSession takes a connection for m's schema work and reads the
// whole ledger in one query: on a warm boot that read alone decides that
// nothing is to be done, and no lock is taken.
func openSchemaSession(ctx context.Context, m *Manager) (*schemaSession, error) {
	conn, err := m.cfg.DB.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("pluginhost: cannot start: the database is unreachable: %w", err)
	}
	s := &schemaSession{
		m:           m,
		dialect:     m.cfg.Dialect,
		devMode:     m.cfg.DevMode,
		lockTimeout: m.cfg.LockTimeout,
		log:         m.log,
		rebind:      m.db.Rebind,
		conn:        conn,
	}
	if s.ledger, err = s.loadLedger(ctx); err != nil && connDead(conn) && ctx.Err() == nil {
		conn.Close() // died in the pool: once more, on a fresh one (see onConn)
		if s.conn, err = freshConn(ctx, m.cfg.DB); err == nil {
			s.ledger, err = s.loadLedger(ctx)
		}
	}
	if err != nil {
		if s.conn != nil {
			s.conn.Close()
		}
		return nil, fmt.Errorf("pluginhost: cannot start: %w", err)
	}
	return s, nil
}

// lock takes the migration lock, if not held yet, and reads the ledger
// again: another replica may have migrated while this one waited.
func (s *schemaSession) lock(ctx context.Context) error {
	if s.unlock != nil {
		return nil
	}
	if s.lockErr != nil {
		return s.lockErr
	}
	unlock, err := s.lockMigrations(ctx)
	if err != nil {
		s.lockErr = err
		return err
	}
	s.unlock = unlock
	l, err := s.loadLedger(ctx)
	if err != nil {
		return err
	}
	maps.Copy(s.ledger, l)
	return nil
}

// heal replaces the session's connection if it broke, and is called after
// a plugin's schema work failed: a hook that overran its timeout with a
// statement in flight leaves it broken on PostgreSQL, where pgx closes a
// connection whose query was canceled. The migration lock, if held, ended
// with that session; it is taken again on the new connection, which reads
// the ledger again. A session that cannot be healed fails every later
// attempt to lock with the reason, which fails the bring-up. A working
// connection costs one ping.
func (s *schemaSession) heal(ctx context.Context) {
	if s.lockErr != nil || s.conn.PingContext(ctx) == nil {
		return
	}
	s.log.Warn("the schema session's connection broke; opening another")
	held := s.unlock != nil
	s.unlock = nil // the lock went with the session
	discard(s.conn)
	_ = s.conn.Close()
	conn, err := s.m.cfg.DB.Conn(ctx)
	if err != nil {
		s.conn, s.lockErr = nil, fmt.Errorf("the schema session's connection broke and no other could be opened: %w", err)
		return
	}
	s.conn = conn
	if held {
		_ = s.lock(ctx) // a failure is kept in s.lockErr
	}
}

// close releases the lock, if held, and the connection. It may be called
// more than once.
func (s *schemaSession) close(ctx context.Context) {
	if s.unlock != nil {
		s.unlock(ctx)
		s.unlock = nil
	}
	if s.conn != nil {
		_ = s.conn.Close()
	}
}

// loadLedger reads the whole ledger in one query, or an empty ledger on a
// database pluginhost has never touched.
func (s *schemaSession) loadLedger(ctx context.Context) (migrate.Ledger, error) {
	exists := func(ctx context.Context, name string) (bool, error) {
		return dialect.TableExists(ctx, s.dialect, s.conn, name)
	}
	l, _, err := migrate.Load(ctx, s.conn, exists)
	return l, err
}

// readOverrides reads the persisted enable flags on conn: id → enabled.
// Before the library's tables exist (according to l, when given) there are
// none.
func readOverrides(ctx context.Context, conn *sql.Conn, l migrate.Ledger) (map[string]bool, error) {
	out := map[string]bool{}
	if l != nil && len(l[migrate.LibraryLine]) == 0 {
		return out, nil // the table does not exist yet
	}
	rows, err := conn.QueryContext(ctx, `SELECT id, enabled FROM `+pluginsTable+` WHERE enabled IS NOT NULL`)
	if err != nil {
		return nil, fmt.Errorf("read plugin overrides: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var enabled bool
		if err := rows.Scan(&id, &enabled); err != nil {
			return nil, fmt.Errorf("read plugin overrides: %w", err)
		}
		out[id] = enabled
	}
	return out, rows.Err()
}

// migrateCore applies the library's own migrations and the host's core
// migrations, read from coreFS (Config.CoreMigrations), each in one
// transaction with its ledger row, creating the ledger first. When nothing
// is pending it neither writes nor locks.
func (s *schemaSession) migrateCore(ctx context.Context, coreFS fs.FS) error {
	dir := string(s.dialect) // each dialect's migrations are in a folder named after it
	library, err := migrate.Read(migrate.Library, dir)
	if err != nil {
		return err
	}
	core, err := migrate.Read(coreFS, dir)
	if err != nil {
		return fmt.Errorf("Config.CoreMigrations: %w", err)
	}
	pendingLibrary, err := migrate.Pending(s.ledger, migrate.LibraryLine, library)
	if err != nil {
		return err
	}
	pendingCore, err := migrate.Pending(s.ledger, migrate.CoreLine, core)
	if err != nil {
		return err
	}
	if len(pendingLibrary)+len(pendingCore) == 0 {
		return nil
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	err = migrate.InTx(ctx, s.conn, dialect.BeginMigration(s.dialect), func(ex migrate.Execer) error {
		_, err := ex.ExecContext(ctx, migrate.LedgerDDL(s.dialect))
		return err
	})
	if err != nil {
		return fmt.Errorf("create the migration ledger: %w", err)
	}
	if err := s.applyMigrations(ctx, migrate.LibraryLine, library); err != nil {
		return err
	}
	return s.applyMigrations(ctx, migrate.CoreLine, core)
}

// applyMigrations applies the pending migrations of a line one by one, each
// in its own transaction; the first failure stops it, leaving the database
// as it was before that migration. Each transaction re-reads the line's
// ledger rows first, under the write lock: another process booting on the
// same database may have applied the migration since the session's ledger
// was read.
func (s *schemaSession) applyMigrations(ctx context.Context, line string, all []migrate.Migration) error {
	pending, err := migrate.Pending(s.ledger, line, all)
	if err != nil {
		return err
	}
	for _, mig := range pending {
		e := migrate.Entry{Line: line, Version: mig.Version, Checksum: mig.Checksum}
		applied := false
		err := migrate.InTx(ctx, s.conn, dialect.BeginMigration(s.dialect), func(ex migrate.Execer) error {
			if err := s.ledger.Refresh(ctx, ex, s.rebind, line); err != nil {
				return err
			}
			if still, err := migrate.Pending(s.ledger, line, []migrate.Migration{mig}); err != nil || len(still) == 0 {
				return err
			}
			if _, err := ex.ExecContext(ctx, mig.SQL); err != nil {
				return fmt.Errorf("migration %s: %w", mig.Version, err)
			}
			applied = true
			return migrate.Record(ctx, ex, s.rebind, e)
		})
		if err != nil {
			return err
		}
		if applied {
			s.ledger.Put(e)
			s.log.Info("applied migration", "line", line, "version", mig.Version)
		}
	}
	return nil
}
