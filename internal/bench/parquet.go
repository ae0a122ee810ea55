package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/sink"
)

// sampleResult is a typical ok result: every card field set, a raw vendor
// response of about 500 bytes, as the fake vendor API answers.
func sampleResult(i int) *schemas.Result {
	s := func(v string) *string { return &v }
	f := func(v float64) *float64 { return &v }
	n := func(v int64) *int64 { return &v }
	now := time.Now().UTC()
	iccid := fmt.Sprintf("8985224040%010d", i)
	job := "bench"
	luhn := true
	card := &schemas.Card{
		ICCID: s(iccid), EID: s("89049032000001000000000000012345"), IMSI: s("460011234567890"),
		IMEI: s("867530912345678"), ActivateDate: &now, ActivateDateRaw: s("2024-01-08 15:05:19"),
		CardStatus: s("active"), IsRealName: n(1), MonthRemainFlowMB: f(1536.25), MonthUseFlowMB: f(511.75),
		RemainFlowType: n(1), ProductCode: s("P-EU-3GB"), PackageEndDate: &now, PackageEndDateRaw: s("2026-12-31 23:59:59"),
		DataFlowMB: f(3072), RemainFlowMB: f(1536.25), ExpectedEndDate: &now, ExpectedEndDateRaw: s("2026-12-31 23:59:59"),
		IMEIPoolStatus: n(0), IMEIPoolUnlockCount: n(0), IsIMEIPool: n(0), Network: s("4G"),
		TotalUseFlowMB: f(10240.5), PackageCode: s("PKG-3GB-30D"), PackageKind: n(2), Remark: s(""),
	}
	raw, _ := json.Marshal(map[string]any{"code": "200", "msg": "success", "data": card})
	return &schemas.Result{
		SchemaVersion: schemas.SchemaVersion, RequestID: fmt.Sprintf("bench-%d", i), JobID: &job,
		ICCID: iccid, ICCIDLuhnValid: &luhn, Status: schemas.StatusOK, Attempts: 1, Deliveries: 1,
		RequestSeq: uint64(i + 1), RequestedAt: now, FetchedAt: &now, CompletedAt: now, DurationMS: 3,
		Worker: "bench-worker", Card: card, Extra: map[string]json.RawMessage{}, RawResponse: s(string(raw)),
	}
}

// rawParquet is the Parquet ceiling: n rows of the sink's row type, converted
// from a typical result beforehand, written with the sink's writer (its
// settings) to one file in dir, in batches of 1,000, and fsynced. It returns
// rows per second of writing (conversion excluded).
func rawParquet(dir string, n int) (float64, error) {
	rows := make([]sink.Row, n)
	for i := range n {
		r, err := sink.RowFromResult(sampleResult(i), uint64(i+1), time.Now())
		if err != nil {
			return 0, fmt.Errorf("bench: row: %w", err)
		}
		rows[i] = r
	}
	path := filepath.Join(dir, "raw.parquet.tmp")
	f, err := os.Create(path)
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	defer os.Remove(path)
	defer f.Close()
	start := time.Now()
	bw := bufio.NewWriterSize(f, 1<<20)
	w := sink.NewWriter(bw, sink.WriterConfig{})
	for i := 0; i < n; i += 1000 {
		if err := w.Write(rows[i:min(i+1000, n)]); err != nil {
			return 0, err
		}
	}
	if err := w.Close(sink.FileMeta{Stream: "bench", Epoch: "0", FirstSeq: 1, LastSeq: uint64(n)}); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
