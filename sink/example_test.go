package sink_test

import (
	"bytes"
	"fmt"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/sink"
)

// A result event becomes one flat row; WriteRows encodes rows with the
// project's writer settings.
func ExampleRowFromResult() {
	stored := time.Date(2026, 12, 3, 22, 15, 0, 0, time.UTC)
	used := 0.0
	r := schemas.Result{
		SchemaVersion: schemas.SchemaVersion, RequestID: "job-1:1", ICCID: "89860000000000000001",
		Status: schemas.StatusOK, RequestedAt: stored, CompletedAt: stored, Worker: "w1",
		Card: &schemas.Card{MonthUseFlowMB: &used}, // a real 0; every other card field is NULL
	}
	row, err := sink.RowFromResult(&r, 42, stored)
	if err != nil {
		panic(err)
	}
	var buf bytes.Buffer
	if err := sink.WriteRows(&buf, []sink.Row{row}, sink.WriterConfig{}, sink.FileMeta{Stream: schemas.ResultStream, FirstSeq: 42, LastSeq: 42}); err != nil {
		panic(err)
	}
	rows, err := parquet.Read[sink.Row](bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		panic(err)
	}
	fmt.Println(rows[0].RequestID, rows[0].StreamSeq, *rows[0].MonthUseFlowMB, rows[0].MonthRemainFlowMB == nil)
	fmt.Println(sink.PartitionOf(stored) + "/" + sink.FileName(sink.EpochOf(time.Unix(1, 0)), 42, 42))
	// Output:
	// job-1:1 42 0 true
	// dt=2026-12-03/hour=22/part-0000000001000000000-00000000000000000042-00000000000000000042.parquet
}
