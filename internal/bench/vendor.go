package bench

import (
	"encoding/json"
	"net/http"

	"github.com/simlookup/simlookup/sign"
)

// FakeVendor is a minimal stand-in for the vendor's getCardsInfo endpoint:
// it checks the appkey and the signature of every call and answers the
// upstream example card with the caller's ICCID. It has no faults and no
// latency. (The full simulator with faults and statistics is
// worker/eiot/eiottest; this one keeps the benchmark and the fault suite
// independent of it.) Safe for concurrent use.
func FakeVendor(appKey, secret string) http.Handler {
	sec := sign.NewSecret(secret)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			AppKey    string `json:"appkey"`
			Timestamp int64  `json:"timestamp"`
			Nonce     int64  `json:"nonce"`
			ICCID     string `json:"iccid"`
			Sign      string `json:"sign"`
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, `{"code":"400","message":"bad request"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		reply := func(v any) { _ = json.NewEncoder(w).Encode(v) }
		ok, _ := sign.Verify(sign.Params{"appkey": body.AppKey, "timestamp": body.Timestamp, "nonce": body.Nonce, "iccid": body.ICCID}, body.Sign, sec)
		switch {
		case body.AppKey != appKey:
			reply(map[string]any{"code": "10002", "message": "appkey refused"})
		case !ok:
			reply(map[string]any{"code": "10003", "message": "sign error"})
		default:
			reply(map[string]any{"code": "200", "message": "success", "data": map[string]any{
				"activateDate": "2024-01-08 15:05:19", "cardStatus": "ACTIVATED_NAME", "dataFlow": 410, "eid": "",
				"iccid": body.ICCID, "imei": "356731102212126", "imeiPoolStatus": 0, "imeiPoolUnlockCount": 0,
				"imsi": "454030226105036", "isIMEIPool": 0, "isRealName": 1, "memo": "abc", "monthRemainFlow": 20,
				"monthUseFlow": 0, "network": "", "packageCode": "GJ-LLB-20M-360D-LTCSCP-2022102899F1E1EF",
				"packageKind": 0, "productCode": "1GJDXLLBCP20210204105313", "remainFlow": 410, "remainFlowType": 0,
				"totalUseFlow": 402.77, "packageEndDate": "2025-01-08 15:05:19", "expectedEndDate": "2025-01-08 15:05:19",
			}})
		}
	})
}
