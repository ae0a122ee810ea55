//go:build faults

package faults

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestZZSecurityNoSecretAnywhere runs last (its file sorts last): it searches every log line of
// every process of the suite (worker, sink, nats-server stderr) plus what
// the scenarios' scans collected, for the secret and the full appkey.
func TestZZSecurityNoSecretAnywhere(t *testing.T) {
	allLogs.Lock()
	logs := append([]string(nil), allLogs.paths...)
	allLogs.Unlock()
	for _, path := range logs {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for i, line := range bytes.Split(b, []byte("\n")) {
			if len(line) > 0 {
				secSearch("log line", fmt.Sprintf("%s:%d", filepath.Base(filepath.Dir(path))+"/"+filepath.Base(path), i+1), line)
			}
		}
	}
	sec.Lock()
	defer sec.Unlock()
	if sec.items["log line"] == 0 || sec.items["result event"] == 0 {
		t.Fatalf("security scan searched nothing: %v (run the whole suite)", sec.items)
	}
	summaryNote(fmt.Sprintf("Security: searched %d log lines, %d result events, %d dead letters, %d Parquet rows in %d output files, %d metrics/health pages (%.1f MB) for the secret and the full appkey: %d found.",
		sec.items["log line"], sec.items["result event"], sec.items["dead letter"], sec.items["parquet row"], sec.items["output file"], sec.items["http page"], float64(sec.bytes)/1e6, len(sec.findings)))
	for _, f := range sec.findings {
		t.Error(f)
	}
}
