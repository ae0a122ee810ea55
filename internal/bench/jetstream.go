package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// rawJetStream is the JetStream ceiling: n messages of payload published
// (async, every PubAck awaited) to a fresh work-queue stream on the same
// server while one pull consumer consumes and acks them. It returns messages
// per second from the first publish to the last ack sent.
func rawJetStream(ctx context.Context, js jetstream.JetStream, n int, payload []byte) (float64, error) {
	const name = "SIMLOOKUP_BENCH_RAW"
	_ = js.DeleteStream(ctx, name)
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name:      name,
		Subjects:  []string{"simlookup_bench.raw"},
		Retention: jetstream.WorkQueuePolicy,
		Storage:   jetstream.FileStorage,
	})
	if err != nil {
		return 0, fmt.Errorf("bench: raw stream: %w", err)
	}
	defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), name) }()
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       "raw",
		AckPolicy:     jetstream.AckExplicitPolicy,
		MaxAckPending: 100_000,
	})
	if err != nil {
		return 0, fmt.Errorf("bench: raw consumer: %w", err)
	}
	var got atomic.Int64
	done := make(chan struct{})
	cc, err := cons.Consume(func(m jetstream.Msg) {
		_ = m.Ack()
		if got.Add(1) == int64(n) {
			close(done)
		}
	}, jetstream.PullMaxMessages(1000))
	if err != nil {
		return 0, fmt.Errorf("bench: raw consume: %w", err)
	}
	defer cc.Stop()

	start := time.Now()
	// publish in windows of 1,000 (every PubAck awaited) so the async
	// publisher never stalls on its pending limit
	for from := 0; from < n; from += 1000 {
		futures := make([]jetstream.PubAckFuture, 0, 1000)
		for i := from; i < min(from+1000, n); i++ {
			f, err := js.PublishAsync("simlookup_bench.raw", payload, jetstream.WithMsgID(fmt.Sprintf("raw-%d", i)))
			if err != nil {
				return 0, fmt.Errorf("bench: raw publish: %w", err)
			}
			futures = append(futures, f)
		}
		for _, f := range futures {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return 0, fmt.Errorf("bench: raw publish: %w", err)
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
	}
	select {
	case <-done:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("bench: raw consume: %d of %d after 5 minutes", got.Load(), n)
	}
	return float64(n) / time.Since(start).Seconds(), nil
}
