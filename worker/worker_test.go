package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/simlookup/simlookup/internal/natstest"
	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/worker/eiot"
	"github.com/simlookup/simlookup/worker/eiot/eiottest"
)

// onePerRequest checks that results has exactly one result per id in want.
func onePerRequest(t *testing.T, results []schemas.Result, want map[string]bool) map[schemas.Status]int {
	t.Helper()
	seen := map[string]int{}
	byStatus := map[schemas.Status]int{}
	for _, r := range results {
		seen[r.RequestID]++
		byStatus[r.Status]++
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("request %s has %d results, want 1", id, seen[id])
		}
	}
	for id, n := range seen {
		if !want[id] {
			t.Errorf("unexpected result for %s (%d)", id, n)
		}
	}
	return byStatus
}

func TestThousandRequestsOneResultEach(t *testing.T) {
	t.Parallel()
	const n, r, burst = 1000, 400, 5
	b := setup(t, eiottest.Config{NotFound: func(s string) bool { return strings.HasSuffix(s, "7") }})
	cfg := b.config()
	cfg.Rate, cfg.Burst, cfg.Concurrency = r, burst, 32
	want := map[string]bool{}
	for i := range n {
		id := fmt.Sprintf("job-1:%06d", i)
		want[id] = true
		body := schemas.Request{ICCID: iccid(i), RequestID: id, JobID: "job-1"}
		if i%100 == 99 {
			body.ICCID = "not-an-iccid"
		}
		b.publishJSON(body)
	}
	w, stop := b.run(cfg)
	b.waitResults(n, 60*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	byStatus := onePerRequest(t, b.results(), want)
	st := w.Stats()
	t.Logf("by status %v; stats %+v; fake %+v", byStatus, st, b.fake.Stats().MaxWindow)
	if byStatus[schemas.StatusInvalid] != 10 || byStatus[schemas.StatusOK]+byStatus[schemas.StatusFailed] != n-10 {
		t.Errorf("by status %v", byStatus)
	}
	if int(st.OK+st.Failed+st.Invalid) != n {
		t.Errorf("stats count %d results", st.OK+st.Failed+st.Invalid)
	}
	// The quota bound is asserted by TestRateLimitHeldWithRetries, at a rate
	// where a loaded machine's arrival jitter (≪ 1/rate) cannot bunch calls.
	if got := streamMsgs(t, b.ctx, b.js, schemas.RequestStream); got != 0 {
		t.Errorf("%d requests left in the work queue", got)
	}
}

// Not parallel, and at a low rate: the fake measures arrival times, and a
// token bucket reaches exactly rate+burst in a closed one-second window, so
// arrivals bunched by a loaded machine by more than one token interval
// (1/rate) would show one more.
func TestRateLimitHeldWithRetries(t *testing.T) {
	const r, burst, n = 8, 2, 30
	b := setup(t, eiottest.Config{Faults: eiottest.Faults{Rate5xx: 0.3, Seed: 7}})
	cfg := b.config()
	cfg.Rate, cfg.Burst, cfg.Concurrency = r, burst, 16
	for i := range n {
		b.publish(schemas.RequestSubject, []byte(iccid(i)), nil)
	}
	_, stop := b.run(cfg)
	b.waitResults(n, 40*time.Second)
	_ = stop()
	fs := b.fake.Stats()
	t.Logf("fake: total %d, max window %d", fs.Total, fs.MaxWindow)
	if fs.Total <= n {
		t.Errorf("expected retries: total %d", fs.Total)
	}
	if fs.MaxWindow > r+burst {
		t.Errorf("vendor saw %d requests in one second, limit %d+%d", fs.MaxWindow, r, burst)
	}
}

func TestCrashBetweenPublishAndAckStoresOneResult(t *testing.T) {
	t.Parallel()
	b := setup(t, eiottest.Config{})
	cfg := b.config()
	var crashed atomic.Int32
	cfg.hooks.afterPublish = func(id string, deliveries uint64) bool {
		return deliveries == 1 && crashed.Add(1) > 0 // every first delivery "crashes" before its ack
	}
	want := map[string]bool{}
	for i := range 5 {
		id := fmt.Sprintf("crash-%d", i)
		want[id] = true
		b.publishJSON(schemas.Request{ICCID: iccid(i), RequestID: id})
	}
	w, stop := b.run(cfg)
	waitFor(t, 20*time.Second, "redeliveries acked", func() bool {
		return w.Stats().Duplicates == 5 && streamMsgs(t, b.ctx, b.js, schemas.RequestStream) == 0
	})
	_ = stop()
	results := b.results()
	onePerRequest(t, results, want)
	for _, r := range results {
		if r.Deliveries != 1 {
			t.Errorf("stored result is from delivery %d, want the first", r.Deliveries)
		}
	}
	if crashed.Load() != 5 {
		t.Errorf("crashed %d times", crashed.Load())
	}
	if st := w.Stats(); st.ReusedIDs != 0 {
		t.Errorf("a redelivery counted as a reused request id: %+v", st)
	}
}

func TestSlowLookupIsNotRedelivered(t *testing.T) {
	t.Parallel()
	for _, control := range []bool{false, true} {
		name := "in_progress"
		if control {
			name = "control_without_in_progress"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, eiottest.Config{Faults: eiottest.Faults{Latency: 2500 * time.Millisecond}})
			// Another process provisioned a 1s AckWait; this worker's own
			// setting is the default, and its cadence must follow the consumer.
			if err := schemas.Provision(b.ctx, b.js, testStreams, time.Second); err != nil {
				t.Fatal(err)
			}
			cfg := b.config()
			cfg.AckWait = 0
			cfg.Client = b.newClient(sign.NewSecret(testSecret), 10*time.Second)
			cfg.hooks.noInProgress = control
			cfg.Concurrency = 4
			card := iccid(42)
			b.publishJSON(schemas.Request{ICCID: card, RequestID: "slow"})
			w, stop := b.run(cfg)
			if control {
				waitFor(t, 20*time.Second, "a redelivery", func() bool { return b.fake.Stats().PerICCID[card] >= 2 })
				_ = stop()
				return
			}
			b.waitResults(1, 20*time.Second)
			_ = stop()
			res := b.results()
			if len(res) != 1 || res[0].Deliveries != 1 || res[0].Status != schemas.StatusOK {
				t.Fatalf("results %+v", res)
			}
			if calls := b.fake.Stats().PerICCID[card]; calls != 1 {
				t.Errorf("vendor called %d times for the slow card", calls)
			}
			if st := w.Stats(); st.Duplicates != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestDelayedRetriesDoNotBlockNewWork(t *testing.T) {
	t.Parallel()
	b := setup(t, eiottest.Config{})
	stuck := map[string]bool{}
	for i := range 20 {
		stuck[iccid(1000+i)] = true
	}
	cfg := b.config()
	cfg.Concurrency = 4
	cfg.RetryBudget = 100 * time.Millisecond
	cfg.RedeliveryDelay, cfg.RedeliveryMax = time.Minute, time.Minute
	cfg.Client = lookerFunc(func(ctx context.Context, card string) (*eiot.Response, error) {
		if stuck[card] {
			return nil, &eiot.Error{Class: eiot.ClassRetryable, Kind: eiot.KindHTTPStatus, HTTPStatus: 503, Message: "busy"}
		}
		return b.client.Lookup(ctx, card)
	})
	for c := range stuck {
		b.publish(schemas.RequestSubject, []byte(c), nil)
	}
	w, stop := b.run(cfg)
	waitFor(t, 20*time.Second, "20 requests handed back", func() bool { return w.Stats().HandedBack >= 20 })
	for i := range 40 {
		b.publish(schemas.RequestSubject, []byte(iccid(i)), nil)
	}
	b.waitResults(40, 20*time.Second)
	_ = stop()
	for _, r := range b.results() {
		if stuck[r.ICCID] {
			t.Errorf("stuck card %s has a result", r.ICCID)
		}
	}
}

func TestFaultOutcomes(t *testing.T) {
	t.Parallel()
	type check func(t *testing.T, r schemas.Result, lim *recLimiter)
	okAfterRetry := func(t *testing.T, r schemas.Result, _ *recLimiter) {
		if r.Status != schemas.StatusOK || r.Attempts < 2 || r.Card == nil {
			t.Errorf("want ok after a retry, got %s attempts %d error %+v", r.Status, r.Attempts, r.Error)
		}
	}
	failed := func(kind, code string) check {
		return func(t *testing.T, r schemas.Result, _ *recLimiter) {
			if r.Status != schemas.StatusFailed || r.Error == nil || r.Error.Kind != kind || r.Error.Code == nil || *r.Error.Code != code {
				t.Errorf("want failed %s/%s, got %s %+v", kind, code, r.Status, r.Error)
			}
			if r.RawResponse == nil {
				t.Errorf("failed result without the raw response")
			}
			if r.Attempts != 1 {
				t.Errorf("attempts %d, want 1 (no retry)", r.Attempts)
			}
		}
	}
	tests := []struct {
		name   string
		faults eiottest.Faults
		clear  bool // clear the faults once the first attempt failed
		check  check
		cfg    func(*Config)
	}{
		{"5xx", eiottest.Faults{Rate5xx: 1}, true, okAfterRetry, nil},
		{"429 retry-after", eiottest.Faults{Rate429: 1, RetryAfter: time.Second}, true,
			func(t *testing.T, r schemas.Result, lim *recLimiter) {
				okAfterRetry(t, r, lim)
				lim.mu.Lock()
				defer lim.mu.Unlock()
				if len(lim.throttled) == 0 || lim.throttled[0] != time.Second {
					t.Errorf("limiter told of throttling %v, want [1s ...]", lim.throttled)
				}
				if r.Deliveries != 1 {
					t.Errorf("retried in %d deliveries, want within the first", r.Deliveries)
				}
			}, func(c *Config) { c.RetryMax = 2 * time.Second }},
		{"hang", eiottest.Faults{RateHang: 1, Hang: 10 * time.Second}, true, okAfterRetry, nil},
		{"malformed", eiottest.Faults{RateMalformed: 1}, true, okAfterRetry, nil},
		{"reset", eiottest.Faults{RateReset: 1}, true, okAfterRetry, nil},
		{"busy code", eiottest.Faults{RateVendorCode: 1, VendorCode: "10007"}, true, okAfterRetry, nil},
		{"replay", eiottest.Faults{RateVendorCode: 1, VendorCode: eiot.DefaultReplayCode}, true, okAfterRetry, nil},
		{"vendor code", eiottest.Faults{RateVendorCode: 1, VendorCode: "10099"}, false, failed(schemas.KindVendor, "10099"), nil},
		{"no data", eiottest.Faults{RateNoData: 1}, false, failed(schemas.KindNoData, "200"), nil},
		{"exhausted", eiottest.Faults{Rate5xx: 1}, false, func(t *testing.T, r schemas.Result, _ *recLimiter) {
			if r.Status != schemas.StatusFailed || r.Error == nil || r.Error.Kind != schemas.KindExhausted || !r.Error.Retryable {
				t.Errorf("want failed exhausted, got %s %+v", r.Status, r.Error)
			}
			// The message says why it gave up and what the last (5xx) error was.
			if r.Error != nil && (!strings.Contains(r.Error.Message, "gave up after") ||
				!strings.Contains(r.Error.Message, "last error: eiot: retryable") || !strings.Contains(r.Error.Message, " http 5")) {
				t.Errorf("exhausted message lacks the last error: %q", r.Error.Message)
			}
		}, func(c *Config) { c.RetryBudget = 150 * time.Millisecond; c.GiveUpAfter = 500 * time.Millisecond }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, eiottest.Config{Faults: tt.faults})
			cfg := b.config()
			cfg.Client = b.newClient(sign.NewSecret(testSecret), 300*time.Millisecond)
			lim := &recLimiter{Limiter: rate.NewLimiter(rate.Inf, 1)}
			cfg.Limiter = lim
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			card := iccid(7)
			b.publishJSON(schemas.Request{ICCID: card, RequestID: "fault"})
			_, stop := b.run(cfg)
			if tt.clear {
				waitFor(t, 20*time.Second, "a failed attempt", func() bool { return b.fake.Stats().Total >= 1 })
				b.fake.SetFaults(eiottest.Faults{})
			}
			b.waitResults(1, 30*time.Second)
			_ = stop()
			res := b.results()
			if len(res) != 1 {
				t.Fatalf("%d results", len(res))
			}
			tt.check(t, res[0], lim)
			if streamMsgs(t, b.ctx, b.js, schemas.DLQStream) != 0 {
				t.Errorf("a vendor outcome went to the dead-letter stream")
			}
		})
	}
}

func TestInvalidInputsSpendNoQuota(t *testing.T) {
	t.Parallel()
	b := setup(t, eiottest.Config{})
	cfg := b.config()
	cfg.MaxRequestBytes = 4096
	codes := map[string]string{} // request id → want code
	for i, in := range badInputs {
		body := in.body
		code := in.code
		if in.code == ReasonTooLarge {
			body = strings.Repeat("8", 5000)
		}
		id := fmt.Sprintf("bad-%02d", i)
		hdr := nats.Header{}
		hdr.Set(jetstream.MsgIDHeader, id)
		if p, _ := ParseRequest([]byte(body), cfg.MaxRequestBytes); p.RequestID != "" {
			id = p.RequestID // a JSON request keeps its own identity even when refused
		}
		codes[id] = code
		b.publish(schemas.RequestSubject, []byte(body), hdr)
	}
	_, stop := b.run(cfg)
	b.waitResults(uint64(len(badInputs)), 20*time.Second)
	_ = stop()
	kinds := map[string]bool{}
	for _, r := range b.results() {
		want, ok := codes[r.RequestID]
		if !ok {
			t.Errorf("result for unknown request %q (request_id parsed from a refused body?)", r.RequestID)
			continue
		}
		if r.Status != schemas.StatusInvalid || r.Error == nil || r.Error.Kind != schemas.KindInvalidInput || r.Error.Code == nil || *r.Error.Code != want {
			t.Errorf("%s: got %s %+v, want invalid/%s", r.RequestID, r.Status, r.Error, want)
			continue
		}
		if r.Input == nil || r.ICCID != "" || r.Attempts != 0 {
			t.Errorf("%s: input %v iccid %q attempts %d", r.RequestID, r.Input, r.ICCID, r.Attempts)
		}
		kinds[want] = true
	}
	if len(kinds) < 10 {
		t.Errorf("only %d kinds of bad input covered", len(kinds))
	}
	if total := b.fake.Stats().Total; total != 0 {
		t.Errorf("bad input made %d vendor calls", total)
	}
}

func TestRefusedCredentialsPauseThenResume(t *testing.T) {
	t.Parallel()
	b := setup(t, eiottest.Config{})
	dir := t.TempDir()
	secretFile := writeFile(t, dir, "secret", "wrong-secret\n")
	cfg := b.config()
	cfg.Client = b.newClient(sign.NewSecret("wrong-secret"), 0)
	cfg.SecretFile = secretFile
	cfg.Concurrency = 2
	want := map[string]bool{}
	for i := range 10 {
		id := fmt.Sprintf("cred-%d", i)
		want[id] = true
		b.publishJSON(schemas.Request{ICCID: iccid(i), RequestID: id})
	}
	w, stop := b.run(cfg)
	waitFor(t, 20*time.Second, "the worker to pause", w.Paused)
	waitFor(t, 20*time.Second, "a few refused probes", func() bool { return b.fake.Stats().Total >= 2+4 })
	if err := w.Ready(); !errors.Is(err, ErrPaused) {
		t.Errorf("Ready() = %v while paused", err)
	}
	if n := streamMsgs(t, b.ctx, b.js, schemas.ResultStream); n != 0 {
		t.Fatalf("%d results while the credentials are refused", n)
	}
	writeFile(t, dir, "secret", testSecret+"\n")
	b.waitResults(10, 30*time.Second)
	if w.Paused() || w.Ready() != nil {
		t.Errorf("still paused: %v", w.Ready())
	}
	_ = stop()
	byStatus := onePerRequest(t, b.results(), want)
	if byStatus[schemas.StatusOK] != 10 {
		t.Errorf("by status %v", byStatus)
	}
}

func TestShutdownLosesNothing(t *testing.T) {
	t.Parallel()
	const n = 200
	b := setup(t, eiottest.Config{Faults: eiottest.Faults{Latency: 30 * time.Millisecond, Jitter: 30 * time.Millisecond}})
	want := map[string]bool{}
	for i := range n {
		id := fmt.Sprintf("term-%03d", i)
		want[id] = true
		b.publishJSON(schemas.Request{ICCID: iccid(i), RequestID: id})
	}
	cfg := b.config()
	cfg.Rate, cfg.Burst = 100, 4
	w1, stop1 := b.run(cfg)
	waitFor(t, 20*time.Second, "some results", func() bool { return w1.Stats().OK >= 40 })
	if err := stop1(); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	first := w1.Stats().OK
	if first >= n {
		t.Fatalf("the first worker finished everything (%d); the test needs a mid-run stop", first)
	}
	cfg.Name = "second-worker"
	w2, stop2 := b.run(cfg)
	b.waitResults(n, 40*time.Second)
	_ = stop2()
	onePerRequest(t, b.results(), want)
	t.Logf("first worker %d results, second %d", first, w2.Stats().OK)
}

func TestReusedRequestIDCounted(t *testing.T) {
	t.Parallel()
	b := setup(t, eiottest.Config{})
	b.publishJSON(schemas.Request{ICCID: iccid(1), RequestID: "same"})
	b.publishJSON(schemas.Request{ICCID: iccid(2), RequestID: "same"})
	cfg := b.config()
	cfg.Concurrency = 1
	w, stop := b.run(cfg)
	waitFor(t, 20*time.Second, "both requests done", func() bool {
		return streamMsgs(t, b.ctx, b.js, schemas.RequestStream) == 0
	})
	_ = stop()
	if st := w.Stats(); st.ReusedIDs != 1 || st.OK != 1 {
		t.Errorf("stats %+v", st)
	}
	if n := len(b.results()); n != 1 {
		t.Errorf("%d results", n)
	}
}

func TestIdentityFallbacks(t *testing.T) {
	t.Parallel()
	b := setup(t, eiottest.Config{})
	hdr := nats.Header{}
	hdr.Set(jetstream.MsgIDHeader, "from-header")
	b.publish(schemas.RequestSubject+".bulk", []byte(iccid(1)), hdr)
	b.publish(schemas.RequestSubject, []byte(iccid(2)), nil)
	_, stop := b.run(b.config())
	b.waitResults(2, 20*time.Second)
	_ = stop()
	st, err := b.js.Stream(b.ctx, schemas.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	derived := fmt.Sprintf("%s:%d:2", schemas.RequestStream, st.CachedInfo().Created.UnixNano())
	got := map[string]schemas.Result{}
	for _, r := range b.results() {
		got[r.RequestID] = r
	}
	if r, ok := got["from-header"]; !ok || r.Lane == nil || *r.Lane != "bulk" || r.RequestSeq != 1 {
		t.Errorf("header identity / lane: %+v", got)
	}
	if _, ok := got[derived]; !ok {
		t.Errorf("derived identity %q not found in %v", derived, got)
	}
}

func TestDeadLetters(t *testing.T) {
	t.Parallel()
	t.Run("result refused", func(t *testing.T) {
		t.Parallel()
		b := setup(t, eiottest.Config{})
		cfg := schemas.ResultStreamConfig(testStreams)
		cfg.MaxMsgSize = 256 // every ok result is bigger
		if _, err := b.js.UpdateStream(b.ctx, cfg); err != nil {
			t.Fatal(err)
		}
		wc := b.config()
		wc.NoProvision = true // keep the small MaxMsgSize
		b.publishJSON(schemas.Request{ICCID: iccid(3), RequestID: "too-big"})
		_, stop := b.run(wc)
		waitFor(t, 20*time.Second, "a dead letter", func() bool { return streamMsgs(t, b.ctx, b.js, schemas.DLQStream) == 1 })
		waitFor(t, 20*time.Second, "the request acked", func() bool {
			return streamMsgs(t, b.ctx, b.js, schemas.RequestStream) == 0
		})
		_ = stop()
		dl := b.deadLetters()[0]
		if dl.Reason != schemas.ReasonResultRefused || dl.RequestID != "too-big" || !strings.Contains(string(dl.Payload), iccid(3)) || dl.Sequence != 1 {
			t.Errorf("dead letter %+v", dl)
		}
	})
	t.Run("max deliveries", func(t *testing.T) {
		t.Parallel()
		b := setup(t, eiottest.Config{Faults: eiottest.Faults{Rate5xx: 1}})
		cc := schemas.WorkerConsumerConfig(time.Second)
		cc.MaxDeliver = 2
		if _, err := b.js.UpdateConsumer(b.ctx, schemas.RequestStream, cc); err != nil {
			t.Fatal(err)
		}
		wc := b.config()
		wc.NoProvision = true
		wc.RetryBudget = 50 * time.Millisecond
		wc.RedeliveryDelay, wc.RedeliveryMax = 50*time.Millisecond, 50*time.Millisecond
		b.publishJSON(schemas.Request{ICCID: iccid(4), RequestID: "never"})
		_, stop := b.run(wc)
		waitFor(t, 20*time.Second, "a dead letter", func() bool { return streamMsgs(t, b.ctx, b.js, schemas.DLQStream) == 1 })
		waitFor(t, 20*time.Second, "the request removed", func() bool {
			return streamMsgs(t, b.ctx, b.js, schemas.RequestStream) == 0
		})
		_ = stop()
		dl := b.deadLetters()[0]
		if dl.Reason != schemas.ReasonMaxDeliveries || dl.RequestID != "never" || dl.Deliveries < 2 {
			t.Errorf("dead letter %+v", dl)
		}
		if n := streamMsgs(t, b.ctx, b.js, schemas.ResultStream); n != 0 {
			t.Errorf("%d results", n)
		}
	})
	t.Run("max deliveries advisory", func(t *testing.T) {
		t.Parallel()
		b := setup(t, eiottest.Config{})
		cc := schemas.WorkerConsumerConfig(time.Second)
		cc.MaxDeliver = 1
		if _, err := b.js.UpdateConsumer(b.ctx, schemas.RequestStream, cc); err != nil {
			t.Fatal(err)
		}
		// Deliver once and never ack: the server gives up and advises.
		b.publishJSON(schemas.Request{ICCID: iccid(5), RequestID: "lost"})
		cons, err := b.js.Consumer(b.ctx, schemas.RequestStream, schemas.WorkerConsumer)
		if err != nil {
			t.Fatal(err)
		}
		wc := b.config()
		wc.NoProvision = true
		w, err := New(wc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(b.ctx)
		var wg sync.WaitGroup
		wg.Go(func() { w.captureMaxDeliveries(ctx, b.ctx) })
		t.Cleanup(func() { cancel(); wg.Wait() })
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for range batch.Messages() {
		}
		// The advisory fires when a later pull finds the request past its limit.
		waitFor(t, 20*time.Second, "the advisory's dead letter", func() bool {
			if b, err := cons.Fetch(1, jetstream.FetchMaxWait(time.Second)); err == nil {
				for range b.Messages() {
				}
			}
			return streamMsgs(t, b.ctx, b.js, schemas.DLQStream) == 1
		})
		waitFor(t, 10*time.Second, "the request deleted", func() bool {
			return streamMsgs(t, b.ctx, b.js, schemas.RequestStream) == 0
		})
		dl := b.deadLetters()[0]
		if dl.Reason != schemas.ReasonMaxDeliveries || dl.RequestID != "lost" {
			t.Errorf("dead letter %+v", dl)
		}
	})
}

func TestRecoversFromDeletedConsumerAndServerRestart(t *testing.T) {
	t.Parallel()
	b := setup(t, eiottest.Config{})
	w, stop := b.run(b.config())
	b.publish(schemas.RequestSubject, []byte(iccid(1)), nil)
	b.waitResults(1, 20*time.Second)

	if err := b.js.DeleteConsumer(b.ctx, schemas.RequestStream, schemas.WorkerConsumer); err != nil {
		t.Fatal(err)
	}
	b.publish(schemas.RequestSubject, []byte(iccid(2)), nil)
	b.waitResults(2, 30*time.Second)

	if err := b.nats.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "reconnect", b.nc.IsConnected)
	waitFor(t, 20*time.Second, "publish after restart", func() bool {
		_, err := b.js.Publish(b.ctx, schemas.RequestSubject, []byte(iccid(3)))
		return err == nil
	})
	b.waitResults(3, 30*time.Second)
	waitFor(t, 20*time.Second, "ready again", func() bool { return w.Ready() == nil })
	_ = stop()
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	_, js := natstest.RunJetStream(t)
	ok := Config{JetStream: js, Client: lookerFunc(nil)}
	tests := []struct {
		name  string
		cfg   func(Config) Config
		field string
	}{
		{"no jetstream", func(c Config) Config { c.JetStream = nil; return c }, "JetStream"},
		{"no client", func(c Config) Config { c.Client = nil; return c }, "Client"},
		{"negative concurrency", func(c Config) Config { c.Concurrency = -1; return c }, "Concurrency"},
		{"tiny ack wait", func(c Config) Config { c.AckWait = 10 * time.Millisecond; return c }, "AckWait"},
		{"retry max below initial", func(c Config) Config { c.RetryInitial = time.Second; c.RetryMax = time.Millisecond; return c }, "RetryMax"},
		{"secret file without setter", func(c Config) Config { c.SecretFile = "/nonexistent"; return c }, "SecretFile"},
		{"negative burst", func(c Config) Config { c.Burst = -2; return c }, "Burst"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg(ok))
		if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("%s: New() = %v, want an ErrConfig naming %s", tt.name, err, tt.field)
		}
	}
	if _, err := New(ok); err != nil {
		t.Errorf("valid config refused: %v", err)
	}
}

func TestVendorDownBreakerLimitsPulling(t *testing.T) {
	t.Parallel()
	b := setup(t, eiottest.Config{Faults: eiottest.Faults{Rate5xx: 1}})
	cfg := b.config()
	cfg.Concurrency = 8
	cfg.BreakerFailures = 5
	cfg.RetryBudget = 200 * time.Millisecond
	cfg.RedeliveryDelay, cfg.RedeliveryMax = 100*time.Millisecond, 100*time.Millisecond
	for i := range 30 {
		b.publish(schemas.RequestSubject, []byte(iccid(i)), nil)
	}
	w, stop := b.run(cfg)
	breakerOpen := func() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.breakerOpen }
	waitFor(t, 20*time.Second, "the breaker to open", breakerOpen)
	waitFor(t, 20*time.Second, "the first pull handed back", func() bool { return w.Stats().HandedBack >= 8 })
	// While the vendor stays down, at most one request is worked on.
	for range 40 {
		if n := w.Stats().InFlight; n > 1 {
			t.Fatalf("%d requests in flight with the breaker open", n)
		}
		time.Sleep(25 * time.Millisecond) // sampling, not waiting for a condition
	}
	b.fake.SetFaults(eiottest.Faults{})
	b.waitResults(30, 30*time.Second)
	if breakerOpen() {
		t.Errorf("breaker still open after the vendor recovered")
	}
	_ = stop()
}

func TestProvisionConflictStopsRun(t *testing.T) {
	t.Parallel()
	_, js := natstest.RunJetStream(t)
	bad := schemas.RequestStreamConfig(testStreams)
	bad.Retention = jetstream.LimitsPolicy
	if _, err := js.CreateStream(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	w, err := New(Config{JetStream: js, Client: lookerFunc(nil), StreamOptions: testStreams})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	err = w.Run(ctx)
	if !errors.Is(err, schemas.ErrConflict) || !strings.Contains(err.Error(), "Retention") {
		t.Fatalf("Run = %v, want a retention conflict", err)
	}
	if !errors.Is(w.Ready(), ErrNotConsuming) {
		t.Errorf("Ready = %v", w.Ready())
	}
}

func TestMetricsExported(t *testing.T) {
	t.Parallel()
	b := setup(t, eiottest.Config{})
	reg := prometheus.NewRegistry()
	cfg := b.config()
	cfg.Registerer = reg
	b.publish(schemas.RequestSubject, []byte(iccid(1)), nil)
	b.publish(schemas.RequestSubject, []byte("junk"), nil)
	w, stop := b.run(cfg)
	b.waitResults(2, 20*time.Second)
	waitFor(t, 10*time.Second, "ready", func() bool { return w.Ready() == nil })
	_ = stop()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"simlookup_worker_lookups_total", "simlookup_worker_attempts_total", "simlookup_worker_vendor_latency_seconds",
		"simlookup_worker_limiter_wait_seconds", "simlookup_worker_in_flight", "simlookup_worker_paused", "simlookup_worker_consumer_pending",
		"simlookup_worker_consumer_ack_pending"} {
		if !names[n] {
			t.Errorf("metric %s missing (have %v)", n, names)
		}
	}
	// A second worker in the same process shares the collectors.
	if _, err := New(cfg); err != nil {
		t.Errorf("second worker on one registry: %v", err)
	}
}

func TestFullResultsStreamHoldsRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, eiottest.Config{})
	rc := schemas.ResultStreamConfig(testStreams)
	rc.MaxBytes = 2000 // room for about one result
	if _, err := b.js.UpdateStream(b.ctx, rc); err != nil {
		t.Fatal(err)
	}
	cfg := b.config()
	cfg.NoProvision = true // keep the tiny bound
	want := map[string]bool{}
	for i := range 5 {
		id := fmt.Sprintf("full-%d", i)
		want[id] = true
		b.publishJSON(schemas.Request{ICCID: iccid(i), RequestID: id})
	}
	w, stop := b.run(cfg)
	blocked := func() bool { w.mu.Lock(); defer w.mu.Unlock(); return w.resultsBlocked }
	waitFor(t, 20*time.Second, "results blocked", blocked)
	if n := streamMsgs(t, b.ctx, b.js, schemas.DLQStream); n != 0 {
		t.Fatalf("%d dead letters for a full results stream", n)
	}
	if n := streamMsgs(t, b.ctx, b.js, schemas.RequestStream); n == 0 {
		t.Fatalf("requests were acked without a stored result")
	}
	rc.MaxBytes = testStreams.ResultsMaxBytes
	if _, err := b.js.UpdateStream(b.ctx, rc); err != nil {
		t.Fatal(err)
	}
	b.waitResults(5, 30*time.Second)
	waitFor(t, 20*time.Second, "requests acked", func() bool { return streamMsgs(t, b.ctx, b.js, schemas.RequestStream) == 0 })
	_ = stop()
	onePerRequest(t, b.results(), want)
	if blocked() {
		t.Errorf("still blocked")
	}
}

func TestReloadSecretProbesAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, eiottest.Config{})
	dir := t.TempDir()
	secretFile := writeFile(t, dir, "secret", "wrong-secret")
	cfg := b.config()
	cfg.Client = b.newClient(sign.NewSecret("wrong-secret"), 0)
	cfg.SecretFile = secretFile
	cfg.Concurrency = 1
	cfg.ProbeInitial, cfg.ProbeMax = 10*time.Minute, 10*time.Minute // only ReloadSecret can cut the wait short
	b.publishJSON(schemas.Request{ICCID: iccid(1), RequestID: "hup"})
	w, stop := b.run(cfg)
	waitFor(t, 20*time.Second, "the worker to pause", w.Paused)
	writeFile(t, dir, "secret", testSecret)
	if err := w.ReloadSecret(); err != nil {
		t.Fatal(err)
	}
	b.waitResults(1, 20*time.Second)
	if w.Paused() {
		t.Error("still paused")
	}
	_ = stop()
	if r := b.results()[0]; r.Status != schemas.StatusOK || r.RequestID != "hup" || r.Attempts != 2 {
		t.Errorf("result %s %s attempts %d", r.RequestID, r.Status, r.Attempts)
	}
}

func TestNoProvisionWaitsForTheConsumer(t *testing.T) {
	t.Parallel()
	nc, js := natstest.Run(t).JetStream(t)
	fake, url := eiottest.Start(t, eiottest.Config{AppKey: testAppKey, Secret: sign.NewSecret(testSecret)})
	client, err := eiot.New(fake.ClientConfig(url))
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{t: t, ctx: t.Context(), js: js, nc: nc, fake: fake, url: url, client: client}
	cfg := b.config()
	cfg.NoProvision = true
	w, stop := b.run(cfg)
	waitFor(t, 10*time.Second, "the worker to say it waits", func() bool {
		err := w.Ready()
		return errors.Is(err, ErrNotConsuming) && strings.Contains(err.Error(), "no-provision")
	})
	if _, err := js.Stream(t.Context(), schemas.RequestStream); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("the worker created the stream: %v", err)
	}
	if err := schemas.Provision(t.Context(), js, testStreams, time.Second); err != nil {
		t.Fatal(err)
	}
	b.publish(schemas.RequestSubject, []byte(iccid(9)), nil)
	b.waitResults(1, 30*time.Second)
	if err := w.Ready(); err != nil {
		t.Errorf("Ready = %v", err)
	}
	_ = stop()
}

func TestLongRetryAfterHandsBack(t *testing.T) {
	t.Parallel()
	b := setup(t, eiottest.Config{Faults: eiottest.Faults{Rate429: 1, RetryAfter: 2 * time.Second}})
	cfg := b.config() // RetryMax 200ms: a 2s Retry-After is not waited out in the delivery
	b.publishJSON(schemas.Request{ICCID: iccid(3), RequestID: "patience"})
	w, stop := b.run(cfg)
	waitFor(t, 20*time.Second, "the request handed back", func() bool { return w.Stats().HandedBack >= 1 })
	if total := b.fake.Stats().Total; total != 1 {
		t.Errorf("%d vendor calls before the Retry-After passed", total)
	}
	b.fake.SetFaults(eiottest.Faults{})
	b.waitResults(1, 20*time.Second)
	_ = stop()
	if r := b.results()[0]; r.Status != schemas.StatusOK || r.Deliveries != 2 || r.Attempts != 2 {
		t.Errorf("result %s deliveries %d attempts %d", r.Status, r.Deliveries, r.Attempts)
	}
}

// A SecretFile that cannot be read is a configuration error that still says
// why (errors.Is finds both).
func TestNewSecretFileErrorIsBranchable(t *testing.T) {
	t.Parallel()
	_, js := natstest.RunJetStream(t)
	client, err := eiot.New(eiot.Config{BaseURL: "http://127.0.0.1:1", AppKey: testAppKey, Secret: sign.NewSecret(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(Config{JetStream: js, Client: client, SecretFile: filepath.Join(t.TempDir(), "missing")})
	if !errors.Is(err, ErrConfig) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "SecretFile") {
		t.Fatalf("New = %v, want an ErrConfig naming SecretFile that wraps fs.ErrNotExist", err)
	}
}
