package eiottest_test

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/worker/eiot"
	"github.com/simlookup/simlookup/worker/eiot/eiottest"
)

// independentSign is the vendor's algorithm written from NOTES.md without
// package sign: drop sign and empty values, sort by name, k=v&..., append
// &secret=, SHA-1, upper-case hex.
func independentSign(params map[string]string, secret string) string {
	keys := make([]string, 0, len(params))
	for k, v := range params {
		if k != "sign" && v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+params[k])
	}
	sum := sha1.Sum([]byte(strings.Join(parts, "&") + "&secret=" + secret))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// body builds a JSON request body with integer timestamp and nonce, signed
// independently.
func body(appkey, secret string, ts int64, nonce int, iccid string) []byte {
	p := map[string]string{"appkey": appkey, "timestamp": fmt.Sprint(ts), "nonce": fmt.Sprint(nonce), "iccid": iccid}
	sig := independentSign(p, secret)
	return fmt.Appendf(nil, `{"appkey":%q,"timestamp":%d,"nonce":%d,"iccid":%q,"sign":%q}`, appkey, ts, nonce, iccid, sig)
}

type answer struct {
	status int
	header http.Header
	raw    []byte
	Code   string          `json:"code"`
	Msg    string          `json:"message"`
	Data   json.RawMessage `json:"data"`
}

func post(t *testing.T, method, url string, b []byte) answer {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json;charset=utf-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: raw}
	_ = json.Unmarshal(raw, &a)
	return a
}

func api(url string) string { return url + eiot.Path }

func TestIndependentSignatureAcceptedThenReplay(t *testing.T) {
	t.Parallel()
	srv, url := eiottest.Start(t, eiottest.Config{})
	b := body(eiottest.TestAppKey, eiottest.TestSecret, time.Now().Unix(), 24523, "89860000000000000017")
	a := post(t, http.MethodPost, api(url), b)
	if a.status != 200 || a.Code != "200" || len(a.Data) < 10 {
		t.Fatalf("first: %d %s", a.status, a.raw)
	}
	a = post(t, http.MethodPost, api(url), b)
	if a.status != 200 || a.Code != eiottest.CodeReplay || string(a.Data) != "null" {
		t.Fatalf("replay: %d %s", a.status, a.raw)
	}
	// Timestamp and nonce sent as strings sign the same way and are accepted.
	ts := time.Now().Unix()
	p := map[string]string{"appkey": eiottest.TestAppKey, "timestamp": fmt.Sprint(ts), "nonce": "55555", "iccid": "89860000000000000025"}
	p["sign"] = independentSign(p, eiottest.TestSecret)
	sb, _ := json.Marshal(p)
	if a = post(t, http.MethodPost, api(url), sb); a.Code != "200" {
		t.Fatalf("string params: %s", a.raw)
	}
	st := srv.Stats()
	if st.Total != 3 || st.Accepted != 2 || st.Refused[eiottest.ReasonReplay] != 1 || st.PerICCID["89860000000000000017"] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestExampleAnsweredVerbatim(t *testing.T) {
	t.Parallel()
	_, url := eiottest.Start(t, eiottest.Config{})
	a := post(t, http.MethodPost, api(url), body(eiottest.TestAppKey, eiottest.TestSecret, time.Now().Unix(), 67958, eiottest.ExampleICCID))
	if string(a.raw) != eiottest.ExampleResponse {
		t.Fatalf("got %s", a.raw)
	}
	if !strings.HasPrefix(a.header.Get("Content-Type"), "application/json") {
		t.Fatalf("content type %q", a.header.Get("Content-Type"))
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	now := time.Now().Unix()
	k, s := eiottest.TestAppKey, eiottest.TestSecret
	cases := []struct {
		name, method, path string
		body               []byte
		status             int
		code, reason       string
	}{
		{"not json", "POST", eiot.Path, []byte(`appkey=x`), 200, eiottest.CodeBadRequest, eiottest.ReasonBadRequest},
		{"json array", "POST", eiot.Path, []byte(`[1]`), 200, eiottest.CodeBadRequest, eiottest.ReasonBadRequest},
		{"no iccid", "POST", eiot.Path, body(k, s, now, 12345, ""), 200, eiottest.CodeBadRequest, eiottest.ReasonBadRequest},
		{"no timestamp", "POST", eiot.Path, []byte(`{"appkey":"` + k + `","nonce":12345,"iccid":"1","sign":"X"}`), 200, eiottest.CodeBadRequest, eiottest.ReasonBadRequest},
		{"fraction nonce", "POST", eiot.Path, []byte(`{"appkey":"` + k + `","timestamp":1,"nonce":1.5,"iccid":"1","sign":"X"}`), 200, eiottest.CodeBadRequest, eiottest.ReasonBadRequest},
		{"wrong appkey", "POST", eiot.Path, body("other", s, now, 12345, "1"), 200, eiottest.CodeAppKey, eiottest.ReasonAppKey},
		{"no appkey", "POST", eiot.Path, []byte(`{"timestamp":1,"nonce":12345,"iccid":"1","sign":"X"}`), 200, eiottest.CodeAppKey, eiottest.ReasonAppKey},
		{"wrong secret", "POST", eiot.Path, body(k, "nope", now, 12345, "1"), 200, eiottest.CodeSign, eiottest.ReasonSign},
		{"no sign", "POST", eiot.Path, []byte(`{"appkey":"` + k + `","timestamp":1,"nonce":12345,"iccid":"1"}`), 200, eiottest.CodeSign, eiottest.ReasonSign},
		{"stale past", "POST", eiot.Path, body(k, s, now-330, 12345, "1"), 200, eiottest.CodeStale, eiottest.ReasonStale},
		{"stale future", "POST", eiot.Path, body(k, s, now+330, 12345, "1"), 200, eiottest.CodeStale, eiottest.ReasonStale},
		{"nonce low", "POST", eiot.Path, body(k, s, now, 9999, "1"), 200, eiottest.CodeNonce, eiottest.ReasonNonce},
		{"nonce high", "POST", eiot.Path, body(k, s, now, 100000, "1"), 200, eiottest.CodeNonce, eiottest.ReasonNonce},
		{"not found", "POST", eiot.Path, body(k, s, now, 12345, "89860000000000000404"), 200, eiottest.CodeNotFound, eiottest.ReasonNotFound},
		{"GET", "GET", eiot.Path, nil, 405, "", eiottest.ReasonRoute},
		{"wrong path", "POST", "/api/v2/card/getCardsInfo", body(k, s, now, 12345, "1"), 404, "", eiottest.ReasonRoute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, url := eiottest.Start(t, eiottest.Config{})
			a := post(t, tc.method, url+tc.path, tc.body)
			if a.status != tc.status || a.Code != tc.code {
				t.Fatalf("got %d %q (%s), want %d %q", a.status, a.Code, a.raw, tc.status, tc.code)
			}
			if tc.status == 200 && tc.code != "200" && string(a.Data) != "null" {
				t.Fatalf("data = %s", a.Data)
			}
			st := srv.Stats()
			if tc.reason != "" && (st.Refused[tc.reason] != 1 || st.RefusedTotal() != 1 || st.Accepted != 0) {
				t.Fatalf("stats %+v", st)
			}
			if tc.status == 404 && strings.HasPrefix(string(a.raw), "{") {
				t.Fatal("route errors must be error pages, not JSON")
			}
		})
	}
	// Lower-case hex is not the vendor's form.
	_, url := eiottest.Start(t, eiottest.Config{})
	b := body(k, s, now, 23456, "1")
	var m map[string]any
	json.Unmarshal(b, &m)
	m["sign"] = strings.ToLower(m["sign"].(string))
	lb, _ := json.Marshal(m)
	if a := post(t, "POST", api(url), lb); a.Code != eiottest.CodeSign {
		t.Fatalf("lower-case sign: %s", a.raw)
	}
}

func TestLogsRefusalsWithoutSecret(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var buf bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return buf.Write(p) })
	_, url := eiottest.Start(t, eiottest.Config{Logger: slogJSON(w)})
	post(t, "POST", api(url), body(eiottest.TestAppKey, "nope", time.Now().Unix(), 12345, "1"))
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(buf.String(), `"reason":"sign"`) || strings.Contains(buf.String(), eiottest.TestSecret) {
		t.Fatalf("log: %s", buf.String())
	}
}

func TestCardDataVariety(t *testing.T) {
	t.Parallel()
	statuses := map[string]int{}
	var intFlow, fracFlow, missingDates, memo, remark int
	c, _ := eiot.New(eiot.Config{AppKey: "x", Secret: sign.NewSecret("y")})
	_ = c
	for i := range 400 {
		iccid := fmt.Sprintf("8986%016d", i*7919)
		b1, b2 := eiottest.CardResponse(iccid), eiottest.CardResponse(iccid)
		if !bytes.Equal(b1, b2) {
			t.Fatal("not deterministic")
		}
		var env struct {
			Code string
			Data map[string]any
		}
		if err := json.Unmarshal(b1, &env); err != nil || env.Code != "200" {
			t.Fatalf("%s: %v", b1, err)
		}
		d := env.Data
		statuses[d["cardStatus"].(string)]++
		if d["iccid"] != iccid {
			t.Fatal("iccid not echoed")
		}
		for _, f := range []string{"monthUseFlow", "remainFlow", "totalUseFlow"} {
			v := d[f].(float64)
			if v == float64(int64(v)) {
				intFlow++
			} else {
				fracFlow++
			}
		}
		if d["packageEndDate"] == nil || d["expectedEndDate"] == nil || d["activateDate"] == nil {
			missingDates++
		}
		if d["memo"] != nil {
			memo++
		}
		if d["remark"] != nil {
			remark++
		}
	}
	for _, s := range append(eiottest.CardStatuses, eiottest.UnknownStatus) {
		if statuses[s] == 0 {
			t.Errorf("status %s never answered: %v", s, statuses)
		}
	}
	if intFlow == 0 || fracFlow == 0 || missingDates == 0 || memo == 0 || remark == 0 || remark == 400 {
		t.Errorf("variety: int %d frac %d missing %d memo %d remark %d", intFlow, fracFlow, missingDates, memo, remark)
	}
}

// fakeClock is a settable clock.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock { c := &fakeClock{}; c.ns.Store(t.UnixNano()); return c }
func (c *fakeClock) Now() time.Time       { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Set(t time.Time)      { c.ns.Store(t.UnixNano()) }

func TestQuota(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_800_000_000, 0)
	clk := newFakeClock(t0)
	srv, url := eiottest.Start(t, eiottest.Config{Clock: clk.Now, Quota: 5})
	nonce := 10000
	send := func() answer {
		nonce++
		return post(t, "POST", api(url), body(eiottest.TestAppKey, eiottest.TestSecret, clk.Now().Unix(), nonce, "89860000000000000017"))
	}
	count := func(n int) (ok, limited int) {
		for range n {
			a := send()
			switch a.status {
			case 200:
				ok++
			case 429:
				limited++
				if ra := a.header.Get("Retry-After"); ra != "1" && ra != "2" {
					t.Fatalf("Retry-After %q", a.header.Get("Retry-After"))
				}
			default:
				t.Fatalf("status %d", a.status)
			}
		}
		return
	}
	if ok, lim := count(20); ok != 5 || lim != 15 {
		t.Fatalf("at one instant: %d ok, %d limited", ok, lim)
	}
	clk.Set(t0.Add(999 * time.Millisecond))
	if ok, _ := count(3); ok != 0 {
		t.Fatal("quota freed too early")
	}
	clk.Set(t0.Add(time.Second))
	if ok, lim := count(8); ok != 5 || lim != 3 {
		t.Fatalf("after 1s: %d ok, %d limited", ok, lim)
	}
	st := srv.Stats()
	if st.Accepted != 10 || st.Refused[eiottest.ReasonQuota] != 21 || st.MaxWindowAccepted != 5 || st.Total != 31 {
		t.Fatalf("stats %+v", st)
	}
	// Quota changes at run time; 0 is unlimited.
	srv.SetQuota(0)
	if ok, _ := count(10); ok != 10 {
		t.Fatal("unlimited quota limited")
	}
	// A fractional quota: 0.5/s is one request per 2 s.
	srv.SetQuota(0.5)
	clk.Set(t0.Add(10 * time.Second))
	if ok, lim := count(2); ok != 1 || lim != 1 {
		t.Fatalf("0.5/s: %d ok %d limited", ok, lim)
	}
	clk.Set(t0.Add(11 * time.Second))
	if ok, _ := count(1); ok != 0 {
		t.Fatal("0.5/s let a second request through after 1s")
	}
	clk.Set(t0.Add(12 * time.Second))
	if ok, _ := count(1); ok != 1 {
		t.Fatal("0.5/s refused after 2s")
	}
}

func TestMaxWindow(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1_800_000_000, 0)
	clk := newFakeClock(t0)
	srv, url := eiottest.Start(t, eiottest.Config{Clock: clk.Now})
	offsets := []time.Duration{0, 500, 900, 1000, 1400, 2500, 2600, 3400, 3500, 3501} // ms
	for i, off := range offsets {
		clk.Set(t0.Add(off * time.Millisecond))
		b := body(eiottest.TestAppKey, eiottest.TestSecret, clk.Now().Unix(), 20000+i, "1")
		if i%2 == 1 {
			b = body(eiottest.TestAppKey, "wrong", clk.Now().Unix(), 20000+i, "1") // refused, still received
		}
		post(t, "POST", api(url), b)
	}
	// Windows (t-1s, t]: at 1400: {500,900,1000,1400} = 4; at 3501: {2600,3400,3500,3501} = 4.
	st := srv.Stats()
	if st.MaxWindow != 4 {
		t.Fatalf("MaxWindow = %d, want 4", st.MaxWindow)
	}
	// Accepted: 0, 900, 1400, 2600, 3500 → at 1400: {900,1400} = 2; at 3500: {2600,3500} = 2.
	if st.MaxWindowAccepted != 2 || st.Accepted != 5 {
		t.Fatalf("MaxWindowAccepted = %d (accepted %d), want 2", st.MaxWindowAccepted, st.Accepted)
	}
	reqs := srv.Requests()
	if len(reqs) != len(offsets) || eiottest.MaxInWindow(reqs, time.Second) != 4 || eiottest.MaxInWindow(srv.AcceptedTimes(), time.Second) != 2 {
		t.Fatalf("Requests/MaxInWindow disagree")
	}
	if n := eiottest.CountBetween(reqs, t0.Add(time.Second), t0.Add(3500*time.Millisecond)); n != 5 {
		t.Fatalf("CountBetween = %d, want 5", n)
	}
	if !st.FirstRequest.Equal(t0) || !st.LastRequest.Equal(t0.Add(3501*time.Millisecond)) {
		t.Fatalf("first/last %v %v", st.FirstRequest, st.LastRequest)
	}
	srv.ResetStats()
	if st := srv.Stats(); st.Total != 0 || st.MaxWindow != 0 || len(srv.Requests()) != 0 {
		t.Fatalf("after reset %+v", st)
	}
}

func TestMaxInWindowMatchesBruteForce(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(0, 0)
	var times []time.Time
	x := uint64(12345)
	cur := t0
	for range 300 {
		x = x*6364136223846793005 + 1442695040888963407
		cur = cur.Add(time.Duration(x>>40%400) * time.Millisecond)
		times = append(times, cur)
	}
	brute := 0
	for _, end := range times {
		n := 0
		for _, u := range times {
			if u.After(end.Add(-time.Second)) && !u.After(end) {
				n++
			}
		}
		brute = max(brute, n)
	}
	if got := eiottest.MaxInWindow(times, time.Second); got != brute {
		t.Fatalf("MaxInWindow = %d, brute force %d", got, brute)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
