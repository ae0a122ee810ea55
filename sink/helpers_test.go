package sink

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/simlookup/simlookup/schemas"
)

func ptr[T any](v T) *T { return &v }

var baseTime = time.Date(2026, 12, 3, 21, 15, 30, 123456789, time.UTC)

// sampleResult is a realistic result event: i%10==7 failed, i%10==9
// invalid, the rest ok with a card whose fields exercise 0 vs NULL,
// fractional flows, dates and unknown vendor fields.
func sampleResult(i int) schemas.Result {
	iccid := fmt.Sprintf("89860%015d", i)
	r := schemas.Result{
		SchemaVersion:  schemas.SchemaVersion,
		RequestID:      fmt.Sprintf("job-1:%d", i),
		JobID:          ptr("job-1"),
		ICCID:          iccid,
		ICCIDLuhnValid: ptr(i%2 == 0),
		Status:         schemas.StatusOK,
		Attempts:       1 + i%3,
		Deliveries:     1,
		RequestSeq:     uint64(i + 1),
		RequestedAt:    baseTime.Add(time.Duration(i) * time.Millisecond),
		FetchedAt:      ptr(baseTime.Add(time.Duration(i)*time.Millisecond + 250*time.Millisecond)),
		CompletedAt:    baseTime.Add(time.Duration(i)*time.Millisecond + 251*time.Millisecond),
		DurationMS:     251,
		Worker:         "worker-a",
		Meta:           map[string]any{"fleet": "north", "n": float64(i)},
	}
	switch i % 10 {
	case 7:
		r.Status = schemas.StatusFailed
		r.Error = &schemas.ErrorInfo{Kind: schemas.KindVendor, Code: ptr("5001"), Message: "card not found", HTTPStatus: ptr(200), Retryable: false}
		r.RawResponse = ptr(`{"code":"5001","msg":"card not found","data":null}`)
	case 9:
		r.Status = schemas.StatusInvalid
		r.ICCID = ""
		r.ICCIDLuhnValid = nil
		r.FetchedAt = nil
		r.Attempts = 0
		r.Input = ptr("not-an-iccid")
		r.Error = &schemas.ErrorInfo{Kind: schemas.KindInvalidInput, Code: ptr("bad_length"), Message: "ICCID must be 18-22 digits"}
		r.Meta = nil
	default:
		act := time.Date(2024, 1, 8, 7, 5, 19, 0, time.UTC)
		r.Card = &schemas.Card{
			ICCID:               ptr(iccid),
			IMSI:                ptr("46001" + iccid[10:]),
			ActivateDate:        &act,
			ActivateDateRaw:     ptr("2024-01-08 15:05:19"),
			CardStatus:          ptr("active"),
			IsRealName:          ptr(int64(0)),
			MonthRemainFlowMB:   ptr(1023.75),
			MonthUseFlowMB:      ptr(0.0),
			RemainFlowType:      ptr(int64(1)),
			ProductCode:         ptr("P100"),
			DataFlowMB:          ptr(1024.0),
			RemainFlowMB:        ptr(float64(i%5) + 0.125),
			TotalUseFlowMB:      ptr(0.25),
			Network:             ptr("CMCC"),
			PackageCode:         ptr("PK-1G"),
			PackageKind:         ptr(int64(2)),
			IMEIPoolUnlockCount: ptr(int64(0)),
		}
		r.Extra = map[string]json.RawMessage{"newVendorField": json.RawMessage(`{"a":1}`), "flag": json.RawMessage(`true`)}
		r.RawResponse = ptr(fmt.Sprintf(`{"code":"200","msg":"ok","data":{"iccid":%q,"monthUseFlow":0,"newVendorField":{"a":1},"flag":true}}`, iccid))
	}
	return r
}
