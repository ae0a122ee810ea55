//go:build faults

package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/internal/checker"
	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/worker/eiot/eiottest"
)

// Credentials of the suite: random and distinctive, so the security check
// can search every output for them.
var (
	testAppKey = "appkey-" + randHex(12)
	testSecret = "SECRET-" + randHex(24)
)

func randHex(n int) string {
	const hex = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = hex[rand.IntN(16)]
	}
	return string(b)
}

// scenario is one system under test: a nats-server subprocess, the fake
// vendor API behind a fault injector, worker and sink subprocesses.
type scenario struct {
	t      *testing.T
	name   string
	dir    string
	start  time.Time
	nats   *natsProc
	nc     *nats.Conn
	js     jetstream.JetStream
	fake   *fakeAPI
	vendor *eiottest.Server // behind fake
	out    string           // the sink's output folder

	mu       sync.Mutex
	accepted []string
	next     int
	workers  []*proc
	sinks    []*proc
	extra    []string // notes for the faults column
}

func newScenario(t *testing.T, name string) *scenario {
	t.Helper()
	simlookupBin(t) // build first: the scenario's time excludes the build
	dir, err := os.MkdirTemp(suiteDir, name+"-*")
	if err != nil {
		t.Fatal(err)
	}
	s := &scenario{t: t, name: name, dir: dir, start: time.Now(), out: filepath.Join(dir, "parquet")}
	s.nats = startNATS(t, dir)
	s.nc, s.js = connect(t, s.nats.URL())
	vendor, err := eiottest.New(eiottest.Config{AppKey: testAppKey, Secret: sign.NewSecret(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(vendor.Close)
	s.vendor = vendor
	s.fake = startFakeAPI(t, vendor)
	return s
}

// note adds text to the scenario's "faults injected" column.
func (s *scenario) note(format string, args ...any) {
	s.mu.Lock()
	s.extra = append(s.extra, fmt.Sprintf(format, args...))
	s.mu.Unlock()
}

// flags renders defaults (flag, value pairs) with overrides (the same
// form) replacing a default of the same flag or adding to them.
func flags(cmd string, defaults []string, overrides []string) []string {
	vals := map[string]string{}
	var order []string
	for _, kv := range [][]string{defaults, overrides} {
		for i := 0; i+1 < len(kv); i += 2 {
			if _, ok := vals[kv[i]]; !ok {
				order = append(order, kv[i])
			}
			vals[kv[i]] = kv[i+1]
		}
	}
	out := []string{cmd}
	for _, k := range order {
		out = append(out, k, vals[k])
	}
	return out
}

// workerArgs are the flags every worker of the suite gets, with overrides
// (flag, value pairs).
func (s *scenario) workerArgs(overrides ...string) []string {
	return flags("worker", []string{
		"--nats-url", s.nats.URL(),
		"--api-url", s.fake.url,
		"--appkey", testAppKey,
		"--ack-wait", "2s",
		"--rate", "2000", "--burst", "50", "--limiter", "local",
		"--concurrency", "32",
		"--http-addr", "127.0.0.1:" + strconv.Itoa(freePort(s.t)),
		"--log-format", "json",
	}, overrides)
}

// startWorker starts (and registers) a worker subprocess.
func (s *scenario) startWorker(extra ...string) *proc {
	s.t.Helper()
	s.mu.Lock()
	i := len(s.workers)
	s.mu.Unlock()
	p := newProc(s.t, s.dir, fmt.Sprintf("worker%d", i), simlookupBin(s.t), s.workerArgs(extra...)...)
	p.env = []string{"SIMLOOKUP_SECRET=" + testSecret}
	p.Start()
	p.cleanup()
	s.mu.Lock()
	s.workers = append(s.workers, p)
	s.mu.Unlock()
	return p
}

func (s *scenario) sinkArgs(overrides ...string) []string {
	return flags("sink", []string{
		"--nats-url", s.nats.URL(),
		"--out", s.out,
		"--max-rows", "200", "--max-age", "500ms",
		"--http-addr", "127.0.0.1:" + strconv.Itoa(freePort(s.t)),
		"--log-format", "json",
	}, overrides)
}

func (s *scenario) startSink(extra ...string) *proc {
	s.t.Helper()
	p := newProc(s.t, s.dir, fmt.Sprintf("sink%d", len(s.sinks)), simlookupBin(s.t), s.sinkArgs(extra...)...)
	p.Start()
	p.cleanup()
	s.sinks = append(s.sinks, p)
	return p
}

// httpAddr returns the --http-addr of a process started by this scenario.
func httpAddr(p *proc) string {
	for i, a := range p.args {
		if a == "--http-addr" && i+1 < len(p.args) {
			return p.args[i+1]
		}
	}
	return ""
}

// waitStreams waits until the worker has provisioned the streams.
func (s *scenario) waitStreams() {
	s.t.Helper()
	ctx := context.Background()
	eventually(s.t, 60*time.Second, "streams provisioned", func() error {
		for _, name := range []string{schemas.RequestStream, schemas.ResultStream} {
			if _, err := s.js.Stream(ctx, name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		return nil
	})
}

// publish publishes n JSON requests with fresh request ids (retrying each
// until the stream acknowledges it, so a server restart meanwhile loses
// nothing on the publisher's side) and records them as accepted.
func (s *scenario) publish(n int) {
	s.t.Helper()
	s.publishBodies(n, func(id string, i int) []byte {
		return []byte(fmt.Sprintf(`{"iccid":"89852240%011d1","request_id":"%s","job_id":"%s"}`, i, id, s.name))
	})
}

func (s *scenario) publishBodies(n int, body func(id string, i int) []byte) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	type pending struct {
		id   string
		data []byte
		f    jetstream.PubAckFuture
	}
	var batch []pending
	flush := func() {
		for _, p := range batch {
			for attempt := 0; ; attempt++ {
				var err error
				if p.f != nil {
					select {
					case <-p.f.Ok():
					case err = <-p.f.Err():
					case <-time.After(10 * time.Second):
						err = fmt.Errorf("no PubAck in 10s")
					}
				} else {
					_, err = s.js.Publish(ctx, schemas.RequestSubject, p.data, jetstream.WithMsgID(p.id))
				}
				if err == nil {
					s.mu.Lock()
					s.accepted = append(s.accepted, p.id)
					s.mu.Unlock()
					break
				}
				if ctx.Err() != nil || attempt > 100 {
					s.t.Fatalf("publish %s: %v", p.id, err)
				}
				p.f = nil // retry synchronously; the Nats-Msg-Id dedups
				time.Sleep(200 * time.Millisecond)
			}
		}
		batch = batch[:0]
	}
	for range n {
		s.mu.Lock()
		i := s.next
		s.next++
		s.mu.Unlock()
		id := fmt.Sprintf("%s-%05d", s.name, i)
		data := body(id, i)
		f, err := s.js.PublishAsync(schemas.RequestSubject, data, jetstream.WithMsgID(id))
		if err != nil {
			f = nil
		}
		batch = append(batch, pending{id: id, data: data, f: f})
		if len(batch) == 200 {
			flush()
		}
	}
	flush()
}

func (s *scenario) acceptedIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.accepted...)
}

// collect reads everything the checker needs.
func (s *scenario) collect(rows bool) (checker.Input, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := ""
	if rows {
		out = s.out
	}
	return checker.Collect(ctx, s.js, s.acceptedIDs(), out)
}

// waitDone polls until every accepted request has a result (or a dead
// letter) and, if rows, every result a row, or d passes; it returns the last
// report.
func (s *scenario) waitDone(d time.Duration, rows bool) (checker.Report, error) {
	var rep checker.Report
	deadline := time.Now().Add(d)
	for {
		in, err := s.collect(rows)
		if err == nil {
			rep = checker.Check(in)
			if rep.Complete() {
				return rep, nil
			}
			err = fmt.Errorf("%d lost so far, %d results without a row (accepted %d, results %d, rows %d)",
				rep.Lost, rep.MissingRows, rep.Accepted, rep.Results, rep.Rows)
		}
		if time.Now().After(deadline) {
			return rep, fmt.Errorf("not complete within %s: %w", d, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// finish waits for completion, checks, records the summary row and fails
// the test on any violation.
func (s *scenario) finish(d time.Duration, e checker.Expect) checker.Report {
	s.t.Helper()
	rep, err := s.waitDone(d, true)
	s.securityScan()
	v := rep.Violations(e)
	s.record(rep, e, err == nil && len(v) == 0)
	s.t.Logf("%s: accepted %d results %d rows %d lost %d dup-results %d dup-rows %d missing-rows %d DLQ %d statuses %v",
		s.name, rep.Accepted, rep.Results, rep.Rows, rep.Lost, rep.DuplicateResults, rep.DuplicateRows, rep.MissingRows, rep.DeadLetters, rep.ByStatus)
	if err != nil || len(v) > 0 {
		s.dumpLogs()
	}
	if err != nil {
		s.t.Fatalf("%s: %v", s.name, err)
	}
	if len(v) > 0 {
		s.t.Errorf("%s: %s", s.name, strings.Join(v, "; "))
	}
	return rep
}

func (s *scenario) record(rep checker.Report, e checker.Expect, pass bool) {
	faults := s.fake.injected()
	if st := s.vendor.Stats(); len(st.Faults) > 0 {
		keys := make([]string, 0, len(st.Faults))
		for k := range st.Faults {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			faults += fmt.Sprintf(", fake %s %d", k, st.Faults[k])
		}
		faults = strings.TrimPrefix(faults, ", ")
	}
	s.mu.Lock()
	notes := append([]string(nil), s.extra...)
	s.mu.Unlock()
	if faults != "" {
		notes = append(notes, "vendor: "+faults)
	}
	if len(notes) == 0 {
		notes = []string{"none"}
	}
	addSummary(summaryRow{
		Scenario: s.name, Faults: strings.Join(notes, "; "), Pass: pass, Seconds: time.Since(s.start).Seconds(),
		Rep: reportCounts{Accepted: rep.Accepted, Results: rep.Results, Rows: rep.Rows, Lost: rep.Lost,
			DupResults: rep.DuplicateResults, DupRows: rep.DuplicateRows, DeadLetters: rep.DeadLetters},
	})
}

// dumpLogs writes the tails of every log to the test output.
func (s *scenario) dumpLogs() {
	for _, p := range append(append([]*proc{s.nats.proc}, s.workers...), s.sinks...) {
		s.t.Logf("---- %s (tail)\n%s", p.name, p.LogTail(3000))
	}
}

// randomBetween returns a random duration in [lo, hi).
func randomBetween(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rand.Int64N(int64(hi-lo)))
}

// resultsCount is the number of messages in the results stream.
func (s *scenario) resultsCount() uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.js.Stream(ctx, schemas.ResultStream)
	if err != nil {
		return 0
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}
