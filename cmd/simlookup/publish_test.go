package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/internal/natstest"
	"github.com/simlookup/simlookup/schemas"
)

// provisioned starts a NATS server with simlookup's streams (small bounds).
func provisioned(t *testing.T) (*natstest.Server, jetstream.JetStream) {
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
	if err := schemas.Provision(t.Context(), js, testStreamOptions, 0); err != nil {
		t.Fatal(err)
	}
	return srv, js
}

var testStreamOptions = schemas.StreamOptions{RequestsMaxBytes: 64 << 20, ResultsMaxBytes: 64 << 20}

// requests reads every message of the requests stream.
func requests(t *testing.T, js jetstream.JetStream) []*jetstream.RawStreamMsg {
	t.Helper()
	st, err := js.Stream(t.Context(), schemas.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestPublishArgumentsFileCSVAndStdin(t *testing.T) {
	t.Parallel()
	srv, js := provisioned(t)
	url := srv.URL()

	r := runCLI(t, "publish", "--nats-url", url, "--job-id", "args", "89852240400014306175", "  89852240400014306183 ")
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "job args: 2 published") || !strings.Contains(r.stdout, "simlookup results --job-id args --wait") {
		t.Fatalf("stdout:\n%s", r.stdout)
	}
	file := writeFile(t, "iccids.txt", "# fleet A\n89852240400014306175\n\n89852240400014306183 # spare\n")
	wantCode(t, runCLI(t, "publish", "--nats-url", url, "--job-id", "file", "--file", file), exitOK)
	csv := writeFile(t, "fleet.csv", "name,ICCID\nvan,89852240400014306191\n")
	wantCode(t, runCLI(t, "publish", "--nats-url", url, "--job-id", "csv", "--csv", csv, "--column", "iccid"), exitOK)
	in := cmdRun{stdin: strings.NewReader("89852240400014306209\n")}
	wantCode(t, in.run(t, "publish", "--nats-url", url, "--job-id", "stdin"), exitOK)

	msgs := requests(t, js)
	type got struct{ id, iccid, job string }
	var all []got
	for _, m := range msgs {
		var req schemas.Request
		if err := json.Unmarshal(m.Data, &req); err != nil {
			t.Fatal(err)
		}
		if m.Header.Get(jetstream.MsgIDHeader) != req.RequestID {
			t.Fatalf("Nats-Msg-Id %q, request_id %q", m.Header.Get(jetstream.MsgIDHeader), req.RequestID)
		}
		if err := schemas.ValidateRequest(m.Data); err != nil {
			t.Fatal(err)
		}
		all = append(all, got{req.RequestID, req.ICCID, req.JobID})
	}
	want := []got{
		{"args:1", "89852240400014306175", "args"}, {"args:2", "89852240400014306183", "args"},
		{"file:2", "89852240400014306175", "file"}, {"file:4", "89852240400014306183", "file"},
		{"csv:2", "89852240400014306191", "csv"},
		{"stdin:1", "89852240400014306209", "stdin"},
	}
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Fatalf("requests\n got %v\nwant %v", all, want)
	}
	job, err := loadJob(t.Context(), js, "file")
	if err != nil {
		t.Fatal(err)
	}
	if job.Count != 2 || job.Subject != schemas.RequestSubject || time.Since(job.CreatedAt) > time.Minute {
		t.Fatalf("job record %+v", job)
	}
}

func TestPublishSameJobIsIdempotentNewJobIsNot(t *testing.T) {
	t.Parallel()
	srv, js := provisioned(t)
	file := writeFile(t, "iccids.txt", "89852240400014306175\n89852240400014306183\n89852240400014306191\n")
	wantCode(t, runCLI(t, "publish", "--nats-url", srv.URL(), "--job-id", "j1", "--file", file), exitOK)
	r := runCLI(t, "publish", "--nats-url", srv.URL(), "--job-id", "j1", "--file", file)
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "(0 new, 3 already accepted (deduplicated within 24 h))") {
		t.Fatalf("republish stdout:\n%s", r.stdout)
	}
	if n := len(requests(t, js)); n != 3 {
		t.Fatalf("%d requests after republishing the same job, want 3", n)
	}
	r = runCLI(t, "publish", "--nats-url", srv.URL(), "--file", file) // a new job id
	wantCode(t, r, exitOK)
	if n := len(requests(t, js)); n != 6 {
		t.Fatalf("%d requests after a new job, want 6", n)
	}
}

func TestPublishLane(t *testing.T) {
	t.Parallel()
	srv, js := provisioned(t)
	wantCode(t, runCLI(t, "publish", "--nats-url", srv.URL(), "--lane", "urgent", "89852240400014306175"), exitOK)
	msgs := requests(t, js)
	if len(msgs) != 1 || msgs[0].Subject != "simlookup.request.urgent" {
		t.Fatalf("messages %v", msgs)
	}
}

func TestPublishRefusals(t *testing.T) {
	t.Parallel()
	empty := writeFile(t, "empty.txt", "# nothing\n\n")
	csv := writeFile(t, "x.csv", "a,b\n1,2\n")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"publish", "--file", "/nonexistent/iccids.txt"}, "--file"},
		{[]string{"publish", "--file", empty}, "no ICCIDs"},
		{[]string{"publish", "--csv", csv}, `no such column "iccid"`},
		{[]string{"publish", "--csv", csv, "--file", empty}, "one way"},
		{[]string{"publish", "--job-id", "a b", "1"}, "--job-id"},
		{[]string{"publish", "--lane", "a.>", "1"}, "--lane (SIMLOOKUP_LANE)"},
		{[]string{"publish", "--max-pending", "0", "1"}, "--max-pending (SIMLOOKUP_MAX_PENDING)"},
		{[]string{"publish"}, "no ICCIDs"},
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
}

func TestPublishWithoutStreamsFailsClearly(t *testing.T) {
	t.Parallel()
	srv := natstest.Run(t)
	r := runCLI(t, "publish", "--nats-url", srv.URL(), "89852240400014306175")
	wantCode(t, r, exitRuntime)
	if !strings.Contains(r.stderr, "simlookup streams") {
		t.Fatalf("stderr %q", r.stderr)
	}
}

// publishResult stores a result event as a worker would.
func publishResult(t *testing.T, js jetstream.JetStream, r schemas.Result) {
	t.Helper()
	r.SchemaVersion = schemas.SchemaVersion
	if r.CompletedAt.IsZero() {
		r.CompletedAt = time.Now().UTC()
		r.RequestedAt = r.CompletedAt
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg(schemas.ResultSubject(r.Status, r.ICCID))
	m.Data = b
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, m, jetstream.WithMsgID(schemas.ResultMsgID(r.RequestID))); err != nil {
		t.Fatal(err)
	}
}

func strp(s string) *string { return &s }

func TestResultsFiltersFormatsAndWait(t *testing.T) {
	t.Parallel()
	srv, js := provisioned(t)
	url := srv.URL()
	wantCode(t, runCLI(t, "publish", "--nats-url", url, "--job-id", "j", "89852240400014306175", "89852240400014306183", "bad"), exitOK)

	// --wait with no results yet times out
	r := runCLI(t, "results", "--nats-url", url, "--job-id", "j", "--wait", "--timeout", "300ms")
	wantCode(t, r, exitRuntime)
	if !strings.Contains(r.stdout, "job j: 0/3 results") {
		t.Fatalf("stdout %q", r.stdout)
	}

	card := &schemas.Card{CardStatus: strp("active")}
	publishResult(t, js, schemas.Result{RequestID: "j:1", JobID: strp("j"), ICCID: "89852240400014306175", Status: schemas.StatusOK, Attempts: 1, Card: card})
	publishResult(t, js, schemas.Result{RequestID: "other:1", JobID: strp("other"), ICCID: "89852240400014306175", Status: schemas.StatusOK, Attempts: 1, Card: card})
	publishResult(t, js, schemas.Result{RequestID: "j:2", JobID: strp("j"), ICCID: "89852240400014306183", Status: schemas.StatusFailed, Attempts: 3,
		Error: &schemas.ErrorInfo{Kind: schemas.KindVendor, Code: strp("1003"), Message: "card not found"}})

	// wait in the background; the last result arrives afterwards
	done := make(chan result, 1)
	go func() { done <- runCLI(t, "results", "--nats-url", url, "--job-id", "j", "--wait", "--timeout", "20s") }()

	r = runCLI(t, "results", "--nats-url", url)
	wantCode(t, r, exitOK)
	if n := strings.Count(r.stdout, "\n"); n != 3 {
		t.Fatalf("%d lines, want 3:\n%s", n, r.stdout)
	}
	r = runCLI(t, "results", "--nats-url", url, "--status", "failed")
	wantCode(t, r, exitOK)
	if strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, `"request_id":"j:2"`) {
		t.Fatalf("--status failed:\n%s", r.stdout)
	}
	r = runCLI(t, "results", "--nats-url", url, "--iccid", "89852240400014306175", "--job-id", "other", "--format", "table")
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "STATUS") || !strings.Contains(r.stdout, "other:1") || strings.Contains(r.stdout, "j:1") {
		t.Fatalf("table:\n%s", r.stdout)
	}

	publishResult(t, js, schemas.Result{RequestID: "j:3", JobID: strp("j"), Status: schemas.StatusInvalid, Input: strp("bad"),
		Error: &schemas.ErrorInfo{Kind: schemas.KindInvalidInput, Code: strp("not_digits"), Message: "not an ICCID"}})
	r = <-done
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "job j: 3/3 results: 1 ok, 1 failed, 1 invalid (4 vendor calls)") {
		t.Fatalf("wait summary %q", r.stdout)
	}
	// results of nothing: empty output, exit 0
	r = runCLI(t, "results", "--nats-url", url, "--iccid", "89852240400014306999")
	wantCode(t, r, exitOK)
	if r.stdout != "" {
		t.Fatalf("stdout %q", r.stdout)
	}
}

func TestResultsRefusals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"results", "--wait"}, "--job-id"},
		{[]string{"results", "--status", "good"}, "--status"},
		{[]string{"results", "--iccid", "12ab"}, "--iccid"},
		{[]string{"results", "--format", "xml"}, "--format"},
		{[]string{"results", "--events"}, "--wait"},
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
	srv, _ := provisioned(t)
	r := runCLI(t, "results", "--nats-url", srv.URL(), "--job-id", "nope", "--wait")
	wantCode(t, r, exitRuntime)
	if !strings.Contains(r.stderr, `no job "nope"`) {
		t.Fatalf("stderr %q", r.stderr)
	}
}

func TestResultsFollowPrintsNewEvents(t *testing.T) {
	t.Parallel()
	srv, js := provisioned(t)
	publishResult(t, js, schemas.Result{RequestID: "old:1", ICCID: "89852240400014306175", Status: schemas.StatusOK})
	live := &syncBuffer{}
	stop := background(t, cmdRun{stdout: live}, "results", "--nats-url", srv.URL(), "--follow", "--format", "table")
	eventually(t, "the old event", func() bool { return strings.Contains(live.String(), "old:1") })
	publishResult(t, js, schemas.Result{RequestID: "new:1", ICCID: "89852240400014306183", Status: schemas.StatusFailed,
		Error: &schemas.ErrorInfo{Kind: schemas.KindNoData, Message: "no data"}})
	eventually(t, "the new event", func() bool { return strings.Contains(live.String(), "new:1") })
	r := stop()
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "no_data: no data") {
		t.Fatalf("table:\n%s", r.stdout)
	}
}

func TestPublishProgressBar(t *testing.T) {
	t.Parallel()
	srv, _ := provisioned(t)
	r := runCLI(t, append([]string{"publish", "--nats-url", srv.URL(), "--progress"}, iccids(30)...)...)
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stderr, "publishing") || !strings.Contains(r.stderr, "30/30") {
		t.Fatalf("no progress bar on stderr:\n%s", r.stderr)
	}
	r = runCLI(t, "publish", "--nats-url", srv.URL(), "89852240400014306175")
	if strings.Contains(r.stderr, "publishing") {
		t.Fatalf("progress bar without a terminal:\n%s", r.stderr)
	}
}
