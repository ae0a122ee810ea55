package schemas_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/simlookup/simlookup/schemas"
)

// A consumer of result events checks each event against the schema, then
// decodes it into schemas.Result and refuses a major version it does not know.
func Example_decodeResult() {
	// In a consumer, data is the body of a message from SIMLOOKUP_RESULTS.
	data, err := os.ReadFile(filepath.Join("testdata", "result-ok.golden.json"))
	if err != nil {
		panic(err)
	}
	if err := schemas.ValidateResult(data); err != nil {
		fmt.Println("refused:", err)
		return
	}
	var r schemas.Result
	if err := json.Unmarshal(data, &r); err != nil {
		fmt.Println("refused:", err)
		return
	}
	if r.SchemaVersion != schemas.SchemaVersion {
		fmt.Println("unknown schema_version", r.SchemaVersion)
		return
	}
	fmt.Println(r.Status, r.ICCID, *r.Card.CardStatus, *r.Card.TotalUseFlowMB, "MB used")
	fmt.Println("subject:", schemas.ResultSubject(r.Status, r.ICCID))
	fmt.Println("Nats-Msg-Id:", schemas.ResultMsgID(r.RequestID))
	fmt.Println("activated:", r.Card.ActivateDate.UTC(), "from", *r.Card.ActivateDateRaw)

	// A document that does not match is refused with ErrInvalid.
	err = schemas.ValidateResult([]byte(`{"schema_version":2}`))
	fmt.Println("v2 refused:", errors.Is(err, schemas.ErrInvalid))
	// Output:
	// ok 89852240400014306175 NON_ACTIVATED_NAME 402.77 MB used
	// subject: simlookup.result.ok.89852240400014306175
	// Nats-Msg-Id: result:job-20261203-7f3a:000001
	// activated: 2024-01-08 07:05:19 +0000 UTC from 2024-01-08 15:05:19
	// v2 refused: true
}

// A producer of requests may check a request body before publishing it.
func ExampleValidateRequest() {
	fmt.Println(schemas.ValidateRequest([]byte(`{"iccid":"89852240400014306175","job_id":"j1"}`)) == nil)
	fmt.Println(schemas.ValidateRequest([]byte(`{"iccid":89852240400014306175}`)) == nil)
	// Output:
	// true
	// false
}
