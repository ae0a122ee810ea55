package sink

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/simlookup/simlookup/schemas"
)

// Row is one Parquet row: one result event, flattened. Its column names,
// types and meanings are listed in schemas/parquet-columns.md (generated from
// this type by TestParquetColumnsGolden).
//
// Every nullable column is a pointer: nil is NULL and a real 0, "" or false
// is kept (a non-pointer optional field would write 0 as NULL). Instants are
// INT64 TIMESTAMP(MICROS, UTC). There are no unsigned or nested types and no
// partition keys (dt, hour) inside the files.
//
// The doc tag is the column's meaning in the generated documentation.
type Row struct {
	RequestID      string  `parquet:"request_id" doc:"Identity of the lookup request; the dedupe key (one row per request_id, except after a stream was recreated)."`
	JobID          *string `parquet:"job_id,optional" doc:"The publish run the request belongs to."`
	Lane           *string `parquet:"lane,optional,dict" doc:"The token after simlookup.request. in the request subject; NULL for simlookup.request."`
	ICCID          *string `parquet:"iccid,optional" doc:"The normalised ICCID of the request; NULL for an invalid result."`
	ICCIDLuhnValid *bool   `parquet:"iccid_luhn_valid,optional" doc:"Whether the ICCID's check digit is right (never a ground for refusal)."`
	Input          *string `parquet:"input,optional" doc:"The request body of an invalid result (at most 256 bytes); NULL otherwise."`
	Status         string  `parquet:"status,dict" doc:"ok, failed or invalid."`

	ErrorKind       *string `parquet:"error_kind,optional,dict" doc:"Why a result failed: invalid_input, vendor, no_data, http, exhausted; NULL for ok."`
	ErrorCode       *string `parquet:"error_code,optional,dict" doc:"The vendor's or the validator's code for the failure."`
	ErrorMessage    *string `parquet:"error_message,optional" doc:"Human-readable reason for the failure."`
	ErrorHTTPStatus *int32  `parquet:"error_http_status,optional" doc:"HTTP status of the vendor's final answer, when it matters to the failure."`
	ErrorRetryable  *bool   `parquet:"error_retryable,optional" doc:"Whether the failure could succeed on a later try."`

	Attempts      int32      `parquet:"attempts" doc:"Vendor calls made for this request, over all deliveries."`
	Deliveries    int64      `parquet:"deliveries" doc:"Times the requests stream delivered the request."`
	RequestSeq    int64      `parquet:"request_seq" doc:"Sequence of the request in the requests stream."`
	RequestedAt   time.Time  `parquet:"requested_at,timestamp(microsecond)" doc:"When the requests stream stored the request."`
	FetchedAt     *time.Time `parquet:"fetched_at,timestamp(microsecond),optional" doc:"When the vendor's final answer arrived; NULL without one."`
	CompletedAt   time.Time  `parquet:"completed_at,timestamp(microsecond)" doc:"When the worker produced the result."`
	DurationMS    int64      `parquet:"duration_ms" doc:"Milliseconds from the first attempt of the final delivery to the result."`
	Worker        string     `parquet:"worker,dict" doc:"The worker that produced the result."`
	SchemaVersion int32      `parquet:"schema_version" doc:"Major version of the result event and of this row."`
	StreamSeq     int64      `parquet:"stream_seq" doc:"Sequence of the result in the results stream (unique within one stream incarnation, see the file's simlookup.epoch)."`
	StoredAt      time.Time  `parquet:"stored_at,timestamp(microsecond)" doc:"When the results stream stored the result; the dt/hour partition is derived from it (UTC)."`

	CardICCID           *string    `parquet:"card_iccid,optional" doc:"Card: ICCID as the vendor returned it."`
	EID                 *string    `parquet:"eid,optional" doc:"Card: eUICC identifier."`
	IMSI                *string    `parquet:"imsi,optional" doc:"Card: IMSI."`
	IMEI                *string    `parquet:"imei,optional" doc:"Card: IMEI of the device last seen with the card."`
	ActivateDate        *time.Time `parquet:"activate_date,timestamp(microsecond),optional" doc:"Card: activation instant (UTC) parsed from activate_date_raw."`
	ActivateDateRaw     *string    `parquet:"activate_date_raw,optional" doc:"Card: activation date as the vendor wrote it (no zone)."`
	CardStatus          *string    `parquet:"card_status,optional,dict" doc:"Card: the vendor's card status."`
	IsRealName          *int64     `parquet:"is_real_name,optional" doc:"Card: real-name registration flag (vendor code)."`
	MonthRemainFlowMB   *float64   `parquet:"month_remain_flow_mb,optional" doc:"Card: data left this month, MB."`
	MonthUseFlowMB      *float64   `parquet:"month_use_flow_mb,optional" doc:"Card: data used this month, MB."`
	RemainFlowType      *int64     `parquet:"remain_flow_type,optional" doc:"Card: how remaining data is counted (vendor code)."`
	ProductCode         *string    `parquet:"product_code,optional,dict" doc:"Card: the vendor's product code."`
	PackageEndDate      *time.Time `parquet:"package_end_date,timestamp(microsecond),optional" doc:"Card: package end instant (UTC) parsed from package_end_date_raw."`
	PackageEndDateRaw   *string    `parquet:"package_end_date_raw,optional" doc:"Card: package end date as the vendor wrote it."`
	DataFlowMB          *float64   `parquet:"data_flow_mb,optional" doc:"Card: data allowance of the package, MB."`
	RemainFlowMB        *float64   `parquet:"remain_flow_mb,optional" doc:"Card: data left in the package, MB."`
	ExpectedEndDate     *time.Time `parquet:"expected_end_date,timestamp(microsecond),optional" doc:"Card: expected end instant (UTC) parsed from expected_end_date_raw."`
	ExpectedEndDateRaw  *string    `parquet:"expected_end_date_raw,optional" doc:"Card: expected end date as the vendor wrote it."`
	IMEIPoolStatus      *int64     `parquet:"imei_pool_status,optional" doc:"Card: IMEI pool status (vendor code)."`
	IMEIPoolUnlockCount *int64     `parquet:"imei_pool_unlock_count,optional" doc:"Card: IMEI pool unlocks used."`
	IsIMEIPool          *int64     `parquet:"is_imei_pool,optional" doc:"Card: IMEI pool flag (vendor code)."`
	Network             *string    `parquet:"network,optional,dict" doc:"Card: network or operator."`
	TotalUseFlowMB      *float64   `parquet:"total_use_flow_mb,optional" doc:"Card: data used in total, MB."`
	PackageCode         *string    `parquet:"package_code,optional,dict" doc:"Card: the vendor's package code."`
	PackageKind         *int64     `parquet:"package_kind,optional" doc:"Card: package kind (vendor code)."`
	Remark              *string    `parquet:"remark,optional" doc:"Card: the vendor's free-text remark."`

	ExtraJSON *string `parquet:"extra_json,optional" doc:"JSON object of the vendor's data fields that the schema does not name; NULL when there were none."`
	RawJSON   *string `parquet:"raw_json,optional" doc:"The vendor's response body, verbatim."`
	MetaJSON  *string `parquet:"meta_json,optional" doc:"JSON object copied from the request's meta."`
	SinkError *string `parquet:"sink_error,optional" doc:"Set when the sink could not read the event: the other columns are then best effort and event_json holds the message. NULL normally."`
	EventJSON *string `parquet:"event_json,optional" doc:"The result message as stored, only when sink_error is set."`
}

// ErrBadResult is wrapped by RowFromResult for events it cannot convert.
var ErrBadResult = errors.New("sink: bad result event")

// RowFromResult converts a result event into its row. streamSeq and storedAt
// are the result's sequence and stored time in the results stream. It is pure
// and safe for concurrent use; the row shares r's pointer fields (they are
// not modified). It fails (wrapping ErrBadResult) only for a nil
// result, an empty request_id, a schema_version newer than this build knows,
// or numbers that do not fit the row's types.
func RowFromResult(r *schemas.Result, streamSeq uint64, storedAt time.Time) (Row, error) {
	if r == nil {
		return Row{}, fmt.Errorf("%w: nil result", ErrBadResult)
	}
	if r.RequestID == "" {
		return Row{}, fmt.Errorf("%w: empty request_id", ErrBadResult)
	}
	if r.SchemaVersion > schemas.SchemaVersion || r.SchemaVersion < 0 {
		return Row{}, fmt.Errorf("%w: schema_version %d (this sink knows %d)", ErrBadResult, r.SchemaVersion, schemas.SchemaVersion)
	}
	seq, err := toInt64("stream_seq", streamSeq)
	if err != nil {
		return Row{}, err
	}
	deliveries, err := toInt64("deliveries", r.Deliveries)
	if err != nil {
		return Row{}, err
	}
	reqSeq, err := toInt64("request_seq", r.RequestSeq)
	if err != nil {
		return Row{}, err
	}
	if r.Attempts < 0 || r.Attempts > math.MaxInt32 {
		return Row{}, fmt.Errorf("%w: attempts %d out of range", ErrBadResult, r.Attempts)
	}
	row := Row{
		RequestID:      r.RequestID,
		JobID:          r.JobID,
		Lane:           r.Lane,
		ICCIDLuhnValid: r.ICCIDLuhnValid,
		Input:          r.Input,
		Status:         string(r.Status),
		Attempts:       int32(r.Attempts),
		Deliveries:     deliveries,
		RequestSeq:     reqSeq,
		RequestedAt:    r.RequestedAt.UTC(),
		FetchedAt:      utcPtr(r.FetchedAt),
		CompletedAt:    r.CompletedAt.UTC(),
		DurationMS:     r.DurationMS,
		Worker:         r.Worker,
		SchemaVersion:  int32(r.SchemaVersion),
		StreamSeq:      seq,
		StoredAt:       storedAt.UTC(),
		RawJSON:        r.RawResponse,
	}
	if r.ICCID != "" {
		row.ICCID = ptrTo(r.ICCID)
	}
	if e := r.Error; e != nil {
		row.ErrorKind = ptrTo(e.Kind)
		row.ErrorCode = e.Code
		row.ErrorMessage = ptrTo(e.Message)
		row.ErrorRetryable = ptrTo(e.Retryable)
		if e.HTTPStatus != nil {
			if *e.HTTPStatus < math.MinInt32 || *e.HTTPStatus > math.MaxInt32 {
				return Row{}, fmt.Errorf("%w: error.http_status %d out of range", ErrBadResult, *e.HTTPStatus)
			}
			v := int32(*e.HTTPStatus)
			row.ErrorHTTPStatus = &v
		}
	}
	if c := r.Card; c != nil {
		row.CardICCID = c.ICCID
		row.EID = c.EID
		row.IMSI = c.IMSI
		row.IMEI = c.IMEI
		row.ActivateDate = utcPtr(c.ActivateDate)
		row.ActivateDateRaw = c.ActivateDateRaw
		row.CardStatus = c.CardStatus
		row.IsRealName = c.IsRealName
		row.MonthRemainFlowMB = c.MonthRemainFlowMB
		row.MonthUseFlowMB = c.MonthUseFlowMB
		row.RemainFlowType = c.RemainFlowType
		row.ProductCode = c.ProductCode
		row.PackageEndDate = utcPtr(c.PackageEndDate)
		row.PackageEndDateRaw = c.PackageEndDateRaw
		row.DataFlowMB = c.DataFlowMB
		row.RemainFlowMB = c.RemainFlowMB
		row.ExpectedEndDate = utcPtr(c.ExpectedEndDate)
		row.ExpectedEndDateRaw = c.ExpectedEndDateRaw
		row.IMEIPoolStatus = c.IMEIPoolStatus
		row.IMEIPoolUnlockCount = c.IMEIPoolUnlockCount
		row.IsIMEIPool = c.IsIMEIPool
		row.Network = c.Network
		row.TotalUseFlowMB = c.TotalUseFlowMB
		row.PackageCode = c.PackageCode
		row.PackageKind = c.PackageKind
		row.Remark = c.Remark
	}
	if r.Extra != nil {
		s, err := jsonString(r.Extra)
		if err != nil {
			return Row{}, fmt.Errorf("%w: extra: %w", ErrBadResult, err)
		}
		row.ExtraJSON = &s
	}
	if r.Meta != nil {
		s, err := jsonString(r.Meta)
		if err != nil {
			return Row{}, fmt.Errorf("%w: meta: %w", ErrBadResult, err)
		}
		row.MetaJSON = &s
	}
	return row, nil
}

// rowFromMessage decodes a stored message into its row. A message that is
// not a usable result event still yields a row (one row per stream message):
// sink_error says why and event_json keeps the message; request_id comes from
// the Nats-Msg-Id header, or stream:<seq>.
func rowFromMessage(data []byte, msgID, subject string, seq uint64, stored time.Time) (Row, error) {
	var r schemas.Result
	err := json.Unmarshal(data, &r)
	if err == nil {
		var row Row
		row, err = RowFromResult(&r, seq, stored)
		if err == nil {
			return row, nil
		}
	}
	reason := err.Error()
	payload := strings.ToValidUTF8(string(data), "\uFFFD")
	row := Row{
		RequestID:     strings.TrimPrefix(msgID, schemas.ResultMsgIDPrefix),
		Status:        statusFromSubject(subject),
		SchemaVersion: schemas.SchemaVersion,
		StreamSeq:     int64(min(seq, math.MaxInt64)),
		StoredAt:      stored.UTC(),
		RequestedAt:   stored.UTC(),
		CompletedAt:   stored.UTC(),
		SinkError:     &reason,
		EventJSON:     &payload,
	}
	if row.RequestID == "" {
		row.RequestID = fmt.Sprintf("stream:%d", seq)
	}
	return row, err
}

func statusFromSubject(subject string) string {
	rest, ok := strings.CutPrefix(subject, schemas.ResultSubjectPrefix)
	if !ok {
		return ""
	}
	status, _, _ := strings.Cut(rest, ".")
	return status
}

func toInt64(name string, v uint64) (int64, error) {
	if v > math.MaxInt64 {
		return 0, fmt.Errorf("%w: %s %d does not fit a signed 64-bit integer", ErrBadResult, name, v)
	}
	return int64(v), nil
}

func ptrTo[T any](v T) *T { return &v }

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// estimateSize is a cheap upper-bound guess of a row's uncompressed size,
// used to close batches on MaxBytes before the writer has flushed pages.
func (r *Row) estimateSize() int64 {
	n := 64 * 8 // fixed-width columns and definition levels, roughly
	for _, s := range []*string{r.JobID, r.Lane, r.ICCID, r.Input, r.ErrorKind, r.ErrorCode, r.ErrorMessage,
		r.CardICCID, r.EID, r.IMSI, r.IMEI, r.ActivateDateRaw, r.CardStatus, r.ProductCode, r.PackageEndDateRaw,
		r.ExpectedEndDateRaw, r.Network, r.PackageCode, r.Remark, r.ExtraJSON, r.RawJSON, r.MetaJSON, r.SinkError, r.EventJSON} {
		if s != nil {
			n += len(*s)
		}
	}
	return int64(n + len(r.RequestID) + len(r.Status) + len(r.Worker))
}
