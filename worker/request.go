package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// DefaultMaxRequestBytes is the default bound on a request body.
const DefaultMaxRequestBytes = 64 << 10

// ICCID length bounds, after trimming, counting a trailing F.
const (
	MinICCIDLen = 18
	MaxICCIDLen = 22
)

// Limits on the identifiers a request carries; they travel in headers and
// subjects' neighbours, so they are kept short and printable.
const (
	MaxRequestIDLen = 200
	MaxJobIDLen     = 200
)

// Reason codes of an invalid request (ErrorInfo.Code of an invalid result).
const (
	ReasonEmpty          = "empty"            // nothing but whitespace
	ReasonTooLarge       = "too_large"        // body over MaxRequestBytes
	ReasonBadUTF8        = "bad_utf8"         // the body is not valid UTF-8
	ReasonBadJSON        = "bad_json"         // starts like a JSON object but does not parse
	ReasonNotObject      = "not_object"       // JSON, but not an object (array, string, number, ...)
	ReasonMissingICCID   = "missing_iccid"    // a JSON object without iccid (or iccid null)
	ReasonICCIDNotString = "iccid_not_string" // iccid is a number, object, ...
	ReasonBadChars       = "bad_chars"        // the ICCID has a character other than digits (and a last F)
	ReasonBadLength      = "bad_length"       // the ICCID is shorter than 18 or longer than 22
	ReasonBadRequestID   = "bad_request_id"   // request_id not a string, too long, or with control characters
	ReasonBadJobID       = "bad_job_id"       // job_id not a string, too long, or with control characters
	ReasonBadMeta        = "bad_meta"         // meta is not an object
)

// InvalidError says why a request is not usable. Code is one of the Reason
// constants; it becomes the invalid result's error.code.
type InvalidError struct {
	Code    string
	Message string
}

func (e *InvalidError) Error() string { return "invalid request: " + e.Code + ": " + e.Message }

// ErrInvalid matches every *InvalidError with errors.Is.
var ErrInvalid = errors.New("worker: invalid request")

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(code, format string, args ...any) *InvalidError {
	return &InvalidError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Parsed is a usable request: the normalised ICCID and what the JSON form
// carried.
type Parsed struct {
	// ICCID is trimmed, with a trailing f upper-cased.
	ICCID string
	// LuhnValid reports the check digit (computed over the digits).
	LuhnValid bool
	// RequestID, JobID and Meta are from the JSON form; empty for a bare ICCID.
	RequestID string
	JobID     string
	Meta      map[string]any
}

// ParseRequest decodes a request body: a bare ICCID or the JSON object of
// schemas.Request. maxBytes bounds the body (0 means DefaultMaxRequestBytes).
// It never panics and does work linear in len(body); a refusal is an
// *InvalidError. When a JSON object was decoded but its iccid is unusable,
// the returned Parsed still carries its request_id, job_id and meta (and an
// empty ICCID), so the invalid result keeps the request's identity.
func ParseRequest(body []byte, maxBytes int) (Parsed, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxRequestBytes
	}
	if len(body) > maxBytes {
		return Parsed{}, invalid(ReasonTooLarge, "body is %d bytes, the limit is %d", len(body), maxBytes)
	}
	if !utf8.Valid(body) {
		return Parsed{}, invalid(ReasonBadUTF8, "body is not valid UTF-8")
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return Parsed{}, invalid(ReasonEmpty, "body is empty")
	}
	switch trimmed[0] {
	case '{':
		return parseJSON(trimmed)
	case '[', '"':
		if json.Valid(trimmed) {
			return Parsed{}, invalid(ReasonNotObject, "JSON request must be an object with an iccid")
		}
	}
	iccid, luhn, err := NormalizeICCID(string(trimmed))
	if err != nil {
		return Parsed{}, err
	}
	return Parsed{ICCID: iccid, LuhnValid: luhn}, nil
}

type jsonRequest struct {
	ICCID     json.RawMessage `json:"iccid"`
	RequestID json.RawMessage `json:"request_id"`
	JobID     json.RawMessage `json:"job_id"`
	Meta      json.RawMessage `json:"meta"`
}

func parseJSON(body []byte) (Parsed, error) {
	var jr jsonRequest
	// Unmarshal checks the whole body (trailing data included) before decoding.
	if err := json.Unmarshal(body, &jr); err != nil {
		return Parsed{}, invalid(ReasonBadJSON, "JSON: %s", jsonErrText(err))
	}
	var p Parsed
	var err error
	if p.RequestID, err = optionalID(jr.RequestID, "request_id", MaxRequestIDLen, ReasonBadRequestID); err != nil {
		return Parsed{}, err
	}
	if p.JobID, err = optionalID(jr.JobID, "job_id", MaxJobIDLen, ReasonBadJobID); err != nil {
		return Parsed{}, err
	}
	if len(jr.Meta) > 0 && !isNull(jr.Meta) {
		if jr.Meta[0] != '{' {
			return Parsed{}, invalid(ReasonBadMeta, "meta must be an object")
		}
		d := json.NewDecoder(bytes.NewReader(jr.Meta))
		d.UseNumber()
		if err := d.Decode(&p.Meta); err != nil {
			return Parsed{}, invalid(ReasonBadMeta, "meta: %s", jsonErrText(err))
		}
	}
	// From here on a refusal keeps the ids and meta, for the invalid result.
	if len(jr.ICCID) == 0 || isNull(jr.ICCID) {
		return p, invalid(ReasonMissingICCID, "JSON request has no iccid")
	}
	if jr.ICCID[0] != '"' {
		return p, invalid(ReasonICCIDNotString, "iccid must be a JSON string, got %s", jsonKind(jr.ICCID))
	}
	var s string
	if err := json.Unmarshal(jr.ICCID, &s); err != nil {
		return p, invalid(ReasonBadJSON, "iccid: %s", jsonErrText(err))
	}
	iccid, luhn, err := NormalizeICCID(s)
	if err != nil {
		return p, err
	}
	p.ICCID, p.LuhnValid = iccid, luhn
	return p, nil
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

func jsonKind(raw json.RawMessage) string {
	switch raw[0] {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	default:
		return "a number"
	}
}

// jsonErrText keeps decoder messages short and free of the input.
func jsonErrText(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("%s has the wrong type (%s)", te.Field, te.Value)
	}
	if err != nil && strings.Contains(err.Error(), "unexpected end") {
		return "unexpected end of input"
	}
	return "cannot decode"
}

func optionalID(raw json.RawMessage, field string, maxLen int, code string) (string, error) {
	if len(raw) == 0 || isNull(raw) {
		return "", nil
	}
	if raw[0] != '"' {
		return "", invalid(code, "%s must be a JSON string, got %s", field, jsonKind(raw))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalid(code, "%s: %s", field, jsonErrText(err))
	}
	if len(s) > maxLen {
		return "", invalid(code, "%s is %d bytes, the limit is %d", field, len(s), maxLen)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return "", invalid(code, "%s contains a control character", field)
		}
	}
	return strings.TrimSpace(s), nil
}

// NormalizeICCID trims s and checks it is an ICCID: digits, MinICCIDLen to
// MaxICCIDLen long, optionally ending in F (upper-cased). It reports the Luhn
// check digit of the digits, which is never a ground for refusal. A refusal
// is an *InvalidError with code empty, bad_chars or bad_length.
func NormalizeICCID(s string) (iccid string, luhnValid bool, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", false, invalid(ReasonEmpty, "iccid is empty")
	}
	digits := s
	if last := s[len(s)-1]; last == 'F' || last == 'f' {
		digits = s[:len(s)-1]
	}
	for i := 0; i < len(digits); i++ {
		if c := digits[i]; c < '0' || c > '9' {
			r, _ := utf8.DecodeRuneInString(digits[i:])
			return "", false, invalid(ReasonBadChars, "iccid has %s at position %d; only digits (and a last F) are allowed", describeRune(r), i+1)
		}
	}
	if len(digits) == 0 {
		return "", false, invalid(ReasonBadChars, "iccid has no digits")
	}
	if n := len(s); n < MinICCIDLen || n > MaxICCIDLen {
		return "", false, invalid(ReasonBadLength, "iccid is %d characters, want %d to %d", n, MinICCIDLen, MaxICCIDLen)
	}
	if len(digits) < len(s) {
		s = digits + "F"
	}
	return s, luhn(digits), nil
}

func describeRune(r rune) string {
	switch {
	case r == ' ' || r == '\t' || r == '\n' || r == '\r':
		return "whitespace"
	case r < 0x20 || r == 0x7f:
		return fmt.Sprintf("control character U+%04X", r)
	case r < utf8.RuneSelf:
		return fmt.Sprintf("%q", r)
	default:
		return fmt.Sprintf("U+%04X", r)
	}
}

// luhn reports whether the last digit of digits is its Luhn check digit.
func luhn(digits string) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// inputPreview is the Input field of an invalid result: at most 256 bytes,
// invalid UTF-8 replaced.
func inputPreview(body []byte) *string {
	const n = 256
	if len(body) > n {
		body = body[:n]
	}
	s := strings.ToValidUTF8(string(body), "\uFFFD")
	return &s
}
