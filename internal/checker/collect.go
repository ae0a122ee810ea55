package checker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/parquet-go/parquet-go"

	"github.com/simlookup/simlookup/schemas"
)

// ScanStream calls fn, in stream order, for every message stored in stream
// when the scan starts (messages added meanwhile may or may not be seen). It
// reads through an ordered consumer, so it changes nothing on the server.
// An empty stream yields no calls; a missing one is an error matching
// jetstream.ErrStreamNotFound.
func ScanStream(ctx context.Context, js jetstream.JetStream, stream string, fn func(jetstream.Msg) error) error {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("checker: stream %s: %w", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return fmt.Errorf("checker: stream %s info: %w", stream, err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	last := info.State.LastSeq
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("checker: ordered consumer on %s: %w", stream, err)
	}
	defer func() {
		// an ordered consumer is ephemeral; delete it rather than wait for it to be reaped
		if name := cons.CachedInfo().Name; name != "" {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = st.DeleteConsumer(dctx, name)
			cancel()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return fmt.Errorf("checker: fetch from %s: %w", stream, err)
		}
		n := 0
		done := false
		for msg := range batch.Messages() {
			n++
			meta, err := msg.Metadata()
			if err != nil {
				return fmt.Errorf("checker: metadata: %w", err)
			}
			if err := fn(msg); err != nil {
				return err
			}
			if meta.Sequence.Stream >= last || meta.NumPending == 0 {
				done = true
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("checker: fetch from %s: %w", stream, err)
		}
		if done {
			return nil
		}
		if n == 0 {
			// nothing left (messages up to last were removed meanwhile)
			info, err := st.Info(ctx)
			if err != nil {
				return fmt.Errorf("checker: stream %s info: %w", stream, err)
			}
			if info.State.Msgs == 0 || info.State.LastSeq < last {
				return nil
			}
		}
	}
}

// ReadResults returns every result event stored in the results stream
// (schemas.ResultStream unless stream is given). An event that does not
// decode is kept with an empty RequestID and Status "undecodable".
// raw, if not nil, is called with each message body (for content checks).
func ReadResults(ctx context.Context, js jetstream.JetStream, stream string, raw func(seq uint64, data []byte)) ([]ResultEvent, error) {
	if stream == "" {
		stream = schemas.ResultStream
	}
	var out []ResultEvent
	err := ScanStream(ctx, js, stream, func(m jetstream.Msg) error {
		meta, _ := m.Metadata()
		ev := ResultEvent{Seq: meta.Sequence.Stream, MsgID: m.Headers().Get(jetstream.MsgIDHeader)}
		var res struct {
			RequestID string `json:"request_id"`
			Status    string `json:"status"`
		}
		if err := json.Unmarshal(m.Data(), &res); err != nil {
			ev.Status = "undecodable"
		} else {
			ev.RequestID, ev.Status = res.RequestID, res.Status
		}
		if raw != nil {
			raw(ev.Seq, m.Data())
		}
		out = append(out, ev)
		return nil
	})
	return out, err
}

// ReadDeadLetters returns every dead letter in the dead-letter stream
// (schemas.DLQStream unless stream is given). A missing stream is no error.
func ReadDeadLetters(ctx context.Context, js jetstream.JetStream, stream string) ([]DeadLetter, error) {
	if stream == "" {
		stream = schemas.DLQStream
	}
	var out []DeadLetter
	err := ScanStream(ctx, js, stream, func(m jetstream.Msg) error {
		meta, _ := m.Metadata()
		var d schemas.DeadLetter
		_ = json.Unmarshal(m.Data(), &d)
		reason := d.Reason
		if reason == "" {
			reason = strings.TrimPrefix(m.Subject(), schemas.DLQSubjectPrefix)
		}
		out = append(out, DeadLetter{Seq: meta.Sequence.Stream, Reason: reason, RequestID: d.RequestID})
		return nil
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	return out, err
}

// rowKey is the subset of the sink's row that the checker reads; parquet-go
// converts each file's schema to it.
type rowKey struct {
	RequestID string `parquet:"request_id"`
	StreamSeq int64  `parquet:"stream_seq"`
}

// Files describes what ReadRows found under a sink's output folder.
type Files struct {
	// Parquet are the final files (name ends in .parquet), relative to dir.
	Parquet []string
	// Other are every other regular file (temporary files, the lock, ...).
	Other []string
}

// ReadRows reads every *.parquet file under dir (recursively) and returns
// one Row per row. A final file that cannot be read is an error: SPEC allows
// nothing but complete files under a name ending in .parquet.
func ReadRows(dir string) ([]Row, Files, error) {
	var rows []Row
	var files Files
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == dir {
				return fs.SkipAll
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		if !strings.HasSuffix(d.Name(), ".parquet") {
			files.Other = append(files.Other, rel)
			return nil
		}
		files.Parquet = append(files.Parquet, rel)
		got, err := readFile(path)
		if err != nil {
			return fmt.Errorf("checker: %s: %w", rel, err)
		}
		for _, k := range got {
			rows = append(rows, Row{File: rel, RequestID: k.RequestID, StreamSeq: uint64(max(k.StreamSeq, 0))})
		}
		return nil
	})
	return rows, files, err
}

func readFile(path string) ([]rowKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return parquet.Read[rowKey](f, st.Size())
}

// Collect gathers a full Input from a server and, if outDir is not empty,
// a sink's output folder.
func Collect(ctx context.Context, js jetstream.JetStream, accepted []string, outDir string) (Input, error) {
	in := Input{Accepted: accepted}
	var err error
	if in.Results, err = ReadResults(ctx, js, "", nil); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return in, err
	}
	if in.DeadLetters, err = ReadDeadLetters(ctx, js, ""); err != nil {
		return in, err
	}
	if outDir != "" {
		in.RowsChecked = true
		if in.Rows, _, err = ReadRows(outDir); err != nil {
			return in, err
		}
	}
	return in, nil
}
