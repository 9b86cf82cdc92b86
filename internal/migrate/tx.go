package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// InTx runs fn inside one transaction on conn, started with begin (for
// SQLite "BEGIN IMMEDIATE", so that concurrent boots queue for the write lock
// instead of failing on upgrade; for PostgreSQL "BEGIN"). It commits when fn
// returns nil and rolls back otherwise, also when fn panics (the panic then
// continues). The rollback runs even after ctx is canceled.
func InTx(ctx context.Context, conn *sql.Conn, begin string, fn func(ex Execer) error) (err error) {
	if _, err := conn.ExecContext(ctx, begin); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	done := false
	defer func() {
		if done {
			return
		}
		rbErr := rollback(ctx, conn)
		if p := recover(); p != nil {
			panic(p)
		}
		if rbErr != nil {
			err = errors.Join(err, rbErr)
		}
	}()
	if err := fn(conn); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	done = true
	return nil
}

func rollback(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}
