package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/worker/eiot/eiottest"
)

type fakeAPICmd struct {
	Addr           string `default:"127.0.0.1:8080" placeholder:"HOST:PORT" help:"Listen address."`
	AppKey         string `name:"appkey" placeholder:"KEY" help:"The appkey the fake accepts."`
	secretFlags    `embed:""`
	NotFoundSuffix string        `name:"not-found-suffix" default:"404" placeholder:"DIGITS" help:"ICCIDs ending in these digits are unknown cards (vendor code 20001); empty: none."`
	Quota          float64       `default:"0" placeholder:"PER_SECOND" help:"Requests per second allowed per appkey; above it HTTP 429 with Retry-After (0: unlimited)."`
	MaxSkew        time.Duration `name:"max-skew" default:"300s" placeholder:"DURATION" help:"Accepted distance between a request's timestamp and the fake's clock."`
	Latency        time.Duration `default:"0s" placeholder:"DURATION" group:"Faults" help:"Latency added to every request."`
	Jitter         time.Duration `default:"0s" placeholder:"DURATION" group:"Faults" help:"Random extra latency, uniform in [0, jitter)."`
	Rate5xx        float64       `name:"rate-5xx" env:"SIMLOOKUP_RATE_5XX" default:"0" placeholder:"P" group:"Faults" help:"Probability of HTTP 500/502/503."`
	Rate429        float64       `name:"rate-429" default:"0" placeholder:"P" group:"Faults" help:"Probability of HTTP 429 with Retry-After."`
	RetryAfter     time.Duration `name:"retry-after" default:"1s" placeholder:"DURATION" group:"Faults" help:"Retry-After of injected 429s (whole seconds, rounded up)."`
	RetryAfterDate bool          `name:"retry-after-date" group:"Faults" help:"Send Retry-After as an HTTP date instead of seconds."`
	RateVendorCode float64       `name:"rate-vendor-code" default:"0" placeholder:"P" group:"Faults" help:"Probability of a vendor failure code (HTTP 200)."`
	VendorCode     string        `name:"vendor-code" default:"10007" placeholder:"CODE" group:"Faults" help:"The injected vendor code (10007: system busy)."`
	RateMalformed  float64       `name:"rate-malformed" default:"0" placeholder:"P" group:"Faults" help:"Probability of a truncated JSON body on HTTP 200."`
	RateReset      float64       `name:"rate-reset" default:"0" placeholder:"P" group:"Faults" help:"Probability of a connection reset without an answer."`
	RateHang       float64       `name:"rate-hang" default:"0" placeholder:"P" group:"Faults" help:"Probability of hanging for --hang before answering."`
	Hang           time.Duration `default:"60s" placeholder:"DURATION" group:"Faults" help:"How long a hang lasts (past the client's timeout)."`
	RateNoData     float64       `name:"rate-no-data" default:"0" placeholder:"P" group:"Faults" help:"Probability of code 200 with data null."`
	Seed           int64         `default:"1" placeholder:"N" group:"Faults" help:"Seed of the fault draws (the same seed gives the same sequence)."`
}

func (c *fakeAPICmd) Help() string {
	return `Serves a fake of the EIOTCLUB getCardsInfo API (POST /api/v3/card/getCardsInfo)
that checks the appkey, the signature, the timestamp (--max-skew), the nonce
range and replays like the real one, answers with vendor codes (10001 bad
request, 10002 appkey, 10003 sign, 10004 stale timestamp, 10005 nonce, 10006
replay, 10007 busy, 20001 card not found), derives card data from the ICCID,
and injects the faults you ask for. Each refusal is logged with its reason.

GET /stats shows the counters (requests, accepted, refused by reason, faults,
the busiest 1-second window) as JSON; GET/PUT /admin/faults shows or replaces
the faults at run time; POST /admin/reset clears the counters.

Examples:

    printf s3cret > secret.txt
    simlookup fake-api --addr 127.0.0.1:8080 --appkey demo-appkey --secret-file secret.txt
    SIMLOOKUP_SECRET=s3cret simlookup fake-api --appkey demo-appkey --quota 30 --rate-5xx 0.05 --latency 50ms
    curl -s localhost:8080/stats | jq .max_window
    curl -s -X PUT localhost:8080/admin/faults -d '{"rate_429": 0.5, "retry_after": "2s"}'`
}

func (c *fakeAPICmd) check(a *app) error {
	_, _, err := c.config(a)
	return err
}

// config validates the flags and returns the secret and the faults.
func (c *fakeAPICmd) config(a *app) (sign.Secret, eiottest.Faults, error) {
	var none eiottest.Faults
	if c.AppKey == "" {
		return sign.Secret{}, none, usagef("%s is required: the appkey the fake accepts", flagRef("appkey"))
	}
	if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
		return sign.Secret{}, none, usagef("%s %q: want HOST:PORT, e.g. 127.0.0.1:8080 or :8080", flagRef("addr"), c.Addr)
	}
	if c.Quota < 0 {
		return sign.Secret{}, none, usagef("%s is %v: it needs 0 (unlimited) or more", flagRef("quota"), c.Quota)
	}
	if c.MaxSkew < time.Second {
		return sign.Secret{}, none, usagef("%s is %s: it needs at least 1s", flagRef("max-skew"), c.MaxSkew)
	}
	if strings.Trim(c.NotFoundSuffix, "0123456789") != "" {
		return sign.Secret{}, none, usagef("%s %q: digits only", flagRef("not-found-suffix"), c.NotFoundSuffix)
	}
	secret, err := c.load(a.getenv, true)
	if err != nil {
		return sign.Secret{}, none, err
	}
	faults := eiottest.Faults{
		Latency: c.Latency, Jitter: c.Jitter,
		Rate5xx: c.Rate5xx, Rate429: c.Rate429, RetryAfter: c.RetryAfter, RetryAfterDate: c.RetryAfterDate,
		RateVendorCode: c.RateVendorCode, VendorCode: c.VendorCode,
		RateMalformed: c.RateMalformed, RateReset: c.RateReset,
		RateHang: c.RateHang, Hang: c.Hang, RateNoData: c.RateNoData, Seed: c.Seed,
	}
	if err := faults.Validate(); err != nil {
		return sign.Secret{}, none, usagef("faults: %v", err)
	}
	return secret, faults, nil
}

func (c *fakeAPICmd) run(a *app) error {
	secret, faults, err := c.config(a)
	if err != nil {
		return err
	}
	suffix := c.NotFoundSuffix
	fake, err := eiottest.New(eiottest.Config{
		AppKey: c.AppKey, Secret: secret, MaxSkew: c.MaxSkew, Quota: c.Quota, Faults: faults,
		NotFound: func(iccid string) bool { return suffix != "" && strings.HasSuffix(iccid, suffix) },
		Logger:   a.log,
	})
	if err != nil {
		return usagef("%v", err)
	}
	defer fake.Close()
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Addr, err)
	}
	srv := &http.Server{Handler: fake, ReadHeaderTimeout: 10 * time.Second}
	a.log.Info("fake vendor API listening", "addr", ln.Addr().String(), "appkey", maskAppKey(c.AppKey),
		"base_url", "http://"+ln.Addr().String(), "quota", c.Quota, "faults", faults)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-a.ctx.Done():
	}
	fake.Close() // end sleeping requests (latency, hangs) at once
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	st := fake.Stats()
	a.log.Info("fake vendor API stopped", "requests", st.Total, "accepted", st.Accepted, "refused", st.RefusedTotal(), "max_window", st.MaxWindow)
	return nil
}
