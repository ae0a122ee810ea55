package schemas

import (
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Default names of subjects, streams, the worker's consumer and the jobs bucket.
const (
	RequestSubject       = "simlookup.request"  // also simlookup.request.<lane>
	RequestSubjectPrefix = "simlookup.request." // lanes
	ResultSubjectPrefix  = "simlookup.result."  // simlookup.result.<status>.<iccid>
	ResultInvalidSubject = "simlookup.result.invalid"
	DLQSubjectPrefix     = "simlookup.dlq." // simlookup.dlq.<reason>

	RequestStream  = "SIMLOOKUP_REQUESTS"
	ResultStream   = "SIMLOOKUP_RESULTS"
	DLQStream      = "SIMLOOKUP_DLQ"
	WorkerConsumer = "simlookup-worker"
	JobsBucket     = "simlookup_jobs"

	// ResultMsgIDPrefix prefixes the request id in a result's Nats-Msg-Id.
	ResultMsgIDPrefix = "result:"
)

// ResultSubject is the subject of a result: simlookup.result.<status>.<iccid>,
// or simlookup.result.invalid for StatusInvalid (raw input never goes into a
// subject). iccid must already be validated (digits, optionally a trailing F).
// Any status other than ok or failed gives the invalid subject.
func ResultSubject(status Status, iccid string) string {
	if (status != StatusOK && status != StatusFailed) || iccid == "" {
		return ResultInvalidSubject
	}
	return ResultSubjectPrefix + string(status) + "." + iccid
}

// ResultMsgID is the Nats-Msg-Id of the result of a request.
func ResultMsgID(requestID string) string { return ResultMsgIDPrefix + requestID }

// DLQSubject is the subject of a dead letter with the given reason.
func DLQSubject(reason string) string { return DLQSubjectPrefix + reason }

// Lane returns the lane token of a request subject ("" for simlookup.request).
func Lane(subject string) string {
	if lane, ok := strings.CutPrefix(subject, RequestSubjectPrefix); ok {
		return lane
	}
	return ""
}

// StreamOptions are the deployment's choices for the streams; the zero value
// gives the defaults documented on each field. Zero or negative values mean
// the default: every stream is always bounded.
type StreamOptions struct {
	// Replicas of every stream; default 1 (use 3 in a production cluster).
	Replicas int
	// RequestsMaxBytes bounds the requests stream; default 1 GiB (about ten
	// million JSON requests). A full
	// stream refuses new requests (DiscardNew) rather than drop queued ones.
	RequestsMaxBytes int64
	// ResultsMaxAge is how long results stay; default 7 days. The sink must
	// commit results before they expire.
	ResultsMaxAge time.Duration
	// ResultsMaxBytes bounds the results stream; default 8 GiB (about four
	// million results with their raw vendor responses). When full it
	// refuses new results (DiscardNew); workers then keep their requests.
	ResultsMaxBytes int64
	// DLQMaxAge is how long dead letters stay; default 30 days.
	DLQMaxAge time.Duration
	// DLQMaxBytes bounds the dead-letter stream; default RequestsMaxBytes
	// (dead letters carry requests). When full it refuses new dead letters
	// (DiscardNew), so the worker keeps the request rather than lose it.
	DLQMaxBytes int64
	// Memory selects memory storage (tests only); default file storage.
	Memory bool
}

// Default stream settings.
const (
	// The defaults reserve 10 GiB of JetStream file storage in all; production
	// deployments size them explicitly (simlookup streams --results-max-bytes).
	DefaultRequestsMaxBytes int64 = 1 << 30
	DefaultResultsMaxBytes  int64 = 8 << 30
	DefaultResultsMaxAge          = 7 * 24 * time.Hour
	DefaultDLQMaxAge              = 30 * 24 * time.Hour
	// ResultsDuplicateWindow is how long a result's Nats-Msg-Id is remembered.
	ResultsDuplicateWindow = 24 * time.Hour
	// RequestsDuplicateWindow is how long a request's Nats-Msg-Id is remembered.
	RequestsDuplicateWindow = 24 * time.Hour
)

func (o StreamOptions) withDefaults() StreamOptions {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.RequestsMaxBytes <= 0 {
		o.RequestsMaxBytes = DefaultRequestsMaxBytes
	}
	if o.ResultsMaxBytes <= 0 {
		o.ResultsMaxBytes = DefaultResultsMaxBytes
	}
	if o.ResultsMaxAge <= 0 {
		o.ResultsMaxAge = DefaultResultsMaxAge
	}
	if o.DLQMaxAge <= 0 {
		o.DLQMaxAge = DefaultDLQMaxAge
	}
	if o.DLQMaxBytes <= 0 {
		o.DLQMaxBytes = o.RequestsMaxBytes
	}
	return o
}

func (o StreamOptions) storage() jetstream.StorageType {
	if o.Memory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// RequestStreamConfig is the work-queue stream of lookup requests.
func RequestStreamConfig(o StreamOptions) jetstream.StreamConfig {
	o = o.withDefaults()
	return jetstream.StreamConfig{
		Name:        RequestStream,
		Description: "simlookup lookup requests (work queue)",
		Subjects:    []string{RequestSubject, RequestSubjectPrefix + ">"},
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    o.RequestsMaxBytes,
		MaxMsgSize:  64 << 10,
		Storage:     o.storage(),
		Replicas:    o.Replicas,
		Duplicates:  RequestsDuplicateWindow,
	}
}

// ResultStreamConfig is the limits-retention stream of result events.
func ResultStreamConfig(o StreamOptions) jetstream.StreamConfig {
	o = o.withDefaults()
	dup := ResultsDuplicateWindow
	if dup > o.ResultsMaxAge {
		dup = o.ResultsMaxAge
	}
	return jetstream.StreamConfig{
		Name:        ResultStream,
		Description: "simlookup result events, one per request",
		Subjects:    []string{ResultSubjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxAge:      o.ResultsMaxAge,
		MaxBytes:    o.ResultsMaxBytes,
		Storage:     o.storage(),
		Replicas:    o.Replicas,
		Duplicates:  dup,
	}
}

// DLQStreamConfig is the stream of dead letters.
func DLQStreamConfig(o StreamOptions) jetstream.StreamConfig {
	o = o.withDefaults()
	return jetstream.StreamConfig{
		Name:        DLQStream,
		Description: "simlookup dead letters: requests that could not become a result",
		Subjects:    []string{DLQSubjectPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxAge:      o.DLQMaxAge,
		MaxBytes:    o.DLQMaxBytes,
		Storage:     o.storage(),
		Replicas:    o.Replicas,
		Duplicates:  2 * time.Minute,
	}
}

// StreamConfigs returns the requests, results and dead-letter streams.
func StreamConfigs(o StreamOptions) []jetstream.StreamConfig {
	return []jetstream.StreamConfig{RequestStreamConfig(o), ResultStreamConfig(o), DLQStreamConfig(o)}
}

// Worker consumer defaults.
const (
	// DefaultAckWait is how long a delivered request may go without an ack
	// or an in-progress signal before it is redelivered.
	DefaultAckWait = 60 * time.Second
	// WorkerMaxDeliver is large on purpose: requests give up by age
	// (--give-up-after), not by delivery count. Past it a request is dead-lettered.
	WorkerMaxDeliver = 10_000
	// WorkerMaxAckPending is large on purpose: requests waiting for a delayed
	// redelivery occupy ack-pending slots, and must not block new work.
	// Concurrency is bounded in each worker process instead.
	WorkerMaxAckPending = 100_000
)

// WorkerConsumerConfig is the durable pull consumer shared by every worker.
// It depends on no process's concurrency; ackWait 0 means DefaultAckWait.
func WorkerConsumerConfig(ackWait time.Duration) jetstream.ConsumerConfig {
	if ackWait <= 0 {
		ackWait = DefaultAckWait
	}
	return jetstream.ConsumerConfig{
		Durable:       WorkerConsumer,
		Description:   "simlookup workers (shared by every worker process)",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    WorkerMaxDeliver,
		MaxAckPending: WorkerMaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
	}
}

// JobsBucketConfig is the KV bucket where publish records jobs.
func JobsBucketConfig(o StreamOptions) jetstream.KeyValueConfig {
	o = o.withDefaults()
	st := jetstream.FileStorage
	if o.Memory {
		st = jetstream.MemoryStorage
	}
	return jetstream.KeyValueConfig{
		Bucket:      JobsBucket,
		Description: "simlookup jobs: id, request count, time",
		History:     1,
		TTL:         o.ResultsMaxAge,
		Storage:     st,
		Replicas:    o.Replicas,
	}
}
