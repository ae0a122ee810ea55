package quota_test

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/internal/natstest"
	"github.com/simlookup/simlookup/worker/quota"
)

// Short leases so the tests run in seconds: the server TTL is 3s and a
// member stops 1.9s after its last good renewal.
const (
	testLease = 4 * time.Second
	testRenew = 500 * time.Millisecond
)

// recorder keeps the instant of every token any limiter handed out.
type recorder struct {
	mu sync.Mutex
	ts []time.Time
}

func (r *recorder) add(t time.Time) {
	r.mu.Lock()
	r.ts = append(r.ts, t)
	r.mu.Unlock()
}

func (r *recorder) sorted() []time.Time {
	r.mu.Lock()
	ts := slices.Clone(r.ts)
	r.mu.Unlock()
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	return ts
}

// maxWindow is the most tokens in any closed 1-second window.
func (r *recorder) maxWindow() (int, time.Time) {
	ts := r.sorted()
	best, at, j := 0, time.Time{}, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) > time.Second {
			j++
		}
		if n := i - j + 1; n > best {
			best, at = n, ts[j]
		}
	}
	return best, at
}

func (r *recorder) count(from, to time.Time) int {
	n := 0
	for _, t := range r.sorted() {
		if !t.Before(from) && t.Before(to) {
			n++
		}
	}
	return n
}

type bundle struct {
	t    *testing.T
	srv  *natstest.Server
	js   jetstream.JetStream
	rec  *recorder
	rate float64
	bur  int
	log  *slog.Logger
}

func setup(t *testing.T, r float64, burst int) *bundle {
	t.Helper()
	srv := natstest.Run(t)
	nc, err := srv.Connect()
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream: %v", err)
	}
	return &bundle{t: t, srv: srv, js: js, rec: &recorder{}, rate: r, bur: burst,
		log: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))}
}

type member struct {
	name   string
	f      *quota.Fleet
	cancel context.CancelFunc
	done   chan error
	ended  chan struct{} // closed when Run has returned
	wg     sync.WaitGroup
}

// stop cancels the member (gracefully unless it was started as killable)
// and waits for Run and its callers to return.
func (m *member) stop(t *testing.T) {
	t.Helper()
	m.cancel()
	select {
	case err := <-m.done:
		if err != nil {
			t.Errorf("%s: Run: %v", m.name, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Run did not return", m.name)
	}
	m.wg.Wait()
}

// start runs a fleet member with callers that Wait in a loop and report
// success, as worker goroutines would.
func (b *bundle) start(name string, killable bool, callers int) *member {
	b.t.Helper()
	f, err := quota.NewFleet(quota.Config{
		JetStream: b.js, Key: "test", Member: name, Rate: b.rate, Burst: b.bur,
		LeaseTTL: testLease, Renew: testRenew, Logger: b.log.With("m", name),
	})
	if err != nil {
		b.t.Fatalf("NewFleet: %v", err)
	}
	quota.ObserveFleet(f, b.rec.add)
	if killable {
		quota.SetNoGracefulLeave(f)
	}
	ctx, cancel := context.WithCancel(b.t.Context())
	m := &member{name: name, f: f, cancel: cancel, done: make(chan error, 1), ended: make(chan struct{})}
	go func() {
		defer close(m.ended)
		m.done <- f.Run(ctx)
	}()
	for range callers {
		m.wg.Go(func() {
			for {
				if err := f.Wait(ctx); err != nil {
					return
				}
				f.Succeeded()
			}
		})
	}
	b.t.Cleanup(func() { cancel(); <-m.ended; m.wg.Wait() })
	return m
}

// eventually polls cond until it holds or the timeout passes, and returns
// how long it took.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6*max(1, math.Abs(b)) }

func steady(ms []*member, n int, share float64) func() bool {
	return func() bool {
		for _, m := range ms {
			if m.f.Members() != n || !near(m.f.Share(), share) {
				return false
			}
		}
		return true
	}
}

func (b *bundle) checkBound() int {
	b.t.Helper()
	got, at := b.rec.maxWindow()
	if limit := int(b.rate) + b.bur; got > limit {
		b.t.Errorf("a 1-second window from %v saw %d requests > rate+burst %d", at.Format("15:04:05.000"), got, limit)
	}
	return got
}

func TestFleetSplitsRateAndHoldsBound(t *testing.T) {
	t.Parallel()
	const rate, burst = 60, 6
	b := setup(t, rate, burst)
	ms := []*member{b.start("a", false, 4), b.start("b", false, 4), b.start("c", false, 4)}
	eventually(t, 10*time.Second, "three members admitted at 20/s", steady(ms, 3, 20))

	const T = 5 * time.Second
	from := time.Now()
	time.Sleep(T) // a measuring period, not a condition
	n := b.rec.count(from, from.Add(T))
	if min := 0.95 * rate * T.Seconds(); float64(n) < min {
		t.Errorf("served %d in %v, want >= %.0f", n, T, min)
	}
	w := b.checkBound()
	t.Logf("3 members, rate %d burst %d: %d in %v (%.1f/s, %.3f of rate), max 1s window %d (bound %d)",
		rate, burst, n, T, float64(n)/T.Seconds(), float64(n)/(rate*T.Seconds()), w, rate+burst)
}

func TestFleetLeaveCrashJoin(t *testing.T) {
	t.Parallel()
	const rate, burst = 60, 6
	b := setup(t, rate, burst)
	a, c, k := b.start("a", false, 3), b.start("c", false, 3), b.start("k", true, 3)
	eventually(t, 10*time.Second, "three members admitted", steady([]*member{a, c, k}, 3, 20))

	a.stop(t) // graceful: deletes its lease
	d := eventually(t, testLease, "share regained after a graceful leave", steady([]*member{c, k}, 2, 30))
	t.Logf("graceful leave: the other two at 30/s after %v", d.Round(time.Millisecond))

	k.stop(t) // killed: Run returns without deleting its lease
	d = eventually(t, testLease+500*time.Millisecond, "share regained after a crash", steady([]*member{c}, 1, 60))
	t.Logf("crash: the survivor at 60/s after %v (LeaseTTL %v)", d.Round(time.Millisecond), testLease)
	if d > testLease {
		t.Errorf("regained after %v > LeaseTTL %v", d, testLease)
	}

	from := time.Now()
	j1, j2 := b.start("j1", false, 3), b.start("j2", false, 3)
	d = eventually(t, 10*time.Second, "two joiners admitted", steady([]*member{c, j1, j2}, 3, 20))
	t.Logf("two joiners admitted after %v", d.Round(time.Millisecond))
	time.Sleep(2 * time.Second) // a measuring period, not a condition
	n := b.rec.count(from, time.Now())
	w := b.checkBound()
	t.Logf("join phase: %d tokens; whole run max 1s window %d (bound %d)", n, w, rate+burst)
}

func TestFleetNATSDown(t *testing.T) {
	t.Parallel()
	const rate, burst = 60, 6
	b := setup(t, rate, burst)
	ms := []*member{b.start("a", false, 3), b.start("b", false, 3), b.start("c", false, 3)}
	eventually(t, 10*time.Second, "three members admitted", steady(ms, 3, 20))

	b.srv.Stop()
	stopped := time.Now()
	// Fallback: multiplier × rate / (last members + 1) = 15/s each.
	d := eventually(t, 10*time.Second, "members fall back", func() bool {
		for _, m := range ms {
			if !near(m.f.Share(), 15) {
				return false
			}
		}
		return true
	})
	_, grace := quota.Timing(ms[0].f)
	t.Logf("NATS stopped: all fell back to 15/s after %v (grace %v)", d.Round(time.Millisecond), grace)
	time.Sleep(2 * time.Second) // a measuring period, not a condition
	n := b.rec.count(stopped.Add(d), time.Now())
	if n == 0 {
		t.Errorf("nothing sent while falling back")
	}

	if err := b.srv.Restart(); err != nil {
		t.Fatalf("restart: %v", err)
	}
	d = eventually(t, 15*time.Second, "members coordinate again", steady(ms, 3, 20))
	t.Logf("NATS restarted: all admitted again after %v", d.Round(time.Millisecond))
	w := b.checkBound()
	t.Logf("fallback phase %d tokens; whole run max 1s window %d (bound %d)", n, w, rate+burst)
}

func TestFleetFeedback(t *testing.T) {
	t.Parallel()
	const rate, burst = 50, 5
	b := setup(t, rate, burst)
	x, y := b.start("x", false, 2), b.start("y", false, 2)
	eventually(t, 10*time.Second, "two members admitted", steady([]*member{x, y}, 2, 25))

	// One 429 now and then changes nothing.
	x.f.Throttled(time.Second)
	if m := x.f.Multiplier(); m != 1 {
		t.Fatalf("multiplier after one throttle = %v, want 1", m)
	}
	// A sustained run on one member slows the whole fleet.
	for range 3 {
		x.f.Throttled(time.Second)
	}
	d := eventually(t, 5*time.Second, "the other member slows down", func() bool {
		return y.f.Multiplier() < 1 && near(y.f.Share(), 25*y.f.Multiplier())
	})
	low := y.f.Multiplier()
	t.Logf("sustained throttling on x: y's multiplier %v (share %.2f/s) after %v", low, y.f.Share(), d.Round(time.Millisecond))
	if !near(low, 0.85) {
		t.Errorf("multiplier = %v, want one decrease to 0.85", low)
	}
	// Calls succeed (the callers report them): additive recovery to 1.
	d = eventually(t, 10*time.Second, "the fleet recovers", func() bool {
		return x.f.Multiplier() == 1 && y.f.Multiplier() == 1 && near(y.f.Share(), 25)
	})
	t.Logf("recovered to the full rate after %v", d.Round(time.Millisecond))
	b.checkBound()
}

func TestNewFleetValidates(t *testing.T) {
	t.Parallel()
	b := setup(t, 1, 1)
	ok := quota.Config{JetStream: b.js, Rate: 10}
	for _, tc := range []struct {
		name string
		mod  func(*quota.Config)
	}{
		{"no jetstream", func(c *quota.Config) { c.JetStream = nil }},
		{"zero rate", func(c *quota.Config) { c.Rate = 0 }},
		{"infinite rate", func(c *quota.Config) { c.Rate = math.Inf(1) }},
		{"dotted key", func(c *quota.Config) { c.Key = "a.b" }},
		{"bad member", func(c *quota.Config) { c.Member = "x y" }},
		{"short lease", func(c *quota.Config) { c.LeaseTTL = 2 * time.Second }},
		{"renew too long", func(c *quota.Config) { c.Renew = 5 * time.Second }},
		{"bad feedback", func(c *quota.Config) { c.Feedback.Decrease = 1.5 }},
	} {
		cfg := ok
		tc.mod(&cfg)
		if _, err := quota.NewFleet(cfg); !errors.Is(err, quota.ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", tc.name, err)
		}
	}
	for _, lease := range []time.Duration{3 * time.Second, 4 * time.Second, 7 * time.Second, 10 * time.Second, time.Minute} {
		cfg := ok
		cfg.LeaseTTL = lease
		f, err := quota.NewFleet(cfg)
		if err != nil {
			t.Errorf("LeaseTTL %v with default Renew: %v", lease, err)
			continue
		}
		srv, grace := quota.Timing(f)
		if srv > lease || grace <= 0 {
			t.Errorf("LeaseTTL %v: server TTL %v, grace %v", lease, srv, grace)
		}
	}
}

func TestSplitKeepsTheBound(t *testing.T) {
	t.Parallel()
	for _, rate := range []float64{1, 7.5, 50, 1000} {
		for _, burst := range []int{1, 5, 20} {
			for v := 1; v <= 30; v++ {
				if float64(v) >= rate+float64(burst) {
					continue // documented: the bound needs fewer members than rate+burst
				}
				for _, mult := range []float64{1, 0.5, 0.1} {
					r, b := quota.Split(mult*rate, rate, burst, v)
					if b < 1 || r <= 0 {
						t.Fatalf("split(%v,%v,%d,%d) = %v,%v", mult*rate, rate, burst, v, r, b)
					}
					if sum := float64(v) * (r + b); sum > rate+float64(burst)+1e-9 {
						t.Errorf("rate %v burst %d v %d mult %v: Σ(rate+burst) = %v > %v", rate, burst, v, mult, sum, rate+float64(burst))
					}
					if sum := float64(v) * r; sum > mult*rate+1e-9 {
						t.Errorf("rate %v burst %d v %d mult %v: Σrate = %v > %v", rate, burst, v, mult, sum, mult*rate)
					}
				}
			}
		}
	}
}

func TestFleetBucketDeleted(t *testing.T) {
	t.Parallel()
	const rate, burst = 60, 6
	b := setup(t, rate, burst)
	ms := []*member{b.start("a", false, 3), b.start("b", false, 3), b.start("c", false, 3)}
	eventually(t, 10*time.Second, "three members admitted", steady(ms, 3, 20))
	if err := b.js.DeleteKeyValue(t.Context(), "simlookup_quota"); err != nil {
		t.Fatal(err)
	}
	// Every lease is gone at once; members recreate the bucket and rejoin
	// without overshooting.
	deleted := time.Now()
	d := eventually(t, 15*time.Second, "members rejoin a recreated bucket", func() bool {
		kv, err := b.js.KeyValue(t.Context(), "simlookup_quota")
		if err != nil {
			return false
		}
		keys, err := kv.Keys(t.Context())
		if err != nil || len(keys) < 3 {
			return false
		}
		return steady(ms, 3, 20)()
	})
	time.Sleep(3 * time.Second) // a measuring period, not a condition
	if n := b.rec.count(deleted, time.Now()); float64(n) < 0.5*rate*time.Since(deleted).Seconds() {
		t.Errorf("only %d sent in the %v after the deletion", n, time.Since(deleted))
	}
	t.Logf("bucket deleted: all three admitted again after %v", d.Round(time.Millisecond))
	w := b.checkBound()
	t.Logf("max 1s window %d (bound %d)", w, rate+burst)
}

func TestFleetExistingBucket(t *testing.T) {
	t.Parallel()
	b := setup(t, 10, 1)
	// An operator's bucket without per-key TTLs is refused with a reason.
	if _, err := b.js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "plain"}); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	var mu sync.Mutex
	f, err := quota.NewFleet(quota.Config{JetStream: b.js, Bucket: "plain", Rate: 10, LeaseTTL: testLease, Renew: testRenew,
		Logger: slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return logs.Write(p)
		}), nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	eventually(t, 5*time.Second, "refusal logged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(logs.String(), "without per-key TTLs")
	})
	if f.Share() != 0 {
		t.Errorf("share %v while the bucket is unusable", f.Share())
	}
	cancel()
	<-done

	// A bucket another member created with a different description (and
	// so a different config) is used as it is.
	if _, err := b.js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "other", LimitMarkerTTL: time.Minute, Description: "made elsewhere"}); err != nil {
		t.Fatal(err)
	}
	g, err := quota.NewFleet(quota.Config{JetStream: b.js, Bucket: "other", Rate: 10, LeaseTTL: testLease, Renew: testRenew})
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(t.Context())
	done2 := make(chan struct{})
	go func() { defer close(done2); _ = g.Run(ctx2) }()
	eventually(t, 5*time.Second, "admitted on the existing bucket", func() bool { return near(g.Share(), 10) })
	cancel2()
	<-done2
}

type writerFunc func([]byte) (int, error)

func (w writerFunc) Write(p []byte) (int, error) { return w(p) }

func TestFleetStopsWithoutFallback(t *testing.T) {
	t.Parallel()
	b := setup(t, 40, 4)
	f, err := quota.NewFleet(quota.Config{JetStream: b.js, Key: "strict", Member: "s", Rate: 40, Burst: 4,
		LeaseTTL: testLease, Renew: testRenew, FallbackRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	quota.ObserveFleet(f, b.rec.add)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for f.Wait(ctx) == nil {
			}
		})
	}
	defer func() { cancel(); <-done; wg.Wait() }()
	eventually(t, 10*time.Second, "admitted", func() bool { return near(f.Share(), 40) })

	b.srv.Stop()
	stopped := time.Now()
	_, grace := quota.Timing(f)
	d := eventually(t, 10*time.Second, "stops sending", func() bool { return f.Share() == 0 })
	last := b.rec.sorted()
	lastAt := last[len(last)-1]
	// Nothing after the local deadline: at most grace after the last good
	// renewal, which was before the server stopped.
	if lastAt.After(stopped.Add(grace)) {
		t.Errorf("a token %v after the server stopped, grace %v", lastAt.Sub(stopped), grace)
	}
	t.Logf("NATS stopped: share 0 after %v, last token %v after the stop (grace %v)", d.Round(time.Millisecond), lastAt.Sub(stopped).Round(time.Millisecond), grace)
	if err := b.srv.Restart(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "sending again", func() bool { return near(f.Share(), 40) })
}
