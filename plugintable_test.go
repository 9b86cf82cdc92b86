package pluginhost_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/stretchr/testify/require"

	"github.com/pluginhost/pluginhost"
)

// signalHandler is a slog handler that sends the message of every record
// containing match to seen, and passes every record on to next.
type signalHandler struct {
	next  slog.Handler
	match string
	seen  chan<- string
}

func (h signalHandler) Enabled(ctx context.Context, l slog.Level) bool { return true }
func (h signalHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, h.match) {
		select {
		case h.seen <- r.Message:
		default:
		}
	}
	return h.next.Handle(ctx, r)
}
func (h signalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return signalHandler{h.next.WithAttrs(as), h.match, h.seen}
}
func (h signalHandler) WithGroup(g string) slog.Handler {
	return signalHandler{h.next.WithGroup(g), h.match, h.seen}
}

// A RegisterRoutes that overran its timeout finishes after the plugin was
// failed and enabled again: what it registered belongs to an older
// generation of the plugin and is discarded, so the new run's routes stay
// served, even after the routing table is rebuilt.
func TestStaleRoutesAreDiscarded(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		release := make(chan struct{})
		var calls atomic.Int32
		slow := &fake{manifest: manifest("slow", "1.0.0"), routes: func(r chi.Router, _ *pluginhost.Host) {
			if calls.Add(1) == 1 {
				<-release // ignores its deadline, as a buggy hook would
				r.Get("/old", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("old")) })
				return
			}
			r.Get("/new", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("new")) })
		}}
		other := &fake{manifest: manifest("other", "1.0.0")}
		cfg := e.config(slow, other)
		cfg.HookTimeout = 100 * time.Millisecond
		discarded := make(chan string, 1)
		cfg.Logger = slog.New(signalHandler{next: cfg.Logger.Handler(), match: "discarding", seen: discarded})
		m := e.start(cfg)
		require.Equal(t, pluginhost.StateFailed, status(t, m, "slow").State)
		require.Contains(t, status(t, m, "slow").Reason, "routes did not return within Config.HookTimeout")

		require.NoError(t, m.Enable(context.Background(), "slow"))
		require.Equal(t, "new", serve(t, m.Handler(), "GET", "/api/plugin/slow/new", "").Body.String())

		close(release) // the first RegisterRoutes now returns, two transitions late
		receiveWithin(t, discarded, 5*time.Second)
		require.NoError(t, m.Disable(context.Background(), "other")) // rebuilds the routing table

		require.Equal(t, "new", serve(t, m.Handler(), "GET", "/api/plugin/slow/new", "").Body.String())
		require.Equal(t, http.StatusNotFound, serve(t, m.Handler(), "GET", "/api/plugin/slow/old", "").Code)
		require.Equal(t, []pluginhost.RouteInfo{{Method: "GET", Pattern: "/api/plugin/slow/new", Plugin: "slow"}}, status(t, m, "slow").Routes)
	})
}

// A Host is bound to one run of its plugin: once the plugin has been
// stopped and started again, the Host of the earlier run (kept by a
// goroutine that run left behind) can neither provide to an extension
// point nor subscribe, while the current run's Host can.
func TestHostOfAnEarlierRunInstallsNothing(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		hosts := make(chan *pluginhost.Host, 2)
		p := &fake{manifest: manifest("p", "1.0.0"), init: func(_ context.Context, h *pluginhost.Host) error {
			hosts <- h
			return nil
		}}
		cfg := e.config(p)
		m, err := pluginhost.New(cfg)
		require.NoError(t, err)
		point, err := pluginhost.DeclareExtensionPoint[fmt.Stringer](m, "names")
		require.NoError(t, err)
		require.NoError(t, m.Start(context.Background()))
		t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
		first := <-hosts

		require.NoError(t, m.Disable(context.Background(), "p"))
		require.NoError(t, m.Enable(context.Background(), "p"))
		second := <-hosts

		err = pluginhost.Provide[fmt.Stringer](first, "names", "stale", run("first"))
		require.ErrorContains(t, err, "earlier run")
		pluginhost.Subscribe(first, func(context.Context, pluginhost.SettingChanged) error { return nil })
		require.Contains(t, e.logs.String(), "event subscription ignored: it was made through the Host of an earlier run of the plugin")

		require.NoError(t, pluginhost.Provide[fmt.Stringer](second, "names", "fresh", run("second")))
		got, ok := point.Get("fresh")
		require.True(t, ok)
		require.Equal(t, "second", got.String())
		_, ok = point.Get("stale")
		require.False(t, ok)
	})
}

// run is a fmt.Stringer naming a run.
type run string

func (r run) String() string { return string(r) }

// Status says since when a plugin is in its state: every transition
// stamps it.
func TestStatusSince(t *testing.T) {
	t.Parallel()
	eachEnv(t, func(t *testing.T, e *env) {
		before := time.Now()
		m := e.start(e.config(&fake{manifest: manifest("p", "1.0.0")}))
		started := status(t, m, "p").Since
		require.False(t, started.Before(before), "running since %s, before Start began at %s", started, before)

		require.NoError(t, m.Disable(context.Background(), "p"))
		st := status(t, m, "p")
		require.Equal(t, pluginhost.StateDisabled, st.State)
		require.True(t, st.Since.After(started), "disabled since %s, not after running since %s", st.Since, started)
	})
}
