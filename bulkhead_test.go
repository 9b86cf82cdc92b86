package pluginhost_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// TestBulkheadsKeepOthersAnswering: a plugin whose handlers block while
// holding database connections gets no more requests in flight than its
// limit (the others are answered 503 with Retry-After and counted) and no
// more connections than its limit, so that on a small pool the host's own
// queries and another plugin's routes keep answering.
func TestBulkheadsKeepOthersAnswering(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.db.SetMaxOpenConns(4)

		holding := make(chan struct{}, 16)
		release := make(chan struct{})
		hog := &fake{
			manifest: manifest("hog", "1.0.0"),
			routes: func(r chi.Router, h *pluginhost.Host) {
				// /rows holds a connection through open rows, /tx through
				// a transaction, until the test releases them.
				r.Get("/rows", func(w http.ResponseWriter, r *http.Request) {
					rows, err := h.DB().QueryContext(r.Context(), "SELECT 1")
					if err != nil {
						http.Error(w, err.Error(), http.StatusInternalServerError)
						return
					}
					holding <- struct{}{}
					<-release
					_ = rows.Close()
				})
				r.Get("/tx", func(w http.ResponseWriter, r *http.Request) {
					tx, err := h.DB().BeginTx(r.Context(), nil)
					if err != nil {
						http.Error(w, err.Error(), http.StatusInternalServerError)
						return
					}
					var one int
					if err := tx.QueryRowContext(r.Context(), "SELECT 1").Scan(&one); err != nil {
						http.Error(w, err.Error(), http.StatusInternalServerError)
						return
					}
					holding <- struct{}{}
					<-release
					_ = tx.Rollback()
				})
			},
		}
		other := &fake{
			manifest: manifest("other", "1.0.0"),
			routes: func(r chi.Router, h *pluginhost.Host) {
				r.Get("/ping", func(w http.ResponseWriter, r *http.Request) {
					var one int
					if err := h.DB().QueryRowContext(r.Context(), "SELECT 1").Scan(&one); err != nil {
						http.Error(w, err.Error(), http.StatusInternalServerError)
						return
					}
					w.WriteHeader(http.StatusOK)
				})
			},
		}
		cfg := e.config(hog, other)
		cfg.MaxConns = 2 // of the pool's 4
		cfg.PluginLimits = map[string]pluginhost.Limits{"hog": {MaxInFlight: 3}}
		m := e.start(cfg)
		handler := m.Handler()

		// Six requests to hog: three are admitted, two of them get a
		// connection and block, the third waits for one; three are refused.
		type answer struct {
			code       int
			retryAfter string
			body       map[string]any
		}
		answers := make(chan answer, 6)
		var wg sync.WaitGroup
		for i := range 6 {
			path := "/api/plugin/hog/rows"
			if i%2 == 1 {
				path = "/api/plugin/hog/tx"
			}
			wg.Go(func() {
				rec := httptest.NewRecorder()
				handler.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
				a := answer{code: rec.Code, retryAfter: rec.Header().Get("Retry-After")}
				_ = json.Unmarshal(rec.Body.Bytes(), &a.body)
				answers <- a
			})
		}
		released := false
		defer func() {
			if !released {
				close(release)
			}
			wg.Wait()
		}()
		for range 2 {
			<-holding
		}
		for range 3 {
			a := <-answers
			require.Equal(t, http.StatusServiceUnavailable, a.code)
			require.Equal(t, "1", a.retryAfter)
			require.Equal(t, map[string]any{"error": "too many requests in flight", "plugin": "hog", "limit": float64(3)}, a.body)
		}
		st := status(t, m, "hog")
		require.Equal(t, int64(3), st.Rejected)
		require.Equal(t, int64(3), st.InFlight)

		// The host's own queries and the other plugin still answer.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for range 3 {
			var one int
			require.NoError(t, e.db.QueryRowContext(ctx, "SELECT 1").Scan(&one), "the host's query")
			req := httptest.NewRequest("GET", "/api/plugin/other/ping", nil).WithContext(ctx)
			rec := httptest.NewRecorder()
			handler.ServeHTTP(rec, req)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		}
		require.True(t, m.Health(ctx).Ready, "the host is ready")

		// Released, the three admitted requests finish: the third got a
		// connection when one was given back.
		close(release)
		released = true
		<-holding
		for range 3 {
			require.Equal(t, http.StatusOK, (<-answers).code)
		}
		wg.Wait()
		st = status(t, m, "hog")
		require.Equal(t, int64(3), st.Rejected)
		require.Zero(t, st.InFlight)
	})
}

// TestMaxConnsWaitEndsWithContext: a statement beyond the plugin's
// connections waits until its context ends, with an error naming the
// plugin and the limit; a transaction whose context ended gives its
// connection back.
func TestMaxConnsWaitEndsWithContext(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		var host *pluginhost.Host
		p := &fake{manifest: manifest("one", "1.0.0"), init: func(_ context.Context, h *pluginhost.Host) error {
			host = h
			return nil
		}}
		cfg := e.config(p)
		cfg.MaxConns = 1
		e.start(cfg)
		db := host.DB()

		txCtx, endTx := context.WithCancel(context.Background())
		tx, err := db.BeginTx(txCtx, nil)
		require.NoError(t, err)

		short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err = db.ExecContext(short, "SELECT 1")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorContains(t, err, `plugin "one": waiting for a database connection: all 1 it may hold at once (Config.MaxConns) are in use`)
		_, err = db.QueryContext(short, "SELECT 1")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorIs(t, db.QueryRowContext(short, "SELECT 1").Scan(new(int)), context.DeadlineExceeded)

		endTx() // database/sql rolls the transaction back; its token returns
		ctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel2()
		rows, err := db.QueryContext(ctx, "SELECT 1")
		require.NoError(t, err)
		require.True(t, rows.Next())
		// The rows hold the one connection until closed.
		_, err = db.ExecContext(short, "SELECT 1")
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.NoError(t, rows.Close())
		var one int
		require.NoError(t, db.QueryRowContext(ctx, "SELECT 1").Scan(&one))
		_, err = db.ExecContext(ctx, "SELECT 1")
		require.NoError(t, err)
		require.ErrorIs(t, tx.Commit(), sql.ErrTxDone)
	})
}

// TestMaxConnsDefault: Config.MaxConns is off by default: a plugin may
// hold as many connections as the pool has.
func TestMaxConnsDefault(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.db.SetMaxOpenConns(2)
		var host *pluginhost.Host
		p := &fake{manifest: manifest("one", "1.0.0"), init: func(_ context.Context, h *pluginhost.Host) error {
			host = h
			return nil
		}}
		e.start(e.config(p))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		tx, err := host.DB().BeginTx(ctx, nil)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback() }()
		_, err = host.DB().ExecContext(ctx, "SELECT 1") // the pool's second connection
		require.NoError(t, err)
	})
}

// A Row scanned twice gives its connection back once: the second Scan is
// an error, and the plugin still holds no more than Config.MaxConns.
func TestRowScannedTwiceReleasesOnce(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		var host *pluginhost.Host
		p := &fake{manifest: manifest("one", "1.0.0"), init: func(_ context.Context, h *pluginhost.Host) error {
			host = h
			return nil
		}}
		cfg := e.config(p)
		cfg.MaxConns = 2
		e.start(cfg)
		db := host.DB()
		ctx := context.Background()

		tx1, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		row := db.QueryRowContext(ctx, "SELECT 1")
		var one int
		require.NoError(t, row.Scan(&one))
		require.Error(t, row.Scan(&one), "a row scans once")

		tx2, err := db.BeginTx(ctx, nil)
		require.NoError(t, err)
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err = db.ExecContext(short, "SELECT 1")
		require.ErrorIs(t, err, context.DeadlineExceeded, "both connections are the transactions'")
		require.NoError(t, tx1.Rollback())
		require.NoError(t, tx2.Rollback())
	})
}
