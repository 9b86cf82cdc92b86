// Package pgnotify keeps one PostgreSQL connection, outside the host's
// pool, listening on a notification channel, and reconnects when it breaks.
package pgnotify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNotPgx is returned by ConfigFrom when db's driver is not pgx's stdlib.
var ErrNotPgx = errors.New("the database driver is not github.com/jackc/pgx/v5/stdlib")

// ConfigFrom returns the connection settings of db's pgx driver, so that a
// listener connects to the same server, database and search path.
func ConfigFrom(ctx context.Context, db *sql.DB) (*pgx.ConnConfig, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var cfg *pgx.ConnConfig
	err = conn.Raw(func(dc any) error {
		c, ok := dc.(interface{ Conn() *pgx.Conn })
		if !ok {
			return ErrNotPgx
		}
		cfg = c.Conn().Config()
		// The copy still delivers notifications to the pool connection it
		// came from (pgx installs that connection's buffer in the config):
		// clear it, so that the new connection installs its own.
		cfg.OnNotification = nil
		return nil
	})
	return cfg, err
}

// Listener holds the listening connection. Create it with New.
type Listener struct {
	cfg     *pgx.ConnConfig
	channel string
	conn    *pgx.Conn
}

// Channel returns the name of the channel the listener listens on.
func (l *Listener) Channel() string { return l.channel }

// New returns a listener on channel that connects with cfg. It does not
// connect yet: call Connect, or let Run do it.
func New(cfg *pgx.ConnConfig, channel string) *Listener {
	return &Listener{cfg: cfg, channel: channel}
}

// Connect connects and listens. When it returns nil, LISTEN is in effect and
// every notification sent from then on is delivered to Run.
func (l *Listener) Connect(ctx context.Context) error {
	conn, err := pgx.ConnectConfig(ctx, l.cfg.Copy())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{l.channel}.Sanitize()); err != nil {
		_ = conn.Close(ctx)
		return fmt.Errorf("listen: %w", err)
	}
	l.conn = conn
	return nil
}

// The pause between attempts to reconnect: it doubles from MinPause up to
// MaxPause, so that once the server is reachable again the listener is back
// within MaxPause and the time to connect.
const (
	MinPause = 10 * time.Millisecond
	MaxPause = 250 * time.Millisecond
)

// Run delivers each notification's payload to onNotify until ctx is done.
// When the connection breaks it reconnects at once, then with a pause that
// grows from MinPause to MaxPause between failed attempts, and calls
// onReconnect once listening again: notifications sent meanwhile are lost,
// so the caller reloads what they would have told it. onError reports each
// failure. Run closes the connection when it returns.
func (l *Listener) Run(ctx context.Context, onNotify func(payload string), onReconnect func(), onError func(error)) {
	defer func() {
		if l.conn != nil {
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = l.conn.Close(closeCtx)
			cancel()
		}
	}()
	wait := MinPause
	for {
		if l.conn == nil {
			if err := l.Connect(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				onError(err)
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				wait = min(2*wait, MaxPause)
				continue
			}
			wait = MinPause
			onReconnect()
		}
		n, err := l.conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			onError(fmt.Errorf("wait for notification: %w", err))
			_ = l.conn.Close(context.Background())
			l.conn = nil
			continue
		}
		if n != nil { // nil: woken by something other than a notification
			onNotify(n.Payload)
		}
	}
}
