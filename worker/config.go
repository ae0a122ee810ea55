package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/worker/eiot"
)

// Looker looks up one card. *eiot.Client implements it. Lookup follows
// eiot's contract: on a failure it returns an *eiot.Error (with the
// *eiot.Response too for no_data and vendor-code failures), and a wrapped
// ctx.Err() when ctx ends. Lookup must be safe for concurrent use.
type Looker interface {
	Lookup(ctx context.Context, iccid string) (*eiot.Response, error)
}

// SecretSetter is implemented by clients whose signing secret can be
// replaced while running (*eiot.Client). The worker uses it to apply a
// re-read Config.SecretFile.
type SecretSetter interface {
	SetSecret(sign.Secret)
}

var (
	_ Looker       = (*eiot.Client)(nil)
	_ SecretSetter = (*eiot.Client)(nil)
)

// Limiter paces vendor calls. Every attempt, retries and probes included,
// calls Wait first. Wait blocks until a call may be made or ctx ends (then it
// returns an error). It must be safe for concurrent use.
type Limiter interface {
	Wait(ctx context.Context) error
}

// FeedbackLimiter is a Limiter that also learns from the vendor: the worker
// calls Throttled on every HTTP 429 or vendor "busy" answer (with the
// Retry-After, 0 when absent) and Succeeded on every accepted call.
type FeedbackLimiter interface {
	Limiter
	Throttled(retryAfter time.Duration)
	Succeeded()
}

// Defaults.
const (
	DefaultRate            = 5.0
	DefaultBurst           = 1
	DefaultConcurrency     = 16
	DefaultGiveUpAfter     = 24 * time.Hour
	DefaultRetryInitial    = 200 * time.Millisecond
	DefaultRetryMax        = 30 * time.Second
	DefaultRetryBudget     = 2 * time.Minute
	DefaultRedeliveryDelay = 30 * time.Second
	DefaultRedeliveryMax   = 15 * time.Minute
	DefaultShutdownTimeout = 25 * time.Second
	DefaultProbeInitial    = time.Second
	DefaultProbeMax        = time.Minute
	DefaultBreakerFailures = 5
	DefaultMaxReplays      = 5
)

// Config configures a Worker. The zero value of each optional field gives
// the default documented on it.
type Config struct {
	// JetStream is the connection to consume requests from and publish
	// results to. Required.
	JetStream jetstream.JetStream
	// Client calls the vendor. Required. If it also implements SecretSetter,
	// a re-read SecretFile is applied to it.
	Client Looker

	// Limiter paces every vendor call of this process. Defaults to a local
	// golang.org/x/time/rate limiter of Rate and Burst. Pass the fleet-wide
	// limiter (worker/quota) to share one quota between processes. A
	// FeedbackLimiter is told about throttling and successes.
	Limiter Limiter
	// Rate is the local limiter's calls per second. Defaults to 5; negative
	// means unlimited. Ignored when Limiter is set.
	Rate float64
	// Burst is the local limiter's burst. Defaults to 1. Ignored when Limiter is set.
	Burst int

	// Concurrency bounds the requests this process works on at once
	// (pulled and not yet acked). Defaults to 16.
	Concurrency int
	// AckWait is the consumer's ack wait used when this process creates the
	// consumer; 0 leaves an existing consumer's AckWait alone (and creates a
	// new one with schemas.DefaultAckWait). The in-progress cadence always
	// follows the AckWait the consumer actually has.
	AckWait time.Duration
	// NoProvision makes the worker wait for the streams and the consumer to
	// exist instead of creating or updating them (and not recreate a deleted
	// consumer).
	NoProvision bool
	// StreamOptions are used when provisioning. Defaults to the zero value.
	StreamOptions schemas.StreamOptions

	// GiveUpAfter is the age (since the requests stream stored the request)
	// after which a request whose retries keep failing gets a failed result
	// of kind exhausted instead of another redelivery. Defaults to 24h.
	GiveUpAfter time.Duration
	// RetryInitial, RetryMax and RetryBudget shape the exponential backoff
	// (with jitter) between attempts within one delivery: the first interval,
	// the largest interval and the total time spent retrying before the
	// request is handed back. A Retry-After from the vendor is never
	// undercut. Default 200ms, 30s and 2m.
	RetryInitial, RetryMax, RetryBudget time.Duration
	// RedeliveryDelay is the delay of the NakWithDelay after a spent retry
	// budget; it doubles with each delivery up to RedeliveryMax. Default 30s
	// and 15m.
	RedeliveryDelay, RedeliveryMax time.Duration
	// ShutdownTimeout bounds how long Run waits, after ctx ends, for vendor
	// calls in flight to finish and their results to be published. Requests
	// still unfinished are handed back for immediate redelivery. Defaults to 25s.
	ShutdownTimeout time.Duration

	// SecretFile, if set, is re-read while paused on a systemic refusal and
	// on ReloadSecret, and a changed secret is given to Client (which must
	// implement SecretSetter).
	SecretFile string
	// ProbeInitial and ProbeMax bound the backoff between vendor probes while
	// paused. Default 1s and 1m.
	ProbeInitial, ProbeMax time.Duration
	// BreakerFailures is the run of consecutive 5xx/timeout/transport
	// failures after which the worker stops pulling new requests until a call
	// succeeds again (one request at a time is still tried). Defaults to 5.
	BreakerFailures int
	// MaxReplays bounds the immediate re-signed retries after the vendor's
	// replay code; after that a replay is retried with backoff. Defaults to 5.
	MaxReplays int

	// Name identifies this worker in results and dead letters. Defaults to
	// "<hostname>-<pid>".
	Name string
	// MaxRequestBytes is the largest request body accepted; a larger one is
	// an invalid result (too_large). Defaults to 64 KiB.
	MaxRequestBytes int

	// Logger receives the worker's logs. Defaults to discarding.
	Logger *slog.Logger
	// Registerer receives the worker's Prometheus metrics. Defaults to a
	// private registry (metrics not exported).
	Registerer prometheus.Registerer
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time

	// test hooks (package tests only)
	hooks hooks
}

type hooks struct {
	// afterPublish runs after a result's PubAck and before the ack; returning
	// true abandons the message unacked (a crash between publish and ack).
	afterPublish func(requestID string, deliveries uint64) bool
	// noInProgress turns off the in-progress signals (a control for tests).
	noInProgress bool
	// fetchWait overrides the pull expiry.
	fetchWait time.Duration
}

// ErrConfig is wrapped by every configuration error from New.
var ErrConfig = errors.New("worker: invalid config")

func (c Config) withDefaults() (Config, error) {
	if c.JetStream == nil {
		return c, fmt.Errorf("%w: JetStream is required", ErrConfig)
	}
	if c.Client == nil {
		return c, fmt.Errorf("%w: Client is required", ErrConfig)
	}
	type check struct {
		bad  bool
		what string
	}
	for _, ck := range []check{
		{c.Burst < 0, fmt.Sprintf("Burst %d is negative", c.Burst)},
		{c.Concurrency < 0, fmt.Sprintf("Concurrency %d is negative", c.Concurrency)},
		{c.AckWait < 0, fmt.Sprintf("AckWait %v is negative", c.AckWait)},
		{c.AckWait > 0 && c.AckWait < time.Second, fmt.Sprintf("AckWait %v is under 1s", c.AckWait)},
		{c.GiveUpAfter < 0, fmt.Sprintf("GiveUpAfter %v is negative", c.GiveUpAfter)},
		{c.RetryInitial < 0, fmt.Sprintf("RetryInitial %v is negative", c.RetryInitial)},
		{c.RetryMax < 0, fmt.Sprintf("RetryMax %v is negative", c.RetryMax)},
		{c.RetryBudget < 0, fmt.Sprintf("RetryBudget %v is negative", c.RetryBudget)},
		{c.RedeliveryDelay < 0, fmt.Sprintf("RedeliveryDelay %v is negative", c.RedeliveryDelay)},
		{c.RedeliveryMax < 0, fmt.Sprintf("RedeliveryMax %v is negative", c.RedeliveryMax)},
		{c.ShutdownTimeout < 0, fmt.Sprintf("ShutdownTimeout %v is negative", c.ShutdownTimeout)},
		{c.ProbeInitial < 0 || c.ProbeMax < 0, "ProbeInitial and ProbeMax must not be negative"},
		{c.BreakerFailures < 0, fmt.Sprintf("BreakerFailures %d is negative", c.BreakerFailures)},
		{c.MaxReplays < 0, fmt.Sprintf("MaxReplays %d is negative", c.MaxReplays)},
		{c.MaxRequestBytes < 0, fmt.Sprintf("MaxRequestBytes %d is negative", c.MaxRequestBytes)},
	} {
		if ck.bad {
			return c, fmt.Errorf("%w: %s", ErrConfig, ck.what)
		}
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	c.Concurrency = orDefault(c.Concurrency, DefaultConcurrency)
	c.GiveUpAfter = orDefault(c.GiveUpAfter, DefaultGiveUpAfter)
	c.RetryInitial = orDefault(c.RetryInitial, DefaultRetryInitial)
	c.RetryMax = orDefault(c.RetryMax, DefaultRetryMax)
	c.RetryBudget = orDefault(c.RetryBudget, DefaultRetryBudget)
	c.RedeliveryDelay = orDefault(c.RedeliveryDelay, DefaultRedeliveryDelay)
	c.RedeliveryMax = orDefault(c.RedeliveryMax, DefaultRedeliveryMax)
	c.ShutdownTimeout = orDefault(c.ShutdownTimeout, DefaultShutdownTimeout)
	c.ProbeInitial = orDefault(c.ProbeInitial, DefaultProbeInitial)
	c.ProbeMax = orDefault(c.ProbeMax, DefaultProbeMax)
	c.BreakerFailures = orDefault(c.BreakerFailures, DefaultBreakerFailures)
	c.MaxReplays = orDefault(c.MaxReplays, DefaultMaxReplays)
	c.MaxRequestBytes = orDefault(c.MaxRequestBytes, DefaultMaxRequestBytes)
	if c.RetryMax < c.RetryInitial {
		return c, fmt.Errorf("%w: RetryMax %v is below RetryInitial %v", ErrConfig, c.RetryMax, c.RetryInitial)
	}
	if c.RedeliveryMax < c.RedeliveryDelay {
		return c, fmt.Errorf("%w: RedeliveryMax %v is below RedeliveryDelay %v", ErrConfig, c.RedeliveryMax, c.RedeliveryDelay)
	}
	if c.ProbeMax < c.ProbeInitial {
		return c, fmt.Errorf("%w: ProbeMax %v is below ProbeInitial %v", ErrConfig, c.ProbeMax, c.ProbeInitial)
	}
	if c.SecretFile != "" {
		if _, ok := c.Client.(SecretSetter); !ok {
			return c, fmt.Errorf("%w: SecretFile is set but Client (%T) cannot take a new secret (no SetSecret)", ErrConfig, c.Client)
		}
	}
	if c.Name == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "worker"
		}
		c.Name = host + "-" + strconv.Itoa(os.Getpid())
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

func orDefault[T int | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}
