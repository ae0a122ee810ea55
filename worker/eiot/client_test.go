package eiot_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/worker/eiot"
)

const (
	testAppKey = "app-key-0001"
	testSecret = "test-secret-abc"
)

var fixedNow = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func newClient(t *testing.T, url string, mod ...func(*eiot.Config)) *eiot.Client {
	t.Helper()
	cfg := eiot.Config{BaseURL: url, AppKey: testAppKey, Secret: sign.NewSecret(testSecret), Timeout: 5 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := eiot.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func serve(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

func exampleBody(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/example_response.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	ok := eiot.Config{AppKey: "k", Secret: sign.NewSecret("s")}
	cases := []struct {
		name string
		mod  func(*eiot.Config)
	}{
		{"no appkey", func(c *eiot.Config) { c.AppKey = "" }},
		{"no secret", func(c *eiot.Config) { c.Secret = sign.Secret{} }},
		{"ftp url", func(c *eiot.Config) { c.BaseURL = "ftp://x" }},
		{"no host", func(c *eiot.Config) { c.BaseURL = "http://" }},
		{"relative", func(c *eiot.Config) { c.BaseURL = "oapi.eiotclub.com" }},
		{"query", func(c *eiot.Config) { c.BaseURL = "https://x/?a=b" }},
		{"negative timeout", func(c *eiot.Config) { c.Timeout = -1 }},
		{"negative max", func(c *eiot.Config) { c.MaxResponseBytes = -1 }},
	}
	for _, tc := range cases {
		cfg := ok
		tc.mod(&cfg)
		if _, err := eiot.New(cfg); !errors.Is(err, eiot.ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", tc.name, err)
		}
	}
	c, err := eiot.New(ok)
	if err != nil {
		t.Fatal(err)
	}
	if c.URL() != "https://oapi.eiotclub.com/api/v3/card/getCardsInfo" {
		t.Fatalf("default URL = %s", c.URL())
	}
	cfg := ok
	cfg.BaseURL = "http://proxy.local:8080/vendor/"
	c, _ = eiot.New(cfg)
	if c.URL() != "http://proxy.local:8080/vendor/api/v3/card/getCardsInfo" {
		t.Fatalf("URL = %s", c.URL())
	}
}

func TestDefaultHTTPClient(t *testing.T) {
	t.Parallel()
	hc := eiot.NewHTTPClient()
	tr := hc.Transport.(*http.Transport)
	if tr.MaxIdleConnsPerHost < 100 || tr.DisableKeepAlives {
		t.Fatalf("transport not sized for concurrency: %+v", tr)
	}
	if tr.TLSClientConfig != nil && tr.TLSClientConfig.InsecureSkipVerify {
		t.Fatal("TLS verification disabled")
	}
	// TLS verification on: a self-signed test server is refused.
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(exampleBody(t)) }))
	defer ts.Close()
	c := newClient(t, ts.URL)
	_, err := c.Lookup(t.Context(), "89852240400014306175")
	var e *eiot.Error
	if !errors.As(err, &e) || e.Kind != eiot.KindTLS || e.Class != eiot.ClassSystemic || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("self-signed server: want a systemic tls error naming the certificate, got %v", err)
	}
	// With the server's CA trusted, it works.
	c = newClient(t, ts.URL, func(c *eiot.Config) { c.HTTPClient = ts.Client() })
	if _, err := c.Lookup(t.Context(), "89852240400014306175"); err != nil {
		t.Fatal(err)
	}
}

func TestRequestContract(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var bodies []map[string]any
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/base/api/v3/card/getCardsInfo" || r.URL.RawQuery != "" {
			t.Errorf("%s %s", r.Method, r.URL)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/json;charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		if ua := r.Header.Get("User-Agent"); !strings.HasPrefix(ua, "simlookup/") {
			t.Errorf("User-Agent %q", ua)
		}
		dec := json.NewDecoder(r.Body)
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Error(err)
		}
		mu.Lock()
		bodies = append(bodies, m)
		mu.Unlock()
		w.Write(exampleBody(t))
	})
	c := newClient(t, url+"/base", func(c *eiot.Config) { c.Now = func() time.Time { return fixedNow } })
	for range 20 {
		if _, err := c.Lookup(t.Context(), "89852240400014306175"); err != nil {
			t.Fatal(err)
		}
	}
	nonces := map[string]bool{}
	for _, m := range bodies {
		if len(m) != 5 {
			t.Fatalf("body has %d fields: %v", len(m), m)
		}
		if m["appkey"] != testAppKey || m["iccid"] != "89852240400014306175" {
			t.Fatalf("body %v", m)
		}
		ts, ok := m["timestamp"].(json.Number)
		if !ok || ts.String() != strconv.FormatInt(fixedNow.Unix(), 10) || len(ts.String()) != 10 {
			t.Fatalf("timestamp %v (%T)", m["timestamp"], m["timestamp"])
		}
		n, ok := m["nonce"].(json.Number)
		ni, _ := n.Int64()
		if !ok || ni < 10000 || ni > 99999 {
			t.Fatalf("nonce %v", m["nonce"])
		}
		nonces[n.String()] = true
		p := sign.Params{}
		for k, v := range m {
			p[k] = v
		}
		sig, _ := m["sign"].(string)
		if ok, err := sign.Verify(p, sig, sign.NewSecret(testSecret)); !ok || err != nil {
			t.Fatalf("signature does not verify: %v %v", m, err)
		}
	}
	if len(nonces) < 15 {
		t.Fatalf("nonces not fresh: %d distinct of 20", len(nonces))
	}
}

func ptrEq[T comparable](t *testing.T, name string, got *T, want T) {
	t.Helper()
	if got == nil {
		t.Errorf("%s = nil, want %v", name, want)
	} else if *got != want {
		t.Errorf("%s = %v, want %v", name, *got, want)
	}
}

func TestVendorExampleResponse(t *testing.T) {
	t.Parallel()
	body := exampleBody(t)
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	})
	c := newClient(t, url, func(c *eiot.Config) { c.Now = func() time.Time { return fixedNow } })
	r, err := c.Lookup(t.Context(), "89852240400014306175")
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Raw) != string(body) || r.HTTPStatus != 200 || r.Code != "200" || r.Message != "success" || !r.FetchedAt.Equal(fixedNow) || !r.HasData() {
		t.Fatalf("response meta: %d %q %q %v", r.HTTPStatus, r.Code, r.Message, r.FetchedAt)
	}
	k := r.Card
	ptrEq(t, "iccid", k.ICCID, "89852240400014306175") // fails Luhn; not our business
	ptrEq(t, "eid", k.EID, "")
	ptrEq(t, "imsi", k.IMSI, "454030226105036")
	ptrEq(t, "imei", k.IMEI, "356731102212126")
	ptrEq(t, "activate_date_raw", k.ActivateDateRaw, "2024-01-08 15:05:19")
	ptrEq(t, "activate_date", k.ActivateDate, time.Date(2024, 1, 8, 7, 5, 19, 0, time.UTC))
	if k.ActivateDate.Location() != time.UTC {
		t.Error("activate_date not in UTC")
	}
	ptrEq(t, "card_status", k.CardStatus, "NON_ACTIVATED_NAME")
	ptrEq(t, "is_real_name", k.IsRealName, 1)
	ptrEq(t, "month_remain_flow_mb", k.MonthRemainFlowMB, 20)
	ptrEq(t, "month_use_flow_mb", k.MonthUseFlowMB, 0)
	ptrEq(t, "remain_flow_type", k.RemainFlowType, 0)
	ptrEq(t, "product_code", k.ProductCode, "1GJDXLLBCP20210204105313")
	ptrEq(t, "data_flow_mb", k.DataFlowMB, 410)
	ptrEq(t, "remain_flow_mb", k.RemainFlowMB, 410)
	ptrEq(t, "imei_pool_status", k.IMEIPoolStatus, 0)
	ptrEq(t, "imei_pool_unlock_count", k.IMEIPoolUnlockCount, 0)
	ptrEq(t, "is_imei_pool", k.IsIMEIPool, 0)
	ptrEq(t, "network", k.Network, "")
	ptrEq(t, "total_use_flow_mb", k.TotalUseFlowMB, 402.77)
	ptrEq(t, "package_code", k.PackageCode, "GJ-LLB-20M-360D-LTCSCP-2022102899F1E1EF")
	ptrEq(t, "package_kind", k.PackageKind, 0)
	if k.PackageEndDate != nil || k.PackageEndDateRaw != nil || k.ExpectedEndDate != nil || k.ExpectedEndDateRaw != nil || k.Remark != nil {
		t.Error("fields missing from the example must be nil")
	}
	if len(r.Extra) != 1 || string(r.Extra["memo"]) != `"abc"` {
		t.Fatalf("extra = %v", r.Extra)
	}
}

func TestDecodeOddFields(t *testing.T) {
	t.Parallel()
	body := `{"code":"200","message":"success","data":{
		"iccid": 8985, "imsi": null, "isRealName": 1.0, "packageKind": 1.5, "remainFlowType": "0",
		"imeiPoolUnlockCount": 1e2, "isIMEIPool": 99999999999999999999,
		"monthUseFlow": 12, "monthRemainFlow": 1.25e3, "dataFlow": "410", "remainFlow": 1e999, "totalUseFlow": -0.5,
		"activateDate": "2024-13-40 99:00:00", "packageEndDate": "", "expectedEndDate": 20240108,
		"cardStatus": "SOMETHING_NEW_NAME", "remark": "备注", "network": {"a":1}, "nested": {"x":[1,2]}}}`
	url := serve(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
	c := newClient(t, url, func(c *eiot.Config) { c.Location = time.FixedZone("X", 3600) })
	r, err := c.Lookup(t.Context(), "8985")
	if err != nil {
		t.Fatal(err)
	}
	k := r.Card
	ptrEq(t, "is_real_name", k.IsRealName, 1)
	ptrEq(t, "imei_pool_unlock_count", k.IMEIPoolUnlockCount, 100)
	ptrEq(t, "month_use_flow_mb", k.MonthUseFlowMB, 12)
	ptrEq(t, "month_remain_flow_mb", k.MonthRemainFlowMB, 1250)
	ptrEq(t, "total_use_flow_mb", k.TotalUseFlowMB, -0.5)
	ptrEq(t, "card_status", k.CardStatus, "SOMETHING_NEW_NAME")
	ptrEq(t, "remark", k.Remark, "备注")
	ptrEq(t, "activate_date_raw", k.ActivateDateRaw, "2024-13-40 99:00:00")
	ptrEq(t, "package_end_date_raw", k.PackageEndDateRaw, "")
	if k.ActivateDate != nil || k.PackageEndDate != nil {
		t.Error("unparsable dates must give a nil time")
	}
	if k.ICCID != nil || k.IMSI != nil || k.PackageKind != nil || k.RemainFlowType != nil || k.IsIMEIPool != nil ||
		k.DataFlowMB != nil || k.RemainFlowMB != nil || k.ExpectedEndDate != nil || k.ExpectedEndDateRaw != nil || k.Network != nil {
		t.Errorf("wrong-typed fields must be nil: %+v", k)
	}
	wantExtra := map[string]string{
		"iccid": `8985`, "packageKind": `1.5`, "remainFlowType": `"0"`, "isIMEIPool": `99999999999999999999`,
		"dataFlow": `"410"`, "remainFlow": `1e999`, "expectedEndDate": `20240108`, "network": `{"a":1}`, "nested": `{"x":[1,2]}`,
	}
	if len(r.Extra) != len(wantExtra) {
		t.Errorf("extra has %d fields, want %d: %v", len(r.Extra), len(wantExtra), r.Extra)
	}
	for name, want := range wantExtra {
		if got := string(r.Extra[name]); got != want {
			t.Errorf("extra[%s] = %s, want %s", name, got, want)
		}
	}
	// Dates are read in the configured zone.
	body = `{"code":"200","message":"","data":{"activateDate":"2024-01-08 15:05:19"}}`
	r, _ = c.Lookup(t.Context(), "8985")
	ptrEq(t, "activate_date", r.Card.ActivateDate, time.Date(2024, 1, 8, 14, 5, 19, 0, time.UTC))
}

type outcome struct {
	name       string
	status     int
	header     map[string]string
	body       string
	class      eiot.Class
	kind       string
	code       string
	retryAfter time.Duration
	response   bool // a *Response comes with the error
}

func TestOutcomes(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	cases := []outcome{
		{name: "no data null", status: 200, body: `{"code":"200","message":"success","data":null}`, class: eiot.ClassNoData, kind: eiot.KindNoData, code: "200", response: true},
		{name: "no data absent", status: 200, body: `{"code":"200","message":"success"}`, class: eiot.ClassNoData, kind: eiot.KindNoData, code: "200", response: true},
		{name: "permanent code", status: 200, body: `{"code":"20001","message":"card not found","data":null}`, class: eiot.ClassPermanent, kind: eiot.KindVendorCode, code: "20001", response: true},
		{name: "numeric code", status: 200, body: `{"code":20001,"message":"card not found"}`, class: eiot.ClassPermanent, kind: eiot.KindVendorCode, code: "20001", response: true},
		{name: "busy code", status: 200, body: `{"code":"10007","message":"busy","data":null}`, class: eiot.ClassRetryable, kind: eiot.KindVendorCode, code: "10007", response: true},
		{name: "sign code", status: 200, body: `{"code":"10003","message":"sign error","data":null}`, class: eiot.ClassSystemic, kind: eiot.KindVendorCode, code: "10003", response: true},
		{name: "replay code", status: 200, body: `{"code":"10006","message":"repeated","data":null}`, class: eiot.ClassReplay, kind: eiot.KindVendorCode, code: "10006", response: true},
		{name: "429 seconds", status: 429, header: map[string]string{"Retry-After": "7"}, body: `{"code":"429","message":"too many"}`, class: eiot.ClassRetryable, kind: eiot.KindHTTPStatus, code: "429", retryAfter: 7 * time.Second},
		{name: "429 date", status: 429, header: map[string]string{"Retry-After": now.Add(30 * time.Second).Format(http.TimeFormat)}, body: "slow down", class: eiot.ClassRetryable, kind: eiot.KindHTTPStatus, retryAfter: 30 * time.Second},
		{name: "429 past date", status: 429, header: map[string]string{"Retry-After": now.Add(-time.Hour).Format(http.TimeFormat)}, class: eiot.ClassRetryable, kind: eiot.KindHTTPStatus},
		{name: "429 garbage", status: 429, header: map[string]string{"Retry-After": "soon"}, class: eiot.ClassRetryable, kind: eiot.KindHTTPStatus},
		{name: "500", status: 500, body: "<html>oops</html>", class: eiot.ClassRetryable, kind: eiot.KindHTTPStatus},
		{name: "502", status: 502, class: eiot.ClassRetryable, kind: eiot.KindHTTPStatus},
		{name: "503 retry-after", status: 503, header: map[string]string{"Retry-After": "120"}, class: eiot.ClassRetryable, kind: eiot.KindHTTPStatus, retryAfter: 2 * time.Minute},
		{name: "504", status: 504, class: eiot.ClassRetryable, kind: eiot.KindHTTPStatus},
		{name: "401", status: 401, body: `{"code":"401"}`, class: eiot.ClassSystemic, kind: eiot.KindHTTPStatus, code: "401"},
		{name: "403", status: 403, body: "forbidden", class: eiot.ClassSystemic, kind: eiot.KindHTTPStatus},
		{name: "404", status: 404, body: "404 page not found", class: eiot.ClassSystemic, kind: eiot.KindHTTPStatus},
		{name: "302", status: 302, header: map[string]string{"Location": "https://elsewhere/"}, class: eiot.ClassSystemic, kind: eiot.KindHTTPStatus},
		{name: "400 json", status: 400, body: `{"code":"400","message":"bad"}`, class: eiot.ClassPermanent, kind: eiot.KindHTTPStatus, code: "400"},
		{name: "422 json without code", status: 422, body: `{"error":"x"}`, class: eiot.ClassPermanent, kind: eiot.KindHTTPStatus},
		{name: "400 error page", status: 400, body: "<html><body>Bad Request</body></html>", class: eiot.ClassSystemic, kind: eiot.KindErrorPage},
		{name: "405 empty", status: 405, class: eiot.ClassSystemic, kind: eiot.KindErrorPage},
		{name: "200 html", status: 200, body: "<html>maintenance</html>", class: eiot.ClassRetryable, kind: eiot.KindMalformed},
		{name: "200 truncated", status: 200, body: `{"code":"200","message":"success","data":{"iccid":"89`, class: eiot.ClassRetryable, kind: eiot.KindMalformed},
		{name: "200 empty", status: 200, class: eiot.ClassRetryable, kind: eiot.KindMalformed},
		{name: "200 no code", status: 200, body: `{"message":"x"}`, class: eiot.ClassRetryable, kind: eiot.KindMalformed},
		{name: "200 data array", status: 200, body: `{"code":"200","data":[1]}`, class: eiot.ClassRetryable, kind: eiot.KindMalformed},
		{name: "200 null", status: 200, body: `null`, class: eiot.ClassRetryable, kind: eiot.KindMalformed},
		{name: "too large", status: 200, body: `{"code":"200","message":"` + strings.Repeat("x", 2000) + `"}`, class: eiot.ClassRetryable, kind: eiot.KindTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := serve(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tc.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			c := newClient(t, url, func(c *eiot.Config) {
				c.Now = func() time.Time { return now }
				c.MaxResponseBytes = 1024
			})
			checkOutcome(t, c, tc)
		})
	}
}

func checkOutcome(t *testing.T, c *eiot.Client, tc outcome) {
	t.Helper()
	r, err := c.Lookup(t.Context(), "89852240400014306175")
	var e *eiot.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *eiot.Error", err, err)
	}
	if e.Class != tc.class || e.Kind != tc.kind || e.Code != tc.code || e.RetryAfter != tc.retryAfter {
		t.Fatalf("got class=%v kind=%s code=%q retryAfter=%v, want %v %s %q %v (%v)", e.Class, e.Kind, e.Code, e.RetryAfter, tc.class, tc.kind, tc.code, tc.retryAfter, err)
	}
	if eiot.ClassOf(err) != tc.class {
		t.Fatalf("ClassOf = %v", eiot.ClassOf(err))
	}
	if tc.status != 0 && e.HTTPStatus != tc.status {
		t.Fatalf("HTTPStatus = %d", e.HTTPStatus)
	}
	if (r != nil) != tc.response {
		t.Fatalf("response returned = %v, want %v", r != nil, tc.response)
	}
	if r != nil && string(r.Raw) != tc.body {
		t.Fatalf("raw = %q", r.Raw)
	}
	if int64(len(e.Raw)) > 1024 {
		t.Fatalf("raw not bounded: %d", len(e.Raw))
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body) // lets the server notice the client going away
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before the server's Close
	c := newClient(t, url, func(c *eiot.Config) { c.Timeout = 100 * time.Millisecond })
	_, err := c.Lookup(t.Context(), "1")
	var e *eiot.Error
	if !errors.As(err, &e) || e.Class != eiot.ClassRetryable || e.Kind != eiot.KindTimeout {
		t.Fatalf("per-attempt timeout: err = %v", err)
	}
	// The caller's cancellation is not a vendor outcome.
	c = newClient(t, url, func(c *eiot.Config) { c.Timeout = time.Minute })
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = c.Lookup(ctx, "1")
	if !errors.Is(err, context.Canceled) || errors.As(err, &e) {
		t.Fatalf("canceled: err = %v", err)
	}
	_, err = c.Lookup(ctx, "1") // already canceled: no call
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("pre-canceled: err = %v", err)
	}
}

func TestTransportErrors(t *testing.T) {
	t.Parallel()
	// Connection closed without an answer.
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		conn.Close()
	})
	c := newClient(t, url)
	_, err := c.Lookup(t.Context(), "1")
	var e *eiot.Error
	if !errors.As(err, &e) || e.Class != eiot.ClassRetryable || e.Kind != eiot.KindTransport {
		t.Fatalf("reset: err = %v", err)
	}
	// Nothing listening.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	c = newClient(t, "http://"+addr)
	_, err = c.Lookup(t.Context(), "1")
	if !errors.As(err, &e) || e.Class != eiot.ClassRetryable || e.Kind != eiot.KindTransport {
		t.Fatalf("refused: err = %v", err)
	}
	// An empty ICCID is refused without a call.
	if _, err := c.Lookup(t.Context(), ""); eiot.ClassOf(err) != eiot.ClassPermanent {
		t.Fatalf("empty iccid: %v", err)
	}
}

func TestErrorsNeverShowCredentials(t *testing.T) {
	t.Parallel()
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(400)
		// A vendor that echoes the request in its message.
		io.WriteString(w, `{"code":"400","message":"bad request for appkey `+testAppKey+`: `+strings.ReplaceAll(string(b), `"`, `'`)+`"}`)
	})
	c := newClient(t, url)
	_, err := c.Lookup(t.Context(), "1")
	if err == nil || strings.Contains(err.Error(), testAppKey) || strings.Contains(err.Error(), testSecret) {
		t.Fatalf("error leaks credentials: %v", err)
	}
}

func TestSetSecretConcurrent(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	current := sign.NewSecret("old-secret")
	url := serve(t, func(w http.ResponseWriter, r *http.Request) {
		dec := json.NewDecoder(r.Body)
		dec.UseNumber()
		var p sign.Params
		dec.Decode(&p)
		mu.Lock()
		s := current
		mu.Unlock()
		old, _ := sign.Verify(p, p["sign"].(string), sign.NewSecret("old-secret"))
		cur, _ := sign.Verify(p, p["sign"].(string), s)
		if !old && !cur {
			w.Write([]byte(`{"code":"10003","message":"sign error"}`))
			return
		}
		w.Write(exampleBody(t))
	})
	c := newClient(t, url, func(c *eiot.Config) { c.Secret = sign.NewSecret("old-secret") })
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if _, err := c.Lookup(t.Context(), "1"); err != nil {
					t.Error(err)
				}
			}
		})
	}
	mu.Lock()
	current = sign.NewSecret("new-secret")
	mu.Unlock()
	c.SetSecret(sign.NewSecret("new-secret"))
	c.SetSecret(sign.Secret{}) // ignored
	wg.Wait()
	mu.Lock()
	current = sign.NewSecret("only-new")
	mu.Unlock()
	c.SetSecret(sign.NewSecret("only-new"))
	if _, err := c.Lookup(t.Context(), "1"); err != nil {
		t.Fatal(err)
	}
}

func TestClassStrings(t *testing.T) {
	t.Parallel()
	want := map[eiot.Class]string{eiot.ClassRetryable: "retryable", eiot.ClassPermanent: "permanent", eiot.ClassSystemic: "systemic",
		eiot.ClassReplay: "replay", eiot.ClassNoData: "no_data", 0: "none"}
	for c, s := range want {
		if c.String() != s {
			t.Errorf("%d = %s, want %s", c, c, s)
		}
	}
	if eiot.ClassOf(nil) != 0 || eiot.ClassOf(errors.New("x")) != eiot.ClassRetryable {
		t.Error("ClassOf of nil / a plain error")
	}
}
