package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// recorder wraps the fake vendor API and keeps the arrival time of every
// request while recording is on: the bench's own count of what reached
// the vendor, independent of the fake's statistics.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	on   bool
	at   []time.Time
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	if r.on {
		r.at = append(r.at, time.Now())
	}
	r.mu.Unlock()
	r.next.ServeHTTP(w, req)
}

// start clears the record and starts recording.
func (r *recorder) start() {
	r.mu.Lock()
	r.on, r.at = true, r.at[:0]
	r.mu.Unlock()
}

// stop stops recording and returns the arrival times.
func (r *recorder) stop() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on = false
	out := make([]time.Time, len(r.at))
	copy(out, r.at)
	return out
}

// count is the number of requests recorded so far.
func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.at)
}

// fakeServer serves h on a free loopback port.
type fakeServer struct {
	rec *recorder
	srv *http.Server
	url string
}

func startFake(h http.Handler) (*fakeServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: fake listen: %w", err)
	}
	rec := &recorder{next: h}
	f := &fakeServer{rec: rec, srv: &http.Server{Handler: rec, ReadHeaderTimeout: 10 * time.Second}, url: "http://" + l.Addr().String()}
	go func() { _ = f.srv.Serve(l) }()
	return f, nil
}

func (f *fakeServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = f.srv.Shutdown(ctx)
}
