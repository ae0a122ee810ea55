package checker

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/parquet-go/parquet-go"

	"github.com/simlookup/simlookup/internal/natstest"
	"github.com/simlookup/simlookup/schemas"
)

func setup(t *testing.T) (context.Context, jetstream.JetStream) {
	t.Helper()
	s := natstest.Run(t)
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	for _, cfg := range schemas.StreamConfigs(schemas.StreamOptions{RequestsMaxBytes: 64 << 20, ResultsMaxBytes: 64 << 20}) {
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	return ctx, js
}

func TestCollectFromServer(t *testing.T) {
	ctx, js := setup(t)
	const n = 1200 // more than one fetch batch
	var accepted []string
	for i := range n {
		id := fmt.Sprintf("req-%05d", i)
		accepted = append(accepted, id)
		if i == 7 {
			continue // lost
		}
		res := schemas.Result{SchemaVersion: 1, RequestID: id, ICCID: "89852240400014306175", Status: schemas.StatusOK}
		b, _ := json.Marshal(res)
		if _, err := js.Publish(ctx, schemas.ResultSubject(res.Status, res.ICCID), b, jetstream.WithMsgID(schemas.ResultMsgID(id))); err != nil {
			t.Fatal(err)
		}
	}
	// a duplicate that escaped dedup (a different msg id)
	b, _ := json.Marshal(schemas.Result{RequestID: "req-00001", Status: schemas.StatusOK})
	if _, err := js.Publish(ctx, schemas.ResultInvalidSubject, b); err != nil {
		t.Fatal(err)
	}
	dl, _ := json.Marshal(schemas.DeadLetter{Reason: schemas.ReasonMaxDeliveries, RequestID: "req-00009"})
	if _, err := js.Publish(ctx, schemas.DLQSubject(schemas.ReasonMaxDeliveries), dl); err != nil {
		t.Fatal(err)
	}

	seen := 0
	results, err := ReadResults(ctx, js, "", func(uint64, []byte) { seen++ })
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != n || seen != n {
		t.Fatalf("read %d results (%d raw), want %d", len(results), seen, n)
	}
	if results[0].MsgID != "result:req-00000" || results[0].Seq != 1 {
		t.Fatalf("first = %+v", results[0])
	}
	in, err := Collect(ctx, js, accepted, "")
	if err != nil {
		t.Fatal(err)
	}
	r := Check(in)
	if r.Accepted != n || r.Results != n || r.Lost != 1 || r.DuplicateResults != 1 || r.DeadLetters != 1 || r.LostIDs[0] != "req-00007" {
		t.Fatalf("report = %+v", r)
	}

	// the scan did not leave consumers behind
	st, _ := js.Stream(ctx, schemas.ResultStream)
	info, _ := st.Info(ctx)
	if info.State.Consumers != 0 {
		t.Fatalf("%d consumers left on the results stream", info.State.Consumers)
	}
}

func TestReadResultsMissingStream(t *testing.T) {
	s := natstest.Run(t)
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	_, err = ReadResults(context.Background(), js, "", nil)
	if err == nil {
		t.Fatal("no error for a missing stream")
	}
	if dl, err := ReadDeadLetters(context.Background(), js, ""); err != nil || dl != nil {
		t.Fatalf("dead letters of a missing stream = %v, %v", dl, err)
	}
}

// wideRow has more columns than the checker reads, like the sink's row.
type wideRow struct {
	RequestID string   `parquet:"request_id"`
	Status    string   `parquet:"status,dict"`
	Flow      *float64 `parquet:"month_use_flow_mb,optional"`
	StreamSeq int64    `parquet:"stream_seq"`
	RawJSON   *string  `parquet:"raw_json,optional"`
}

func TestReadRows(t *testing.T) {
	dir := t.TempDir()
	part := filepath.Join(dir, "dt=2026-12-03", "hour=22")
	if err := os.MkdirAll(part, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, rows []wideRow) {
		if err := parquet.WriteFile(filepath.Join(part, name), rows, parquet.Compression(&parquet.Zstd)); err != nil {
			t.Fatal(err)
		}
	}
	write("part-1-001-002.parquet", []wideRow{{RequestID: "a", StreamSeq: 1}, {RequestID: "b", StreamSeq: 2}})
	write("part-1-003-003.parquet", []wideRow{{RequestID: "c", StreamSeq: 3}})
	if err := os.WriteFile(filepath.Join(part, "part-1-004-009.parquet.tmp"), []byte("half a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	rows, files, err := ReadRows(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[2].RequestID != "c" || rows[2].StreamSeq != 3 {
		t.Fatalf("rows = %+v", rows)
	}
	if len(files.Parquet) != 2 || len(files.Other) != 1 {
		t.Fatalf("files = %+v", files)
	}

	// a broken final file is an error, not a silent zero
	if err := os.WriteFile(filepath.Join(part, "part-1-010-011.parquet"), []byte("PAR1 not really"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadRows(dir); err == nil {
		t.Fatal("no error for a corrupt .parquet file")
	}

	// a missing folder is an empty one
	if rows, _, err := ReadRows(filepath.Join(dir, "nope")); err != nil || len(rows) != 0 {
		t.Fatalf("missing dir: %v %v", rows, err)
	}
}
