package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/simlookup/simlookup/sink"
	"github.com/simlookup/simlookup/worker"
	"github.com/simlookup/simlookup/worker/eiot"
	"github.com/simlookup/simlookup/worker/quota"
)

// apiFlags configure the vendor API client.
type apiFlags struct {
	APIURL         string `name:"api-url" default:"https://oapi.eiotclub.com" placeholder:"URL" group:"Vendor API" help:"Vendor API base URL (the path /api/v3/card/getCardsInfo is appended)."`
	AppKey         string `name:"appkey" placeholder:"KEY" group:"Vendor API" help:"Vendor appkey (never logged in full)."`
	secretFlags    `embed:""`
	APITimeout     time.Duration `name:"api-timeout" default:"10s" placeholder:"DURATION" group:"Vendor API" help:"Timeout of one vendor call."`
	VendorZone     string        `name:"vendor-zone" default:"Asia/Shanghai" placeholder:"ZONE" group:"Vendor API" help:"Time zone of the vendor's dates."`
	RetryableCodes []string      `name:"retryable-codes" default:"10007" placeholder:"CODE" group:"Vendor API" help:"Vendor codes retried with backoff."`
	SystemicCodes  []string      `name:"systemic-codes" default:"10002,10003,10004,10005" placeholder:"CODE" group:"Vendor API" help:"Vendor codes that pause every worker (credentials, signature, clock refused)."`
	ReplayCode     string        `name:"replay-code" default:"10006" placeholder:"CODE" group:"Vendor API" help:"Vendor code for a replayed nonce: retried at once with a fresh signature."`
}

// client validates the flags and builds the vendor API client.
func (f *apiFlags) client(a *app, log *slog.Logger) (*eiot.Client, error) {
	if f.AppKey == "" {
		return nil, usagef("%s is required: the vendor appkey", flagRef("appkey"))
	}
	u, err := url.Parse(f.APIURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("%s %q: want an http(s) base URL, e.g. https://oapi.eiotclub.com", flagRef("api-url"), f.APIURL)
	}
	if f.APITimeout < 100*time.Millisecond {
		return nil, usagef("%s is %s: it needs at least 100ms", flagRef("api-timeout"), f.APITimeout)
	}
	loc, err := time.LoadLocation(f.VendorZone)
	if err != nil {
		return nil, usagef("%s %q: %v", flagRef("vendor-zone"), f.VendorZone, err)
	}
	secret, err := f.load(a.getenv, true)
	if err != nil {
		return nil, err
	}
	codes := func(flag string, cs []string) ([]string, error) {
		out := []string{}
		for _, c := range cs {
			if c == "" {
				continue
			}
			if c == "200" {
				return nil, usagef("%s: 200 is the vendor's success code", flagRef(flag))
			}
			out = append(out, c)
		}
		return out, nil
	}
	retryable, err := codes("retryable-codes", f.RetryableCodes)
	if err != nil {
		return nil, err
	}
	systemic, err := codes("systemic-codes", f.SystemicCodes)
	if err != nil {
		return nil, err
	}
	for _, c := range retryable {
		if slices.Contains(systemic, c) {
			return nil, usagef("vendor code %s is in both %s and %s", c, flagRef("retryable-codes"), flagRef("systemic-codes"))
		}
	}
	if f.ReplayCode == "" || f.ReplayCode == "200" {
		return nil, usagef("%s %q: name the vendor's replay code", flagRef("replay-code"), f.ReplayCode)
	}
	c, err := eiot.New(eiot.Config{
		BaseURL:        f.APIURL,
		AppKey:         f.AppKey,
		Secret:         secret,
		Timeout:        f.APITimeout,
		Location:       loc,
		RetryableCodes: retryable,
		SystemicCodes:  systemic,
		ReplayCode:     f.ReplayCode,
		Logger:         log,
	})
	if err != nil {
		return nil, usagef("%v", err)
	}
	return c, nil
}

// workerFlags configure lookups.
type workerFlags struct {
	Limiter         string        `enum:"fleet,local" default:"fleet" placeholder:"KIND" group:"Worker" help:"fleet: --rate is shared by every worker with the same appkey (coordinated through NATS); local: --rate is per process."`
	Rate            float64       `default:"5" placeholder:"PER_SECOND" group:"Worker" help:"Vendor calls per second, retries included (the whole fleet's with --limiter fleet); 0 means unlimited (only with --limiter local)."`
	Burst           int           `default:"1" placeholder:"N" group:"Worker" help:"Calls allowed above the rate in a burst."`
	LeaseTTL        time.Duration `name:"lease-ttl" default:"10s" placeholder:"DURATION" group:"Worker" help:"With --limiter fleet: how soon a crashed worker's share returns to the others."`
	Concurrency     int           `default:"16" placeholder:"N" group:"Worker" help:"Requests this process works on at once."`
	AckWait         time.Duration `name:"ack-wait" placeholder:"DURATION" group:"Worker" help:"AckWait of the worker consumer when this process creates or updates it; unset keeps the consumer's (a new one gets 60s)."`
	GiveUpAfter     time.Duration `name:"give-up-after" default:"24h" placeholder:"DURATION" group:"Worker" help:"Age after which a request whose lookups keep failing gets a failed result (kind exhausted)."`
	ShutdownTimeout time.Duration `name:"shutdown-timeout" default:"25s" placeholder:"DURATION" group:"Worker" help:"On SIGTERM, how long in-flight lookups may take to finish; the rest are handed back."`
	NoProvision     bool          `name:"no-provision" group:"Worker" help:"Do not create or update streams and the consumer; wait for them to exist."`
	WorkerName      string        `name:"worker-name" placeholder:"NAME" group:"Worker" help:"Name of this worker in results and dead letters (default <host>-<pid>); also names its fleet-limiter member (sanitized, plus a random suffix)."`

	RetryInitial    time.Duration `name:"retry-initial" default:"200ms" placeholder:"DURATION" group:"Worker" help:"First backoff interval between attempts of one delivery (doubling, with jitter; a Retry-After is never undercut)."`
	RetryMax        time.Duration `name:"retry-max" default:"30s" placeholder:"DURATION" group:"Worker" help:"Largest backoff interval between attempts of one delivery."`
	RetryBudget     time.Duration `name:"retry-budget" default:"2m" placeholder:"DURATION" group:"Worker" help:"Time spent retrying within one delivery before the request is handed back for a delayed redelivery."`
	RedeliveryDelay time.Duration `name:"redelivery-delay" default:"30s" placeholder:"DURATION" group:"Worker" help:"Delay of the redelivery after a spent retry budget; it doubles with each delivery up to --redelivery-max."`
	RedeliveryMax   time.Duration `name:"redelivery-max" default:"15m" placeholder:"DURATION" group:"Worker" help:"Largest redelivery delay."`
	ProbeInitial    time.Duration `name:"probe-initial" default:"1s" placeholder:"DURATION" group:"Worker" help:"While paused on refused credentials: first interval between vendor probes (doubling)."`
	ProbeMax        time.Duration `name:"probe-max" default:"1m" placeholder:"DURATION" group:"Worker" help:"While paused: largest interval between vendor probes."`
	BreakerFailures int           `name:"breaker-failures" default:"5" placeholder:"N" group:"Worker" help:"Consecutive 5xx/timeout/transport failures after which the worker stops pulling new requests until a call succeeds."`
	MaxReplays      int           `name:"max-replays" default:"5" placeholder:"N" group:"Worker" help:"Immediate re-signed retries after the vendor's replay code; after that a replay is retried with backoff."`
	MaxRequestBytes byteSize      `name:"max-request-bytes" default:"64KiB" placeholder:"SIZE" group:"Worker" help:"Largest request body accepted; a larger one gets an invalid result (too_large)."`

	QuotaBucket       string  `name:"quota-bucket" default:"simlookup_quota" placeholder:"BUCKET" group:"Worker" help:"With --limiter fleet: the KV bucket the workers coordinate the rate through (created if missing)."`
	QuotaFallbackRate float64 `name:"quota-fallback-rate" default:"0" placeholder:"PER_SECOND" group:"Worker" help:"With --limiter fleet: calls per second of a worker that lost coordination (NATS or the bucket unreachable); 0: a conservative share of --rate; negative (--quota-fallback-rate=-1): stop sending until coordination returns."`
}

func (f *workerFlags) validate() error {
	switch {
	case math.IsNaN(f.Rate) || math.IsInf(f.Rate, 0) || f.Rate < 0:
		return usagef("%s is %v: it needs a positive number of calls per second", flagRef("rate"), f.Rate)
	case f.Rate == 0 && f.Limiter == "fleet":
		return usagef("%s is 0 (unlimited), which the fleet limiter cannot share: give a rate, or use %s local", flagRef("rate"), flagRef("limiter"))
	case f.Burst < 1:
		return usagef("%s is %d: it needs at least 1", flagRef("burst"), f.Burst)
	case f.Limiter == "fleet" && f.LeaseTTL < 3*time.Second:
		return usagef("%s is %s: it needs at least 3s", flagRef("lease-ttl"), f.LeaseTTL)
	case f.Concurrency < 1 || f.Concurrency > 10000:
		return usagef("%s is %d: it needs 1 to 10000", flagRef("concurrency"), f.Concurrency)
	case f.AckWait < 0 || (f.AckWait > 0 && f.AckWait < time.Second):
		return usagef("%s is %s: it needs at least 1s", flagRef("ack-wait"), f.AckWait)
	case f.GiveUpAfter < time.Minute:
		return usagef("%s is %s: it needs at least 1m", flagRef("give-up-after"), f.GiveUpAfter)
	case f.ShutdownTimeout < 0:
		return usagef("%s is negative", flagRef("shutdown-timeout"))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"retry-initial", f.RetryInitial}, {"retry-max", f.RetryMax}, {"retry-budget", f.RetryBudget},
		{"redelivery-delay", f.RedeliveryDelay}, {"redelivery-max", f.RedeliveryMax},
		{"probe-initial", f.ProbeInitial}, {"probe-max", f.ProbeMax},
	} {
		if d.v < time.Millisecond {
			return usagef("%s is %s: it needs at least 1ms", flagRef(d.flag), d.v)
		}
	}
	for _, p := range []struct{ lo, hi string }{{"retry-initial", "retry-max"}, {"redelivery-delay", "redelivery-max"}, {"probe-initial", "probe-max"}} {
		if f.duration(p.hi) < f.duration(p.lo) {
			return usagef("%s (%s) is below %s (%s)", flagRef(p.hi), f.duration(p.hi), flagRef(p.lo), f.duration(p.lo))
		}
	}
	switch {
	case f.BreakerFailures < 1:
		return usagef("%s is %d: it needs at least 1", flagRef("breaker-failures"), f.BreakerFailures)
	case f.MaxReplays < 1:
		return usagef("%s is %d: it needs at least 1", flagRef("max-replays"), f.MaxReplays)
	case f.MaxRequestBytes < 256 || f.MaxRequestBytes > 64<<20:
		return usagef("%s is %d bytes: it needs 256 bytes to 64MiB", flagRef("max-request-bytes"), f.MaxRequestBytes)
	case !bucketPattern.MatchString(f.QuotaBucket):
		return usagef("%s %q: a bucket name is letters, digits, '-' and '_'", flagRef("quota-bucket"), f.QuotaBucket)
	case math.IsNaN(f.QuotaFallbackRate) || math.IsInf(f.QuotaFallbackRate, 0):
		return usagef("%s is %v: give a number (negative: stop sending)", flagRef("quota-fallback-rate"), f.QuotaFallbackRate)
	}
	return nil
}

var bucketPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (f *workerFlags) duration(flag string) time.Duration {
	return map[string]time.Duration{
		"retry-initial": f.RetryInitial, "retry-max": f.RetryMax, "redelivery-delay": f.RedeliveryDelay,
		"redelivery-max": f.RedeliveryMax, "probe-initial": f.ProbeInitial, "probe-max": f.ProbeMax,
	}[flag]
}

// quotaMember is the fleet-limiter member of a worker named name: the name
// with characters a KV key cannot hold replaced by '_', plus a random
// suffix so that two processes given the same name stay distinct members.
// Empty for no name (the limiter's default, host-pid-random).
func quotaMember(name string) string {
	if name == "" {
		return ""
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	s := strings.Map(func(r rune) rune {
		if r < 128 && (r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, name)
	if len(s) > 64 {
		s = s[:64]
	}
	return s + "-" + hex.EncodeToString(rnd[:])
}

// sinkFlags configure the Parquet sink.
type sinkFlags struct {
	Out      string        `short:"o" type:"path" placeholder:"DIR" group:"Sink" help:"Output folder of the Parquet files (one sink per folder)."`
	MaxRows  int           `name:"max-rows" default:"500000" placeholder:"N" group:"Sink" help:"A file closes at this many rows."`
	MaxBytes byteSize      `name:"max-bytes" default:"128MiB" placeholder:"SIZE" group:"Sink" help:"A file closes at about this size."`
	MaxAge   time.Duration `name:"max-age" default:"5m" placeholder:"DURATION" group:"Sink" help:"A file closes this long after its first row (small files at low traffic: see README)."`
	LockWait time.Duration `name:"lock-wait" default:"0s" placeholder:"DURATION" group:"Sink" help:"How long to wait for another sink to release the folder (0: exit at once)."`
}

func (f *sinkFlags) validate() error {
	switch {
	case f.Out == "":
		return usagef("%s is required: the folder to write Parquet files to", flagRef("out"))
	case f.MaxRows < 1:
		return usagef("%s is %d: it needs at least 1", flagRef("max-rows"), f.MaxRows)
	case f.MaxBytes < 1<<10:
		return usagef("%s is %d bytes: it needs at least 1KiB", flagRef("max-bytes"), f.MaxBytes)
	case f.MaxAge < 100*time.Millisecond:
		return usagef("%s is %s: it needs at least 100ms", flagRef("max-age"), f.MaxAge)
	case f.LockWait < 0:
		return usagef("%s is negative", flagRef("lock-wait"))
	}
	if st, err := os.Stat(f.Out); err == nil && !st.IsDir() {
		return usagef("%s %s is a file, not a folder", flagRef("out"), f.Out)
	}
	return nil
}

func (f *sinkFlags) config(js jetstream.JetStream, log *slog.Logger, reg prometheus.Registerer) sink.Config {
	return sink.Config{
		JetStream:  js,
		OutDir:     f.Out,
		MaxRows:    f.MaxRows,
		MaxBytes:   int64(f.MaxBytes),
		MaxAge:     f.MaxAge,
		LockWait:   f.LockWait,
		Logger:     log,
		Registerer: reg,
	}
}

// limiter builds the rate limiter the flags ask for. A fleet limiter must be
// Run; run is nil otherwise.
func (f *workerFlags) limiter(js jetstream.JetStream, appkey string, replicas int, log *slog.Logger, reg prometheus.Registerer) (worker.Limiter, func(context.Context) error, error) {
	if f.Limiter == "local" {
		r := f.Rate
		if r == 0 {
			r = math.Inf(1)
		}
		l := quota.NewLocal(r, f.Burst)
		if err := l.Register(reg); err != nil {
			return nil, nil, err
		}
		return l, nil, nil
	}
	fl, err := quota.NewFleet(quota.Config{
		JetStream:    js,
		Bucket:       f.QuotaBucket,
		Key:          quota.KeyFor(appkey),
		Member:       quotaMember(f.WorkerName),
		Rate:         f.Rate,
		Burst:        f.Burst,
		LeaseTTL:     f.LeaseTTL,
		FallbackRate: f.QuotaFallbackRate,
		Replicas:     replicas,
		Logger:       log,
		Registerer:   reg,
	})
	if err != nil {
		return nil, nil, usagef("%v", err)
	}
	return fl, fl.Run, nil
}

type workerCmd struct {
	natsFlags   `embed:""`
	apiFlags    `embed:""`
	workerFlags `embed:""`
	streamFlags `embed:""`
	HTTPAddr    string `name:"http-addr" placeholder:"HOST:PORT" help:"Serve /metrics, /healthz and /readyz here (e.g. :9090)."`
}

func (c *workerCmd) Help() string {
	return `Consumes lookup requests from SIMLOOKUP_REQUESTS (durable consumer
simlookup-worker, shared by every worker), calls the vendor under the rate
limit with retries and backoff, and publishes exactly one result per request.
Creates the streams, the consumer and the jobs bucket on start if they are
missing (unless --no-provision); existing ones keep their settings (only
"simlookup streams" changes them). Run as many as you like: with --limiter
fleet (the default) they share --rate between them.

The secret comes from SIMLOOKUP_SECRET or --secret-file; SIGHUP re-reads the
file (a worker paused on refused credentials also re-reads it by itself).
SIGINT/SIGTERM: stop pulling, finish in-flight lookups within
--shutdown-timeout, hand back the rest, exit 0.

Examples:

    SIMLOOKUP_SECRET=... simlookup worker --appkey 000001 --rate 5 --http-addr :9090
    simlookup worker --nats-url nats://nats:4222 --nats-creds worker.creds \
        --appkey 000001 --secret-file /run/secrets/eiot --concurrency 32
    SIMLOOKUP_SECRET=s3cret simlookup worker --api-url http://127.0.0.1:8080 --appkey demo-appkey \
        --limiter local --rate 0    # against "simlookup fake-api" (see its --help), unlimited`
}

// workerParts is a configured worker and its limiter.
type workerParts struct {
	w        *worker.Worker
	runLimit func(context.Context) error
}

func (c *workerCmd) validate(a *app) error {
	if err := c.natsFlags.validate(a.getenv); err != nil {
		return err
	}
	if err := c.workerFlags.validate(); err != nil {
		return err
	}
	if err := c.streamFlags.validate(); err != nil {
		return err
	}
	return checkAddr("http-addr", c.HTTPAddr)
}

// newWorker builds the worker from the flags (after they were validated).
func newWorker(a *app, js jetstream.JetStream, api *apiFlags, wf *workerFlags, sf *streamFlags, client *eiot.Client, reg prometheus.Registerer) (*workerParts, error) {
	log := a.log
	lim, runLimit, err := wf.limiter(js, api.AppKey, sf.Replicas, log, reg)
	if err != nil {
		return nil, err
	}
	rate := wf.Rate
	if rate == 0 {
		rate = -1
	}
	w, err := worker.New(worker.Config{
		JetStream:       js,
		Client:          client,
		Limiter:         lim,
		Rate:            rate,
		Burst:           wf.Burst,
		Concurrency:     wf.Concurrency,
		AckWait:         wf.AckWait,
		NoProvision:     wf.NoProvision,
		StreamOptions:   sf.options(),
		GiveUpAfter:     wf.GiveUpAfter,
		RetryInitial:    wf.RetryInitial,
		RetryMax:        wf.RetryMax,
		RetryBudget:     wf.RetryBudget,
		RedeliveryDelay: wf.RedeliveryDelay,
		RedeliveryMax:   wf.RedeliveryMax,
		ProbeInitial:    wf.ProbeInitial,
		ProbeMax:        wf.ProbeMax,
		BreakerFailures: wf.BreakerFailures,
		MaxReplays:      wf.MaxReplays,
		MaxRequestBytes: int(wf.MaxRequestBytes),
		ShutdownTimeout: wf.ShutdownTimeout,
		SecretFile:      api.SecretFile,
		Name:            wf.WorkerName,
		Logger:          log,
		Registerer:      reg,
	})
	if err != nil {
		return nil, usagef("%v", err)
	}
	return &workerParts{w: w, runLimit: runLimit}, nil
}

// runWorker runs the worker (and its fleet limiter, which stops only after
// the worker has finished its in-flight lookups) until ctx ends. SIGHUP
// re-reads the secret file.
func runWorker(ctx context.Context, a *app, p *workerParts, hup <-chan os.Signal) error {
	var wg sync.WaitGroup
	limCtx, stopLim := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLim()
	var limErr error
	if p.runLimit != nil {
		wg.Go(func() {
			if err := p.runLimit(limCtx); err != nil && !errors.Is(err, context.Canceled) {
				limErr = err
			}
		})
	}
	hctx, stopHUP := context.WithCancel(ctx)
	defer stopHUP()
	if hup != nil {
		wg.Go(func() {
			for {
				select {
				case <-hctx.Done():
					return
				case <-hup:
					a.log.Info("SIGHUP: re-reading the secret file")
					if err := p.w.ReloadSecret(); err != nil {
						a.log.Error("re-reading the secret file failed; keeping the old secret", "err", err)
					}
				}
			}
		})
	}
	err := p.w.Run(ctx)
	stopHUP()
	stopLim()
	wg.Wait()
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if limErr != nil {
		return fmt.Errorf("rate limiter: %w", limErr)
	}
	return nil
}

// lateReady is the readiness check of a component that exists only once
// NATS is connected: until set, it reports that it is connecting. It is safe
// for concurrent use (the HTTP server calls check from its own goroutines).
type lateReady struct {
	mu    sync.Mutex
	ready func() error
}

func (l *lateReady) set(ready func() error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ready = ready
}

func (l *lateReady) check() error {
	l.mu.Lock()
	ready := l.ready
	l.mu.Unlock()
	if ready == nil {
		return errors.New("connecting to NATS")
	}
	return ready()
}

// startDaemon is how worker, sink and run begin: serve /metrics, /healthz and
// /readyz on httpAddr (if set) at once, so an orchestrator sees the process
// while it waits for NATS, then connect, waiting for NATS as long as it
// takes. stop drains the connection and waits for the HTTP server. A nil js
// with a nil error means ctx ended while waiting: the daemon just returns.
func (f *natsFlags) startDaemon(a *app, httpAddr string, reg *prometheus.Registry, checks []readiness) (js jetstream.JetStream, stop func(), err error) {
	waitHTTP := func() {}
	if httpAddr != "" {
		if waitHTTP, err = startHTTP(a.ctx, httpAddr, reg, checks, a.log); err != nil {
			return nil, nil, err
		}
	}
	nc, err := f.connect(a.ctx, a, connectOpts{wait: true})
	if err != nil {
		waitHTTP()
		if errors.Is(err, context.Canceled) {
			return nil, nil, nil
		}
		return nil, nil, err
	}
	stop = func() {
		drainClose(nc, a.log)
		waitHTTP()
	}
	if js, err = jetStream(nc); err != nil {
		stop()
		return nil, nil, err
	}
	return js, stop, nil
}

func notifyHUP() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	return ch, func() { signal.Stop(ch) }
}

func (c *workerCmd) run(a *app) error {
	if err := c.validate(a); err != nil {
		return err
	}
	client, err := c.apiFlags.client(a, a.log)
	if err != nil {
		return err
	}
	// The worker logs its own settings (concurrency, limiter kind, ...) as it
	// starts; these are the ones only the command line knows.
	a.log.Info("starting worker", "api_url", c.APIURL, "appkey", maskAppKey(c.AppKey), "rate", c.Rate, "burst", c.Burst)
	reg := newRegistry()
	var ready lateReady
	js, stopDaemon, err := c.startDaemon(a, c.HTTPAddr, reg, []readiness{{"worker", ready.check}})
	if err != nil || js == nil {
		return err
	}
	defer stopDaemon()
	p, err := newWorker(a, js, &c.apiFlags, &c.workerFlags, &c.streamFlags, client, reg)
	if err != nil {
		return err
	}
	ready.set(p.w.Ready)
	hup, stop := notifyHUP()
	defer stop()
	return runWorker(a.ctx, a, p, hup)
}

type sinkCmd struct {
	natsFlags `embed:""`
	sinkFlags `embed:""`
	HTTPAddr  string `name:"http-addr" placeholder:"HOST:PORT" help:"Serve /metrics, /healthz and /readyz here (e.g. :9091)."`
}

func (c *sinkCmd) Help() string {
	return `Consumes SIMLOOKUP_RESULTS in order and writes one Parquet row per result
event to <out>/dt=YYYY-MM-DD/hour=HH/part-<epoch>-<first>-<last>.parquet. A
file closes at --max-rows, --max-bytes, --max-age, a new partition or
shutdown; it is written under a temporary name, fsynced and renamed, so
readers globbing **/*.parquet only ever see complete files. One sink per
folder (a lock inside it); a restarted sink resumes strictly after the last
committed result. Waits for the results stream if it does not exist yet.
SIGINT/SIGTERM commits the open file and exits 0.

Examples:

    simlookup sink --out ./parquet
    simlookup sink --nats-url nats://nats:4222 --out /data/simlookup --max-age 15m --http-addr :9091
    duckdb -c "SELECT status, count(*) FROM read_parquet('parquet/**/*.parquet', hive_partitioning=true, hive_types={'dt': DATE, 'hour': INTEGER}) GROUP BY 1"
    go -C deploy/warehouse run ./cmd/query -out "$PWD/parquet"    # without the duckdb CLI, at the repository root`
}

func (c *sinkCmd) run(a *app) error {
	if err := c.natsFlags.validate(a.getenv); err != nil {
		return err
	}
	if err := c.sinkFlags.validate(); err != nil {
		return err
	}
	if err := checkAddr("http-addr", c.HTTPAddr); err != nil {
		return err
	}
	reg := newRegistry()
	var ready lateReady
	a.log.Info("starting sink", "out", c.Out)
	js, stopDaemon, err := c.startDaemon(a, c.HTTPAddr, reg, []readiness{{"sink", ready.check}})
	if err != nil || js == nil {
		return err
	}
	defer stopDaemon()
	sk, err := sink.New(c.config(js, a.log, reg))
	if err != nil {
		return usagef("%v", err)
	}
	ready.set(sk.Ready)
	return runSink(a.ctx, a.log, sk)
}

// runSink runs the sink until ctx ends, saying when it starts to stop and
// how far it committed (the sink package logs its files, not its shutdown).
func runSink(ctx context.Context, log *slog.Logger, s *sink.Sink) error {
	done, logged := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(logged)
		select {
		case <-ctx.Done():
		case <-done:
			if ctx.Err() == nil {
				return // the sink failed on its own
			}
		}
		log.Info("sink stopping: committing the open file")
	}()
	err := s.Run(ctx)
	close(done)
	<-logged // "stopping" is always logged before "stopped"
	if err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	seq := s.Status().CommittedSeq
	log.Info(fmt.Sprintf("sink stopped (committed through seq %d)", seq), "committed_seq", seq)
	return nil
}

type runCmd struct {
	natsFlags   `embed:""`
	apiFlags    `embed:""`
	workerFlags `embed:""`
	streamFlags `embed:""`
	sinkFlags   `embed:""`
	HTTPAddr    string `name:"http-addr" placeholder:"HOST:PORT" help:"Serve /metrics, /healthz and /readyz (worker and sink) here."`
}

func (c *runCmd) Help() string {
	return `Runs a worker and a sink in one process, sharing one NATS connection and one
metrics endpoint: the smallest production deployment. Flags are those of
"simlookup worker" and "simlookup sink".

Examples:

    SIMLOOKUP_SECRET=... simlookup run --appkey 000001 --out ./parquet --http-addr :9090`
}

func (c *runCmd) run(a *app) error {
	if err := c.natsFlags.validate(a.getenv); err != nil {
		return err
	}
	if err := c.workerFlags.validate(); err != nil {
		return err
	}
	if err := c.streamFlags.validate(); err != nil {
		return err
	}
	if err := c.sinkFlags.validate(); err != nil {
		return err
	}
	if err := checkAddr("http-addr", c.HTTPAddr); err != nil {
		return err
	}
	client, err := c.apiFlags.client(a, a.log)
	if err != nil {
		return err
	}
	out, _ := filepath.Abs(c.Out)
	a.log.Info("starting worker and sink", "api_url", c.APIURL, "appkey", maskAppKey(c.AppKey), "rate", c.Rate, "burst", c.Burst, "out", out)
	reg := newRegistry()
	var workerReady, sinkReady lateReady
	js, stopDaemon, err := c.startDaemon(a, c.HTTPAddr, reg, []readiness{{"worker", workerReady.check}, {"sink", sinkReady.check}})
	if err != nil || js == nil {
		return err
	}
	defer stopDaemon()
	p, err := newWorker(a, js, &c.apiFlags, &c.workerFlags, &c.streamFlags, client, reg)
	if err != nil {
		return err
	}
	s, err := sink.New(c.sinkFlags.config(js, a.log, reg))
	if err != nil {
		return usagef("%v", err)
	}
	workerReady.set(p.w.Ready)
	sinkReady.set(s.Ready)
	hup, stop := notifyHUP()
	defer stop()
	return runBoth(a.ctx, func(ctx context.Context) error { return runWorker(ctx, a, p, hup) },
		func(ctx context.Context) error { return runSink(ctx, a.log, s) })
}

// runBoth runs the functions until ctx ends or one fails; a failure stops
// the others. It returns the first error.
func runBoth(ctx context.Context, fns ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() {
			errs[i] = fn(ctx)
			if errs[i] != nil {
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *workerCmd) check(a *app) error {
	if err := c.validate(a); err != nil {
		return err
	}
	_, err := c.apiFlags.client(a, a.log)
	return err
}

func (c *sinkCmd) check(a *app) error {
	if err := c.natsFlags.validate(a.getenv); err != nil {
		return err
	}
	if err := c.sinkFlags.validate(); err != nil {
		return err
	}
	return checkAddr("http-addr", c.HTTPAddr)
}

func (c *runCmd) check(a *app) error {
	for _, v := range []func() error{
		func() error { return c.natsFlags.validate(a.getenv) },
		c.workerFlags.validate, c.streamFlags.validate, c.sinkFlags.validate,
		func() error { return checkAddr("http-addr", c.HTTPAddr) },
	} {
		if err := v(); err != nil {
			return err
		}
	}
	_, err := c.apiFlags.client(a, a.log)
	return err
}
