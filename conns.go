package pluginhost

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// The library's own statements, and pooled connections that died.
//
// database/sql runs a statement again on another connection only when the
// driver answers driver.ErrBadConn before it sent anything. A connection
// whose server session ended while it sat idle in the pool (a failover,
// pg_terminate_backend, an idle-session killer, a server restart) does not:
// pgx checks an idle connection with a ping only when it was last checked
// more than a second ago, so the pool hands it out, its first statement is
// sent, and it fails with what the server said as it ended the session,
// such as "FATAL: terminating connection due to administrator command
// (SQLSTATE 57P01)", or with the broken connection's I/O error; pgx then
// marks it closed, and database/sql discards it when it comes back. Every
// idle connection of a pool can be in that state at once.
//
// So the statements the library runs on its own (the control goroutine's
// reads, the operators' writes) go through onConn: a statement that failed
// on a connection that is closed afterwards runs once more, on a
// connection that answered a ping.

// onConn runs fn on a connection of db. When fn fails and its connection
// turns out to have died (see connDead), fn runs once more on a fresh
// connection (see freshConn). fn must be safe to run twice: a read, or a
// transaction that commits whole or not at all and writes the same when
// it runs again.
func onConn(ctx context.Context, db *sql.DB, fn func(conn *sql.Conn) error) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	err = fn(conn)
	dead := err != nil && ctx.Err() == nil && connDead(conn)
	_ = conn.Close()
	if !dead {
		return err
	}
	fresh, ferr := freshConn(ctx, db)
	if ferr != nil {
		return fmt.Errorf("%w (the connection had died; no other answered: %w)", err, ferr)
	}
	defer fresh.Close()
	return fn(fresh)
}

// inTx runs fn in a transaction on a connection of db and commits it,
// through onConn: a transaction whose connection died runs once more, so
// fn must write the same when it runs again.
func inTx(ctx context.Context, db *DB, fn func(tx *Tx) error) error {
	return onConn(ctx, db.sql, func(conn *sql.Conn) error {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		if err := fn(&Tx{tx: tx, db: db}); err != nil {
			_ = tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	})
}

// connDead reports whether conn's driver connection is closed: asked after
// a statement failed, it tells a connection that died from a statement the
// server refused. It asks pgx's connection, else a driver.Validator; a
// connection database/sql already discarded is dead too.
func connDead(conn *sql.Conn) bool {
	dead := false
	err := conn.Raw(func(dc any) error {
		if c, ok := dc.(interface{ Conn() *pgx.Conn }); ok && c.Conn() != nil {
			dead = c.Conn().IsClosed()
		} else if v, ok := dc.(driver.Validator); ok {
			dead = !v.IsValid()
		}
		return nil
	})
	return dead || err != nil
}

// freshConn returns a connection of db that answered a ping. The pooled
// connections that do not answer are discarded on the way (the driver
// reports them bad), so that when every idle connection died together it
// reaches a new one; it gives up after as many tries as db had open
// connections, plus one.
func freshConn(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
	tries := db.Stats().OpenConnections + 1
	var err error
	for range tries {
		var conn *sql.Conn
		if conn, err = db.Conn(ctx); err != nil {
			return nil, err
		}
		if err = conn.PingContext(ctx); err == nil {
			return conn, nil
		}
		_ = conn.Close()
		if ctx.Err() != nil {
			break
		}
	}
	return nil, err
}
