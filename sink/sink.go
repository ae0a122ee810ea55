package sink

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/simlookup/simlookup/schemas"
)

// Defaults of Config.
const (
	DefaultMaxRows         = 500_000
	DefaultMaxBytes        = 128 << 20
	DefaultMaxAge          = 5 * time.Minute
	DefaultShutdownTimeout = 30 * time.Second
	DefaultStatusInterval  = 5 * time.Second
	DefaultRetryInitial    = 500 * time.Millisecond
	DefaultRetryMax        = 30 * time.Second
	DefaultPullMessages    = 1000

	pullBytes = 64 << 20
)

// Config configures a Sink. JetStream and OutDir are required; every other
// field has a default.
type Config struct {
	// JetStream is the connection to the results stream. Required.
	JetStream jetstream.JetStream
	// Stream is the results stream. Defaults to schemas.ResultStream.
	Stream string
	// OutDir is the output folder; created if missing. Required. One sink
	// per folder (a lock inside it).
	OutDir string
	// MaxRows closes a file at this many rows. Defaults to 500,000.
	MaxRows int
	// MaxBytes closes a file when its estimated encoded size reaches it
	// (the writer's size so far plus the uncompressed size of rows not yet
	// encoded, so files come out at or below it). Defaults to 128 MiB.
	MaxBytes int64
	// MaxAge closes a file this long after its first row arrived.
	// Defaults to 5 minutes.
	MaxAge time.Duration
	// RowGroupRows bounds a row group, and with it the writer's memory (one
	// row group's compressed pages). Defaults to 100,000.
	RowGroupRows int
	// Logger receives the sink's logs. Defaults to discarding them.
	Logger *slog.Logger
	// Registerer registers the sink's metrics (simlookup_sink_*); nil means
	// no metrics are registered.
	Registerer prometheus.Registerer
	// LockWait is how long Run waits for another sink to release the
	// folder. Defaults to 0: Run fails at once with an error wrapping
	// ErrLocked that says who holds it.
	LockWait time.Duration
	// OnCommit, if set, is called (on Run's goroutine) after each file is
	// durably committed.
	OnCommit func(CommitInfo)
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
	// FS is the filesystem of the commit. Defaults to OSFS{}.
	FS FS
	// ShutdownTimeout bounds committing the open batch after ctx is
	// cancelled. Defaults to 30 s.
	ShutdownTimeout time.Duration
	// StatusInterval is how often lag is measured and the stream checked
	// for being recreated. Defaults to 5 s.
	StatusInterval time.Duration
	// RetryInitial and RetryMax bound the exponential backoff after a
	// failed write or a lost stream. Default 500 ms and 30 s.
	RetryInitial, RetryMax time.Duration
	// PullMessages is how many messages the consumer buffers (and at most
	// 64 MiB of them). Defaults to 1000.
	PullMessages int
}

// CommitInfo describes one committed file.
type CommitInfo struct {
	Path      string // final path of the file
	Partition string // dt=YYYY-MM-DD/hour=HH
	Rows      int
	FirstSeq  uint64
	LastSeq   uint64
	Bytes     int64
	Epoch     string
}

// Status is a snapshot of the sink's progress.
type Status struct {
	Stream       string
	Epoch        string // <epoch> of file names: the stream's creation time
	CommittedSeq uint64 // last sequence in a final file
	Files        int    // files committed by this process
	Rows         int64  // rows committed by this process
	Bytes        int64
	LastCommit   time.Time
	LastFile     string
	OpenRows     int           // rows in the open batch
	LagMsgs      uint64        // stream last sequence − CommittedSeq
	LagAge       time.Duration // age of the oldest uncommitted result
	MissedSeqs   uint64        // results that expired before they were written
	WriteErrors  uint64
	LastError    string
}

// Sink consumes the results stream and writes Parquet files. Run it once;
// Ready and Status are safe for concurrent use.
type Sink struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	running atomic.Bool

	committed atomic.Uint64
	openRows  atomic.Int64
	batchOpen atomic.Int64 // unix nanos of the open batch's start; 0 none

	mu       sync.Mutex
	status   Status
	notReady error
	writeErr error
	known    map[string]bool // partition folders known to exist durably

	missedEpoch string // the gap last reported, so that retries do not count it twice
	missedUpTo  uint64

	// storedAt is the time a message counts as stored at, and so its
	// partition and stored_at column: the server's timestamp. A test seam
	// (set before Run) so that a test decides where partitions change
	// without waiting for the next UTC hour.
	storedAt func(seq uint64, server time.Time) time.Time
}

// New validates cfg, applies the defaults and returns a Sink.
func New(cfg Config) (*Sink, error) {
	if cfg.JetStream == nil {
		return nil, errors.New("sink: Config.JetStream is required")
	}
	if cfg.OutDir == "" {
		return nil, errors.New("sink: Config.OutDir is required")
	}
	for _, c := range []struct {
		name string
		bad  bool
	}{
		{"MaxRows", cfg.MaxRows < 0}, {"MaxBytes", cfg.MaxBytes < 0}, {"MaxAge", cfg.MaxAge < 0},
		{"RowGroupRows", cfg.RowGroupRows < 0}, {"LockWait", cfg.LockWait < 0},
		{"ShutdownTimeout", cfg.ShutdownTimeout < 0}, {"StatusInterval", cfg.StatusInterval < 0},
		{"RetryInitial", cfg.RetryInitial < 0}, {"RetryMax", cfg.RetryMax < 0}, {"PullMessages", cfg.PullMessages < 0},
	} {
		if c.bad {
			return nil, fmt.Errorf("sink: Config.%s must not be negative", c.name)
		}
	}
	cfg.Stream = cmp.Or(cfg.Stream, schemas.ResultStream)
	cfg.MaxRows = cmp.Or(cfg.MaxRows, DefaultMaxRows)
	cfg.MaxBytes = cmp.Or(cfg.MaxBytes, DefaultMaxBytes)
	cfg.MaxAge = cmp.Or(cfg.MaxAge, DefaultMaxAge)
	cfg.RowGroupRows = cmp.Or(cfg.RowGroupRows, DefaultRowGroupRows)
	cfg.ShutdownTimeout = cmp.Or(cfg.ShutdownTimeout, DefaultShutdownTimeout)
	cfg.StatusInterval = cmp.Or(cfg.StatusInterval, DefaultStatusInterval)
	cfg.RetryInitial = cmp.Or(cfg.RetryInitial, DefaultRetryInitial)
	cfg.RetryMax = cmp.Or(cfg.RetryMax, DefaultRetryMax)
	cfg.PullMessages = cmp.Or(cfg.PullMessages, DefaultPullMessages)
	if cfg.RetryMax < cfg.RetryInitial {
		return nil, errors.New("sink: Config.RetryMax must not be below RetryInitial")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.FS == nil {
		cfg.FS = OSFS{}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(cfg.OutDir)
	if err != nil {
		return nil, fmt.Errorf("sink: Config.OutDir: %w", err)
	}
	cfg.OutDir = abs
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("sink: Config.Registerer: %w", err)
	}
	s := &Sink{
		cfg:      cfg,
		log:      logger.With("component", "sink", "stream", cfg.Stream, "out", cfg.OutDir),
		m:        m,
		notReady: errors.New("sink: not started"),
		known:    map[string]bool{},
		storedAt: func(_ uint64, server time.Time) time.Time { return server },
	}
	s.status.Stream = cfg.Stream
	return s, nil
}

// Ready returns nil while the sink is consuming and its writes succeed, and
// otherwise an error saying why not (waiting for the stream, writes
// failing, stopped).
func (s *Sink) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notReady
}

// Status returns a snapshot of the sink's progress.
func (s *Sink) Status() Status {
	s.mu.Lock()
	st := s.status
	s.mu.Unlock()
	st.CommittedSeq = s.committed.Load()
	st.OpenRows = int(s.openRows.Load())
	return st
}

func (s *Sink) setReady(err error) {
	s.mu.Lock()
	if err == nil && s.writeErr != nil {
		err = s.writeErr
	}
	s.notReady = err
	s.mu.Unlock()
	if err == nil {
		s.m.ready.Set(1)
	} else {
		s.m.ready.Set(0)
	}
}

// errEpochChanged ends a session when the stream was deleted and created again.
var errEpochChanged = errors.New("sink: results stream was recreated")

// Run consumes the results stream into OutDir until ctx is cancelled, then
// commits the open batch and returns nil. It takes the folder's lock first
// (see Config.LockWait), removes leftovers of interrupted commits, waits for
// the stream if it does not exist yet (logging that it waits), and resumes
// strictly after the last committed sequence. Failures (a write error, a
// lost connection) are retried with backoff; Run returns an error only for
// the lock, an unusable folder, or a final commit that failed at shutdown
// (those rows are written again by the next run). Run may be called once.
func (s *Sink) Run(ctx context.Context) (err error) {
	if !s.running.CompareAndSwap(false, true) {
		return errors.New("sink: Run called twice")
	}
	defer func() {
		s.setReady(errors.New("sink: stopped"))
		if err != nil {
			s.setReady(fmt.Errorf("sink: stopped: %w", err))
		}
	}()
	if err := os.MkdirAll(filepath.Join(s.cfg.OutDir, TempDir), 0o755); err != nil {
		return fmt.Errorf("sink: create output folder: %w", err)
	}
	s.setReady(fmt.Errorf("sink: waiting for the lock on %s", s.cfg.OutDir))
	lock, err := lockFolder(ctx, s.cfg.OutDir, s.cfg.LockWait)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer lock.Close() // releases the flock
	n, err := cleanTemp(s.cfg.FS, s.cfg.OutDir)
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.InfoContext(ctx, "removed leftovers of an interrupted commit", "files", n)
	}
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(s.cfg.RetryInitial),
		backoff.WithMaxInterval(s.cfg.RetryMax),
		backoff.WithMaxElapsedTime(0))
	for {
		before, began := s.committed.Load(), time.Now()
		err := s.session(ctx)
		if ctx.Err() != nil {
			return err // nil after a clean final commit
		}
		if err == nil {
			err = errors.New("sink: consumer ended")
		}
		if s.committed.Load() != before || time.Since(began) > s.cfg.RetryMax {
			bo.Reset() // it made progress, or ran long enough: start the backoff over
		}
		wait := bo.NextBackOff()
		if errors.Is(err, errEpochChanged) {
			wait = 0
		} else {
			s.log.WarnContext(ctx, "sink interrupted; retrying", "err", err, "retry_in", wait)
			s.mu.Lock()
			s.status.LastError = err.Error()
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// item is one consumed message, converted on the reader goroutine.
type item struct {
	seq    uint64
	stored time.Time
	row    Row
	err    error // iterator failure: the session ends
}

func (s *Sink) waitStream(ctx context.Context) (jetstream.Stream, *jetstream.StreamInfo, error) {
	logged := false
	poll := min(s.cfg.StatusInterval, time.Second)
	for {
		st, err := s.cfg.JetStream.Stream(ctx, s.cfg.Stream)
		if err == nil {
			info, ierr := st.Info(ctx)
			if ierr == nil {
				if logged {
					s.log.InfoContext(ctx, "results stream found")
				}
				return st, info, nil
			}
			err = ierr
		}
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			s.setReady(fmt.Errorf("sink: waiting for stream %s to be created", s.cfg.Stream))
			if !logged {
				s.log.InfoContext(ctx, "waiting for the results stream to be created (simlookup streams, or any worker, creates it)")
				logged = true
			}
		} else {
			return nil, nil, fmt.Errorf("sink: look up stream %s: %w", s.cfg.Stream, err)
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// session runs one consumer from the committed sequence until ctx ends or
// something fails.
func (s *Sink) session(ctx context.Context) error {
	stream, info, err := s.waitStream(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		s.setReady(err)
		return err
	}
	epoch := EpochOf(info.Created)
	committed, err := s.recover(ctx, stream, info, epoch)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		s.setReady(err)
		return err
	}
	s.mu.Lock()
	s.status.Epoch = epoch
	s.mu.Unlock()
	expected := committed + 1
	if first := info.State.FirstSeq; first > expected {
		s.reportMissed(ctx, epoch, expected, first-1)
		expected = first
	}

	// The reader and the monitor end with the session (after cancel and
	// it.Stop, deferred below), so nothing of a session outlives Run.
	var bg sync.WaitGroup
	defer bg.Wait()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cons, err := stream.OrderedConsumer(sctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   committed + 1,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("sink: create consumer: %w", err)
	}
	// At most PullMessages messages and 64 MiB wait in the client's buffer
	// (above any message size the server accepts).
	it, err := cons.Messages(jetstream.PullMaxMessagesWithBytesLimit(s.cfg.PullMessages, pullBytes))
	if err != nil {
		return fmt.Errorf("sink: consume: %w", err)
	}
	defer it.Stop()
	items := make(chan item, 256)
	bg.Go(func() { s.read(sctx, it, items) })
	epochCh := make(chan time.Time, 1)
	bg.Go(func() { s.monitor(sctx, stream, epoch, epochCh) })
	s.setReady(nil)
	s.log.InfoContext(ctx, "consuming results", "epoch", epoch, "from_seq", committed+1, "stream_last_seq", info.State.LastSeq)

	var b *batch
	defer func() { s.abort(b) }()
	var ageC <-chan time.Time
	var ageTimer *time.Timer
	closeBatch := func(cctx context.Context) error {
		if ageTimer != nil {
			ageTimer.Stop()
			ageTimer, ageC = nil, nil
		}
		if b == nil {
			return nil
		}
		cb := b
		b = nil
		return s.commit(cctx, cb)
	}
	for {
		select {
		case <-ctx.Done():
			it.Stop()
			fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
			defer fcancel()
			if err := closeBatch(fctx); err != nil {
				return fmt.Errorf("sink: final commit failed (its results are written again on the next start): %w", err)
			}
			return nil
		case <-ageC:
			if err := closeBatch(ctx); err != nil {
				return err
			}
		case created := <-epochCh:
			s.log.WarnContext(ctx, "the results stream was deleted and created again; starting on the new stream",
				"old_epoch", epoch, "new_epoch", EpochOf(created))
			if b != nil && b.lastStored.Before(created) {
				if err := closeBatch(ctx); err != nil {
					return err
				}
			}
			return errEpochChanged
		case m := <-items:
			if m.err != nil {
				return m.err
			}
			if m.seq < expected {
				// Sequences went backwards: the stream was recreated under us.
				if b != nil && b.lastStored.Before(m.stored) {
					if err := closeBatch(ctx); err != nil {
						return err
					}
				}
				return errEpochChanged
			}
			if m.seq > expected {
				s.reportMissed(ctx, epoch, expected, m.seq-1)
			}
			expected = m.seq + 1
			part := PartitionOf(m.stored)
			if b != nil && b.part != part {
				if err := closeBatch(ctx); err != nil {
					return err
				}
			}
			if b == nil {
				b, err = s.open(epoch, part, m)
				if err != nil {
					return err
				}
				ageTimer = time.NewTimer(s.cfg.MaxAge)
				ageC = ageTimer.C
			}
			if err := s.add(b, m); err != nil {
				return err
			}
			if b.rows >= s.cfg.MaxRows || b.size() >= s.cfg.MaxBytes {
				if err := closeBatch(ctx); err != nil {
					return err
				}
			}
		}
	}
}

// read pulls messages and converts them, so decoding overlaps writing.
func (s *Sink) read(ctx context.Context, it jetstream.MessagesContext, out chan<- item) {
	for {
		msg, err := it.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || ctx.Err() != nil {
				return
			}
			select {
			case out <- item{err: fmt.Errorf("sink: consume: %w", err)}:
			case <-ctx.Done():
			}
			return
		}
		md, err := msg.Metadata()
		if err != nil {
			select {
			case out <- item{err: fmt.Errorf("sink: message metadata: %w", err)}:
			case <-ctx.Done():
			}
			return
		}
		seq := md.Sequence.Stream
		stored := s.storedAt(seq, md.Timestamp)
		row, cerr := rowFromMessage(msg.Data(), msg.Headers().Get(jetstream.MsgIDHeader), msg.Subject(), seq, stored)
		if cerr != nil {
			s.m.rejected.Inc()
			s.log.ErrorContext(ctx, "stream message is not a usable result event; writing it with sink_error set",
				"seq", seq, "subject", msg.Subject(), "err", cerr)
		}
		select {
		case out <- item{seq: seq, stored: stored, row: row}:
		case <-ctx.Done():
			return
		}
	}
}

// monitor measures lag and notices a recreated stream.
func (s *Sink) monitor(ctx context.Context, stream jetstream.Stream, epoch string, epochCh chan<- time.Time) {
	t := time.NewTicker(s.cfg.StatusInterval)
	defer t.Stop()
	for {
		if opened := s.batchOpen.Load(); opened != 0 {
			s.m.batchAge.Set(s.cfg.Now().Sub(time.Unix(0, opened)).Seconds())
		} else {
			s.m.batchAge.Set(0)
		}
		if info, err := stream.Info(ctx); err == nil {
			if EpochOf(info.Created) != epoch {
				select {
				case epochCh <- info.Created:
				default:
				}
				return
			}
			c := s.committed.Load()
			var lag uint64
			if info.State.LastSeq > c {
				lag = info.State.LastSeq - c
			}
			var age time.Duration
			if lag > 0 {
				if m, err := stream.GetMsg(ctx, max(c+1, info.State.FirstSeq)); err == nil {
					age = max(s.cfg.Now().Sub(m.Time), 0)
				}
			}
			s.m.lagMessages.Set(float64(lag))
			s.m.lagSeconds.Set(age.Seconds())
			s.m.streamFirstSeq.Set(float64(info.State.FirstSeq))
			s.mu.Lock()
			s.status.LagMsgs, s.status.LagAge = lag, age
			s.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Sink) reportMissed(ctx context.Context, epoch string, first, last uint64) {
	// A retried session sees the same gap again; count it once per process.
	s.mu.Lock()
	if s.missedEpoch == epoch && s.missedUpTo >= first {
		first = s.missedUpTo + 1
	}
	if first > last {
		s.mu.Unlock()
		return
	}
	s.missedEpoch, s.missedUpTo = epoch, last
	s.mu.Unlock()
	n := last - first + 1
	s.m.missed.Add(float64(n))
	s.mu.Lock()
	s.status.MissedSeqs += n
	s.mu.Unlock()
	s.log.ErrorContext(ctx, "DATA LOSS: results left the stream before the sink wrote them (stream MaxAge/MaxBytes or deletion); raise the stream's retention or fix the sink's lag",
		"epoch", epoch, "first_missed_seq", first, "last_missed_seq", last, "missed", n)
}

// recover works out the committed sequence of epoch: the checkpoint, then
// a probe for a file committed after it (see the package doc).
func (s *Sink) recover(ctx context.Context, stream jetstream.Stream, info *jetstream.StreamInfo, epoch string) (uint64, error) {
	cp, ok, err := readCheckpoint(s.cfg.OutDir)
	if err != nil {
		return 0, err
	}
	var committed uint64
	lastFile := ""
	if ok && cp.Epoch == epoch && cp.Stream == s.cfg.Stream {
		committed, lastFile = cp.CommittedSeq, cp.LastFile
	} else if ok {
		s.log.InfoContext(ctx, "checkpoint is of another stream incarnation; starting the new one from its first sequence",
			"checkpoint_stream", cp.Stream, "checkpoint_epoch", cp.Epoch, "epoch", epoch)
	}
	start := committed
	for committed < info.State.LastSeq {
		next := committed + 1
		var path string
		var last uint64
		found := false
		msg, err := stream.GetMsg(ctx, next)
		switch {
		case err == nil:
			part := PartitionOf(s.storedAt(next, msg.Time))
			path, last, found, err = findFileStarting(s.cfg.OutDir, part, epoch, next)
			if err != nil {
				return 0, fmt.Errorf("sink: recover: %w", err)
			}
		case errors.Is(err, jetstream.ErrMsgNotFound):
			// The next result expired or was deleted: the file after the
			// checkpoint, if any, cannot be located by its first result.
			path, last, err = scanLast(s.cfg.OutDir, epoch, committed)
			if err != nil {
				return 0, fmt.Errorf("sink: recover: %w", err)
			}
			found = path != ""
		default:
			return 0, fmt.Errorf("sink: recover: get message %d: %w", next, err)
		}
		if !found {
			break
		}
		// The file may have been renamed without its folder being synced.
		if err := s.cfg.FS.SyncDir(filepath.Dir(path)); err != nil {
			err = &CommitError{Step: "dirsync", Path: filepath.Dir(path), Err: err}
			s.writeFailed(err)
			return 0, err
		}
		rel, _ := filepath.Rel(s.cfg.OutDir, path)
		s.log.InfoContext(ctx, "found a file committed after the checkpoint", "file", rel, "last_seq", last)
		committed, lastFile = last, rel
	}
	if committed != start || !ok || cp.Epoch != epoch {
		if err := writeCheckpoint(s.cfg.FS, s.cfg.OutDir, checkpoint{Version: 1, Stream: s.cfg.Stream, Epoch: epoch,
			CommittedSeq: committed, LastFile: lastFile, UpdatedAt: s.cfg.Now().UTC()}); err != nil {
			s.writeFailed(err)
			return 0, err
		}
		s.mu.Lock()
		s.writeErr = nil // the disk takes writes again
		s.mu.Unlock()
	}
	s.committed.Store(committed)
	s.m.committedSeq.Set(float64(committed))
	return committed, nil
}

// batch is the file being written.
type batch struct {
	epoch, part string
	tmpPath     string
	f           File
	w           *Writer
	first, last uint64
	rows        int
	buf         []Row
	pending     int64 // estimated bytes of buf
	opened      time.Time
	lastStored  time.Time
}

const writeChunk = 128

func (b *batch) size() int64 { return b.w.Size() + b.pending }

func (s *Sink) open(epoch, part string, m item) (*batch, error) {
	tmp := filepath.Join(s.cfg.OutDir, TempDir, fmt.Sprintf("part-%s-%020d%s", epoch, m.seq, tempSuffix))
	f, err := s.cfg.FS.Create(tmp)
	if err != nil {
		err = &CommitError{Step: "create", Path: tmp, Err: err}
		s.writeFailed(err)
		return nil, err
	}
	now := s.cfg.Now()
	s.batchOpen.Store(now.UnixNano())
	return &batch{
		epoch: epoch, part: part, tmpPath: tmp, f: f,
		w:     NewWriter(f, WriterConfig{RowGroupRows: s.cfg.RowGroupRows}),
		first: m.seq, opened: now,
		buf: make([]Row, 0, writeChunk),
	}, nil
}

func (s *Sink) add(b *batch, m item) error {
	b.buf = append(b.buf, m.row)
	b.pending += m.row.estimateSize()
	b.rows++
	b.last = m.seq
	b.lastStored = m.stored
	s.openRows.Store(int64(b.rows))
	s.m.batchRows.Set(float64(b.rows))
	if len(b.buf) >= writeChunk {
		return s.flushBuf(b)
	}
	return nil
}

func (s *Sink) flushBuf(b *batch) error {
	if len(b.buf) == 0 {
		return nil
	}
	if err := b.w.Write(b.buf); err != nil {
		err = &CommitError{Step: "write", Path: b.tmpPath, Err: err}
		s.writeFailed(err)
		return err
	}
	clear(b.buf)
	b.buf, b.pending = b.buf[:0], 0
	return nil
}

// abort discards an uncommitted batch.
func (s *Sink) abort(b *batch) {
	if b == nil {
		return
	}
	if b.rows > 0 {
		s.log.Warn("discarding an uncommitted batch; its results are read from the stream again",
			"rows", b.rows, "first_seq", b.first, "last_seq", b.last)
	}
	_ = b.f.Close() // a second Close after commit's is expected to fail
	if err := s.cfg.FS.Remove(b.tmpPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		// cleanTemp removes it at the next start.
		s.log.Warn("cannot remove the discarded batch's temporary file", "file", b.tmpPath, "err", err)
	}
	s.batchOpen.Store(0)
	s.openRows.Store(0)
	s.m.batchRows.Set(0)
}

// commit makes b a final file: footer, fsync, rename, fsync the folder, then
// the checkpoint. On any failure b is discarded and nothing is committed
// (the rename is the commit point; a failure after it is repaired by
// recover, which finds the file).
func (s *Sink) commit(ctx context.Context, b *batch) (err error) {
	start := time.Now()
	defer func() {
		if err != nil {
			s.abort(b)
			s.writeFailed(err)
		}
	}()
	if err := s.flushBuf(b); err != nil {
		return err
	}
	if err := b.w.Close(FileMeta{Stream: s.cfg.Stream, Epoch: b.epoch, FirstSeq: b.first, LastSeq: b.last}); err != nil {
		return &CommitError{Step: "write", Path: b.tmpPath, Err: err}
	}
	size := b.w.Size()
	if err := b.f.Sync(); err != nil {
		return &CommitError{Step: "sync", Path: b.tmpPath, Err: err}
	}
	if err := b.f.Close(); err != nil {
		return &CommitError{Step: "close", Path: b.tmpPath, Err: err}
	}
	dir := filepath.Join(s.cfg.OutDir, filepath.FromSlash(b.part))
	if err := s.ensureDir(dir); err != nil {
		return err
	}
	final := filepath.Join(dir, FileName(b.epoch, b.first, b.last))
	if err := s.cfg.FS.Rename(b.tmpPath, final); err != nil {
		return &CommitError{Step: "rename", Path: final, Err: err}
	}
	if err := s.cfg.FS.SyncDir(dir); err != nil {
		return &CommitError{Step: "dirsync", Path: dir, Err: err}
	}
	// Committed: the file is durable under its final name.
	s.batchOpen.Store(0)
	s.openRows.Store(0)
	s.m.batchRows.Set(0)
	s.committed.Store(b.last)
	now := s.cfg.Now()
	rel := filepath.ToSlash(filepath.Join(b.part, filepath.Base(final)))
	s.m.rows.Add(float64(b.rows))
	s.m.files.Inc()
	s.m.bytes.Add(float64(size))
	s.m.committedSeq.Set(float64(b.last))
	s.m.lastCommit.Set(float64(now.UnixNano()) / 1e9)
	s.m.commitSeconds.Observe(time.Since(start).Seconds())
	s.mu.Lock()
	s.status.Files++
	s.status.Rows += int64(b.rows)
	s.status.Bytes += size
	s.status.LastCommit = now
	s.status.LastFile = rel
	s.mu.Unlock()
	s.log.InfoContext(ctx, "committed file", "file", rel, "rows", b.rows, "first_seq", b.first, "last_seq", b.last,
		"bytes", size, "took", time.Since(start).Round(time.Millisecond))
	if s.cfg.OnCommit != nil {
		s.cfg.OnCommit(CommitInfo{Path: final, Partition: b.part, Rows: b.rows, FirstSeq: b.first, LastSeq: b.last, Bytes: size, Epoch: b.epoch})
	}
	if err := writeCheckpoint(s.cfg.FS, s.cfg.OutDir, checkpoint{Version: 1, Stream: s.cfg.Stream, Epoch: b.epoch,
		CommittedSeq: b.last, LastFile: rel, UpdatedAt: now.UTC()}); err != nil {
		// The file is committed; recover finds it past the stale checkpoint.
		s.writeFailed(err)
		return err
	}
	s.mu.Lock()
	s.writeErr = nil
	s.mu.Unlock()
	s.setReady(nil)
	return nil
}

// ensureDir creates a partition folder and makes its entry durable.
func (s *Sink) ensureDir(dir string) error {
	if s.known[dir] {
		return nil
	}
	if err := s.cfg.FS.MkdirAll(dir); err != nil {
		return &CommitError{Step: "mkdir", Path: dir, Err: err}
	}
	// Make the dt= and hour= entries durable (once per folder and process:
	// a previous attempt may have created them without syncing).
	for _, d := range []string{filepath.Dir(filepath.Dir(dir)), filepath.Dir(dir)} {
		if err := s.cfg.FS.SyncDir(d); err != nil {
			return &CommitError{Step: "dirsync", Path: d, Err: err}
		}
	}
	s.known[dir] = true
	return nil
}

func (s *Sink) writeFailed(err error) {
	step := "other"
	var ce *CommitError
	if errors.As(err, &ce) {
		step = ce.Step
	}
	s.m.writeErrors.WithLabelValues(step).Inc()
	werr := fmt.Errorf("sink: writes failing (retrying with backoff): %w", err)
	s.mu.Lock()
	s.status.WriteErrors++
	s.status.LastError = err.Error()
	s.writeErr = werr
	s.notReady = werr
	s.mu.Unlock()
	s.m.ready.Set(0)
}
