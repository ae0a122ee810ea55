package worker

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/worker/eiot"
)

func benchWorker(b *testing.B) *Worker {
	b.Helper()
	return &Worker{cfg: Config{Name: "bench", Now: time.Now, GiveUpAfter: DefaultGiveUpAfter}}
}

func benchJob() *job {
	p, _ := ParseRequest([]byte(`{"iccid":"89852240400014306175","request_id":"job-1:000042","job_id":"job-1","meta":{"fleet":"north"}}`), 0)
	return &job{
		subject:    "simlookup.request.bulk",
		meta:       &jetstream.MsgMetadata{Sequence: jetstream.SequencePair{Stream: 42}, NumDelivered: 1, Timestamp: time.Now()},
		requestID:  p.RequestID,
		parsed:     p,
		attempts:   1,
		firstCall:  time.Now(),
		deliveries: 1,
	}
}

func BenchmarkOKResult(b *testing.B) {
	w := benchWorker(b)
	j := benchJob()
	s := func(v string) *string { return &v }
	f := func(v float64) *float64 { return &v }
	raw := []byte(`{"code":"200","message":"success","data":{"iccid":"89852240400014306175","imsi":"454120000000000","cardStatus":"ACTIVATED_NAME","monthUseFlow":402.77,"memo":"x"}}`)
	j.lastResp = &eiot.Response{
		Card:  schemas.Card{ICCID: s("89852240400014306175"), IMSI: s("454120000000000"), CardStatus: s("ACTIVATED_NAME"), MonthUseFlowMB: f(402.77)},
		Extra: map[string]json.RawMessage{"memo": json.RawMessage(`"x"`)},
		Raw:   raw, HTTPStatus: 200, Code: "200", Message: "success", FetchedAt: time.Now(),
	}
	b.ReportAllocs()
	for b.Loop() {
		r := w.lookupResult(j)
		if _, err := json.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkInvalidResult(b *testing.B) {
	w := benchWorker(b)
	j := benchJob()
	j.data = []byte("89.>")
	ie := &InvalidError{Code: ReasonBadChars, Message: "iccid has '.' at position 3"}
	b.ReportAllocs()
	for b.Loop() {
		r := w.invalidResult(j, ie)
		if _, err := json.Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}
