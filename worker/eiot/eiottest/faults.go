package eiottest

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Fault kinds (keys of Stats.Faults).
const (
	FaultReset      = "reset"
	FaultHang       = "hang"
	Fault500        = "500"
	Fault502        = "502"
	Fault503        = "503"
	Fault429        = "429"
	FaultVendorCode = "vendor_code"
	FaultMalformed  = "malformed"
	FaultNoData     = "no_data"
)

// Faults are injected into API requests. Rates are probabilities in [0,1]
// whose sum must not exceed 1. The zero value injects nothing.
type Faults struct {
	// Latency is added to every API request, plus a uniform random part
	// in [0, Jitter).
	Latency, Jitter time.Duration
	// Rate5xx answers HTTP 500, 502 or 503 (equally likely).
	Rate5xx float64
	// Rate429 answers HTTP 429 with Retry-After: RetryAfter (whole seconds,
	// rounded up; default 1s).
	Rate429    float64
	RetryAfter time.Duration
	// RetryAfterDate sends Retry-After as an HTTP date instead of seconds.
	RetryAfterDate bool
	// RateVendorCode answers HTTP 200 with VendorCode (default CodeBusy).
	RateVendorCode float64
	VendorCode     string
	// RateMalformed answers HTTP 200 with a truncated JSON body.
	RateMalformed float64
	// RateReset closes the connection without an answer (TCP RST).
	RateReset float64
	// RateHang waits Hang (default 60s) before going on as usual — past the
	// client's timeout; it ends early when the client goes away.
	RateHang float64
	Hang     time.Duration
	// RateNoData answers an otherwise accepted request with code "200" and
	// data null.
	RateNoData float64
	// Seed seeds the fault PRNG; the same seed gives the same sequence.
	Seed int64
}

func (f Faults) withDefaults() Faults {
	if f.RetryAfter == 0 {
		f.RetryAfter = time.Second
	}
	if f.VendorCode == "" {
		f.VendorCode = CodeBusy
	}
	if f.Hang == 0 {
		f.Hang = 60 * time.Second
	}
	return f
}

// Validate checks the rates and durations.
func (f Faults) Validate() error {
	var errs []error
	sum := 0.0
	for name, r := range map[string]float64{"Rate5xx": f.Rate5xx, "Rate429": f.Rate429, "RateVendorCode": f.RateVendorCode,
		"RateMalformed": f.RateMalformed, "RateReset": f.RateReset, "RateHang": f.RateHang, "RateNoData": f.RateNoData} {
		if !(r >= 0 && r <= 1) {
			errs = append(errs, fmt.Errorf("%s %v is not in [0,1]", name, r))
		}
		sum += r
	}
	if sum > 1+1e-9 {
		errs = append(errs, fmt.Errorf("fault rates sum to %v > 1", sum))
	}
	for name, d := range map[string]time.Duration{"Latency": f.Latency, "Jitter": f.Jitter, "RetryAfter": f.RetryAfter, "Hang": f.Hang} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", name, d))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("eiottest: faults: %w", err)
	}
	return nil
}

// duration is a time.Duration in JSON as a Go duration string ("250ms");
// a JSON number is read as nanoseconds.
type duration time.Duration

func (d duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		*d = duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration: want a string like \"250ms\" or nanoseconds, got %s", b)
	}
	*d = duration(n)
	return nil
}

// faultsJSON is the wire form of Faults (no methods, so it can be embedded).
type faultsJSON struct {
	Latency        duration `json:"latency"`
	Jitter         duration `json:"jitter"`
	Rate5xx        float64  `json:"rate_5xx"`
	Rate429        float64  `json:"rate_429"`
	RetryAfter     duration `json:"retry_after"`
	RetryAfterDate bool     `json:"retry_after_date,omitempty"`
	RateVendorCode float64  `json:"rate_vendor_code"`
	VendorCode     string   `json:"vendor_code"`
	RateMalformed  float64  `json:"rate_malformed"`
	RateReset      float64  `json:"rate_reset"`
	RateHang       float64  `json:"rate_hang"`
	Hang           duration `json:"hang"`
	RateNoData     float64  `json:"rate_no_data"`
	Seed           int64    `json:"seed"`
}

func (f Faults) wire() faultsJSON {
	return faultsJSON{duration(f.Latency), duration(f.Jitter), f.Rate5xx, f.Rate429, duration(f.RetryAfter), f.RetryAfterDate, f.RateVendorCode,
		f.VendorCode, f.RateMalformed, f.RateReset, f.RateHang, duration(f.Hang), f.RateNoData, f.Seed}
}

func (w faultsJSON) faults() Faults {
	return Faults{time.Duration(w.Latency), time.Duration(w.Jitter), w.Rate5xx, w.Rate429, time.Duration(w.RetryAfter), w.RetryAfterDate, w.RateVendorCode,
		w.VendorCode, w.RateMalformed, w.RateReset, w.RateHang, time.Duration(w.Hang), w.RateNoData, w.Seed}
}

// MarshalJSON encodes the faults with snake_case names and durations as
// strings: {"latency":"5ms","rate_5xx":0.1,...}.
func (f Faults) MarshalJSON() ([]byte, error) { return json.Marshal(f.wire()) }

// UnmarshalJSON decodes the form MarshalJSON writes; missing fields are zero.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var w faultsJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*f = w.faults()
	return nil
}
