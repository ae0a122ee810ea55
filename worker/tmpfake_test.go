package worker

// TEMPORARY stand-in for worker/eiot/eiottest until it is committed; same
// names as its API so the switch is an import change.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/simlookup/simlookup/sign"
)

type fakeFaults struct {
	Latency, Jitter time.Duration
	Rate5xx         float64
	Rate429         float64
	RetryAfter      time.Duration
	RateVendorCode  float64
	VendorCode      string
	RateMalformed   float64
	RateReset       float64
	RateHang        float64
	Hang            time.Duration
	RateNoData      float64
	Seed            uint64
}

type fakeConfig struct {
	AppKey, Secret string
	Faults         fakeFaults
	NotFound       func(string) bool
}

type fakeStats struct {
	Total     int
	PerICCID  map[string]int
	MaxWindow int
}

type fakeServer struct {
	cfg   fakeConfig
	mu    sync.Mutex
	f     fakeFaults
	rng   *rand.Rand
	times []time.Time
	per   map[string]int
}

func fakeStart(t *testing.T, cfg fakeConfig) (*fakeServer, string) {
	s := &fakeServer{cfg: cfg, f: cfg.Faults, per: map[string]int{}, rng: rand.New(rand.NewPCG(cfg.Faults.Seed, 1))}
	hs := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(hs.Close)
	return s, hs.URL
}

func (s *fakeServer) SetFaults(f fakeFaults) { s.mu.Lock(); s.f = f; s.mu.Unlock() }

func (s *fakeServer) Stats() fakeStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := fakeStats{Total: len(s.times), PerICCID: map[string]int{}}
	for k, v := range s.per {
		st.PerICCID[k] = v
	}
	j := 0
	for i := range s.times {
		for s.times[i].Sub(s.times[j]) >= time.Second {
			j++
		}
		st.MaxWindow = max(st.MaxWindow, i-j+1)
	}
	return st
}

func (s *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	var body struct {
		AppKey    string `json:"appkey"`
		Timestamp int64  `json:"timestamp"`
		Nonce     int64  `json:"nonce"`
		ICCID     string `json:"iccid"`
		Sign      string `json:"sign"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, "bad", 400)
		return
	}
	s.mu.Lock()
	s.times = append(s.times, arrived)
	s.per[body.ICCID]++
	f := s.f
	roll := func(p float64) bool { return p > 0 && s.rng.Float64() < p }
	hang, reset, e5, e429, mal, vc, nd := roll(f.RateHang), roll(f.RateReset), roll(f.Rate5xx), roll(f.Rate429), roll(f.RateMalformed), roll(f.RateVendorCode), roll(f.RateNoData)
	jit := time.Duration(0)
	if f.Jitter > 0 {
		jit = time.Duration(s.rng.Int64N(int64(f.Jitter)))
	}
	s.mu.Unlock()
	time.Sleep(f.Latency + jit)
	reply := func(v any) { w.Header().Set("Content-Type", "application/json"); _ = json.NewEncoder(w).Encode(v) }
	ok, _ := sign.Verify(sign.Params{"appkey": body.AppKey, "timestamp": body.Timestamp, "nonce": body.Nonce, "iccid": body.ICCID}, body.Sign, sign.NewSecret(s.cfg.Secret))
	switch {
	case body.AppKey != s.cfg.AppKey:
		reply(map[string]any{"code": "10002", "message": "appkey refused"})
	case !ok:
		reply(map[string]any{"code": "10003", "message": "sign error"})
	case hang:
		select {
		case <-r.Context().Done():
		case <-time.After(f.Hang):
		}
	case reset:
		hj, _ := w.(http.Hijacker)
		c, _, _ := hj.Hijack()
		c.Close()
	case e5:
		http.Error(w, `{"code":"500","message":"oops"}`, 500)
	case e429:
		w.Header().Set("Retry-After", fmt.Sprint(int(f.RetryAfter.Seconds())))
		w.WriteHeader(429)
	case mal:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"code": "200", "data": {`))
	case vc:
		reply(map[string]any{"code": f.VendorCode, "message": "vendor says no", "data": nil})
	case nd || (s.cfg.NotFound != nil && s.cfg.NotFound(body.ICCID)):
		reply(map[string]any{"code": "200", "message": "success", "data": nil})
	default:
		reply(map[string]any{"code": "200", "message": "success", "data": map[string]any{
			"iccid": body.ICCID, "imsi": "454120000000001", "cardStatus": "ACTIVATED_NAME", "monthUseFlow": 402.77, "memo": "m"}})
	}
}
