package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/schollz/progressbar/v3"

	"github.com/simlookup/simlookup/schemas"
)

type publishCmd struct {
	natsFlags `embed:""`

	File       string        `short:"f" type:"path" placeholder:"FILE" env:"-" help:"Read ICCIDs from FILE, one per line ('#' comments and blank lines skipped); - is stdin."`
	CSV        string        `name:"csv" type:"path" placeholder:"FILE" env:"-" help:"Read ICCIDs from the --column of a CSV file with a header line."`
	Column     string        `default:"iccid" placeholder:"NAME" env:"-" help:"CSV column holding the ICCIDs (matched case-insensitively)."`
	JobID      string        `name:"job-id" placeholder:"ID" env:"-" help:"Job id (letters, digits, '-', '_', '='; at most 100). Republishing the same job is idempotent; default a new UUID, so the cards are looked up again."`
	Lane       string        `placeholder:"LANE" help:"Publish to simlookup.request.<LANE> (recorded in results, not yet prioritised)."`
	MaxPending int           `name:"max-pending" default:"512" placeholder:"N" help:"Most publishes awaiting their acknowledgement at once."`
	AckTimeout time.Duration `name:"ack-timeout" default:"10s" placeholder:"DURATION" help:"How long to wait for the stream to acknowledge one publish before retrying it."`
	Progress   bool          `env:"-" help:"Show a progress bar even when stderr is not a terminal."`
	Quiet      bool          `short:"q" env:"-" help:"No progress bar; print only the summary."`

	ICCIDs []string `arg:"" optional:"" name:"iccid" help:"ICCIDs to look up (when none, and no --file or --csv, read stdin)."`
}

func (c *publishCmd) Help() string {
	return `Publishes lookup requests to simlookup.request as JSON
{"iccid":..., "request_id":"<job>:<n>", "job_id":"<job>"} with the header
Nats-Msg-Id: <job>:<n>, where <n> is the line number in the file (or the
argument's position), so publishing the same file with the same --job-id again
adds nothing (the stream deduplicates for 24 h), while a new job (the default)
looks every card up again. Every acknowledgement is awaited; the exit code is
1 if any publish failed. The job (id, count, time) is recorded in the
simlookup_jobs bucket for "simlookup results --job-id ID --wait".

Values are sent as given (trimmed): input that is not an ICCID gets an
"invalid" result from the worker, with the reason.

Examples:

    simlookup publish 89852240400014306175 89852240400014306183
    simlookup publish --file iccids.txt --job-id inventory-2026-12-03
    simlookup publish --csv fleet.csv --column ICCID
    cut -d, -f3 fleet.csv | simlookup publish
    simlookup publish --file iccids.txt --job-id inventory-2 && simlookup results --job-id inventory-2 --wait`
}

var jobIDPattern = regexp.MustCompile(`^[A-Za-z0-9_=-]{1,100}$`)

var lanePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

func (c *publishCmd) validate(a *app) error {
	if err := c.natsFlags.validate(a.getenv); err != nil {
		return err
	}
	sources := 0
	if len(c.ICCIDs) > 0 {
		sources++
	}
	if c.File != "" {
		sources++
	}
	if c.CSV != "" {
		sources++
	}
	if sources > 1 {
		return usagef("give ICCIDs one way: as arguments, with --file, or with --csv")
	}
	if c.JobID != "" && !jobIDPattern.MatchString(c.JobID) {
		return usagef("--job-id %q: a job id is 1 to 100 letters, digits, '-', '_' or '='", c.JobID)
	}
	if c.Lane != "" && !lanePattern.MatchString(c.Lane) {
		return usagef("%s %q: a lane is 1 to 64 letters, digits, '-' or '_'", flagRef("lane"), c.Lane)
	}
	if c.MaxPending < 1 || c.MaxPending > 65536 {
		return usagef("%s is %d: it needs 1 to 65536", flagRef("max-pending"), c.MaxPending)
	}
	if c.AckTimeout < 100*time.Millisecond {
		return usagef("%s is %s: it needs at least 100ms", flagRef("ack-timeout"), c.AckTimeout)
	}
	if c.CSV != "" && strings.TrimSpace(c.Column) == "" {
		return usagef("--column is empty: name the CSV column that holds the ICCIDs")
	}
	return nil
}

// readInputs gathers what to publish from the chosen source.
func (c *publishCmd) readInputs(a *app) ([]input, error) {
	var ins []input
	add := func(in input) error { ins = append(ins, in); return nil }
	open := func(flag, path string) (io.ReadCloser, error) {
		if path == "-" {
			return io.NopCloser(a.stdin), nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil, usagef("--%s: %v", flag, err)
		}
		return f, nil
	}
	switch {
	case len(c.ICCIDs) > 0:
		for i, s := range c.ICCIDs {
			ins = append(ins, input{Pos: i + 1, Value: strings.TrimSpace(s)})
		}
	case c.CSV != "":
		f, err := open("csv", c.CSV)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := readCSV(f, c.Column, add); err != nil {
			return nil, usagef("--csv %s: %v", c.CSV, err)
		}
	default:
		path := c.File
		if path == "" {
			if f, ok := a.stdin.(*os.File); ok && isTerminal(f) {
				return nil, usagef("no ICCIDs: give them as arguments, with --file FILE or --csv FILE, or pipe them to stdin")
			}
			path = "-"
		}
		f, err := open("file", path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := readICCIDs(f, add); err != nil {
			return nil, usagef("--file %s: %v", path, err)
		}
	}
	if len(ins) == 0 {
		return nil, usagef("no ICCIDs to publish (the input was empty, or only comments and blank lines)")
	}
	return ins, nil
}

func (c *publishCmd) run(a *app) error {
	if err := c.validate(a); err != nil {
		return err
	}
	ins, err := c.readInputs(a)
	if err != nil {
		return err
	}
	nc, err := c.connect(a.ctx, a, connectOpts{})
	if err != nil {
		return err
	}
	defer drainClose(nc, a.log)
	subject := schemas.RequestSubject
	if c.Lane != "" {
		subject = schemas.RequestSubjectPrefix + c.Lane
	}
	jobID := c.JobID
	if jobID == "" {
		jobID = uuid.NewString()
	}
	showBar := (c.Progress || isTerminal(a.stderr)) && !c.Quiet
	sum, err := publishJob(a.ctx, nc, publishSpec{
		JobID: jobID, Subject: subject, Inputs: ins,
		MaxPending: c.MaxPending, AckTimeout: c.AckTimeout,
		Progress: progressWriter(showBar, a.stderr),
	}, a.log)
	if err != nil {
		return err
	}
	// A work-queue stream drops a request once a worker has acked it, so
	// "in the stream" would be wrong: the stream remembers the ids (and
	// drops a republished one) for its deduplication window.
	fmt.Fprintf(a.stdout, "job %s: %d published to %s (%d new, %d already accepted (deduplicated within %g h)), %d failed\n",
		jobID, sum.Published, subject, sum.Published-sum.Duplicates, sum.Duplicates, schemas.RequestsDuplicateWindow.Hours(), sum.Failed)
	if sum.Failed > 0 {
		for _, f := range sum.Failures {
			fmt.Fprintf(a.stderr, "failed: %s: %s\n", f.RequestID, f.Err)
		}
		return &exitCodeError{code: exitRuntime, msg: fmt.Sprintf("%d of %d publishes failed (republish with --job-id %s to retry them; the rest is not repeated)", sum.Failed, len(ins), jobID)}
	}
	fmt.Fprintf(a.stdout, "results: simlookup results --job-id %s --wait\n", jobID)
	return nil
}

func progressWriter(show bool, w io.Writer) io.Writer {
	if !show {
		return nil
	}
	return w
}

// publishSpec describes one publish run.
type publishSpec struct {
	JobID      string
	Subject    string
	Inputs     []input
	MaxPending int
	AckTimeout time.Duration
	// Progress, when not nil, receives a progress bar.
	Progress io.Writer
	// Description of the progress bar; default "publishing".
	Description string
}

type publishFailure struct {
	RequestID string
	Err       error
}

// publishSummary counts the outcome of a publish run.
type publishSummary struct {
	Published  int // acknowledged by the stream (new or duplicate)
	Duplicates int // acknowledged as duplicates: the stream accepted the same request id within its deduplication window
	Failed     int
	Failures   []publishFailure // at most 20
	Elapsed    time.Duration
}

// requestID is the request id of the n-th input of a job.
func requestID(job string, pos int) string { return job + ":" + strconv.Itoa(pos) }

// ensureJobsBucket opens the jobs bucket, creating it with default settings
// when the deployment has none yet.
func ensureJobsBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, schemas.JobsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = schemas.EnsureKeyValue(ctx, js, schemas.JobsBucketConfig(schemas.StreamOptions{}))
	}
	if err != nil {
		return nil, fmt.Errorf("jobs bucket %s: %w", schemas.JobsBucket, err)
	}
	return kv, nil
}

// recordJob stores the job record under its id.
func recordJob(ctx context.Context, js jetstream.JetStream, job schemas.Job) error {
	kv, err := ensureJobsBucket(ctx, js)
	if err != nil {
		return err
	}
	if e, err := kv.Get(ctx, job.JobID); err == nil {
		var old schemas.Job
		if json.Unmarshal(e.Value(), &old) == nil && old.Count == job.Count && old.Subject == job.Subject {
			return nil // republishing the same job
		}
	}
	b, err := json.Marshal(job)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, job.JobID, b); err != nil {
		return fmt.Errorf("record job %s: %w", job.JobID, err)
	}
	return nil
}

// publishJob records the job and publishes every input asynchronously,
// awaiting every acknowledgement; a publish whose acknowledgement does not
// come is retried (safe: the request id deduplicates).
func publishJob(ctx context.Context, nc *nats.Conn, spec publishSpec, log *slog.Logger) (publishSummary, error) {
	start := time.Now()
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(spec.MaxPending),
		jetstream.WithPublishAsyncTimeout(spec.AckTimeout))
	if err != nil {
		return publishSummary{}, fmt.Errorf("jetstream: %w", err)
	}
	if _, err := js.StreamNameBySubject(ctx, spec.Subject); err != nil {
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			return publishSummary{}, fmt.Errorf("no stream takes %s: create the streams with `simlookup streams` (or start a worker) first", spec.Subject)
		}
		return publishSummary{}, fmt.Errorf("look up the stream of %s: %w", spec.Subject, err)
	}
	if err := recordJob(ctx, js, schemas.Job{JobID: spec.JobID, Count: len(spec.Inputs), Subject: spec.Subject, CreatedAt: time.Now().UTC()}); err != nil {
		return publishSummary{}, err
	}

	var bar *progressbar.ProgressBar
	if spec.Progress != nil {
		desc := spec.Description
		if desc == "" {
			desc = "publishing"
		}
		bar = progressbar.NewOptions(len(spec.Inputs),
			progressbar.OptionSetWriter(spec.Progress),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("msg"),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(spec.Progress) }),
		)
	}

	var (
		mu  sync.Mutex
		sum publishSummary
	)
	fail := func(id string, err error) {
		mu.Lock()
		defer mu.Unlock()
		sum.Failed++
		if len(sum.Failures) < 20 {
			sum.Failures = append(sum.Failures, publishFailure{RequestID: id, Err: err})
		}
	}
	ok := func(ack *jetstream.PubAck) {
		mu.Lock()
		sum.Published++
		if ack.Duplicate {
			sum.Duplicates++
		}
		mu.Unlock()
		if bar != nil {
			_ = bar.Add(1)
		}
	}
	// retry publishes one message synchronously a few times.
	retry := func(m *nats.Msg, first error) {
		id := m.Header.Get(jetstream.MsgIDHeader)
		err := first
		for attempt := range 3 {
			if ctx.Err() != nil {
				break
			}
			log.Warn("publish not acknowledged; retrying", "request_id", id, "err", err, "attempt", attempt+2)
			pctx, cancel := context.WithTimeout(ctx, spec.AckTimeout)
			var ack *jetstream.PubAck
			ack, err = js.PublishMsg(pctx, m, jetstream.WithMsgID(id))
			cancel()
			if err == nil {
				ok(ack)
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(200*(attempt+1)) * time.Millisecond):
			}
		}
		fail(id, err)
	}

	futures := make(chan jetstream.PubAckFuture, spec.MaxPending)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for f := range futures {
			select {
			case ack := <-f.Ok():
				ok(ack)
			case err := <-f.Err():
				retry(f.Msg(), err)
			}
		}
	}()
	for _, in := range spec.Inputs {
		id := requestID(spec.JobID, in.Pos)
		body, err := json.Marshal(schemas.Request{ICCID: in.Value, RequestID: id, JobID: spec.JobID})
		if err != nil {
			fail(id, err)
			continue
		}
		m := nats.NewMsg(spec.Subject)
		m.Data = body
		var f jetstream.PubAckFuture
		for {
			if ctx.Err() != nil {
				break
			}
			f, err = js.PublishMsgAsync(m, jetstream.WithMsgID(id), jetstream.WithStallWait(spec.AckTimeout))
			if !errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				break
			}
		}
		if ctx.Err() != nil {
			fail(id, ctx.Err())
			continue
		}
		if err != nil {
			m.Header = nats.Header{jetstream.MsgIDHeader: []string{id}}
			retry(m, err)
			continue
		}
		futures <- f
	}
	close(futures)
	<-done
	if bar != nil {
		_ = bar.Finish()
	}
	sum.Elapsed = time.Since(start)
	return sum, nil
}

func (c *publishCmd) check(a *app) error { return c.validate(a) }
