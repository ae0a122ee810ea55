package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/simlookup/simlookup/internal/natstest"
	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/worker/eiot"
	"github.com/simlookup/simlookup/worker/eiot/eiottest"
)

const (
	testAppKey = "app-test-0001"
	testSecret = "s3cret-for-tests"
)

// testStreams keeps the streams within what a test server can reserve.
var testStreams = schemas.StreamOptions{RequestsMaxBytes: 64 << 20, ResultsMaxBytes: 128 << 20}

type bundle struct {
	t      *testing.T
	ctx    context.Context
	nats   *natstest.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	fake   *eiottest.Server
	url    string
	client *eiot.Client
}

func setup(t *testing.T, fc eiottest.Config) *bundle {
	t.Helper()
	b := setupOn(t, fc, natstest.Run(t), true)
	return b
}

// setupOn is setup on a given server; provision false leaves the server empty.
func setupOn(t *testing.T, fc eiottest.Config, srv *natstest.Server, provision bool) *bundle {
	t.Helper()
	b := &bundle{t: t}
	b.nats = srv
	b.nc, b.js = srv.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Second)
	t.Cleanup(cancel)
	b.ctx = ctx
	if provision {
		if err := schemas.Provision(ctx, b.js, testStreams, 0); err != nil {
			t.Fatal(err)
		}
	}
	if fc.AppKey == "" {
		fc.AppKey = testAppKey
	}
	if fc.Secret.IsZero() {
		fc.Secret = sign.NewSecret(testSecret)
	}
	b.fake, b.url = eiottest.Start(t, fc)
	b.client = b.newClient(sign.NewSecret(testSecret), 0)
	return b
}

func (b *bundle) newClient(secret sign.Secret, timeout time.Duration) *eiot.Client {
	b.t.Helper()
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	c, err := eiot.New(eiot.Config{BaseURL: b.url, AppKey: testAppKey, Secret: secret, Timeout: timeout})
	if err != nil {
		b.t.Fatal(err)
	}
	return c
}

// config is a fast worker configuration for tests.
func (b *bundle) config() Config {
	return Config{
		JetStream:       b.js,
		Client:          b.client,
		Rate:            -1,
		Concurrency:     8,
		AckWait:         time.Second,
		StreamOptions:   testStreams,
		RetryInitial:    20 * time.Millisecond,
		RetryMax:        200 * time.Millisecond,
		RetryBudget:     5 * time.Second,
		RedeliveryDelay: 200 * time.Millisecond,
		RedeliveryMax:   time.Second,
		ShutdownTimeout: 5 * time.Second,
		ProbeInitial:    50 * time.Millisecond,
		ProbeMax:        200 * time.Millisecond,
		Name:            "test-worker",
		Logger:          slog.New(slog.NewTextHandler(testWriter{b.t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
		hooks:           hooks{fetchWait: 1500 * time.Millisecond},
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

// run starts a worker; the returned stop cancels it and returns Run's error.
func (b *bundle) run(cfg Config) (*Worker, func() error) {
	b.t.Helper()
	w, err := New(cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(b.ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				runErr = fmt.Errorf("Run did not return within 30s of cancel")
			}
		})
		return runErr
	}
	// Every test expects a clean stop, also those that do not check it.
	b.t.Cleanup(func() {
		if err := stop(); err != nil {
			b.t.Errorf("worker Run: %v", err)
		}
	})
	return w, stop
}

func (b *bundle) publish(subject string, body []byte, hdr nats.Header) {
	b.t.Helper()
	m := nats.NewMsg(subject)
	m.Data = body
	if hdr != nil {
		m.Header = hdr
	}
	if _, err := b.js.PublishMsg(b.ctx, m); err != nil {
		b.t.Fatalf("publish request: %v", err)
	}
}

func (b *bundle) publishJSON(r schemas.Request) {
	b.t.Helper()
	data, err := json.Marshal(r)
	if err != nil {
		b.t.Fatal(err)
	}
	b.publish(schemas.RequestSubject, data, nil)
}

// iccid makes a valid 20-digit ICCID.
func iccid(i int) string { return fmt.Sprintf("8985224040%010d", i) }

func streamMsgs(t *testing.T, ctx context.Context, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// results reads every stored result.
func (b *bundle) results() []schemas.Result {
	b.t.Helper()
	return readAll[schemas.Result](b.t, b.ctx, b.js, schemas.ResultStream)
}

func (b *bundle) deadLetters() []schemas.DeadLetter {
	b.t.Helper()
	return readAll[schemas.DeadLetter](b.t, b.ctx, b.js, schemas.DLQStream)
}

func readAll[T any](t *testing.T, ctx context.Context, js jetstream.JetStream, stream string) []T {
	t.Helper()
	n := streamMsgs(t, ctx, js, stream)
	if n == 0 {
		return nil
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	for uint64(len(out)) < n {
		batch, err := cons.Fetch(int(n)-len(out), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			got++
			if stream == schemas.ResultStream {
				// Every result the worker publishes matches the schema (ok
				// results carry error null, failed and invalid an error).
				if err := schemas.ValidateResult(m.Data()); err != nil {
					t.Errorf("result does not match the schema: %v: %s", err, m.Data())
				}
			}
			var v T
			if err := json.Unmarshal(m.Data(), &v); err != nil {
				t.Fatalf("decode %s message: %v: %s", stream, err, m.Data())
			}
			out = append(out, v)
		}
		if got == 0 {
			t.Fatalf("read %d of %d messages of %s", len(out), n, stream)
		}
	}
	return out
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *bundle) waitResults(n uint64, timeout time.Duration) {
	b.t.Helper()
	waitFor(b.t, timeout, fmt.Sprintf("%d results", n), func() bool {
		return streamMsgs(b.t, b.ctx, b.js, schemas.ResultStream) >= n
	})
}

// recLimiter is a FeedbackLimiter over x/time/rate that records feedback.
type recLimiter struct {
	*rate.Limiter
	mu        sync.Mutex
	throttled []time.Duration
	succeeded int
}

func (l *recLimiter) Throttled(d time.Duration) {
	l.mu.Lock()
	l.throttled = append(l.throttled, d)
	l.mu.Unlock()
}

func (l *recLimiter) Succeeded() {
	l.mu.Lock()
	l.succeeded++
	l.mu.Unlock()
}

// lookerFunc adapts a function to Looker.
type lookerFunc func(ctx context.Context, iccid string) (*eiot.Response, error)

func (f lookerFunc) Lookup(ctx context.Context, iccid string) (*eiot.Response, error) {
	return f(ctx, iccid)
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// logBuf collects JSON log lines (safe for concurrent writes) and echoes
// them to the test log.
type logBuf struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// lines returns the log lines decoded, in order.
func (l *logBuf) lines() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			l.t.Errorf("log line is not JSON: %v: %s", err, line)
			continue
		}
		out = append(out, m)
	}
	return out
}

// withMsg returns the decoded lines whose msg is msg.
func (l *logBuf) withMsg(msg string) []map[string]any {
	var out []map[string]any
	for _, m := range l.lines() {
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// jsonLogs is a JSON logger at DEBUG into a logBuf.
func jsonLogs(t *testing.T) (*slog.Logger, *logBuf) {
	lb := &logBuf{t: t}
	return slog.New(slog.NewJSONHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}
