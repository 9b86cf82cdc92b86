package pluginhost_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/internal/testdb"
)

// tick is the event the proof's plugins subscribe to.
type tick struct{ n int }

// namer is the interface of the proof's extension point.
type namer interface{ Name() string }

type named string

func (n named) Name() string { return string(n) }

// proofPlugin answers its id on /who, counts ticks and provides a namer.
func proofPlugin(id string, ticks *atomic.Int64, extra ...string) *fake {
	return &fake{
		manifest: manifest(id, "1.0.0", extra...),
		tables:   []pluginhost.Table{{Name: "hits", Columns: []pluginhost.Column{{Name: "id", PrimaryKey: true}}}},
		init: func(ctx context.Context, h *pluginhost.Host) error {
			pluginhost.Subscribe(h, func(context.Context, tick) error { ticks.Add(1); return nil })
			return pluginhost.Provide[namer](h, "proof.namers", id, named(id))
		},
		routes: func(r chi.Router, h *pluginhost.Host) {
			r.Get("/who", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(h.ID())) })
		},
	}
}

// pluginhostGoroutines counts the goroutines running this module's code,
// other than the caller's.
func pluginhostGoroutines() (int, string) {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	var found []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 { // the caller
			continue
		}
		if strings.Contains(g, "github.com/pluginhost/pluginhost.") || strings.Contains(g, "github.com/pluginhost/pluginhost/internal") {
			n++
			found = append(found, g)
		}
	}
	return n, strings.Join(found, "\n\n")
}

// Many concurrent requests, event publishes and extension lookups while
// plugins are disabled and enabled in a loop: every response is the
// plugin's answer or the 503 gate, never a 500 from the host, and no
// goroutine is left behind. Not parallel, so that the goroutine count is
// this test's alone; run it under -race.
func TestConcurrentTrafficWhileTogglingPlugins(t *testing.T) {
	testdb.Each(t, func(t *testing.T, d testdb.Dialect) {
		before, _ := pluginhostGoroutines()
		t.Cleanup(func() {
			after, stacks := pluginhostGoroutines()
			if after > before {
				t.Errorf("%d goroutines left behind:\n%s", after-before, stacks)
			}
		})
		db, _ := testdb.Open(t, d)
		var ticks atomic.Int64
		ids := []string{"alpha", "beta", "gamma", "delta"}
		reg := registry(t,
			proofPlugin("alpha", &ticks),
			proofPlugin("beta", &ticks, "[dependencies]", `alpha = "^1.0"`),
			proofPlugin("gamma", &ticks),
			proofPlugin("delta", &ticks),
		)
		m, err := pluginhost.New(pluginhost.Config{DB: db, Registry: reg, Logger: discardLogger()})
		require.NoError(t, err)
		namers, err := pluginhost.DeclareExtensionPoint[namer](m, "proof.namers")
		require.NoError(t, err)
		require.NoError(t, m.Start(context.Background()))

		stop := make(chan struct{})
		var wg sync.WaitGroup
		var ok200, gated503 atomic.Int64
		bad := make(chan string, 100)
		for w := range 8 {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := ids[(w+i)%len(ids)]
					rec := serve(t, m.Handler(), "GET", "/api/plugin/"+id+"/who", "")
					switch {
					case rec.Code == http.StatusOK && rec.Body.String() == id:
						ok200.Add(1)
					case rec.Code == http.StatusServiceUnavailable && isGate(rec.Body.Bytes(), id):
						gated503.Add(1)
					default:
						select {
						case bad <- fmt.Sprintf("%s: %d %s", id, rec.Code, rec.Body.String()):
						default:
						}
					}
				}
			})
		}
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				pluginhost.Publish(context.Background(), m, tick{i})
				for _, p := range namers.Providers() {
					if p.Impl.Name() != p.Name {
						bad <- "provider " + p.Name + " answers " + p.Impl.Name()
					}
				}
			}
		})

		ctx := context.Background()
		for round := range 25 {
			for _, id := range []string{"alpha", "gamma"} {
				require.NoError(t, m.Disable(ctx, id), "round %d", round)
				require.NoError(t, m.Enable(ctx, id), "round %d", round)
			}
		}
		close(stop)
		wg.Wait()
		close(bad)
		for b := range bad {
			t.Error("unexpected response: " + b)
		}
		require.Positive(t, ok200.Load())
		require.Positive(t, gated503.Load(), "the toggling was seen by the traffic")
		require.Positive(t, ticks.Load())
		for _, st := range m.Status() {
			require.Equal(t, pluginhost.StateRunning, st.State, st.ID)
		}
		require.Len(t, namers.Providers(), 4)
		require.NoError(t, m.Shutdown(ctx))
	})
}

// isGate reports whether body is the 503 answer of plugin id's gate.
func isGate(body []byte, id string) bool {
	var b map[string]string
	return json.Unmarshal(body, &b) == nil && b["error"] == "plugin is not running" && b["plugin"] == id
}
