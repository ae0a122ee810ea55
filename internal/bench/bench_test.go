package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunCeilingsOnly(t *testing.T) {
	jsonPath := filepath.Join(t.TempDir(), "out.json")
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := Run(ctx, Config{Count: 500, Concurrency: 8, JSONPath: jsonPath, Skip: []string{"e2e", "quota", "latency"}}, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"raw concurrent HTTP", "raw JetStream", "raw Parquet"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Ceilings == nil || r.Ceilings.HTTP <= 0 || r.Ceilings.JetStream <= 0 || r.Ceilings.Parquet <= 0 || r.Ceilings.Slowest == "" {
		t.Fatalf("ceilings = %+v", r.Ceilings)
	}
	if r.Machine.Cores <= 0 || r.Count != 500 {
		t.Fatalf("report = %+v", r)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, c := range []Config{{Count: 10}, {Rate: -1}, {Duration: time.Second}, {Burst: -2}} {
		if err := Run(context.Background(), c, &bytes.Buffer{}); !errors.Is(err, ErrConfig) {
			t.Errorf("Run(%+v) = %v, want ErrConfig", c, err)
		}
	}
}
