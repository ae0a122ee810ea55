package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestDemoRunsTwiceIntoTheSameFolder(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "demo-out")
	var before []string
	for run := range 2 {
		r := runCLI(t, "demo", "--count", "120", "--rate", "150", "--out", out, "--seed", strconv.Itoa(run+1))
		wantCode(t, r, exitOK)
		for _, s := range []string{"120 requests, 120 results", "ok ", "failed ", "invalid ", "vendor calls",
			"(bound: rate + burst = 160)", "duckdb -c", "read_parquet(", "hive_types={'dt': DATE, 'hour': INTEGER}",
			"go -C deploy/warehouse run ./cmd/query -out " + out} {
			if !strings.Contains(r.stdout, s) {
				t.Fatalf("run %d: summary lacks %q:\n%s", run+1, s, r.stdout)
			}
		}
		// the counts add up, and there are invalid and not-found results
		n := func(label string) int {
			m := regexp.MustCompile(`(?m)^  ` + label + ` +(\d+)$`).FindStringSubmatch(r.stdout)
			if m == nil {
				t.Fatalf("no %s count in:\n%s", label, r.stdout)
			}
			v, _ := strconv.Atoi(m[1])
			return v
		}
		ok, failed, invalid := n("ok"), n("failed"), n("invalid")
		if ok+failed+invalid != 120 || invalid == 0 || failed == 0 || ok == 0 {
			t.Fatalf("ok %d failed %d invalid %d", ok, failed, invalid)
		}
		if !strings.Contains(r.stdout, "card not found") {
			t.Fatalf("no not-found results:\n%s", r.stdout)
		}
		files := parquetFiles(t, out)
		m := regexp.MustCompile(`this run wrote (\d+) file\(s\) \((\d+) rows\); the folder now holds (\d+) file\(s\) \((\d+) rows\) from (\d+) run\(s\)`).FindStringSubmatch(r.stdout)
		want := []string{strconv.Itoa(len(files) - len(before)), "120", strconv.Itoa(len(files)), strconv.Itoa(120 * (run + 1)), strconv.Itoa(run + 1)}
		if m == nil || !slices.Equal(m[1:], want) {
			t.Fatalf("run %d: Parquet summary %q, want %q:\n%s", run+1, m, want, r.stdout)
		}
		if len(files) <= len(before) {
			t.Fatalf("run %d: %d files, had %d", run+1, len(files), len(before))
		}
		for _, f := range files {
			if !strings.Contains(r.stdout, filepath.Base(f)) && !contains(before, f) {
				t.Errorf("run %d: file %s not in the summary", run+1, f)
			}
		}
		before = files
	}
	// no temporary files left, no lock held (the second run could start)
	_ = filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.Contains(filepath.Base(p), ".tmp") {
			t.Errorf("leftover %s", p)
		}
		return nil
	})
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func TestDemoRefusals(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "f", "x")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"demo", "--count", "0"}, "--count"},
		{[]string{"demo", "--rate", "0"}, "--rate"},
		{[]string{"demo", "--workers", "0"}, "--workers"},
		{[]string{"demo", "--out", file}, "is a file"},
	} {
		r := runCLI(t, tt.args...)
		wantCode(t, r, exitUsage)
		if !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: stderr %q", tt.args, r.stderr)
		}
	}
}

func TestSampleICCIDs(t *testing.T) {
	t.Parallel()
	in := sampleICCIDs(1000, 1)
	invalid, notFound := 0, 0
	seen := map[string]bool{}
	for _, s := range in {
		if !iccidPattern.MatchString(s.Value) {
			invalid++
		} else if strings.HasSuffix(s.Value, "404") {
			notFound++
		}
		seen[s.Value] = true
	}
	if invalid < 5 || invalid > 20 || notFound < 20 || notFound > 60 || len(seen) < 990 {
		t.Fatalf("invalid %d, not found %d, distinct %d", invalid, notFound, len(seen))
	}
	if luhnDigit("7992739871") != "3" {
		t.Fatal("luhn")
	}
	if a, b := sampleICCIDs(50, 7), sampleICCIDs(50, 7); a[10] != b[10] {
		t.Fatal("not deterministic")
	}
}

// TestDemoQueryHint: the cmd/query command runs in deploy/warehouse (go -C),
// so the folder is passed as "$PWD/<dir>" or an absolute path.
func TestDemoQueryHint(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	h := demoQueryHint(filepath.Join(dir, "simlookup-demo"))
	for _, s := range []string{
		`read_parquet('simlookup-demo/**/*.parquet', hive_partitioning=true, hive_types={'dt': DATE, 'hour': INTEGER})`,
		`go -C deploy/warehouse run ./cmd/query -out "$PWD/simlookup-demo"`,
	} {
		if !strings.Contains(h, s) {
			t.Errorf("hint lacks %s:\n%s", s, h)
		}
	}
	if got := queryOutArg("/data/it's here"); got != `'/data/it'\''s here'` {
		t.Errorf("queryOutArg = %s", got)
	}
}
