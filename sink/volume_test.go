package sink

import (
	"bytes"
	"testing"
	"time"

	"github.com/simlookup/simlookup/internal/natstest"
	"github.com/simlookup/simlookup/schemas"
)

// Test100kResults: 100,000 results become files whose rows are exactly the
// distinct result events. Under the race detector (about ten times slower
// here) it uses 10,000; deploy/warehouse runs 100,000 through DuckDB too.
func Test100kResults(t *testing.T) {
	t.Parallel()
	n := 100_000
	if raceEnabled {
		n = 10_000
	}
	// fsync per message is not what this test is about: 100k of them take minutes.
	srv, err := natstest.Start(natstest.Options{NoSyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	b := setupOn(t, srv, true)
	in := make([]schemas.Result, n)
	for i := range in {
		r := sampleResult(i)
		r.RawResponse, r.Extra, r.Meta = nil, nil, nil // keep the publish fast
		in[i] = r
	}
	t0 := time.Now()
	b.publish(t, in)
	t.Logf("published %d in %v", n, time.Since(t0))
	t0 = time.Now()
	defer func() { t.Logf("sink took %v", time.Since(t0)) }()
	cfg := b.config(t)
	cfg.MaxRows = 30_000
	cfg.RowGroupRows = 10_000
	cfg.PullMessages = 2000
	r := start(t, cfg)
	r.waitCommitted(t, uint64(n))
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	rows, files := readOut(t, b.out)
	if len(files) < 4 {
		t.Errorf("files %v", files)
	}
	ids := map[string]bool{}
	for _, row := range rows {
		ids[row.RequestID] = true
	}
	if len(rows) != n || len(ids) != n {
		t.Fatalf("%d rows, %d distinct request_id; want %d", len(rows), len(ids), n)
	}
}

func BenchmarkRowFromResult(b *testing.B) {
	r := sampleResult(3)
	stored := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RowFromResult(&r, 1, stored); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteRows measures raw Parquet encoding with the project's
// settings, in rows/s.
func BenchmarkWriteRows(b *testing.B) {
	const batch = 10_000
	rows := make([]Row, batch)
	for i := range rows {
		r := sampleResult(i)
		row, err := RowFromResult(&r, uint64(i+1), baseTime)
		if err != nil {
			b.Fatal(err)
		}
		rows[i] = row
	}
	var buf bytes.Buffer
	b.ResetTimer()
	for b.Loop() {
		buf.Reset()
		if err := WriteRows(&buf, rows, WriterConfig{}, FileMeta{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(buf.Len())/batch, "bytes/row")
}
