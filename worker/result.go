package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/worker/eiot"
)

func ptr[T any](v T) *T { return &v }

// baseResult fills what every result of this delivery carries.
func (w *Worker) baseResult(j *job) schemas.Result {
	now := w.cfg.Now().UTC()
	r := schemas.Result{
		SchemaVersion: schemas.SchemaVersion,
		RequestID:     j.requestID,
		Attempts:      j.attempts,
		Deliveries:    j.deliveries,
		RequestSeq:    j.meta.Sequence.Stream,
		RequestedAt:   j.meta.Timestamp.UTC(),
		CompletedAt:   now,
		Worker:        w.cfg.Name,
		Meta:          j.parsed.Meta,
	}
	if j.parsed.JobID != "" {
		r.JobID = ptr(j.parsed.JobID)
	}
	if lane := schemas.Lane(j.subject); lane != "" {
		r.Lane = ptr(lane)
	}
	if !j.firstCall.IsZero() {
		r.DurationMS = now.Sub(j.firstCall).Milliseconds()
	}
	return r
}

// invalidResult is the result of a request that could not be used.
func (w *Worker) invalidResult(j *job, ie *InvalidError) schemas.Result {
	r := w.baseResult(j)
	r.Status = schemas.StatusInvalid
	r.Input = inputPreview(j.data)
	r.Error = &schemas.ErrorInfo{Kind: schemas.KindInvalidInput, Code: ptr(ie.Code), Message: ie.Message}
	return r
}

// lookupResult is the result of a lookup that ended with an answer (or
// gave up by age): ok, or failed with the vendor's reason.
func (w *Worker) lookupResult(j *job) schemas.Result {
	r := w.baseResult(j)
	r.ICCID = j.parsed.ICCID
	r.ICCIDLuhnValid = ptr(j.parsed.LuhnValid)
	resp, e := j.lastResp, j.lastErr
	if resp != nil {
		if !resp.FetchedAt.IsZero() {
			r.FetchedAt = ptr(resp.FetchedAt.UTC())
		}
		if len(resp.Raw) > 0 {
			r.RawResponse = ptr(string(resp.Raw))
		}
	} else if e != nil && len(e.Raw) > 0 {
		r.RawResponse = ptr(string(e.Raw))
	}
	if e == nil {
		r.Status = schemas.StatusOK
		card := resp.Card
		r.Card = &card
		r.Extra = resp.Extra
		return r
	}
	r.Status = schemas.StatusFailed
	info := &schemas.ErrorInfo{Message: e.Message}
	if e.Code != "" {
		info.Code = ptr(e.Code)
	}
	if e.HTTPStatus != 0 {
		info.HTTPStatus = ptr(e.HTTPStatus)
	}
	switch {
	case e.Class == eiot.ClassNoData:
		info.Kind = schemas.KindNoData
		if info.Message == "" {
			info.Message = "the vendor answered code 200 without data"
		}
	case e.Class == eiot.ClassPermanent && e.Kind == eiot.KindVendorCode:
		info.Kind = schemas.KindVendor
	case e.Class == eiot.ClassPermanent && (e.Kind == eiot.KindHTTPStatus || e.Kind == eiot.KindErrorPage):
		info.Kind = schemas.KindHTTP
	case e.Class == eiot.ClassPermanent:
		info.Kind = e.Kind
	default:
		info.Kind = schemas.KindExhausted
		info.Retryable = true
		info.Message = fmt.Sprintf("gave up after %s (request age over the give-up limit of %s); last error: %s",
			pluralAttempts(j.attempts), w.cfg.GiveUpAfter, e.Error())
		if info.Code == nil {
			info.Code = ptr(e.Kind)
		}
	}
	if info.Message == "" {
		info.Message = e.Error()
	}
	r.Error = info
	return r
}

func pluralAttempts(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return strconv.Itoa(n) + " attempts"
}

// errShutdown: the worker stopped before the result could be stored.
var errShutdown = errors.New("worker: shutting down")

// finish publishes the result and acks the request after the PubAck. A
// result the stream refuses for good goes to the dead-letter stream with the
// request; a result that cannot be stored for now (stream full, NATS away)
// is retried while the request is held, and handed back at shutdown.
func (w *Worker) finish(ctx, callCtx context.Context, j *job, r schemas.Result) {
	seq := j.meta.Sequence.Stream
	data, err := json.Marshal(r)
	if err != nil { // cannot happen with these types; never lose the request over it
		w.log.Error("encode result", "request_id", j.requestID, "err", err)
		w.handBack(j.msg, j.requestID, "encode result")
		return
	}
	ack, err := w.publishResult(callCtx, r, data)
	if errors.Is(err, errShutdown) {
		w.remember(seq, j.attempts)
		w.nak(j, "shutdown before the result was stored")
		return
	}
	if err != nil {
		detail := fmt.Sprintf("the results stream refused the %s result (%d bytes): %v", r.Status, len(data), err)
		w.log.Error("result refused; dead-lettering the request", "request_id", j.requestID, "err", err)
		if derr := w.deadLetter(callCtx, schemas.ReasonResultRefused, detail, j.meta.Stream, j.msg.Subject(), seq,
			j.requestID, j.deliveries, j.msg.Headers(), j.msg.Data()); derr != nil {
			w.log.Error("dead letter failed; handing the request back", "request_id", j.requestID, "err", derr)
			w.remember(seq, j.attempts)
			w.handBack(j.msg, j.requestID, "dead letter failed")
			return
		}
		w.ack(callCtx, j)
		w.forget(seq)
		return
	}
	if ack.Duplicate {
		if j.deliveries <= 1 {
			w.stats.reused.Add(1)
			w.m.duplicates.WithLabelValues("reused_request_id").Inc()
			w.log.Warn("request_id reused: the results stream already has a result for it, no new result is stored",
				"request_id", j.requestID, "iccid", r.ICCID, "seq", seq)
		} else {
			w.stats.duplicates.Add(1)
			w.m.duplicates.WithLabelValues("redelivery").Inc()
		}
	} else {
		switch r.Status {
		case schemas.StatusOK:
			w.stats.ok.Add(1)
		case schemas.StatusFailed:
			w.stats.failed.Add(1)
		case schemas.StatusInvalid:
			w.stats.invalid.Add(1)
		}
		w.m.lookups.WithLabelValues(string(r.Status)).Inc()
	}
	if h := w.cfg.hooks.afterPublish; h != nil && h(j.requestID, j.deliveries) {
		return // simulated crash: the request stays unacked
	}
	w.ack(callCtx, j)
	w.forget(seq)
}

func (w *Worker) ack(ctx context.Context, j *job) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := j.msg.DoubleAck(actx); err != nil {
		// The result is stored; a redelivery publishes it again and the
		// stream's deduplication keeps one.
		w.log.Warn("ack failed after the result was stored (a redelivery will be deduplicated)", "request_id", j.requestID, "err", err)
	}
}

// permanentPublishError reports a refusal that no retry fixes: this
// message is too large for the stream or the server.
func permanentPublishError(err error) bool {
	if errors.Is(err, nats.ErrMaxPayload) || errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum
}

// publishResult stores the result, retrying transient failures (timeouts,
// no responders, a full stream) with backoff for as long as callCtx lasts;
// pulling stops meanwhile.
func (w *Worker) publishResult(callCtx context.Context, r schemas.Result, data []byte) (*jetstream.PubAck, error) {
	msg := nats.NewMsg(schemas.ResultSubject(r.Status, r.ICCID))
	msg.Data = data
	b := newBackoff(200*time.Millisecond, 5*time.Second)
	blocked := false
	defer func() {
		if blocked {
			w.setResultsBlocked(false)
		}
	}()
	for failures := 0; ; failures++ {
		pctx, cancel := context.WithTimeout(callCtx, 10*time.Second)
		ack, err := w.js.PublishMsg(pctx, msg, jetstream.WithMsgID(schemas.ResultMsgID(r.RequestID)),
			jetstream.WithExpectStream(schemas.ResultStream))
		cancel()
		if err == nil {
			return ack, nil
		}
		if permanentPublishError(err) {
			return nil, err
		}
		if callCtx.Err() != nil {
			return nil, errShutdown
		}
		if !blocked {
			blocked = true
			w.setResultsBlocked(true)
		}
		if failures == 0 || failures%20 == 0 {
			w.log.Warn("cannot store a result yet; holding the request and retrying", "request_id", r.RequestID, "failures", failures+1, "err", err)
		}
		if !sleep(callCtx, b.NextBackOff()) {
			return nil, errShutdown
		}
	}
}

func (w *Worker) setResultsBlocked(v bool) {
	w.mu.Lock()
	w.resultsBlocked = v
	w.mu.Unlock()
	if v {
		w.m.resultsBlocked.Set(1)
	} else {
		w.m.resultsBlocked.Set(0)
		w.notify()
	}
}

// deadLetter publishes a dead letter with the original message and waits
// for the PubAck. Its Nats-Msg-Id makes a repeat (two workers, a retry) one
// dead letter.
func (w *Worker) deadLetter(ctx context.Context, reason, detail, stream, subject string, seq uint64,
	requestID string, deliveries uint64, hdr nats.Header, payload []byte) error {
	w.mu.Lock()
	created := w.streamCreated
	w.mu.Unlock()
	dl := schemas.DeadLetter{
		SchemaVersion: schemas.SchemaVersion, Reason: reason, Detail: detail, At: w.cfg.Now().UTC(), Worker: w.cfg.Name,
		Stream: stream, Subject: subject, Sequence: seq, RequestID: requestID, Deliveries: deliveries,
		Headers: map[string][]string(hdr), Payload: payload,
	}
	data, err := json.Marshal(dl)
	if err != nil {
		return fmt.Errorf("encode dead letter: %w", err)
	}
	id := fmt.Sprintf("dlq:%s:%s:%d:%d", reason, stream, created.UnixNano(), seq)
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := w.js.Publish(pctx, schemas.DLQSubject(reason), data, jetstream.WithMsgID(id),
		jetstream.WithExpectStream(schemas.DLQStream)); err != nil {
		return fmt.Errorf("publish dead letter: %w", err)
	}
	w.stats.deadLetters.Add(1)
	w.m.deadLetters.WithLabelValues(reason).Inc()
	return nil
}

// maxDeliveriesAdvisory is the server's JSConsumerDeliveryExceededAdvisory.
type maxDeliveriesAdvisory struct {
	Stream     string `json:"stream"`
	Consumer   string `json:"consumer"`
	StreamSeq  uint64 `json:"stream_seq"`
	Deliveries uint64 `json:"deliveries"`
}

// MaxDeliveriesSubject is the server advisory published when the worker
// consumer gives up redelivering a request.
const MaxDeliveriesSubject = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + schemas.RequestStream + "." + schemas.WorkerConsumer

// captureMaxDeliveries is the safety net for requests past MaxDeliver that
// no handler saw at its last delivery: on the server's advisory, fetch the
// request by sequence, dead-letter it and delete it. Worker processes share
// the advisories through a queue group. It returns when ctx ends and the
// advisories being handled are done (they may go on until callCtx ends).
func (w *Worker) captureMaxDeliveries(ctx, callCtx context.Context) {
	nc := w.js.Conn()
	if nc == nil {
		return
	}
	var (
		mu       sync.Mutex
		stopped  bool
		handling sync.WaitGroup
	)
	sub, err := nc.QueueSubscribe(MaxDeliveriesSubject, schemas.WorkerConsumer, func(m *nats.Msg) {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return // Run is returning; the advisory goes to another worker or is lost like a crash's
		}
		handling.Add(1)
		mu.Unlock()
		defer handling.Done()
		var adv maxDeliveriesAdvisory
		if err := json.Unmarshal(m.Data, &adv); err != nil || adv.StreamSeq == 0 {
			w.log.Warn("unreadable max-deliveries advisory", "err", err)
			return
		}
		w.deadLetterBySeq(callCtx, adv)
	})
	if err != nil {
		w.log.Error("cannot subscribe to max-deliveries advisories", "err", err)
		return
	}
	<-ctx.Done()
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		w.log.Warn("unsubscribe from max-deliveries advisories", "err", err)
	}
	mu.Lock()
	stopped = true
	mu.Unlock()
	handling.Wait()
}

// deadLetterBySeq handles one advisory within 30 s and until callCtx ends.
func (w *Worker) deadLetterBySeq(callCtx context.Context, adv maxDeliveriesAdvisory) {
	ctx, cancel := context.WithTimeout(callCtx, 30*time.Second)
	defer cancel()
	st, err := w.js.Stream(ctx, schemas.RequestStream)
	if err != nil {
		w.log.Error("max deliveries: stream lookup failed", "seq", adv.StreamSeq, "err", err)
		return
	}
	raw, err := st.GetMsg(ctx, adv.StreamSeq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return // already dead-lettered and removed by its handler
	}
	if err != nil {
		w.log.Error("max deliveries: fetching the request failed", "seq", adv.StreamSeq, "err", err)
		return
	}
	p, _ := ParseRequest(raw.Data, w.cfg.MaxRequestBytes)
	reqID := p.RequestID
	if reqID == "" {
		reqID = raw.Header.Get(jetstream.MsgIDHeader)
	}
	if reqID == "" {
		reqID = schemas.RequestStream + ":" + strconv.FormatInt(st.CachedInfo().Created.UnixNano(), 10) + ":" + strconv.FormatUint(raw.Sequence, 10)
	}
	if err := w.deadLetter(ctx, schemas.ReasonMaxDeliveries,
		fmt.Sprintf("the consumer stopped redelivering after %d deliveries (server advisory)", adv.Deliveries),
		schemas.RequestStream, raw.Subject, raw.Sequence, reqID, adv.Deliveries, raw.Header, raw.Data); err != nil {
		w.log.Error("max deliveries: dead letter failed; the request stays in the stream", "seq", adv.StreamSeq, "err", err)
		return
	}
	if err := st.DeleteMsg(ctx, adv.StreamSeq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		w.log.Warn("max deliveries: delete after dead letter failed", "seq", adv.StreamSeq, "err", err)
	}
	w.log.Warn("request dead-lettered: past the delivery limit", "seq", adv.StreamSeq, "request_id", reqID, "deliveries", adv.Deliveries)
}

// loadSecret reads SecretFile and gives a changed secret to the client.
func (w *Worker) loadSecret() (changed bool, err error) {
	s, err := sign.ReadSecretFile(w.cfg.SecretFile)
	if err != nil {
		return false, err
	}
	w.mu.Lock()
	changed = !s.Equal(w.secret)
	w.secret = s
	w.mu.Unlock()
	if changed {
		w.cfg.Client.(SecretSetter).SetSecret(s)
	}
	return changed, nil
}

// ReloadSecret re-reads Config.SecretFile now (the CLI calls it on SIGHUP)
// and, while paused, makes the next probe happen at once. Without a
// SecretFile it only triggers the probe.
func (w *Worker) ReloadSecret() error {
	var err error
	if w.cfg.SecretFile != "" {
		var changed bool
		changed, err = w.loadSecret()
		if err != nil {
			w.log.Error("reload secret failed", "secret_file", w.cfg.SecretFile, "err", err)
			err = fmt.Errorf("worker: reload secret: %w", err)
		} else {
			w.log.Info("secret reloaded", "secret_file", w.cfg.SecretFile, "changed", changed)
		}
	}
	select {
	case w.reload <- struct{}{}:
	default:
	}
	return err
}
