package main

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/simlookup/simlookup/internal/natstest"
	"github.com/simlookup/simlookup/schemas"
)

func TestStreamsDryRunIsTheSchemasConfigs(t *testing.T) {
	t.Parallel()
	r := runCLI(t, "streams", "--dry-run")
	wantCode(t, r, exitOK)
	var lines []map[string]json.RawMessage
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	for sc.Scan() {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 5 {
		t.Fatalf("%d lines, want 5:\n%s", len(lines), r.stdout)
	}
	for i, want := range schemas.StreamConfigs(schemas.StreamOptions{}) {
		var got jetstream.StreamConfig
		if err := json.Unmarshal(lines[i]["config"], &got); err != nil {
			t.Fatal(err)
		}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		if string(gb) != string(wb) {
			t.Errorf("stream %d:\n got %s\nwant %s", i, gb, wb)
		}
	}
	var cc jetstream.ConsumerConfig
	if err := json.Unmarshal(lines[3]["config"], &cc); err != nil {
		t.Fatal(err)
	}
	if cc.Durable != schemas.WorkerConsumer || cc.AckWait != schemas.DefaultAckWait {
		t.Errorf("consumer %+v", cc)
	}
	if string(lines[4]["kind"]) != `"kv"` || string(lines[4]["name"]) != `"simlookup_jobs"` {
		t.Errorf("kv line %s", lines[4])
	}
	// flags reach the configs
	r = runCLI(t, "streams", "--dry-run", "--replicas", "3", "--results-max-age", "48h", "--ack-wait", "5s")
	wantCode(t, r, exitOK)
	for _, s := range []string{`"num_replicas":3`, `"max_age":172800000000000`, `"ack_wait":5000000000`} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("dry-run output lacks %s", s)
		}
	}
}

func TestStreamsProvisionsAndIsIdempotent(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	for range 2 {
		r := runCLI(t, "streams", "--nats-url", srv.URL(), "--ack-wait", "7s", "--requests-max-bytes", "64MiB", "--results-max-bytes", "64MiB")
		wantCode(t, r, exitOK)
		if !strings.Contains(r.stdout, "ok  consumer SIMLOOKUP_REQUESTS/simlookup-worker") {
			t.Fatalf("stdout:\n%s", r.stdout)
		}
	}
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	cons, err := js.Consumer(t.Context(), schemas.RequestStream, schemas.WorkerConsumer)
	if err != nil {
		t.Fatal(err)
	}
	if got := cons.CachedInfo().Config.AckWait; got != 7*time.Second {
		t.Fatalf("AckWait %s, want 7s", got)
	}
	if _, err := js.KeyValue(t.Context(), schemas.JobsBucket); err != nil {
		t.Fatal(err)
	}
}

func TestStreamsConflictIsReported(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	// a results stream with the wrong retention
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: schemas.ResultStream, Subjects: []string{"simlookup.result.>"}, Retention: jetstream.InterestPolicy}); err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "streams", "--nats-url", srv.URL())
	wantCode(t, r, exitRuntime)
	if !strings.Contains(r.stderr, "Retention") || !strings.Contains(r.stderr, "SIMLOOKUP_RESULTS") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
}

func TestStreamsRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"streams", "--replicas", "0"}, "--replicas (SIMLOOKUP_REPLICAS)"},
		{[]string{"streams", "--results-max-age", "1s"}, "--results-max-age (SIMLOOKUP_RESULTS_MAX_AGE)"},
		{[]string{"streams", "--results-max-bytes", "10"}, "--results-max-bytes (SIMLOOKUP_RESULTS_MAX_BYTES)"},
		{[]string{"streams", "--results-max-bytes", "lots"}, "--results-max-bytes"},
		{[]string{"streams", "--nats-url", ""}, "--nats-url (SIMLOOKUP_NATS_URL)"},
		{[]string{"streams", "--tls-cert", "/etc/hostname"}, "--tls-key (SIMLOOKUP_TLS_KEY)"},
		{[]string{"streams", "--nats-creds", "/nonexistent/creds"}, "--nats-creds (SIMLOOKUP_NATS_CREDS)"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, tt.args...)
			wantCode(t, r, exitUsage)
			if !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("stderr %q does not mention %q", r.stderr, tt.want)
			}
		})
	}
	// unreachable server: a runtime failure, not a hang
	r := runCLI(t, "streams", "--nats-url", "nats://127.0.0.1:1")
	wantCode(t, r, exitRuntime)
	if !strings.Contains(r.stderr, "127.0.0.1:1") {
		t.Fatalf("stderr %q", r.stderr)
	}
	// the password needs a user
	r = cmdRun{env: map[string]string{"SIMLOOKUP_NATS_PASSWORD": "pw"}}.run(t, "streams")
	wantCode(t, r, exitUsage)
	if !strings.Contains(r.stderr, "--nats-user (SIMLOOKUP_NATS_USER)") {
		t.Fatalf("stderr %q", r.stderr)
	}
}

func TestStreamsExplainsInsufficientStorage(t *testing.T) {
	t.Parallel()
	srv, err := natstest.Start(natstest.Options{MaxStore: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	r := runCLI(t, "streams", "--nats-url", srv.URL())
	wantCode(t, r, exitRuntime)
	if !strings.Contains(r.stderr, "SIMLOOKUP_RESULTS_MAX_BYTES") {
		t.Fatalf("stderr %q", r.stderr)
	}
}
