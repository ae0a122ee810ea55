package eiot

import (
	"bytes"
	"net/http"
	"os"
	"testing"
	"time"
)

func testClassifier(tb testing.TB) *classifier {
	tb.Helper()
	loc, err := time.LoadLocation(DefaultLocation)
	if err != nil {
		tb.Fatal(err)
	}
	return &classifier{
		retryable: setOf(DefaultRetryableCodes), systemic: setOf(DefaultSystemicCodes), replay: DefaultReplayCode,
		loc: loc, now: time.Now, scrub: func(s string) string { return s },
	}
}

func FuzzDecodeResponse(f *testing.F) {
	ex, err := os.ReadFile("testdata/example_response.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(200, ex)
	f.Add(200, []byte(`{"code":"200","data":null}`))
	f.Add(200, []byte(`{"code":10006,"message":{},"data":{"isRealName":1.5,"activateDate":7}}`))
	f.Add(429, []byte(`<html>`))
	f.Add(400, []byte(`{"code":"400"}`))
	f.Add(200, []byte(`{"code":"200","data":{"monthUseFlow":1e400,"imeiPoolStatus":-0,"x":[[[]]]}}`))
	k := testClassifier(f)
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		if status < 100 || status > 999 {
			status = 200
		}
		h := http.Header{"Retry-After": []string{string(body[:min(len(body), 40)])}}
		r, e := k.classify(status, h, body, time.Time{})
		if r == nil && e == nil {
			t.Fatal("neither a response nor an error")
		}
		if e != nil {
			if e.Class < ClassRetryable || e.Class > ClassNoData || e.Kind == "" || e.RetryAfter < 0 {
				t.Fatalf("bad error %+v", e)
			}
			_ = e.Error()
			if !bytes.Equal(e.Raw, body) {
				t.Fatal("raw not kept")
			}
		}
		if r != nil {
			if !bytes.Equal(r.Raw, body) {
				t.Fatal("raw not verbatim")
			}
			if e == nil && (r.Code != CodeOK || !r.HasData()) {
				t.Fatalf("ok without code 200 and data: %q", r.Code)
			}
			if len(r.Extra) > len(body) {
				t.Fatal("extra larger than the body")
			}
		}
	})
}

func BenchmarkDecodeResponse(b *testing.B) {
	ex, err := os.ReadFile("testdata/example_response.json")
	if err != nil {
		b.Fatal(err)
	}
	k := testClassifier(b)
	b.SetBytes(int64(len(ex)))
	b.ReportAllocs()
	for b.Loop() {
		if _, e := k.classify(200, http.Header{}, ex, time.Time{}); e != nil {
			b.Fatal(e)
		}
	}
}
