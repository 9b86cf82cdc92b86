package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost/internal/testdb"
)

// poolOf reads the pool section of the host's /api/health.
func poolOf(t *testing.T, base string) map[string]int {
	t.Helper()
	var health struct {
		Pool map[string]int `json:"db_pool"`
	}
	require.Equal(t, http.StatusOK, get(t, base+"/api/health", &health))
	return health.Pool
}

func TestFlagsAreChecked(t *testing.T) {
	t.Parallel()
	opts, err := parseOptions(nil)
	require.NoError(t, err)
	require.Equal(t, defaultMaxConns, opts.maxConns)
	require.Equal(t, defaultStartTimeout, opts.startTimeout)
	require.Positive(t, opts.maxConns, "the pool is bounded by default")
	require.Positive(t, opts.startTimeout, "the start is bounded by default")

	for _, c := range []struct{ args, want string }{
		{"-max-conns 0", "-max-conns 0: the pool needs at least 1 connection"},
		{"-max-conns -3", "-max-conns -3: the pool needs at least 1 connection"},
		{"-start-timeout 0s", "-start-timeout 0s: give a positive duration, such as 2m0s"},
		{"-start-timeout -1s", "-start-timeout -1s: give a positive duration"},
		{"-start-timeout soon", `invalid value "soon" for flag -start-timeout`},
	} {
		_, err := parseOptions(strings.Fields(c.args))
		require.ErrorContains(t, err, c.want, c.args)
	}
}

// The pool the host opens is the size -max-conns says, 3 by default.
func TestPoolIsBounded(t *testing.T) {
	t.Setenv("PLUGINHOST_ADMIN_TOKEN", "s3cret")
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		dsn := filepath.Join(t.TempDir(), "example.db")
		if d == testdb.Postgres {
			_, dsn = testdb.OpenPostgres(t)
		}
		base, stop := startHost(t, io.Discard, "-db", dsn)
		require.Equal(t, defaultMaxConns, poolOf(t, base)["max_open"])
		require.NoError(t, stop())
		base, _ = startHost(t, io.Discard, "-db", dsn, "-max-conns", "2")
		require.Equal(t, 2, poolOf(t, base)["max_open"])
	})
}

// load sends requests to the host at base from clients goroutines, rounds
// times each: create a note, read it back, read /api/health. It returns the
// first failure.
func load(base string, clients, rounds int) error {
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range rounds {
				body := fmt.Sprintf(`{"title":"load %d.%d","body":"x"}`, c, i)
				resp, err := http.Post(base+"/api/plugin/notes/notes", "application/json", strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				var n struct{ ID int64 }
				err = json.NewDecoder(resp.Body).Decode(&n)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusCreated {
					errs <- fmt.Errorf("create a note: %d %v", resp.StatusCode, err)
					return
				}
				for _, path := range []string{"/api/plugin/notes/notes/" + strconv.FormatInt(n.ID, 10), "/api/health"} {
					resp, err := http.Get(base + path)
					if err != nil {
						errs <- err
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						errs <- fmt.Errorf("GET %s: %d", path, resp.StatusCode)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// Sixteen hosts on one PostgreSQL database, each loaded by more clients
// than its pools have connections, hold no more than their pools (the
// host's and its plugins') and listeners: counted on the server, in
// pg_stat_activity, by application name.
func TestManyHostsUnderLoadHoldTheirPoolsOnly(t *testing.T) {
	t.Setenv("PLUGINHOST_ADMIN_TOKEN", "s3cret")
	_, dsn := testdb.OpenPostgres(t)
	const hosts, maxConns, clients, rounds = 16, 2, 6, 15
	// The host's pool, a pool of -plugin-conns (1) for each of its two
	// sandboxed plugins, and the listener.
	const perHost = maxConns + 2*1 + 1
	app := fmt.Sprintf("phtest-%d", time.Now().UnixNano())
	bases := make([]string, hosts)
	for i := range hosts {
		u, err := url.Parse(dsn)
		require.NoError(t, err)
		q := u.Query()
		q.Set("application_name", fmt.Sprintf("%s-%02d", app, i))
		u.RawQuery = q.Encode()
		bases[i], _ = startHost(t, io.Discard, "-db", u.String(), "-max-conns", strconv.Itoa(maxConns))
	}

	// Sample the server's count of each host's connections while the load
	// runs.
	admin, err := sql.Open("pgx", dsn)
	require.NoError(t, err)
	defer admin.Close()
	loaded := make(chan struct{})
	type peak struct {
		perHost map[string]int
		total   int
		samples int
		err     error
	}
	peaks := make(chan peak, 1)
	go func() {
		p := peak{perHost: map[string]int{}}
		defer func() { peaks <- p }()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			rows, err := admin.Query(`SELECT application_name, count(*) FROM pg_stat_activity WHERE application_name LIKE $1 GROUP BY 1`, app+"-%")
			if err != nil {
				p.err = err
				return
			}
			total := 0
			for rows.Next() {
				var name string
				var n int
				if p.err = rows.Scan(&name, &n); p.err != nil {
					rows.Close()
					return
				}
				p.perHost[name] = max(p.perHost[name], n)
				total += n
			}
			rows.Close()
			p.total = max(p.total, total)
			p.samples++
			select {
			case <-loaded:
				return
			case <-tick.C:
			}
		}
	}()
	loadErrs := make([]error, hosts)
	var wg sync.WaitGroup
	for i, base := range bases {
		wg.Go(func() { loadErrs[i] = load(base, clients, rounds) })
	}
	wg.Wait()
	close(loaded)
	p := <-peaks
	require.NoError(t, p.err)
	for i, err := range loadErrs {
		require.NoError(t, err, "host %d under load", i)
	}
	t.Logf("%d hosts with -max-conns %d, %d clients each: at most %d connections in all (%d samples), per host %v",
		hosts, maxConns, clients, p.total, p.samples, p.perHost)
	require.Len(t, p.perHost, hosts)
	for name, n := range p.perHost {
		require.LessOrEqual(t, n, perHost, "%s: its pool, its plugins' pools and its listener", name)
	}
	require.LessOrEqual(t, p.total, hosts*perHost)
}

// With another replica holding the migration lock (frozen, say), the host
// gives up after -start-timeout with an error that says so, and starts once
// the lock is free. On SQLite the lock is the database's write lock, which
// the host waits for as long as its busy timeout (5 s) allows.
func TestStartTimeoutBoundsTheWaitForTheMigrationLock(t *testing.T) {
	t.Setenv("PLUGINHOST_ADMIN_TOKEN", "s3cret")
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		var db *sql.DB
		dsn := filepath.Join(t.TempDir(), "example.db")
		take, release := "BEGIN IMMEDIATE", "ROLLBACK"
		if d == testdb.Postgres {
			db, dsn = testdb.OpenPostgres(t)
			take = `SELECT pg_advisory_lock(hashtextextended('pluginhost.migrations.' || current_schema(), 0))`
			release = `SELECT pg_advisory_unlock(hashtextextended('pluginhost.migrations.' || current_schema(), 0))`
		} else {
			var err error
			db, err = openDB(dsn, 1)
			require.NoError(t, err)
			defer db.Close()
		}
		conn, err := db.Conn(context.Background())
		require.NoError(t, err)
		defer conn.Close()
		_, err = conn.ExecContext(context.Background(), take)
		require.NoError(t, err)

		// Long enough to reach the lock on a loaded machine (connect, read
		// the ledger), short enough for a test.
		began := time.Now()
		err = runErr(t, "-db", dsn, "-start-timeout", "3s")
		took := time.Since(began)
		t.Logf("gave up after %v: %v", took, err)
		if d == testdb.Postgres {
			require.ErrorContains(t, err, "the start did not finish within -start-timeout 3s (another replica may hold the migration lock")
			require.ErrorContains(t, err, "waiting for the migration lock, which another replica holds")
			require.ErrorIs(t, err, context.DeadlineExceeded)
		} else {
			require.ErrorContains(t, err, "database is locked")
		}
		require.Less(t, took, 30*time.Second, "bounded by the flag or the busy timeout")

		_, err = conn.ExecContext(context.Background(), release)
		require.NoError(t, err)
		base, _ := startHost(t, io.Discard, "-db", dsn, "-start-timeout", "1m")
		require.Equal(t, map[string]string{"notes": "running", "audit": "running"}, statesOf(t, base))
	})
}

func statesOf(t *testing.T, base string) map[string]string {
	t.Helper()
	var health struct {
		Plugins map[string]string `json:"plugins"`
	}
	require.Equal(t, http.StatusOK, get(t, base+"/api/health", &health))
	return health.Plugins
}
