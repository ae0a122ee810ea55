package eiot

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/simlookup/simlookup/schemas"
)

// DateLayout is the layout of the vendor's zone-less dates.
const DateLayout = "2006-01-02 15:04:05"

// CodeOK is the vendor's success code.
const CodeOK = "200"

// Response is a decoded vendor answer.
type Response struct {
	// Card is the vendor's data, typed; zero (all nil) without data.
	Card schemas.Card
	// Extra holds the data fields the spec does not name, and named fields
	// whose JSON had the wrong type, by the vendor's name; nil when none.
	Extra map[string]json.RawMessage
	// Raw is the whole response body, verbatim.
	Raw []byte
	// HTTPStatus is the response's status code.
	HTTPStatus int
	// Code and Message are the vendor's code and message.
	Code, Message string
	// FetchedAt is when the body was read (Config.Now).
	FetchedAt time.Time

	hasData bool
}

// HasData reports whether the response carried a data object.
func (r *Response) HasData() bool { return r != nil && r.hasData }

type envelope struct {
	Code    json.RawMessage `json:"code"`
	Message json.RawMessage `json:"message"`
	Data    json.RawMessage `json:"data"`
}

var errNotObject = errors.New("body is not a JSON object")

// parseEnvelope splits a body into code, message and data. data is nil when
// the field is absent or null.
func parseEnvelope(body []byte) (code, msg string, data map[string]json.RawMessage, err error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return "", "", nil, errNotObject
	}
	var env envelope
	if err := json.Unmarshal(trimmed, &env); err != nil {
		return "", "", nil, err
	}
	code, ok := scalarText(env.Code)
	if !ok {
		return "", "", nil, errors.New(`"code" is missing or not a string`)
	}
	msg, _ = scalarText(env.Message)
	if d := bytes.TrimSpace(env.Data); len(d) > 0 && !bytes.Equal(d, []byte("null")) {
		if d[0] != '{' {
			return code, msg, nil, errors.New(`"data" is not an object`)
		}
		if err := json.Unmarshal(d, &data); err != nil {
			return code, msg, nil, err
		}
		if data == nil {
			data = map[string]json.RawMessage{}
		}
	}
	return code, msg, data, nil
}

// scalarText renders a JSON string as its value and a JSON number as its
// digits; anything else (absent, null, object…) is not ok.
func scalarText(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false
	}
	switch c := raw[0]; {
	case c == '"':
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, true
	case c == '-' || (c >= '0' && c <= '9'):
		return string(raw), true
	}
	return "", false
}

// decodeCard fills a Card from the data object; every field it cannot use is
// returned in extra.
func decodeCard(data map[string]json.RawMessage, loc *time.Location) (schemas.Card, map[string]json.RawMessage) {
	var c schemas.Card
	var extra map[string]json.RawMessage
	for name, raw := range data {
		f, known := cardFields[name]
		if known && f(&c, bytes.TrimSpace(raw), loc) {
			continue
		}
		if extra == nil {
			extra = make(map[string]json.RawMessage)
		}
		extra[name] = raw
	}
	return c, extra
}

type fieldFunc func(c *schemas.Card, raw []byte, loc *time.Location) bool

func isNull(raw []byte) bool { return len(raw) == 0 || string(raw) == "null" }

func strField(get func(*schemas.Card) **string) fieldFunc {
	return func(c *schemas.Card, raw []byte, _ *time.Location) bool {
		if isNull(raw) {
			return true
		}
		if raw[0] != '"' {
			return false
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return false
		}
		*get(c) = &s
		return true
	}
}

func isNumber(raw []byte) bool { return raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9') }

func floatField(get func(*schemas.Card) **float64) fieldFunc {
	return func(c *schemas.Card, raw []byte, _ *time.Location) bool {
		if isNull(raw) {
			return true
		}
		if !isNumber(raw) || !json.Valid(raw) {
			return false
		}
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || math.IsInf(f, 0) {
			return false
		}
		*get(c) = &f
		return true
	}
}

func intField(get func(*schemas.Card) **int64) fieldFunc {
	return func(c *schemas.Card, raw []byte, _ *time.Location) bool {
		if isNull(raw) {
			return true
		}
		if !isNumber(raw) || !json.Valid(raw) {
			return false
		}
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			*get(c) = &n
			return true
		}
		// 1.0 or 1e2 is an integral value; 1.5 is not.
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
			return false
		}
		n := int64(f)
		*get(c) = &n
		return true
	}
}

func dateField(get func(*schemas.Card) (**time.Time, **string)) fieldFunc {
	return func(c *schemas.Card, raw []byte, loc *time.Location) bool {
		if isNull(raw) {
			return true
		}
		if raw[0] != '"' {
			return false
		}
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return false
		}
		tp, rp := get(c)
		*rp = &s
		if t, err := time.ParseInLocation(DateLayout, strings.TrimSpace(s), loc); err == nil {
			u := t.UTC()
			*tp = &u
		}
		return true
	}
}

// cardFields maps the vendor's field names to their decoders.
var cardFields = map[string]fieldFunc{
	"iccid":               strField(func(c *schemas.Card) **string { return &c.ICCID }),
	"eid":                 strField(func(c *schemas.Card) **string { return &c.EID }),
	"imsi":                strField(func(c *schemas.Card) **string { return &c.IMSI }),
	"imei":                strField(func(c *schemas.Card) **string { return &c.IMEI }),
	"cardStatus":          strField(func(c *schemas.Card) **string { return &c.CardStatus }),
	"productCode":         strField(func(c *schemas.Card) **string { return &c.ProductCode }),
	"network":             strField(func(c *schemas.Card) **string { return &c.Network }),
	"packageCode":         strField(func(c *schemas.Card) **string { return &c.PackageCode }),
	"remark":              strField(func(c *schemas.Card) **string { return &c.Remark }),
	"monthRemainFlow":     floatField(func(c *schemas.Card) **float64 { return &c.MonthRemainFlowMB }),
	"monthUseFlow":        floatField(func(c *schemas.Card) **float64 { return &c.MonthUseFlowMB }),
	"dataFlow":            floatField(func(c *schemas.Card) **float64 { return &c.DataFlowMB }),
	"remainFlow":          floatField(func(c *schemas.Card) **float64 { return &c.RemainFlowMB }),
	"totalUseFlow":        floatField(func(c *schemas.Card) **float64 { return &c.TotalUseFlowMB }),
	"isRealName":          intField(func(c *schemas.Card) **int64 { return &c.IsRealName }),
	"remainFlowType":      intField(func(c *schemas.Card) **int64 { return &c.RemainFlowType }),
	"imeiPoolStatus":      intField(func(c *schemas.Card) **int64 { return &c.IMEIPoolStatus }),
	"imeiPoolUnlockCount": intField(func(c *schemas.Card) **int64 { return &c.IMEIPoolUnlockCount }),
	"isIMEIPool":          intField(func(c *schemas.Card) **int64 { return &c.IsIMEIPool }),
	"packageKind":         intField(func(c *schemas.Card) **int64 { return &c.PackageKind }),
	"activateDate": dateField(func(c *schemas.Card) (**time.Time, **string) {
		return &c.ActivateDate, &c.ActivateDateRaw
	}),
	"packageEndDate": dateField(func(c *schemas.Card) (**time.Time, **string) {
		return &c.PackageEndDate, &c.PackageEndDateRaw
	}),
	"expectedEndDate": dateField(func(c *schemas.Card) (**time.Time, **string) {
		return &c.ExpectedEndDate, &c.ExpectedEndDateRaw
	}),
}

// classifier holds the vendor code sets.
type classifier struct {
	retryable, systemic map[string]bool
	replay              string
	loc                 *time.Location
	now                 func() time.Time
	scrub               func(string) string
}

func setOf(codes []string) map[string]bool {
	m := make(map[string]bool, len(codes))
	for _, c := range codes {
		m[strings.TrimSpace(c)] = true
	}
	return m
}

// classify turns a complete (bounded) response into a Response and/or an
// Error. For vendor codes and no_data both are returned.
func (k *classifier) classify(status int, header http.Header, body []byte, fetchedAt time.Time) (*Response, *Error) {
	code, msg, data, perr := parseEnvelope(body)
	msg = k.scrub(msg)
	if status < 200 || status > 299 {
		e := &Error{Kind: KindHTTPStatus, HTTPStatus: status, Raw: body, Message: http.StatusText(status)}
		t := bytes.TrimSpace(body)
		isJSON := len(t) > 0 && t[0] == '{' && json.Valid(t)
		if perr == nil {
			e.Code = code
			if msg != "" {
				e.Message = msg
			}
		}
		switch {
		case status == http.StatusTooManyRequests || status >= 500:
			e.Class = ClassRetryable
			e.RetryAfter = parseRetryAfter(header.Get("Retry-After"), k.now())
		case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusNotFound:
			e.Class = ClassSystemic
		case status >= 300 && status < 400:
			e.Class = ClassSystemic
			if loc := header.Get("Location"); loc != "" {
				e.Message = "redirected to " + loc + " (is the base URL right?)"
			}
		case !isJSON:
			e.Class, e.Kind = ClassSystemic, KindErrorPage
		default:
			e.Class = ClassPermanent
		}
		return nil, e
	}
	if perr != nil {
		return nil, &Error{Class: ClassRetryable, Kind: KindMalformed, HTTPStatus: status, Raw: body,
			Message: "response is not the vendor's JSON", Err: perr}
	}
	r := &Response{Raw: body, HTTPStatus: status, Code: code, Message: msg, FetchedAt: fetchedAt}
	if data != nil {
		r.hasData = true
		r.Card, r.Extra = decodeCard(data, k.loc)
	}
	if code == CodeOK {
		if data == nil {
			return r, &Error{Class: ClassNoData, Kind: KindNoData, HTTPStatus: status, Code: code, Message: msg, Raw: body}
		}
		return r, nil
	}
	e := &Error{Class: ClassPermanent, Kind: KindVendorCode, HTTPStatus: status, Code: code, Message: msg, Raw: body}
	switch {
	case code == k.replay:
		e.Class = ClassReplay
	case k.systemic[code]:
		e.Class = ClassSystemic
	case k.retryable[code]:
		e.Class = ClassRetryable
		e.RetryAfter = parseRetryAfter(header.Get("Retry-After"), k.now())
	}
	return r, e
}

// parseRetryAfter reads a Retry-After value: delta-seconds or an HTTP date.
// Absent, unparsable or past values give 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		const maxSecs = int64(math.MaxInt64 / int64(time.Second))
		return time.Duration(min(n, maxSecs)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
