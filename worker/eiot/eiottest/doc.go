// Package eiottest is a fake of the EIOTCLUB getCardsInfo API that behaves
// like the real one: same path, method and body contract, the same checks,
// vendor-style failure codes, deterministic card data, fault injection, an
// enforced quota and counters from the vendor's side. Tests import it (see
// [Start]); `simlookup fake-api` serves it.
//
// # Contract and checks
//
// Only POST /api/v3/card/getCardsInfo is served (anything else: HTTP 404 or
// 405 with a plain-text page, reason "route"). The body is JSON. Each failed
// check is answered with HTTP 200, data null and one code per reason:
//
//	reason       code     message                        when
//	bad_request  "10001"  parameter error: ...           body not a JSON object; timestamp or nonce missing or not an integer; a parameter that cannot be signed; iccid missing or empty
//	appkey       "10002"  appkey invalid                 appkey missing or not the configured one
//	sign         "10003"  sign invalid                   sign missing, or not SHA-1 over all other body parameters (package sign)
//	stale        "10004"  timestamp expired              |now - timestamp| > MaxSkew (default 300 s)
//	nonce        "10005"  nonce invalid                  nonce outside 10000–99999
//	replay       "10006"  repeated request               the same timestamp+nonce+iccid was accepted before (remembered until the timestamp is stale)
//	not_found    "20001"  card not found                 Config.NotFound(iccid); by default ICCIDs ending in "404"
//	(fault)      "10007"  system busy, try again later   injected vendor-code fault (Faults.VendorCode)
//
// The order is: body is a JSON object, appkey, timestamp and nonce are
// integers, sign present and valid, timestamp fresh, nonce in range, iccid
// present, not a replay, card known.
//
// The signature is checked over every body parameter except sign, decoded
// with UseNumber so an integer is signed as the digits that were sent.
// Requests above the quota (Config.Quota, per appkey) get HTTP 429 with a
// Retry-After in seconds (reason "quota"); the quota is checked before the
// faults and the other checks, right after the route.
//
// The client's defaults (eiot.DefaultSystemicCodes, DefaultReplayCode,
// DefaultRetryableCodes) are these codes: appkey, sign, stale and nonce are
// systemic; replay is the replay code; busy is retryable; bad_request and
// not_found are permanent.
//
// # Answers
//
// A request that passes every check is "accepted" and answered with card
// data derived deterministically from the ICCID (a SHA-256 of it): every
// card status and now and then an unknown one, integer and fractional
// flows, optional fields sometimes missing, and sometimes an extra field
// ("memo") the spec does not name. ICCID 89852240400014306175 is answered
// with the vendor's own example response, byte for byte ([ExampleResponse]).
//
// # Faults
//
// [Faults] adds latency (fixed plus jitter) to every API request, and with
// the given probabilities: a connection reset, a hang (Faults.Hang, ended
// early if the client goes away), HTTP 500/502/503, HTTP 429 with
// Retry-After (seconds, or an HTTP date with Faults.RetryAfterDate), a
// vendor failure code, a truncated JSON body, or code "200"
// with data null. One uniform draw per request picks at most one fault, in
// that order; draws come from a PRNG seeded with Faults.Seed, so a
// sequential run is reproducible.
//
// # Counters and admin API
//
// [Server.Stats] and GET /stats give the counters: total requests, accepted,
// refused by reason, faults by kind, accepted calls per ICCID, and the most
// requests received (and accepted) in any sliding one-second window
// (GET /stats?per_iccid=false and [Server.Summary] leave out the per-ICCID
// counts).
// GET /admin/faults shows and PUT or POST /admin/faults replaces the faults
// (JSON, durations as Go strings like "250ms"; an optional "quota" field sets
// the quota); POST /admin/reset clears the counters.
//
// A Server is safe for concurrent use.
package eiottest
