package eiottest_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/simlookup/simlookup/worker/eiot"
	"github.com/simlookup/simlookup/worker/eiot/eiottest"
)

func TestFaultsValidate(t *testing.T) {
	t.Parallel()
	for _, f := range []eiottest.Faults{{Rate5xx: -0.1}, {Rate429: 1.5}, {Rate5xx: 0.6, RateReset: 0.6}, {Latency: -1}} {
		if f.Validate() == nil {
			t.Errorf("%+v validated", f)
		}
		if _, err := eiottest.New(eiottest.Config{AppKey: "k", Secret: secret(), Faults: f}); err == nil {
			t.Errorf("New accepted %+v", f)
		}
	}
	if _, err := eiottest.New(eiottest.Config{Secret: secret()}); err == nil {
		t.Error("New without appkey")
	}
}

func TestFaultsJSONRoundTrip(t *testing.T) {
	t.Parallel()
	f := eiottest.Faults{Latency: 5 * time.Millisecond, Jitter: time.Millisecond, Rate5xx: 0.1, Rate429: 0.05, RetryAfter: 2 * time.Second, RetryAfterDate: true,
		RateVendorCode: 0.01, VendorCode: "10007", RateMalformed: 0.01, RateReset: 0.01, RateHang: 0.01, Hang: 20 * time.Second, RateNoData: 0.02, Seed: 42}
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"latency":"5ms"`) || !strings.Contains(string(b), `"rate_5xx":0.1`) {
		t.Fatalf("json %s", b)
	}
	var g eiottest.Faults
	if err := json.Unmarshal(b, &g); err != nil || g != f {
		t.Fatalf("round trip: %+v %v", g, err)
	}
	if err := json.Unmarshal([]byte(`{"latency":1000000}`), &g); err != nil || g.Latency != time.Millisecond {
		t.Fatalf("nanoseconds: %v %v", g.Latency, err)
	}
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	srv, url := eiottest.Start(t, eiottest.Config{})
	c, _ := eiot.New(srv.ClientConfig(url))
	if _, err := c.Lookup(t.Context(), "89860000000000000017"); err != nil {
		t.Fatal(err)
	}
	// Switch faults and quota in the running server over HTTP.
	a := post(t, http.MethodPut, url+"/admin/faults", []byte(`{"rate_5xx":1,"seed":7,"quota":3.5}`))
	if a.status != 200 {
		t.Fatalf("PUT faults: %d %s", a.status, a.raw)
	}
	if f := srv.Faults(); f.Rate5xx != 1 || f.Seed != 7 || srv.Quota() != 3.5 {
		t.Fatalf("faults %+v quota %v", f, srv.Quota())
	}
	if _, err := c.Lookup(t.Context(), "89860000000000000017"); eiot.ClassOf(err) != eiot.ClassRetryable {
		t.Fatalf("with 5xx fault: %v", err)
	}
	if a := post(t, http.MethodPost, url+"/admin/faults", []byte(`{"rate_5xx":2}`)); a.status != 400 {
		t.Fatalf("invalid faults accepted: %d", a.status)
	}
	if a := post(t, http.MethodGet, url+"/admin/faults", nil); a.status != 200 || !strings.Contains(string(a.raw), `"quota": 3.5`) {
		t.Fatalf("GET faults: %s", a.raw)
	}
	post(t, http.MethodPost, url+"/admin/faults", []byte(`{}`)) // clears faults; quota unchanged
	if srv.Faults() != (eiottest.Faults{}) || srv.Quota() != 3.5 {
		t.Fatal("POST {} did not clear the faults")
	}
	a = post(t, http.MethodGet, url+"/stats", nil)
	var st eiottest.Stats
	if err := json.Unmarshal(a.raw, &st); err != nil || st.Total != 2 || st.Accepted != 1 || st.PerICCID["89860000000000000017"] != 1 || st.MaxWindow < 1 {
		t.Fatalf("GET /stats: %s %v", a.raw, err)
	}
	a = post(t, http.MethodGet, url+"/stats?per_iccid=false", nil)
	st = eiottest.Stats{}
	if err := json.Unmarshal(a.raw, &st); err != nil || st.Total != 2 || st.PerICCID != nil {
		t.Fatalf("GET /stats?per_iccid=false: %s %v", a.raw, err)
	}
	if sum := srv.Summary(); sum.Total != 2 || sum.PerICCID != nil {
		t.Fatalf("Summary %+v", sum)
	}
	if a := post(t, http.MethodPost, url+"/admin/reset", nil); a.status != 204 {
		t.Fatalf("reset %d", a.status)
	}
	if st := srv.Stats(); st.Total != 0 {
		t.Fatalf("after reset %+v", st)
	}
}

func TestFaultsDeterministicPerSeed(t *testing.T) {
	t.Parallel()
	run := func(seed int64) string {
		srv, url := eiottest.Start(t, eiottest.Config{Faults: eiottest.Faults{Rate5xx: 0.3, RateVendorCode: 0.2, RateNoData: 0.2, Seed: seed}})
		c, _ := eiot.New(srv.ClientConfig(url))
		var b strings.Builder
		for range 40 {
			_, err := c.Lookup(t.Context(), "89860000000000000017")
			var e *eiot.Error
			switch {
			case err == nil:
				b.WriteString("ok ")
			case errorsAs(err, &e):
				b.WriteString(e.Kind + ":" + e.Code + ":" + http.StatusText(e.HTTPStatus) + " ")
			}
		}
		st := srv.Stats()
		if st.Faults[eiottest.Fault500]+st.Faults[eiottest.Fault502]+st.Faults[eiottest.Fault503] == 0 || st.Faults[eiottest.FaultNoData] == 0 {
			t.Errorf("seed %d: faults %v", seed, st.Faults)
		}
		return b.String()
	}
	a, b, c := run(1), run(1), run(2)
	if a != b {
		t.Fatalf("same seed, different faults:\n%s\n%s", a, b)
	}
	if a == c {
		t.Fatal("different seeds, same faults")
	}
}

func TestLatencyAndJitter(t *testing.T) {
	t.Parallel()
	srv, url := eiottest.Start(t, eiottest.Config{Faults: eiottest.Faults{Latency: 30 * time.Millisecond, Jitter: 20 * time.Millisecond}})
	c, _ := eiot.New(srv.ClientConfig(url))
	start := time.Now()
	if _, err := c.Lookup(t.Context(), "89860000000000000017"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("answered in %v, before the latency", d)
	}
	// SetFaults at run time removes it; the server stays race-free under use.
	if err := srv.SetFaults(eiottest.Faults{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(t.Context(), "89860000000000000017"); err != nil {
		t.Fatal(err)
	}
}
