// Package eiot is the client of the EIOTCLUB getCardsInfo API: one signed
// POST per [Client.Lookup], decoded into a typed [schemas.Card] or a typed
// [*Error] the worker can branch on without matching strings.
//
// One call is one attempt: every call signs a fresh body (a new timestamp and
// a new crypto/rand nonce). Retries, backoff and the fleet-wide rate limit
// belong to the caller.
//
// # Outcomes
//
// Lookup returns a *Response and a nil error for HTTP 2xx, code "200" and a
// data object. Otherwise the error is an *Error whose [Class] says what to do
// (see SPEC.md "Vendor outcomes"):
//
//   - code "200" with data null or absent: [ClassNoData] (the *Response is
//     returned too, so the raw body can be kept);
//   - any other code: [ClassPermanent], unless it is in Config.RetryableCodes
//     ([ClassRetryable]) or Config.SystemicCodes ([ClassSystemic]) or equals
//     Config.ReplayCode ([ClassReplay]); the *Response is returned too;
//   - HTTP 429 and 5xx: [ClassRetryable], with Retry-After parsed (seconds or
//     an HTTP date) into Error.RetryAfter;
//   - HTTP 401, 403, 404, any 3xx, and a non-JSON error page on any other
//     non-2xx status: [ClassSystemic];
//   - any other 4xx with a JSON body: [ClassPermanent];
//   - transport errors, connection resets and the per-attempt timeout:
//     [ClassRetryable] (Kind "transport" or "timeout");
//   - a malformed or oversized body on a 2xx: [ClassRetryable] (Kind
//     "malformed" or "too_large").
//
// When the caller's own context is canceled (or its deadline passes) Lookup
// returns that context's error, wrapped, and not an *Error: a shutdown is not
// a vendor outcome. Test with errors.Is(err, context.Canceled).
//
// # Decoding
//
// Every field of the vendor's data object goes into the matching pointer
// field of schemas.Card: a missing or null field is nil, a real 0 or "" is
// kept. Numbers may be integers or fractions in every numeric field. A field
// of the wrong JSON type, or an integer field holding a fraction, is left nil
// and its original JSON is kept in Response.Extra under the vendor's name —
// never an error. Fields the spec does not name (e.g. "memo") also go to
// Extra. Dates ("2006-01-02 15:04:05", no zone) are read in Config.Location
// (default Asia/Shanghai, embedded tzdata) and stored as UTC instants beside
// the original string.
//
// # Default vendor codes
//
// The vendor's failure-code table is not public; the defaults are the codes
// of the fake vendor API in package eiottest: [DefaultSystemicCodes] (appkey,
// signature, timestamp, nonce refused), [DefaultReplayCode] and
// [DefaultRetryableCodes] (busy).
package eiot
