package pluginhost

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/pluginhost/pluginhost/internal/pgnotify"
)

// change is what a Manager announces to the other Managers of its database
// when it changes shared state, so that they reload it. Settings changes use
// it now; plugin enable and disable use the same path.
type change struct {
	Kind   string `json:"kind"`          // what to reload: changeSettings, …
	Key    string `json:"key,omitempty"` // the setting key or plugin id, for logs
	Origin string `json:"origin"`        // the announcing Manager, which ignores its own
}

// The kinds of change.
const (
	changeSettings = "settings" // a setting's value
	changePlugins  = "plugins"  // a plugin's persisted enable flag
)

// feed carries changes between the Managers of one database.
type feed interface {
	// announce runs inside the transaction that makes the change, so that
	// the change and its announcement commit together.
	announce(ctx context.Context, tx *Tx, c change) error
	// committed runs after that transaction has committed.
	committed(c change)
	// close stops receiving.
	close()
}

// newInstanceID names a Manager in its announcements.
func newInstanceID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// postgresFeed announces with pg_notify and listens on its own connection.
type postgresFeed struct {
	channel string
}

func (m *Manager) startPostgresFeed(ctx, bg context.Context) (*postgresFeed, error) {
	c := m.ctl
	cfg, err := pgnotify.ConfigFrom(ctx, m.cfg.DB)
	if err != nil {
		return nil, err
	}
	var channel string
	// One channel per database and schema: replicas share it, and tests in
	// other schemas of the same database stay apart.
	err = m.cfg.DB.QueryRowContext(ctx,
		`SELECT 'pluginhost_' || left(md5(current_database() || '.' || current_schema()), 20)`).Scan(&channel)
	if err != nil {
		return nil, fmt.Errorf("name the notification channel: %w", err)
	}
	l := pgnotify.New(cfg, channel)
	if err := l.Connect(ctx); err != nil {
		m.log.Warn("cannot listen for changes from other replicas yet; retrying in the background", "err", err)
	}
	c.background.Go(func() {
		l.Run(bg,
			func(payload string) {
				var c change
				if err := json.Unmarshal([]byte(payload), &c); err != nil {
					m.log.Warn("ignoring a malformed change notification", "payload", payload)
					return
				}
				m.received(c)
			},
			func() {
				m.log.Info("listening for changes again; reloading, since notifications sent meanwhile are lost")
				m.ctl.requestReload(true)
			},
			func(err error) { m.log.Warn("change listener", "err", err) },
		)
	})
	return &postgresFeed{channel: channel}, nil
}

func (f *postgresFeed) announce(ctx context.Context, tx *Tx, c change) error {
	payload, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `SELECT pg_notify(?, ?)`, f.channel, string(payload))
	return err
}

func (f *postgresFeed) committed(change) {}
func (f *postgresFeed) close()           {}

// nopFeed announces nothing.
type nopFeed struct{}

func (nopFeed) announce(context.Context, *Tx, change) error { return nil }
func (nopFeed) committed(change)                            {}
func (nopFeed) close()                                      {}

// localFeeds connects the Managers of this process that share a database:
// SQLite has no notifications. The key is the database file, or for an
// in-memory database the *sql.DB.
var localFeeds = struct {
	sync.Mutex
	members map[any]map[*Manager]bool
}{members: map[any]map[*Manager]bool{}}

type localFeed struct {
	key any
	m   *Manager
}

func joinLocalFeed(ctx context.Context, m *Manager) *localFeed {
	var key any = m.cfg.DB
	var seq int
	var name, file string
	if err := m.cfg.DB.QueryRowContext(ctx, `PRAGMA database_list`).Scan(&seq, &name, &file); err == nil && file != "" {
		key = file
	}
	localFeeds.Lock()
	defer localFeeds.Unlock()
	if localFeeds.members[key] == nil {
		localFeeds.members[key] = map[*Manager]bool{}
	}
	localFeeds.members[key][m] = true
	return &localFeed{key: key, m: m}
}

func (f *localFeed) announce(context.Context, *Tx, change) error { return nil }

func (f *localFeed) committed(c change) {
	localFeeds.Lock()
	members := make([]*Manager, 0, len(localFeeds.members[f.key]))
	for m := range localFeeds.members[f.key] {
		members = append(members, m)
	}
	localFeeds.Unlock()
	for _, m := range members {
		m.received(c)
	}
}

func (f *localFeed) close() {
	localFeeds.Lock()
	defer localFeeds.Unlock()
	delete(localFeeds.members[f.key], f.m)
	if len(localFeeds.members[f.key]) == 0 {
		delete(localFeeds.members, f.key)
	}
}
