package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/simlookup/simlookup/internal/natstest"
	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/worker/eiot"
	"github.com/simlookup/simlookup/worker/eiot/eiottest"
)

// startServer runs a JetStream server that may reserve maxStore bytes.
func startServer(t *testing.T, maxStore int64) *natstest.Server {
	t.Helper()
	srv, err := natstest.Start(natstest.Options{MaxStore: maxStore})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv
}

// A worker started with other StreamOptions than the operator provisioned
// keeps the existing streams' limits (and says so), and consumes. It used
// to grow the requests stream and then loop on the results stream's
// "insufficient storage resources".
func TestWorkerKeepsExistingStreamLimits(t *testing.T) {
	t.Parallel()
	b := setupOn(t, eiottest.Config{}, startServer(t, 100<<20), false)
	operator := schemas.StreamOptions{RequestsMaxBytes: 10 << 20, ResultsMaxBytes: 70 << 20} // + dead letters (the requests' bound) and the jobs bucket fit in 100 MiB
	if err := schemas.Provision(b.ctx, b.js, operator, 0); err != nil {
		t.Fatal(err)
	}
	log, logs := jsonLogs(t)
	cfg := b.config()
	cfg.StreamOptions = schemas.StreamOptions{RequestsMaxBytes: 15 << 20, ResultsMaxBytes: 200 << 20}
	cfg.Logger = log
	b.publishJSON(schemas.Request{ICCID: iccid(1), RequestID: "keep-1"})
	_, stop := b.run(cfg)
	b.waitResults(1, 30*time.Second)
	_ = stop()
	for name, want := range map[string]int64{schemas.RequestStream: operator.RequestsMaxBytes, schemas.ResultStream: operator.ResultsMaxBytes} {
		st, err := b.js.Stream(b.ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.CachedInfo().Config.MaxBytes; got != want {
			t.Errorf("stream %s MaxBytes %d, want the operator's %d", name, got, want)
		}
	}
	kept := logs.withMsg("existing stream keeps its settings (run `simlookup streams` to apply the wanted ones)")
	if len(kept) == 0 || kept[0]["level"] != "INFO" {
		t.Errorf("no INFO line about the kept limits: %v", kept)
	}
	if r := b.results()[0]; r.Status != schemas.StatusOK {
		t.Errorf("result %s", r.Status)
	}
}

// A server that cannot reserve the streams: the worker says so at ERROR
// with the hint on every attempt, backs off, and Ready shows it.
func TestProvisionStorageErrorIsLoudAndBacksOff(t *testing.T) {
	t.Parallel()
	b := setupOn(t, eiottest.Config{}, startServer(t, 32<<20), false)
	log, logs := jsonLogs(t)
	cfg := b.config()
	cfg.Logger = log // testStreams (64 MiB + 128 MiB) do not fit in 32 MiB
	w, _ := b.run(cfg)
	const msg = "provisioning failed: the NATS server cannot reserve the streams' storage; retrying"
	waitFor(t, 30*time.Second, "three ERROR lines", func() bool { return len(logs.withMsg(msg)) >= 3 })
	lines := logs.withMsg(msg)
	for _, l := range lines {
		if l["level"] != "ERROR" || !strings.Contains(fmt.Sprint(l["err"]), "max_file_store") {
			t.Errorf("want an ERROR with the hint, got %v", l)
		}
	}
	first, err1 := time.ParseDuration(fmt.Sprint(lines[0]["retry_in"]))
	third, err3 := time.ParseDuration(fmt.Sprint(lines[2]["retry_in"]))
	if err1 != nil || err3 != nil || third <= first {
		t.Errorf("no exponential backoff: retry_in %v then %v (%v %v)", lines[0]["retry_in"], lines[2]["retry_in"], err1, err3)
	}
	err := w.Ready()
	if !errors.Is(err, ErrNotConsuming) || !strings.Contains(err.Error(), "insufficient storage") ||
		!strings.Contains(err.Error(), "max_file_store") || strings.HasPrefix(err.Error(), "worker") {
		t.Errorf("Ready() = %v", err)
	}
}

// After a pause ends, held and handed-back requests go on promptly: the
// hand-back delay is bounded by the probe interval, not RedeliveryDelay
// (huge here, so the old behaviour would time out).
func TestResumeIsPrompt(t *testing.T) {
	t.Parallel()
	const n = 10
	b := setup(t, eiottest.Config{})
	dir := t.TempDir()
	secretFile := writeFile(t, dir, "secret", "wrong-secret\n")
	log, logs := jsonLogs(t)
	cfg := b.config()
	cfg.Logger = log
	cfg.Client = b.newClient(sign.NewSecret("wrong-secret"), 0)
	cfg.SecretFile = secretFile
	cfg.Concurrency = 6
	cfg.RedeliveryDelay, cfg.RedeliveryMax = 10*time.Minute, 10*time.Minute
	want := map[string]bool{}
	for i := range n {
		id := fmt.Sprintf("resume-%d", i)
		want[id] = true
		b.publishJSON(schemas.Request{ICCID: iccid(i), RequestID: id})
	}
	w, stop := b.run(cfg)
	waitFor(t, 20*time.Second, "the worker to pause and hand requests back", func() bool {
		return w.Paused() && w.Stats().HandedBack > 0
	})
	waitFor(t, 20*time.Second, "a refused probe", func() bool { return b.fake.Stats().Total >= int64(cfg.Concurrency)+1 })
	err := w.Ready()
	if !errors.Is(err, ErrPaused) || !strings.HasPrefix(err.Error(), "paused since ") || strings.Contains(err.Error(), "worker") {
		t.Errorf("Ready() = %q, want \"paused since …: <reason>\" (no repeated prefix)", err)
	}
	if got := b.fake.Stats().Accepted; got != 0 {
		t.Fatalf("%d accepted calls while the secret is wrong", got)
	}
	writeFile(t, dir, "secret", testSecret+"\n") // the worker re-reads it by itself
	b.waitResults(n, 60*time.Second)
	_ = stop()
	byStatus := onePerRequest(t, b.results(), want)
	if byStatus[schemas.StatusOK] != n {
		t.Errorf("by status %v", byStatus)
	}
	for _, r := range b.results() {
		if r.Deliveries > 3 {
			t.Errorf("%s delivered %d times", r.RequestID, r.Deliveries)
		}
	}
	reloaded := logs.withMsg("secret reloaded")
	if len(reloaded) == 0 {
		t.Error(`no "secret reloaded" log after the worker re-read the file`)
	}
	for _, l := range logs.lines() {
		for _, v := range l {
			if s, ok := v.(string); ok && strings.Contains(s, testSecret) {
				t.Errorf("secret logged: %v", l)
			}
		}
	}
}

// in_flight counts requests pulled and not finished; pull_slots the slots
// an outstanding pull may still fill.
func TestInFlightGauge(t *testing.T) {
	t.Parallel()
	b := setup(t, eiottest.Config{})
	release := make(chan struct{})
	cfg := b.config()
	cfg.Client = lookerFunc(func(ctx context.Context, id string) (*eiot.Response, error) {
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return b.client.Lookup(ctx, id)
	})
	w, stop := b.run(cfg)
	gauge := func() (float64, float64) { return testutil.ToFloat64(w.m.inflight), testutil.ToFloat64(w.m.pullSlots) }
	waitFor(t, 20*time.Second, "an idle pull", func() bool { _, slots := gauge(); return slots == float64(cfg.Concurrency) })
	if in, _ := gauge(); in != 0 {
		t.Errorf("idle worker: in_flight %v, want 0", in)
	}
	b.publishJSON(schemas.Request{ICCID: iccid(1), RequestID: "gauge-1"})
	waitFor(t, 20*time.Second, "one request in flight", func() bool { in, _ := gauge(); return in == 1 })
	if _, slots := gauge(); slots > float64(cfg.Concurrency-1) {
		t.Errorf("pull_slots %v with one request in flight", slots)
	}
	close(release)
	b.waitResults(1, 20*time.Second)
	waitFor(t, 20*time.Second, "in_flight back to 0", func() bool { in, _ := gauge(); return in == 0 })
	_ = stop()
}

// Durations are logged as text, the limiter by kind, one start line, and
// the stop line counts what finished and what was handed back.
func TestLogAttributes(t *testing.T) {
	t.Parallel()
	b := setup(t, eiottest.Config{Faults: eiottest.Faults{Rate5xx: 1}})
	log, logs := jsonLogs(t)
	cfg := b.config()
	cfg.Logger = log
	cfg.RetryBudget = 50 * time.Millisecond
	b.publishJSON(schemas.Request{ICCID: iccid(1), RequestID: "logs-1"})
	w, stop := b.run(cfg)
	waitFor(t, 20*time.Second, "a hand-back", func() bool { return w.Stats().HandedBack > 0 })
	if err := b.fake.SetFaults(eiottest.Faults{}); err != nil {
		t.Fatal(err)
	}
	b.waitResults(1, 20*time.Second)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	durationKeys := []string{"timeout", "delay", "paused_for", "ack_wait", "retry_in", "shutdown_timeout"}
	seen := map[string]bool{}
	for _, l := range logs.lines() {
		for _, k := range durationKeys {
			if v, ok := l[k]; ok {
				seen[k] = true
				s, isString := v.(string)
				if _, err := time.ParseDuration(s); !isString || err != nil {
					t.Errorf("%s logged as %T %v, want a duration string (%v)", k, v, v, l["msg"])
				}
			}
		}
		if _, ok := l["custom_limiter"]; ok {
			t.Errorf("custom_limiter still logged: %v", l)
		}
	}
	for _, k := range []string{"timeout", "delay", "shutdown_timeout"} {
		if !seen[k] {
			t.Errorf("no log line with %s", k)
		}
	}
	start := logs.withMsg("worker starting")
	if len(start) != 1 || start[0]["limiter"] != "local" {
		t.Errorf("start lines %v", start)
	}
	stopped := logs.withMsg("worker stopped")
	if len(stopped) != 1 || stopped[0]["finished"] == nil || stopped[0]["handed_back"] == nil {
		t.Errorf("stop line %v", stopped)
	}
	if got := limiterKind(&recLimiter{}); got != "*worker.recLimiter" {
		t.Errorf("limiterKind = %q", got)
	}
}
