package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/sign"
)

// Sentinel errors of Ready.
var (
	// ErrPaused: the vendor refuses this deployment (credentials, signature,
	// clock); the worker takes no new work until a probe is accepted.
	ErrPaused = errors.New("worker: paused")
	// ErrNotConsuming: the worker is not (yet, or at the moment) pulling
	// requests: starting, provisioning, or reconnecting.
	ErrNotConsuming = errors.New("worker: not consuming")
)

// Worker turns lookup requests into result events. Create it with New and
// run it with Run; Ready, Paused, Stats and ReloadSecret may be called from
// any goroutine at any time.
type Worker struct {
	cfg Config
	log *slog.Logger
	js  jetstream.JetStream
	lim Limiter
	fb  FeedbackLimiter // nil unless lim is one
	m   *metrics

	ackWait    atomic.Int64 // the consumer's actual AckWait, nanoseconds
	maxDeliver atomic.Int64 // the consumer's MaxDeliver (0: unknown)

	wake   chan struct{} // pull loop: something changed (slot freed, resume, ...)
	reload chan struct{} // prober: re-read the secret now

	mu             sync.Mutex
	state          string // starting, provisioning, waiting, consuming, reconnecting, stopped
	stateErr       error
	inflight       int // slots reserved: requests being worked on plus those a pull may still deliver
	active         int // requests being worked on
	paused         bool
	resumed        chan struct{} // closed when a pause ends
	held           int           // requests held in progress while paused (the probe not counted)
	pauseReason    string
	pauseSince     time.Time
	probing        bool
	breakerOpen    bool
	consecFailures int
	resultsBlocked bool
	streamCreated  time.Time
	secret         sign.Secret    // the last one read from SecretFile (never logged)
	attempts       map[uint64]int // request stream seq → attempts of earlier deliveries seen here

	stats struct {
		ok, failed, invalid, attempts, retries, duplicates, reused, deadLetters, handedBack, shutdownNaks atomic.Int64
	}
}

// New validates cfg and returns a Worker. Errors wrap ErrConfig and name the field.
func New(cfg Config) (*Worker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	w := &Worker{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "worker", "worker", cfg.Name),
		js:       cfg.JetStream,
		wake:     make(chan struct{}, 1),
		reload:   make(chan struct{}, 1),
		state:    "starting",
		attempts: make(map[uint64]int),
	}
	w.lim = cfg.Limiter
	if w.lim == nil {
		limit := rate.Limit(cfg.Rate)
		if cfg.Rate < 0 {
			limit = rate.Inf
		}
		w.lim = rate.NewLimiter(limit, cfg.Burst)
	}
	w.fb, _ = w.lim.(FeedbackLimiter)
	w.m, err = newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	aw := cfg.AckWait
	if aw == 0 {
		aw = schemas.DefaultAckWait
	}
	w.ackWait.Store(int64(aw))
	if cfg.SecretFile != "" {
		if _, err := w.loadSecret(); err != nil {
			return nil, fmt.Errorf("%w: SecretFile: %w", ErrConfig, err)
		}
	}
	return w, nil
}

// Stats are the worker's counters since New.
type Stats struct {
	// Results published, by status (a result the stream already had is not counted).
	OK, Failed, Invalid int64
	// Attempts is the number of vendor calls; Retries those after the first
	// of a delivery.
	Attempts, Retries int64
	// Duplicates counts results the stream already held (a redelivered
	// request whose result was stored before); ReusedIDs counts first
	// deliveries whose result was a duplicate (a request_id used twice).
	Duplicates, ReusedIDs int64
	// DeadLetters written; HandedBack counts delayed redeliveries asked for.
	DeadLetters, HandedBack int64
	// InFlight is the requests being worked on now (pulled, not yet acked
	// or handed back).
	InFlight int
	// Paused reports a systemic pause.
	Paused bool
}

// Stats returns a snapshot of the counters.
func (w *Worker) Stats() Stats {
	w.mu.Lock()
	inflight, paused := w.active, w.paused
	w.mu.Unlock()
	s := &w.stats
	return Stats{
		OK: s.ok.Load(), Failed: s.failed.Load(), Invalid: s.invalid.Load(),
		Attempts: s.attempts.Load(), Retries: s.retries.Load(),
		Duplicates: s.duplicates.Load(), ReusedIDs: s.reused.Load(),
		DeadLetters: s.deadLetters.Load(), HandedBack: s.handedBack.Load(),
		InFlight: inflight, Paused: paused,
	}
}

// Ready returns nil while the worker is consuming and not paused, and an
// error saying why otherwise (wrapping ErrPaused or ErrNotConsuming). The
// message does not repeat the sentinel's "worker: " prefix (callers name the
// component): "paused since <time>: <reason>", "not consuming: <state>: <err>".
func (w *Worker) Ready() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.paused {
		return &readyError{ErrPaused, fmt.Sprintf("paused since %s: %s", w.pauseSince.UTC().Format(time.RFC3339), w.pauseReason)}
	}
	if w.state != "consuming" {
		if w.stateErr != nil {
			return &readyError{ErrNotConsuming, fmt.Sprintf("not consuming: %s: %v", w.state, w.stateErr)}
		}
		return &readyError{ErrNotConsuming, "not consuming: " + w.state}
	}
	return nil
}

// readyError is a Ready error: its own message, matching its sentinel.
type readyError struct {
	sentinel error
	msg      string
}

func (e *readyError) Error() string { return e.msg }
func (e *readyError) Unwrap() error { return e.sentinel }

// Paused reports whether the worker is paused on a systemic refusal.
func (w *Worker) Paused() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.paused
}

func (w *Worker) setState(state string, err error) {
	w.mu.Lock()
	changed := w.state != state
	w.state, w.stateErr = state, err
	w.mu.Unlock()
	if changed {
		if err != nil {
			w.log.Warn("worker state", "state", state, "err", err)
		} else {
			w.log.Info("worker state", "state", state)
		}
	}
}

func (w *Worker) notify() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Run consumes requests until ctx ends. Then it stops pulling, lets vendor
// calls in flight finish and publish within ShutdownTimeout, hands every
// other request back for immediate redelivery, and returns nil. It returns an
// error only for what a restart cannot fix: a provisioning conflict. Run
// must be called once per Worker.
func (w *Worker) Run(ctx context.Context) error {
	start := []any{"concurrency", w.cfg.Concurrency, "limiter", limiterKind(w.cfg.Limiter)}
	if w.cfg.Limiter == nil {
		start = append(start, "rate", w.cfg.Rate, "burst", w.cfg.Burst)
	}
	start = append(start, "no_provision", w.cfg.NoProvision, "shutdown_timeout", w.cfg.ShutdownTimeout.String())
	w.log.Info("worker starting", start...)
	// callCtx ends ShutdownTimeout after ctx: vendor calls in flight may finish.
	callCtx, cancelCalls := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelCalls()
	stopTimer := context.AfterFunc(ctx, func() {
		t := time.NewTimer(w.cfg.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancelCalls()
		case <-callCtx.Done():
		}
	})
	defer stopTimer()

	if err := w.setup(ctx); err != nil {
		w.setState("stopped", err)
		return err
	}

	var bg sync.WaitGroup
	bg.Go(func() { w.watchConsumer(ctx) })
	bg.Go(func() { w.captureMaxDeliveries(ctx, callCtx) })

	var handlers sync.WaitGroup
	w.pullLoop(ctx, callCtx, &handlers)
	before := w.Stats()
	naks0 := w.stats.shutdownNaks.Load()
	w.log.Info("worker stopping: waiting for requests in flight", "in_flight", before.InFlight, "timeout", w.cfg.ShutdownTimeout.String())
	handlers.Wait()
	bg.Wait() // advisories being handled finish, within callCtx
	cancelCalls()
	w.setState("stopped", nil)
	after := w.Stats()
	finished := (after.OK + after.Failed + after.Invalid + after.Duplicates + after.ReusedIDs + after.DeadLetters) -
		(before.OK + before.Failed + before.Invalid + before.Duplicates + before.ReusedIDs + before.DeadLetters)
	w.log.Info("worker stopped", "finished", finished,
		"handed_back", w.stats.shutdownNaks.Load()-naks0+after.HandedBack-before.HandedBack)
	return nil
}

// limiterKind names the limiter for logs: its Name() if it has one, else
// its type; the default is the local x/time/rate limiter.
func limiterKind(l Limiter) string {
	if l == nil {
		return "local"
	}
	if n, ok := l.(interface{ Name() string }); ok {
		return n.Name()
	}
	if _, ok := l.(*rate.Limiter); ok {
		return "local"
	}
	return fmt.Sprintf("%T", l)
}

// provisionOptions: a daemon creates what is missing and verifies what
// exists; it never changes an existing stream's limits (only `simlookup
// streams` does).
func (w *Worker) provisionOptions() schemas.ProvisionOptions {
	return schemas.ProvisionOptions{AckWait: w.cfg.AckWait, Logger: w.log}
}

// setup provisions (or waits for) the streams and the consumer, retrying
// with exponential backoff (up to 10s, or a minute for what only an operator
// fixes). A conflict ends Run; the server
// refusing to reserve the streams' storage is logged at ERROR with the hint
// on every attempt and shown by Ready.
func (w *Worker) setup(ctx context.Context) error {
	b := newBackoff(500*time.Millisecond, 10*time.Second)      // waiting, NATS away: notice soon
	permanent := newBackoff(500*time.Millisecond, time.Minute) // what only an operator fixes
	state := "provisioning"
	if w.cfg.NoProvision {
		state = "waiting"
	}
	w.setState(state, nil)
	for failures := 0; ; failures++ {
		var err error
		if w.cfg.NoProvision {
			_, err = w.js.Consumer(ctx, schemas.RequestStream, schemas.WorkerConsumer)
			if err != nil {
				err = fmt.Errorf("consumer %s/%s not found yet (--no-provision: waiting for it): %w", schemas.RequestStream, schemas.WorkerConsumer, err)
			}
		} else {
			err = schemas.ProvisionWith(ctx, w.js, w.cfg.StreamOptions, w.provisionOptions())
			if errors.Is(err, schemas.ErrConflict) {
				w.log.Error("provisioning refused: existing JetStream settings conflict", "err", err)
				return fmt.Errorf("worker: provision: %w", err)
			}
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		var d time.Duration
		if schemas.IsInsufficientStorage(err) {
			d = permanent.NextBackOff()
			err = fmt.Errorf("%w. %s", err, schemas.InsufficientStorageHint)
			w.log.Error("provisioning failed: the NATS server cannot reserve the streams' storage; retrying",
				"err", err, "attempt", failures+1, "retry_in", d.String())
		} else if d = b.NextBackOff(); failures == 0 || failures%10 == 0 {
			w.log.Warn("streams or consumer not ready yet; retrying", "state", state, "err", err, "attempt", failures+1, "retry_in", d.String())
		}
		w.mu.Lock()
		w.stateErr = err
		w.mu.Unlock()
		if !sleep(ctx, d) {
			return nil
		}
	}
}

// consumer returns the worker consumer, recreating it when it was deleted
// (unless NoProvision), and refreshes what the worker caches about it.
func (w *Worker) consumer(ctx context.Context) (jetstream.Consumer, error) {
	cons, err := w.js.Consumer(ctx, schemas.RequestStream, schemas.WorkerConsumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		if w.cfg.NoProvision {
			return nil, fmt.Errorf("consumer %s/%s does not exist (--no-provision: waiting for it): %w", schemas.RequestStream, schemas.WorkerConsumer, err)
		}
		w.log.Warn("worker consumer missing: recreating it", "err", err)
		if perr := schemas.ProvisionWith(ctx, w.js, w.cfg.StreamOptions, w.provisionOptions()); perr != nil {
			return nil, fmt.Errorf("recreate consumer: %w", perr)
		}
		cons, err = w.js.Consumer(ctx, schemas.RequestStream, schemas.WorkerConsumer)
	}
	if err != nil {
		return nil, fmt.Errorf("consumer %s/%s: %w", schemas.RequestStream, schemas.WorkerConsumer, err)
	}
	w.noteConsumer(cons.CachedInfo())
	st, err := w.js.Stream(ctx, schemas.RequestStream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", schemas.RequestStream, err)
	}
	w.mu.Lock()
	w.streamCreated = st.CachedInfo().Created
	w.mu.Unlock()
	return cons, nil
}

func (w *Worker) noteConsumer(info *jetstream.ConsumerInfo) {
	if info == nil {
		return
	}
	if aw := info.Config.AckWait; aw > 0 && int64(aw) != w.ackWait.Load() {
		w.ackWait.Store(int64(aw))
		w.log.Info("consumer ack wait", "ack_wait", aw.String())
	}
	w.maxDeliver.Store(int64(info.Config.MaxDeliver))
	w.m.pending.Set(float64(info.NumPending))
	w.m.ackPending.Set(float64(info.NumAckPending))
}

// watchConsumer polls the consumer's info for the metrics and for the
// AckWait the in-progress cadence follows.
func (w *Worker) watchConsumer(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cons, err := w.js.Consumer(ictx, schemas.RequestStream, schemas.WorkerConsumer)
		if err == nil {
			w.noteConsumer(cons.CachedInfo())
		}
		cancel()
	}
}

// allowance waits until the worker may pull, and reserves the slots it may
// fill: none while paused or while results cannot be stored, one at a time
// while the vendor-down breaker is open and nothing is in flight, else every
// free slot.
func (w *Worker) allowance(ctx context.Context) int {
	for {
		w.mu.Lock()
		n := w.cfg.Concurrency - w.inflight
		switch {
		case w.paused:
			n = 0
		case w.resultsBlocked && w.inflight > 0:
			n = 0
		case w.breakerOpen:
			n = min(n, 1-w.inflight)
		}
		if n > 0 {
			w.inflight += n
			w.m.pullSlots.Set(float64(w.inflight - w.active))
			w.mu.Unlock()
			return n
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0
		case <-w.wake:
		case <-time.After(time.Second):
		}
	}
}

func (w *Worker) release(n int) {
	if n <= 0 {
		return
	}
	w.mu.Lock()
	w.inflight -= n
	w.m.pullSlots.Set(float64(w.inflight - w.active))
	w.mu.Unlock()
	w.notify()
}

// working counts a request being worked on (+1) or finished (-1).
func (w *Worker) working(d int) {
	w.mu.Lock()
	w.active += d
	w.m.inflight.Set(float64(w.active))
	w.m.pullSlots.Set(float64(w.inflight - w.active))
	w.mu.Unlock()
}

func (w *Worker) fetchWait() time.Duration {
	if w.cfg.hooks.fetchWait > 0 {
		return w.cfg.hooks.fetchWait
	}
	return 5 * time.Second
}

// pullLoop is the supervised consumption loop: it (re)obtains the consumer,
// pulls exactly as many requests as there are slots for, hands each to a
// handler goroutine, and recovers from every error by backing off and
// looking the consumer up again.
func (w *Worker) pullLoop(ctx, callCtx context.Context, handlers *sync.WaitGroup) {
	b := newBackoff(250*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		cons, err := w.consumer(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.setState("reconnecting", err)
			sleep(ctx, b.NextBackOff())
			continue
		}
		w.setState("consuming", nil)
		for ctx.Err() == nil {
			n := w.allowance(ctx)
			if n == 0 {
				return
			}
			// The pull ends early when ctx does: the server delivers to a
			// pull request only while its reply subject has interest.
			fw := w.fetchWait()
			fctx, cancelFetch := context.WithTimeout(ctx, fw)
			batch, err := cons.Fetch(n, jetstream.FetchContext(fctx), jetstream.FetchHeartbeat(fw/3))
			if err != nil {
				cancelFetch()
				w.release(n)
				if ctx.Err() != nil {
					return
				}
				w.setState("reconnecting", fmt.Errorf("fetch: %w", err))
				break
			}
			got := 0
			for msg := range batch.Messages() {
				got++
				w.working(1)
				handlers.Go(func() {
					defer w.release(1)
					defer w.working(-1)
					w.handle(ctx, callCtx, msg)
				})
			}
			cancelFetch()
			w.release(n - got)
			if ctx.Err() != nil {
				return
			}
			if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				if errors.Is(err, jetstream.ErrNoHeartbeat) {
					w.log.Warn("fetch: missed heartbeats; pulling again")
					continue
				}
				w.setState("reconnecting", fmt.Errorf("fetch: %w", err))
				break
			}
			b.Reset()
		}
		if ctx.Err() == nil {
			sleep(ctx, b.NextBackOff())
		}
	}
}

// newBackoff is an exponential backoff with jitter and no elapsed-time limit.
func newBackoff(initial, maxInterval time.Duration) *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = initial
	b.MaxInterval = maxInterval
	b.MaxElapsedTime = 0
	b.RandomizationFactor = 0.3
	b.Reset()
	return b
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
