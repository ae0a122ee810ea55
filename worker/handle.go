package worker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/worker/eiot"
)

// job is one delivery of a request being worked on.
type job struct {
	msg        jetstream.Msg // nil in benchmarks
	subject    string
	data       []byte
	meta       *jetstream.MsgMetadata
	requestID  string
	parsed     Parsed
	attempts   int // over the deliveries this process saw
	firstCall  time.Time
	lastErr    *eiot.Error
	lastResp   *eiot.Response
	retries    int
	probing    bool
	deliveries uint64
}

// outcome of working on a delivery.
type outcome int

const (
	outcomeResult   outcome = iota // publish the result, then ack
	outcomeHandBack                // NakWithDelay(delay)
	outcomeShutdown                // Nak for immediate redelivery
)

// handle works on one delivered request until it is acked or handed back.
// ctx ends at shutdown (stop waiting); callCtx ends ShutdownTimeout later
// (abandon vendor calls and publishes).
func (w *Worker) handle(ctx, callCtx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		w.log.Error("delivered message without JetStream metadata; handing it back", "subject", msg.Subject(), "err", err)
		w.handBack(msg, "", "no metadata")
		return
	}
	stopBeat := w.heartbeat(msg)
	defer stopBeat()

	j := &job{msg: msg, subject: msg.Subject(), data: msg.Data(), meta: meta, deliveries: meta.NumDelivered}
	seq := meta.Sequence.Stream
	w.mu.Lock()
	j.attempts = w.attempts[seq]
	w.mu.Unlock()

	if ctx.Err() != nil {
		w.nak(j, "shutdown")
		return
	}
	parsed, perr := ParseRequest(msg.Data(), w.cfg.MaxRequestBytes)
	j.parsed = parsed
	j.requestID = w.identity(msg, meta, parsed.RequestID)
	if md := w.maxDeliver.Load(); md > 0 && int64(meta.NumDelivered) >= md {
		if err := w.deadLetter(callCtx, schemas.ReasonMaxDeliveries,
			fmt.Sprintf("delivered %d times (the consumer's MaxDeliver is %d)", meta.NumDelivered, md),
			meta.Stream, msg.Subject(), seq, j.requestID, meta.NumDelivered, msg.Headers(), msg.Data()); err != nil {
			w.log.Error("dead letter failed; handing the request back", "seq", seq, "err", err)
			w.handBack(msg, j.requestID, "dead letter failed")
			return
		}
		if err := msg.TermWithReason(schemas.ReasonMaxDeliveries); err != nil {
			w.log.Warn("term after dead letter failed", "seq", seq, "err", err)
		}
		w.forget(seq)
		return
	}

	if perr != nil {
		var ie *InvalidError
		if !errors.As(perr, &ie) {
			// ParseRequest only returns *InvalidError; should that change,
			// the request still gets its invalid result, not a panic.
			ie = &InvalidError{Code: ReasonBadJSON, Message: perr.Error()}
		}
		w.finish(ctx, callCtx, j, w.invalidResult(j, ie))
		return
	}

	out, delay := w.lookup(ctx, callCtx, j)
	switch out {
	case outcomeShutdown:
		w.remember(seq, j.attempts)
		w.nak(j, "shutdown")
	case outcomeHandBack:
		w.remember(seq, j.attempts)
		w.stats.handedBack.Add(1)
		if err := msg.NakWithDelay(delay); err != nil {
			w.log.Warn("nak with delay failed (the request comes back after the ack wait)", "request_id", j.requestID, "err", err)
		}
	case outcomeResult:
		w.finish(ctx, callCtx, j, w.lookupResult(j))
	}
}

// handBack asks for a redelivery after RedeliveryDelay; if even that fails,
// the request comes back after the ack wait.
func (w *Worker) handBack(msg jetstream.Msg, requestID, why string) {
	if err := msg.NakWithDelay(w.cfg.RedeliveryDelay); err != nil {
		w.log.Warn("nak with delay failed (the request comes back after the ack wait)", "request_id", requestID, "why", why, "err", err)
	}
}

func (w *Worker) nak(j *job, why string) {
	w.stats.shutdownNaks.Add(1)
	if err := j.msg.Nak(); err != nil {
		w.log.Warn("nak failed (the request comes back after the ack wait)", "request_id", j.requestID, "why", why, "err", err)
	}
}

func (w *Worker) remember(seq uint64, attempts int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.attempts) >= 100_000 {
		clear(w.attempts)
	}
	w.attempts[seq] = attempts
}

func (w *Worker) forget(seq uint64) {
	w.mu.Lock()
	delete(w.attempts, seq)
	w.mu.Unlock()
}

// heartbeat tells JetStream every third of the consumer's AckWait that msg
// is still being worked on, until the returned stop is called.
func (w *Worker) heartbeat(msg jetstream.Msg) (stop func()) {
	if w.cfg.hooks.noInProgress {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			every := time.Duration(w.ackWait.Load()) / 3
			t := time.NewTimer(max(every, 50*time.Millisecond))
			select {
			case <-done:
				t.Stop()
				return
			case <-t.C:
			}
			if err := msg.InProgress(); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
				w.log.Debug("in-progress signal failed", "subject", msg.Subject(), "err", err)
			}
		}
	}()
	return func() { close(done); <-finished }
}

// identity is the request's id: its request_id, else its Nats-Msg-Id, else
// "<stream>:<stream created, unix ns>:<sequence>" (a recreated stream never
// reuses an identity).
func (w *Worker) identity(msg jetstream.Msg, meta *jetstream.MsgMetadata, requestID string) string {
	if requestID != "" {
		return requestID
	}
	if h := msg.Headers(); h != nil {
		if id := h.Get(jetstream.MsgIDHeader); id != "" && len(id) <= MaxRequestIDLen {
			return id
		}
	}
	w.mu.Lock()
	created := w.streamCreated
	w.mu.Unlock()
	return meta.Stream + ":" + strconv.FormatInt(created.UnixNano(), 10) + ":" + strconv.FormatUint(meta.Sequence.Stream, 10)
}

// lookup calls the vendor until it gives an answer that makes a result, the
// retry budget of this delivery is spent, or the worker shuts down.
func (w *Worker) lookup(ctx, callCtx context.Context, j *job) (outcome, time.Duration) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = w.cfg.RetryInitial
	b.MaxInterval = w.cfg.RetryMax
	b.MaxElapsedTime = w.cfg.RetryBudget
	b.RandomizationFactor = 0.5
	b.Reset()
	probe := newBackoff(w.cfg.ProbeInitial, w.cfg.ProbeMax)
	replays := 0
	firstOfDelivery := true
	for {
		if !j.probing && w.Paused() {
			held, ok := w.holdPaused(ctx)
			if !ok {
				return outcomeShutdown, 0
			}
			if !held {
				return outcomeHandBack, w.pausedDelay()
			}
			// Resumed: try again at once (after the limiter).
		}
		if err := w.wait(ctx); err != nil {
			return outcomeShutdown, 0
		}
		if !firstOfDelivery {
			w.stats.retries.Add(1)
			w.m.retries.Inc()
		}
		firstOfDelivery = false
		if j.firstCall.IsZero() {
			j.firstCall = w.cfg.Now()
		}
		j.attempts++
		w.stats.attempts.Add(1)
		w.m.attempts.Inc()
		t0 := time.Now()
		resp, err := w.cfg.Client.Lookup(callCtx, j.parsed.ICCID)
		w.m.latency.Observe(time.Since(t0).Seconds())
		if err == nil {
			w.accepted(j)
			j.lastResp, j.lastErr = resp, nil
			return outcomeResult, 0
		}
		if callCtx.Err() != nil || errors.Is(err, context.Canceled) {
			return outcomeShutdown, 0
		}
		var e *eiot.Error
		if !errors.As(err, &e) {
			e = &eiot.Error{Class: eiot.ClassRetryable, Kind: eiot.KindTransport, Message: err.Error(), Err: err}
		}
		j.lastResp, j.lastErr = resp, e
		w.m.vendorErrors.WithLabelValues(e.Kind, metricCode(e.Code)).Inc()

		switch e.Class {
		case eiot.ClassNoData, eiot.ClassPermanent:
			w.accepted(j)
			return outcomeResult, 0
		case eiot.ClassSystemic:
			if !j.probing {
				if !w.pause(e, j) {
					continue // held (or handed back) at the top of the loop
				}
				j.probing = true
			} else {
				w.log.Warn("vendor still refuses this deployment; probing again", "kind", e.Kind, "code", e.Code,
					"http_status", e.HTTPStatus, "message", e.Message)
			}
			if !w.probeWait(ctx, probe.NextBackOff()) {
				w.stopProbing()
				return outcomeShutdown, 0
			}
			continue
		case eiot.ClassReplay:
			replays++
			if replays <= w.cfg.MaxReplays {
				continue // at once, freshly signed
			}
		}
		// Retryable (or a replay past its bound).
		if e.Class == eiot.ClassRetryable {
			if e.HTTPStatus == 429 || e.Kind == eiot.KindVendorCode {
				if w.fb != nil {
					w.fb.Throttled(e.RetryAfter)
				}
			} else {
				w.vendorFailed()
			}
		}
		if j.probing {
			// Not a refusal of the credentials, but not an acceptance either:
			// stay paused and probe again later.
			if !w.probeWait(ctx, probe.NextBackOff()) {
				w.stopProbing()
				return outcomeShutdown, 0
			}
			continue
		}
		if e.RetryAfter > w.cfg.RetryMax {
			// The vendor asks for a longer pause than a retry within this
			// delivery may wait: hand the request back instead of holding it.
			return w.budgetSpent(j, e.RetryAfter)
		}
		d := b.NextBackOff()
		if d == backoff.Stop {
			return w.budgetSpent(j, 0)
		}
		d = max(d, e.RetryAfter)
		if !sleep(ctx, d) {
			return outcomeShutdown, 0
		}
	}
}

// wait waits on the limiter and records the wait.
func (w *Worker) wait(ctx context.Context) error {
	t0 := time.Now()
	defer func() { w.m.limiterWait.Observe(time.Since(t0).Seconds()) }()
	for {
		err := w.lim.Wait(ctx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		// A limiter that fails for another reason (e.g. the fleet limiter
		// cannot reach NATS) is waited out, never skipped.
		w.log.Warn("rate limiter failed; waiting before trying again", "err", err)
		if !sleep(ctx, time.Second) {
			return ctx.Err()
		}
	}
}

// accepted records a call the vendor answered (not a transport failure).
func (w *Worker) accepted(j *job) {
	if w.fb != nil {
		w.fb.Succeeded()
	}
	w.mu.Lock()
	w.consecFailures = 0
	wasOpen := w.breakerOpen
	w.breakerOpen = false
	w.m.breaker.Set(0)
	w.mu.Unlock()
	if wasOpen {
		w.log.Info("vendor answers again: pulling resumes")
		w.notify()
	}
	if j.probing {
		w.resume()
		j.probing = false
	}
}

// vendorFailed counts a 5xx, timeout, reset or malformed answer; a run of
// BreakerFailures opens the breaker.
func (w *Worker) vendorFailed() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.consecFailures++
	if !w.breakerOpen && w.consecFailures >= w.cfg.BreakerFailures {
		w.breakerOpen = true
		w.m.breaker.Set(1)
		w.log.Warn("vendor looks down: pulling stops beyond the requests being retried", "consecutive_failures", w.consecFailures)
	}
}

// budgetSpent decides after the retries of one delivery failed: hand back
// with a delay (RedeliveryDelay doubling per delivery up to RedeliveryMax,
// and never under atLeast, a long Retry-After) while the request is young
// enough, else give up.
func (w *Worker) budgetSpent(j *job, atLeast time.Duration) (outcome, time.Duration) {
	delay := w.cfg.RedeliveryDelay
	for i := uint64(1); i < j.deliveries && delay < w.cfg.RedeliveryMax; i++ {
		delay *= 2
	}
	delay = max(min(delay, w.cfg.RedeliveryMax), atLeast)
	age := w.cfg.Now().Sub(j.meta.Timestamp)
	if age+delay < w.cfg.GiveUpAfter {
		w.log.Info("retries of this delivery spent; handing the request back", "request_id", j.requestID,
			"iccid", j.parsed.ICCID, "delay", delay.String(), "deliveries", j.deliveries, "last_error", j.lastErr.Error())
		return outcomeHandBack, delay
	}
	return outcomeResult, 0 // lookupResult sees the retryable lastErr: exhausted
}

// pause stops new work after a systemic refusal. It reports whether the
// caller is to probe the vendor (the first to see the refusal while no one
// else probes).
func (w *Worker) pause(e *eiot.Error, j *job) (prober bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.paused {
		w.paused = true
		w.resumed = make(chan struct{})
		w.pauseSince = w.cfg.Now()
		w.pauseReason = fmt.Sprintf("the vendor refuses this deployment (%s): fix the credentials, the clock or the URL; requests are kept", e.Error())
		w.m.paused.Set(1)
		w.log.Error("PAUSED: the vendor refuses this deployment's requests; no request is failed, none is taken until a probe is accepted",
			"kind", e.Kind, "code", e.Code, "http_status", e.HTTPStatus, "message", e.Message, "secret_file", w.cfg.SecretFile)
	}
	if w.probing {
		return false
	}
	w.probing = true
	w.log.Info("probing the vendor with a held request", "request_id", j.requestID, "iccid", j.parsed.ICCID)
	return true
}

// pausedHold is how many requests a paused worker holds in progress, the
// probe included; they go on the moment a probe is accepted. Others are
// handed back with pausedDelay, so other worker processes may take them
// and this one finds them again soon after it resumes.
const pausedHold = 3

// holdPaused holds the request while the worker is paused, if a hold slot
// is free: it returns held true once the worker resumed (or was not paused),
// held false when the request is to be handed back, and ok false when ctx
// ended first.
func (w *Worker) holdPaused(ctx context.Context) (held, ok bool) {
	w.mu.Lock()
	if !w.paused {
		w.mu.Unlock()
		return true, true
	}
	probe := 0
	if w.probing {
		probe = 1
	}
	if w.held+probe >= pausedHold {
		w.mu.Unlock()
		return false, true
	}
	w.held++
	resumed := w.resumed
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.held--
		w.mu.Unlock()
	}()
	select {
	case <-resumed:
		return true, true
	case <-ctx.Done():
		return true, false
	}
}

// pausedDelay is the NakWithDelay of a request handed back while paused:
// no longer than the first probe interval, so a resumed worker (or another
// process) gets it back promptly; nobody pulls it while every worker is
// paused.
func (w *Worker) pausedDelay() time.Duration {
	return min(w.cfg.RedeliveryDelay, w.cfg.ProbeInitial)
}

func (w *Worker) stopProbing() {
	w.mu.Lock()
	w.probing = false
	w.mu.Unlock()
}

func (w *Worker) resume() {
	w.mu.Lock()
	was := w.paused
	since := w.pauseSince
	w.paused, w.probing, w.pauseReason = false, false, ""
	if was {
		close(w.resumed) // held requests go on at once
	}
	w.m.paused.Set(0)
	w.mu.Unlock()
	if was {
		w.log.Warn("RESUMED: the vendor accepts this deployment again", "paused_for", w.cfg.Now().Sub(since).Round(time.Millisecond).String())
		w.notify()
	}
}

// probeWait waits before the next probe, cut short by ReloadSecret, and
// re-reads the secret file.
func (w *Worker) probeWait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-w.reload:
	}
	if w.cfg.SecretFile != "" {
		if changed, err := w.loadSecret(); err != nil {
			w.log.Error("re-reading the secret file failed", "secret_file", w.cfg.SecretFile, "err", err)
		} else if changed {
			w.log.Info("secret reloaded", "secret_file", w.cfg.SecretFile, "changed", true, "trigger", "probe")
		}
	}
	return true
}

func metricCode(code string) string {
	if code == "" {
		return "none"
	}
	if len(code) > 12 {
		return "other"
	}
	for _, c := range code {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-') {
			return "other"
		}
	}
	return code
}
