package eiot_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"

	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/worker/eiot"
	"github.com/simlookup/simlookup/worker/eiot/eiottest"
)

func Example() {
	fake, _ := eiottest.New(eiottest.Config{AppKey: "my-appkey", Secret: sign.NewSecret("my-secret")})
	defer fake.Close()
	ts := httptest.NewServer(fake)
	defer ts.Close()

	c, err := eiot.New(eiot.Config{BaseURL: ts.URL, AppKey: "my-appkey", Secret: sign.NewSecret("my-secret")})
	if err != nil {
		panic(err)
	}
	r, err := c.Lookup(context.Background(), eiottest.ExampleICCID)
	if err != nil {
		panic(err)
	}
	fmt.Println(*r.Card.CardStatus, *r.Card.TotalUseFlowMB, *r.Card.ActivateDate, string(r.Extra["memo"]))

	_, err = c.Lookup(context.Background(), "89860000000000000404") // the fake's "not found" rule
	var e *eiot.Error
	if errors.As(err, &e) {
		fmt.Println(e.Class, e.Kind, e.Code)
	}
	// Output:
	// NON_ACTIVATED_NAME 402.77 2024-01-08 07:05:19 +0000 UTC "abc"
	// permanent vendor_code 20001
}
