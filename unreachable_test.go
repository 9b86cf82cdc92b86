package pluginhost_test

import (
	"context"
	"database/sql"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// An unreachable PostgreSQL server fails Start with an error that names the
// address and says the database is unreachable, within the context's
// deadline, and before any plugin code runs.
func TestUnreachableServerFailsStart(t *testing.T) {
	t.Parallel()
	// A server that accepts connections and never answers: only the
	// context's deadline ends the wait.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var conns []net.Conn // read after done: the accepting goroutine has ended
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = silent.Close()
		<-done
		for _, c := range conns {
			_ = c.Close()
		}
	})
	go func() {
		defer close(done)
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			conns = append(conns, conn)
		}
	}()
	tests := []struct {
		name, dsn, addr string
	}{
		{"connection refused", "postgres://postgres@127.0.0.1:1/test?sslmode=disable", "127.0.0.1:1"},
		{"no answer", "postgres://postgres@" + silent.Addr().String() + "/test?sslmode=disable", silent.Addr().String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, err := sql.Open("pgx", tt.dsn)
			require.NoError(t, err)
			t.Cleanup(func() { _ = db.Close() })
			var hooks atomic.Int32 // plugin hooks run; Start must run none
			hook := func(context.Context, *pluginhost.Host) error { hooks.Add(1); return nil }
			p := &fake{manifest: manifest("untouched", "1.0.0"), seed: hook, init: hook,
				routes: func(chi.Router, *pluginhost.Host) { hooks.Add(1) }}
			m, err := pluginhost.New(pluginhost.Config{DB: db, Registry: registry(t, p), Logger: discardLogger()})
			require.NoError(t, err, "New does not connect")

			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- m.Start(ctx) }()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Start did not return long after its context's deadline")
			}
			require.Error(t, err)
			require.Contains(t, err.Error(), "cannot start: the database is unreachable")
			require.Contains(t, err.Error(), tt.addr)
			require.Zero(t, hooks.Load(), "no plugin code runs before the core is in place")
			require.NoError(t, m.Shutdown(context.Background()))
		})
	}
}
