package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/internal/checker"
	"github.com/simlookup/simlookup/internal/natstest"
	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/worker/eiot"
)

// The bench's credentials for the fake vendor API (not secrets).
const (
	benchAppKey = "bench-appkey-000001"
	benchSecret = "bench-secret-not-a-real-one"
)

type env struct {
	cfg Config
	dir string
	// sync is a server with fsync on every write (as production should be
	// configured); fast one with NATS's default lazy fsync. The quota and
	// latency runs use sync; throughput is measured on both.
	sync, fast *natsEnv
	fake       *fakeServer
	log        func(msg string, args ...any)

	vendorClose func()
}

// natsEnv is one embedded server and a client of it.
type natsEnv struct {
	srv *natstest.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func startNATS(ctx context.Context, dir string, noSync bool) (*natsEnv, error) {
	srv, err := natstest.Start(natstest.Options{StoreDir: dir, MaxStore: 1 << 40, NoSyncAlways: noSync})
	if err != nil {
		return nil, fmt.Errorf("bench: nats: %w", err)
	}
	ne := &natsEnv{srv: srv}
	if ne.nc, err = srv.Connect(); err != nil {
		ne.close()
		return nil, fmt.Errorf("bench: nats connect: %w", err)
	}
	if ne.js, err = jetstream.New(ne.nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(30*time.Second)); err != nil {
		ne.close()
		return nil, fmt.Errorf("bench: jetstream: %w", err)
	}
	if err := schemas.Provision(ctx, ne.js, schemas.StreamOptions{}, 30*time.Second); err != nil {
		ne.close()
		return nil, fmt.Errorf("bench: provision: %w", err)
	}
	return ne, nil
}

func (ne *natsEnv) close() {
	if ne == nil {
		return
	}
	if ne.nc != nil {
		ne.nc.Close()
	}
	if ne.srv != nil {
		ne.srv.Stop()
	}
}

func (ne *natsEnv) url() string { return ne.srv.URL() }

func run(ctx context.Context, cfg Config) (*Report, error) {
	r := &Report{Started: time.Now().UTC(), Count: cfg.Count, Machine: machine()}
	start := time.Now()
	defer func() { r.Seconds = time.Since(start).Seconds() }()

	dir := cfg.WorkDir
	keep := dir != ""
	if dir == "" {
		d, err := os.MkdirTemp("", "simlookup-bench-*")
		if err != nil {
			return r, fmt.Errorf("bench: %w", err)
		}
		dir = d
	}
	failed := true
	defer func() {
		if !keep && !failed {
			_ = os.RemoveAll(dir)
		}
	}()
	e, err := newEnv(ctx, cfg, dir)
	if err != nil {
		return r, err
	}
	defer e.close()

	steps := []struct {
		name string
		fn   func(context.Context, *Report) error
	}{
		{"ceilings", e.ceilings},
		{"e2e", e.endToEnd},
		{"quota", e.quota},
		{"latency", e.latency},
	}
	for _, s := range steps {
		if cfg.skip(s.name) {
			continue
		}
		e.log("bench: " + s.name)
		if err := s.fn(ctx, r); err != nil {
			r.Notes = append(r.Notes, fmt.Sprintf("%s failed: %v (work dir %s kept)", s.name, err, dir))
			return r, fmt.Errorf("bench: %s: %w", s.name, err)
		}
	}
	if r.EndToEnd != nil && r.Ceilings != nil {
		name, v := r.Ceilings.slowest()
		r.Ceilings.Slowest = name
		if v > 0 {
			r.EndToEnd.Ratio = r.EndToEnd.PerSecond / v
		}
		if _, v := r.Ceilings.slowestSync(); v > 0 && r.EndToEndSync != nil {
			r.EndToEndSync.Ratio = r.EndToEndSync.PerSecond / v
		}
	}
	if cfg.Backlog {
		e.log("bench: backlog")
		if err := e.backlog(ctx, r); err != nil {
			r.Notes = append(r.Notes, fmt.Sprintf("backlog failed: %v (work dir %s kept)", err, dir))
			return r, fmt.Errorf("bench: backlog: %w", err)
		}
	}
	failed = false
	return r, nil
}

func newEnv(ctx context.Context, cfg Config, dir string) (*env, error) {
	e := &env{cfg: cfg, dir: dir, log: func(msg string, args ...any) { cfg.Logger.Info(msg, args...) }}
	var err error
	if e.sync, err = startNATS(ctx, filepath.Join(dir, "nats-sync"), false); err != nil {
		return nil, err
	}
	if e.fast, err = startNATS(ctx, filepath.Join(dir, "nats-fast"), true); err != nil {
		e.close()
		return nil, err
	}
	vendor, err := newFake()
	if err != nil {
		e.close()
		return nil, err
	}
	e.vendorClose = vendor.Close
	if e.fake, err = startFake(vendor); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *env) close() {
	if e.fake != nil {
		e.fake.close()
	}
	if e.vendorClose != nil {
		e.vendorClose()
	}
	e.sync.close()
	e.fast.close()
}

func (e *env) secretEnv() []string { return []string{"SIMLOOKUP_SECRET=" + benchSecret} }

// workerArgs are the flags of a bench worker on the server at natsURL.
func (e *env) workerArgs(natsURL string, extra ...string) []string {
	return append([]string{"worker",
		"--nats-url", natsURL,
		"--api-url", e.fake.url,
		"--appkey", benchAppKey,
		"--ack-wait", "30s",
	}, extra...)
}

func (e *env) sinkArgs(natsURL, out string) []string {
	return []string{"sink", "--nats-url", natsURL, "--out", out, "--max-age", "1s"}
}

// ---- ceilings ----

func (e *env) ceilings(ctx context.Context, r *Report) error {
	c := &Ceilings{}
	var err error
	if c.HTTP, err = e.rawHTTP(ctx, e.cfg.Count); err != nil {
		return err
	}
	payload, _ := json.Marshal(sampleResult(0))
	if c.JetStream, err = rawJetStream(ctx, e.fast.js, e.cfg.Count, payload); err != nil {
		return err
	}
	if c.JetStreamSync, err = rawJetStream(ctx, e.sync.js, syncCount(e.cfg.Count), payload); err != nil {
		return err
	}
	if c.Parquet, err = rawParquet(e.dir, e.cfg.Count); err != nil {
		return err
	}
	c.Slowest, _ = c.slowest()
	r.Ceilings = c
	return nil
}

// rawHTTP makes n lookups with the vendor client, Concurrency at a time,
// against the same fake; it returns calls per second (every answer counts:
// a nonce collision is a call too).
func (e *env) rawHTTP(ctx context.Context, n int) (float64, error) {
	client, err := eiot.New(eiot.Config{BaseURL: e.fake.url, AppKey: benchAppKey, Secret: sign.NewSecret(benchSecret),
		HTTPClient: eiot.NewHTTPClient()})
	if err != nil {
		return 0, fmt.Errorf("bench: vendor client: %w", err)
	}
	var next atomic.Int64
	var failures atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range e.cfg.Concurrency {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) || ctx.Err() != nil {
					return
				}
				if _, err := client.Lookup(ctx, fmt.Sprintf("8985224041%010d", i)); err != nil && eiot.ClassOf(err) != eiot.ClassReplay {
					failures.Add(1)
				}
			}
		})
	}
	wg.Wait()
	rate := float64(n) / time.Since(start).Seconds()
	if f := failures.Load(); f > int64(n/100) {
		return rate, fmt.Errorf("bench: raw HTTP: %d of %d calls failed", f, n)
	}
	return rate, ctx.Err()
}

// ---- end to end ----

// syncCount is the number of lookups of the fsync-always throughput runs:
// a fifth of Count (they are an order of magnitude slower), at least 100.
func syncCount(n int) int { return max(n/5, 100) }

func (e *env) endToEnd(ctx context.Context, r *Report) error {
	e2e, procs, err := e.endToEndOn(ctx, e.fast, "e2e", e.cfg.Count, r)
	if err != nil {
		return err
	}
	r.EndToEnd, r.Processes = e2e, procs
	e.log("bench: e2e with fsync always")
	if r.EndToEndSync, _, err = e.endToEndOn(ctx, e.sync, "e2e-sync", syncCount(e.cfg.Count), r); err != nil {
		return err
	}
	return nil
}

func (e *env) endToEndOn(ctx context.Context, ne *natsEnv, name string, n int, r *Report) (*EndToEnd, []Process, error) {
	out := filepath.Join(e.dir, "parquet-"+name)
	sinkP, err := startProcess(ctx, e.dir, name+"-sink", e.cfg.Exe, nil, e.sinkArgs(ne.url(), out)...)
	if err != nil {
		return nil, nil, err
	}
	defer sinkP.stop()
	workerP, err := startProcess(ctx, e.dir, name+"-worker", e.cfg.Exe, e.secretEnv(),
		e.workerArgs(ne.url(), "--limiter", "local", "--rate", "0", "--concurrency", strconv.Itoa(e.cfg.Concurrency))...)
	if err != nil {
		return nil, nil, err
	}
	defer workerP.stop()
	ws0, _ := workerP.sample()
	ss0, _ := sinkP.sample()

	start := time.Now()
	ids, err := publishRequests(ctx, ne.js, name, 0, n, 0)
	if err != nil {
		return nil, nil, err
	}
	var rows []checker.Row
	deadline := start.Add(5 * time.Minute)
	for {
		rows, _, err = checker.ReadRows(out)
		if err != nil {
			return nil, nil, err
		}
		if len(rows) >= n {
			break
		}
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("%s: %d of %d rows after 5 minutes", name, len(rows), n)
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return nil, nil, err
		}
	}
	elapsed := time.Since(start)
	ws1, werr := workerP.sample()
	ss1, serr := sinkP.sample()
	e2e := &EndToEnd{Lookups: n, Seconds: elapsed.Seconds(), PerSecond: float64(n) / elapsed.Seconds(), Concurrency: e.cfg.Concurrency}
	var procs []Process
	if werr == nil && serr == nil {
		per := func(s0, s1 ProcSample) float64 { return (s1.CPUSeconds - s0.CPUSeconds) / float64(n) * 1000 }
		procs = []Process{
			{Name: "worker", PeakRSSMiB: mib(ws1.PeakRSS), CPUSeconds: ws1.CPUSeconds - ws0.CPUSeconds, CPUPer1000: per(ws0, ws1)},
			{Name: "sink", PeakRSSMiB: mib(ss1.PeakRSS), CPUSeconds: ss1.CPUSeconds - ss0.CPUSeconds, CPUPer1000: per(ss0, ss1)},
		}
	} else {
		r.Notes = append(r.Notes, fmt.Sprintf("%s: no /proc samples: %v %v", name, werr, serr))
	}
	// the run must also have been correct
	in, err := checker.Collect(ctx, ne.js, ids, "")
	if err != nil {
		return nil, nil, err
	}
	in.Rows, in.RowsChecked = rows, true
	rep := checker.Check(in)
	if v := rep.Violations(checker.Expect{}); len(v) > 0 {
		return nil, nil, fmt.Errorf("%s was not exactly once: %s", name, strings.Join(v, "; "))
	}
	if rep.ByStatus["ok"] != n {
		r.Notes = append(r.Notes, fmt.Sprintf("%s: statuses %v", name, rep.ByStatus))
	}
	return e2e, procs, nil
}

// ---- quota ----

func (e *env) quota(ctx context.Context, r *Report) error {
	counts := []int{1}
	if e.cfg.QuotaWorkers > 1 {
		counts = append(counts, e.cfg.QuotaWorkers)
	}
	for _, k := range counts {
		q, err := e.quotaRun(ctx, k)
		if err != nil {
			return err
		}
		r.Quota = append(r.Quota, q)
	}
	return nil
}

func (e *env) purgeRequests(ctx context.Context) error {
	st, err := e.sync.js.Stream(ctx, schemas.RequestStream)
	if err != nil {
		return err
	}
	return st.Purge(ctx)
}

func (e *env) quotaArgs() []string {
	return e.workerArgs(e.sync.url(), "--limiter", "fleet", "--concurrency", strconv.Itoa(e.cfg.Concurrency),
		"--rate", strconv.FormatFloat(e.cfg.Rate, 'f', -1, 64), "--burst", strconv.Itoa(e.cfg.Burst))
}

// quotaWarmup is left out of the achieved rate (workers joining the fleet
// limiter ramp up); the 1-second bound is checked over it too.
const quotaWarmup = 2 * time.Second

func (e *env) quotaRun(ctx context.Context, workers int) (Quota, error) {
	q := Quota{Workers: workers, Limiter: "fleet", Rate: e.cfg.Rate, Burst: e.cfg.Burst, Seconds: e.cfg.Duration.Seconds(), Bound: int(e.cfg.Rate) + e.cfg.Burst}
	if err := e.purgeRequests(ctx); err != nil {
		return q, err
	}
	// queue the whole backlog first: publishing while the workers run would
	// compete with their result publishes for the server's fsyncs
	backlog := int(e.cfg.Rate*(quotaWarmup+e.cfg.Duration).Seconds()*1.3) + 100
	if _, err := publishRequests(ctx, e.sync.js, fmt.Sprintf("quota%d", workers), 0, backlog, 0); err != nil {
		return q, err
	}
	var procs []*process
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	e.fake.rec.start()
	for i := range workers {
		p, err := startProcess(ctx, e.dir, fmt.Sprintf("quota%d-worker%d", workers, i), e.cfg.Exe, e.secretEnv(), e.quotaArgs()...)
		if err != nil {
			return q, err
		}
		procs = append(procs, p)
	}
	// the window starts with the first call at the fake
	deadline := time.Now().Add(60 * time.Second)
	for e.fake.rec.count() == 0 {
		if time.Now().After(deadline) {
			return q, errors.New("quota: no vendor call within 60s")
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return q, err
		}
	}
	first := time.Now()
	if err := sleepCtx(ctx, quotaWarmup+e.cfg.Duration+500*time.Millisecond); err != nil {
		return q, err
	}
	times := e.fake.rec.stop()
	if len(times) > 0 {
		first = times[0]
		for _, t := range times {
			if t.Before(first) {
				first = t
			}
		}
	}
	from := first.Add(quotaWarmup)
	q.Calls = countIn(times, from, from.Add(e.cfg.Duration))
	q.Achieved = float64(q.Calls) / e.cfg.Duration.Seconds()
	q.AchievedRatio = q.Achieved / e.cfg.Rate
	var at time.Time
	q.MaxWindow, at = maxWindowStart(times, time.Second)
	q.MaxWindowAt = at.Sub(first).Seconds()
	q.PerSecond = perSecond(times, first, int((quotaWarmup+e.cfg.Duration)/time.Second))
	return q, nil
}

// ---- latency ----

func (e *env) latency(ctx context.Context, r *Report) error {
	if err := e.purgeRequests(ctx); err != nil {
		return err
	}
	p, err := startProcess(ctx, e.dir, "latency-worker", e.cfg.Exe, e.secretEnv(), e.quotaArgs()...)
	if err != nil {
		return err
	}
	defer p.stop()
	offered := 0.8 * e.cfg.Rate
	d := min(10*time.Second, e.cfg.Duration)
	n := int(offered * d.Seconds())
	ids, err := publishRequests(ctx, e.sync.js, "latency", 0, n, offered)
	if err != nil {
		return err
	}
	want := make(map[string]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var lat []time.Duration
	deadline := time.Now().Add(d + 60*time.Second)
	for {
		lat = lat[:0]
		err := checker.ScanStream(ctx, e.sync.js, schemas.ResultStream, func(m jetstream.Msg) error {
			var res struct {
				RequestID   string    `json:"request_id"`
				RequestedAt time.Time `json:"requested_at"`
			}
			if json.Unmarshal(m.Data(), &res) != nil || !want[res.RequestID] {
				return nil
			}
			meta, err := m.Metadata()
			if err != nil {
				return err
			}
			lat = append(lat, meta.Timestamp.Sub(res.RequestedAt))
			return nil
		})
		if err != nil {
			return err
		}
		if len(lat) >= n {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("latency: %d of %d results", len(lat), n)
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	r.Latency = &Latency{Offered: offered, Results: len(lat), P50ms: ms(Percentile(lat, 50)), P99ms: ms(Percentile(lat, 99)), Maxms: ms(Percentile(lat, 100))}
	return nil
}

// ---- helpers ----

// publishRequests publishes n JSON requests with ids "<prefix>-<i>" (and
// that Nats-Msg-Id) and distinct ICCIDs, at pace per second (0: as fast as
// PublishAsync goes), and returns the ids the stream acknowledged.
func publishRequests(ctx context.Context, js jetstream.JetStream, prefix string, from, n int, pace float64) ([]string, error) {
	ids := make([]string, 0, n)
	start := time.Now()
	base := iccidBase(prefix)
	type pending struct {
		id string
		f  jetstream.PubAckFuture
	}
	window := make([]pending, 0, 1000)
	drain := func() error {
		for _, p := range window {
			select {
			case <-p.f.Ok():
				ids = append(ids, p.id)
			case err := <-p.f.Err():
				return fmt.Errorf("bench: publish %s: %w", p.id, err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		window = window[:0]
		return nil
	}
	for i := from; i < from+n; i++ {
		if pace > 0 {
			due := start.Add(time.Duration(float64(i-from) / pace * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				if err := sleepCtx(ctx, d); err != nil {
					return nil, err
				}
			}
		}
		id := fmt.Sprintf("%s-%d", prefix, i)
		// ...1 at the end: the fake does not know ICCIDs ending in 404
		body := fmt.Sprintf(`{"iccid":"%s%09d1","request_id":"%s","job_id":"bench-%s"}`, base, i, id, prefix)
		f, err := js.PublishAsync(schemas.RequestSubject, []byte(body), jetstream.WithMsgID(id))
		if err != nil {
			return nil, fmt.Errorf("bench: publish: %w", err)
		}
		window = append(window, pending{id, f})
		// a full window, or a paced publisher, waits for its PubAcks
		if len(window) == cap(window) || (pace > 0 && len(window) >= 50) {
			if err := drain(); err != nil {
				return nil, err
			}
		}
	}
	if err := drain(); err != nil {
		return nil, err
	}
	return ids, nil
}

// iccidBase gives each phase its own 10-digit ICCID prefix.
func iccidBase(prefix string) string {
	h := uint32(2166136261)
	for i := range len(prefix) {
		h = (h ^ uint32(prefix[i])) * 16777619
	}
	return fmt.Sprintf("8985%06d", h%1_000_000)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}
