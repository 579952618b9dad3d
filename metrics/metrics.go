// Package metrics owns drover's Prometheus metrics: one registry holding
// drover's own collectors and the Temporal SDK's worker and client metrics,
// which reach it through the SDK's tally bridge. Workflows and activities
// record through the SDK's replay-aware metrics handler
// (workflow.GetMetricsHandler, activity.GetMetricsHandler), so a replayed
// workflow never counts twice; the HTTP edges record here directly.
package metrics

import (
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
)

// sanitize is the SDK's Prometheus naming, but label values keep '-' and
// '.': app and region names have them, and a dashboard filtering on
// region="us-east" must find it.
var sanitize = func() tally.SanitizeOptions {
	o := sdktally.PrometheusSanitizeOptions
	o.ValueCharacters = tally.ValidCharacters{Ranges: tally.AlphanumericRange, Characters: []rune{'_', '-', '.'}}
	return o
}()

// Registry is a process's metrics.
type Registry struct {
	reg      *prometheus.Registry
	webhooks *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	scope    tally.Scope
	closer   io.Closer
}

// New makes a registry with the Go runtime's and the process's collectors.
func New() *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	r := &Registry{
		reg: reg,
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drover_webhooks_total",
			Help: "GitHub webhook deliveries by event and outcome (queued, ignored, duplicate, bad_signature, malformed, too_large, unavailable, error).",
		}, []string{"event", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "drover_webhook_duration_seconds",
			Help:    "Time to answer a GitHub webhook delivery, by event.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"event"}),
	}
	reg.MustRegister(r.webhooks, r.latency)
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer: reg,
		// Histograms, not summaries: they aggregate across replicas.
		DefaultTimerType:        tallyprom.HistogramTimerType,
		DefaultHistogramBuckets: []float64{.005, .01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900, 3600},
		OnRegisterError:         func(error) {},
	})
	r.scope, r.closer = tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sanitize,
	}, time.Second)
	return r
}

// Temporal is the metrics handler for the Temporal client and workers:
// the SDK's own metrics (task latencies, poller counts, schedule-to-start)
// and drover's, recorded in workflows and activities.
func (r *Registry) Temporal() client.MetricsHandler {
	return sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(r.scope))
}

// Handler serves the registry in Prometheus's text format.
func (r *Registry) Handler() http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{Registry: r.reg})
}

// Gather returns the registry's metrics, for tests.
func (r *Registry) Gather() (map[string]float64, error) {
	families, err := r.reg.Gather()
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[key] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out, nil
}

// Close flushes the Temporal scope.
func (r *Registry) Close() error { return r.closer.Close() }

// Webhooks is gin middleware that counts each webhook delivery by its
// X-GitHub-Event and how drover answered it. The outcome comes from the
// status code, which the webhook handler chooses for each case.
func (r *Registry) Webhooks() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		event := c.GetHeader("X-GitHub-Event")
		if event == "" || len(event) > 64 {
			event = "unknown"
		}
		r.webhooks.WithLabelValues(event, outcome(c.Writer.Status())).Inc()
		r.latency.WithLabelValues(event).Observe(time.Since(start).Seconds())
	}
}

// outcome names what a webhook status code means.
func outcome(code int) string {
	switch code {
	case http.StatusAccepted:
		return "queued"
	case http.StatusOK:
		return "ignored"
	case http.StatusUnauthorized:
		return "bad_signature"
	case http.StatusBadRequest:
		return "malformed"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusServiceUnavailable:
		return "unavailable"
	}
	return "status_" + strconv.Itoa(code)
}
