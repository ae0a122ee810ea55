package quota_test

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/worker/quota"
)

// A single process: a token bucket that also slows down on throttling.
func ExampleNewLocal() {
	l := quota.NewLocal(50, 5)
	ctx := context.Background()
	for range 5 {
		if err := l.Wait(ctx); err != nil {
			panic(err)
		}
	}
	for range 3 { // a sustained run of 429s
		l.Throttled(time.Second)
	}
	fmt.Printf("%.1f req/s\n", l.Share())
	// Output: 42.5 req/s
}

// A fleet: every process with the same Key shares Rate. The appkey is
// never stored; KeyFor hashes it.
func ExampleNewFleet() {
	var js jetstream.JetStream // from jetstream.New(nc)
	f, err := quota.NewFleet(quota.Config{
		JetStream: js,
		Key:       quota.KeyFor("the-appkey"),
		Rate:      50, // the whole fleet's requests per second
		Burst:     5,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = f // go f.Run(ctx); then f.Wait(ctx) before every vendor attempt
	// Output: quota: invalid config: JetStream is required
}
