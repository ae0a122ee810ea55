//go:build faults

package faults

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// suiteDir holds every scenario's folder (logs, NATS store, Parquet output)
// until the end of the run, so the security check can read all logs.
var suiteDir string

// binDir holds the binaries, built once per run (without -race: the suite
// kills and restarts processes many times and wants them quick).
var binDir string

var (
	buildOnce sync.Map // package -> *buildResult
)

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// binary builds pkg (once per run) and returns the executable's path.
func binary(t testing.TB, name, pkg string) string {
	t.Helper()
	v, _ := buildOnce.LoadOrStore(pkg, &buildResult{})
	br := v.(*buildResult)
	br.once.Do(func() {
		br.path = filepath.Join(binDir, name)
		cmd := exec.Command("go", "build", "-o", br.path, pkg)
		cmd.Dir = repoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			br.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if br.err != nil {
		t.Fatal(br.err)
	}
	return br.path
}

// simlookupBin is the real simlookup binary.
func simlookupBin(t testing.TB) string { return binary(t, "simlookup", "./cmd/simlookup") }

// natsServerBin is nats-server built from the module go.mod pins.
func natsServerBin(t testing.TB) string {
	return binary(t, "nats-server", "github.com/nats-io/nats-server/v2")
}

// repoRoot is the module root (two levels above this package).
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "simlookup-faults-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	suiteDir = filepath.Join(dir, "scenarios")
	_ = os.MkdirAll(suiteDir, 0o755)
	code := m.Run()
	printSummary(os.Stdout)
	if code != 0 && os.Getenv("SIMLOOKUP_FAULTS_KEEP") != "" {
		fmt.Printf("faults: logs kept in %s\n", suiteDir)
	} else {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// ---- the summary table ----

type summaryRow struct {
	Scenario string
	Faults   string // what was injected, with counts
	Rep      reportCounts
	Pass     bool
	Seconds  float64
}

type reportCounts struct {
	Accepted, Results, Rows, Lost, DupResults, DupRows, DeadLetters int
}

var summary struct {
	sync.Mutex
	rows  []summaryRow
	notes []string
}

// summaryNote adds a line printed under the table.
func summaryNote(s string) {
	summary.Lock()
	defer summary.Unlock()
	summary.notes = append(summary.notes, s)
}

func addSummary(r summaryRow) {
	summary.Lock()
	defer summary.Unlock()
	summary.rows = append(summary.rows, r)
}

func summaryTable() string {
	summary.Lock()
	defer summary.Unlock()
	var b strings.Builder
	b.WriteString("| scenario | faults injected | accepted | results | rows | lost | dup results | dup rows | DLQ | time | verdict |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range summary.rows {
		verdict := "pass"
		if !r.Pass {
			verdict = "**FAIL**"
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %d | %d | %.0f s | %s |\n",
			r.Scenario, r.Faults, r.Rep.Accepted, r.Rep.Results, r.Rep.Rows, r.Rep.Lost,
			r.Rep.DupResults, r.Rep.DupRows, r.Rep.DeadLetters, r.Seconds, verdict)
	}
	return b.String()
}

func printSummary(w io.Writer) {
	summary.Lock()
	n := len(summary.rows)
	notes := append([]string(nil), summary.notes...)
	summary.Unlock()
	if n == 0 {
		return
	}
	t := summaryTable()
	for _, note := range notes {
		t += "\n" + note + "\n"
	}
	fmt.Fprintf(w, "\nFault-injection summary (%s, %d cores, %s):\n\n%s\n", time.Now().UTC().Format(time.RFC3339), runtime.NumCPU(), runtime.Version(), t)
	if path := os.Getenv("SIMLOOKUP_FAULTS_TABLE"); path != "" {
		if err := os.WriteFile(path, []byte(t), 0o644); err != nil {
			fmt.Fprintf(w, "faults: write %s: %v\n", path, err)
		}
	}
}

// ---- processes ----

// proc is one subprocess with its output captured to a log file.
type proc struct {
	t    testing.TB
	name string
	bin  string
	args []string
	env  []string
	// wrap, if set, runs the command through `bash -c` with this prefix
	// (e.g. "ulimit -f 64;") before exec.
	wrap string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	runs int
}

// allLogs are every log file written by a proc in this run (for the
// security scan).
var allLogs struct {
	sync.Mutex
	paths []string
}

func newProc(t testing.TB, dir, name, bin string, args ...string) *proc {
	return &proc{t: t, name: name, bin: bin, args: args, log: filepath.Join(dir, name+".log")}
}

// Start runs the process (again); its output is appended to its log.
func (p *proc) Start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			p.t.Fatalf("%s: start while running", p.name)
		}
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	if p.runs == 0 {
		allLogs.Lock()
		allLogs.paths = append(allLogs.paths, p.log)
		allLogs.Unlock()
	}
	p.runs++
	fmt.Fprintf(f, "---- start #%d %s\n", p.runs, time.Now().UTC().Format(time.RFC3339Nano))
	var cmd *exec.Cmd
	if p.wrap != "" {
		q := make([]string, 0, len(p.args)+1)
		for _, a := range append([]string{p.bin}, p.args...) {
			q = append(q, shellQuote(a))
		}
		cmd = exec.Command("bash", "-c", p.wrap+" exec "+strings.Join(q, " "))
	} else {
		cmd = exec.Command(p.bin, p.args...)
	}
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		p.t.Fatalf("%s: start: %v", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// Running reports whether the process is alive.
func (p *proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Pid of the running process (0 if none).
func (p *proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill9 sends SIGKILL and waits for the process to be gone.
func (p *proc) Kill9() { p.signal(syscall.SIGKILL, 10*time.Second) }

// Stop sends SIGTERM and waits up to 30 s (then SIGKILL).
func (p *proc) Stop() {
	if !p.signal(syscall.SIGTERM, 30*time.Second) {
		p.t.Logf("%s: did not exit 30 s after SIGTERM; killing", p.name)
		p.Kill9()
	}
}

func (p *proc) signal(sig syscall.Signal, wait time.Duration) bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return true
	case <-time.After(wait):
		return false
	}
}

// Err is the exit error of the last run (nil while running or after exit 0).
func (p *proc) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Log returns the whole log so far.
func (p *proc) Log() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// LogTail returns the last n bytes of the log.
func (p *proc) LogTail(n int) string {
	s := p.Log()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// Cleanup kills the process at the end of the test.
func (p *proc) cleanup() { p.t.Cleanup(p.Kill9) }

// ---- nats-server ----

// natsProc is a real nats-server subprocess with JetStream, fsync always,
// a fixed port and store across restarts.
type natsProc struct {
	*proc
	port  int
	store string
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startNATS starts a nats-server subprocess in dir and waits until its
// JetStream answers. It is killed when the test ends.
func startNATS(t testing.TB, dir string) *natsProc {
	t.Helper()
	n := &natsProc{port: freePort(t), store: filepath.Join(dir, "jetstream")}
	conf := filepath.Join(dir, "nats-server.conf")
	cfg := fmt.Sprintf(`listen: "127.0.0.1:%d"
max_payload: 8MB
jetstream {
  store_dir: %q
  sync_interval: always
  max_file_store: 1TB
  max_memory_store: 256MB
}
`, n.port, n.store)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	n.proc = newProc(t, dir, "nats-server", natsServerBin(t), "-c", conf)
	n.Start()
	n.cleanup()
	return n
}

func (n *natsProc) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

// Start (re)starts the server on the same port and store and waits for
// JetStream to answer.
func (n *natsProc) Start() {
	n.t.Helper()
	n.proc.Start()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := n.ping(); err == nil {
			return
		} else if time.Now().After(deadline) || !n.Running() {
			n.t.Fatalf("nats-server not ready: %v\n%s", err, n.LogTail(2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *natsProc) ping() error {
	nc, err := nats.Connect(n.URL(), nats.Timeout(time.Second), nats.NoReconnect())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// Restart stops the server cleanly (SIGTERM) and starts it again.
func (n *natsProc) Restart() { n.Stop(); n.Start() }

// Crash kills the server with SIGKILL and starts it again on the same store.
func (n *natsProc) Crash() { n.Kill9(); n.Start() }

// connect opens a test client that reconnects forever.
func connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.Name("faults-test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// eventually polls cond every 100 ms until it returns nil or d passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var errNotYet = errors.New("not yet")

// grepFile reports whether needle occurs in the file.
func grepFile(path string, needle []byte) (bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	return bytes.Contains(b, needle), nil
}
