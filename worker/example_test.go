package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/internal/natstest"
	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/worker"
	"github.com/simlookup/simlookup/worker/eiot"
	"github.com/simlookup/simlookup/worker/eiot/eiottest"
)

// A worker on an embedded NATS server and the fake vendor API: publish a
// bare ICCID, read its result event.
func Example() {
	srv, err := natstest.Start(natstest.Options{})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		panic(err)
	}

	fake, err := eiottest.New(eiottest.Config{AppKey: eiottest.TestAppKey, Secret: sign.NewSecret(eiottest.TestSecret)})
	if err != nil {
		panic(err)
	}
	api := httptest.NewServer(fake)
	defer api.Close()
	client, err := eiot.New(fake.ClientConfig(api.URL))
	if err != nil {
		panic(err)
	}

	w, err := worker.New(worker.Config{
		JetStream:     js,
		Client:        client,
		Rate:          50,
		StreamOptions: schemas.StreamOptions{RequestsMaxBytes: 16 << 20, ResultsMaxBytes: 16 << 20},
	})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()

	// Run provisions the streams; publish once they accept requests.
	for {
		_, err := js.Publish(ctx, schemas.RequestSubject, []byte(" 89852240400014306175\n"))
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			panic(fmt.Sprintf("the requests stream never accepted a request: %v", err))
		}
		time.Sleep(50 * time.Millisecond) // polling, bounded by ctx
	}
	cons, err := js.OrderedConsumer(ctx, schemas.ResultStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		panic(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(20 * time.Second))
	if err != nil {
		panic(err)
	}
	var r schemas.Result
	if err := json.Unmarshal(msg.Data(), &r); err != nil {
		panic(err)
	}
	fmt.Println(msg.Subject())
	fmt.Println(r.Status, r.ICCID, "luhn valid:", *r.ICCIDLuhnValid, "attempts:", r.Attempts)
	fmt.Println("card status:", *r.Card.CardStatus != "")
	stop()
	fmt.Println("run:", <-done)
	// Output:
	// simlookup.result.ok.89852240400014306175
	// ok 89852240400014306175 luhn valid: false attempts: 1
	// card status: true
	// run: <nil>
}
