package quota_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/internal/natstest"
	"github.com/simlookup/simlookup/worker/quota"
)

// BenchmarkWait compares the per-call cost of Wait (plus Succeeded, as the
// worker calls it) for the local and the fleet limiter, at a rate no
// machine reaches, so the numbers are the limiter's own overhead: the
// single-process fleet case must cost nothing noticeable next to an HTTP
// call (tens of microseconds at best).
func BenchmarkWait(b *testing.B) {
	const rate = 1e9
	b.Run("local", func(b *testing.B) {
		l := quota.NewLocal(rate, 1000)
		run(b, l)
	})
	b.Run("fleet", func(b *testing.B) {
		bb := setupB(b)
		f, err := quota.NewFleet(quota.Config{JetStream: bb, Key: "bench", Member: "solo", Rate: rate, Burst: 1000, LeaseTTL: 4 * time.Second, Renew: 500 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = f.Run(ctx) }()
		b.Cleanup(func() { cancel(); <-done })
		for f.Share() == 0 {
			time.Sleep(10 * time.Millisecond) // until admitted; setup, not timed
		}
		run(b, f)
	})
}

type feedbackLimiter interface {
	Wait(context.Context) error
	Succeeded()
}

func run(b *testing.B, l feedbackLimiter) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Wait(ctx); err != nil {
				b.Error(err)
				return
			}
			l.Succeeded()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "waits/s")
}

func setupB(b *testing.B) jetstream.JetStream {
	b.Helper()
	srv := natstest.Run(b)
	nc, err := srv.Connect()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	return js
}
