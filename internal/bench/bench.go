// Package bench is `simlookup bench`: it measures simlookup against the
// ceilings of its own parts, in one run on one machine, and prints a table
// (and, with Config.JSONPath, writes the same figures as JSON).
//
// Everything runs locally: an embedded JetStream server (internal/natstest,
// fsync always, as production should be configured), the fake vendor API
// (worker/eiot/eiottest) with zero latency served in-process, and the real
// worker and sink as subprocesses of the simlookup binary (Config.Exe), so
// that each one's peak RSS (VmHWM) and CPU time come from /proc.
//
// What is measured:
//
//   - End to end: Count requests published → result events → Parquet rows,
//     no rate limit; lookups per second from the first publish to the last
//     row committed. Measured on a server with NATS's default (lazy) fsync,
//     which shows simlookup's own cost, and again (Count/5 lookups) on one
//     with fsync on every write, as production should run: there JetStream's
//     fsyncs dominate.
//   - Ceilings, in the same run: raw concurrent HTTP calls (the vendor
//     client, Concurrency at once) to the same fake; raw JetStream publish +
//     consume of Count messages on the same servers; raw Parquet rows/s with
//     the sink's writer and row type. The ratio end-to-end / slowest ceiling
//     (with the same fsync setting) says how much the pipeline costs on top
//     of its slowest part. One lookup writes two stream messages (request,
//     result) and deletes one, so against the JetStream ceiling a ratio near
//     0.5 is the most to expect.
//   - Quota accuracy at Rate with Burst (fsync always), for one worker
//     process and for QuotaWorkers processes sharing the fleet limiter:
//     vendor calls per second achieved / Rate over Duration, and the largest
//     sliding 1-second window of arrivals at the fake (SPEC: ≤ Rate + Burst);
//     then the request-to-result latency (p50/p99) at 80% of Rate offered.
//   - Peak RSS and CPU seconds per 1,000 lookups of the worker and the sink
//     (from the end-to-end run).
//   - With Backlog: BacklogCount queued requests worked for BacklogDuration
//     with the RSS of the worker and the sink sampled every second.
//
// Run is not safe to call concurrently with itself (it uses fixed stream names
// on a server of its own, but shares the machine's CPUs).
package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// Config configures Run. The zero value of each field gives the default
// documented on it.
type Config struct {
	// Count is the number of lookups of the end-to-end run and of each
	// ceiling. Default 20,000.
	Count int
	// Rate is the quota run's --rate (calls per second). Default 200.
	Rate float64
	// Burst is the quota run's --burst. Default 5.
	Burst int
	// Duration of each quota run. Default 30s.
	Duration time.Duration
	// QuotaWorkers is the number of worker processes of the second quota
	// run (the first has one). Default 3; 1 skips the second run.
	QuotaWorkers int
	// Concurrency is the worker's --concurrency in the end-to-end run and
	// the raw HTTP ceiling's parallelism. Default 64.
	Concurrency int
	// JSONPath, if set, is where the report is written as JSON.
	JSONPath string
	// Backlog adds the backlog run (not part of CI).
	Backlog bool
	// BacklogCount is the backlog's size. Default 1,000,000.
	BacklogCount int
	// BacklogDuration is how long the backlog is worked. Default 60s.
	BacklogDuration time.Duration
	// Exe is the simlookup binary run as worker and sink. Default: the
	// running executable.
	Exe string
	// WorkDir keeps the logs, the NATS store and the Parquet output.
	// Default: a temporary directory, removed at the end unless Run fails.
	WorkDir string
	// Skip names phases to leave out: "e2e", "ceilings", "quota", "latency".
	Skip []string
	// Logger gets progress lines. Default: discard.
	Logger *slog.Logger
}

// Defaults.
const (
	DefaultCount           = 20_000
	DefaultRate            = 200
	DefaultBurst           = 5
	DefaultDuration        = 30 * time.Second
	DefaultQuotaWorkers    = 3
	DefaultConcurrency     = 64
	DefaultBacklogCount    = 1_000_000
	DefaultBacklogDuration = 60 * time.Second
)

// ErrConfig is wrapped by every configuration error of Run.
var ErrConfig = errors.New("bench: invalid config")

func (c Config) withDefaults() (Config, error) {
	c.Count = cmp.Or(c.Count, DefaultCount)
	c.Rate = cmp.Or(c.Rate, DefaultRate)
	c.Burst = cmp.Or(c.Burst, DefaultBurst)
	c.Duration = cmp.Or(c.Duration, DefaultDuration)
	c.QuotaWorkers = cmp.Or(c.QuotaWorkers, DefaultQuotaWorkers)
	c.Concurrency = cmp.Or(c.Concurrency, DefaultConcurrency)
	c.BacklogCount = cmp.Or(c.BacklogCount, DefaultBacklogCount)
	c.BacklogDuration = cmp.Or(c.BacklogDuration, DefaultBacklogDuration)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.Count < 100:
		return c, fmt.Errorf("%w: count %d: at least 100", ErrConfig, c.Count)
	case c.Rate <= 0:
		return c, fmt.Errorf("%w: rate %v: must be positive", ErrConfig, c.Rate)
	case c.Burst < 1:
		return c, fmt.Errorf("%w: burst %d: at least 1", ErrConfig, c.Burst)
	case c.Duration < 2*time.Second:
		return c, fmt.Errorf("%w: duration %s: at least 2s", ErrConfig, c.Duration)
	case c.QuotaWorkers < 1, c.Concurrency < 1, c.BacklogCount < 1, c.BacklogDuration < time.Second:
		return c, fmt.Errorf("%w: workers, concurrency and backlog settings must be positive", ErrConfig)
	}
	if c.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return c, fmt.Errorf("%w: no simlookup executable: %v", ErrConfig, err)
		}
		c.Exe = exe
	}
	return c, nil
}

func (c Config) skip(phase string) bool {
	for _, s := range c.Skip {
		if s == phase {
			return true
		}
	}
	return false
}

// Report is everything Run measured. Rates are per second.
type Report struct {
	Machine  Machine   `json:"machine"`
	Started  time.Time `json:"started"`
	Seconds  float64   `json:"seconds"`
	Count    int       `json:"count"`
	EndToEnd *EndToEnd `json:"end_to_end,omitempty"`
	// EndToEndSync is the same on a server with fsync on every write.
	EndToEndSync *EndToEnd `json:"end_to_end_fsync_always,omitempty"`
	Ceilings     *Ceilings `json:"ceilings,omitempty"`
	Quota        []Quota   `json:"quota,omitempty"`
	Latency      *Latency  `json:"latency,omitempty"`
	Processes    []Process `json:"processes,omitempty"`
	Backlog      *Backlog  `json:"backlog,omitempty"`
	Notes        []string  `json:"notes,omitempty"`
}

// Machine says where the figures come from.
type Machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
}

// EndToEnd is publish → result event → Parquet row with no rate limit.
type EndToEnd struct {
	Lookups     int     `json:"lookups"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"per_second"`
	Concurrency int     `json:"concurrency"`
	// Ratio is PerSecond / the slowest ceiling measured with the same
	// server setting.
	Ratio float64 `json:"ratio_to_slowest_ceiling"`
}

// Ceilings are the raw rates of the stages, measured in the same run.
type Ceilings struct {
	HTTP      float64 `json:"http_calls_per_second"`
	JetStream float64 `json:"jetstream_pub_consume_per_second"`
	// JetStreamSync is the same on a server with fsync on every write.
	JetStreamSync float64 `json:"jetstream_pub_consume_fsync_always_per_second"`
	Parquet       float64 `json:"parquet_rows_per_second"`
	Slowest       string  `json:"slowest"`
}

func (c *Ceilings) slowest() (string, float64) {
	name, v := "http", c.HTTP
	if c.JetStream < v {
		name, v = "jetstream", c.JetStream
	}
	if c.Parquet < v {
		name, v = "parquet", c.Parquet
	}
	return name, v
}

// slowestSync is slowest with the fsync-always JetStream ceiling.
func (c *Ceilings) slowestSync() (string, float64) {
	cc := *c
	cc.JetStream = c.JetStreamSync
	return cc.slowest()
}

// Quota is one quota-accuracy run.
type Quota struct {
	Workers int     `json:"workers"`
	Rate    float64 `json:"rate"`
	Burst   int     `json:"burst"`
	Seconds float64 `json:"seconds"`
	// Calls is the number of vendor calls in the measured window: Duration
	// after a 2-second warm-up from the first call.
	Calls    int     `json:"calls"`
	Achieved float64 `json:"achieved_per_second"`
	// AchievedRatio is Achieved / Rate (SPEC: ≥ 0.98).
	AchievedRatio float64 `json:"achieved_ratio"`
	// MaxWindow is the largest number of calls in any sliding 1-second
	// window of arrivals at the fake, warm-up included (SPEC: ≤ Rate + Burst).
	MaxWindow int `json:"max_1s_window"`
	Bound     int `json:"bound"`
	// MaxWindowAt is when (seconds after the first call) the largest
	// window starts; PerSecond counts the calls in each second.
	MaxWindowAt float64 `json:"max_window_at_s"`
	PerSecond   []int   `json:"calls_per_second"`
	// Limiter is the worker's --limiter.
	Limiter string `json:"limiter"`
}

// Latency is request-to-result latency (the requests stream's store time to
// the results stream's store time) at an offered load below the quota.
type Latency struct {
	Offered float64 `json:"offered_per_second"`
	Results int     `json:"results"`
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	Maxms   float64 `json:"max_ms"`
}

// Process is the resource use of one subprocess in the end-to-end run.
type Process struct {
	Name       string  `json:"name"`
	PeakRSSMiB float64 `json:"peak_rss_mib"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUPer1000 is CPU seconds per 1,000 lookups.
	CPUPer1000 float64 `json:"cpu_seconds_per_1000"`
}

// Backlog is the memory run over a large queue.
type Backlog struct {
	Queued    int             `json:"queued"`
	Seconds   float64         `json:"seconds"`
	Processed int             `json:"processed"`
	Samples   []BacklogSample `json:"samples"`
	// Worker and sink RSS, MiB: first sample after warm-up, minimum, maximum, last.
	WorkerRSS RSSRange `json:"worker_rss_mib"`
	SinkRSS   RSSRange `json:"sink_rss_mib"`
}

// BacklogSample is one RSS sample.
type BacklogSample struct {
	T         float64 `json:"t"`
	WorkerMiB float64 `json:"worker_mib"`
	SinkMiB   float64 `json:"sink_mib"`
}

// RSSRange summarises RSS samples.
type RSSRange struct {
	First, Min, Max, Last float64
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// Run measures as the package doc says, prints the table to stdout and
// writes the JSON report if cfg.JSONPath is set. It returns the first
// failure; the report printed so far is kept.
func Run(ctx context.Context, cfg Config, stdout io.Writer) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	r, err := run(ctx, cfg)
	if r != nil {
		printTable(stdout, r)
		if cfg.JSONPath != "" {
			b, jerr := json.MarshalIndent(r, "", "  ")
			if jerr == nil {
				jerr = os.WriteFile(cfg.JSONPath, append(b, '\n'), 0o644)
			}
			if jerr != nil && err == nil {
				err = fmt.Errorf("bench: write %s: %w", cfg.JSONPath, jerr)
			}
		}
	}
	return err
}
