package pgnotify_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost/internal/pgnotify"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

const bound = 30 * time.Second

// run starts l.Run and returns its channels: every error, every
// reconnection, every payload. It stops Run when the test ends.
func run(t *testing.T, l *pgnotify.Listener) (errs <-chan error, reconnected <-chan struct{}, payloads <-chan string) {
	t.Helper()
	e := make(chan error, 1000)
	r := make(chan struct{}, 100)
	p := make(chan string, 100)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		l.Run(ctx, func(payload string) { p <- payload }, func() { r <- struct{}{} }, func(err error) { e <- err })
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return e, r, p
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(bound):
		t.Fatalf("no %s within %s", what, bound)
		var zero T
		return zero
	}
}

func TestReconnectsWithinASecondOfTheServerComingBack(t *testing.T) {
	t.Parallel()
	db, dsn := testdb.OpenPostgres(t)
	proxy, viaProxy := testdb.ProxyTo(t, dsn)
	cfg, err := pgx.ParseConfig(viaProxy)
	require.NoError(t, err)
	channel := fmt.Sprintf("pgnotify_test_%d", time.Now().UnixNano())
	l := pgnotify.New(cfg, channel)
	require.NoError(t, l.Connect(context.Background()))
	errs, reconnected, payloads := run(t, l)

	// The server is unreachable for ten failures in a row: the wait that
	// broke, then nine attempts to connect, which an uncapped pause would
	// space out to 2.5 s by now.
	proxy.Down()
	for i := range 10 {
		err := receive(t, errs, "error")
		t.Logf("failure %d: %v", i+1, err)
	}
	back := time.Now()
	proxy.Up()
	receive(t, reconnected, "reconnection")
	took := time.Since(back)
	t.Logf("listening again %s after the server came back", took)
	require.Less(t, took, time.Second)

	// Listening: a notification sent now is delivered.
	_, err = db.Exec(`SELECT pg_notify($1, 'hello')`, channel)
	require.NoError(t, err)
	require.Equal(t, "hello", receive(t, payloads, "notification"))
}
