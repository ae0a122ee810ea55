//go:build faults

package quota_test

// The fleet limiter across real worker processes (issue 6, "Done when"):
//
//	go test -tags faults -run TestFleetProcesses -v ./worker/quota/
//
// It builds simlookup, runs an embedded JetStream server, `simlookup
// fake-api`, and `simlookup worker --limiter fleet --rate 50 --burst 5`
// subprocesses behind an in-test vendor front that records every request's
// arrival (the bound is judged there, on what reached the "vendor") and can
// answer 429 to everything or enforce a vendor quota of its own.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/internal/natstest"
	"github.com/simlookup/simlookup/worker/quota"
)

const (
	procRate  = 50
	procBurst = 5
	procLease = 5 * time.Second
	procBound = procRate + procBurst
)

// vendorFront sits between the workers and the fake API.
type vendorFront struct {
	next http.Handler

	mu        sync.Mutex
	mode      string // "pass", "429", "quota"
	quota     int
	arrivals  []time.Time // every request (attempts, 429s included)
	forwarded []time.Time // requests passed on to the fake
	throttled []time.Time // requests answered 429 here
}

func (v *vendorFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	v.mu.Lock()
	v.arrivals = append(v.arrivals, now)
	throttle := v.mode == "429"
	if v.mode == "quota" {
		n := 0
		for i := len(v.forwarded) - 1; i >= 0 && now.Sub(v.forwarded[i]) < time.Second; i-- {
			n++
		}
		throttle = n >= v.quota
	}
	if throttle {
		v.throttled = append(v.throttled, now)
	} else {
		v.forwarded = append(v.forwarded, now)
	}
	v.mu.Unlock()
	if throttle {
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many requests", http.StatusTooManyRequests)
		return
	}
	v.next.ServeHTTP(w, r)
}

func (v *vendorFront) set(mode string, quota int) {
	v.mu.Lock()
	v.mode, v.quota = mode, quota
	v.mu.Unlock()
}

func between(ts []time.Time, from, to time.Time) []time.Time {
	var out []time.Time
	for _, t := range ts {
		if !t.Before(from) && t.Before(to) {
			out = append(out, t)
		}
	}
	return out
}

func (v *vendorFront) snapshot(from, to time.Time) (arr, fwd, thr []time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return between(v.arrivals, from, to), between(v.forwarded, from, to), between(v.throttled, from, to)
}

// lastSecond is the number of arrivals in the last second.
func (v *vendorFront) lastSecond() int {
	now := time.Now()
	a, _, _ := v.snapshot(now.Add(-time.Second), now.Add(time.Millisecond))
	return len(a)
}

func maxWindowOf(ts []time.Time) int {
	r := &recorder{ts: ts}
	n, _ := r.maxWindow()
	return n
}

type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func startProc(t *testing.T, dir, name, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = append(os.Environ(), "SIMLOOKUP_LOG_LEVEL=info")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); lf.Close(); close(p.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", name, b)
		}
	})
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// iccid makes a 20-digit ICCID with a right Luhn check digit.
func iccid(n int) string {
	body := fmt.Sprintf("8985224040%09d", n)
	sum := 0
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if (len(body)-1-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return body + strconv.Itoa((10-sum%10)%10)
}

type phaseRow struct {
	phase     string
	dur       time.Duration
	arrivals  int
	accepted  int
	throttled int
	maxWindow int
	note      string
}

func TestFleetProcesses(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "simlookup")
	build := exec.Command("go", "build", "-o", bin, "./cmd/simlookup")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, sub := range []string{"worker", "fake-api"} {
		if out, err := exec.Command(bin, sub, "--help").CombinedOutput(); err != nil {
			t.Fatalf("simlookup %s is not available yet: %v\n%s", sub, err, out)
		}
	}

	srv, err := natstest.Start(natstest.Options{NoSyncAlways: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	// Small stream bounds: the test server's store cannot reserve the defaults.
	streamArgs := []string{"--requests-max-bytes", "256MiB", "--results-max-bytes", "512MiB"}
	const appkey = "proc-test-appkey"
	secret := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("proc-test-secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	fakeAddr := freeAddr(t)
	startProc(t, dir, "fake-api", bin, "fake-api", "--addr", fakeAddr, "--appkey", appkey, "--secret-file", secret)
	eventually(t, 20*time.Second, "fake-api listening", func() bool {
		c, err := net.Dial("tcp", fakeAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	target, _ := url.Parse("http://" + fakeAddr)
	front := &vendorFront{next: httputil.NewSingleHostReverseProxy(target), mode: "pass"}
	vendor := httptest.NewServer(front)
	defer vendor.Close()

	if out, err := exec.Command(bin, append([]string{"streams", "--nats-url", srv.URL()}, streamArgs...)...).CombinedOutput(); err != nil {
		t.Fatalf("simlookup streams: %v\n%s", err, out)
	}

	// Results: count the ones failed by throttling (there must be none).
	var okResults, failedResults, throttleFailed atomic.Int64
	var kindsMu sync.Mutex
	failedKinds := map[string]int{}
	sub, err := nc.Subscribe("simlookup.result.>", func(m *nats.Msg) {
		var ev struct {
			Status string `json:"status"`
			Error  *struct {
				Kind       string `json:"kind"`
				HTTPStatus *int   `json:"http_status"`
			} `json:"error"`
		}
		if json.Unmarshal(m.Data, &ev) != nil {
			return
		}
		switch ev.Status {
		case "ok":
			okResults.Add(1)
		case "failed":
			failedResults.Add(1)
			if ev.Error != nil {
				kindsMu.Lock()
				failedKinds[ev.Error.Kind]++
				kindsMu.Unlock()
			}
			if ev.Error != nil && (ev.Error.HTTPStatus != nil && *ev.Error.HTTPStatus == 429 || strings.Contains(ev.Error.Kind, "throttl") || strings.Contains(ev.Error.Kind, "rate")) {
				throttleFailed.Add(1)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	// A backlog larger than the run can drain.
	const backlog = 9000
	for i := range backlog {
		if _, err := js.PublishAsync("simlookup.request", []byte(iccid(i)), jetstream.WithMsgID(fmt.Sprintf("proc-%d", i))); err != nil {
			t.Fatal(err)
		}
		if i%500 == 499 || i == backlog-1 {
			select {
			case <-js.PublishAsyncComplete():
			case <-time.After(60 * time.Second):
				t.Fatal("backlog not acknowledged")
			}
		}
	}

	runScenario(t, front, "simlookup worker", func(name string) *proc {
		return startProc(t, dir, name, bin, append([]string{"worker",
			"--nats-url", srv.URL(), "--api-url", vendor.URL, "--appkey", appkey, "--secret-file", secret,
			"--limiter", "fleet", "--rate", strconv.Itoa(procRate), "--burst", strconv.Itoa(procBurst),
			"--lease-ttl", procLease.String(), "--concurrency", "16", "--http-addr", freeAddr(t)}, streamArgs...)...)
	}, func() string {
		kindsMu.Lock()
		defer kindsMu.Unlock()
		return fmt.Sprintf("results ok %d, failed %d %v, failed by throttling %d", okResults.Load(), failedResults.Load(), failedKinds, throttleFailed.Load())
	})
	if n := throttleFailed.Load(); n > 0 {
		t.Errorf("%d requests failed because of throttling", n)
	}

	// The fake vendor's own counters agree with the front's: no sliding
	// 1-second window of what reached it exceeds rate + burst.
	resp, err := http.Get("http://" + fakeAddr + "/stats?per_iccid=false")
	if err != nil {
		t.Fatalf("fake-api /stats: %v", err)
	}
	defer resp.Body.Close()
	var stats struct {
		Total     int64 `json:"total"`
		MaxWindow int64 `json:"max_window"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatalf("fake-api /stats: %v", err)
	}
	t.Logf("fake-api counters: %d requests, busiest 1-second window %d (bound %d)", stats.Total, stats.MaxWindow, procBound)
	if stats.Total == 0 || stats.MaxWindow > procBound {
		t.Errorf("fake-api counters: total %d, max window %d, want > 0 and <= %d", stats.Total, stats.MaxWindow, procBound)
	}
}

// runScenario runs the phases of issue 6 against members started by start,
// judging the bound on front's arrivals, and prints a table.
func runScenario(t *testing.T, front *vendorFront, what string, worker func(name string) *proc, summary func() string) {
	t.Helper()
	w1, _, _ := worker("member-1"), worker("member-2"), worker("member-3")
	runStart := time.Now()
	eventually(t, 60*time.Second, "three workers at the full rate", func() bool { return front.lastSecond() >= 0.9*procRate })

	var rows []phaseRow
	measure := func(phase string, from, to time.Time, note string) phaseRow {
		arr, fwd, thr := front.snapshot(from, to)
		row := phaseRow{phase: phase, dur: to.Sub(from), arrivals: len(arr), accepted: len(fwd), throttled: len(thr), maxWindow: maxWindowOf(arr), note: note}
		rows = append(rows, row)
		if row.maxWindow > procBound {
			t.Errorf("%s: a 1-second window saw %d requests > %d", phase, row.maxWindow, procBound)
		}
		return row
	}

	// 1. Three workers share 50/s for 20 s.
	from := time.Now()
	time.Sleep(20 * time.Second) // a measuring period
	r := measure("3 workers, 20 s", from, time.Now(), "")
	if min := int(0.95 * procRate * 20); r.arrivals < min {
		t.Errorf("3 workers: %d requests in 20 s, want >= %d", r.arrivals, min)
	}

	// 2. SIGKILL one: the other two regain the full rate within the lease.
	killAt := time.Now()
	if err := w1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-w1.done
	time.Sleep(time.Second) // let the last second drop the dead worker's requests
	regain := eventually(t, procLease+10*time.Second, "full rate after SIGKILL", func() bool { return front.lastSecond() >= 0.9*procRate }) + time.Second
	note := fmt.Sprintf("full rate again %.1fs after the kill (lease %v)", regain.Seconds(), procLease)
	if regain > procLease+time.Second {
		t.Errorf("SIGKILL: full rate after %v, want within the lease %v (+1 s of measuring)", regain, procLease)
	}
	measure("SIGKILL 1 of 3", killAt, time.Now(), note)

	// 3. A fourth joins mid-run.
	joinAt := time.Now()
	worker("member-4")
	time.Sleep(10 * time.Second) // a measuring period
	measure("4th worker joins", joinAt, time.Now(), "")

	// 4. The vendor answers 429 to everything for 5 s.
	stormAt := time.Now()
	front.set("429", 0)
	time.Sleep(5 * time.Second) // the storm
	front.set("pass", 0)
	stormEnd := time.Now()
	lastStorm, _, _ := front.snapshot(stormEnd.Add(-2*time.Second), stormEnd)
	rec := eventually(t, 60*time.Second, "full rate after the 429 storm", func() bool { return front.lastSecond() >= 0.9*procRate })
	measure("429 for 5 s", stormAt, stormEnd, fmt.Sprintf("attempts %.1f/s in its last 2 s", float64(len(lastStorm))/2))
	measure("after the storm", stormEnd, time.Now(), fmt.Sprintf("full rate again after %.1fs", rec.Seconds()))
	if float64(len(lastStorm))/2 >= 0.9*procRate {
		t.Errorf("429 storm: %d attempts in its last 2 s: the fleet did not slow down", len(lastStorm))
	}

	// 5. The vendor's own quota is 30/s (< --rate 50): the fleet settles near it.
	quotaAt := time.Now()
	front.set("quota", 30)
	time.Sleep(25 * time.Second) // a measuring period
	quotaEnd := time.Now()
	front.set("pass", 0)
	settled := measure("vendor quota 30/s, last 15 s", quotaEnd.Add(-15*time.Second), quotaEnd, "")
	measure("vendor quota 30/s, all 25 s", quotaAt, quotaEnd, "")
	acc := float64(settled.accepted) / 15
	share := float64(settled.throttled) / float64(max(settled.arrivals, 1))
	rows[len(rows)-2].note = fmt.Sprintf("accepted %.1f/s, 429s %.1f%% of attempts", acc, 100*share)
	if acc < 24 || acc > 30.5 {
		t.Errorf("vendor quota 30: accepted %.1f/s, want near 30", acc)
	}
	if share > 0.10 {
		t.Errorf("vendor quota 30: %.1f%% of attempts throttled, want few", 100*share)
	}

	measure("whole run", runStart, time.Now(), summary())

	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "phase\tduration\tarrivals\t/s\taccepted\t429s\tmax 1s window (bound %d)\tnote\n", procBound)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%.1fs\t%d\t%.1f\t%d\t%d\t%d\t%s\n", r.phase, r.dur.Seconds(), r.arrivals, float64(r.arrivals)/r.dur.Seconds(), r.accepted, r.throttled, r.maxWindow, r.note)
	}
	tw.Flush()
	t.Logf("fleet limiter across %s processes (--rate %d --burst %d --lease-ttl %v):\n%s", what, procRate, procBurst, procLease, b.String())
	_, _ = io.WriteString(os.Stdout, b.String())
}

// TestFleetChildProcesses runs the same phases with members that are this
// test binary re-executed as a bare limiter client (TestFleetChild): real
// processes and SIGKILL, no worker, so it runs before the CLI has the
// worker and fake-api commands, and it isolates the limiter.
func TestFleetChildProcesses(t *testing.T) {
	srv := natstest.Run(t)
	front := &vendorFront{mode: "pass", next: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"code":"200"}`)
	})}
	vendor := httptest.NewServer(front)
	defer vendor.Close()
	t.Setenv("QUOTA_CHILD_NATS", srv.URL())
	t.Setenv("QUOTA_CHILD_VENDOR", vendor.URL)
	dir := t.TempDir()
	var calls atomic.Int64
	runScenario(t, front, "limiter-client", func(name string) *proc {
		calls.Add(1)
		return startProc(t, dir, name, os.Args[0], "-test.run=^TestFleetChild$", "-test.v")
	}, func() string { return fmt.Sprintf("%d member processes", calls.Load()) })
}

// TestFleetChild is a limiter client process for TestFleetChildProcesses:
// 16 callers Wait, then call the vendor; a 429 is Throttled and waits its
// Retry-After, anything else Succeeded. It runs until killed.
func TestFleetChild(t *testing.T) {
	natsURL, vendorURL := os.Getenv("QUOTA_CHILD_NATS"), os.Getenv("QUOTA_CHILD_VENDOR")
	if natsURL == "" {
		t.Skip("only as a child of TestFleetChildProcesses")
	}
	nc, err := nats.Connect(natsURL, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	f, err := quota.NewFleet(quota.Config{JetStream: js, Key: "proc", Rate: procRate, Burst: procBurst, LeaseTTL: procLease,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	go func() { _ = f.Run(ctx) }()
	client := &http.Client{Timeout: 5 * time.Second}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for f.Wait(ctx) == nil {
				resp, err := client.Get(vendorURL)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusTooManyRequests {
					ra, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
					f.Throttled(time.Duration(ra) * time.Second)
					time.Sleep(time.Duration(ra) * time.Second) // honouring Retry-After, as the worker does
					continue
				}
				f.Succeeded()
			}
		})
	}
	wg.Wait()
}
