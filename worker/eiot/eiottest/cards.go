package eiottest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// ExampleICCID is the ICCID of the vendor's example response (it fails the
// Luhn check; the vendor does not care).
const ExampleICCID = "89852240400014306175"

// ExampleResponse is the vendor's example response from its OpenAPI spec,
// the body answered verbatim for ExampleICCID.
const ExampleResponse = `{"code":"200","data":{"activateDate":"2024-01-08 15:05:19","cardStatus":"NON_ACTIVATED_NAME","dataFlow":410,"eid":"","iccid":"89852240400014306175","imei":"356731102212126","imeiPoolStatus":0,"imeiPoolUnlockCount":0,"imsi":"454030226105036","isIMEIPool":0,"isRealName":1,"memo":"abc","monthRemainFlow":20,"monthUseFlow":0,"network":"","packageCode":"GJ-LLB-20M-360D-LTCSCP-2022102899F1E1EF","packageKind":0,"productCode":"1GJDXLLBCP20210204105313","remainFlow":410,"remainFlowType":0,"totalUseFlow":402.77},"message":"success"}`

// Card statuses the vendor documents; the fake also answers UnknownStatus now and then.
var CardStatuses = []string{"ACTIVATION_READY_NAME", "NON_ACTIVATED_NAME", "ACTIVATED_NAME", "DEACTIVATED_NAME"}

// UnknownStatus is a card status the spec does not list (to be kept as data).
const UnknownStatus = "TESTING_NAME"

// DefaultNotFound is the default "not found" rule: ICCIDs ending in "404".
func DefaultNotFound(iccid string) bool { return strings.HasSuffix(iccid, "404") }

var shanghai = func() *time.Location {
	loc, err := time.LoadLocation("Asia/Shanghai")
	if err != nil {
		return time.FixedZone("CST", 8*3600)
	}
	return loc
}()

// hashStream yields pseudo-random numbers derived from the ICCID.
type hashStream struct {
	seed [32]byte
	buf  []byte
	n    uint32
}

func newHashStream(iccid string) *hashStream { return &hashStream{seed: sha256.Sum256([]byte(iccid))} }

func (h *hashStream) u64() uint64 {
	if len(h.buf) < 8 {
		var ctr [4]byte
		binary.BigEndian.PutUint32(ctr[:], h.n)
		h.n++
		sum := sha256.Sum256(append(h.seed[:], ctr[:]...))
		h.buf = sum[:]
	}
	v := binary.BigEndian.Uint64(h.buf)
	h.buf = h.buf[8:]
	return v
}

func (h *hashStream) intn(n int) int { return int(h.u64() % uint64(n)) }

func (h *hashStream) digits(n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(byte('0' + h.intn(10)))
	}
	return b.String()
}

// mb returns an amount of MB: an integer half of the time, else two decimals.
func (h *hashStream) mb(maxCents int) float64 {
	c := h.intn(maxCents + 1)
	if h.intn(2) == 0 {
		c -= c % 100
	}
	return float64(c) / 100
}

// CardData returns the data object the fake answers for an ICCID: the same
// ICCID always gives the same data.
func CardData(iccid string) map[string]any {
	if iccid == ExampleICCID {
		var env struct{ Data map[string]any }
		_ = json.Unmarshal([]byte(ExampleResponse), &env)
		return env.Data
	}
	h := newHashStream(iccid)
	d := map[string]any{"iccid": iccid}
	switch r := h.intn(20); {
	case r == 0:
		d["cardStatus"] = UnknownStatus
	default:
		d["cardStatus"] = CardStatuses[r%4]
	}
	d["imsi"] = "4540" + h.digits(11)
	d["imei"] = "35" + h.digits(13)
	if h.intn(4) == 0 {
		d["eid"] = "89049032" + h.digits(24)
	} else {
		d["eid"] = ""
	}
	base := time.Date(2023, 1, 1, 0, 0, 0, 0, shanghai)
	activated := base.Add(time.Duration(h.intn(2*365*24*3600)) * time.Second)
	if h.intn(8) != 0 {
		d["activateDate"] = activated.Format("2006-01-02 15:04:05")
	}
	plans := []int{100, 410, 1024, 5120, 20480}
	plan := plans[h.intn(len(plans))]
	used := h.mb(plan * 100)
	d["dataFlow"] = float64(plan)
	d["monthUseFlow"] = used
	d["monthRemainFlow"] = float64(int(float64(plan)*100-used*100+0.5)) / 100
	d["remainFlow"] = h.mb(plan * 100)
	d["totalUseFlow"] = h.mb(plan * 300)
	d["isRealName"] = h.intn(2)
	d["remainFlowType"] = h.intn(2)
	d["imeiPoolStatus"] = map[bool]int{true: 1, false: 0}[h.intn(10) == 0]
	d["imeiPoolUnlockCount"] = h.intn(4)
	d["isIMEIPool"] = h.intn(3)
	d["packageKind"] = h.intn(3)
	d["network"] = []string{"", "CMCC", "CUCC", "CTCC"}[h.intn(4)]
	d["productCode"] = fmt.Sprintf("1GJDXLLBCP%014d", h.u64()%100000000000000)
	d["packageCode"] = fmt.Sprintf("GJ-LLB-%dM-360D-%s", plan, strings.ToUpper(fmt.Sprintf("%08x", h.u64()%(1<<32))))
	if h.intn(4) != 0 {
		d["packageEndDate"] = activated.AddDate(1, 0, 0).Format("2006-01-02 15:04:05")
	}
	if h.intn(4) != 0 {
		d["expectedEndDate"] = activated.AddDate(2, 0, 0).Format("2006-01-02 15:04:05")
	}
	if h.intn(3) == 0 {
		d["remark"] = "fleet-" + h.digits(2)
	}
	if h.intn(4) == 0 {
		d["memo"] = "memo-" + h.digits(4)
	}
	return d
}

// CardResponse returns the full body the fake answers for an accepted ICCID.
func CardResponse(iccid string) []byte {
	if iccid == ExampleICCID {
		return []byte(ExampleResponse)
	}
	b, _ := json.Marshal(map[string]any{"code": CodeOK, "message": "success", "data": CardData(iccid)})
	return b
}
