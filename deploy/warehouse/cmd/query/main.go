// Command query runs SQL on simlookup's Parquet output with an embedded
// DuckDB, for those without the duckdb CLI:
//
//	go -C deploy/warehouse run ./cmd/query -out "$PWD/simlookup-demo"
//	go -C deploy/warehouse run ./cmd/query -out "$PWD/simlookup-demo" "SELECT status, count(*) FROM results GROUP BY ALL"
//	go -C deploy/warehouse run ./cmd/query -out "$PWD/simlookup-demo" -f sql/duckdb.sql
//
// A view named results (every final file, deduplicated on request_id, with
// the dt and hour partition columns) is created first. Without SQL it prints
// a summary and the latest state of a few cards.
package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/simlookup/simlookup/deploy/warehouse"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "query:", err)
		os.Exit(1)
	}
}

const summary = `
SELECT count(*) AS rows, count(DISTINCT request_id) AS requests, count(DISTINCT iccid) AS cards,
       count(*) FILTER (WHERE status = 'ok') AS ok, count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'invalid') AS invalid, min(stored_at) AS first_stored, max(stored_at) AS last_stored
FROM results;
SELECT dt, hour, count(*) AS rows FROM results GROUP BY ALL ORDER BY ALL;
SELECT iccid, card_status, month_use_flow_mb, month_remain_flow_mb, package_end_date, fetched_at
FROM results WHERE status = 'ok'
QUALIFY row_number() OVER (PARTITION BY iccid ORDER BY fetched_at DESC, stored_at DESC) = 1
ORDER BY iccid LIMIT 10;
`

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	out := fs.String("out", "simlookup-demo", "the sink's output folder")
	file := fs.String("f", "", "read SQL from this file (statements separated by ;)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	abs, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("output folder: %w (run `go run ./cmd/simlookup demo` at the repository root first, or pass -out)", err)
	}
	text := strings.Join(fs.Args(), " ")
	if *file != "" {
		b, err := os.ReadFile(*file)
		if err != nil {
			return err
		}
		text = string(b)
	}
	if strings.TrimSpace(text) == "" {
		text = summary
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, warehouse.ResultsView(abs)); err != nil {
		return fmt.Errorf("create view: %w", err)
	}
	for _, stmt := range warehouse.Statements(strings.ReplaceAll(text, "'./simlookup-demo", "'"+abs)) {
		if err := printQuery(ctx, db, stmt, stdout); err != nil {
			return fmt.Errorf("%s: %w", firstLine(stmt), err)
		}
	}
	return nil
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
			return l
		}
	}
	return s
}

func printQuery(ctx context.Context, db *sql.DB, stmt string, w io.Writer) error {
	verb := strings.ToUpper(strings.Fields(firstLine(stmt) + " x")[0])
	switch verb {
	case "SELECT", "WITH", "FROM", "DESCRIBE", "SHOW", "SUMMARIZE", "PRAGMA", "VALUES", "TABLE":
	default:
		res, err := db.ExecContext(ctx, stmt)
		if err != nil {
			return err
		}
		n, _ := res.RowsAffected()
		fmt.Fprintf(w, "-- %s: ok (%d rows)\n\n", firstLine(stmt), n)
		return nil
	}
	rows, err := db.QueryContext(ctx, stmt)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		cells := make([]string, len(cols))
		for i, v := range vals {
			if t, ok := v.(time.Time); ok && types[i].DatabaseTypeName() == "DATE" {
				cells[i] = t.Format(time.DateOnly)
			} else if v == nil {
				cells[i] = "NULL"
			} else {
				cells[i] = fmt.Sprint(v)
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := rows.Err(); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	fmt.Fprintln(tw)
	return tw.Flush()
}
