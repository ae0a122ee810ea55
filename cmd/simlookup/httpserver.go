package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/simlookup/simlookup/internal/buildinfo"
)

// newRegistry is a private Prometheus registry with the Go and process
// collectors and simlookup_build_info.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	v, commit, gov := buildinfo.Info()
	bi := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "simlookup_build_info",
		Help:        "Always 1; the labels say which simlookup is running.",
		ConstLabels: prometheus.Labels{"version": v, "commit": commit, "goversion": gov},
	})
	bi.Set(1)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), bi)
	return reg
}

// checkAddr refuses a --http-addr that is not HOST:PORT.
func checkAddr(flag, addr string) error {
	if addr == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return usagef("%s %q: want HOST:PORT or :PORT, e.g. :9090", flagRef(flag), addr)
	}
	return nil
}

// readiness is one component's readiness: nil when ready, else the reason.
type readiness struct {
	name  string
	ready func() error
}

// startHTTP listens on addr and serves /metrics, /healthz and /readyz until
// ctx ends or the returned function is called. /readyz answers 503 with the
// reasons while a component is not ready. The returned function stops the
// server and waits for it.
func startHTTP(ctx context.Context, addr string, reg *prometheus.Registry, checks []readiness, log *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		var errs []error
		for _, c := range checks {
			if err := c.ready(); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--http-addr %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server stopped", "err", err)
		}
	}()
	serveCtx, stopServing := context.WithCancel(ctx)
	go func() {
		<-serveCtx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("serving metrics and health", "addr", ln.Addr().String(), "paths", "/metrics /healthz /readyz")
	// Stopping does not wait for ctx: a command that fails after starting the
	// server (a NATS or configuration error) must exit, not hang.
	return func() { stopServing(); <-done }, nil
}
