package main

import (
	"bytes"
	"strings"
	"testing"
)

const sample = `{"config":{"protocol_version":"v1.0.0"}}
{"osv":{"id":"GO-2026-0001","summary":"bad thing in net/http"}}
{"osv":{"id":"GO-2026-0002","summary":"bad thing in a module"}}
{"finding":{"osv":"GO-2026-0001","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http"}]}}
{"finding":{"osv":"GO-2026-0001","fixed_version":"v1.26.9","trace":[{"module":"stdlib","version":"v1.26.8","package":"net/http","function":"Serve","receiver":"*Server"},{"module":"example.com/m","package":"example.com/m","function":"main"}]}}
{"finding":{"osv":"GO-2026-0002","fixed_version":"v1.2.3","trace":[{"module":"example.com/dep","version":"v1.2.0","package":"example.com/dep"}]}}
`

func TestGate(t *testing.T) {
	var out bytes.Buffer
	code, err := gate(strings.NewReader(sample), &out, false)
	if err != nil || code != 1 {
		t.Fatalf("fail mode: code %d err %v\n%s", code, err, out.String())
	}
	if !strings.Contains(out.String(), "net/http.Server.Serve") || !strings.Contains(out.String(), "imported but not called 1") {
		t.Fatalf("output:\n%s", out.String())
	}
	out.Reset()
	code, err = gate(strings.NewReader(sample), &out, true)
	if err != nil || code != 0 || !strings.Contains(out.String(), "WARNING (not a pass)") {
		t.Fatalf("warn mode: code %d err %v\n%s", code, err, out.String())
	}
	called := `{"finding":{"osv":"GO-2026-0003","trace":[{"module":"example.com/dep","version":"v1.0.0","package":"example.com/dep","function":"F"}]}}`
	if code, _ := gate(strings.NewReader(called), &out, true); code != 1 {
		t.Fatal("a called module vulnerability passed")
	}
	if _, err := gate(strings.NewReader(""), &out, true); err == nil {
		t.Fatal("no error for empty input")
	}
}
