package quota_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/simlookup/simlookup/worker/quota"
)

func TestLocalHoldsBound(t *testing.T) {
	t.Parallel()
	const rate, burst = 100, 10
	l := quota.NewLocal(rate, burst)
	if err := l.Register(prometheus.NewRegistry()); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	quota.ObserveLocal(l, rec.add)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for l.Wait(ctx) == nil {
			}
		})
	}
	wg.Wait()
	n := len(rec.sorted())
	w, _ := rec.maxWindow()
	t.Logf("local %d/s burst %d: %d in 2s, max 1s window %d", rate, burst, n, w)
	if w > rate+burst {
		t.Errorf("max window %d > %d", w, rate+burst)
	}
	if n < int(0.95*rate*2) {
		t.Errorf("served %d, want >= %d", n, int(0.95*rate*2))
	}
}

func TestLocalFeedback(t *testing.T) {
	t.Parallel()
	l := quota.NewLocal(50, 5)
	l.Throttled(0)
	l.Throttled(0)
	if l.Multiplier() != 1 {
		t.Fatalf("two throttles lowered the rate")
	}
	l.Throttled(0)
	if got := l.Share(); !near(got, 42.5) {
		t.Fatalf("share after a sustained run = %v, want 42.5", got)
	}
	l.Throttled(0) // within Interval of the decrease: no second decrease
	if got := l.Multiplier(); !near(got, 0.85) {
		t.Fatalf("multiplier = %v, want 0.85", got)
	}
	eventually(t, 5*time.Second, "recovery to the full rate", func() bool {
		l.Succeeded()
		return l.Multiplier() == 1
	})
}

func TestLocalUnlimited(t *testing.T) {
	t.Parallel()
	l := quota.NewLocal(0, 0)
	for range 10000 {
		if err := l.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}
