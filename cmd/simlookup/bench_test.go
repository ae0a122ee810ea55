package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBenchEndToEndOnly(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	js := filepath.Join(t.TempDir(), "bench.json")
	r := runCLI(t, "bench", "--exe", exe, "--count", "200", "--duration", "2s", "--skip", "ceilings,quota,latency", "--json", js)
	wantCode(t, r, exitOK)
	if r.stdout == "" {
		t.Fatal("no table")
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report: %v", err)
	}
}

func TestBenchRefusals(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--count", "10"}, "--count"},
		{[]string{"bench", "--duration", "1s"}, "--duration"},
		{[]string{"bench", "--skip", "everything"}, "--skip"},
	} {
		r := runCLI(t, tt.args...)
		wantCode(t, r, exitUsage)
		if !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: stderr %q", tt.args, r.stderr)
		}
	}
}
