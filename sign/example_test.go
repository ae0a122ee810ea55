package sign_test

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/simlookup/simlookup/sign"
)

// The vendor's worked example.
func ExampleSign() {
	secret := sign.NewSecret("a1b1c1d1")
	p := sign.Params{"appkey": "000001", "timestamp": 1556595508, "nonce": 24523, "userName": "wx", "age": 24, "sex": 1}
	sig, err := sign.Sign(p, secret)
	if err != nil {
		panic(err)
	}
	fmt.Println(sig)
	// Output: 963A56BAEBED746F2746E4D9B3B77BE0F2E171E7
}

// Explain shows the hashed string with the secret masked.
func ExampleExplain() {
	p := sign.Params{"appkey": "000001", "timestamp": 1556595508, "nonce": 24523, "userName": "wx", "age": 24, "sex": 1}
	s, _ := sign.Explain(p)
	fmt.Println(s)
	// Output: age=24&appkey=000001&nonce=24523&sex=1&timestamp=1556595508&userName=wx&secret=****
}

func ExampleVerify() {
	secret := sign.NewSecret("a1b1c1d1")
	p := sign.Params{"appkey": "000001", "timestamp": 1556595508, "nonce": 24523, "userName": "wx", "age": 24, "sex": 1}
	ok, _ := sign.Verify(p, "963A56BAEBED746F2746E4D9B3B77BE0F2E171E7", secret)
	fmt.Println(ok)
	// Output: true
}

// A Secret never prints itself.
func ExampleSecret() {
	secret := sign.NewSecret("a1b1c1d1")
	fmt.Println(secret)
	fmt.Printf("%#v\n", secret)
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	logger.Info("loaded", "secret", secret)
	// Output:
	// [REDACTED]
	// [REDACTED]
	// level=INFO msg=loaded secret=[REDACTED]
}
