package worker

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	lookups        *prometheus.CounterVec // status
	attempts       prometheus.Counter
	retries        prometheus.Counter
	latency        prometheus.Histogram
	vendorErrors   *prometheus.CounterVec // kind, code
	limiterWait    prometheus.Histogram
	inflight       prometheus.Gauge
	pullSlots      prometheus.Gauge
	paused         prometheus.Gauge
	breaker        prometheus.Gauge
	resultsBlocked prometheus.Gauge
	pending        prometheus.Gauge
	ackPending     prometheus.Gauge
	duplicates     *prometheus.CounterVec // kind: redelivery, reused_request_id
	deadLetters    *prometheus.CounterVec // reason
}

// register registers c, or returns the collector already registered under
// its name (several workers in one process share their metrics).
func register[T prometheus.Collector](r prometheus.Registerer, c T) (T, error) {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(T); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("worker: register metrics: %w", err)
	}
	return c, nil
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	const ns = "simlookup_worker"
	var m metrics
	var errs []error
	reg := func(err error) { errs = append(errs, err) }
	var err error
	m.lookups, err = register(r, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "lookups_total",
		Help: "Results stored, by status (ok, failed, invalid)."}, []string{"status"}))
	reg(err)
	m.attempts, err = register(r, prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "attempts_total",
		Help: "Vendor calls made, retries and probes included."}))
	reg(err)
	m.retries, err = register(r, prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "retries_total",
		Help: "Vendor calls after the first of a delivery."}))
	reg(err)
	m.latency, err = register(r, prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "vendor_latency_seconds",
		Help: "Duration of vendor calls.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 13)}))
	reg(err)
	m.vendorErrors, err = register(r, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "vendor_errors_total",
		Help: "Failed vendor calls by kind and vendor code."}, []string{"kind", "code"}))
	reg(err)
	m.limiterWait, err = register(r, prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "limiter_wait_seconds",
		Help: "Time spent waiting on the rate limiter before a call.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}))
	reg(err)
	m.inflight, err = register(r, prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "in_flight",
		Help: "Requests pulled and not yet finished (acked or handed back)."}))
	reg(err)
	m.pullSlots, err = register(r, prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "pull_slots",
		Help: "Free slots requested by outstanding pulls: requests the server may still deliver to this process."}))
	reg(err)
	m.paused, err = register(r, prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "paused",
		Help: "1 while paused because the vendor refuses this deployment (credentials, signature, clock)."}))
	reg(err)
	m.breaker, err = register(r, prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "breaker_open",
		Help: "1 while the vendor looks down and pulling is limited to one request."}))
	reg(err)
	m.resultsBlocked, err = register(r, prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "results_blocked",
		Help: "1 while results cannot be stored (stream full, NATS unreachable); requests are held."}))
	reg(err)
	m.pending, err = register(r, prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "consumer_pending",
		Help: "Requests waiting in the stream for the worker consumer."}))
	reg(err)
	m.ackPending, err = register(r, prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "consumer_ack_pending",
		Help: "Requests delivered and not yet acked (in flight or waiting for a delayed redelivery)."}))
	reg(err)
	m.duplicates, err = register(r, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "duplicate_results_total",
		Help: "Results the stream already had: redelivery (expected) or reused_request_id (a publisher reused a request_id)."}, []string{"kind"}))
	reg(err)
	m.deadLetters, err = register(r, prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "dead_letters_total",
		Help: "Dead letters written, by reason."}, []string{"reason"}))
	reg(err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &m, nil
}
