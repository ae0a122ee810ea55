package schemas

import (
	"encoding/json"
	"time"
)

// SchemaVersion is the major version of the result event and of the Parquet
// row. Consumers should check it and refuse a major version they do not know.
const SchemaVersion = 1

// Request is the JSON form of a lookup request. A request may also be a bare
// ICCID as the whole message body. Only ICCID is required.
type Request struct {
	// ICCID of the card to look up: digits, 18–22 long after trimming
	// (a trailing F is accepted). The Luhn digit is not checked.
	ICCID string `json:"iccid"`
	// RequestID identifies this lookup; a result is published once per
	// request_id within the results stream's deduplication window (24 h).
	RequestID string `json:"request_id,omitempty"`
	// JobID groups the requests of one publish run.
	JobID string `json:"job_id,omitempty"`
	// Meta is copied into the result untouched.
	Meta map[string]any `json:"meta,omitempty"`
}

// Status of a result.
type Status string

const (
	StatusOK      Status = "ok"      // the vendor answered with the card
	StatusFailed  Status = "failed"  // a lookup was made (or given up on) and did not yield a card
	StatusInvalid Status = "invalid" // the input was not a usable request; no API call was made
)

// Error kinds (ErrorInfo.Kind). New kinds may be added within a major version.
const (
	KindInvalidInput = "invalid_input" // the request could not be used; Code says why
	KindVendor       = "vendor"        // the vendor answered with a failure code (Code)
	KindNoData       = "no_data"       // code "200" with data null
	KindHTTP         = "http"          // a permanent HTTP status (e.g. 400)
	KindExhausted    = "exhausted"     // retries gave up by age (--give-up-after); Message has the last error
)

// ErrorInfo explains a failed or invalid result.
type ErrorInfo struct {
	Kind       string  `json:"kind"`
	Code       *string `json:"code"`
	Message    string  `json:"message"`
	HTTPStatus *int    `json:"http_status"`
	Retryable  bool    `json:"retryable"`
}

// Result is the event published once per request to
// simlookup.result.<status>.<iccid> (simlookup.result.invalid for invalid
// input) with the header Nats-Msg-Id: result:<request_id>.
type Result struct {
	SchemaVersion int     `json:"schema_version"`
	RequestID     string  `json:"request_id"`
	JobID         *string `json:"job_id"`
	// Lane is the token after simlookup.request. in the request's subject, if any.
	Lane *string `json:"lane"`
	// ICCID is the normalised ICCID; empty for an invalid result.
	ICCID string `json:"iccid"`
	// ICCIDLuhnValid reports the check digit; it is never a ground for refusal.
	ICCIDLuhnValid *bool `json:"iccid_luhn_valid"`
	// Input is the request body of an invalid result, truncated to 256 bytes,
	// with invalid UTF-8 replaced; null otherwise.
	Input  *string    `json:"input"`
	Status Status     `json:"status"`
	Error  *ErrorInfo `json:"error"`
	// Attempts counts the vendor calls made for this request, over all deliveries.
	Attempts int `json:"attempts"`
	// Deliveries is how many times the stream delivered the request.
	Deliveries uint64 `json:"deliveries"`
	// RequestSeq is the request's sequence in the requests stream.
	RequestSeq uint64 `json:"request_seq"`
	// RequestedAt is when the requests stream stored the request.
	RequestedAt time.Time `json:"requested_at"`
	// FetchedAt is when the vendor's final answer arrived; null without one.
	FetchedAt *time.Time `json:"fetched_at"`
	// CompletedAt is when the worker produced this result.
	CompletedAt time.Time `json:"completed_at"`
	// DurationMS is from the first attempt of the final delivery to the result.
	DurationMS int64  `json:"duration_ms"`
	Worker     string `json:"worker"`
	Card       *Card  `json:"card"`
	// Extra holds the fields of the vendor's data that Card does not name.
	Extra map[string]json.RawMessage `json:"extra"`
	// RawResponse is the vendor's response body, verbatim.
	RawResponse *string        `json:"raw_response"`
	Meta        map[string]any `json:"meta"`
}

// Card is the vendor's card data, typed. Every field is null when the vendor
// left it out; a real 0 or "" is kept. Dates are the UTC instant of the
// vendor's zone-less string (read in Asia/Shanghai unless configured) beside
// the original string.
type Card struct {
	ICCID               *string    `json:"iccid"`
	EID                 *string    `json:"eid"`
	IMSI                *string    `json:"imsi"`
	IMEI                *string    `json:"imei"`
	ActivateDate        *time.Time `json:"activate_date"`
	ActivateDateRaw     *string    `json:"activate_date_raw"`
	CardStatus          *string    `json:"card_status"`
	IsRealName          *int64     `json:"is_real_name"`
	MonthRemainFlowMB   *float64   `json:"month_remain_flow_mb"`
	MonthUseFlowMB      *float64   `json:"month_use_flow_mb"`
	RemainFlowType      *int64     `json:"remain_flow_type"`
	ProductCode         *string    `json:"product_code"`
	PackageEndDate      *time.Time `json:"package_end_date"`
	PackageEndDateRaw   *string    `json:"package_end_date_raw"`
	DataFlowMB          *float64   `json:"data_flow_mb"`
	RemainFlowMB        *float64   `json:"remain_flow_mb"`
	ExpectedEndDate     *time.Time `json:"expected_end_date"`
	ExpectedEndDateRaw  *string    `json:"expected_end_date_raw"`
	IMEIPoolStatus      *int64     `json:"imei_pool_status"`
	IMEIPoolUnlockCount *int64     `json:"imei_pool_unlock_count"`
	IsIMEIPool          *int64     `json:"is_imei_pool"`
	Network             *string    `json:"network"`
	TotalUseFlowMB      *float64   `json:"total_use_flow_mb"`
	PackageCode         *string    `json:"package_code"`
	PackageKind         *int64     `json:"package_kind"`
	Remark              *string    `json:"remark"`
}

// DeadLetter is published to simlookup.dlq.<reason> for what could not
// become a result: a request past the delivery limit, or a result the results
// stream refused.
type DeadLetter struct {
	SchemaVersion int       `json:"schema_version"`
	Reason        string    `json:"reason"`
	Detail        string    `json:"detail"`
	At            time.Time `json:"at"`
	Worker        string    `json:"worker"`
	// Stream, Subject and Sequence locate the original message.
	Stream     string `json:"stream"`
	Subject    string `json:"subject"`
	Sequence   uint64 `json:"sequence"`
	RequestID  string `json:"request_id"`
	Deliveries uint64 `json:"deliveries"`
	// Headers of the original message.
	Headers map[string][]string `json:"headers"`
	// Payload is the original message body (base64 in JSON).
	Payload []byte `json:"payload"`
}

// Dead-letter reasons (the last token of the dead-letter subject).
const (
	ReasonMaxDeliveries = "max_deliveries"
	ReasonResultRefused = "result_refused"
)

// Job is the record publish keeps in the jobs bucket under the job id, so
// that results --wait knows how many results to expect.
type Job struct {
	JobID     string    `json:"job_id"`
	Count     int       `json:"count"`
	Subject   string    `json:"subject"`
	CreatedAt time.Time `json:"created_at"`
}
