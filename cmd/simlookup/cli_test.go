package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the concurrent writes of loggers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type result struct {
	code           int
	stdout, stderr string
}

// cmdRun is one in-process invocation of the CLI.
type cmdRun struct {
	env   map[string]string
	stdin io.Reader
	ctx   context.Context
	// stdout, if set, also receives the command's output as it is written.
	stdout *syncBuffer
}

func (c cmdRun) run(t *testing.T, args ...string) result {
	t.Helper()
	ctx := c.ctx
	if ctx == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(t.Context(), 50*time.Second)
		defer cancel()
	}
	stdin := c.stdin
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var stdout, stderr syncBuffer
	var out io.Writer = &stdout
	if c.stdout != nil {
		out = io.MultiWriter(&stdout, c.stdout)
	}
	getenv := func(k string) string { return c.env[k] }
	code := run(ctx, args, getenv, stdin, out, &stderr)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// runCLI runs the CLI with no environment and empty stdin.
func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	return cmdRun{}.run(t, args...)
}

func wantCode(t *testing.T, r result, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
}

func TestNoArgsPrintsHelpAndExits2(t *testing.T) {
	t.Parallel()
	r := runCLI(t)
	wantCode(t, r, exitUsage)
	if !strings.Contains(r.stdout, "Commands:") {
		t.Fatalf("no help on stdout:\n%s", r.stdout)
	}
}

func TestHelpExits0(t *testing.T) {
	t.Parallel()
	r := runCLI(t, "--help")
	wantCode(t, r, exitOK)
	for _, s := range []string{"version", "SIMLOOKUP_LOG_LEVEL", "Exit codes"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("help lacks %q", s)
		}
	}
}

func TestUnknownCommandAndFlagExit2(t *testing.T) {
	t.Parallel()
	wantCode(t, runCLI(t, "nope"), exitUsage)
	r := runCLI(t, "version", "--nope")
	wantCode(t, r, exitUsage)
	if !strings.Contains(r.stderr, "--nope") {
		t.Fatalf("stderr does not name the flag: %s", r.stderr)
	}
}

func TestEnvironmentSetsFlagsAndFlagsWin(t *testing.T) {
	t.Parallel()
	bad := cmdRun{env: map[string]string{"SIMLOOKUP_LOG_LEVEL": "loud"}}
	wantCode(t, bad.run(t, "version"), exitUsage)
	// the flag wins over the bad environment value
	wantCode(t, bad.run(t, "version", "--log-level", "debug"), exitOK)
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := runCLI(t, "version")
	wantCode(t, r, exitOK)
	if !strings.HasPrefix(r.stdout, "simlookup ") || !strings.Contains(r.stdout, "go1.") {
		t.Fatalf("version output %q", r.stdout)
	}
	r = runCLI(t, "version", "--json")
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, `"go":"go1.`) {
		t.Fatalf("version --json output %q", r.stdout)
	}
}

func TestFlagRef(t *testing.T) {
	t.Parallel()
	if got := flagRef("nats-url"); got != "--nats-url (SIMLOOKUP_NATS_URL)" {
		t.Fatalf("flagRef = %q", got)
	}
}

// TestParseErrorsAreWordedLikeRefusals: kong's value errors carry the same
// "simlookup <command>: --flag ..." prefix as our own refusals, name the
// variable when the value came from the environment, and exit 2.
func TestParseErrorsAreWordedLikeRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"worker", "--rate", "abc"}, `simlookup worker: --rate: expected a number, got "abc"` + "\n"},
		{map[string]string{"SIMLOOKUP_RATE": "abc"}, []string{"worker"}, `simlookup worker: --rate (from SIMLOOKUP_RATE): expected a number, got "abc"` + "\n"},
		{nil, []string{"worker", "--burst", "x"}, `simlookup worker: --burst: expected a whole number, got "x"` + "\n"},
		{map[string]string{"SIMLOOKUP_API_TIMEOUT": "5"}, []string{"worker"}, `simlookup worker: --api-timeout (from SIMLOOKUP_API_TIMEOUT): expected a duration such as 500ms, 30s or 5m, got "5"` + "\n"},
		{nil, []string{"sink", "--limiter", "x"}, "simlookup sink: unknown flag --limiter"},
		{map[string]string{"SIMLOOKUP_LIMITER": "foo"}, []string{"worker"}, `simlookup worker: --limiter (from SIMLOOKUP_LIMITER): expected one of "fleet","local", got "foo"` + "\n"},
		{nil, []string{"worker", "--limiter", "foo"}, `simlookup worker: --limiter: expected one of "fleet","local", got "foo"` + "\n"},
		{map[string]string{"SIMLOOKUP_NO_PROVISION": "maybe"}, []string{"worker"}, `simlookup worker: --no-provision (from SIMLOOKUP_NO_PROVISION): expected true or false, got "maybe"` + "\n"},
		{nil, []string{"nope"}, "simlookup: unexpected argument nope\n"},
		{nil, []string{"results", "--job-id"}, "simlookup results: --job-id: needs a value\n"},
		// our own validation, for comparison
		{nil, []string{"worker", "--rate=-1"}, "simlookup worker: --rate (SIMLOOKUP_RATE) is -1"},
		{nil, []string{"worker", "--quota-fallback-rate", "-1"}, `simlookup worker: --quota-fallback-rate: write a negative value with "=": --quota-fallback-rate=-1` + "\n"},
	} {
		r := cmdRun{env: tc.env}.run(t, tc.args...)
		wantCode(t, r, exitUsage)
		if !strings.HasPrefix(r.stderr, tc.want) {
			t.Errorf("%v %v: stderr\n%s\nwant it to start with\n%s", tc.env, tc.args, r.stderr, tc.want)
		}
		if !strings.Contains(r.stderr, "--help\" for usage") {
			t.Errorf("%v: no usage hint in %q", tc.args, r.stderr)
		}
	}
}
