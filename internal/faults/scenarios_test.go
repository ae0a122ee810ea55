//go:build faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/internal/checker"
	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/worker/eiot/eiottest"
)

// invalidBodies are requests that must each become an invalid result.
var invalidBodies = [][]byte{
	[]byte(""),
	[]byte("   "),
	[]byte("hello"),
	[]byte("89.>"),
	[]byte("898522404000143061751234567"),
	[]byte(`{"iccid":89852240400014306175}`),
	[]byte(`{"request":"x"}`),
	[]byte(`{"iccid":"8985 2240 4000 1430 6175 x"}`),
	[]byte("\xff\xfe\xfd"),
	[]byte(`[1,2,3]`),
	[]byte(`{"iccid":"89852240400014306175"`),
}

// TestFaultBaseline: no faults; valid and invalid requests.
func TestFaultBaseline(t *testing.T) {
	s := newScenario(t, "baseline")
	s.startWorker()
	s.startSink()
	s.waitStreams()
	s.publish(400)
	// garbage: each must end as exactly one (invalid) result; identity from Nats-Msg-Id
	bodies := invalidBodies
	s.publishBodies(len(bodies), func(id string, i int) []byte { return bodies[i%len(bodies)] })
	s.note("%d malformed requests", len(bodies))
	rep := s.finish(90*time.Second, checker.Expect{})
	if rep.ByStatus["invalid"] < len(bodies) {
		t.Errorf("invalid results = %d, want %d", rep.ByStatus["invalid"], len(bodies))
	}
}

// TestFaultVendorStorms: 5xx, 429 with Retry-After, resets, malformed and
// oversized bodies, hangs, and a total 503 storm in the middle.
func TestFaultVendorStorms(t *testing.T) {
	s := newScenario(t, "vendor-storms")
	s.fake.setMix(faultMix{P5xx: 0.12, P429: 0.08, PReset: 0.04, PMalformed: 0.04, PHang: 0.005, PBig: 0.01})
	// and the fake's own: "system busy" vendor codes (retryable) and jitter
	if err := s.vendor.SetFaults(eiottest.Faults{RateVendorCode: 0.03, Jitter: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	w1 := s.startWorker("--api-timeout", "2s")
	w2 := s.startWorker("--api-timeout", "2s")
	s.startSink()
	s.waitStreams()
	s.publish(300)
	s.fake.storm.Store(true)
	time.Sleep(3 * time.Second) // the storm's length is the fault itself
	s.fake.storm.Store(false)
	s.publish(300)
	rep := s.finish(150*time.Second, checker.Expect{})
	for _, w := range []*proc{w1, w2} {
		if !w.Running() {
			t.Errorf("%s is not running after the storms: %v", w.name, w.Err())
		}
	}
	if rep.ByStatus["ok"] != rep.Accepted {
		t.Errorf("statuses %v: every vendor fault here is retryable, want all ok", rep.ByStatus)
	}
	s.fake.mu.Lock()
	big := s.fake.counts["oversized body"]
	s.fake.mu.Unlock()
	summaryNote(fmt.Sprintf("Response size cap: %d vendor answers of 3 MiB (cap 1 MiB) were refused as retryable errors and retried; both workers kept running and every request ended ok.", big))
}

// TestFaultWorkerKillMidLookup: two workers, every vendor call slow, one
// of them killed with SIGKILL at random moments while calls are in flight.
func TestFaultWorkerKillMidLookup(t *testing.T) {
	s := newScenario(t, "worker-kill9-mid-lookup")
	s.fake.setMix(faultMix{Latency: 300 * time.Millisecond})
	ws := []*proc{s.startWorker("--concurrency", "16"), s.startWorker("--concurrency", "16")}
	s.startSink()
	s.waitStreams()
	s.publish(600)
	kills, landed := 0, 0
	for i := range 6 {
		time.Sleep(randomBetween(500*time.Millisecond, 1500*time.Millisecond))
		w := ws[i%2]
		if s.fake.inflight.Load() > 0 {
			landed++
		}
		w.Kill9()
		kills++
		w.Start()
	}
	s.note("worker kill -9 ×%d (%d with vendor calls in flight), 300 ms vendor latency, ack wait 2 s", kills, landed)
	s.finish(120*time.Second, checker.Expect{})
}

// TestFaultWorkerKillBetweenPublishAndAck: one worker, many requests in
// flight, killed at random moments; after each kill (nothing runs) the
// requests stream is searched for requests whose result is already stored:
// those were caught between the result's PubAck and the request's ack.
func TestFaultWorkerKillBetweenPublishAndAck(t *testing.T) {
	s := newScenario(t, "worker-kill9-publish-ack")
	s.fake.setMix(faultMix{Latency: 50 * time.Millisecond})
	w := s.startWorker("--concurrency", "64", "--rate", "200", "--burst", "10")
	s.startSink()
	s.waitStreams()
	var wg sync.WaitGroup
	wg.Go(func() { s.publish(1000) })
	kills, landed, caught := 0, 0, 0
	for range 8 {
		time.Sleep(randomBetween(300*time.Millisecond, 900*time.Millisecond))
		w.Kill9()
		kills++
		if n, err := s.caughtBetweenPublishAndAck(); err != nil {
			t.Logf("window check: %v", err)
		} else if n > 0 {
			landed++
			caught += n
		}
		w.Start()
	}
	wg.Wait()
	s.note("worker kill -9 ×%d at random moments (rate 200/s, 64 in flight): %d landed between a result's PubAck and its request's ack (requests caught there: %d); ack wait 2 s", kills, landed, caught)
	s.finish(120*time.Second, checker.Expect{})
}

// caughtBetweenPublishAndAck counts requests still in the requests stream
// whose result is already in the results stream.
func (s *scenario) caughtBetweenPublishAndAck() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	results, err := checker.ReadResults(ctx, s.js, "", nil)
	if err != nil {
		return 0, err
	}
	done := make(map[string]bool, len(results))
	for _, r := range results {
		done[r.RequestID] = true
	}
	st, err := s.js.Stream(ctx, schemas.RequestStream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return n, err
		}
		if done[m.Header.Get(jetstream.MsgIDHeader)] {
			n++
		}
	}
	return n, nil
}

// TestFaultSinkKill9: the sink killed with SIGKILL at random moments while
// it commits small batches.
func TestFaultSinkKill9(t *testing.T) {
	s := newScenario(t, "sink-kill9")
	s.startWorker()
	sk := s.startSink("--max-rows", "50", "--max-age", "200ms")
	s.waitStreams()
	var wg sync.WaitGroup
	wg.Go(func() { s.publish(800) })
	kills := 0
	for range 8 {
		time.Sleep(randomBetween(200*time.Millisecond, 900*time.Millisecond))
		sk.Kill9()
		kills++
		sk.Start()
	}
	wg.Wait()
	s.note("sink kill -9 ×%d while committing 50-row batches", kills)
	s.finish(120*time.Second, checker.Expect{})
	_, files, err := checker.ReadRows(s.out)
	if err == nil {
		t.Logf("parquet files %d, other files %v", len(files.Parquet), files.Other)
	}
}

// TestFaultNATSRestartAndKill9: the server restarted cleanly once and
// killed with SIGKILL twice mid-run, on the same store (sync always).
func TestFaultNATSRestartAndKill9(t *testing.T) {
	s := newScenario(t, "nats-restart-and-kill9")
	s.fake.setMix(faultMix{Latency: 20 * time.Millisecond})
	s.startWorker("--rate", "150")
	s.startWorker("--rate", "150")
	s.startSink()
	s.waitStreams()
	const total = 1500
	var wg sync.WaitGroup
	wg.Go(func() { s.publish(total) })
	var at []string
	prev := uint64(0)
	for _, crash := range []bool{false, true, true} {
		// each fault lands while results are being produced
		eventually(t, 60*time.Second, "progress before the next fault", func() error {
			if n := s.resultsCount(); n > prev {
				return nil
			}
			return errNotYet
		})
		time.Sleep(randomBetween(300*time.Millisecond, 1000*time.Millisecond))
		prev = s.resultsCount()
		at = append(at, fmt.Sprintf("%d", prev))
		if crash {
			s.nats.Crash()
		} else {
			s.nats.Restart()
		}
	}
	wg.Wait()
	s.note("nats-server restart ×1 then kill -9 ×2 mid-run, at %s of %d results (same store, sync always)", strings.Join(at, ", "), total)
	s.finish(150*time.Second, checker.Expect{})
}

// TestFaultResultsStreamFull: SIMLOOKUP_RESULTS bounded to a few results;
// the worker must keep the requests it cannot answer; raising the bound
// lets everything complete.
func TestFaultResultsStreamFull(t *testing.T) {
	s := newScenario(t, "results-stream-full")
	s.startWorker()
	s.startSink()
	s.waitStreams()
	ctx := context.Background()
	st, err := s.js.Stream(ctx, schemas.ResultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	orig := cfg.MaxBytes
	cfg.MaxBytes = 48 << 10
	if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	s.publish(300)
	// wait until the results stop growing short of the total
	var last uint64
	stable := time.Now()
	eventually(t, 60*time.Second, "results stream full", func() error {
		n := s.resultsCount()
		if n != last {
			last, stable = n, time.Now()
			return errNotYet
		}
		if n == 0 || n >= 300 || time.Since(stable) < 3*time.Second {
			return fmt.Errorf("%d results", n)
		}
		return nil
	})
	in, err := s.collect(false)
	if err != nil {
		t.Fatal(err)
	}
	if rep := checker.Check(in); rep.DeadLetters > 0 {
		t.Errorf("while full: %d dead letters; the worker should keep the requests", rep.DeadLetters)
	}
	s.note("results stream bounded to 48 KiB: stalled at %d of 300 results, then the bound was raised", last)
	cfg.MaxBytes = orig
	if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	s.finish(120*time.Second, checker.Expect{})
}

// TestFaultSinkDiskFull: the sink's output folder is a tiny tmpfs; it fills
// up, the sink must commit nothing partial and lose nothing; the space is
// then freed (remounted larger) and everything completes.
func TestFaultSinkDiskFull(t *testing.T) {
	s := newScenario(t, "sink-disk-full")
	if err := os.MkdirAll(s.out, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", s.out).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here (%v: %s); run as root", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", s.out).Run() })
	s.startWorker()
	sk := s.startSink("--max-rows", "100", "--max-age", "300ms")
	s.waitStreams()
	s.publish(600)
	eventually(t, 60*time.Second, "the sink sees the disk full", func() error {
		if strings.Contains(sk.Log(), "no space left") {
			return nil
		}
		return errNotYet
	})
	in, err := s.collect(true)
	if err != nil {
		t.Fatalf("while the disk is full: %v", err)
	}
	full := checker.Check(in)
	s.note("sink out dir on a 96 KiB tmpfs: ENOSPC with %d of %d rows committed, then remounted at 64 MiB", full.Rows, full.Results)
	if out, err := exec.Command("mount", "-o", "remount,size=64m", s.out).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v: %s", err, out)
	}
	s.finish(120*time.Second, checker.Expect{})
}
