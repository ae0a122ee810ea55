package bench

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/worker/eiot"
)

func TestFakeVendorAnswersTheClient(t *testing.T) {
	srv := httptest.NewServer(FakeVendor("k1", "s1"))
	defer srv.Close()
	c, err := eiot.New(eiot.Config{BaseURL: srv.URL, AppKey: "k1", Secret: sign.NewSecret("s1")})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Lookup(context.Background(), "89852240400014306175")
	if err != nil {
		t.Fatal(err)
	}
	if !resp.HasData() {
		t.Fatalf("no data: %+v", resp)
	}
	bad, _ := eiot.New(eiot.Config{BaseURL: srv.URL, AppKey: "k1", Secret: sign.NewSecret("wrong")})
	if _, err := bad.Lookup(context.Background(), "89852240400014306175"); eiot.ClassOf(err) != eiot.ClassSystemic {
		t.Fatalf("wrong secret: %v (class %v), want systemic", err, eiot.ClassOf(err))
	}
}
