package eiot_test

import (
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/worker/eiot"
	"github.com/simlookup/simlookup/worker/eiot/eiottest"
)

// The client's default code sets are the fake's codes.
func TestDefaultCodesAreTheFakes(t *testing.T) {
	t.Parallel()
	if !slices.Equal(eiot.DefaultSystemicCodes, []string{eiottest.CodeAppKey, eiottest.CodeSign, eiottest.CodeStale, eiottest.CodeNonce}) {
		t.Errorf("DefaultSystemicCodes = %v", eiot.DefaultSystemicCodes)
	}
	if !slices.Equal(eiot.DefaultRetryableCodes, []string{eiottest.CodeBusy}) {
		t.Errorf("DefaultRetryableCodes = %v", eiot.DefaultRetryableCodes)
	}
	if eiot.DefaultReplayCode != eiottest.CodeReplay {
		t.Errorf("DefaultReplayCode = %v", eiot.DefaultReplayCode)
	}
	for _, c := range []string{eiottest.CodeBadRequest, eiottest.CodeNotFound} {
		if slices.Contains(eiot.DefaultSystemicCodes, c) || slices.Contains(eiot.DefaultRetryableCodes, c) || c == eiot.DefaultReplayCode {
			t.Errorf("%s should be permanent by default", c)
		}
	}
}

func TestAgainstFakeOK(t *testing.T) {
	t.Parallel()
	srv, url := eiottest.Start(t, eiottest.Config{})
	c, err := eiot.New(srv.ClientConfig(url))
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Lookup(t.Context(), eiottest.ExampleICCID)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Raw) != eiottest.ExampleResponse || string(r.Extra["memo"]) != `"abc"` || *r.Card.TotalUseFlowMB != 402.77 {
		t.Fatalf("example: %s %v", r.Raw, r.Extra)
	}
	// Many generated cards decode with no field landing in Extra but "memo".
	for i := range 200 {
		iccid := "8986" + time.Unix(int64(i)*7919, 0).UTC().Format("20060102150405") + "01"
		r, err := c.Lookup(t.Context(), iccid)
		if err != nil {
			t.Fatalf("%s: %v", iccid, err)
		}
		for k := range r.Extra {
			if k != "memo" {
				t.Fatalf("%s: unexpected extra %s", iccid, k)
			}
		}
		if r.Card.ICCID == nil || *r.Card.ICCID != iccid || r.Card.CardStatus == nil || r.Card.DataFlowMB == nil {
			t.Fatalf("%s: card %+v", iccid, r.Card)
		}
		if r.Card.ActivateDateRaw != nil && r.Card.ActivateDate == nil {
			t.Fatalf("%s: date %q not parsed", iccid, *r.Card.ActivateDateRaw)
		}
	}
	if st := srv.Stats(); st.Accepted != 201 || st.RefusedTotal() != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestAgainstFakeErrorClasses(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		faults   eiottest.Faults
		mod      func(*eiot.Config)
		iccid    string
		class    eiot.Class
		kind     string
		code     string
		response bool
		fault    string // Stats.Faults key expected to be 1
		refused  string // Stats.Refused key expected to be 1
	}{
		{name: "no data", faults: eiottest.Faults{RateNoData: 1}, class: eiot.ClassNoData, kind: eiot.KindNoData, code: "200", response: true, fault: eiottest.FaultNoData},
		{name: "not found", iccid: "89860000000000000404", class: eiot.ClassPermanent, kind: eiot.KindVendorCode, code: eiottest.CodeNotFound, response: true, refused: eiottest.ReasonNotFound},
		{name: "wrong secret", mod: func(c *eiot.Config) { c.Secret = sign.NewSecret("wrong") }, class: eiot.ClassSystemic, kind: eiot.KindVendorCode, code: eiottest.CodeSign, response: true, refused: eiottest.ReasonSign},
		{name: "wrong appkey", mod: func(c *eiot.Config) { c.AppKey = "someone-else" }, class: eiot.ClassSystemic, kind: eiot.KindVendorCode, code: eiottest.CodeAppKey, response: true, refused: eiottest.ReasonAppKey},
		{name: "clock skew", mod: func(c *eiot.Config) { c.Now = func() time.Time { return time.Now().Add(-10 * time.Minute) } }, class: eiot.ClassSystemic, kind: eiot.KindVendorCode, code: eiottest.CodeStale, response: true, refused: eiottest.ReasonStale},
		{name: "busy", faults: eiottest.Faults{RateVendorCode: 1}, class: eiot.ClassRetryable, kind: eiot.KindVendorCode, code: eiottest.CodeBusy, response: true, fault: eiottest.FaultVendorCode},
		{name: "replay code", faults: eiottest.Faults{RateVendorCode: 1, VendorCode: eiottest.CodeReplay}, class: eiot.ClassReplay, kind: eiot.KindVendorCode, code: eiottest.CodeReplay, response: true, fault: eiottest.FaultVendorCode},
		{name: "5xx", faults: eiottest.Faults{Rate5xx: 1}, class: eiot.ClassRetryable, kind: eiot.KindHTTPStatus},
		{name: "429", faults: eiottest.Faults{Rate429: 1, RetryAfter: 3 * time.Second}, class: eiot.ClassRetryable, kind: eiot.KindHTTPStatus, code: "429", fault: eiottest.Fault429},
		{name: "429 date", faults: eiottest.Faults{Rate429: 1, RetryAfter: 3 * time.Second, RetryAfterDate: true}, class: eiot.ClassRetryable, kind: eiot.KindHTTPStatus, code: "429", fault: eiottest.Fault429},
		{name: "malformed", faults: eiottest.Faults{RateMalformed: 1}, class: eiot.ClassRetryable, kind: eiot.KindMalformed, fault: eiottest.FaultMalformed},
		{name: "reset", faults: eiottest.Faults{RateReset: 1}, class: eiot.ClassRetryable, kind: eiot.KindTransport, fault: eiottest.FaultReset},
		{name: "hang", faults: eiottest.Faults{RateHang: 1, Hang: time.Minute}, mod: func(c *eiot.Config) { c.Timeout = 200 * time.Millisecond }, class: eiot.ClassRetryable, kind: eiot.KindTimeout, fault: eiottest.FaultHang},
		{name: "latency past timeout", faults: eiottest.Faults{Latency: time.Minute}, mod: func(c *eiot.Config) { c.Timeout = 200 * time.Millisecond }, class: eiot.ClassRetryable, kind: eiot.KindTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, url := eiottest.Start(t, eiottest.Config{Faults: tc.faults})
			cfg := srv.ClientConfig(url)
			if tc.mod != nil {
				tc.mod(&cfg)
			}
			c, err := eiot.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			iccid := tc.iccid
			if iccid == "" {
				iccid = "89860000000000000017"
			}
			r, err := c.Lookup(t.Context(), iccid)
			var e *eiot.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *eiot.Error", err)
			}
			if e.Class != tc.class || e.Kind != tc.kind || e.Code != tc.code {
				t.Fatalf("got %v/%s/%q, want %v/%s/%q: %v", e.Class, e.Kind, e.Code, tc.class, tc.kind, tc.code, err)
			}
			if (r != nil) != tc.response {
				t.Fatalf("response = %v", r != nil)
			}
			if tc.name == "429" && e.RetryAfter != 3*time.Second {
				t.Fatalf("RetryAfter = %v", e.RetryAfter)
			}
			if tc.name == "429 date" && (e.RetryAfter < time.Second || e.RetryAfter > 3*time.Second) {
				t.Fatalf("RetryAfter (date) = %v", e.RetryAfter)
			}
			if tc.name == "5xx" && e.HTTPStatus != 500 && e.HTTPStatus != 502 && e.HTTPStatus != 503 {
				t.Fatalf("status %d", e.HTTPStatus)
			}
			st := srv.Stats()
			if tc.fault != "" && st.Faults[tc.fault] != 1 {
				t.Fatalf("faults %v", st.Faults)
			}
			if tc.refused != "" && st.Refused[tc.refused] != 1 {
				t.Fatalf("refused %v", st.Refused)
			}
			if st.Total != 1 {
				t.Fatalf("total %d", st.Total)
			}
		})
	}
}

func TestAgainstFakeQuota(t *testing.T) {
	t.Parallel()
	srv, url := eiottest.Start(t, eiottest.Config{Quota: 2})
	c, _ := eiot.New(srv.ClientConfig(url))
	var ok, limited int
	for range 6 {
		_, err := c.Lookup(t.Context(), "89860000000000000017")
		var e *eiot.Error
		switch {
		case err == nil:
			ok++
		case errors.As(err, &e) && e.HTTPStatus == 429 && e.Class == eiot.ClassRetryable && e.RetryAfter >= time.Second:
			limited++
		default:
			t.Fatal(err)
		}
	}
	// Six quick calls: at least 4 of them inside one second.
	if ok < 2 || limited < 1 || ok+limited != 6 {
		t.Fatalf("ok %d limited %d", ok, limited)
	}
	if st := srv.Stats(); st.MaxWindowAccepted > 2 {
		t.Fatalf("max accepted in a window %d > quota", st.MaxWindowAccepted)
	}
}

func BenchmarkLookupAgainstFake(b *testing.B) {
	srv, url := eiottest.Start(b, eiottest.Config{})
	c, _ := eiot.New(srv.ClientConfig(url))
	var n atomic.Int64
	b.SetParallelism(16) // many concurrent lookups, as a worker makes them
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			// Distinct ICCIDs: the same ICCID twice in one second may draw the
			// same nonce and be refused as a replay (ClassReplay).
			iccid := fmt.Sprintf("8986%014d17", n.Add(1)) // never ends in 404
			if _, err := c.Lookup(b.Context(), iccid); err != nil {
				b.Fatal(err)
			}
		}
	})
}
