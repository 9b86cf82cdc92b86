package pluginotel

import (
	"context"
	"errors"
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/pluginhost/pluginhost"
)

// The names of the metrics. Where OpenTelemetry's semantic conventions
// name one, it is theirs; the others are pluginhost.plugin.*. The
// Prometheus exporter turns dots into underscores and adds _total to
// counters and the unit to histograms: pluginhost_plugin_requests_total,
// http_server_request_duration_seconds.
const (
	// MetricRequests counts the requests a plugin's router served
	// (PluginMetrics.Requests), by plugin.id.
	MetricRequests = "pluginhost.plugin.requests"
	// MetricResponses counts them by plugin.id, http.route (absent for
	// the requests no route served) and http.response.status_class.
	MetricResponses = "pluginhost.plugin.responses"
	// MetricActiveRequests is the number of a plugin's requests being
	// served (PluginMetrics.InFlight), by plugin.id.
	MetricActiveRequests = "http.server.active_requests"
	// MetricRejected counts the requests answered 503 past
	// Config.MaxInFlight, by plugin.id.
	MetricRejected = "pluginhost.plugin.rejected"
	// MetricPanics counts the panics recovered in a plugin's code.
	MetricPanics = "pluginhost.plugin.panics"
	// MetricOverruns counts the calls into a plugin's code that were
	// abandoned.
	MetricOverruns = "pluginhost.plugin.overruns"
	// MetricBreakerTrips counts the times a plugin's circuit breaker
	// tripped.
	MetricBreakerTrips = "pluginhost.plugin.breaker_trips"
	// MetricHookErrors counts the hook calls that failed, by plugin.id
	// and pluginhost.hook.
	MetricHookErrors = "pluginhost.plugin.hook.errors"
	// MetricEventsPublished, MetricEventsDelivered, MetricEventsFailed and
	// MetricEventsDropped are EventMetrics' counters, by plugin.id.
	MetricEventsPublished = "pluginhost.plugin.events.published"
	MetricEventsDelivered = "pluginhost.plugin.events.delivered"
	MetricEventsFailed    = "pluginhost.plugin.events.failed"
	MetricEventsDropped   = "pluginhost.plugin.events.dropped"
	// MetricExtensionCalls and MetricExtensionErrors are
	// ExtensionMetrics' counters, by plugin.id.
	MetricExtensionCalls  = "pluginhost.plugin.extension.calls"
	MetricExtensionErrors = "pluginhost.plugin.extension.errors"

	// MetricRequestDuration is the latency histogram of a plugin's
	// requests in seconds, by plugin.id and http.route (absent for the
	// requests no route served); from [NewProducer].
	MetricRequestDuration = "http.server.request.duration"
	// MetricHookDuration is the duration histogram of a plugin's hook
	// calls in seconds, by plugin.id and pluginhost.hook; from
	// [NewProducer].
	MetricHookDuration = "pluginhost.plugin.hook.duration"
)

// statusClasses are the values of http.response.status_class, in the
// order of StatusClasses' fields.
var statusClasses = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

func classCounts(s pluginhost.StatusClasses) [5]uint64 {
	return [5]uint64{s.Informational, s.Success, s.Redirection, s.ClientError, s.ServerError}
}

// RegisterMetrics registers, on a meter of mp, the observable counters and
// gauges of the metrics of m's plugins (the Metric* constants but the two
// histograms, which [NewProducer] produces), all observed from one call of
// m.Metrics() per collection. Unregister the returned Registration to stop
// observing m; the instruments stay. Zero counters are observed too, so
// that every series starts at 0.
func RegisterMetrics(m *pluginhost.Manager, mp metric.MeterProvider) (metric.Registration, error) {
	if m == nil || mp == nil {
		return nil, errors.New("pluginotel.RegisterMetrics: nil Manager or MeterProvider")
	}
	meter := mp.Meter(ScopeName)
	var errs []error
	counter := func(name, unit, desc string) metric.Int64ObservableCounter {
		c, err := meter.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
		return c
	}
	requests := counter(MetricRequests, "{request}", "Requests the plugin's router served.")
	responses := counter(MetricResponses, "{response}", "Responses of the plugin's router, by route and status class.")
	rejected := counter(MetricRejected, "{request}", "Requests answered 503 because the plugin served its most requests in flight.")
	panics := counter(MetricPanics, "{panic}", "Panics recovered in the plugin's code.")
	overruns := counter(MetricOverruns, "{call}", "Calls into the plugin's code abandoned past their bound.")
	trips := counter(MetricBreakerTrips, "{trip}", "Times the plugin's circuit breaker tripped.")
	hookErrors := counter(MetricHookErrors, "{error}", "Calls of the plugin's hooks that failed, panicked or were abandoned.")
	published := counter(MetricEventsPublished, "{event}", "Events the plugin published.")
	delivered := counter(MetricEventsDelivered, "{event}", "Calls of the plugin's event handlers.")
	failed := counter(MetricEventsFailed, "{event}", "Calls of the plugin's event handlers that failed.")
	dropped := counter(MetricEventsDropped, "{event}", "Events the plugin's asynchronous subscriptions dropped.")
	extCalls := counter(MetricExtensionCalls, "{call}", "Calls into the plugin's extension providers.")
	extErrors := counter(MetricExtensionErrors, "{error}", "Calls into the plugin's extension providers that failed.")
	active, err := meter.Int64ObservableUpDownCounter(MetricActiveRequests, metric.WithUnit("{request}"),
		metric.WithDescription("Requests of the plugin being served."))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	return meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, pm := range m.Metrics() {
			plugin := AttrPluginID.String(pm.Plugin)
			byPlugin := metric.WithAttributeSet(attribute.NewSet(plugin))
			o.ObserveInt64(requests, toInt64(pm.Requests), byPlugin)
			o.ObserveInt64(active, pm.InFlight, byPlugin)
			o.ObserveInt64(rejected, toInt64(pm.Rejected), byPlugin)
			o.ObserveInt64(panics, toInt64(pm.Panics), byPlugin)
			o.ObserveInt64(overruns, toInt64(pm.Overruns), byPlugin)
			o.ObserveInt64(trips, toInt64(pm.BreakerTrips), byPlugin)
			o.ObserveInt64(published, toInt64(pm.Events.Published), byPlugin)
			o.ObserveInt64(delivered, toInt64(pm.Events.Delivered), byPlugin)
			o.ObserveInt64(failed, toInt64(pm.Events.Failed), byPlugin)
			o.ObserveInt64(dropped, toInt64(pm.Events.Dropped), byPlugin)
			o.ObserveInt64(extCalls, toInt64(pm.Extensions.Calls), byPlugin)
			o.ObserveInt64(extErrors, toInt64(pm.Extensions.Errors), byPlugin)
			observeClasses := func(s pluginhost.StatusClasses, attrs ...attribute.KeyValue) {
				for i, n := range classCounts(s) {
					set := attribute.NewSet(append(attrs, AttrStatusClass.String(statusClasses[i]))...)
					o.ObserveInt64(responses, toInt64(n), metric.WithAttributeSet(set))
				}
			}
			for _, rm := range pm.Routes {
				observeClasses(rm.Responses, plugin, AttrRoute.String(fullRoute(pm.Plugin, rm.Pattern)))
			}
			observeClasses(pm.Unmatched.Responses, plugin)
			for _, hm := range pm.Hooks {
				o.ObserveInt64(hookErrors, toInt64(hm.Errors),
					metric.WithAttributeSet(attribute.NewSet(plugin, AttrHook.String(hm.Hook))))
			}
		}
		return nil
	}, requests, responses, active, rejected, panics, overruns, trips, hookErrors,
		published, delivered, failed, dropped, extCalls, extErrors)
}

// toInt64 converts a counter, saturating (a uint64 counter does not reach
// 2^63 in practice).
func toInt64(n uint64) int64 {
	if n > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(n)
}

// producer is the sdkmetric.Producer of NewProducer.
type producer struct {
	m     *pluginhost.Manager
	start time.Time
}

// NewProducer returns an [sdkmetric.Producer] of the latency histograms of
// m's plugins: [MetricRequestDuration] per route (and for the requests no
// route served, without http.route) and [MetricHookDuration] per hook, as
// cumulative explicit-bucket histograms in seconds with the bounds of
// [pluginhost.LatencyBuckets] and the counts, count and sum of
// m.Metrics(), read when the reader collects. Their start time is the
// time NewProducer was called (the Manager's counters may have begun
// earlier). They have no minimum and maximum: the Manager keeps none.
func NewProducer(m *pluginhost.Manager) sdkmetric.Producer {
	return &producer{m: m, start: time.Now()}
}

// Produce implements sdkmetric.Producer.
func (p *producer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	now := time.Now()
	var requests, hooks []metricdata.HistogramDataPoint[float64]
	point := func(h pluginhost.Histogram, attrs ...attribute.KeyValue) metricdata.HistogramDataPoint[float64] {
		return metricdata.HistogramDataPoint[float64]{
			Attributes:   attribute.NewSet(attrs...),
			StartTime:    p.start,
			Time:         now,
			Count:        h.Count,
			Bounds:       h.Bounds,
			BucketCounts: h.Counts,
			Sum:          h.Sum,
		}
	}
	for _, pm := range p.m.Metrics() {
		plugin := AttrPluginID.String(pm.Plugin)
		for _, rm := range pm.Routes {
			requests = append(requests, point(rm.Latency, plugin, AttrRoute.String(fullRoute(pm.Plugin, rm.Pattern))))
		}
		requests = append(requests, point(pm.Unmatched.Latency, plugin))
		for _, hm := range pm.Hooks {
			hooks = append(hooks, point(hm.Duration, plugin, AttrHook.String(hm.Hook)))
		}
	}
	return []metricdata.ScopeMetrics{{
		Scope: instrumentation.Scope{Name: ScopeName},
		Metrics: []metricdata.Metrics{
			{
				Name:        MetricRequestDuration,
				Description: "Duration of the requests the plugin's router served.",
				Unit:        "s",
				Data:        metricdata.Histogram[float64]{DataPoints: requests, Temporality: metricdata.CumulativeTemporality},
			},
			{
				Name:        MetricHookDuration,
				Description: "Duration of the calls of the plugin's lifecycle hooks.",
				Unit:        "s",
				Data:        metricdata.Histogram[float64]{DataPoints: hooks, Temporality: metricdata.CumulativeTemporality},
			},
		},
	}}, nil
}
