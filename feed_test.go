package pluginhost_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// replicas starts n managers on one database, as n replicas of a service
// would: on PostgreSQL each with its own pool, on SQLite sharing one (the
// Managers of one process that share a database).
func replicas(t testing.TB, e *env, n int, plugins func() []pluginhost.Plugin) []*pluginhost.Manager {
	t.Helper()
	out := make([]*pluginhost.Manager, n)
	for i := range out {
		db := e.db
		if e.dialect == testdb.Postgres && i > 0 {
			db = testdb.OpenAgain(t, e.dialect, e.dsn)
		}
		m, err := pluginhost.New(pluginhost.Config{DB: db, Registry: registry(t, plugins()...), Logger: discardLogger()})
		require.NoError(t, err)
		require.NoError(t, m.Start(context.Background()))
		t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
		out[i] = m
	}
	return out
}

func limitPlugin() []pluginhost.Plugin {
	return []pluginhost.Plugin{&fake{manifest: manifest("limits", "1.0.0",
		"[[settings]]", `key = "limits.max"`, `type = "number"`, `default = 1`)}}
}

// waitSetting waits, without polling, until m reads want for key.
func waitSetting(t testing.TB, m *pluginhost.Manager, key string, want float64) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		changed := pluginhost.SettingsChanged(m.Settings())
		got, err := m.Settings().Number(key)
		require.NoError(t, err)
		if got == want {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%s is still %v, want %v", key, got, want)
		}
	}
}

func TestSettingChangeReachesOtherManagers(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		ms := replicas(t, e, 3, limitPlugin)
		for i := 2; i <= 5; i++ {
			writer := ms[i%3]
			require.NoError(t, writer.Settings().Set(context.Background(), "limits.max", i))
			for _, m := range ms {
				waitSetting(t, m, "limits.max", float64(i))
			}
		}

		// A Manager that shut down no longer follows; the others still do.
		require.NoError(t, ms[2].Shutdown(context.Background()))
		require.NoError(t, ms[0].Settings().Set(context.Background(), "limits.max", 42))
		waitSetting(t, ms[1], "limits.max", 42)
		got, err := ms[2].Settings().Number("limits.max")
		require.NoError(t, err)
		require.Equal(t, 5.0, got)
	})
}

func TestListenerReconnectReloads(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testdb.Postgres)
	ms := replicas(t, e, 2, limitPlugin)

	// A change that bypasses the notifications, then the listener loses
	// its connection: the reload after reconnecting must find the change.
	_, err := e.db.Exec(`UPDATE pluginhost_settings SET value = '77' WHERE key = 'limits.max'`)
	require.NoError(t, err)
	var killed int
	require.NoError(t, e.db.QueryRow(`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid() AND datname = current_database()`).Scan(&killed))
	require.GreaterOrEqual(t, killed, 2)
	waitSetting(t, ms[0], "limits.max", 77)
	waitSetting(t, ms[1], "limits.max", 77)

	// And notifications flow again on the new connection.
	require.NoError(t, ms[0].Settings().Set(context.Background(), "limits.max", 78))
	waitSetting(t, ms[1], "limits.max", 78)
}

// BenchmarkSettingPropagation measures how long a setting changed through
// one of three Managers takes to reach the other two: reported as p50 and
// p99 in nanoseconds.
func BenchmarkSettingPropagation(b *testing.B) {
	for _, d := range []testdb.Dialect{testdb.SQLite, testdb.Postgres} {
		b.Run(string(d), func(b *testing.B) {
			db, dsn := testdb.Open(b, d)
			e := &env{dialect: d, db: db, dsn: dsn}
			ms := replicas(b, e, 3, limitPlugin)
			var lat []time.Duration
			i := 0
			for b.Loop() {
				i++
				waits := []<-chan struct{}{}
				for _, m := range ms[1:] {
					waits = append(waits, pluginhost.SettingsChanged(m.Settings()))
				}
				start := time.Now()
				if err := ms[0].Settings().Set(context.Background(), "limits.max", i); err != nil {
					b.Fatal(err)
				}
				for j, m := range ms[1:] {
					for {
						if got, _ := m.Settings().Number("limits.max"); got == float64(i) {
							lat = append(lat, time.Since(start))
							break
						}
						<-waits[j]
						waits[j] = pluginhost.SettingsChanged(m.Settings())
					}
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[min(len(lat)-1, len(lat)*99/100)].Nanoseconds()), "p99-ns")
		})
	}
}
