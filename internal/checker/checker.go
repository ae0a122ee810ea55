// Package checker counts, in the spirit of Jepsen's queue checker, what
// happened to every request a test or a benchmark put into simlookup: for
// each request the requests stream accepted (the publisher's PubAcks), the
// result events stored in SIMLOOKUP_RESULTS, the dead letters in
// SIMLOOKUP_DLQ and the rows in the sink's Parquet files.
//
// Check is pure: it takes what was collected and returns a Report. The
// collectors (ReadResults, ReadDeadLetters, ReadRows) read a real JetStream
// server and real files; they live beside Check so the fault suite and the
// benchmark count the same way.
//
// The counts, and what SPEC's guarantees require of them:
//
//   - Lost: accepted requests with neither a result event nor a dead letter.
//     Must be 0 (guarantee 1).
//   - DuplicateResults: result events beyond the first for one request id.
//     Must be 0 wherever the deduplication window covers the retry
//     (guarantee 2).
//   - DuplicateRows: rows beyond the first for one result event (the row's
//     stream_seq). Must be 0 (guarantee 2).
//   - MissingRows: result events without a row. Must be 0 once the sink has
//     caught up.
//   - Unexpected: result events or dead letters for request ids that were
//     never accepted, and rows for result events that are not in the stream.
package checker

import (
	"fmt"
	"slices"
	"strings"
)

// ResultEvent is one message of the results stream.
type ResultEvent struct {
	// Seq is the message's sequence in the results stream.
	Seq uint64
	// MsgID is its Nats-Msg-Id header ("result:<request_id>").
	MsgID string
	// RequestID and Status are decoded from the event.
	RequestID string
	Status    string
}

// DeadLetter is one message of the dead-letter stream.
type DeadLetter struct {
	Seq       uint64
	Reason    string
	RequestID string
}

// Row is the part of one Parquet row that the checker needs.
type Row struct {
	// File the row was read from.
	File string
	// RequestID is the row's request_id column.
	RequestID string
	// StreamSeq is the row's stream_seq column: the result event it copies.
	// 0 means unknown; rows are then matched by RequestID.
	StreamSeq uint64
}

// Input is everything collected for one scenario.
type Input struct {
	// Accepted are the request ids the requests stream acknowledged. An id
	// may appear more than once (a publisher retry); it counts once.
	Accepted    []string
	Results     []ResultEvent
	DeadLetters []DeadLetter
	Rows        []Row
	// RowsChecked says whether Rows were collected; if false the row counts
	// (MissingRows, DuplicateRows) are not computed.
	RowsChecked bool
}

// Report is the outcome of Check.
type Report struct {
	Accepted         int `json:"accepted"`
	Results          int `json:"results"`
	Rows             int `json:"rows"`
	DeadLetters      int `json:"dead_letters"`
	Lost             int `json:"lost"`
	DuplicateResults int `json:"duplicate_results"`
	DuplicateRows    int `json:"duplicate_rows"`
	MissingRows      int `json:"missing_rows"`
	Unexpected       int `json:"unexpected"`
	// ByStatus counts distinct requests by the status of their first result.
	ByStatus map[string]int `json:"by_status"`
	// Samples of offending ids (at most SampleSize of each), for messages.
	LostIDs          []string `json:"lost_ids,omitempty"`
	DuplicateIDs     []string `json:"duplicate_ids,omitempty"`
	DuplicateRowSeqs []uint64 `json:"duplicate_row_seqs,omitempty"`
	MissingRowIDs    []string `json:"missing_row_ids,omitempty"`
	UnexpectedIDs    []string `json:"unexpected_ids,omitempty"`
	RowsChecked      bool     `json:"rows_checked"`
}

// SampleSize bounds the id samples kept in a Report.
const SampleSize = 10

func addSample[T any](s *[]T, v T) {
	if len(*s) < SampleSize {
		*s = append(*s, v)
	}
}

// Check counts in as the package doc describes. It does not modify in.
func Check(in Input) Report {
	r := Report{ByStatus: map[string]int{}, RowsChecked: in.RowsChecked}

	accepted := make(map[string]bool, len(in.Accepted))
	for _, id := range in.Accepted {
		if !accepted[id] {
			accepted[id] = true
			r.Accepted++
		}
	}

	r.Results = len(in.Results)
	resultsByID := make(map[string]int, len(in.Results))
	bySeq := make(map[uint64]ResultEvent, len(in.Results))
	for _, ev := range in.Results {
		bySeq[ev.Seq] = ev
		resultsByID[ev.RequestID]++
		if resultsByID[ev.RequestID] == 1 {
			r.ByStatus[ev.Status]++
		} else {
			r.DuplicateResults++
			addSample(&r.DuplicateIDs, ev.RequestID)
		}
		if !accepted[ev.RequestID] {
			r.Unexpected++
			addSample(&r.UnexpectedIDs, ev.RequestID)
		}
	}

	r.DeadLetters = len(in.DeadLetters)
	dead := make(map[string]bool, len(in.DeadLetters))
	for _, d := range in.DeadLetters {
		dead[d.RequestID] = true
		if !accepted[d.RequestID] {
			r.Unexpected++
			addSample(&r.UnexpectedIDs, d.RequestID)
		}
	}

	for _, id := range sortedKeys(accepted) {
		if resultsByID[id] == 0 && !dead[id] {
			r.Lost++
			addSample(&r.LostIDs, id)
		}
	}

	if in.RowsChecked {
		r.Rows = len(in.Rows)
		rowsBySeq := make(map[uint64]int, len(in.Rows))
		rowsByID := make(map[string]int) // rows without a stream_seq
		for _, row := range in.Rows {
			if row.StreamSeq == 0 {
				rowsByID[row.RequestID]++
				if rowsByID[row.RequestID] > resultsByID[row.RequestID] {
					if resultsByID[row.RequestID] == 0 {
						r.Unexpected++
						addSample(&r.UnexpectedIDs, row.RequestID)
					} else {
						r.DuplicateRows++
					}
				}
				continue
			}
			rowsBySeq[row.StreamSeq]++
			ev, ok := bySeq[row.StreamSeq]
			switch {
			case !ok || ev.RequestID != row.RequestID:
				r.Unexpected++
				addSample(&r.UnexpectedIDs, row.RequestID)
			case rowsBySeq[row.StreamSeq] > 1:
				r.DuplicateRows++
				addSample(&r.DuplicateRowSeqs, row.StreamSeq)
			}
		}
		for _, ev := range in.Results {
			if rowsBySeq[ev.Seq] == 0 {
				if rowsByID[ev.RequestID] > 0 {
					rowsByID[ev.RequestID]--
					continue
				}
				r.MissingRows++
				addSample(&r.MissingRowIDs, ev.RequestID)
			}
		}
	}
	return r
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Expect says which counts a scenario allows to be non-zero.
type Expect struct {
	// AllowDuplicateResults: the retry fell outside the deduplication window
	// (or a reused request id was published on purpose).
	AllowDuplicateResults bool
	// AllowMissingRows: the sink was not run, or not waited for.
	AllowMissingRows bool
	// AllowDeadLetters: the scenario forces requests past the delivery limit.
	AllowDeadLetters bool
}

// Violations lists, in words, every count that breaks the guarantees under
// e; empty means the scenario passed.
func (r Report) Violations(e Expect) []string {
	var v []string
	if r.Lost > 0 {
		v = append(v, fmt.Sprintf("lost %d (e.g. %s)", r.Lost, strings.Join(r.LostIDs, ", ")))
	}
	if r.DuplicateResults > 0 && !e.AllowDuplicateResults {
		v = append(v, fmt.Sprintf("duplicate result events %d (e.g. %s)", r.DuplicateResults, strings.Join(r.DuplicateIDs, ", ")))
	}
	if r.RowsChecked && r.DuplicateRows > 0 {
		v = append(v, fmt.Sprintf("duplicate rows %d (e.g. stream seqs %v)", r.DuplicateRows, r.DuplicateRowSeqs))
	}
	if r.RowsChecked && r.MissingRows > 0 && !e.AllowMissingRows {
		v = append(v, fmt.Sprintf("result events without a row %d (e.g. %s)", r.MissingRows, strings.Join(r.MissingRowIDs, ", ")))
	}
	if r.Unexpected > 0 {
		v = append(v, fmt.Sprintf("unexpected %d (e.g. %s)", r.Unexpected, strings.Join(r.UnexpectedIDs, ", ")))
	}
	if r.DeadLetters > 0 && !e.AllowDeadLetters {
		v = append(v, fmt.Sprintf("dead letters %d", r.DeadLetters))
	}
	return v
}

// Complete reports whether every accepted request has a result (or a dead
// letter) and, if rows are checked, every result a row: the condition a
// scenario waits for before it checks.
func (r Report) Complete() bool {
	if r.Lost > 0 {
		return false
	}
	return !r.RowsChecked || r.MissingRows == 0
}
