package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHTTPServesMetricsHealthAndReadiness(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	var ready atomic.Bool
	check := func() error {
		if !ready.Load() {
			return errors.New("paused: signature refused")
		}
		return nil
	}
	addr := freeAddr(t)
	wait, err := startHTTP(ctx, addr, newRegistry(), []readiness{{"worker", check}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	if code, body := get(t, base+"/healthz"); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "worker: paused: signature refused") {
		t.Fatalf("/readyz %d %q", code, body)
	}
	ready.Store(true)
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz %d %q", code, body)
	}
	code, body := get(t, base+"/metrics")
	for _, m := range []string{"go_goroutines", "process_", "simlookup_build_info{"} {
		if code != 200 || !strings.Contains(body, m) {
			t.Fatalf("/metrics %d lacks %s", code, m)
		}
	}
	cancel()
	wait()
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("server still up after ctx ended")
	}
}

func TestCheckAddr(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"", ":9090", "127.0.0.1:9090", "[::1]:80"} {
		if err := checkAddr("http-addr", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"9090", "localhost", "http://x:1"} {
		if err := checkAddr("http-addr", bad); err == nil || !strings.Contains(err.Error(), "--http-addr (SIMLOOKUP_HTTP_ADDR)") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
