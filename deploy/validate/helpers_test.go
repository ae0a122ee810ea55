package validate

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the generated files (deploy/nats/*.json, deploy/prometheus/simlookup.rules.yml)")

// repoRoot is the main module's directory (two levels up).
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	root, err := filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root %s: %v", root, err)
	}
	return root
}

func readFile(t testing.TB, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeOrCompare writes want to rel under -update, else fails when the file differs.
func writeOrCompare(t *testing.T, rel string, want []byte) {
	t.Helper()
	path := filepath.Join(repoRoot(t), rel)
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (create it with go test -run %s -update)", err, t.Name())
	}
	if !bytes.Equal(have, want) {
		t.Errorf("%s is out of date; regenerate it with `go test -run %s -update` in deploy/validate.\nwant:\n%s", rel, t.Name(), want)
	}
}

// splitYAML splits a multi-document YAML file into its non-empty documents.
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

func stripComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The simlookup binary, built once per test run from the main module.
var (
	cliOnce sync.Once
	cliPath string
	cliErr  error
)

func simlookupBinary(t testing.TB) string {
	t.Helper()
	root := repoRoot(t)
	cliOnce.Do(func() {
		dir, err := os.MkdirTemp("", "simlookup-validate-")
		if err != nil {
			cliErr = err
			return
		}
		cliPath = filepath.Join(dir, "simlookup")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", cliPath, "./cmd/simlookup")
		cmd.Dir = root // the main module: reuses what its go vet / go test compiled
		if out, err := cmd.CombinedOutput(); err != nil {
			cliErr = fmt.Errorf("go build ./cmd/simlookup: %v\n%s", err, out)
		}
	})
	if cliErr != nil {
		t.Fatal(cliErr)
	}
	return cliPath
}

// runCLI runs the simlookup binary with a clean environment.
func runCLI(t testing.TB, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runCLIEnv(t, nil, args...)
}

// runCLIEnv runs the simlookup binary with only env (plus PATH and HOME).
func runCLIEnv(t testing.TB, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin := simlookupBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("simlookup %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

// Variables that are read from the environment only (never flags).
var envOnly = map[string]bool{
	"SIMLOOKUP_SECRET":        true,
	"SIMLOOKUP_NATS_PASSWORD": true,
	"SIMLOOKUP_NATS_TOKEN":    true,
}

var (
	helpMu    sync.Mutex
	helpCache = map[string]map[string]bool{}
)

// commandEnv returns the SIMLOOKUP_* variables simlookup <command> reads,
// from its --help. It skips the test if the command does not exist yet.
func commandEnv(t *testing.T, command string) map[string]bool {
	t.Helper()
	helpMu.Lock()
	defer helpMu.Unlock()
	if vars, ok := helpCache[command]; ok {
		return vars
	}
	out, errOut, code := runCLI(t, command, "--help")
	if code != 0 {
		t.Skipf("simlookup %s --help exits %d (command not there yet?): %s", command, code, errOut)
	}
	vars := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$(SIMLOOKUP_[A-Z0-9_]+)`).FindAllStringSubmatch(out, -1) {
		vars[m[1]] = true
	}
	for v := range envOnly {
		vars[v] = true
	}
	helpCache[command] = vars
	return vars
}

// checkEnv fails for every SIMLOOKUP_* variable in env that command does not read.
func checkEnv(t *testing.T, where, command string, env []string) {
	t.Helper()
	known := commandEnv(t, command)
	for _, name := range env {
		if strings.HasPrefix(name, "SIMLOOKUP_") && !known[name] {
			t.Errorf("%s: simlookup %s does not read %s (not in its --help)", where, command, name)
		}
	}
}

// secretLike reports whether a variable name suggests a secret value.
func secretLike(name string) bool {
	n := strings.ToUpper(name)
	if strings.HasSuffix(n, "_FILE") || strings.HasSuffix(n, "_CREDS") || strings.HasSuffix(n, "_NKEY") {
		return false // a path to a secret, not the secret
	}
	for _, w := range []string{"SECRET", "PASSWORD", "TOKEN", "PRIVATE"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// TestMain removes the simlookup binary built for the tests.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if cliPath != "" {
		os.RemoveAll(filepath.Dir(cliPath))
	}
	os.Exit(code)
}
