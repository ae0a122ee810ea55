package bench

import (
	"encoding/json"
	"testing"

	"github.com/simlookup/simlookup/schemas"
)

func TestSampleResultIsValid(t *testing.T) {
	r := sampleResult(7)
	if r.ICCID != "89852240400000000007" || r.Card == nil || r.RawResponse == nil {
		t.Fatalf("sample = %+v", r)
	}
	if len(*r.RawResponse) < 300 {
		t.Fatalf("raw response only %d bytes", len(*r.RawResponse))
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := schemas.ValidateResult(b); err != nil {
		t.Fatal(err)
	}
}

func TestRawParquet(t *testing.T) {
	rate, err := rawParquet(t.TempDir(), 2500)
	if err != nil {
		t.Fatal(err)
	}
	if rate <= 0 {
		t.Fatalf("rate = %v", rate)
	}
}
