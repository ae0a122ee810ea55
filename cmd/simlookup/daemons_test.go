package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/worker/eiot/eiottest"
)

// background runs a long-running command until stop is called; stop
// returns its result.
func background(t *testing.T, c cmdRun, args ...string) (stop func() result) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	c.ctx = ctx
	done := make(chan result, 1)
	go func() { done <- c.run(t, args...) }()
	stopped := false
	var res result
	stop = func() result {
		if !stopped {
			stopped = true
			cancel()
			select {
			case res = <-done:
			case <-time.After(40 * time.Second):
				t.Fatalf("%v did not stop within 40s", args)
			}
		}
		return res
	}
	t.Cleanup(func() { stop() })
	return stop
}

// eventually polls cond every 20ms until it holds or 30s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func httpGet(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func parquetFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".parquet") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

var testSecretEnv = map[string]string{"SIMLOOKUP_SECRET": eiottest.TestSecret}

func iccids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "8985224040001" + strconv.Itoa(1000000+i)
	}
	return out
}

func TestWorkerLooksUpAndServesHealth(t *testing.T) {
	t.Parallel()
	srv, _ := provisioned(t)
	fake, apiURL := eiottest.Start(t, eiottest.Config{})
	addr := freeAddr(t)
	stop := background(t, cmdRun{env: testSecretEnv}, "worker", "--nats-url", srv.URL(), "--api-url", apiURL,
		"--appkey", eiottest.TestAppKey, "--limiter", "local", "--rate", "0", "--http-addr", addr,
		"--requests-max-bytes", "64MiB", "--results-max-bytes", "64MiB")
	eventually(t, "worker ready", func() bool { code, _ := httpGet("http://" + addr + "/readyz"); return code == 200 })

	args := append([]string{"publish", "--nats-url", srv.URL(), "--job-id", "w"}, iccids(20)...)
	args = append(args, "89852240400010000404", "garbage")
	wantCode(t, runCLI(t, args...), exitOK)
	r := runCLI(t, "results", "--nats-url", srv.URL(), "--job-id", "w", "--wait", "--timeout", "30s")
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stdout, "job w: 22/22 results: 20 ok, 1 failed, 1 invalid") {
		t.Fatalf("summary %q", r.stdout)
	}
	if st := fake.Stats(); st.Accepted < 20 {
		t.Fatalf("fake accepted %d", st.Accepted)
	}
	code, body := httpGet("http://" + addr + "/metrics")
	if code != 200 || !strings.Contains(body, "simlookup_worker_") || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics %d:\n%.2000s", code, body)
	}
	if strings.Contains(body, eiottest.TestSecret) || strings.Contains(body, eiottest.TestAppKey) {
		t.Fatal("/metrics shows the secret or the appkey")
	}
	res := stop()
	wantCode(t, res, exitOK)
	if strings.Contains(res.stderr, eiottest.TestSecret) {
		t.Fatal("the secret was logged")
	}
	if strings.Contains(res.stderr, eiottest.TestAppKey) {
		t.Fatal("the appkey was logged in full")
	}
}

func TestWorkerWithFleetLimiterAndSecretFile(t *testing.T) {
	t.Parallel()
	srv, js := provisioned(t)
	_, apiURL := eiottest.Start(t, eiottest.Config{})
	secretFile := writeFile(t, "secret", eiottest.TestSecret+"\n")
	stop := background(t, cmdRun{}, "worker", "--nats-url", srv.URL(), "--api-url", apiURL,
		"--appkey", eiottest.TestAppKey, "--secret-file", secretFile, "--rate", "50", "--burst", "5",
		"--requests-max-bytes", "64MiB", "--results-max-bytes", "64MiB",
		"--quota-bucket", "custom_quota", "--worker-name", "worker a/1", "--quota-fallback-rate=-1",
		"--retry-initial", "50ms", "--retry-max", "1s", "--max-request-bytes", "4KiB")
	wantCode(t, runCLI(t, append([]string{"publish", "--nats-url", srv.URL(), "--job-id", "f"}, iccids(10)...)...), exitOK)
	r := runCLI(t, "results", "--nats-url", srv.URL(), "--job-id", "f", "--wait", "--timeout", "30s", "--events")
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stderr, "10/10 results: 10 ok") {
		t.Fatalf("summary %q", r.stderr)
	}
	if !strings.Contains(r.stdout, `"worker":"worker a/1"`) {
		t.Fatalf("results do not name the worker:\n%s", r.stdout)
	}
	// The fleet limiter coordinates through --quota-bucket, as a member
	// named after --worker-name (sanitized, with a random suffix).
	kv, err := js.KeyValue(t.Context(), "custom_quota")
	if err != nil {
		t.Fatalf("--quota-bucket custom_quota was not used: %v", err)
	}
	keys, err := kv.Keys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, k := range keys {
		if _, m, ok := strings.Cut(k, ".m."); ok && strings.HasPrefix(m, "worker_a_1-") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no lease of member worker_a_1-* in %q", keys)
	}
	wantCode(t, stop(), exitOK)
}

func TestQuotaMember(t *testing.T) {
	t.Parallel()
	a, b := quotaMember("host 1/worker.ä"), quotaMember("host 1/worker.ä")
	if a == b || !strings.HasPrefix(a, "host_1_worker__-") || len(a) != len("host_1_worker__-")+8 {
		t.Fatalf("quotaMember = %q, %q", a, b)
	}
	if quotaMember("") != "" {
		t.Fatal("no name must leave the limiter's default")
	}
}

func TestWorkerRefusals(t *testing.T) {
	t.Parallel()
	base := []string{"worker", "--appkey", "000001"}
	tests := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{testSecretEnv, []string{"worker"}, "--appkey (SIMLOOKUP_APPKEY) is required: the vendor appkey"},
		{nil, base, "SIMLOOKUP_SECRET"},
		{testSecretEnv, append(base, "--rate=-1"), "--rate (SIMLOOKUP_RATE)"},
		{testSecretEnv, append(base, "--rate", "0"), "--limiter (SIMLOOKUP_LIMITER) local"},
		{testSecretEnv, append(base, "--burst", "0"), "--burst (SIMLOOKUP_BURST)"},
		{testSecretEnv, append(base, "--concurrency", "0"), "--concurrency (SIMLOOKUP_CONCURRENCY)"},
		{testSecretEnv, append(base, "--ack-wait", "10ms"), "--ack-wait (SIMLOOKUP_ACK_WAIT)"},
		{testSecretEnv, append(base, "--api-url", "oapi.eiotclub.com"), "--api-url (SIMLOOKUP_API_URL)"},
		{testSecretEnv, append(base, "--vendor-zone", "Mars/Olympus"), "--vendor-zone (SIMLOOKUP_VENDOR_ZONE)"},
		{testSecretEnv, append(base, "--retryable-codes", "10003"), "10003 is in both"},
		{testSecretEnv, append(base, "--http-addr", "9090"), "--http-addr (SIMLOOKUP_HTTP_ADDR)"},
		{testSecretEnv, append(base, "--limiter", "global"), "--limiter"},
		{map[string]string{"SIMLOOKUP_SECRET": "x", "SIMLOOKUP_RATE": "fast"}, base, "SIMLOOKUP_RATE"},
		{testSecretEnv, append(base, "--retry-initial", "0s"), "--retry-initial (SIMLOOKUP_RETRY_INITIAL) is 0s"},
		{testSecretEnv, append(base, "--retry-initial", "1m", "--retry-max", "10s"), "--retry-max (SIMLOOKUP_RETRY_MAX) (10s) is below --retry-initial"},
		{testSecretEnv, append(base, "--redelivery-max", "1s"), "--redelivery-max (SIMLOOKUP_REDELIVERY_MAX) (1s) is below --redelivery-delay"},
		{testSecretEnv, append(base, "--probe-max", "10ms"), "--probe-max (SIMLOOKUP_PROBE_MAX) (10ms) is below --probe-initial"},
		{testSecretEnv, append(base, "--retry-budget", "0s"), "--retry-budget (SIMLOOKUP_RETRY_BUDGET)"},
		{testSecretEnv, append(base, "--breaker-failures", "0"), "--breaker-failures (SIMLOOKUP_BREAKER_FAILURES) is 0"},
		{testSecretEnv, append(base, "--max-replays", "0"), "--max-replays (SIMLOOKUP_MAX_REPLAYS) is 0"},
		{testSecretEnv, append(base, "--max-request-bytes", "10"), "--max-request-bytes (SIMLOOKUP_MAX_REQUEST_BYTES) is 10 bytes"},
		{testSecretEnv, append(base, "--quota-bucket", "a.b"), "--quota-bucket (SIMLOOKUP_QUOTA_BUCKET) \"a.b\""},
		{map[string]string{"SIMLOOKUP_SECRET": "x", "SIMLOOKUP_QUOTA_FALLBACK_RATE": "slow"}, base, "--quota-fallback-rate (from SIMLOOKUP_QUOTA_FALLBACK_RATE): expected a number"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[1:], " "), func(t *testing.T) {
			t.Parallel()
			r := cmdRun{env: tt.env}.run(t, tt.args...)
			wantCode(t, r, exitUsage)
			if !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("stderr %q does not mention %q", r.stderr, tt.want)
			}
		})
	}
}

func TestSinkWritesParquetAndHoldsTheFolder(t *testing.T) {
	t.Parallel()
	srv, js := provisioned(t)
	out := t.TempDir()
	for i := range 5 {
		publishResult(t, js, resultFor(i))
	}
	addr := freeAddr(t)
	stop := background(t, cmdRun{}, "sink", "--nats-url", srv.URL(), "--out", out, "--max-age", "200ms", "--http-addr", addr)
	eventually(t, "a Parquet file", func() bool { return len(parquetFiles(t, out)) > 0 })
	eventually(t, "sink ready", func() bool { code, _ := httpGet("http://" + addr + "/readyz"); return code == 200 })
	if code, body := httpGet("http://" + addr + "/metrics"); code != 200 || !strings.Contains(body, "simlookup_sink_") {
		t.Fatalf("/metrics %d", code)
	}
	// a second sink on the same folder is refused, and exits by itself even
	// with its HTTP server up (it used to wait for a signal to stop serving)
	ctx2, cancel2 := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel2()
	r := cmdRun{ctx: ctx2}.run(t, "sink", "--nats-url", srv.URL(), "--out", out, "--http-addr", freeAddr(t))
	wantCode(t, r, exitRuntime)
	if !strings.Contains(strings.ToLower(r.stderr), "lock") {
		t.Fatalf("second sink stderr %q", r.stderr)
	}
	if ctx2.Err() != nil {
		t.Fatalf("the refused sink returned only when its context ended: %v", ctx2.Err())
	}
	res := stop()
	wantCode(t, res, exitOK)
	stopping, stopped := strings.Index(res.stderr, "sink stopping"), strings.Index(res.stderr, "sink stopped (committed through seq 5)")
	if stopping < 0 || stopped < stopping {
		t.Errorf("the sink's log lacks \"sink stopping\" then \"sink stopped (committed through seq 5)\":\n%s", res.stderr)
	}
}

func resultFor(i int) schemas.Result {
	return schemas.Result{RequestID: "s:" + strconv.Itoa(i+1), JobID: strp("s"), ICCID: iccids(i + 1)[i], Status: schemas.StatusOK, Attempts: 1}
}

func TestSinkRefusals(t *testing.T) {
	t.Parallel()
	file := writeFile(t, "f", "x")
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"sink"}, "--out (SIMLOOKUP_OUT) is required"},
		{[]string{"sink", "--out", file}, "is a file"},
		{[]string{"sink", "--out", t.TempDir(), "--max-rows", "0"}, "--max-rows (SIMLOOKUP_MAX_ROWS)"},
		{[]string{"sink", "--out", t.TempDir(), "--max-bytes", "1"}, "--max-bytes (SIMLOOKUP_MAX_BYTES)"},
		{[]string{"sink", "--out", t.TempDir(), "--max-age", "1ms"}, "--max-age (SIMLOOKUP_MAX_AGE)"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, tt.args...)
			wantCode(t, r, exitUsage)
			if !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("stderr %q does not mention %q", r.stderr, tt.want)
			}
		})
	}
}

func TestRunIsWorkerAndSink(t *testing.T) {
	t.Parallel()
	srv, _ := provisioned(t)
	_, apiURL := eiottest.Start(t, eiottest.Config{})
	out := t.TempDir()
	stop := background(t, cmdRun{env: testSecretEnv}, "run", "--nats-url", srv.URL(), "--api-url", apiURL,
		"--appkey", eiottest.TestAppKey, "--limiter", "local", "--rate", "0", "--out", out, "--max-age", "200ms",
		"--requests-max-bytes", "64MiB", "--results-max-bytes", "64MiB")
	wantCode(t, runCLI(t, append([]string{"publish", "--nats-url", srv.URL(), "--job-id", "r"}, iccids(8)...)...), exitOK)
	r := runCLI(t, "results", "--nats-url", srv.URL(), "--job-id", "r", "--wait", "--timeout", "30s")
	wantCode(t, r, exitOK)
	eventually(t, "a Parquet file", func() bool { return len(parquetFiles(t, out)) > 0 })
	wantCode(t, stop(), exitOK)
	// refusals: the sink's and the worker's flags are both checked
	wantCode(t, cmdRun{env: testSecretEnv}.run(t, "run", "--appkey", "k"), exitUsage)
	wantCode(t, cmdRun{env: testSecretEnv}.run(t, "run", "--out", out), exitUsage)
}

func TestFakeAPIAcceptsSignedRequestsAndRefusesReplays(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	stop := background(t, cmdRun{env: map[string]string{"SIMLOOKUP_SECRET": "s3cret"}}, "fake-api", "--addr", addr, "--appkey", "demo-appkey", "--log-format", "json")
	url := "http://" + addr + "/api/v3/card/getCardsInfo"
	body := func() []byte {
		p := sign.Params{"appkey": "demo-appkey", "timestamp": time.Now().Unix(), "nonce": 24523, "iccid": "89852240400014306175"}
		sig, err := sign.Sign(p, sign.NewSecret("s3cret"))
		if err != nil {
			t.Fatal(err)
		}
		p["sign"] = sig
		b, _ := json.Marshal(p)
		return b
	}()
	post := func() map[string]any {
		t.Helper()
		var resp *http.Response
		eventually(t, "fake-api listening", func() bool {
			var err error
			resp, err = http.Post(url, "application/json", bytes.NewReader(body))
			return err == nil
		})
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if m := post(); m["code"] != "200" || m["data"] == nil {
		t.Fatalf("first answer %v", m)
	}
	if m := post(); m["code"] != eiottest.CodeReplay {
		t.Fatalf("replayed request answered %v", m)
	}
	if code, stats := httpGet("http://" + addr + "/stats"); code != 200 || !strings.Contains(stats, `"replay": 1`) {
		t.Fatalf("/stats %d %s", code, stats)
	}
	r := stop()
	wantCode(t, r, exitOK)
	if !strings.Contains(r.stderr, "replay") || strings.Contains(r.stderr, "s3cret") {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
}

func TestFakeAPIRefusals(t *testing.T) {
	t.Parallel()
	env := map[string]string{"SIMLOOKUP_SECRET": "x"}
	tests := []struct {
		env  map[string]string
		args []string
		want string
	}{
		{env, []string{"fake-api"}, "--appkey (SIMLOOKUP_APPKEY) is required"},
		{nil, []string{"fake-api", "--appkey", "k"}, "SIMLOOKUP_SECRET"},
		{env, []string{"fake-api", "--appkey", "k", "--addr", "8080"}, "--addr (SIMLOOKUP_ADDR)"},
		{env, []string{"fake-api", "--appkey", "k", "--rate-5xx", "0.8", "--rate-429", "0.5"}, "faults"},
		{env, []string{"fake-api", "--appkey", "k", "--quota=-1"}, "--quota (SIMLOOKUP_QUOTA)"},
		{env, []string{"fake-api", "--appkey", "k", "--not-found-suffix", "x4"}, "--not-found-suffix"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			r := cmdRun{env: tt.env}.run(t, tt.args...)
			wantCode(t, r, exitUsage)
			if !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("stderr %q does not mention %q", r.stderr, tt.want)
			}
		})
	}
}

func TestWorkerPausesOnRefusedSecretAndResumesAfterSIGHUP(t *testing.T) {
	t.Parallel()
	srv, _ := provisioned(t)
	fake, apiURL := eiottest.Start(t, eiottest.Config{})
	secretFile := writeFile(t, "secret", "wrong-secret")
	addr := freeAddr(t)
	stop := background(t, cmdRun{}, "worker", "--nats-url", srv.URL(), "--api-url", apiURL,
		"--appkey", eiottest.TestAppKey, "--secret-file", secretFile, "--limiter", "local", "--rate", "0",
		"--http-addr", addr, "--requests-max-bytes", "64MiB", "--results-max-bytes", "64MiB")
	wantCode(t, runCLI(t, append([]string{"publish", "--nats-url", srv.URL(), "--job-id", "p"}, iccids(5)...)...), exitOK)
	eventually(t, "/readyz says paused", func() bool {
		code, body := httpGet("http://" + addr + "/readyz")
		return code == 503 && strings.Contains(body, "paus")
	})
	if fake.Stats().Refused[eiottest.ReasonSign] == 0 {
		t.Fatal("the fake refused no signature")
	}
	// no failed results while paused
	r := runCLI(t, "results", "--nats-url", srv.URL(), "--status", "failed")
	wantCode(t, r, exitOK)
	if r.stdout != "" {
		t.Fatalf("failed results while paused:\n%s", r.stdout)
	}
	if err := os.WriteFile(secretFile, []byte(eiottest.TestSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil { // the worker has SIGHUP registered
		t.Fatal(err)
	}
	// resumed (the requests handed back while paused come back after their delay)
	eventually(t, "/readyz ready again", func() bool { code, _ := httpGet("http://" + addr + "/readyz"); return code == 200 })
	res := stop()
	wantCode(t, res, exitOK)
	if !strings.Contains(res.stderr, "SIGHUP") || strings.Contains(res.stderr, eiottest.TestSecret) || strings.Contains(res.stderr, "wrong-secret") {
		t.Fatalf("worker log:\n%s", res.stderr)
	}
}
