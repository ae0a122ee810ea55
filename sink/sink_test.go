package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/parquet-go/parquet-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/simlookup/simlookup/internal/natstest"
	"github.com/simlookup/simlookup/schemas"
)

type bundle struct {
	srv    *natstest.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	out    string
	stream jetstream.Stream
}

func setup(t *testing.T, createStream bool) *bundle {
	t.Helper()
	srv := natstest.Run(t)
	return setupOn(t, srv, createStream)
}

func setupOn(t *testing.T, srv *natstest.Server, createStream bool) *bundle {
	t.Helper()
	nc, js := srv.JetStream(t)
	b := &bundle{srv: srv, nc: nc, js: js, out: filepath.Join(t.TempDir(), "out")}
	if createStream {
		b.createStream(t)
	}
	return b
}

func (b *bundle) createStream(t *testing.T) {
	t.Helper()
	st, err := b.js.CreateOrUpdateStream(t.Context(), schemas.ResultStreamConfig(schemas.StreamOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	b.stream = st
}

// publish publishes results as the worker does, waiting for every ack.
func (b *bundle) publish(t *testing.T, results []schemas.Result) {
	t.Helper()
	const chunk = 2000
	for start := 0; start < len(results); start += chunk {
		futures := make([]jetstream.PubAckFuture, 0, chunk)
		for i, r := range results[start:min(start+chunk, len(results))] {
			data, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			if start == 0 && i < 20 {
				if err := schemas.ValidateResult(data); err != nil {
					t.Fatalf("test result %s does not match result.schema.json: %v", r.RequestID, err)
				}
			}
			msg := nats.NewMsg(schemas.ResultSubject(r.Status, r.ICCID))
			msg.Data = data
			msg.Header.Set(jetstream.MsgIDHeader, schemas.ResultMsgID(r.RequestID))
			f, err := b.js.PublishMsgAsync(msg)
			if err != nil {
				t.Fatal(err)
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatalf("publish: %v", err)
			case <-time.After(30 * time.Second):
				t.Fatal("publish ack timeout")
			}
		}
	}
}

func results(from, n int) []schemas.Result {
	out := make([]schemas.Result, n)
	for i := range out {
		out[i] = sampleResult(from + i)
	}
	return out
}

func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("SINK_TEST_LOG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level}))
}

func (b *bundle) config(t *testing.T) Config {
	return Config{
		JetStream:      b.js,
		OutDir:         b.out,
		Logger:         testLogger(t),
		RetryInitial:   5 * time.Millisecond,
		RetryMax:       50 * time.Millisecond,
		StatusInterval: 50 * time.Millisecond,
		MaxAge:         100 * time.Millisecond,
	}
}

type running struct {
	s      *Sink
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error // Run's result, kept for every stop
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return startSink(t, s)
}

// startSink runs s (whose test seams are set) until the test ends.
func startSink(t *testing.T, s *Sink) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{s: s, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx) }()
	t.Cleanup(func() {
		// Every test expects a clean stop, also those that do not check it.
		if err := r.stop(t); err != nil {
			t.Errorf("sink Run: %v", err)
		}
	})
	return r
}

// stop cancels Run and returns its result (the same on every call).
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(30 * time.Second):
			r.err = errors.New("sink did not stop within 30s of cancel")
		}
	})
	return r.err
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute) // generous: CI machines can be very loaded
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *running) waitCommitted(t *testing.T, seq uint64) {
	t.Helper()
	waitFor(t, fmt.Sprintf("committed seq %d", seq), func() bool { return r.s.Status().CommittedSeq >= seq })
}

// readOut reads every final file, checking that the folder holds nothing a
// **/*.parquet glob would pick up except complete final files in the right
// partition, and returns the rows by stream sequence (failing on a
// duplicate sequence).
func readOut(t *testing.T, out string) (map[int64]Row, []string) {
	t.Helper()
	rows := map[int64]Row{} // by stream_seq (of the last epoch read, if several)
	seen := map[string]bool{}
	var files []string
	err := filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(out, path)
		if !strings.HasSuffix(path, ".parquet") {
			return nil
		}
		files = append(files, rel)
		epoch, first, last, ok := ParseFileName(d.Name())
		if !ok {
			t.Errorf("stray parquet file %s", rel)
			return nil
		}
		got, err := parquet.ReadFile[Row](path)
		if err != nil {
			t.Errorf("read %s: %v", rel, err)
			return nil
		}
		if len(got) == 0 || uint64(got[0].StreamSeq) != first || uint64(got[len(got)-1].StreamSeq) != last {
			t.Errorf("%s: rows do not match the name's range", rel)
		}
		// The footer's metadata must be readable too (an unreadable footer
		// used to skip these checks).
		f, err := os.Open(path)
		if err != nil {
			t.Errorf("open %s: %v", rel, err)
			return nil
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			t.Errorf("stat %s: %v", rel, err)
			return nil
		}
		pf, err := parquet.OpenFile(f, st.Size())
		if err != nil {
			t.Errorf("open %s as parquet: %v", rel, err)
			return nil
		}
		if v, _ := pf.Lookup(MetaEpoch); v != epoch {
			t.Errorf("%s: epoch metadata %q", rel, v)
		}
		if v, _ := pf.Lookup(MetaLastSeq); v != fmt.Sprint(last) {
			t.Errorf("%s: last_seq metadata %q", rel, v)
		}
		for _, r := range got {
			if PartitionOf(r.StoredAt) != filepath.ToSlash(filepath.Dir(rel)) {
				t.Errorf("%s: row %d stored %v is in the wrong partition", rel, r.StreamSeq, r.StoredAt)
			}
			key := fmt.Sprintf("%s/%d", epoch, r.StreamSeq)
			if seen[key] {
				t.Errorf("seq %d of epoch %s appears twice (again in %s)", r.StreamSeq, epoch, rel)
			}
			seen[key] = true
			rows[r.StreamSeq] = r
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	sort.Strings(files)
	return rows, files
}

func checkExactlyOnce(t *testing.T, out string, n int) map[int64]Row {
	t.Helper()
	rows, _ := readOut(t, out)
	if len(rows) != n {
		t.Fatalf("%d rows, want %d", len(rows), n)
	}
	for seq := int64(1); seq <= int64(n); seq++ {
		if _, ok := rows[seq]; !ok {
			t.Fatalf("seq %d missing", seq)
		}
	}
	return rows
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	in := results(0, 50)
	b.publish(t, in)
	var commits []CommitInfo
	reg := prometheus.NewRegistry()
	cfg := b.config(t)
	cfg.MaxRows = 20
	cfg.Registerer = reg
	cfg.OnCommit = func(ci CommitInfo) { commits = append(commits, ci) }
	r := start(t, cfg)
	r.waitCommitted(t, 50)
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	rows, files := readOut(t, b.out)
	if len(files) != 3 || len(commits) != 3 {
		t.Fatalf("files %v commits %d, want 3", files, len(commits))
	}
	for i, res := range in {
		seq := uint64(i + 1)
		msg, err := b.stream.GetMsg(t.Context(), seq)
		if err != nil {
			t.Fatal(err)
		}
		want, err := RowFromResult(&res, seq, msg.Time)
		if err != nil {
			t.Fatal(err)
		}
		if got := rows[int64(seq)]; !rowsEqual(got, micros(want)) {
			t.Errorf("seq %d:\n got %+v\nwant %+v", seq, got, micros(want))
		}
	}
	if got := testutil.ToFloat64(r.s.m.rows); got != 50 {
		t.Errorf("rows metric %v", got)
	}
	if got := testutil.ToFloat64(r.s.m.files); got != 3 {
		t.Errorf("files metric %v", got)
	}
	st := r.s.Status()
	if st.Files != 3 || st.Rows != 50 || st.CommittedSeq != 50 || st.LastCommit.IsZero() {
		t.Errorf("status %+v", st)
	}
	if err := r.s.Ready(); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("Ready after stop = %v", err)
	}
	cp, ok, err := readCheckpoint(b.out)
	if err != nil || !ok || cp.CommittedSeq != 50 {
		t.Errorf("checkpoint %+v %v %v", cp, ok, err)
	}
}

func rowsEqual(a, b Row) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestBatchClosesOnAgeAndShutdown(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	b.publish(t, results(0, 3))
	cfg := b.config(t)
	cfg.MaxAge = 100 * time.Millisecond
	r := start(t, cfg)
	r.waitCommitted(t, 3) // by age: MaxRows is far away
	if err := r.s.Ready(); err != nil {
		t.Fatalf("Ready = %v", err)
	}

	cfg.MaxAge = time.Hour
	r.stop(t)
	r = start(t, cfg)
	b.publish(t, results(3, 4))
	waitFor(t, "open batch of 4", func() bool { return r.s.Status().OpenRows == 4 })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	_, files := readOut(t, b.out)
	if len(files) != 2 {
		t.Fatalf("files %v", files)
	}
	checkExactlyOnce(t, b.out, 7)
}

func TestMaxBytesClosesBatch(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	b.publish(t, results(0, 40))
	cfg := b.config(t)
	cfg.MaxBytes = 4 << 10
	r := start(t, cfg)
	r.waitCommitted(t, 40)
	r.stop(t)
	_, files := readOut(t, b.out)
	if len(files) < 3 {
		t.Fatalf("MaxBytes 4 KiB gave only %d files", len(files))
	}
	checkExactlyOnce(t, b.out, 40)
}

func TestRestartResumesAfterCommitted(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	b.publish(t, results(0, 30))
	cfg := b.config(t)
	cfg.MaxRows = 7
	r := start(t, cfg)
	r.waitCommitted(t, 30)
	r.stop(t)
	b.publish(t, results(30, 20))
	r = start(t, cfg)
	r.waitCommitted(t, 50)
	r.stop(t)
	checkExactlyOnce(t, b.out, 50)
}

func TestSecondSinkRefused(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	r := start(t, b.config(t))
	waitFor(t, "first sink ready", func() bool { return r.s.Ready() == nil })
	s2, err := New(b.config(t))
	if err != nil {
		t.Fatal(err)
	}
	err = s2.Run(t.Context())
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "another sink") || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("second sink: %v", err)
	}
	// A waiting sink takes over when the first one stops.
	cfg := b.config(t)
	cfg.LockWait = time.Minute
	r2 := start(t, cfg)
	b.publish(t, results(0, 5))
	waitFor(t, "the second sink to wait for the lock", func() bool {
		err := r2.s.Ready()
		return err != nil && strings.Contains(err.Error(), "waiting for the lock")
	})
	r.waitCommitted(t, 5) // the first sink works while the second waits
	r.stop(t)
	r2.waitCommitted(t, 5)
	r2.stop(t)
	if n := r2.s.Status().Files; n != 0 {
		t.Errorf("the second sink wrote %d files again", n)
	}
	checkExactlyOnce(t, b.out, 5)
}

func TestWaitsForStream(t *testing.T) {
	t.Parallel()
	b := setup(t, false)
	cfg := b.config(t)
	cfg.MaxAge = time.Hour
	r := start(t, cfg)
	waitFor(t, "waiting", func() bool {
		err := r.s.Ready()
		return err != nil && strings.Contains(err.Error(), "waiting for stream "+schemas.ResultStream)
	})
	b.createStream(t)
	b.publish(t, results(0, 5))
	waitFor(t, "ready", func() bool { return r.s.Ready() == nil })
	waitFor(t, "open batch", func() bool { return r.s.Status().OpenRows == 5 })
	r.stop(t)
	checkExactlyOnce(t, b.out, 5)
}

func TestMissedSequencesReported(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	b.publish(t, results(0, 12))
	ctx := t.Context()
	if err := b.stream.Purge(ctx, jetstream.WithPurgeSequence(6)); err != nil { // drops 1..5
		t.Fatal(err)
	}
	if err := b.stream.DeleteMsg(ctx, 9); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	cfg := b.config(t)
	cfg.Registerer = reg
	r := start(t, cfg)
	r.waitCommitted(t, 12)
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	st := r.s.Status()
	if st.MissedSeqs != 6 || testutil.ToFloat64(r.s.m.missed) != 6 {
		t.Fatalf("missed %d (metric %v), want 6", st.MissedSeqs, testutil.ToFloat64(r.s.m.missed))
	}
	rows, _ := readOut(t, b.out)
	if len(rows) != 6 {
		t.Fatalf("%d rows, want 6 (seqs 6-8, 10-12)", len(rows))
	}
	// A restart from the checkpoint finds the files and reports no new gap.
	r = start(t, cfg2(b, t))
	r.waitCommitted(t, 12)
	r.stop(t)
	if r.s.Status().MissedSeqs != 0 {
		t.Fatalf("restart reported %d missed", r.s.Status().MissedSeqs)
	}
}

func cfg2(b *bundle, t *testing.T) Config { return b.config(t) }

func TestLagMetrics(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	b.publish(t, results(0, 10))
	reg := prometheus.NewRegistry()
	cfg := b.config(t)
	cfg.Registerer = reg
	cfg.MaxAge = time.Hour
	now := time.Now().Add(time.Hour)
	cfg.Now = func() time.Time { return now }
	r := start(t, cfg)
	waitFor(t, "lag", func() bool { st := r.s.Status(); return st.LagMsgs == 10 && st.LagAge > 50*time.Minute })
	if v := testutil.ToFloat64(r.s.m.lagMessages); v != 10 {
		t.Errorf("lag_messages %v", v)
	}
	if v := testutil.ToFloat64(r.s.m.lagSeconds); v < 3000 {
		t.Errorf("lag_seconds %v", v)
	}
	r.stop(t)
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{OutDir: "x"}, "JetStream"},
		{Config{JetStream: fakeJS{}}, "OutDir"},
		{Config{JetStream: fakeJS{}, OutDir: "x", MaxRows: -1}, "MaxRows"},
		{Config{JetStream: fakeJS{}, OutDir: "x", MaxAge: -1}, "MaxAge"},
		{Config{JetStream: fakeJS{}, OutDir: "x", RetryInitial: time.Second, RetryMax: time.Millisecond}, "RetryMax"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
	s, err := New(Config{JetStream: fakeJS{}, OutDir: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.MaxRows != DefaultMaxRows || s.cfg.MaxAge != DefaultMaxAge || s.cfg.Stream != schemas.ResultStream || !filepath.IsAbs(s.cfg.OutDir) {
		t.Errorf("defaults %+v", s.cfg)
	}
	if err := s.Ready(); err == nil {
		t.Error("Ready before Run")
	}
}

// fakeJS only satisfies the interface for New's validation; it is never called.
type fakeJS struct{ jetstream.JetStream }

// TestStreamRecreated: a results stream deleted and created again (its
// sequences restart at 1) gets files of a new epoch, next to the old ones.
func TestStreamRecreated(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	b.publish(t, results(0, 6))
	r := start(t, b.config(t))
	r.waitCommitted(t, 6)
	oldEpoch := r.s.Status().Epoch
	if err := b.js.DeleteStream(t.Context(), schemas.ResultStream); err != nil {
		t.Fatal(err)
	}
	b.createStream(t)
	b.publish(t, results(100, 4))
	waitFor(t, "new epoch", func() bool { st := r.s.Status(); return st.Epoch != oldEpoch && st.CommittedSeq == 4 })
	r.stop(t)
	byEpoch := map[string]int{}
	_, files := readOut(t, b.out)
	for _, f := range files {
		ep, first, last, _ := ParseFileName(filepath.Base(f))
		byEpoch[ep] += int(last - first + 1)
	}
	if len(byEpoch) != 2 || byEpoch[oldEpoch] != 6 || byEpoch[r.s.Status().Epoch] != 4 {
		t.Fatalf("rows by epoch %v", byEpoch)
	}
}

// TestServerRestart: the sink rides over a NATS server restart and goes on
// from where it was.
func TestServerRestart(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	b.publish(t, results(0, 10))
	r := start(t, b.config(t))
	r.waitCommitted(t, 10)
	if err := b.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "reconnect", func() bool { return b.nc.IsConnected() })
	b.publish(t, results(10, 10))
	r.waitCommitted(t, 20)
	r.stop(t)
	checkExactlyOnce(t, b.out, 20)
}
