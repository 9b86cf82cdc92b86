package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/pluginhost/pluginhost"
	pluginotel "github.com/pluginhost/pluginhost/otel"
)

// telemetry is the host's OpenTelemetry: a tracer provider for the spans
// of plugin requests and hooks, and a meter provider whose metrics
// /metrics serves as Prometheus text. The tracer provider has no exporter:
// a real host gives it one (sdktrace.WithBatcher with an OTLP exporter,
// say) and the spans go there.
type telemetry struct {
	tp *sdktrace.TracerProvider
	mp *sdkmetric.MeterProvider
}

// newTelemetry makes the host's telemetry; opts configure its tracer
// provider (a test records the spans with sdktrace.WithSpanProcessor).
func newTelemetry(opts ...sdktrace.TracerProviderOption) *telemetry {
	return &telemetry{tp: sdktrace.NewTracerProvider(opts...)}
}

// configure makes the Manager of cfg start a span for each plugin request
// and each hook call.
func (t *telemetry) configure(cfg *pluginhost.Config) {
	cfg.Middleware = append(cfg.Middleware, pluginotel.Middleware(t.tp))
	cfg.HookObserver = pluginotel.HookObserver(t.tp)
}

// metricsHandler exports the metrics of m through the OpenTelemetry
// Prometheus exporter, on a registry of its own, and returns the handler
// that serves them as Prometheus text.
func (t *telemetry) metricsHandler(m *pluginhost.Manager) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(),
		otelprom.WithProducer(pluginotel.NewProducer(m)))
	if err != nil {
		return nil, err
	}
	t.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	if _, err := pluginotel.RegisterMetrics(m, t.mp); err != nil {
		return nil, err
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), nil
}

// shutdown stops the providers.
func (t *telemetry) shutdown(ctx context.Context) error {
	err := t.tp.Shutdown(ctx)
	if t.mp != nil {
		err = errors.Join(err, t.mp.Shutdown(ctx))
	}
	return err
}
