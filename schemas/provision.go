package schemas

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrConflict matches every [*ConflictError] with errors.Is.
var ErrConflict = errors.New("schemas: existing JetStream resource conflicts with the wanted configuration")

// ConflictError reports an existing stream, consumer or bucket whose settings
// differ from the wanted ones in a way that cannot (or must not) be changed
// in place. Provisioning stops there and changes nothing else on that
// resource; the operator decides (see Hint).
type ConflictError struct {
	// Resource is "stream", "consumer" or "bucket".
	Resource string
	// Name of the resource (for a consumer, "<stream>/<consumer>").
	Name string
	// Field is the configuration field in conflict, e.g. "Retention".
	Field string
	// Existing and Wanted are the two values as text.
	Existing, Wanted string
	// Hint says what the operator can do.
	Hint string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s %s: %s is %s, want %s: %s", e.Resource, e.Name, e.Field, e.Existing, e.Wanted, e.Hint)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ProvisionAPI is the part of jetstream.JetStream that provisioning uses.
type ProvisionAPI interface {
	jetstream.StreamManager
	jetstream.StreamConsumerManager
	jetstream.KeyValueManager
}

var _ ProvisionAPI = (jetstream.JetStream)(nil)

// Provision creates or updates, idempotently, everything simlookup needs: the
// requests, results and dead-letter streams (StreamConfigs(o)), the jobs
// bucket (JobsBucketConfig(o)) and the worker's durable consumer
// (WorkerConsumerConfig(ackWait)).
//
// ackWait 0 means "whatever the consumer has": a new consumer gets
// DefaultAckWait and an existing one keeps its AckWait, so processes started
// without --ack-wait never rewrite the choice of one started with it. Every
// other consumer setting is fixed by this package and does not depend on any
// process's flags.
//
// Conflicts (see EnsureStream and EnsureConsumer) are returned as a
// *ConflictError; several conflicts are joined with errors.Join. Provision is
// safe to call from many processes at once.
func Provision(ctx context.Context, js ProvisionAPI, o StreamOptions, ackWait time.Duration) error {
	var errs []error
	requestsOK := false
	for _, cfg := range StreamConfigs(o) {
		_, err := EnsureStream(ctx, js, cfg)
		if err != nil {
			errs = append(errs, err)
		} else if cfg.Name == RequestStream {
			requestsOK = true
		}
	}
	if _, err := EnsureKeyValue(ctx, js, JobsBucketConfig(o)); err != nil {
		errs = append(errs, err)
	}
	if requestsOK {
		if _, err := ensureConsumer(ctx, js, RequestStream, WorkerConsumerConfig(ackWait), ackWait > 0); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// EnsureStream creates the stream cfg describes, or brings an existing one up
// to date. Settings that cannot or must not change in place (Retention,
// Storage, Subjects) are checked and a difference is returned as a
// *ConflictError without touching the stream. Settings that can (Description,
// MaxBytes, MaxAge, MaxMsgSize, Duplicates, Discard, Replicas) are updated;
// settings cfg does not manage (placement, sources, compression, metadata, ...)
// are kept as the operator set them.
func EnsureStream(ctx context.Context, js jetstream.StreamManager, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	for range 3 {
		st, err := js.Stream(ctx, cfg.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			st, err = js.CreateStream(ctx, cfg)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue // created concurrently by another process; compare with it
			}
			if err != nil {
				return nil, fmt.Errorf("create stream %s: %w", cfg.Name, err)
			}
			return st, nil
		}
		if err != nil {
			return nil, fmt.Errorf("look up stream %s: %w", cfg.Name, err)
		}
		have := st.CachedInfo().Config
		if err := streamConflict(have, cfg); err != nil {
			return st, err
		}
		upd, changed := streamUpdate(have, cfg)
		if !changed {
			return st, nil
		}
		st, err = js.UpdateStream(ctx, upd)
		if err != nil {
			return nil, fmt.Errorf("update stream %s: %w", cfg.Name, err)
		}
		return st, nil
	}
	return nil, fmt.Errorf("ensure stream %s: created and deleted concurrently, giving up", cfg.Name)
}

func streamConflict(have, want jetstream.StreamConfig) error {
	c := func(field, existing, wanted, hint string) error {
		return &ConflictError{Resource: "stream", Name: want.Name, Field: field, Existing: existing, Wanted: wanted, Hint: hint}
	}
	if have.Retention != want.Retention {
		return c("Retention", have.Retention.String(), want.Retention.String(),
			"retention cannot change in place; drain the stream, then delete it (nats stream rm "+want.Name+") and run `simlookup streams`, or point simlookup at other stream names")
	}
	if have.Storage != want.Storage {
		return c("Storage", have.Storage.String(), want.Storage.String(),
			"storage cannot change in place; back the stream up, delete it and run `simlookup streams`, or change the storage option to match")
	}
	hs, ws := slices.Sorted(slices.Values(have.Subjects)), slices.Sorted(slices.Values(want.Subjects))
	if !slices.Equal(hs, ws) {
		return c("Subjects", fmt.Sprintf("%q", hs), fmt.Sprintf("%q", ws),
			"simlookup does not rewrite another deployment's subjects; fix the stream's subjects by hand (nats stream edit "+want.Name+") or remove the stream")
	}
	return nil
}

// limit normalises a server limit: 0 and negative both mean "unlimited".
func limit(v int64) int64 {
	if v <= 0 {
		return -1
	}
	return v
}

func streamUpdate(have, want jetstream.StreamConfig) (jetstream.StreamConfig, bool) {
	upd := have
	changed := false
	set := func(differs bool, apply func()) {
		if differs {
			apply()
			changed = true
		}
	}
	set(have.Description != want.Description, func() { upd.Description = want.Description })
	set(limit(have.MaxBytes) != limit(want.MaxBytes), func() { upd.MaxBytes = want.MaxBytes })
	set(have.MaxAge != want.MaxAge, func() { upd.MaxAge = want.MaxAge })
	set(limit(int64(have.MaxMsgSize)) != limit(int64(want.MaxMsgSize)), func() { upd.MaxMsgSize = want.MaxMsgSize })
	set(want.Duplicates > 0 && have.Duplicates != want.Duplicates, func() { upd.Duplicates = want.Duplicates })
	set(have.Discard != want.Discard, func() { upd.Discard = want.Discard })
	set(want.Replicas > 0 && have.Replicas != want.Replicas, func() { upd.Replicas = want.Replicas })
	return upd, changed
}

// EnsureConsumer creates the durable consumer cfg describes on stream, or
// brings an existing one up to date. AckPolicy, DeliverPolicy, ReplayPolicy
// and the filter subjects cannot change in place; a difference is a
// *ConflictError. AckWait, MaxDeliver, MaxAckPending, BackOff and Description
// are updated to cfg's values.
func EnsureConsumer(ctx context.Context, js jetstream.StreamConsumerManager, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	return ensureConsumer(ctx, js, stream, cfg, true)
}

func ensureConsumer(ctx context.Context, js jetstream.StreamConsumerManager, stream string, cfg jetstream.ConsumerConfig, setAckWait bool) (jetstream.Consumer, error) {
	name := cfg.Durable
	if name == "" {
		name = cfg.Name
	}
	for range 3 {
		cons, err := js.Consumer(ctx, stream, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			cons, err = js.CreateConsumer(ctx, stream, cfg)
			if errors.Is(err, jetstream.ErrConsumerExists) {
				continue // created concurrently; compare with it
			}
			if err != nil {
				return nil, fmt.Errorf("create consumer %s/%s: %w", stream, name, err)
			}
			return cons, nil
		}
		if err != nil {
			return nil, fmt.Errorf("look up consumer %s/%s: %w", stream, name, err)
		}
		have := cons.CachedInfo().Config
		if err := consumerConflict(stream+"/"+name, have, cfg); err != nil {
			return cons, err
		}
		upd := have
		changed := false
		if setAckWait && have.AckWait != cfg.AckWait {
			upd.AckWait, changed = cfg.AckWait, true
		}
		if have.MaxDeliver != cfg.MaxDeliver {
			upd.MaxDeliver, changed = cfg.MaxDeliver, true
		}
		if have.MaxAckPending != cfg.MaxAckPending {
			upd.MaxAckPending, changed = cfg.MaxAckPending, true
		}
		if !slices.Equal(have.BackOff, cfg.BackOff) {
			upd.BackOff, changed = cfg.BackOff, true
		}
		if have.Description != cfg.Description {
			upd.Description, changed = cfg.Description, true
		}
		if !changed {
			return cons, nil
		}
		cons, err = js.UpdateConsumer(ctx, stream, upd)
		if err != nil {
			return nil, fmt.Errorf("update consumer %s/%s: %w", stream, name, err)
		}
		return cons, nil
	}
	return nil, fmt.Errorf("ensure consumer %s/%s: created and deleted concurrently, giving up", stream, name)
}

func consumerConflict(name string, have, want jetstream.ConsumerConfig) error {
	hint := "this cannot change in place; with the workers stopped, delete the consumer (nats consumer rm " +
		strings.Replace(name, "/", " ", 1) + ") and run `simlookup streams`; pending requests stay in the stream"
	c := func(field, existing, wanted string) error {
		return &ConflictError{Resource: "consumer", Name: name, Field: field, Existing: existing, Wanted: wanted, Hint: hint}
	}
	if have.AckPolicy != want.AckPolicy {
		return c("AckPolicy", have.AckPolicy.String(), want.AckPolicy.String())
	}
	if have.DeliverPolicy != want.DeliverPolicy {
		return c("DeliverPolicy", have.DeliverPolicy.String(), want.DeliverPolicy.String())
	}
	if have.ReplayPolicy != want.ReplayPolicy {
		return c("ReplayPolicy", have.ReplayPolicy.String(), want.ReplayPolicy.String())
	}
	hf, wf := filters(have), filters(want)
	if !slices.Equal(hf, wf) {
		return c("FilterSubjects", fmt.Sprintf("%q", hf), fmt.Sprintf("%q", wf))
	}
	if have.DeliverSubject != "" {
		return c("DeliverSubject", have.DeliverSubject, `"" (a pull consumer)`)
	}
	return nil
}

func filters(c jetstream.ConsumerConfig) []string {
	f := slices.Clone(c.FilterSubjects)
	if c.FilterSubject != "" {
		f = append(f, c.FilterSubject)
	}
	slices.Sort(f)
	return f
}

// EnsureKeyValue creates the bucket cfg describes, or brings an existing one
// up to date (TTL, History, Description). A bucket with another storage type
// is a *ConflictError.
func EnsureKeyValue(ctx context.Context, js jetstream.KeyValueManager, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	for range 3 {
		kv, err := js.KeyValue(ctx, cfg.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = js.CreateKeyValue(ctx, cfg)
			if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("create bucket %s: %w", cfg.Bucket, err)
			}
			return kv, nil
		}
		if err != nil {
			return nil, fmt.Errorf("look up bucket %s: %w", cfg.Bucket, err)
		}
		status, err := kv.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("bucket %s status: %w", cfg.Bucket, err)
		}
		bs, ok := status.(*jetstream.KeyValueBucketStatus)
		if !ok {
			return kv, nil
		}
		have := bs.StreamInfo().Config
		if have.Storage != cfg.Storage {
			return kv, &ConflictError{Resource: "bucket", Name: cfg.Bucket, Field: "Storage",
				Existing: have.Storage.String(), Wanted: cfg.Storage.String(),
				Hint: "storage cannot change in place; delete the bucket (nats kv del " + cfg.Bucket + ") and run `simlookup streams`, or change the storage option to match"}
		}
		history := int64(max(cfg.History, 1))
		if have.MaxAge == cfg.TTL && have.MaxMsgsPerSubject == history && have.Description == cfg.Description {
			return kv, nil
		}
		kv, err = js.UpdateKeyValue(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("update bucket %s: %w", cfg.Bucket, err)
		}
		return kv, nil
	}
	return nil, fmt.Errorf("ensure bucket %s: created and deleted concurrently, giving up", cfg.Bucket)
}
