package checker

import (
	"reflect"
	"testing"
)

func ev(seq uint64, id, status string) ResultEvent {
	return ResultEvent{Seq: seq, MsgID: "result:" + id, RequestID: id, Status: status}
}

func row(seq uint64, id string) Row { return Row{File: "f.parquet", RequestID: id, StreamSeq: seq} }

func TestCheck(t *testing.T) {
	type counts struct {
		Accepted, Results, Rows, DeadLetters, Lost, DuplicateResults, DuplicateRows, MissingRows, Unexpected int
	}
	tests := []struct {
		name string
		in   Input
		want counts
		ok   bool // Violations(Expect{}) is empty
	}{
		{
			name: "empty",
			in:   Input{RowsChecked: true},
			ok:   true,
		},
		{
			name: "all good",
			in: Input{
				Accepted:    []string{"a", "b", "c"},
				Results:     []ResultEvent{ev(1, "a", "ok"), ev(2, "b", "failed"), ev(3, "c", "invalid")},
				Rows:        []Row{row(1, "a"), row(2, "b"), row(3, "c")},
				RowsChecked: true,
			},
			want: counts{Accepted: 3, Results: 3, Rows: 3},
			ok:   true,
		},
		{
			name: "publisher retry counts once",
			in: Input{
				Accepted:    []string{"a", "a", "b"},
				Results:     []ResultEvent{ev(1, "a", "ok"), ev(2, "b", "ok")},
				Rows:        []Row{row(1, "a"), row(2, "b")},
				RowsChecked: true,
			},
			want: counts{Accepted: 2, Results: 2, Rows: 2},
			ok:   true,
		},
		{
			name: "lost request",
			in: Input{
				Accepted:    []string{"a", "b"},
				Results:     []ResultEvent{ev(1, "a", "ok")},
				Rows:        []Row{row(1, "a")},
				RowsChecked: true,
			},
			want: counts{Accepted: 2, Results: 1, Rows: 1, Lost: 1},
		},
		{
			name: "dead letter is not lost but is reported",
			in: Input{
				Accepted:    []string{"a", "b"},
				Results:     []ResultEvent{ev(1, "a", "ok")},
				DeadLetters: []DeadLetter{{Seq: 1, Reason: "max_deliveries", RequestID: "b"}},
				Rows:        []Row{row(1, "a")},
				RowsChecked: true,
			},
			want: counts{Accepted: 2, Results: 1, Rows: 1, DeadLetters: 1},
		},
		{
			name: "duplicate result event gets its own row",
			in: Input{
				Accepted:    []string{"a"},
				Results:     []ResultEvent{ev(1, "a", "ok"), ev(2, "a", "ok")},
				Rows:        []Row{row(1, "a"), row(2, "a")},
				RowsChecked: true,
			},
			want: counts{Accepted: 1, Results: 2, Rows: 2, DuplicateResults: 1},
		},
		{
			name: "duplicate row of one event",
			in: Input{
				Accepted:    []string{"a", "b"},
				Results:     []ResultEvent{ev(1, "a", "ok"), ev(2, "b", "ok")},
				Rows:        []Row{row(1, "a"), row(2, "b"), row(2, "b")},
				RowsChecked: true,
			},
			want: counts{Accepted: 2, Results: 2, Rows: 3, DuplicateRows: 1},
		},
		{
			name: "missing row",
			in: Input{
				Accepted:    []string{"a", "b"},
				Results:     []ResultEvent{ev(1, "a", "ok"), ev(2, "b", "ok")},
				Rows:        []Row{row(1, "a")},
				RowsChecked: true,
			},
			want: counts{Accepted: 2, Results: 2, Rows: 1, MissingRows: 1},
		},
		{
			name: "rows not checked",
			in: Input{
				Accepted: []string{"a"},
				Results:  []ResultEvent{ev(1, "a", "ok")},
			},
			want: counts{Accepted: 1, Results: 1},
			ok:   true,
		},
		{
			name: "result for a request never accepted",
			in: Input{
				Accepted:    []string{"a"},
				Results:     []ResultEvent{ev(1, "a", "ok"), ev(2, "zz", "ok")},
				Rows:        []Row{row(1, "a"), row(2, "zz")},
				RowsChecked: true,
			},
			want: counts{Accepted: 1, Results: 2, Rows: 2, Unexpected: 1},
		},
		{
			name: "row whose stream seq is not in the stream",
			in: Input{
				Accepted:    []string{"a"},
				Results:     []ResultEvent{ev(1, "a", "ok")},
				Rows:        []Row{row(1, "a"), row(7, "a")},
				RowsChecked: true,
			},
			want: counts{Accepted: 1, Results: 1, Rows: 2, Unexpected: 1},
		},
		{
			name: "row without stream seq matched by request id",
			in: Input{
				Accepted:    []string{"a", "b"},
				Results:     []ResultEvent{ev(1, "a", "ok"), ev(2, "b", "ok")},
				Rows:        []Row{{RequestID: "a"}, {RequestID: "b"}, {RequestID: "b"}},
				RowsChecked: true,
			},
			want: counts{Accepted: 2, Results: 2, Rows: 3, DuplicateRows: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Check(tt.in)
			got := counts{r.Accepted, r.Results, r.Rows, r.DeadLetters, r.Lost, r.DuplicateResults, r.DuplicateRows, r.MissingRows, r.Unexpected}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("counts = %+v\nwant     %+v", got, tt.want)
			}
			v := r.Violations(Expect{})
			if (len(v) == 0) != tt.ok {
				t.Errorf("violations = %q, want ok=%v", v, tt.ok)
			}
		})
	}
}

func TestReportSamplesAndStatus(t *testing.T) {
	var in Input
	for i := range 30 {
		in.Accepted = append(in.Accepted, string(rune('A'+i)))
	}
	in.Results = []ResultEvent{ev(1, "A", "ok"), ev(2, "B", "failed"), ev(3, "B", "ok")}
	r := Check(in)
	if r.Lost != 28 || len(r.LostIDs) != SampleSize {
		t.Fatalf("lost = %d, samples %d", r.Lost, len(r.LostIDs))
	}
	if r.ByStatus["ok"] != 1 || r.ByStatus["failed"] != 1 {
		t.Fatalf("by status = %v (the first result of a request decides)", r.ByStatus)
	}
	if r.Complete() {
		t.Fatal("complete with lost requests")
	}
	if v := r.Violations(Expect{AllowDuplicateResults: true}); len(v) != 1 {
		t.Fatalf("violations = %q, want only the lost ones", v)
	}
}

func TestExpectAllows(t *testing.T) {
	r := Check(Input{
		Accepted:    []string{"a", "b"},
		Results:     []ResultEvent{ev(1, "a", "ok"), ev(2, "a", "ok")},
		DeadLetters: []DeadLetter{{RequestID: "b"}},
		RowsChecked: true,
	})
	if v := r.Violations(Expect{AllowDuplicateResults: true, AllowMissingRows: true, AllowDeadLetters: true}); len(v) != 0 {
		t.Fatalf("violations = %q", v)
	}
	if v := r.Violations(Expect{}); len(v) != 3 {
		t.Fatalf("violations = %q, want duplicates, missing rows and dead letters", v)
	}
}
