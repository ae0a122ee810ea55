package eiot

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Class says what the caller should do about a failed lookup.
type Class int

// Classes. The zero Class is "none" (no error).
const (
	// ClassRetryable: try again later (backoff, honour RetryAfter).
	ClassRetryable Class = iota + 1
	// ClassPermanent: the vendor refused this card; a retry will not help.
	ClassPermanent
	// ClassSystemic: the deployment is wrong (credentials, signature, clock,
	// URL): pause taking work, alert, re-read the secret.
	ClassSystemic
	// ClassReplay: the vendor saw this timestamp+nonce before; retry at once
	// with a fresh signature.
	ClassReplay
	// ClassNoData: code "200" but no data.
	ClassNoData
)

// String returns "retryable", "permanent", "systemic", "replay", "no_data"
// (or "none" for the zero Class).
func (c Class) String() string {
	switch c {
	case ClassRetryable:
		return "retryable"
	case ClassPermanent:
		return "permanent"
	case ClassSystemic:
		return "systemic"
	case ClassReplay:
		return "replay"
	case ClassNoData:
		return "no_data"
	case 0:
		return "none"
	}
	return "class(" + strconv.Itoa(int(c)) + ")"
}

// MarshalText encodes the class as its String.
func (c Class) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// Kinds of Error: what happened, finer than Class.
const (
	KindVendorCode     = "vendor_code"     // HTTP 2xx with a code other than "200"
	KindHTTPStatus     = "http_status"     // a non-2xx status
	KindTransport      = "transport"       // connect, reset, read error
	KindTLS            = "tls"             // the vendor's certificate is not trusted (systemic: fix the deployment)
	KindTimeout        = "timeout"         // the per-attempt timeout passed
	KindMalformed      = "malformed"       // a 2xx body that is not the vendor's JSON
	KindTooLarge       = "too_large"       // a body over MaxResponseBytes
	KindNoData         = "no_data"         // code "200" with data null or absent
	KindErrorPage      = "error_page"      // a non-2xx status with a non-JSON body
	KindInvalidRequest = "invalid_request" // Lookup was given nothing to send (empty ICCID); no call made
)

// Error is a failed lookup attempt. Its Error string never contains the
// secret or the appkey.
type Error struct {
	Class Class
	// Kind is one of the Kind constants.
	Kind string
	// Code is the vendor's code, when the body carried one.
	Code string
	// Message is the vendor's message, or a description of the failure.
	Message string
	// HTTPStatus is the response status; 0 without a response.
	HTTPStatus int
	// RetryAfter is the parsed Retry-After header; 0 when absent.
	RetryAfter time.Duration
	// Raw is the response body (at most MaxResponseBytes), if any.
	Raw []byte
	// Err is the underlying error (transport, decoding), if any.
	Err error
}

// Error describes the failure: class, kind, status, code and message.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("eiot: ")
	b.WriteString(e.Class.String())
	b.WriteString(" ")
	b.WriteString(e.Kind)
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, " http %d", e.HTTPStatus)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " code %q", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %v)", e.RetryAfter)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether a retry may succeed (ClassRetryable or ClassReplay).
func (e *Error) Retryable() bool { return e.Class == ClassRetryable || e.Class == ClassReplay }

// ClassOf returns the Class of err: that of the *Error in its chain; 0
// ("none") for nil; ClassRetryable for any other error (including a context
// error — check errors.Is(err, context.Canceled) first to tell a shutdown).
func ClassOf(err error) Class {
	if err == nil {
		return 0
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return ClassRetryable
}
