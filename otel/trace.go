package pluginotel

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pluginhost/pluginhost"
)

// Middleware returns a middleware for pluginhost.Config.Middleware that
// starts a server span of tp for each request a plugin serves. The span is
// named "<METHOD> <route>" ("GET /api/plugin/notes/notes/{id}"), or
// "<METHOD>" for a request no route served, and has the attributes
// plugin.id, http.request.method, http.route (when a route served it) and
// http.response.status_code; a 5xx response, or a panic in the handler
// (which the Manager answers 500), sets its status to Error. The handler's
// context carries the span. A remote parent is taken from the request's
// headers with the global propagator (otel.GetTextMapPropagator, which
// propagates nothing until the host sets one).
func Middleware(tp trace.TracerProvider) func(http.Handler) http.Handler {
	tracer := tp.Tracer(ScopeName)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := pluginhost.PluginID(r.Context())
			ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx, span := tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(AttrPluginID.String(id), AttrMethod.String(r.Method)))
			sw := &statusWriter{w: w}
			returned := false
			defer func() {
				code := sw.status
				switch {
				case code == 0 && !returned:
					code = http.StatusInternalServerError // the Manager's recoverer answers it
				case code == 0:
					code = http.StatusOK
				}
				if rctx := chi.RouteContext(ctx); rctx != nil {
					if pattern := rctx.RoutePattern(); pattern != "" {
						route := fullRoute(id, pattern)
						span.SetName(r.Method + " " + route)
						span.SetAttributes(AttrRoute.String(route))
					}
				}
				span.SetAttributes(AttrStatusCode.Int(code))
				switch {
				case !returned:
					span.SetStatus(codes.Error, "handler panicked")
				case code >= 500:
					span.SetStatus(codes.Error, strconv.Itoa(code))
				}
				span.End()
			}()
			next.ServeHTTP(sw, r.WithContext(ctx))
			returned = true
		})
	}
}

// HookObserver returns a pluginhost.Config.HookObserver that starts a span
// of tp named "pluginhost.hook <hook>" ("pluginhost.hook init") around
// each hook call, with the attributes plugin.id and pluginhost.hook, in the
// context of the operation that calls the hook (Start, Enable, …); the
// hook's context carries it. A hook that fails records its error on the
// span and sets its status to Error.
func HookObserver(tp trace.TracerProvider) func(ctx context.Context, plugin, hook string) (context.Context, func(error)) {
	tracer := tp.Tracer(ScopeName)
	return func(ctx context.Context, plugin, hook string) (context.Context, func(error)) {
		ctx, span := tracer.Start(ctx, "pluginhost.hook "+hook,
			trace.WithAttributes(AttrPluginID.String(plugin), AttrHook.String(hook)))
		return ctx, func(err error) {
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}
	}
}

// statusWriter notes the status code written. Flush (FlushError), Hijack
// and ReadFrom go to the writer it wraps, and Unwrap returns it, for
// http.ResponseController.
type statusWriter struct {
	w      http.ResponseWriter
	status int
}

func (w *statusWriter) Header() http.Header { return w.w.Header() }

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.w.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.w.Write(p)
}

// Unwrap returns the writer it wraps.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.w }

// Flush implements http.Flusher; it does nothing when the wrapped writer
// cannot flush.
func (w *statusWriter) Flush() { _ = w.FlushError() }

// FlushError flushes the wrapped writer, as http.ResponseController.Flush
// does, with its error (wrapping http.ErrNotSupported when it cannot).
func (w *statusWriter) FlushError() error {
	err := http.NewResponseController(w.w).Flush()
	if w.status == 0 && !errors.Is(err, http.ErrNotSupported) {
		w.status = http.StatusOK // flushing wrote the header
	}
	return err
}

// Hijack implements http.Hijacker.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.w).Hijack()
	if err == nil && w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return conn, rw, err
}

// ReadFrom implements io.ReaderFrom, keeping the wrapped writer's.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if rf, ok := w.w.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w.w}, r)
}
