package schemas_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/internal/natstest"
	"github.com/simlookup/simlookup/schemas"
)

func TestSubjects(t *testing.T) {
	t.Parallel()
	results := []struct {
		status schemas.Status
		iccid  string
		want   string
	}{
		{schemas.StatusOK, "89852240400014306175", "simlookup.result.ok.89852240400014306175"},
		{schemas.StatusFailed, "89000123456789013802", "simlookup.result.failed.89000123456789013802"},
		{schemas.StatusOK, "8900012345678901380F", "simlookup.result.ok.8900012345678901380F"},
		{schemas.StatusInvalid, "", "simlookup.result.invalid"},
		{schemas.StatusInvalid, "89000123456789013802", "simlookup.result.invalid"}, // never a subject with input in it
		{schemas.StatusOK, "", "simlookup.result.invalid"},
	}
	for _, tt := range results {
		if got := schemas.ResultSubject(tt.status, tt.iccid); got != tt.want {
			t.Errorf("ResultSubject(%q, %q) = %q, want %q", tt.status, tt.iccid, got, tt.want)
		}
	}
	lanes := []struct{ subject, want string }{
		{"simlookup.request", ""},
		{"simlookup.request.bulk", "bulk"},
		{"simlookup.request.eu.urgent", "eu.urgent"},
		{"simlookup.requests", ""},
		{"other.request.bulk", ""},
	}
	for _, tt := range lanes {
		if got := schemas.Lane(tt.subject); got != tt.want {
			t.Errorf("Lane(%q) = %q, want %q", tt.subject, got, tt.want)
		}
	}
	if got := schemas.ResultMsgID("job-1:000001"); got != "result:job-1:000001" {
		t.Errorf("ResultMsgID = %q", got)
	}
	if got := schemas.DLQSubject(schemas.ReasonMaxDeliveries); got != "simlookup.dlq.max_deliveries" {
		t.Errorf("DLQSubject = %q", got)
	}
}

// TestStreamConfigsFollowSpec pins the properties SPEC.md promises users.
func TestStreamConfigsFollowSpec(t *testing.T) {
	t.Parallel()
	cfgs := schemas.StreamConfigs(schemas.StreamOptions{})
	if len(cfgs) != 3 {
		t.Fatalf("StreamConfigs returned %d streams, want 3", len(cfgs))
	}
	req, res, dlq := cfgs[0], cfgs[1], cfgs[2]

	if req.Name != "SIMLOOKUP_REQUESTS" || req.Retention != jetstream.WorkQueuePolicy {
		t.Errorf("requests: name %q retention %v, want SIMLOOKUP_REQUESTS work-queue", req.Name, req.Retention)
	}
	if !sameSubjects(req.Subjects, []string{"simlookup.request", "simlookup.request.>"}) {
		t.Errorf("requests subjects %v", req.Subjects)
	}
	if req.MaxBytes <= 0 {
		t.Errorf("requests: MaxBytes %d, want a bound", req.MaxBytes)
	}

	if res.Name != "SIMLOOKUP_RESULTS" || res.Retention != jetstream.LimitsPolicy {
		t.Errorf("results: name %q retention %v, want SIMLOOKUP_RESULTS limits", res.Name, res.Retention)
	}
	if !sameSubjects(res.Subjects, []string{"simlookup.result.>"}) {
		t.Errorf("results subjects %v", res.Subjects)
	}
	if res.MaxAge != 7*24*time.Hour {
		t.Errorf("results: MaxAge %v, want 7 d", res.MaxAge)
	}
	if res.Duplicates != 24*time.Hour || res.Duplicates > res.MaxAge {
		t.Errorf("results: Duplicates %v, want 24 h and ≤ MaxAge %v", res.Duplicates, res.MaxAge)
	}
	if res.MaxBytes <= 0 {
		t.Errorf("results: MaxBytes %d, want a bound", res.MaxBytes)
	}
	if res.Discard != jetstream.DiscardNew {
		t.Errorf("results: Discard %v, want DiscardNew (a full stream must refuse, not drop unsunk results)", res.Discard)
	}

	if dlq.Name != "SIMLOOKUP_DLQ" || !sameSubjects(dlq.Subjects, []string{"simlookup.dlq.>"}) {
		t.Errorf("dlq: name %q subjects %v", dlq.Name, dlq.Subjects)
	}

	// A short MaxAge pulls the deduplication window down with it.
	short := schemas.ResultStreamConfig(schemas.StreamOptions{ResultsMaxAge: time.Hour})
	if short.MaxAge != time.Hour || short.Duplicates > short.MaxAge {
		t.Errorf("results with MaxAge 1h: Duplicates %v > MaxAge %v", short.Duplicates, short.MaxAge)
	}

	// Every subject the package builds lands in exactly one stream.
	for _, subj := range []string{
		schemas.RequestSubject, "simlookup.request.bulk",
		schemas.ResultSubject(schemas.StatusOK, "89852240400014306175"),
		schemas.ResultSubject(schemas.StatusFailed, "89852240400014306175"),
		schemas.ResultSubject(schemas.StatusInvalid, ""),
		schemas.DLQSubject(schemas.ReasonMaxDeliveries), schemas.DLQSubject(schemas.ReasonResultRefused),
	} {
		var in []string
		for _, c := range cfgs {
			for _, f := range c.Subjects {
				if filterMatches(f, subj) {
					in = append(in, c.Name)
				}
			}
		}
		if len(in) != 1 {
			t.Errorf("subject %s is captured by %v, want exactly one stream", subj, in)
		}
	}

	cc := schemas.WorkerConsumerConfig(0)
	if cc.Durable != "simlookup-worker" || cc.AckPolicy != jetstream.AckExplicitPolicy || cc.AckWait != schemas.DefaultAckWait {
		t.Errorf("worker consumer: %+v", cc)
	}
	if kv := schemas.JobsBucketConfig(schemas.StreamOptions{}); kv.Bucket != "simlookup_jobs" {
		t.Errorf("jobs bucket %q", kv.Bucket)
	}
}

// TestStreamConfigsOnServer has a real server accept every config (twice:
// creation is idempotent) and route each subject to the right stream.
func TestStreamConfigsOnServer(t *testing.T) {
	t.Parallel()
	_, js := natstest.RunJetStream(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// Small bounds: the server refuses a MaxBytes it cannot reserve.
	opts := schemas.StreamOptions{Memory: true, RequestsMaxBytes: 8 << 20, ResultsMaxBytes: 8 << 20}
	for range 2 {
		for _, c := range schemas.StreamConfigs(opts) {
			if _, err := js.CreateOrUpdateStream(ctx, c); err != nil {
				t.Fatalf("create stream %s: %v", c.Name, err)
			}
		}
		if _, err := js.CreateOrUpdateConsumer(ctx, schemas.RequestStream, schemas.WorkerConsumerConfig(0)); err != nil {
			t.Fatalf("create consumer: %v", err)
		}
		if _, err := js.CreateOrUpdateKeyValue(ctx, schemas.JobsBucketConfig(opts)); err != nil {
			t.Fatalf("create jobs bucket: %v", err)
		}
	}
	for subj, want := range map[string]string{
		schemas.RequestSubject:   schemas.RequestStream,
		"simlookup.request.bulk": schemas.RequestStream,
		schemas.ResultSubject(schemas.StatusOK, "89852240400014306175"): schemas.ResultStream,
		schemas.ResultSubject(schemas.StatusInvalid, ""):                schemas.ResultStream,
		schemas.DLQSubject(schemas.ReasonResultRefused):                 schemas.DLQStream,
	} {
		ack, err := js.Publish(ctx, subj, []byte("x"))
		if err != nil {
			t.Fatalf("publish %s: %v", subj, err)
		}
		if ack.Stream != want {
			t.Errorf("%s stored in %s, want %s", subj, ack.Stream, want)
		}
	}
	// Results are deduplicated by ResultMsgID.
	msgID := jetstream.WithMsgID(schemas.ResultMsgID("r1"))
	subj := schemas.ResultSubject(schemas.StatusOK, "89852240400014306175")
	first, err := js.Publish(ctx, subj, []byte("a"), msgID)
	if err != nil {
		t.Fatal(err)
	}
	second, err := js.Publish(ctx, subj, []byte("b"), msgID)
	if err != nil {
		t.Fatal(err)
	}
	if !second.Duplicate || second.Sequence != first.Sequence {
		t.Errorf("second publish with the same Nats-Msg-Id: duplicate=%v seq %d, want duplicate of %d", second.Duplicate, second.Sequence, first.Sequence)
	}
}

func sameSubjects(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// subjectMatches reports whether a NATS subject filter (with * and >) matches a subject.
func filterMatches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		switch {
		case tok == ">":
			return len(s) > i
		case i >= len(s):
			return false
		case tok != "*" && tok != s[i]:
			return false
		}
	}
	return len(f) == len(s)
}
