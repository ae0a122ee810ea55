package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/sink"
)

func TestQueryDemoLayout(t *testing.T) {
	out := filepath.Join(t.TempDir(), "simlookup-demo")
	stored := time.Date(2026, 12, 3, 22, 10, 0, 0, time.UTC)
	dir := filepath.Join(out, filepath.FromSlash(sink.PartitionOf(stored)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var rows []sink.Row
	for i := range 5 {
		iccid := fmt.Sprintf("8986000000000000000%d", i%2)
		flow := float64(i)
		r := schemas.Result{SchemaVersion: 1, RequestID: fmt.Sprint("r", i), ICCID: iccid, Status: schemas.StatusOK,
			RequestedAt: stored, CompletedAt: stored, FetchedAt: &stored, Worker: "w",
			Card: &schemas.Card{ICCID: &iccid, MonthUseFlowMB: &flow}}
		row, err := sink.RowFromResult(&r, uint64(i+1), stored)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row)
	}
	if err := sink.WriteFile(filepath.Join(dir, sink.FileName("1", 1, 5)), rows, sink.WriterConfig{}, sink.FileMeta{}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := run(t.Context(), []string{"-out", out}, &buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "rows") || !strings.Contains(buf.String(), "89860000000000000001") {
		t.Fatalf("summary:\n%s", buf.String())
	}
	buf.Reset()
	if err := run(t.Context(), []string{"-out", out, "-f", "../../sql/duckdb.sql"}, &buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "ok") {
		t.Fatalf("recipe output:\n%s", buf.String())
	}
	buf.Reset()
	if err := run(t.Context(), []string{"-out", out, "SELECT count(*) AS n FROM results"}, &buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "5") {
		t.Fatalf("query output:\n%s", buf.String())
	}
}
