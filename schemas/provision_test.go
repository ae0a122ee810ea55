package schemas_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/internal/natstest"
	"github.com/simlookup/simlookup/schemas"
)

// small keeps the streams within what a test server can reserve.
var small = schemas.StreamOptions{RequestsMaxBytes: 64 << 20, ResultsMaxBytes: 64 << 20}

func setupJS(t *testing.T) (context.Context, jetstream.JetStream) {
	t.Helper()
	_, js := natstest.RunJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx, js
}

func streamConfig(t *testing.T, ctx context.Context, js jetstream.JetStream, name string) jetstream.StreamConfig {
	t.Helper()
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return st.CachedInfo().Config
}

func TestProvisionCreatesEverythingIdempotently(t *testing.T) {
	t.Parallel()
	ctx, js := setupJS(t)
	o := schemas.StreamOptions{RequestsMaxBytes: 32 << 20, ResultsMaxBytes: 48 << 20}
	for i := range 2 {
		if err := schemas.Provision(ctx, js, o, 2*time.Second); err != nil {
			t.Fatalf("provision #%d: %v", i+1, err)
		}
	}
	for _, want := range schemas.StreamConfigs(o) {
		have := streamConfig(t, ctx, js, want.Name)
		if have.Retention != want.Retention || max(have.MaxBytes, 0) != want.MaxBytes || have.Duplicates != want.Duplicates || have.MaxAge != want.MaxAge {
			t.Errorf("stream %s: have %+v, want %+v", want.Name, have, want)
		}
	}
	cons, err := js.Consumer(ctx, schemas.RequestStream, schemas.WorkerConsumer)
	if err != nil {
		t.Fatal(err)
	}
	cc := cons.CachedInfo().Config
	if cc.AckWait != 2*time.Second || cc.MaxDeliver != schemas.WorkerMaxDeliver || cc.MaxAckPending != schemas.WorkerMaxAckPending {
		t.Errorf("consumer config %+v", cc)
	}
	if _, err := js.KeyValue(ctx, schemas.JobsBucket); err != nil {
		t.Errorf("jobs bucket: %v", err)
	}
}

func TestProvisionConcurrent(t *testing.T) {
	t.Parallel()
	ctx, js := setupJS(t)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() { errs <- schemas.Provision(ctx, js, small, 0) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent provision: %v", err)
		}
	}
}

func TestProvisionUpdatesCompatibleDifferences(t *testing.T) {
	t.Parallel()
	ctx, js := setupJS(t)
	old := schemas.ResultStreamConfig(small)
	old.MaxBytes = 1 << 20
	old.MaxAge = time.Hour
	old.Duplicates = time.Minute
	old.Description = "old"
	old.Compression = jetstream.S2Compression // not managed by simlookup: must survive
	if _, err := js.CreateStream(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := schemas.Provision(ctx, js, small, 0); err != nil {
		t.Fatal(err)
	}
	want := schemas.ResultStreamConfig(small)
	have := streamConfig(t, ctx, js, schemas.ResultStream)
	if have.MaxBytes != want.MaxBytes || have.MaxAge != want.MaxAge || have.Duplicates != want.Duplicates || have.Description != want.Description {
		t.Errorf("not updated: %+v", have)
	}
	if have.Compression != jetstream.S2Compression {
		t.Errorf("operator's compression setting lost: %v", have.Compression)
	}
}

func TestProvisionReportsConflicts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*jetstream.StreamConfig)
		field  string
	}{
		{"retention", func(c *jetstream.StreamConfig) { c.Retention = jetstream.LimitsPolicy }, "Retention"},
		{"subjects", func(c *jetstream.StreamConfig) { c.Subjects = []string{"simlookup.request"} }, "Subjects"},
		{"storage", func(c *jetstream.StreamConfig) { c.Storage = jetstream.MemoryStorage }, "Storage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, js := setupJS(t)
			cfg := schemas.RequestStreamConfig(small)
			tt.mutate(&cfg)
			if _, err := js.CreateStream(ctx, cfg); err != nil {
				t.Fatal(err)
			}
			err := schemas.Provision(ctx, js, small, 0)
			var ce *schemas.ConflictError
			if !errors.As(err, &ce) || !errors.Is(err, schemas.ErrConflict) {
				t.Fatalf("want a *ConflictError, got %v", err)
			}
			if ce.Resource != "stream" || ce.Name != schemas.RequestStream || ce.Field != tt.field || ce.Existing == ce.Wanted || ce.Hint == "" {
				t.Errorf("conflict %+v", ce)
			}
			for _, part := range []string{schemas.RequestStream, tt.field, ce.Existing, ce.Wanted} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not name %q", err, part)
				}
			}
			have := streamConfig(t, ctx, js, schemas.RequestStream)
			if have.Retention != cfg.Retention || have.Storage != cfg.Storage || len(have.Subjects) != len(cfg.Subjects) {
				t.Errorf("conflicting stream was changed: %+v", have)
			}
			// Nothing was half-applied: the other streams were not created.
			for _, name := range []string{schemas.ResultStream, schemas.DLQStream} {
				if _, err := js.Stream(ctx, name); !errors.Is(err, jetstream.ErrStreamNotFound) {
					t.Errorf("stream %s: %v, want not created after a conflict", name, err)
				}
			}
		})
	}
}

func TestProvisionConsumer(t *testing.T) {
	t.Parallel()
	ctx, js := setupJS(t)
	if err := schemas.Provision(ctx, js, small, 0); err != nil {
		t.Fatal(err)
	}
	ackWait := func() time.Duration {
		c, err := js.Consumer(ctx, schemas.RequestStream, schemas.WorkerConsumer)
		if err != nil {
			t.Fatal(err)
		}
		return c.CachedInfo().Config.AckWait
	}
	if got := ackWait(); got != schemas.DefaultAckWait {
		t.Fatalf("new consumer AckWait %v", got)
	}
	if err := schemas.Provision(ctx, js, small, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := ackWait(); got != 3*time.Second {
		t.Fatalf("explicit ack wait not applied: %v", got)
	}
	// A process started without --ack-wait keeps the deployment's choice.
	if err := schemas.Provision(ctx, js, small, 0); err != nil {
		t.Fatal(err)
	}
	if got := ackWait(); got != 3*time.Second {
		t.Fatalf("ack wait rewritten by a default: %v", got)
	}

	// Settings some process changed by hand are restored.
	cfg := schemas.WorkerConsumerConfig(3 * time.Second)
	cfg.MaxAckPending = 4
	cfg.MaxDeliver = 5
	if _, err := js.UpdateConsumer(ctx, schemas.RequestStream, cfg); err != nil {
		t.Fatal(err)
	}
	if err := schemas.Provision(ctx, js, small, 0); err != nil {
		t.Fatal(err)
	}
	c, err := js.Consumer(ctx, schemas.RequestStream, schemas.WorkerConsumer)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CachedInfo().Config; got.MaxAckPending != schemas.WorkerMaxAckPending || got.MaxDeliver != schemas.WorkerMaxDeliver {
		t.Errorf("consumer not restored: %+v", got)
	}
}

func TestEnsureConsumerConflict(t *testing.T) {
	t.Parallel()
	ctx, js := setupJS(t)
	if _, err := schemas.EnsureStream(ctx, js, schemas.RequestStreamConfig(small)); err != nil {
		t.Fatal(err)
	}
	cfg := schemas.WorkerConsumerConfig(0)
	cfg.FilterSubject = "simlookup.request.fast"
	if _, err := js.CreateConsumer(ctx, schemas.RequestStream, cfg); err != nil {
		t.Fatal(err)
	}
	_, err := schemas.EnsureConsumer(ctx, js, schemas.RequestStream, schemas.WorkerConsumerConfig(0))
	var ce *schemas.ConflictError
	if !errors.As(err, &ce) || ce.Field != "FilterSubjects" || ce.Resource != "consumer" {
		t.Fatalf("want a FilterSubjects conflict, got %v", err)
	}
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A daemon (create-or-verify mode) keeps an operator's limits and says so;
// only explicit provisioning changes them.
func TestProvisionVerifyKeepsExistingLimits(t *testing.T) {
	t.Parallel()
	ctx, js := setupJS(t)
	op := schemas.RequestStreamConfig(small)
	op.MaxBytes = 1 << 20
	op.MaxMsgSize = 4096
	if _, err := js.CreateStream(ctx, op); err != nil {
		t.Fatal(err)
	}
	cc := schemas.WorkerConsumerConfig(0)
	cc.MaxAckPending = 500
	if _, err := js.CreateConsumer(ctx, schemas.RequestStream, cc); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	for range 2 {
		if err := schemas.ProvisionWith(ctx, js, small, schemas.ProvisionOptions{Logger: log}); err != nil {
			t.Fatal(err)
		}
	}
	have := streamConfig(t, ctx, js, schemas.RequestStream)
	if have.MaxBytes != op.MaxBytes || have.MaxMsgSize != op.MaxMsgSize {
		t.Errorf("verify mode changed the operator's limits: MaxBytes %d MaxMsgSize %d", have.MaxBytes, have.MaxMsgSize)
	}
	streamConfig(t, ctx, js, schemas.ResultStream) // missing ones are created
	streamConfig(t, ctx, js, schemas.DLQStream)
	if _, err := js.KeyValue(ctx, schemas.JobsBucket); err != nil {
		t.Errorf("bucket not created: %v", err)
	}
	c, err := js.Consumer(ctx, schemas.RequestStream, schemas.WorkerConsumer)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CachedInfo().Config.MaxAckPending; got != 500 {
		t.Errorf("verify mode changed the consumer's MaxAckPending to %d", got)
	}
	out := logs.String()
	for _, want := range []string{"level=INFO", "existing stream keeps its settings", schemas.RequestStream, "MaxBytes=1048576", "existing consumer keeps its settings"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	// Explicit provisioning applies the wanted limits.
	if err := schemas.Provision(ctx, js, small, 0); err != nil {
		t.Fatal(err)
	}
	if have := streamConfig(t, ctx, js, schemas.RequestStream); have.MaxBytes != small.RequestsMaxBytes {
		t.Errorf("update mode: MaxBytes %d", have.MaxBytes)
	}
}

func TestProvisionVerifyReportsConflicts(t *testing.T) {
	t.Parallel()
	ctx, js := setupJS(t)
	cfg := schemas.ResultStreamConfig(small)
	cfg.Retention = jetstream.WorkQueuePolicy
	if _, err := js.CreateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	err := schemas.ProvisionWith(ctx, js, small, schemas.ProvisionOptions{})
	var ce *schemas.ConflictError
	if !errors.As(err, &ce) || ce.Name != schemas.ResultStream || ce.Field != "Retention" {
		t.Fatalf("want a retention conflict on %s, got %v", schemas.ResultStream, err)
	}
}

// A server that cannot reserve the wanted bounds: the error says which
// stream, matches ErrInsufficientStorage, and the growth already applied to
// another stream is rolled back (nothing half-applied).
func TestProvisionInsufficientStorageRollsBack(t *testing.T) {
	t.Parallel()
	srv, err := natstest.Start(natstest.Options{MaxStore: 100 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	_, js := srv.JetStream(t)
	ctx := t.Context()
	fits := schemas.StreamOptions{RequestsMaxBytes: 10 << 20, ResultsMaxBytes: 70 << 20} // + 10 MiB dead letters
	if err := schemas.Provision(ctx, js, fits, 0); err != nil {
		t.Fatal(err)
	}
	tooBig := schemas.StreamOptions{RequestsMaxBytes: 15 << 20, ResultsMaxBytes: 200 << 20}
	for _, po := range []schemas.ProvisionOptions{{UpdateExisting: true}} {
		err = schemas.ProvisionWith(ctx, js, tooBig, po)
		if !errors.Is(err, schemas.ErrInsufficientStorage) || !schemas.IsInsufficientStorage(err) {
			t.Fatalf("want ErrInsufficientStorage, got %v", err)
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != 10047 {
			t.Errorf("the APIError is not reachable: %v", err)
		}
		if !strings.HasPrefix(err.Error(), "update stream "+schemas.ResultStream+":") || strings.Count(err.Error(), schemas.ResultStream) != 1 {
			t.Errorf("error does not start with the failing stream: %v", err)
		}
		if got := streamConfig(t, ctx, js, schemas.RequestStream).MaxBytes; got != fits.RequestsMaxBytes {
			t.Errorf("requests stream MaxBytes %d after a failed provision, want %d (rolled back)", got, fits.RequestsMaxBytes)
		}
	}
	// Verify mode never grows anything, so it does not fail here.
	if err := schemas.ProvisionWith(ctx, js, tooBig, schemas.ProvisionOptions{}); err != nil {
		t.Errorf("verify mode: %v", err)
	}
}
