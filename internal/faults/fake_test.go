//go:build faults

package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultMix is the share of vendor calls answered with each fault; the rest
// go to the fake vendor API. Latency is added to every call.
type faultMix struct {
	P5xx, P429, PReset, PMalformed, PHang, PBig float64
	Latency                                     time.Duration
}

// fakeAPI serves the fake vendor API (eiottest) on a loopback port behind a
// fault injector.
type fakeAPI struct {
	inner    http.Handler
	srv      *http.Server
	url      string
	mix      atomic.Pointer[faultMix]
	storm    atomic.Bool // every call 503 while set
	calls    atomic.Int64
	inflight atomic.Int64

	mu     sync.Mutex
	counts map[string]int
}

func startFakeAPI(t testing.TB, inner http.Handler) *fakeAPI {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeAPI{inner: inner, url: "http://" + l.Addr().String(), counts: map[string]int{}}
	f.mix.Store(&faultMix{})
	f.srv = &http.Server{Handler: f, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = f.srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = f.srv.Shutdown(ctx)
		_ = f.srv.Close()
	})
	return f
}

func (f *fakeAPI) setMix(m faultMix) { f.mix.Store(&m) }

func (f *fakeAPI) count(kind string) {
	f.mu.Lock()
	f.counts[kind]++
	f.mu.Unlock()
}

// injected describes the faults injected so far, e.g. "5xx 41, 429 30".
func (f *fakeAPI) injected() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	keys := make([]string, 0, len(f.counts))
	for k := range f.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, f.counts[k]))
	}
	return strings.Join(parts, ", ")
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	f.inflight.Add(1)
	defer f.inflight.Add(-1)
	m := f.mix.Load()
	if m.Latency > 0 {
		select {
		case <-time.After(m.Latency):
		case <-r.Context().Done():
			return
		}
	}
	if f.storm.Load() {
		f.count("503 storm")
		http.Error(w, "storm", http.StatusServiceUnavailable)
		return
	}
	p := rand.Float64()
	pick := func(share float64) bool {
		if p < share {
			return true
		}
		p -= share
		return false
	}
	switch {
	case pick(m.P5xx):
		f.count("5xx")
		codes := []int{500, 502, 503, 504}
		w.WriteHeader(codes[rand.IntN(len(codes))])
		_, _ = w.Write([]byte(`{"code":"500","msg":"internal error"}`))
	case pick(m.P429):
		f.count("429")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"code":"429","msg":"slow down"}`))
	case pick(m.PReset):
		f.count("reset")
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // RST, not FIN
				}
				_ = c.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case pick(m.PMalformed):
		f.count("malformed")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"code":"200","msg":"success","data":{"iccid":"8985`))
	case pick(m.PHang):
		f.count("hang")
		select {
		case <-r.Context().Done():
		case <-time.After(20 * time.Second):
		}
	case pick(m.PBig):
		f.count("oversized body")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"code":"200","msg":"success","data":{"remark":"`))
		_, _ = w.Write([]byte(strings.Repeat("x", 3<<20)))
		_, _ = w.Write([]byte(`"}}`))
	default:
		f.inner.ServeHTTP(w, r)
	}
}
