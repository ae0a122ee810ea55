package schemas

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// ErrInsufficientStorage matches (errors.Is) a provisioning error caused by
// JetStream's "insufficient storage resources available" (err_code 10047):
// the server cannot reserve a stream's MaxBytes. Retrying does not help until
// the bounds or the server change; see InsufficientStorageHint.
var ErrInsufficientStorage = errors.New("schemas: the NATS server cannot reserve the streams' storage")

// jsErrInsufficientResources is nats-server's JSInsufficientResourcesErr.
const jsErrInsufficientResources jetstream.ErrorCode = 10047

// InsufficientStorageHint says what an operator can do about
// ErrInsufficientStorage.
const InsufficientStorageHint = "The NATS server cannot reserve the streams' --requests-max-bytes, --results-max-bytes and --dlq-max-bytes " +
	"(defaults 1GiB, 8GiB and the requests' bound). Give smaller bounds to every simlookup command that provisions " +
	"(e.g. SIMLOOKUP_REQUESTS_MAX_BYTES=1GiB SIMLOOKUP_RESULTS_MAX_BYTES=5GiB), " +
	"or raise the server's jetstream max_file_store."

// IsInsufficientStorage reports whether err is JetStream's "insufficient
// storage resources available" (err_code 10047), wrapped or not.
func IsInsufficientStorage(err error) bool {
	if errors.Is(err, ErrInsufficientStorage) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrInsufficientResources
}

// storageError marks a 10047 so errors.Is(err, ErrInsufficientStorage) holds
// while errors.As still finds the *jetstream.APIError.
type storageError struct{ err error }

func (e storageError) Error() string   { return e.err.Error() }
func (e storageError) Unwrap() []error { return []error{e.err, ErrInsufficientStorage} }

func markStorage(err error) error {
	if err != nil && !errors.Is(err, ErrInsufficientStorage) && IsInsufficientStorage(err) {
		return storageError{err}
	}
	return err
}

// ProvisionOptions choose how ProvisionWith treats what already exists.
type ProvisionOptions struct {
	// UpdateExisting brings existing streams, the bucket and the consumer up
	// to the wanted settings (explicit provisioning: `simlookup streams`).
	// When false (daemons: worker, sink, run, demo) missing resources are
	// created and existing ones only verified: a conflict (retention,
	// subjects, storage, ...) is still an error, but their limits
	// (MaxBytes, MaxAge, Duplicates, MaxMsgSize, Replicas, the consumer's
	// MaxAckPending, ...) are kept as they are, and a difference from the
	// wanted values is logged at INFO.
	UpdateExisting bool
	// AckWait is the worker consumer's ack wait. 0 means "whatever the
	// consumer has": a new consumer gets DefaultAckWait and an existing one
	// keeps its AckWait. A positive AckWait is applied to an existing
	// consumer in both modes (it is an explicit operator choice).
	AckWait time.Duration
	// Logger receives the INFO lines about kept settings. nil discards them.
	Logger *slog.Logger
}

// Provision creates or updates, idempotently, everything simlookup needs: the
// requests, results and dead-letter streams (StreamConfigs(o)), the jobs
// bucket (JobsBucketConfig(o)) and the worker's durable consumer
// (WorkerConsumerConfig(ackWait)). It is ProvisionWith in update mode
// (UpdateExisting true), for explicit provisioning (`simlookup streams`);
// daemons use ProvisionWith without UpdateExisting.
//
// ackWait 0 means "whatever the consumer has": a new consumer gets
// DefaultAckWait and an existing one keeps its AckWait, so processes started
// without --ack-wait never rewrite the choice of one started with it. Every
// other consumer setting is fixed by this package and does not depend on any
// process's flags.
func Provision(ctx context.Context, js ProvisionAPI, o StreamOptions, ackWait time.Duration) error {
	return ProvisionWith(ctx, js, o, ProvisionOptions{UpdateExisting: true, AckWait: ackWait})
}

// streamPlan is what ProvisionWith does to one stream.
type streamPlan struct {
	want    jetstream.StreamConfig
	have    *jetstream.StreamConfig // nil: the stream does not exist
	upd     jetstream.StreamConfig
	changed bool
}

func (p streamPlan) grows() bool {
	return p.have != nil && (limit(p.upd.MaxBytes) == -1 && limit(p.have.MaxBytes) != -1 ||
		limit(p.have.MaxBytes) != -1 && limit(p.upd.MaxBytes) > limit(p.have.MaxBytes) ||
		p.upd.Replicas > p.have.Replicas)
}

// ProvisionWith provisions what Provision does, in the mode po chooses.
//
// It does not half-apply: every stream (and the consumer and bucket) is
// looked up and checked for conflicts before anything is changed; with any
// conflict nothing is created or changed and every conflict is returned
// (each a *ConflictError, joined with errors.Join). Changes are then applied
// so that storage is freed before it is reserved: updates that shrink
// first, then creations, then updates that grow. If one fails (e.g.
// ErrInsufficientStorage: the server cannot reserve a stream's MaxBytes) the
// error names that stream, and the growing updates already applied are
// rolled back. ProvisionWith is safe to call from many processes at once.
func ProvisionWith(ctx context.Context, js ProvisionAPI, o StreamOptions, po ProvisionOptions) error {
	log := po.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Phase 1: look up and check everything.
	var errs []error
	var plans []streamPlan
	requestsExists := false
	for _, cfg := range StreamConfigs(o) {
		st, err := js.Stream(ctx, cfg.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			plans = append(plans, streamPlan{want: cfg})
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("look up stream %s: %w", cfg.Name, err))
			continue
		}
		have := st.CachedInfo().Config
		if err := streamConflict(have, cfg); err != nil {
			errs = append(errs, err)
			continue
		}
		if cfg.Name == RequestStream {
			requestsExists = true
		}
		upd, changed := streamUpdate(have, cfg)
		plans = append(plans, streamPlan{want: cfg, have: &have, upd: upd, changed: changed})
	}
	ccfg := WorkerConsumerConfig(po.AckWait)
	if requestsExists {
		cons, err := js.Consumer(ctx, RequestStream, ccfg.Durable)
		if err == nil {
			if err := consumerConflict(RequestStream+"/"+ccfg.Durable, cons.CachedInfo().Config, ccfg); err != nil {
				errs = append(errs, err)
			}
		} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			errs = append(errs, fmt.Errorf("look up consumer %s/%s: %w", RequestStream, ccfg.Durable, err))
		}
	}
	kvcfg := JobsBucketConfig(o)
	if err := checkKeyValue(ctx, js, kvcfg); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	// Phase 2: apply, freeing storage before reserving it.
	var order []streamPlan
	for _, p := range plans {
		if p.have != nil && p.changed && !p.grows() {
			order = append(order, p)
		}
	}
	for _, p := range plans {
		if p.have == nil {
			order = append(order, p)
		}
	}
	for _, p := range plans {
		if p.have != nil && p.changed && p.grows() {
			order = append(order, p)
		}
	}
	var grown []jetstream.StreamConfig // applied growing updates, to roll back
	for _, p := range order {
		if p.have != nil && !po.UpdateExisting {
			log.Info("existing stream keeps its settings (run `simlookup streams` to apply the wanted ones)",
				"stream", p.want.Name, "existing", describeStream(*p.have), "wanted", describeStream(p.upd))
			continue
		}
		var err error
		if p.have == nil {
			_, err = ensureStream(ctx, js, p.want, po.UpdateExisting)
		} else if _, err = js.UpdateStream(ctx, p.upd); err != nil {
			err = fmt.Errorf("update stream %s: %w", p.want.Name, markStorage(err))
		}
		if err != nil {
			var rolled []string
			for _, old := range grown {
				if _, rerr := js.UpdateStream(context.WithoutCancel(ctx), old); rerr == nil {
					rolled = append(rolled, old.Name)
				}
			}
			if len(rolled) > 0 {
				err = fmt.Errorf("%w (rolled back the update of %s)", err, strings.Join(rolled, ", "))
			}
			return err // names the stream: "create stream X: ..." or "update stream X: ..."
		}
		if p.have != nil && p.grows() {
			grown = append(grown, *p.have)
		}
	}
	if _, err := ensureKeyValue(ctx, js, kvcfg, po.UpdateExisting, log); err != nil {
		errs = append(errs, err)
	}
	if _, err := ensureConsumer(ctx, js, RequestStream, ccfg, po.AckWait > 0, po.UpdateExisting, log); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// describeStream is the managed limits of a stream, for logs.
func describeStream(c jetstream.StreamConfig) string {
	return fmt.Sprintf("MaxBytes=%d MaxAge=%s MaxMsgSize=%d Duplicates=%s Discard=%s Replicas=%d",
		c.MaxBytes, c.MaxAge, c.MaxMsgSize, c.Duplicates, c.Discard, c.Replicas)
}

// EnsureStream creates the stream cfg describes, or brings an existing one up
// to date. Settings that cannot or must not change in place (Retention,
// Storage, Subjects) are checked and a difference is returned as a
// *ConflictError without touching the stream. Settings that can (Description,
// MaxBytes, MaxAge, MaxMsgSize, Duplicates, Discard, Replicas) are updated;
// settings cfg does not manage (placement, sources, compression, metadata, ...)
// are kept as the operator set them.
func EnsureStream(ctx context.Context, js jetstream.StreamManager, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return ensureStream(ctx, js, cfg, true)
}

// ensureStream is EnsureStream; with update false an existing stream is only
// checked for conflicts.
func ensureStream(ctx context.Context, js jetstream.StreamManager, cfg jetstream.StreamConfig, update bool) (jetstream.Stream, error) {
	for range 3 {
		st, err := js.Stream(ctx, cfg.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			st, err = js.CreateStream(ctx, cfg)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue // created concurrently by another process; compare with it
			}
			if err != nil {
				return nil, fmt.Errorf("create stream %s: %w", cfg.Name, markStorage(err))
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
		if !changed || !update {
			return st, nil
		}
		st, err = js.UpdateStream(ctx, upd)
		if err != nil {
			return nil, fmt.Errorf("update stream %s: %w", cfg.Name, markStorage(err))
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
	return ensureConsumer(ctx, js, stream, cfg, true, true, nil)
}

// ensureConsumer is EnsureConsumer; setAckWait applies cfg.AckWait to an
// existing consumer; with update false nothing else of an existing consumer
// changes, and differences are logged to log.
func ensureConsumer(ctx context.Context, js jetstream.StreamConsumerManager, stream string, cfg jetstream.ConsumerConfig,
	setAckWait, update bool, log *slog.Logger) (jetstream.Consumer, error) {
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
		if !update {
			if log != nil && (have.MaxDeliver != cfg.MaxDeliver || have.MaxAckPending != cfg.MaxAckPending || !slices.Equal(have.BackOff, cfg.BackOff)) {
				log.Info("existing consumer keeps its settings (run `simlookup streams` to apply the wanted ones)",
					"consumer", stream+"/"+name, "max_deliver", have.MaxDeliver, "wanted_max_deliver", cfg.MaxDeliver,
					"max_ack_pending", have.MaxAckPending, "wanted_max_ack_pending", cfg.MaxAckPending)
			}
		} else if have.MaxDeliver != cfg.MaxDeliver {
			upd.MaxDeliver, changed = cfg.MaxDeliver, true
		}
		if update && have.MaxAckPending != cfg.MaxAckPending {
			upd.MaxAckPending, changed = cfg.MaxAckPending, true
		}
		if update && !slices.Equal(have.BackOff, cfg.BackOff) {
			upd.BackOff, changed = cfg.BackOff, true
		}
		if update && have.Description != cfg.Description {
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
	return ensureKeyValue(ctx, js, cfg, true, nil)
}

// checkKeyValue reports a conflict of an existing bucket, changing nothing.
func checkKeyValue(ctx context.Context, js jetstream.KeyValueManager, cfg jetstream.KeyValueConfig) error {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up bucket %s: %w", cfg.Bucket, err)
	}
	_, err = bucketConflict(ctx, kv, cfg)
	return err
}

func bucketConflict(ctx context.Context, kv jetstream.KeyValue, cfg jetstream.KeyValueConfig) (*jetstream.StreamConfig, error) {
	status, err := kv.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("bucket %s status: %w", cfg.Bucket, err)
	}
	bs, ok := status.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return nil, nil
	}
	have := bs.StreamInfo().Config
	if have.Storage != cfg.Storage {
		return nil, &ConflictError{Resource: "bucket", Name: cfg.Bucket, Field: "Storage",
			Existing: have.Storage.String(), Wanted: cfg.Storage.String(),
			Hint: "storage cannot change in place; delete the bucket (nats kv del " + cfg.Bucket + ") and run `simlookup streams`, or change the storage option to match"}
	}
	return &have, nil
}

// ensureKeyValue is EnsureKeyValue; with update false an existing bucket is
// only checked, and differences are logged to log.
func ensureKeyValue(ctx context.Context, js jetstream.KeyValueManager, cfg jetstream.KeyValueConfig, update bool, log *slog.Logger) (jetstream.KeyValue, error) {
	for range 3 {
		kv, err := js.KeyValue(ctx, cfg.Bucket)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			kv, err = js.CreateKeyValue(ctx, cfg)
			if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("create bucket %s: %w", cfg.Bucket, markStorage(err))
			}
			return kv, nil
		}
		if err != nil {
			return nil, fmt.Errorf("look up bucket %s: %w", cfg.Bucket, err)
		}
		have, err := bucketConflict(ctx, kv, cfg)
		if err != nil || have == nil {
			return kv, err
		}
		history := int64(max(cfg.History, 1))
		if have.MaxAge == cfg.TTL && have.MaxMsgsPerSubject == history && have.Description == cfg.Description {
			return kv, nil
		}
		if !update {
			if log != nil {
				log.Info("existing bucket keeps its settings (run `simlookup streams` to apply the wanted ones)",
					"bucket", cfg.Bucket, "ttl", have.MaxAge.String(), "wanted_ttl", cfg.TTL.String(),
					"history", have.MaxMsgsPerSubject, "wanted_history", history)
			}
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
