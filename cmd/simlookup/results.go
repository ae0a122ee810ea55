package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/schemas"
)

type resultsCmd struct {
	natsFlags `embed:""`

	Format  string        `enum:"json,table" default:"json" placeholder:"FORMAT" env:"-" help:"Output: json (one result event per line, as stored) or table."`
	Follow  bool          `short:"F" env:"-" help:"Keep printing new results as they arrive."`
	Status  []string      `placeholder:"STATUS" env:"-" help:"Only results with this status: ok, failed or invalid (repeat or comma-separate)."`
	ICCID   string        `name:"iccid" placeholder:"ICCID" env:"-" help:"Only results for this ICCID."`
	JobID   string        `name:"job-id" placeholder:"ID" env:"-" help:"Only results of this job."`
	Wait    bool          `env:"-" help:"With --job-id: wait until every request of the job has its result, then print the job's summary."`
	Events  bool          `env:"-" help:"With --wait: also print the events (the summary then goes to stderr)."`
	Timeout time.Duration `placeholder:"DURATION" env:"-" help:"Give up after this long (exit 1); 0 waits forever."`
}

func (c *resultsCmd) Help() string {
	return `Reads result events from the SIMLOOKUP_RESULTS stream (from the oldest kept,
7 days by default) and prints them. Filters by status and ICCID use the
subjects (simlookup.result.<status>.<iccid>); the job filter reads the events.

Examples:

    simlookup results                                   # everything kept, as JSON lines
    simlookup results --follow --format table           # watch results arrive
    simlookup results --status failed --status invalid  # what went wrong
    simlookup results --iccid 89852240400014306175 | jq .card
    simlookup results --job-id inventory-2026-12-03 --wait
    # job inventory-2026-12-03: 1000/1000 results: 962 ok, 35 failed, 3 invalid`
}

var validStatuses = []string{string(schemas.StatusOK), string(schemas.StatusFailed), string(schemas.StatusInvalid)}

func (c *resultsCmd) statuses() ([]string, error) {
	var out []string
	for _, s := range c.Status {
		for p := range strings.SplitSeq(s, ",") {
			p = strings.ToLower(strings.TrimSpace(p))
			if p == "" {
				continue
			}
			if !slices.Contains(validStatuses, p) {
				return nil, usagef("--status %q: want ok, failed or invalid", p)
			}
			if !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

var iccidPattern = regexp.MustCompile(`^[0-9]{18,22}[Ff]?$`)

// filterSubjects turns the status and ICCID filters into subject filters.
func filterSubjects(statuses []string, iccid string) []string {
	if len(statuses) == 0 {
		if iccid == "" {
			return []string{schemas.ResultSubjectPrefix + ">"}
		}
		statuses = []string{string(schemas.StatusOK), string(schemas.StatusFailed)}
	}
	var out []string
	for _, s := range statuses {
		switch {
		case s == string(schemas.StatusInvalid):
			if iccid == "" { // invalid results carry no ICCID
				out = append(out, schemas.ResultInvalidSubject)
			}
		case iccid != "":
			out = append(out, schemas.ResultSubject(schemas.Status(s), iccid))
		default:
			out = append(out, schemas.ResultSubjectPrefix+s+".>")
		}
	}
	return out
}

func (c *resultsCmd) check(a *app) error {
	if err := c.natsFlags.validate(a.getenv); err != nil {
		return err
	}
	statuses, err := c.statuses()
	if err != nil {
		return err
	}
	if c.ICCID != "" && !iccidPattern.MatchString(c.ICCID) {
		return usagef("--iccid %q is not an ICCID (18 to 22 digits, optionally a trailing F)", c.ICCID)
	}
	if c.Wait && c.JobID == "" {
		return usagef("--wait needs --job-id: it waits for the results of one job")
	}
	if c.Events && !c.Wait {
		return usagef("--events only goes with --wait (without --wait every event is printed anyway)")
	}
	if c.Timeout < 0 {
		return usagef("--timeout is negative")
	}
	if len(filterSubjects(statuses, c.ICCID)) == 0 {
		return usagef("--status invalid with --iccid matches nothing: invalid results carry no ICCID")
	}
	return nil
}

func (c *resultsCmd) run(a *app) error {
	statuses, err := c.statuses()
	if err != nil {
		return err
	}
	subjects := filterSubjects(statuses, c.ICCID)
	ctx := a.ctx
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	nc, err := c.connect(ctx, a, connectOpts{})
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetStream(nc)
	if err != nil {
		return err
	}
	var job *schemas.Job
	if c.Wait {
		job, err = loadJob(ctx, js, c.JobID)
		if err != nil {
			return err
		}
		subjects = []string{schemas.ResultSubjectPrefix + ">"} // count every status
	}
	out := a.stdout
	printEvents := !c.Wait || c.Events
	summaryOut := a.stdout
	if c.Wait && c.Events {
		summaryOut = a.stderr
	}
	p := newResultPrinter(out, c.Format)
	tally := newJobTally()
	err = readResults(ctx, js, subjects, c.Follow || c.Wait, func(r *schemas.Result, raw []byte) (bool, error) {
		if c.JobID != "" && (r.JobID == nil || *r.JobID != c.JobID) {
			return true, nil
		}
		if c.Wait {
			if !tally.add(r) {
				return true, nil // a result already counted
			}
			if c.ICCID != "" && r.ICCID != c.ICCID || len(statuses) > 0 && !slices.Contains(statuses, string(r.Status)) {
				return tally.n < job.Count, nil
			}
		}
		if printEvents {
			if err := p.print(r, raw); err != nil {
				return false, err
			}
		}
		return !c.Wait || tally.n < job.Count, nil
	})
	if c.Wait {
		fmt.Fprintln(summaryOut, tally.summary(job))
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && c.Timeout > 0 {
			return &exitCodeError{code: exitRuntime, msg: fmt.Sprintf("timed out after %s", c.Timeout)}
		}
		if errors.Is(err, context.Canceled) {
			return nil // interrupted by the user
		}
		return err
	}
	return nil
}

// loadJob reads a job record from the jobs bucket.
func loadJob(ctx context.Context, js jetstream.JetStream, id string) (*schemas.Job, error) {
	kv, err := js.KeyValue(ctx, schemas.JobsBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("no jobs bucket %s: nothing was published with `simlookup publish` here yet", schemas.JobsBucket)
	}
	if err != nil {
		return nil, fmt.Errorf("jobs bucket: %w", err)
	}
	e, err := kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("no job %q in %s (jobs are kept as long as results)", id, schemas.JobsBucket)
	}
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", id, err)
	}
	var j schemas.Job
	if err := json.Unmarshal(e.Value(), &j); err != nil {
		return nil, fmt.Errorf("job %s: bad record: %w", id, err)
	}
	return &j, nil
}

// readResults calls fn for every result event on subjects, oldest first.
// Without follow it returns once it has caught up with the stream; with
// follow it runs until fn returns false or ctx ends.
func readResults(ctx context.Context, js jetstream.JetStream, subjects []string, follow bool, fn func(r *schemas.Result, raw []byte) (bool, error)) error {
	cons, err := js.OrderedConsumer(ctx, schemas.ResultStream, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("no stream %s yet: run `simlookup streams` or start a worker", schemas.ResultStream)
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", schemas.ResultStream, err)
	}
	if !follow {
		info, err := cons.Info(ctx)
		if err != nil {
			return fmt.Errorf("read %s: %w", schemas.ResultStream, err)
		}
		if info.NumPending == 0 {
			return nil
		}
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read %s: %w", schemas.ResultStream, err)
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read %s: %w", schemas.ResultStream, err)
		}
		var r schemas.Result
		raw := m.Data()
		if err := json.Unmarshal(raw, &r); err != nil {
			continue // not a result event; nothing to show
		}
		more, err := fn(&r, raw)
		if err != nil || !more {
			return err
		}
		if !follow {
			if md, err := m.Metadata(); err == nil && md.NumPending == 0 {
				return nil
			}
		}
	}
}

// jobTally counts a job's results, once per request id.
type jobTally struct {
	seen     map[string]struct{}
	n        int
	byStatus map[schemas.Status]int
	attempts int
}

func newJobTally() *jobTally {
	return &jobTally{seen: map[string]struct{}{}, byStatus: map[schemas.Status]int{}}
}

// add counts r; false when its request was already counted.
func (t *jobTally) add(r *schemas.Result) bool {
	if _, dup := t.seen[r.RequestID]; dup {
		return false
	}
	t.seen[r.RequestID] = struct{}{}
	t.n++
	t.byStatus[r.Status]++
	t.attempts += r.Attempts
	return true
}

func (t *jobTally) summary(j *schemas.Job) string {
	if j == nil {
		return ""
	}
	return fmt.Sprintf("job %s: %d/%d results: %d ok, %d failed, %d invalid (%d vendor calls)",
		j.JobID, t.n, j.Count, t.byStatus[schemas.StatusOK], t.byStatus[schemas.StatusFailed], t.byStatus[schemas.StatusInvalid], t.attempts)
}

// resultPrinter writes results as JSON lines or as a table.
type resultPrinter struct {
	w      io.Writer
	table  bool
	header bool
}

func newResultPrinter(w io.Writer, format string) *resultPrinter {
	return &resultPrinter{w: w, table: format == "table"}
}

const tableRow = "%-19s  %-7s  %-22s  %-22s  %8s  %-24s  %s\n"

func (p *resultPrinter) print(r *schemas.Result, raw []byte) error {
	if !p.table {
		_, err := fmt.Fprintf(p.w, "%s\n", raw)
		return err
	}
	if !p.header {
		p.header = true
		fmt.Fprintf(p.w, tableRow, "COMPLETED (UTC)", "STATUS", "ICCID", "CARD STATUS", "ATTEMPTS", "REQUEST ID", "DETAIL")
	}
	cardStatus := "-"
	detail := ""
	if r.Card != nil && r.Card.CardStatus != nil {
		cardStatus = *r.Card.CardStatus
	}
	if r.Card != nil && r.Card.MonthUseFlowMB != nil {
		detail = fmt.Sprintf("month use %.2f MB", *r.Card.MonthUseFlowMB)
	}
	if r.Error != nil {
		detail = r.Error.Kind
		if r.Error.Code != nil {
			detail += " " + *r.Error.Code
		}
		if r.Error.Message != "" {
			detail += ": " + r.Error.Message
		}
	}
	iccid := r.ICCID
	if iccid == "" {
		iccid = "-"
	}
	_, err := fmt.Fprintf(p.w, tableRow, r.CompletedAt.UTC().Format(time.DateTime), r.Status, iccid, truncate(cardStatus, 22),
		fmt.Sprint(r.Attempts), truncate(r.RequestID, 24), truncate(detail, 80))
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
