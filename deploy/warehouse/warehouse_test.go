package warehouse

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/internal/natstest"
	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/sink"
)

func ptr[T any](v T) *T { return &v }

// result i: every 10th from 7 failed, from 9 invalid, the rest ok; card
// fields exercise 0 vs NULL and fractions.
func result(i int) schemas.Result {
	base := time.Date(2026, 12, 3, 21, 0, 0, 0, time.UTC)
	iccid := fmt.Sprintf("89860%015d", i%5000) // cards are looked up more than once
	r := schemas.Result{
		SchemaVersion: schemas.SchemaVersion, RequestID: fmt.Sprintf("job-w:%d", i), JobID: ptr("job-w"),
		ICCID: iccid, ICCIDLuhnValid: ptr(true), Status: schemas.StatusOK, Attempts: 1, Deliveries: 1,
		RequestSeq: uint64(i + 1), RequestedAt: base.Add(time.Duration(i) * time.Millisecond),
		FetchedAt:   ptr(base.Add(time.Duration(i)*time.Millisecond + 123456*time.Microsecond)),
		CompletedAt: base.Add(time.Duration(i)*time.Millisecond + 124*time.Millisecond), DurationMS: 124, Worker: "w1",
	}
	switch i % 10 {
	case 7:
		r.Status = schemas.StatusFailed
		r.Error = &schemas.ErrorInfo{Kind: schemas.KindVendor, Code: ptr("5001"), Message: "card not found", HTTPStatus: ptr(200)}
	case 9:
		r.Status, r.ICCID, r.FetchedAt, r.Attempts = schemas.StatusInvalid, "", nil, 0
		r.Input = ptr("garbage")
		r.Error = &schemas.ErrorInfo{Kind: schemas.KindInvalidInput, Code: ptr("not_digits"), Message: "not digits"}
	default:
		act := time.Date(2024, 1, 8, 7, 5, 19, 0, time.UTC)
		r.Card = &schemas.Card{
			ICCID: ptr(iccid), ActivateDate: &act, ActivateDateRaw: ptr("2024-01-08 15:05:19"), CardStatus: ptr("active"),
			IsRealName: ptr(int64(0)), MonthUseFlowMB: ptr(0.0), MonthRemainFlowMB: ptr(float64(i%4) + 0.25),
			Network: ptr("CMCC"), PackageKind: ptr(int64(i % 3)),
		}
		r.Extra = map[string]json.RawMessage{"newField": json.RawMessage(`"x"`)}
		r.RawResponse = ptr(`{"code":"200","data":{}}`)
	}
	return r
}

// TestDuckDBReadsSinkOutput runs the real sink on an embedded NATS server
// and checks its files with DuckDB: counts, types, NULL vs 0, partitions,
// and the recipes in sql/duckdb.sql.
func TestDuckDBReadsSinkOutput(t *testing.T) {
	n := 100_000
	if testing.Short() {
		n = 10_000
	}
	srv, err := natstest.Start(natstest.Options{NoSyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	stream, err := js.CreateOrUpdateStream(ctx, schemas.ResultStreamConfig(schemas.StreamOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		r := result(i)
		data, _ := json.Marshal(r)
		msg := nats.NewMsg(schemas.ResultSubject(r.Status, r.ICCID))
		msg.Data = data
		msg.Header.Set(jetstream.MsgIDHeader, schemas.ResultMsgID(r.RequestID))
		if err := nc.PublishMsg(msg); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { info, err := stream.Info(ctx); return err == nil && info.State.Msgs == uint64(n) })

	out := filepath.Join(t.TempDir(), "simlookup-demo")
	s, err := sink.New(sink.Config{JetStream: js, OutDir: out, MaxRows: n / 4, MaxAge: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(sctx) }()
	waitFor(t, func() bool { return s.Status().CommittedSeq == uint64(n) })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	glob := filepath.ToSlash(filepath.Join(out, "**", "*.parquet"))
	src := fmt.Sprintf("read_parquet('%s', hive_partitioning = true, hive_types = {'dt': DATE, 'hour': INTEGER})", glob)

	var rows, distinct, nullFlow, zeroFlow, nullIccid int64
	var sumRemain float64
	one(t, db, fmt.Sprintf(`SELECT count(*), count(DISTINCT request_id),
		count(*) FILTER (WHERE month_use_flow_mb IS NULL), count(*) FILTER (WHERE month_use_flow_mb = 0),
		count(*) FILTER (WHERE iccid IS NULL), sum(month_remain_flow_mb) FROM %s`, src),
		&rows, &distinct, &nullFlow, &zeroFlow, &nullIccid, &sumRemain)
	var wantOK, wantInvalid int64
	var wantRemain float64
	for i := range n {
		switch i % 10 {
		case 7:
		case 9:
			wantInvalid++
		default:
			wantOK++
			wantRemain += float64(i%4) + 0.25
		}
	}
	if rows != int64(n) || distinct != int64(n) {
		t.Errorf("rows %d, distinct request_id %d; want %d", rows, distinct, n)
	}
	if zeroFlow != wantOK || nullFlow != int64(n)-wantOK {
		t.Errorf("month_use_flow_mb: %d zeros, %d NULLs; want %d and %d", zeroFlow, nullFlow, wantOK, int64(n)-wantOK)
	}
	if nullIccid != wantInvalid {
		t.Errorf("iccid NULL %d, want %d", nullIccid, wantInvalid)
	}
	if math.Abs(sumRemain-wantRemain) > 1e-6 {
		t.Errorf("sum(month_remain_flow_mb) %v, want %v", sumRemain, wantRemain)
	}

	// Column types as DuckDB sees them.
	types := map[string]string{}
	q, err := db.QueryContext(ctx, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+src+")")
	if err != nil {
		t.Fatal(err)
	}
	for q.Next() {
		var name, typ string
		if err := q.Scan(&name, &typ); err != nil {
			t.Fatal(err)
		}
		types[name] = typ
	}
	q.Close()
	for col, want := range map[string]string{
		"stored_at": "TIMESTAMP WITH TIME ZONE", "fetched_at": "TIMESTAMP WITH TIME ZONE", "activate_date": "TIMESTAMP WITH TIME ZONE",
		"month_use_flow_mb": "DOUBLE", "attempts": "INTEGER", "error_http_status": "INTEGER", "stream_seq": "BIGINT",
		"is_real_name": "BIGINT", "request_id": "VARCHAR", "raw_json": "VARCHAR", "extra_json": "VARCHAR",
		"iccid_luhn_valid": "BOOLEAN", "dt": "DATE", "hour": "INTEGER",
	} {
		if types[col] != want {
			t.Errorf("column %s is %q, want %s", col, types[col], want)
		}
	}
	checkAthenaColumns(t, types)
	for _, c := range []string{"dt", "hour"} { // partition keys are not inside the files
		var inFile int
		one(t, db, fmt.Sprintf("SELECT count(*) FROM (DESCRIBE SELECT * FROM read_parquet('%s', hive_partitioning = false)) WHERE column_name = '%s'", glob, c), &inFile)
		if inFile != 0 {
			t.Errorf("column %s is inside the files", c)
		}
	}

	// Values survive: timestamps to the microsecond, typeof.
	var fetched time.Time
	var typeofTS, typeofFlow string
	one(t, db, fmt.Sprintf("SELECT fetched_at, typeof(fetched_at), typeof(month_use_flow_mb) FROM %s WHERE request_id = 'job-w:3'", src), &fetched, &typeofTS, &typeofFlow)
	if want := *result(3).FetchedAt; !fetched.Equal(want) || typeofTS != "TIMESTAMP WITH TIME ZONE" || typeofFlow != "DOUBLE" {
		t.Errorf("fetched_at %v (%s), want %v; flow %s", fetched, typeofTS, want, typeofFlow)
	}

	// Partition discovery matches the folders and stored_at.
	var parts, mismatched int
	one(t, db, fmt.Sprintf(`SELECT count(DISTINCT (dt, hour)), count(*) FILTER (WHERE dt <> CAST(timezone('UTC', stored_at) AS DATE) OR hour <> hour(timezone('UTC', stored_at))) FROM %s`, src), &parts, &mismatched)
	dirs, _ := filepath.Glob(filepath.Join(out, "dt=*", "hour=*"))
	if parts != len(dirs) || parts == 0 || mismatched != 0 {
		t.Errorf("%d partitions discovered, %d folders, %d rows in the wrong one", parts, len(dirs), mismatched)
	}

	// The DuckDB recipe, twice: the load is idempotent.
	recipe, err := os.ReadFile("sql/duckdb.sql")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(recipe), "'./simlookup-demo", "'"+filepath.ToSlash(out))
	for range 2 {
		for _, stmt := range Statements(text) {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				t.Fatalf("%s\n%v", stmt, err)
			}
		}
	}
	var loaded, cards, okCards int64
	one(t, db, "SELECT count(*) FROM simlookup_results", &loaded)
	one(t, db, "SELECT count(*) FROM simlookup_card_latest", &cards)
	one(t, db, "SELECT count(DISTINCT iccid) FROM simlookup_results WHERE status = 'ok'", &okCards)
	if loaded != int64(n) || cards != okCards || cards == 0 {
		t.Errorf("recipe: %d loaded (want %d), %d latest cards (want %d)", loaded, n, cards, okCards)
	}
	// The view the query command creates.
	if _, err := db.ExecContext(ctx, ResultsView(out)); err != nil {
		t.Fatal(err)
	}
	var viewRows int64
	one(t, db, "SELECT count(*) FROM results", &viewRows)
	if viewRows != int64(n) {
		t.Errorf("results view: %d rows", viewRows)
	}
}

func one(t *testing.T, db *sql.DB, query string, dest ...any) {
	t.Helper()
	if err := db.QueryRowContext(t.Context(), query).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkAthenaColumns: the hand-written column list of sql/athena.sql is the
// files' columns, with matching types.
func checkAthenaColumns(t *testing.T, duck map[string]string) {
	t.Helper()
	b, err := os.ReadFile("sql/athena.sql")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "simlookup_results_files (\n")
	end := strings.Index(text, "\n)\nPARTITIONED BY")
	if start < 0 || end < start {
		t.Fatal("athena.sql: column list not found")
	}
	want := map[string]string{"VARCHAR": "string", "BIGINT": "bigint", "INTEGER": "int", "DOUBLE": "double",
		"BOOLEAN": "boolean", "TIMESTAMP WITH TIME ZONE": "timestamp"}
	seen := 0
	for _, line := range strings.Split(text[start:end], "\n")[1:] {
		f := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), ","))
		if len(f) != 2 {
			t.Errorf("athena.sql: odd line %q", line)
			continue
		}
		name := strings.Trim(f[0], "`")
		seen++
		if got, ok := duck[name]; !ok || want[got] != f[1] {
			t.Errorf("athena.sql: %s %s, but the files have %q", name, f[1], got)
		}
	}
	if seen != len(duck)-2 { // all but dt and hour
		t.Errorf("athena.sql lists %d columns, the files have %d", seen, len(duck)-2)
	}
}
