package schemas_test

import (
	"context"
	"errors"
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
	srv := natstest.Run(t)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
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
			// The other streams were still provisioned.
			streamConfig(t, ctx, js, schemas.ResultStream)
			streamConfig(t, ctx, js, schemas.DLQStream)
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
