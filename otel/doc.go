// Package pluginotel exports the per-plugin metrics of a
// [pluginhost.Manager] as OpenTelemetry metrics, and starts OpenTelemetry
// spans for the requests plugins serve and for their lifecycle hooks.
//
// The root package pluginhost does not import OpenTelemetry: a host that
// does not import this package builds none of it.
//
// Metrics come in two parts, both read from [pluginhost.Manager.Metrics]
// when a reader collects:
//
//   - [RegisterMetrics] registers observable counters and gauges on any
//     [metric.MeterProvider]: requests, responses by route and status class,
//     requests in flight, rejected requests, panics, overruns, breaker
//     trips, hook errors, events and extension calls.
//   - [NewProducer] returns an [sdkmetric.Producer] of the latency
//     histograms, per route (http.server.request.duration) and per hook
//     (pluginhost.plugin.hook.duration), with the Manager's own buckets
//     ([pluginhost.LatencyBuckets]): OpenTelemetry has no observable
//     histogram, and a producer hands the reader the Manager's counts as
//     they are. Give it to the reader with sdkmetric.WithProducer, or to the
//     Prometheus exporter with its WithProducer option.
//
// Spans: [Middleware] goes in pluginhost.Config.Middleware and starts a
// server span per plugin request; [HookObserver] goes in
// pluginhost.Config.HookObserver and starts a span per hook call.
//
// Attributes: plugin.id (the plugin's id), http.route (the full route
// template, /api/plugin/<id><pattern>; absent for a request no route
// served), http.response.status_class ("1xx" … "5xx"), pluginhost.hook (the
// hook's name, as [pluginhost.HookMetrics] names it).
package pluginotel

import (
	"strings"

	"go.opentelemetry.io/otel/attribute"

	"github.com/pluginhost/pluginhost"
)

// ScopeName is the instrumentation scope of the meters and tracers of this
// package, and of its producer's metrics.
const ScopeName = "github.com/pluginhost/pluginhost/otel"

// The attribute keys this package sets.
const (
	// AttrPluginID is the id of the plugin.
	AttrPluginID = attribute.Key("plugin.id")
	// AttrRoute is the full route template the request matched (OTel's
	// semantic convention http.route).
	AttrRoute = attribute.Key("http.route")
	// AttrStatusClass is the class of the response's status code: "1xx",
	// "2xx", "3xx", "4xx" or "5xx".
	AttrStatusClass = attribute.Key("http.response.status_class")
	// AttrHook is the name of a lifecycle hook: "seed", "init", "routes",
	// "shutdown", "install", "upgrade", "seed once", "declare tables and
	// migrations".
	AttrHook = attribute.Key("pluginhost.hook")
	// AttrMethod is the request's method (OTel's http.request.method).
	AttrMethod = attribute.Key("http.request.method")
	// AttrStatusCode is the response's status code (OTel's
	// http.response.status_code).
	AttrStatusCode = attribute.Key("http.response.status_code")
)

// fullRoute returns the route template, under the Manager's path prefix,
// of pattern, a pattern of plugin id's router.
func fullRoute(id, pattern string) string {
	return strings.TrimSuffix(pluginhost.PluginPathPrefix, "/") + "/" + id + pattern
}
