package sink

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"

	"github.com/simlookup/simlookup/schemas"
)

var update = flag.Bool("update", false, "rewrite golden files (schemas/parquet-columns.md)")

func TestRowFromResult(t *testing.T) {
	t.Parallel()
	stored := time.Date(2026, 12, 3, 22, 0, 0, 5000, time.FixedZone("x", 3600))
	tests := []struct {
		name  string
		in    func() *schemas.Result
		check func(t *testing.T, r Row)
		err   bool
	}{
		{name: "ok card keeps 0 and NULL apart", in: func() *schemas.Result { r := sampleResult(0); return &r }, check: func(t *testing.T, r Row) {
			if r.MonthUseFlowMB == nil || *r.MonthUseFlowMB != 0 {
				t.Errorf("month_use_flow_mb = %v, want 0", r.MonthUseFlowMB)
			}
			if r.EID != nil || r.PackageEndDate != nil || r.PackageEndDateRaw != nil {
				t.Errorf("absent card fields not NULL: %v %v %v", r.EID, r.PackageEndDate, r.PackageEndDateRaw)
			}
			if *r.RemainFlowMB != 0.125 || *r.MonthRemainFlowMB != 1023.75 {
				t.Errorf("fractional flows: %v %v", *r.RemainFlowMB, *r.MonthRemainFlowMB)
			}
			if r.IsRealName == nil || *r.IsRealName != 0 {
				t.Errorf("is_real_name = %v, want 0", r.IsRealName)
			}
			if r.ErrorKind != nil || r.ErrorCode != nil || r.ErrorRetryable != nil {
				t.Errorf("error columns of an ok result not NULL")
			}
			if r.ExtraJSON == nil || *r.ExtraJSON != `{"flag":true,"newVendorField":{"a":1}}` {
				t.Errorf("extra_json = %v", r.ExtraJSON)
			}
			if r.MetaJSON == nil || *r.MetaJSON != `{"fleet":"north","n":0}` {
				t.Errorf("meta_json = %v", r.MetaJSON)
			}
			if !r.StoredAt.Equal(stored) || r.StoredAt.Location() != time.UTC {
				t.Errorf("stored_at = %v", r.StoredAt)
			}
			if r.StreamSeq != 42 || r.Status != "ok" || *r.ICCID != "89860000000000000000" || *r.CardICCID != *r.ICCID {
				t.Errorf("metadata: %+v", r)
			}
			if r.SinkError != nil || r.EventJSON != nil {
				t.Errorf("sink_error set on a good event")
			}
		}},
		{name: "failed result has error columns", in: func() *schemas.Result { r := sampleResult(7); return &r }, check: func(t *testing.T, r Row) {
			if *r.ErrorKind != "vendor" || *r.ErrorCode != "5001" || *r.ErrorHTTPStatus != 200 || *r.ErrorRetryable != false || *r.ErrorMessage != "card not found" {
				t.Errorf("error columns: %v %v %v %v", *r.ErrorKind, *r.ErrorCode, *r.ErrorHTTPStatus, *r.ErrorRetryable)
			}
			if r.CardICCID != nil || r.MonthUseFlowMB != nil || r.ExtraJSON != nil {
				t.Errorf("card columns of a failed result not NULL")
			}
		}},
		{name: "invalid result has NULL iccid and the input", in: func() *schemas.Result { r := sampleResult(9); return &r }, check: func(t *testing.T, r Row) {
			if r.ICCID != nil || r.FetchedAt != nil || r.MetaJSON != nil || *r.Input != "not-an-iccid" || r.Status != "invalid" {
				t.Errorf("invalid: %+v", r)
			}
			if r.ErrorHTTPStatus != nil {
				t.Errorf("http status should be NULL")
			}
		}},
		{name: "nil", in: func() *schemas.Result { return nil }, err: true},
		{name: "no request id", in: func() *schemas.Result { r := sampleResult(1); r.RequestID = ""; return &r }, err: true},
		{name: "future schema", in: func() *schemas.Result { r := sampleResult(1); r.SchemaVersion = schemas.SchemaVersion + 1; return &r }, err: true},
		{name: "deliveries overflow", in: func() *schemas.Result { r := sampleResult(1); r.Deliveries = math.MaxUint64; return &r }, err: true},
		{name: "attempts overflow", in: func() *schemas.Result { r := sampleResult(1); r.Attempts = math.MaxInt32 + 1; return &r }, err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			row, err := RowFromResult(tc.in(), 42, stored)
			if tc.err {
				if !errors.Is(err, ErrBadResult) {
					t.Fatalf("err = %v, want ErrBadResult", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, row)
		})
	}
}

func TestRowFromMessageUndecodable(t *testing.T) {
	t.Parallel()
	stored := baseTime
	row, err := rowFromMessage([]byte("{not json\xff"), "result:abc", "simlookup.result.ok.8986", 7, stored)
	if err == nil {
		t.Fatal("no error for garbage")
	}
	if row.RequestID != "abc" || row.Status != "ok" || row.StreamSeq != 7 || row.SinkError == nil || row.EventJSON == nil {
		t.Fatalf("row = %+v", row)
	}
	row, _ = rowFromMessage([]byte(`{"schema_version":1}`), "", "other", 8, stored)
	if row.RequestID != "stream:8" || !strings.Contains(*row.SinkError, "request_id") {
		t.Fatalf("row = %+v %q", row, *row.SinkError)
	}
}

// columnSources maps each Row column to the JSON path it comes from.
func columnSources(t *testing.T) map[string]string {
	t.Helper()
	want := map[string]string{}
	rt := reflect.TypeFor[schemas.Result]()
	for i := range rt.NumField() {
		name := jsonName(rt.Field(i))
		switch name {
		case "error":
			et := reflect.TypeFor[schemas.ErrorInfo]()
			for j := range et.NumField() {
				n := jsonName(et.Field(j))
				want["error_"+n] = "error." + n
			}
		case "card":
			ct := reflect.TypeFor[schemas.Card]()
			for j := range ct.NumField() {
				n := jsonName(ct.Field(j))
				col := n
				if n == "iccid" {
					col = "card_iccid"
				}
				want[col] = "card." + n
			}
		case "extra":
			want["extra_json"] = name
		case "raw_response":
			want["raw_json"] = name
		case "meta":
			want["meta_json"] = name
		default:
			want[name] = name
		}
	}
	return want
}

func jsonName(f reflect.StructField) string {
	n, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	return n
}

// TestRowColumnsCoverResult checks that the Go row type and the result
// event agree: every field of Result, ErrorInfo and Card has its column,
// and every column comes from the event or from the stream.
func TestRowColumnsCoverResult(t *testing.T) {
	t.Parallel()
	sinkOwn := map[string]bool{"stream_seq": true, "stored_at": true, "sink_error": true, "event_json": true}
	cols := map[string]bool{}
	for _, f := range rowSchema.Fields() {
		cols[f.Name()] = true
		if _, ok := columnSources(t)[f.Name()]; !ok && !sinkOwn[f.Name()] {
			t.Errorf("column %s comes from no result field", f.Name())
		}
	}
	for col, src := range columnSources(t) {
		if !cols[col] {
			t.Errorf("result field %s has no column %s", src, col)
		}
	}
	// Every column but the few always-present ones is nullable, and only
	// pointers are nullable (a non-pointer optional writes 0 as NULL).
	rt := reflect.TypeFor[Row]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		opt := strings.Contains(f.Tag.Get("parquet"), ",optional")
		if opt != (f.Type.Kind() == reflect.Pointer) {
			t.Errorf("column %s: optional=%v but Go type %v", f.Name, opt, f.Type)
		}
		if f.Tag.Get("doc") == "" {
			t.Errorf("column %s has no doc tag", f.Name)
		}
	}
}

func TestParquetColumnsGolden(t *testing.T) {
	t.Parallel()
	got := columnsDoc()
	const path = "../schemas/parquet-columns.md"
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./sink -run Golden -update)", err)
	}
	if string(want) != got {
		t.Fatalf("%s is out of date with sink.Row; run: go test ./sink -run TestParquetColumnsGolden -update", path)
	}
}

func columnsDoc() string {
	var b strings.Builder
	b.WriteString(`# Parquet columns of the result files

Generated from ` + "`sink.Row`" + ` by ` + "`go test ./sink -run TestParquetColumnsGolden -update`" + `; do not edit.

One row per result event (schema_version 1). Files live at
` + "`<out>/dt=YYYY-MM-DD/hour=HH/part-<epoch>-<first_seq>-<last_seq>.parquet`" + `, partitioned by the UTC
time the results stream stored the result (` + "`stored_at`" + `). The partition keys ` + "`dt`" + ` (DATE) and ` + "`hour`" + `
(INTEGER, 0-23) are folder names only, never columns inside the files. Deduplicate on ` + "`request_id`" + `.

Writer: zstd, data page v1, PLAIN strings (dictionary on the few low-cardinality columns), row groups of
at most 100,000 rows, a bloom filter on ` + "`iccid`" + `, no unsigned, nested or INT96 types. Timestamps are INT64 TIMESTAMP(MICROS,
isAdjustedToUTC=true). Key-value metadata: ` + "`simlookup.schema_version`, `simlookup.version`, `simlookup.commit`, `simlookup.stream`, `simlookup.epoch`, `simlookup.first_seq`, `simlookup.last_seq`, `simlookup.rows`" + `.
Evolution is additive: new columns are nullable; nothing is renamed or retyped within a schema_version.

| column | Parquet type | DuckDB | BigQuery | Snowflake | ClickHouse | Athena/Trino | nullable | meaning |
|---|---|---|---|---|---|---|---|---|
`)
	rt := reflect.TypeFor[Row]()
	fields := rowSchema.Fields()
	for i := range rt.NumField() {
		f := rt.Field(i)
		col := fields[i]
		name, _, _ := strings.Cut(f.Tag.Get("parquet"), ",")
		if col.Name() != name {
			panic("schema order differs from struct order: " + col.Name() + " " + name)
		}
		ptype := col.Type().Kind().String()
		if lt := col.Type().LogicalType(); lt != nil {
			ptype += " " + lt.String()
		}
		if strings.Contains(f.Tag.Get("parquet"), ",dict") {
			ptype += " (dictionary)"
		}
		var wh [5]string
		base := f.Type
		if base.Kind() == reflect.Pointer {
			base = base.Elem()
		}
		switch {
		case base == reflect.TypeFor[time.Time]():
			wh = [5]string{"TIMESTAMP WITH TIME ZONE", "TIMESTAMP", "TIMESTAMP_LTZ", "DateTime64(6, 'UTC')", "timestamp(3) (Hive) / timestamp(6)"}
		case base.Kind() == reflect.String:
			wh = [5]string{"VARCHAR", "STRING", "VARCHAR", "String", "varchar"}
		case base.Kind() == reflect.Int64:
			wh = [5]string{"BIGINT", "INT64", "NUMBER(19,0)", "Int64", "bigint"}
		case base.Kind() == reflect.Int32:
			wh = [5]string{"INTEGER", "INT64", "NUMBER(10,0)", "Int32", "integer"}
		case base.Kind() == reflect.Float64:
			wh = [5]string{"DOUBLE", "FLOAT64", "FLOAT", "Float64", "double"}
		case base.Kind() == reflect.Bool:
			wh = [5]string{"BOOLEAN", "BOOL", "BOOLEAN", "Bool", "boolean"}
		default:
			panic("no warehouse type for " + base.String())
		}
		nullable := "no"
		if col.Optional() {
			nullable = "yes"
			wh[3] = "Nullable(" + wh[3] + ")"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s | %s | %s | %s |\n", name, ptype, wh[0], wh[1], wh[2], wh[3], wh[4], nullable, f.Tag.Get("doc"))
	}
	return b.String()
}

// roundTrip writes rows with the project's settings and reads them back.
func roundTrip(t *testing.T, rows []Row) ([]Row, *parquet.File) {
	t.Helper()
	var buf bytes.Buffer
	meta := FileMeta{Stream: schemas.ResultStream, Epoch: EpochOf(baseTime), FirstSeq: 1, LastSeq: uint64(len(rows))}
	if err := WriteRows(&buf, rows, WriterConfig{RowGroupRows: 7}, meta); err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(buf.Bytes())
	f, err := parquet.OpenFile(r, int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	got, err := parquet.Read[Row](r, int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	return got, f
}

// micros is what a row looks like after a TIMESTAMP(MICROS) round trip.
func micros(r Row) Row {
	tr := func(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }
	trp := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		v := tr(*t)
		return &v
	}
	r.RequestedAt, r.CompletedAt, r.StoredAt = tr(r.RequestedAt), tr(r.CompletedAt), tr(r.StoredAt)
	r.FetchedAt, r.ActivateDate, r.PackageEndDate, r.ExpectedEndDate = trp(r.FetchedAt), trp(r.ActivateDate), trp(r.PackageEndDate), trp(r.ExpectedEndDate)
	return r
}

func TestWriteRowsRoundTrip(t *testing.T) {
	t.Parallel()
	var rows []Row
	for i := range 30 {
		r := sampleResult(i)
		row, err := RowFromResult(&r, uint64(i+1), baseTime.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
	got, f := roundTrip(t, rows)
	if len(got) != len(rows) {
		t.Fatalf("read %d rows, wrote %d", len(got), len(rows))
	}
	for i := range rows {
		if want := micros(rows[i]); !reflect.DeepEqual(got[i], want) {
			t.Errorf("row %d differs:\n got %+v\nwant %+v", i, got[i], want)
		}
	}
	md := f.Metadata()
	if !strings.HasPrefix(md.CreatedBy, "simlookup version ") {
		t.Errorf("created_by = %q", md.CreatedBy)
	}
	if len(md.RowGroups) != 5 { // 30 rows / 7 per group
		t.Errorf("row groups = %d, want 5", len(md.RowGroups))
	}
	for k, want := range map[string]string{MetaSchemaVersion: "1", MetaStream: schemas.ResultStream, MetaEpoch: EpochOf(baseTime), MetaFirstSeq: "1", MetaLastSeq: "30", MetaRows: "30"} {
		if v, ok := f.Lookup(k); !ok || v != want {
			t.Errorf("metadata %s = %q, want %q", k, v, want)
		}
	}
	for _, c := range md.RowGroups[0].Columns {
		if c.MetaData.Codec != format.Zstd {
			t.Errorf("column %v codec %v", c.MetaData.PathInSchema, c.MetaData.Codec)
		}
		for _, e := range c.MetaData.Encoding {
			switch e {
			case format.Plain, format.RLE, format.RLEDictionary, format.PlainDictionary, format.BitPacked:
			default:
				t.Errorf("column %v uses encoding %v", c.MetaData.PathInSchema, e)
			}
		}
	}
}

func FuzzRowFromResult(f *testing.F) {
	for i := range 10 {
		r := sampleResult(i)
		b, _ := json.Marshal(r)
		f.Add(b)
	}
	f.Add([]byte(`{"request_id":"x","deliveries":18446744073709551615}`))
	f.Add([]byte(`{"request_id":"x","error":{"http_status":99999999999}}`))
	f.Add([]byte(`{"request_id":"x","extra":{"a":"\ud800"},"raw_response":"\xff"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r schemas.Result
		if json.Unmarshal(data, &r) == nil {
			_, _ = RowFromResult(&r, 1, baseTime)
		}
		row, _ := rowFromMessage(data, "result:id", "simlookup.result.ok.1", 3, baseTime)
		if row.RequestID == "" {
			t.Fatalf("row without request_id for %q", data)
		}
	})
}

// TestRowColumnsCoverJSONSchema: every property of result.schema.json (and
// of its error and card objects) has its column.
func TestRowColumnsCoverJSONSchema(t *testing.T) {
	t.Parallel()
	type obj struct {
		Properties map[string]obj `json:"properties"`
	}
	var s obj
	if err := json.Unmarshal(schemas.ResultSchema(), &s); err != nil {
		t.Fatal(err)
	}
	cols := map[string]bool{}
	for _, f := range rowSchema.Fields() {
		cols[f.Name()] = true
	}
	renamed := map[string]string{"extra": "extra_json", "raw_response": "raw_json", "meta": "meta_json", "card.iccid": "card_iccid"}
	n := 0
	for name, p := range s.Properties {
		switch name {
		case "error", "card":
			if len(p.Properties) == 0 {
				t.Fatalf("result.schema.json: %s has no properties", name)
			}
			for sub := range p.Properties {
				col := cmpOr(renamed[name+"."+sub], sub)
				if name == "error" {
					col = "error_" + sub
				}
				n++
				if !cols[col] {
					t.Errorf("result.schema.json %s.%s has no column %s", name, sub, col)
				}
			}
		default:
			n++
			if col := cmpOr(renamed[name], name); !cols[col] {
				t.Errorf("result.schema.json %s has no column %s", name, col)
			}
		}
	}
	if n < 40 {
		t.Errorf("only %d schema properties found", n)
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
