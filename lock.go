package pluginhost

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"time"
)

// Polling bounds of the migration lock.
const (
	lockPollMin = 5 * time.Millisecond
	lockPollMax = 100 * time.Millisecond
)

// lockMigrations takes the migration lock on the session's connection and
// returns the function that releases it. On PostgreSQL it is a session
// advisory lock on a key derived from the current schema, taken by polling
// pg_try_advisory_lock under ctx's deadline and Config.LockTimeout: the blocking pg_advisory_lock
// ignores statement timeouts and is known to deadlock with CREATE INDEX
// CONCURRENTLY. On SQLite there is nothing to take: each migration
// transaction starts with BEGIN IMMEDIATE and reads the ledger again, which
// serializes writers.
//
// The release runs even after ctx is done. If it fails, the connection is
// closed rather than returned to the pool, which ends the session and with
// it the lock.
func (s *schemaSession) lockMigrations(ctx context.Context) (unlock func(context.Context), err error) {
	if s.dialect != Postgres {
		return func(context.Context) {}, nil
	}
	conn := s.conn
	var key int64
	if err := conn.QueryRowContext(ctx, `SELECT hashtextextended('pluginhost.migrations.' || current_schema(), 0)`).Scan(&key); err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	wait := lockPollMin
	waitCtx, cancel := context.WithTimeout(ctx, s.lockTimeout)
	defer cancel()
	for {
		var ok bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil {
			// The server may have granted the lock all the same: ctx can be
			// done after it replied and before the row was read. End the
			// session, which releases it, rather than hand the connection
			// back to the pool still holding the lock.
			discard(conn)
			if ctx.Err() != nil { // the deadline came during a poll, not between two
				return nil, fmt.Errorf("waiting for the migration lock, which another replica holds: %w", ctx.Err())
			}
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		if ok {
			break
		}
		s.log.Debug("waiting for the migration lock: another replica is migrating", "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-waitCtx.Done():
			t.Stop()
			if ctx.Err() == nil {
				return nil, fmt.Errorf("waited Config.LockTimeout (%s) for the migration lock, which another replica holds (is it frozen?): %w",
					s.lockTimeout, waitCtx.Err())
			}
			return nil, fmt.Errorf("waiting for the migration lock, which another replica holds: %w", ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, lockPollMax)
	}
	s.log.Debug("took the migration lock")
	return func(ctx context.Context) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		var released bool
		err := conn.QueryRowContext(rctx, `SELECT pg_advisory_unlock($1)`, key).Scan(&released)
		if err == nil && released {
			s.log.Debug("released the migration lock")
			return
		}
		s.log.Warn("could not release the migration lock; closing its connection, which releases it", "err", err)
		discard(conn)
	}, nil
}

// discard closes conn's session instead of returning it to the pool.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
}
