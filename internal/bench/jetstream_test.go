package bench

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/internal/natstest"
)

func TestRawJetStream(t *testing.T) {
	s := natstest.Run(t)
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rate, err := rawJetStream(ctx, js, 500, make([]byte, 1000))
	if err != nil {
		t.Fatal(err)
	}
	if rate <= 0 {
		t.Fatalf("rate = %v", rate)
	}
	if _, err := js.Stream(ctx, "SIMLOOKUP_BENCH_RAW"); err == nil {
		t.Fatal("raw stream left behind")
	}
}
