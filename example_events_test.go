package pluginhost_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"

	_ "github.com/mattn/go-sqlite3" // the SQLite driver

	"github.com/pluginhost/pluginhost"
)

// UserSignedUp is an event the host publishes. Event types are plain Go
// types, exported from a package the publisher and the subscribers share.
type UserSignedUp struct {
	Email string
}

// welcomePlugin greets new users synchronously, in the publisher's
// goroutine, and mails them through an asynchronous subscription.
type welcomePlugin struct {
	mailed chan string
}

func (*welcomePlugin) Manifest() []byte {
	return []byte("id = \"welcome\"\nname = \"Welcome\"\nversion = \"1.0.0\"\n")
}

func (p *welcomePlugin) Init(ctx context.Context, h *pluginhost.Host) error {
	pluginhost.Subscribe(h, func(ctx context.Context, e UserSignedUp) error {
		if e.Email == "" {
			return errors.New("no email address")
		}
		fmt.Println("welcome:", e.Email)
		return nil
	})
	// Slow work goes through a queue of its own, drained by one goroutine.
	pluginhost.Subscribe(h, func(ctx context.Context, e UserSignedUp) error {
		if e.Email != "" {
			p.mailed <- e.Email
		}
		return nil
	}, pluginhost.Async(100))
	return nil
}

// opsPlugin watches for failing event handlers.
type opsPlugin struct{}

func (opsPlugin) Manifest() []byte {
	return []byte("id = \"ops\"\nname = \"Ops\"\nversion = \"1.0.0\"\n")
}

func (opsPlugin) Init(ctx context.Context, h *pluginhost.Host) error {
	pluginhost.Subscribe(h, func(ctx context.Context, e pluginhost.PluginError) error {
		fmt.Printf("ops: plugin %s failed on %s: %v\n", e.Plugin, e.Event, e.Err)
		return nil
	})
	return nil
}

func ExampleSubscribe() {
	ctx := context.Background()
	db, err := sql.Open("sqlite3", "file:/example_events?vfs=memdb")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()

	welcome := &welcomePlugin{mailed: make(chan string, 1)}
	reg := pluginhost.NewRegistry()
	for _, p := range []pluginhost.Plugin{welcome, opsPlugin{}} {
		if err := reg.Register(p); err != nil {
			fmt.Println(err)
			return
		}
	}
	m, err := pluginhost.New(pluginhost.Config{DB: db, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := m.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer m.Shutdown(ctx)

	// The host publishes as the Manager; a plugin would publish with its
	// Host: pluginhost.Publish(ctx, h, e).
	pluginhost.Publish(ctx, m, UserSignedUp{Email: "ada@example.com"})
	fmt.Println("mailed:", <-welcome.mailed)

	// A handler's error reaches neither the publisher nor the other
	// subscribers; it is published as a PluginError.
	pluginhost.Publish(ctx, m, UserSignedUp{})
	// Output:
	// welcome: ada@example.com
	// mailed: ada@example.com
	// ops: plugin welcome failed on pluginhost_test.UserSignedUp: no email address
}
