package sink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// faultFS wraps the real filesystem and, at a chosen step, either fails
// (injected fault) or kills the process right after the step (crash).
type faultFS struct {
	OSFS
	mu    sync.Mutex
	rule  *faultRule
	count int
}

type faultRule struct {
	op, kind string // op: create write sync close mkdir rename syncdir; kind: data or cp
	err      error  // returned instead of doing the step
	killAt   int    // >0: SIGKILL the process right after the killAt-th matching step
}

func (f *faultFS) set(r *faultRule) {
	f.mu.Lock()
	f.rule, f.count = r, 0
	f.mu.Unlock()
}

// kindOf tells the data file's steps from the checkpoint's: the checkpoint
// files, and syncs of the output folder itself, are "cp".
func kindOf(path string) string {
	base := filepath.Base(path)
	if strings.Contains(base, CheckpointFile) || (!strings.HasPrefix(base, "hour=") && !strings.HasPrefix(base, "dt=") && !strings.Contains(base, ".parquet")) {
		return "cp"
	}
	return "data"
}

// before returns the injected error for a step, if any.
func (f *faultFS) before(op, path string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.rule; r != nil && r.err != nil && r.op == op && r.kind == kindOf(path) {
		return r.err
	}
	return nil
}

// after kills the process if the step is the chosen crash point.
func (f *faultFS) after(op, path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.rule; r != nil && r.killAt > 0 && r.op == op && r.kind == kindOf(path) {
		f.count++
		if f.count == r.killAt {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never returns
		}
	}
}

func (f *faultFS) Create(name string) (File, error) {
	if err := f.before("create", name); err != nil {
		return nil, err
	}
	file, err := f.OSFS.Create(name)
	if err != nil {
		return nil, err
	}
	f.after("create", name)
	return &faultFile{File: file, fs: f, name: name}, nil
}

func (f *faultFS) MkdirAll(dir string) error {
	if err := f.before("mkdir", dir); err != nil {
		return err
	}
	err := f.OSFS.MkdirAll(dir)
	f.after("mkdir", dir)
	return err
}

func (f *faultFS) Rename(oldpath, newpath string) error {
	if err := f.before("rename", newpath); err != nil {
		return err
	}
	err := f.OSFS.Rename(oldpath, newpath)
	f.after("rename", newpath)
	return err
}

func (f *faultFS) SyncDir(dir string) error {
	if err := f.before("syncdir", dir); err != nil {
		return err
	}
	err := f.OSFS.SyncDir(dir)
	f.after("syncdir", dir)
	return err
}

type faultFile struct {
	File
	fs   *faultFS
	name string
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.before("write", f.name); err != nil {
		return 0, err
	}
	n, err := f.File.Write(p)
	f.fs.after("write", f.name)
	return n, err
}

func (f *faultFile) Sync() error {
	if err := f.fs.before("sync", f.name); err != nil {
		return err
	}
	err := f.File.Sync()
	f.fs.after("sync", f.name)
	return err
}

func (f *faultFile) Close() error {
	if err := f.fs.before("close", f.name); err != nil {
		return err
	}
	err := f.File.Close()
	f.fs.after("close", f.name)
	return err
}

// commitSteps are the steps of a commit, in order; "cp" is the checkpoint.
var commitSteps = []struct{ op, kind string }{
	{"create", "data"}, {"write", "data"}, {"sync", "data"}, {"close", "data"}, {"mkdir", "data"},
	{"rename", "data"}, {"syncdir", "data"},
	{"create", "cp"}, {"write", "cp"}, {"sync", "cp"}, {"close", "cp"}, {"rename", "cp"}, {"syncdir", "cp"},
}

// TestFaultAtEachCommitStep injects a persistent error (disk full) at each
// step of the commit: nothing is committed while it lasts, the failure shows
// in Ready, Status and the metrics, and once the disk recovers every result
// is in exactly one row with no stray file.
func TestFaultAtEachCommitStep(t *testing.T) {
	t.Parallel()
	for _, step := range commitSteps {
		t.Run(step.op+"_"+step.kind, func(t *testing.T) {
			t.Parallel()
			b := setup(t, true)
			b.publish(t, results(0, 25))
			ffs := &faultFS{}
			ffs.set(&faultRule{op: step.op, kind: step.kind, err: syscall.ENOSPC})
			reg := prometheus.NewRegistry()
			cfg := b.config(t)
			cfg.FS = ffs
			cfg.MaxRows = 10
			cfg.Registerer = reg
			r := start(t, cfg)
			waitFor(t, "repeated write errors", func() bool { return r.s.Status().WriteErrors >= 3 })
			if err := r.s.Ready(); err == nil || !strings.Contains(err.Error(), "no space left on device") {
				t.Errorf("Ready while the disk is full = %v", err)
			}
			if !errors.Is(r.s.Ready(), syscall.ENOSPC) {
				t.Errorf("Ready error does not wrap ENOSPC: %v", r.s.Ready())
			}
			readOut(t, b.out) // only complete final files, no duplicates
			ffs.set(nil)
			r.waitCommitted(t, 25)
			waitFor(t, "ready", func() bool { return r.s.Ready() == nil })
			if err := r.stop(t); err != nil {
				t.Fatal(err)
			}
			checkExactlyOnce(t, b.out, 25)
			if n := testutil.CollectAndCount(r.s.m.writeErrors); n == 0 {
				t.Error("no write_errors_total series")
			}
			if left, _ := os.ReadDir(filepath.Join(b.out, TempDir)); len(left) != 0 {
				t.Errorf("temporary files left after a clean stop: %v", left)
			}
		})
	}
}

const (
	envChild  = "SIMLOOKUP_SINK_CRASH_CHILD"
	envURL    = "SIMLOOKUP_SINK_CRASH_URL"
	envOut    = "SIMLOOKUP_SINK_CRASH_OUT"
	envCrash  = "SIMLOOKUP_SINK_CRASH_AT" // op:kind:n
	envTarget = "SIMLOOKUP_SINK_CRASH_TARGET"
)

// TestCrashChild is the sink process that TestKill9 starts and kills; it
// does nothing in a normal test run.
func TestCrashChild(t *testing.T) {
	if os.Getenv(envChild) != "1" {
		t.Skip("helper process for TestKill9")
	}
	nc, err := nats.Connect(os.Getenv(envURL))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	target, err := strconv.ParseUint(os.Getenv(envTarget), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", envTarget, err)
	}
	ffs := &faultFS{}
	if at := os.Getenv(envCrash); at != "" {
		p := strings.Split(at, ":")
		if len(p) != 3 {
			t.Fatalf("%s=%q, want op:kind:n", envCrash, at)
		}
		n, err := strconv.Atoi(p[2])
		if err != nil {
			t.Fatalf("%s: %v", envCrash, err)
		}
		ffs.set(&faultRule{op: p[0], kind: p[1], killAt: n})
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := New(Config{
		JetStream: js, OutDir: os.Getenv(envOut), FS: ffs, MaxRows: 10, MaxAge: 50 * time.Millisecond,
		RetryInitial: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond, StatusInterval: 50 * time.Millisecond,
		Logger: testLogger(t),
		OnCommit: func(ci CommitInfo) {
			if ci.LastSeq >= target {
				cancel()
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { // exit once everything is committed (maybe by an earlier process)
		for ctx.Err() == nil && s.Status().CommittedSeq < target {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestKill9 kills a real sink process with SIGKILL at every step of the
// commit and at random moments, restarting it each time: in the end every
// result is in exactly one row and no stray file is left.
func TestKill9(t *testing.T) {
	t.Parallel()
	b := setup(t, true)
	const n = 320
	b.publish(t, results(0, n))
	runs := 0
	run := func(crashAt string, killAfter time.Duration) (killed bool) {
		t.Helper()
		runs++
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), envChild+"=1", envURL+"="+b.srv.URL(), envOut+"="+b.out,
			envCrash+"="+crashAt, envTarget+"="+strconv.Itoa(n))
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var parentKilled atomic.Bool
		if killAfter > 0 {
			timer := time.AfterFunc(killAfter, func() {
				parentKilled.Store(true)
				_ = cmd.Process.Signal(syscall.SIGKILL)
			})
			defer timer.Stop()
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				return true
			}
		}
		if err != nil {
			t.Fatalf("sink process (crash at %q): %v\n%s", crashAt, err, out.String())
		}
		return false
	}
	start := time.Now()
	defer func() { t.Logf("%d sink processes in %v", runs, time.Since(start)) }()
	for _, step := range commitSteps {
		ks := []int{1}
		switch step.op + ":" + step.kind {
		case "write:data", "rename:data":
			ks = append(ks, 3) // mid-file; after some files were committed
		}
		for _, k := range ks {
			at := fmt.Sprintf("%s:%s:%d", step.op, step.kind, k)
			if !run(at, 0) {
				t.Fatalf("crash point %s was never reached", at)
			}
			readOut(t, b.out) // after every crash: only complete final files, no duplicates
		}
	}
	for i := range 3 {
		run("", time.Duration(150+i*90)*time.Millisecond)
		readOut(t, b.out)
	}
	if run("", 0) {
		t.Fatal("last run was killed")
	}
	checkExactlyOnce(t, b.out, n)
	if left, _ := os.ReadDir(filepath.Join(b.out, TempDir)); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
