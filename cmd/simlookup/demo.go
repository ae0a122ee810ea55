package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/parquet-go/parquet-go"
	"github.com/schollz/progressbar/v3"

	"github.com/simlookup/simlookup/internal/natstest"
	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/sink"
	"github.com/simlookup/simlookup/worker"
	"github.com/simlookup/simlookup/worker/eiot"
	"github.com/simlookup/simlookup/worker/eiot/eiottest"
	"github.com/simlookup/simlookup/worker/quota"
)

type demoCmd struct {
	Count    int           `default:"1000" placeholder:"N" env:"-" help:"How many sample requests to publish."`
	Rate     float64       `default:"200" placeholder:"PER_SECOND" env:"-" help:"Fleet-wide vendor calls per second (retries included)."`
	Burst    int           `default:"10" placeholder:"N" env:"-" help:"Burst above the rate."`
	Workers  int           `default:"2" placeholder:"N" env:"-" help:"Worker instances sharing the rate (fleet limiter)."`
	Out      string        `short:"o" default:"simlookup-demo" type:"path" placeholder:"DIR" env:"-" help:"Folder for the Parquet files (reused by later runs: new files, nothing overwritten)."`
	DataDir  string        `name:"data-dir" type:"path" placeholder:"DIR" env:"-" help:"Keep the embedded NATS server's store here (default a temporary folder, removed at exit)."`
	NoFaults bool          `name:"no-faults" env:"-" help:"Inject no vendor faults (by default the fake answers with modest 5xx, 429 with Retry-After, resets, malformed bodies and latency)."`
	Seed     uint64        `default:"1" placeholder:"N" env:"-" help:"Seed of the sample ICCIDs and of the faults."`
	Timeout  time.Duration `default:"5m" placeholder:"DURATION" env:"-" help:"Give up (exit 1) if the run takes longer."`
	Verbose  bool          `short:"v" env:"-" help:"Show the components' logs (default: warnings only)."`
	Progress bool          `env:"-" help:"Show the progress bar even when stderr is not a terminal."`
}

func (c *demoCmd) Help() string {
	return `Runs the whole system in one process, with nothing installed: an embedded
JetStream server, the fake vendor API on a loopback port, --workers workers
sharing one fleet rate limit, and the Parquet sink writing under --out. It
publishes --count sample ICCIDs (some the fake reports as not found, some
that hit injected faults and are retried, a few that are not ICCIDs at all),
shows progress, and once every request has its result and every result is in
a committed Parquet file prints a summary, the files, and a DuckDB query to
try. Run it again into the same --out: the new run writes new files.

Examples:

    simlookup demo
    simlookup demo --count 10000 --rate 1000 --out /tmp/demo
    simlookup demo --no-faults --count 100
    go run ./cmd/simlookup demo`
}

func (c *demoCmd) validate() error {
	switch {
	case c.Count < 1 || c.Count > 1_000_000:
		return usagef("--count is %d: it needs 1 to 1000000", c.Count)
	case !(c.Rate > 0) || c.Rate > 1e6:
		return usagef("--rate is %v: it needs a positive number of calls per second", c.Rate)
	case c.Burst < 1:
		return usagef("--burst is %d: it needs at least 1", c.Burst)
	case c.Workers < 1 || c.Workers > 16:
		return usagef("--workers is %d: it needs 1 to 16", c.Workers)
	case c.Out == "":
		return usagef("--out is empty: name the folder for the Parquet files")
	case c.Timeout < time.Second:
		return usagef("--timeout is %s: it needs at least 1s", c.Timeout)
	}
	if st, err := os.Stat(c.Out); err == nil && !st.IsDir() {
		return usagef("--out %s is a file, not a folder", c.Out)
	}
	return nil
}

// demoInvalid are inputs that are not ICCIDs; the worker answers each with
// an invalid result and no vendor call.
var demoInvalid = []string{"not-an-iccid", "8985224040001", "89852240400014306175.>", "898522404000143061759999999", "89 85 22 40"}

// sampleICCIDs returns n demo inputs: 20-digit ICCIDs (with their Luhn
// digit), one in 25 ending in 404 (the fake's unknown cards), and about one
// in a hundred inputs that are not ICCIDs.
func sampleICCIDs(n int, seed uint64) []input {
	r := mrand.New(mrand.NewPCG(seed, 0x5111))
	out := make([]input, 0, n)
	for i := range n {
		if i%97 == 50 {
			out = append(out, input{Pos: i + 1, Value: demoInvalid[(i/97)%len(demoInvalid)]})
			continue
		}
		if i%25 == 7 { // the fake does not know ICCIDs ending in 404
			out = append(out, input{Pos: i + 1, Value: fmt.Sprintf("898522404%08d404", r.Uint64N(1e8))})
			continue
		}
		body := fmt.Sprintf("898522404%010d", r.Uint64N(1e10))
		out = append(out, input{Pos: i + 1, Value: body + luhnDigit(body)})
	}
	return out
}

// luhnDigit is the check digit that makes s+digit pass the Luhn test.
func luhnDigit(s string) string {
	sum := 0
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if (len(s)-1-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return strconv.Itoa((10 - sum%10) % 10)
}

// demoTally counts results and the files that hold them.
type demoTally struct {
	mu       sync.Mutex
	seen     map[string]bool
	byStatus map[schemas.Status]int
	reasons  map[string]int
	attempts int
	files    []sink.CommitInfo
}

func (t *demoTally) add(r *schemas.Result) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen[r.RequestID] {
		return false
	}
	t.seen[r.RequestID] = true
	t.byStatus[r.Status]++
	t.attempts += r.Attempts
	if r.Error != nil && r.Status != schemas.StatusOK {
		why := r.Error.Kind
		if r.Error.Code != nil {
			why += " " + *r.Error.Code
		}
		if r.Error.Message != "" && r.Status == schemas.StatusFailed {
			why += " (" + r.Error.Message + ")"
		}
		t.reasons[string(r.Status)+": "+why]++
	}
	return true
}

func (t *demoTally) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.seen)
}

func (c *demoCmd) run(a *app) error {
	if err := c.validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(a.ctx, c.Timeout)
	defer cancel()
	start := time.Now()
	out, err := filepath.Abs(c.Out)
	if err != nil {
		return usagef("--out: %v", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	complog := a.log
	if !c.Verbose {
		complog = newLogger(a.g.LogFormat, "warn", a.stderr)
	}
	status := func(format string, args ...any) {
		fmt.Fprintf(a.stderr, "%5.1fs %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}

	// 1. NATS with JetStream.
	srv, err := natstest.Start(natstest.Options{StoreDir: c.DataDir, NoSyncAlways: true})
	if err != nil {
		return fmt.Errorf("embedded NATS: %w", err)
	}
	defer srv.Shutdown()
	status("embedded NATS with JetStream at %s (store %s)", srv.URL(), srv.StoreDir())

	// 2. The fake vendor API.
	appkey := "demo-appkey"
	var sb [16]byte
	_, _ = rand.Read(sb[:])
	secret := sign.NewSecret(hex.EncodeToString(sb[:]))
	fcfg := eiottest.Config{AppKey: appkey, Secret: secret, Logger: complog}
	if !c.NoFaults {
		fcfg.Faults = eiottest.Faults{
			Latency: 5 * time.Millisecond, Jitter: 20 * time.Millisecond,
			Rate5xx: 0.03, Rate429: 0.005, RetryAfter: time.Second,
			RateMalformed: 0.01, RateReset: 0.01, Seed: int64(c.Seed),
		}
	}
	fake, err := eiottest.New(fcfg)
	if err != nil {
		return fmt.Errorf("fake vendor API: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("fake vendor API: %w", err)
	}
	hs := &http.Server{Handler: fake, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	apiURL := "http://" + ln.Addr().String()
	status("fake vendor API at %s (appkey %s)", apiURL, maskAppKey(appkey))

	// 3. Streams, small enough for any disk.
	nc, err := srv.Connect(nats.Name("simlookup-demo"))
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	sopts := schemas.StreamOptions{RequestsMaxBytes: 256 << 20, ResultsMaxBytes: 256 << 20}
	// Like the daemons: create what is missing, keep what a --data-dir
	// store already has.
	if err := schemas.ProvisionWith(ctx, js, sopts, schemas.ProvisionOptions{AckWait: 10 * time.Second, Logger: complog}); err != nil {
		return fmt.Errorf("provision: %w", err)
	}

	// 4. The sink.
	tally := &demoTally{seen: map[string]bool{}, byStatus: map[schemas.Status]int{}, reasons: map[string]int{}}
	sk, err := sink.New(sink.Config{
		JetStream: js, OutDir: out, MaxAge: time.Second, Logger: complog,
		OnCommit: func(ci sink.CommitInfo) {
			tally.mu.Lock()
			tally.files = append(tally.files, ci)
			tally.mu.Unlock()
		},
	})
	if err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	var wg sync.WaitGroup
	var sinkErr error
	wg.Go(func() {
		if sinkErr = sk.Run(runCtx); sinkErr != nil {
			cancel() // stop waiting for what will not come
		}
	})

	// 5. Workers sharing the rate through the fleet limiter.
	var workers []*worker.Worker
	var workerErrs []error
	var errMu sync.Mutex
	for i := range c.Workers {
		wnc, err := srv.Connect(nats.Name(fmt.Sprintf("simlookup-demo-worker-%d", i+1)))
		if err != nil {
			return err
		}
		defer wnc.Close()
		wjs, err := jetstream.New(wnc)
		if err != nil {
			return err
		}
		client, err := eiot.New(eiot.Config{BaseURL: apiURL, AppKey: appkey, Secret: secret, Timeout: 2 * time.Second, Logger: complog})
		if err != nil {
			return err
		}
		lim, err := quota.NewFleet(quota.Config{JetStream: wjs, Key: quota.KeyFor(appkey), Rate: c.Rate, Burst: c.Burst,
			LeaseTTL: 3 * time.Second, Logger: complog})
		if err != nil {
			return err
		}
		w, err := worker.New(worker.Config{
			JetStream: wjs, Client: client, Limiter: lim, Concurrency: 32,
			StreamOptions: sopts, AckWait: 10 * time.Second, ShutdownTimeout: 5 * time.Second,
			RetryInitial: 100 * time.Millisecond, RetryMax: 2 * time.Second,
			RedeliveryDelay: time.Second, RedeliveryMax: 5 * time.Second,
			Name: fmt.Sprintf("demo-worker-%d", i+1), Logger: complog,
		})
		if err != nil {
			return err
		}
		workers = append(workers, w)
		limCtx, stopLim := context.WithCancel(context.WithoutCancel(ctx))
		wg.Go(func() { _ = lim.Run(limCtx) })
		wg.Go(func() {
			defer stopLim()
			if err := w.Run(runCtx); err != nil {
				errMu.Lock()
				workerErrs = append(workerErrs, err)
				errMu.Unlock()
				cancel()
			}
		})
	}
	stopAll := func() error {
		stopRun()
		wg.Wait()
		errMu.Lock()
		defer errMu.Unlock()
		return errors.Join(append(workerErrs, sinkErr)...)
	}
	status("%d workers (fleet rate %g/s, burst %d) and the Parquet sink writing to %s", c.Workers, c.Rate, c.Burst, displayPath(out))

	// 6. Publish.
	jobID := "demo-" + time.Now().UTC().Format("20060102T150405")
	inputs := sampleICCIDs(c.Count, c.Seed)
	pub, err := publishJob(ctx, nc, publishSpec{JobID: jobID, Subject: schemas.RequestSubject, Inputs: inputs, MaxPending: 512, AckTimeout: 10 * time.Second}, complog)
	if err != nil {
		_ = stopAll()
		return err
	}
	if pub.Failed > 0 {
		_ = stopAll()
		return fmt.Errorf("%d publishes failed", pub.Failed)
	}
	status("published %d requests as job %s; looking them up at up to %g/s", pub.Published, jobID, c.Rate)

	// 7. Wait for every result, then for every result to be in a committed file.
	var bar *progressbar.ProgressBar
	if c.Progress || isTerminal(a.stderr) {
		bar = progressbar.NewOptions(c.Count, progressbar.OptionSetWriter(a.stderr), progressbar.OptionSetDescription("looking up"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("cards"),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionOnCompletion(func() { fmt.Fprintln(a.stderr) }))
	}
	lookStart := time.Now()
	err = readResults(ctx, js, []string{schemas.ResultSubjectPrefix + ">"}, true, func(r *schemas.Result, _ []byte) (bool, error) {
		if r.JobID == nil || *r.JobID != jobID {
			return true, nil
		}
		if tally.add(r) && bar != nil {
			_ = bar.Add(1)
		}
		return tally.count() < c.Count, nil
	})
	if err != nil {
		if serr := stopAll(); serr != nil {
			return serr
		}
		return fmt.Errorf("waiting for results (%d of %d so far): %w", tally.count(), c.Count, err)
	}
	lookElapsed := time.Since(lookStart)
	if bar != nil {
		_ = bar.Finish()
	}
	st, err := js.Stream(ctx, schemas.ResultStream)
	if err != nil {
		_ = stopAll()
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		_ = stopAll()
		return err
	}
	last := info.State.LastSeq
	status("all %d results are in the stream; waiting for the sink to commit them", c.Count)
	for sk.Status().CommittedSeq < last {
		select {
		case <-ctx.Done():
			_ = stopAll()
			return fmt.Errorf("waiting for the sink to commit up to sequence %d (at %d): %w", last, sk.Status().CommittedSeq, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	status("every result is in a committed Parquet file; stopping")
	var stats worker.Stats
	for _, w := range workers {
		s := w.Stats()
		stats.Attempts += s.Attempts
		stats.Retries += s.Retries
	}
	fstats := fake.Stats()
	if err := stopAll(); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}

	// 8. Summary.
	w := a.stdout
	tally.mu.Lock()
	defer tally.mu.Unlock()
	fmt.Fprintf(w, "\nsimlookup demo: %d requests, %d results in %s\n", c.Count, len(tally.seen), time.Since(start).Round(10*time.Millisecond))
	fmt.Fprintf(w, "  ok       %6d\n  failed   %6d\n  invalid  %6d\n", tally.byStatus[schemas.StatusOK], tally.byStatus[schemas.StatusFailed], tally.byStatus[schemas.StatusInvalid])
	reasons := make([]string, 0, len(tally.reasons))
	for k := range tally.reasons {
		reasons = append(reasons, k)
	}
	slices.Sort(reasons)
	for _, k := range reasons {
		fmt.Fprintf(w, "           %6d  %s\n", tally.reasons[k], k)
	}
	rate := float64(stats.Attempts) / lookElapsed.Seconds()
	fmt.Fprintf(w, "  vendor calls %d (%d retries), %.1f calls/s achieved at a limit of %g/s\n", stats.Attempts, stats.Retries, rate, c.Rate)
	fmt.Fprintf(w, "  busiest 1-second window at the vendor: %d calls (bound: rate + burst = %g)\n", fstats.MaxWindow, c.Rate+float64(c.Burst))
	rows := 0
	for _, f := range tally.files {
		rows += f.Rows
	}
	fmt.Fprintf(w, "\nParquet under %s:\n", displayPath(out))
	fmt.Fprintf(w, "  this run wrote %d file(s) (%d rows)", len(tally.files), rows)
	if all, err := folderContents(out); err != nil {
		fmt.Fprintf(w, "; reading the folder failed: %v\n", err)
	} else {
		runs := fmt.Sprintf("%d run(s)", all.epochs)
		if c.DataDir != "" {
			runs = fmt.Sprintf("%d results stream(s) (runs with the same --data-dir share one)", all.epochs)
		}
		fmt.Fprintf(w, "; the folder now holds %d file(s) (%d rows) from %s\n", all.files, all.rows, runs)
	}
	for i, f := range tally.files {
		if i == 10 && len(tally.files) > 12 {
			fmt.Fprintf(w, "  ... and %d more\n", len(tally.files)-i)
			break
		}
		fmt.Fprintf(w, "  %s  (%d rows)\n", displayPath(f.Path), f.Rows)
	}
	fmt.Fprint(w, demoQueryHint(out))
	return nil
}

// demoQueryHint is what the demo suggests to query its output with: the
// duckdb CLI, or the warehouse module's small Go program for people without
// it (run at the repository root).
func demoQueryHint(out string) string {
	return fmt.Sprintf(`
Try (with the duckdb CLI):
  duckdb -c "SELECT status, count(*) FROM read_parquet('%s/**/*.parquet', hive_partitioning=true, hive_types={'dt': DATE, 'hour': INTEGER}) GROUP BY 1"
or, without it, at the repository root (the first build compiles DuckDB, about a minute):
  go -C deploy/warehouse run ./cmd/query -out %s
`, displayPath(out), queryOutArg(out))
}

// queryOutArg is out for "go -C deploy/warehouse run ./cmd/query -out",
// which runs in another folder: "$PWD/<rel>" when out is inside the working
// directory, else the absolute path, quoted for a POSIX shell.
func queryOutArg(out string) string {
	if rel := displayPath(out); !filepath.IsAbs(rel) {
		return `"$PWD/` + strings.ReplaceAll(filepath.ToSlash(rel), `"`, `\"`) + `"`
	}
	return shellQuote(out)
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// folderStats sums the committed Parquet files under a sink folder.
type folderStats struct {
	files, epochs int
	rows          int64
}

// folderContents counts the *.parquet files under dir (those a reader
// globbing **/*.parquet sees), their rows (from each file's footer) and the
// results-stream epochs in their names (part-<epoch>-<first>-<last>).
func folderContents(dir string) (folderStats, error) {
	var st folderStats
	epochs := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(p, ".parquet") {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		pf, err := parquet.OpenFile(f, fi.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		st.files++
		st.rows += pf.NumRows()
		if parts := strings.Split(strings.TrimSuffix(d.Name(), ".parquet"), "-"); len(parts) == 4 && parts[0] == "part" {
			epochs[parts[1]] = true
		}
		return nil
	})
	st.epochs = len(epochs)
	return st, err
}

// displayPath shows p relative to the working directory when it is inside it.
func displayPath(p string) string {
	wd, err := os.Getwd()
	if err != nil {
		return p
	}
	rel, err := filepath.Rel(wd, p)
	if err != nil || strings.HasPrefix(rel, "..") {
		return p
	}
	return rel
}

func (c *demoCmd) check(*app) error { return c.validate() }
