package quota

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the limiter's Prometheus collectors, all under
// simlookup_quota_* with a const label limiter="fleet"|"local".
type metrics struct {
	share       prometheus.Gauge
	members     prometheus.Gauge
	multiplier  prometheus.Gauge
	admitted    prometheus.Gauge
	fallback    prometheus.Gauge
	wait        prometheus.Histogram
	throttled   prometheus.Counter
	adjust      *prometheus.CounterVec
	coordErrors prometheus.Counter
}

func newMetrics(kind string) *metrics {
	cl := prometheus.Labels{"limiter": kind}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "simlookup", Subsystem: "quota", Name: name, Help: help, ConstLabels: cl})
	}
	return &metrics{
		share:      g("share_per_second", "Vendor requests per second this process may send now."),
		members:    g("members", "Live members of the fleet limiter as this process sees them (1 for a local limiter)."),
		multiplier: g("multiplier", "Fleet rate multiplier set by vendor throttling feedback (1 = the configured rate)."),
		admitted:   g("admitted", "1 once this member is admitted to send its share, 0 while joining or stopped."),
		fallback:   g("fallback", "1 while this member cannot coordinate and uses its fallback rate."),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "simlookup", Subsystem: "quota", Name: "wait_seconds",
			Help:        "Time spent in the limiter's Wait before a vendor attempt.",
			ConstLabels: cl, Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "simlookup", Subsystem: "quota", Name: "throttled_total",
			Help: "Vendor throttling answers (HTTP 429 / busy) reported to the limiter.", ConstLabels: cl,
		}),
		adjust: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "simlookup", Subsystem: "quota", Name: "adjustments_total",
			Help: "Changes of the rate multiplier made by this process, by direction (down|up).", ConstLabels: cl,
		}, []string{"direction"}),
		coordErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "simlookup", Subsystem: "quota", Name: "coordination_failures_total",
			Help: "Failed membership renewals or reads of the fleet's KV bucket.", ConstLabels: cl,
		}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.share, m.members, m.multiplier, m.admitted, m.fallback, m.wait, m.throttled, m.adjust, m.coordErrors} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return fmt.Errorf("quota: register metrics (one limiter per registry): %w", err)
			}
			return fmt.Errorf("quota: register metrics: %w", err)
		}
	}
	return nil
}
