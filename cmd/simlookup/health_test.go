package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
)

// health against the daemons' own HTTP server: 0 when /readyz says ready,
// 1 with the reason when not, 1 when nothing listens, 2 for a bad URL.
func TestHealth(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var ready atomic.Bool
	check := func() error {
		if !ready.Load() {
			return errors.New("paused since 12:00: signature refused")
		}
		return nil
	}
	addr := freeAddr(t)
	wait, err := startHTTP(ctx, addr, newRegistry(), []readiness{{"worker", check}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer wait()
	url := "http://" + addr + "/readyz"

	r := runCLI(t, "health", "--url", url)
	wantCode(t, r, exitRuntime)
	if !strings.Contains(r.stderr, "503") || !strings.Contains(r.stderr, "signature refused") {
		t.Fatalf("not ready: stderr %q lacks the status and the reason", r.stderr)
	}
	ready.Store(true)
	wantCode(t, runCLI(t, "health", "--url", url), exitOK)
	wantCode(t, runCLI(t, "health", "--url", "http://"+addr+"/healthz"), exitOK)

	cancel()
	wait()
	r = runCLI(t, "health", "--url", url, "--timeout", "1s")
	wantCode(t, r, exitRuntime)
	if !strings.Contains(r.stderr, addr) {
		t.Fatalf("nothing listening: stderr %q does not name the address", r.stderr)
	}
	r = runCLI(t, "health", "--url", "127.0.0.1:9090")
	wantCode(t, r, exitUsage)
	if !strings.Contains(r.stderr, "--url") {
		t.Fatalf("bad URL: stderr %q does not name the flag", r.stderr)
	}
}
