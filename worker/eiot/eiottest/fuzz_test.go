package eiottest_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/simlookup/simlookup/worker/eiot"
	"github.com/simlookup/simlookup/worker/eiot/eiottest"
)

// The fake parses untrusted bodies: it never panics, and it always answers
// a vendor-style JSON body on the API path.
func FuzzFakeRequest(f *testing.F) {
	now := time.Now().Unix()
	f.Add(body(eiottest.TestAppKey, eiottest.TestSecret, now, 24523, "89860000000000000017"))
	f.Add(body(eiottest.TestAppKey, eiottest.TestSecret, now, 24523, eiottest.ExampleICCID))
	f.Add([]byte(`{"appkey":"test-appkey","timestamp":"1","nonce":[],"iccid":{},"sign":null}`))
	f.Add([]byte(`{"appkey":"test-appkey","timestamp":1e3,"nonce":-1,"x":[1],"sign":"A"}`))
	f.Add([]byte(`{} {}`))
	srv, err := eiottest.New(eiottest.Config{AppKey: eiottest.TestAppKey, Secret: secret()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, eiot.Path, bytes.NewReader(b)))
		if rec.Code != 200 {
			t.Fatalf("status %d", rec.Code)
		}
		var env struct {
			Code *string         `json:"code"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Code == nil {
			t.Fatalf("answer %q: %v", rec.Body.Bytes(), err)
		}
	})
}

func TestConcurrentUseWithRuntimeChanges(t *testing.T) {
	t.Parallel()
	srv, url := eiottest.Start(t, eiottest.Config{})
	c, _ := eiot.New(srv.ClientConfig(url))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				_, _ = c.Lookup(t.Context(), fmt.Sprintf("8986%08d%08d", g, i))
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			_ = srv.SetFaults(eiottest.Faults{Rate5xx: 0.2, RateNoData: 0.1, Seed: int64(i)})
			srv.SetQuota(float64(1000 - i))
			_ = srv.Stats()
			_ = srv.Requests()
		}
	})
	wg.Wait()
	st := srv.Stats()
	if st.Total != 200 || st.Accepted+st.RefusedTotal()+st.Faults["500"]+st.Faults["502"]+st.Faults["503"] != 200 {
		t.Fatalf("stats do not add up: %+v", st)
	}
	if int64(len(srv.Requests())) != st.Total || st.MaxWindow < 1 || st.MaxWindow > st.Total {
		t.Fatalf("windows: %+v", st)
	}
}

func BenchmarkServeHTTP(b *testing.B) {
	srv, err := eiottest.New(eiottest.Config{AppKey: eiottest.TestAppKey, Secret: secret()})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().Unix()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		req := httptest.NewRequest(http.MethodPost, eiot.Path, bytes.NewReader(body(eiottest.TestAppKey, eiottest.TestSecret, now, 10000+i%90000, fmt.Sprintf("8986%014d17", i))))
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
