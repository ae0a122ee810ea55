package sink

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the sink's Prometheus metrics (all prefixed simlookup_sink_).
type metrics struct {
	rows           prometheus.Counter
	files          prometheus.Counter
	bytes          prometheus.Counter
	rejected       prometheus.Counter
	writeErrors    *prometheus.CounterVec
	missed         prometheus.Counter
	commitSeconds  prometheus.Histogram
	lastCommit     prometheus.Gauge
	batchAge       prometheus.Gauge
	batchRows      prometheus.Gauge
	committedSeq   prometheus.Gauge
	lagMessages    prometheus.Gauge
	lagSeconds     prometheus.Gauge
	streamFirstSeq prometheus.Gauge
	ready          prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "simlookup", "sink"
	m := &metrics{
		rows: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "rows_total",
			Help: "Rows committed to final Parquet files."}),
		files: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "files_total",
			Help: "Parquet files committed."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "bytes_total",
			Help: "Bytes of Parquet files committed."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "undecodable_events_total",
			Help: "Stream messages that were not usable result events (written with sink_error set)."}),
		writeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "write_errors_total",
			Help: "Failed commit steps (each is retried with backoff; nothing is committed by a failed step)."}, []string{"step"}),
		missed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "missed_sequences_total",
			Help: "Results that left the stream (MaxAge, MaxBytes or deletion) before the sink wrote them: data loss."}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub, Name: "commit_duration_seconds",
			Help: "Time to close, fsync, rename and checkpoint one file.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)}),
		lastCommit: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "last_commit_timestamp_seconds",
			Help: "Unix time of the last committed file."}),
		batchAge: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "batch_age_seconds",
			Help: "Age of the open (uncommitted) batch; 0 when none is open."}),
		batchRows: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "batch_rows",
			Help: "Rows in the open batch."}),
		committedSeq: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "committed_sequence",
			Help: "Last results-stream sequence committed to a final file."}),
		lagMessages: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "lag_messages",
			Help: "Results stream last sequence minus the committed sequence."}),
		lagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "lag_seconds",
			Help: "Age of the oldest uncommitted result; alert well below the stream's MaxAge."}),
		streamFirstSeq: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "stream_first_sequence",
			Help: "First sequence still in the results stream."}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "ready",
			Help: "1 when the sink is consuming and its writes succeed."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.rows, m.files, m.bytes, m.rejected, m.writeErrors, m.missed, m.commitSeconds,
		m.lastCommit, m.batchAge, m.batchRows, m.committedSeq, m.lagMessages, m.lagSeconds, m.streamFirstSeq, m.ready} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
