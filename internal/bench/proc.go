package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// process is a simlookup subprocess (worker or sink) with its log in a file.
type process struct {
	name     string
	cmd      *exec.Cmd
	log      string
	httpAddr string
	done     chan struct{}
	err      error
}

// startProcess runs exe with args plus --http-addr on a free port and
// --log-format json, logging to dir/<name>.log, and waits for /readyz.
func startProcess(ctx context.Context, dir, name, exe string, env []string, args ...string) (*process, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p := &process{name: name, log: filepath.Join(dir, name+".log"), httpAddr: "127.0.0.1:" + strconv.Itoa(port), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	args = append(args, "--http-addr", p.httpAddr, "--log-format", "json")
	p.cmd = exec.Command(exe, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: start %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	if err := p.waitReady(ctx, 60*time.Second); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

func (p *process) waitReady(ctx context.Context, d time.Duration) error {
	deadline := time.Now().Add(d)
	url := "http://" + p.httpAddr + "/readyz"
	for {
		select {
		case <-p.done:
			return fmt.Errorf("bench: %s exited: %v\n%s", p.name, p.err, p.tail(2000))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %s not ready within %s (last: %v)\n%s", p.name, d, err, p.tail(2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) sample() (ProcSample, error) { return SampleProc(p.pid()) }

// stop sends SIGTERM and waits (then SIGKILL).
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
	}
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *process) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("bench: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
