// Package warehouse holds the recipes for loading simlookup's Parquet files
// into a warehouse (README.md, sql/) and the helpers of cmd/query. Its test
// runs the real sink on generated results and checks the files with DuckDB.
package warehouse

import (
	"path/filepath"
	"strings"
)

// ResultsView creates the view results over every final file under out,
// one row per request_id (the latest stored), with dt DATE and hour INTEGER.
func ResultsView(out string) string {
	glob := strings.ReplaceAll(filepath.ToSlash(filepath.Join(out, "**", "*.parquet")), "'", "''")
	return `CREATE OR REPLACE VIEW results AS
SELECT * FROM read_parquet('` + glob + `', hive_partitioning = true, hive_types = {'dt': DATE, 'hour': INTEGER})
QUALIFY row_number() OVER (PARTITION BY request_id ORDER BY stored_at DESC, stream_seq DESC) = 1`
}

// Statements splits SQL text on semicolons at the end of a line, dropping
// comment-only pieces.
func Statements(text string) []string {
	var out []string
	for _, s := range strings.Split(text, ";\n") {
		s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), ";"))
		body := s
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "--") {
				body = strings.Replace(body, l, "", 1)
			}
		}
		if strings.TrimSpace(body) != "" {
			out = append(out, s)
		}
	}
	return out
}
