package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/simlookup/simlookup/schemas"
)

// byteSize is a size flag: 1048576, 512KiB, 10GiB, 2GB, 1TiB.
type byteSize int64

func (b *byteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	units := []struct {
		suffix string
		mult   int64
	}{
		{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"TB", 1e12}, {"GB", 1e9}, {"MB", 1e6}, {"KB", 1e3}, {"kB", 1e3}, {"B", 1},
	}
	mult := int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || (mult > 1 && n > (1<<62)/mult) {
		return fmt.Errorf("%q is not a size (want e.g. 1048576, 512KiB, 10GiB)", string(text))
	}
	*b = byteSize(n * mult)
	return nil
}

// streamFlags are the deployment's stream choices (schemas.StreamOptions).
type streamFlags struct {
	Replicas         int           `default:"1" group:"Streams" help:"Replicas of every stream and of the jobs bucket (3 in a production cluster)."`
	RequestsMaxBytes byteSize      `name:"requests-max-bytes" default:"1GiB" placeholder:"SIZE" group:"Streams" help:"Bound of the requests stream; when full it refuses new requests."`
	ResultsMaxBytes  byteSize      `name:"results-max-bytes" default:"8GiB" placeholder:"SIZE" group:"Streams" help:"Bound of the results stream; when full workers keep their requests until the sink catches up."`
	DLQMaxBytes      byteSize      `name:"dlq-max-bytes" placeholder:"SIZE" group:"Streams" help:"Bound of the dead-letter stream (default: --requests-max-bytes); when full a worker keeps the request instead of dead-lettering it."`
	ResultsMaxAge    time.Duration `name:"results-max-age" default:"168h" placeholder:"DURATION" group:"Streams" help:"How long results stay in the stream (and jobs in the jobs bucket); the sink must commit them sooner."`
	DLQMaxAge        time.Duration `name:"dlq-max-age" default:"720h" placeholder:"DURATION" group:"Streams" help:"How long dead letters stay."`
}

func (f *streamFlags) validate() error {
	if f.Replicas < 1 || f.Replicas > 5 {
		return usagef("%s is %d: it needs 1 to 5 replicas", flagRef("replicas"), f.Replicas)
	}
	if f.ResultsMaxAge < time.Minute {
		return usagef("%s is %s: it needs at least 1m (the sink must have time to commit results)", flagRef("results-max-age"), f.ResultsMaxAge)
	}
	if f.DLQMaxAge < time.Minute {
		return usagef("%s is %s: it needs at least 1m", flagRef("dlq-max-age"), f.DLQMaxAge)
	}
	if f.RequestsMaxBytes < 1<<20 {
		return usagef("%s is %d bytes: it needs at least 1MiB", flagRef("requests-max-bytes"), f.RequestsMaxBytes)
	}
	if f.ResultsMaxBytes < 1<<20 {
		return usagef("%s is %d bytes: it needs at least 1MiB", flagRef("results-max-bytes"), f.ResultsMaxBytes)
	}
	if f.DLQMaxBytes != 0 && f.DLQMaxBytes < 1<<20 {
		return usagef("%s is %d bytes: it needs at least 1MiB", flagRef("dlq-max-bytes"), f.DLQMaxBytes)
	}
	return nil
}

func (f *streamFlags) options() schemas.StreamOptions {
	return schemas.StreamOptions{
		Replicas:         f.Replicas,
		RequestsMaxBytes: int64(f.RequestsMaxBytes),
		ResultsMaxBytes:  int64(f.ResultsMaxBytes),
		ResultsMaxAge:    f.ResultsMaxAge,
		DLQMaxAge:        f.DLQMaxAge,
		DLQMaxBytes:      int64(f.DLQMaxBytes),
	}
}

type streamsCmd struct {
	natsFlags   `embed:""`
	streamFlags `embed:""`

	AckWait time.Duration `name:"ack-wait" placeholder:"DURATION" help:"AckWait of the worker consumer; unset keeps the consumer's (a new one gets 60s)."`
	DryRun  bool          `name:"dry-run" env:"-" help:"Print the configurations as JSON lines instead of applying them (no NATS needed)."`
}

func (c *streamsCmd) Help() string {
	return `Creates the streams SIMLOOKUP_REQUESTS, SIMLOOKUP_RESULTS and SIMLOOKUP_DLQ, the
worker consumer simlookup-worker and the jobs bucket simlookup_jobs, or brings
existing ones up to date. Safe to run again and from many places at once; a
setting that cannot change in place (retention, storage, subjects) is reported
as a conflict with what to do, and nothing is overwritten.

Workers create what is missing on start too (unless --no-provision), but
never change existing settings: run this to apply new bounds, ages or
replicas, and when the workers' NATS user may not manage streams.

--dry-run prints one JSON object per line, in this order and format (stable:
deploy/nats/*.json are checked against it):

    {"kind":"stream","name":"SIMLOOKUP_REQUESTS","config":{...jetstream.StreamConfig...}}
    {"kind":"stream","name":"SIMLOOKUP_RESULTS","config":{...}}
    {"kind":"stream","name":"SIMLOOKUP_DLQ","config":{...}}
    {"kind":"consumer","stream":"SIMLOOKUP_REQUESTS","name":"simlookup-worker","config":{...jetstream.ConsumerConfig...}}
    {"kind":"kv","name":"simlookup_jobs","config":{...jetstream.KeyValueConfig...}}

Each "config" is exactly what "nats stream add --config", "nats consumer add
--config" accept (the nats.go JSON encoding of the configuration).

Examples:

    simlookup streams
    simlookup streams --nats-url nats://nats-1:4222,nats://nats-2:4222 --replicas 3
    simlookup streams --dry-run | jq -c 'select(.kind=="stream") | .config'`
}

// dryRunLine is one line of streams --dry-run.
type dryRunLine struct {
	Kind   string `json:"kind"`
	Stream string `json:"stream,omitempty"`
	Name   string `json:"name"`
	Config any    `json:"config"`
}

// dryRunLines is what streams --dry-run prints.
func dryRunLines(o schemas.StreamOptions, ackWait time.Duration) []dryRunLine {
	var out []dryRunLine
	for _, s := range schemas.StreamConfigs(o) {
		out = append(out, dryRunLine{Kind: "stream", Name: s.Name, Config: s})
	}
	cc := schemas.WorkerConsumerConfig(ackWait)
	out = append(out, dryRunLine{Kind: "consumer", Stream: schemas.RequestStream, Name: cc.Durable, Config: cc})
	kv := schemas.JobsBucketConfig(o)
	out = append(out, dryRunLine{Kind: "kv", Name: kv.Bucket, Config: kv})
	return out
}

func (c *streamsCmd) check(a *app) error {
	if err := c.streamFlags.validate(); err != nil {
		return err
	}
	if c.AckWait < 0 || (c.AckWait > 0 && c.AckWait < time.Second) {
		return usagef("%s is %s: it needs at least 1s", flagRef("ack-wait"), c.AckWait)
	}
	if c.DryRun {
		return nil
	}
	return c.natsFlags.validate(a.getenv)
}

func (c *streamsCmd) run(a *app) error {
	if c.DryRun {
		enc := json.NewEncoder(a.stdout)
		for _, l := range dryRunLines(c.options(), c.AckWait) {
			if err := enc.Encode(l); err != nil {
				return err
			}
		}
		return nil
	}
	nc, err := c.connect(a.ctx, a, connectOpts{})
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetStream(nc)
	if err != nil {
		return err
	}
	if err := schemas.Provision(a.ctx, js, c.options(), c.AckWait); err != nil {
		if errors.Is(err, schemas.ErrConflict) {
			return fmt.Errorf("provisioning stopped at a conflict (nothing was overwritten):\n%w", err)
		}
		return fmt.Errorf("provision: %w%s", err, storageHint(err))
	}
	for _, l := range dryRunLines(c.options(), c.AckWait) {
		what := l.Kind + " " + l.Name
		if l.Stream != "" {
			what = "consumer " + l.Stream + "/" + l.Name
		}
		fmt.Fprintf(a.stdout, "ok  %s\n", what)
	}
	return nil
}

// storageHint explains JetStream's "insufficient storage resources": the
// stream bounds are reserved up front and can exceed what a server on a
// small disk may reserve.
func storageHint(err error) string {
	if schemas.IsInsufficientStorage(err) {
		return "\n" + schemas.InsufficientStorageHint
	}
	return ""
}
