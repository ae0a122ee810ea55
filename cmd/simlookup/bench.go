package main

import (
	"time"

	"github.com/simlookup/simlookup/internal/bench"
)

type benchCmd struct {
	Count           int           `default:"20000" placeholder:"N" env:"-" help:"Lookups of the end-to-end run and of each ceiling."`
	Rate            float64       `default:"200" placeholder:"PER_SECOND" env:"-" help:"--rate of the quota runs."`
	Burst           int           `default:"5" placeholder:"N" env:"-" help:"--burst of the quota runs."`
	Duration        time.Duration `default:"30s" placeholder:"DURATION" env:"-" help:"Length of each quota run."`
	QuotaWorkers    int           `name:"quota-workers" default:"3" placeholder:"N" env:"-" help:"Worker processes of the second quota run (1 skips it)."`
	Concurrency     int           `default:"64" placeholder:"N" env:"-" help:"Worker --concurrency of the end-to-end run, and the raw HTTP ceiling's parallelism."`
	JSON            string        `name:"json" type:"path" placeholder:"FILE" env:"-" help:"Also write the report as JSON to FILE."`
	Backlog         bool          `env:"-" help:"Add the backlog run (a million queued requests worked for a fixed time; minutes, not for CI)."`
	BacklogCount    int           `name:"backlog-count" default:"1000000" placeholder:"N" env:"-" help:"Requests queued for the backlog run."`
	BacklogDuration time.Duration `name:"backlog-duration" default:"60s" placeholder:"DURATION" env:"-" help:"How long the backlog is worked."`
	WorkDir         string        `name:"work-dir" type:"path" placeholder:"DIR" env:"-" help:"Keep logs, the NATS store and the Parquet output here (default a temporary folder, removed unless the run fails)."`
	Skip            []string      `placeholder:"PHASE" env:"-" help:"Phases to leave out: e2e, ceilings, quota, latency."`
	Exe             string        `type:"path" placeholder:"FILE" env:"-" hidden:"" help:"The simlookup binary to run as worker and sink (default this one)."`
}

func (c *benchCmd) Help() string {
	return `Measures simlookup on this machine with an embedded NATS server and the fake
vendor API (zero latency, no faults), running real worker and sink processes:

  - end-to-end lookups/s (publish -> result event -> Parquet row) with no rate
    limit, against the ceilings of its parts measured in the same run (raw
    concurrent HTTP calls to the same fake, raw JetStream publish+consume, raw
    Parquet writes), and the ratio to the slowest ceiling;
  - quota accuracy at --rate: achieved/R and the busiest sliding 1-second
    window at the fake, with one worker and with --quota-workers;
  - p50/p99 request-to-result latency; peak RSS and CPU seconds per 1,000
    lookups of the worker and the sink;
  - with --backlog, RSS of the worker and the sink while working a backlog.

Examples:

    simlookup bench
    simlookup bench --json bench.json
    simlookup bench --count 5000 --duration 10s --skip quota
    simlookup bench --backlog --backlog-count 1000000`
}

func (c *benchCmd) check(*app) error {
	switch {
	case c.Count < 100:
		return usagef("--count is %d: it needs at least 100", c.Count)
	case !(c.Rate > 0):
		return usagef("--rate is %v: it needs a positive number of calls per second", c.Rate)
	case c.Burst < 1:
		return usagef("--burst is %d: it needs at least 1", c.Burst)
	case c.Duration < 2*time.Second:
		return usagef("--duration is %s: it needs at least 2s", c.Duration)
	case c.QuotaWorkers < 1:
		return usagef("--quota-workers is %d: it needs at least 1", c.QuotaWorkers)
	case c.Concurrency < 1:
		return usagef("--concurrency is %d: it needs at least 1", c.Concurrency)
	case c.BacklogCount < 1 || c.BacklogDuration < time.Second:
		return usagef("--backlog-count needs at least 1 and --backlog-duration at least 1s")
	}
	for _, s := range c.Skip {
		switch s {
		case "e2e", "ceilings", "quota", "latency":
		default:
			return usagef("--skip %q: phases are e2e, ceilings, quota and latency", s)
		}
	}
	return nil
}

func (c *benchCmd) run(a *app) error {
	return bench.Run(a.ctx, bench.Config{
		Count: c.Count, Rate: c.Rate, Burst: c.Burst, Duration: c.Duration, QuotaWorkers: c.QuotaWorkers,
		Concurrency: c.Concurrency, JSONPath: c.JSON, Backlog: c.Backlog, BacklogCount: c.BacklogCount,
		BacklogDuration: c.BacklogDuration, WorkDir: c.WorkDir, Skip: c.Skip, Exe: c.Exe, Logger: a.log,
	}, a.stdout)
}
