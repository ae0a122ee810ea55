package schemas_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/simlookup/simlookup/schemas"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/")

func of[T any](v T) *T { return &v }

var cst = time.FixedZone("CST", 8*3600)

// vendorBody is the vendor's own example response (getCardsInfo.openapi.yaml).
const vendorBody = `{"code":"200","message":"success","data":{"activateDate":"2024-01-08 15:05:19","cardStatus":"NON_ACTIVATED_NAME","dataFlow":410,"eid":"","iccid":"89852240400014306175","imei":"356731102212126","imeiPoolStatus":0,"imeiPoolUnlockCount":0,"imsi":"454030226105036","isIMEIPool":0,"isRealName":1,"memo":"abc","monthRemainFlow":20,"monthUseFlow":0,"network":"","packageCode":"GJ-LLB-20M-360D-LTCSCP-2022102899F1E1EF","packageKind":0,"productCode":"1GJDXLLBCP20210204105313","remainFlow":410,"remainFlowType":0,"totalUseFlow":402.77}}`

var (
	requestedAt = time.Date(2026, 12, 3, 22, 0, 0, 123456000, time.UTC)
	fetchedAt   = requestedAt.Add(850 * time.Millisecond)
	completedAt = requestedAt.Add(900 * time.Millisecond)
)

// resultOK is the result of the vendor's example response.
func resultOK() schemas.Result {
	return schemas.Result{
		SchemaVersion:  schemas.SchemaVersion,
		RequestID:      "job-20261203-7f3a:000001",
		JobID:          of("job-20261203-7f3a"),
		Lane:           nil,
		ICCID:          "89852240400014306175",
		ICCIDLuhnValid: of(false),
		Status:         schemas.StatusOK,
		Attempts:       1,
		Deliveries:     1,
		RequestSeq:     42,
		RequestedAt:    requestedAt,
		FetchedAt:      of(fetchedAt),
		CompletedAt:    completedAt,
		DurationMS:     870,
		Worker:         "worker-a",
		Card: &schemas.Card{
			ICCID:               of("89852240400014306175"),
			EID:                 of(""),
			IMSI:                of("454030226105036"),
			IMEI:                of("356731102212126"),
			ActivateDate:        of(time.Date(2024, 1, 8, 15, 5, 19, 0, cst).UTC()),
			ActivateDateRaw:     of("2024-01-08 15:05:19"),
			CardStatus:          of("NON_ACTIVATED_NAME"),
			IsRealName:          of[int64](1),
			MonthRemainFlowMB:   of(20.0),
			MonthUseFlowMB:      of(0.0),
			RemainFlowType:      of[int64](0),
			ProductCode:         of("1GJDXLLBCP20210204105313"),
			DataFlowMB:          of(410.0),
			RemainFlowMB:        of(410.0),
			IMEIPoolStatus:      of[int64](0),
			IMEIPoolUnlockCount: of[int64](0),
			IsIMEIPool:          of[int64](0),
			Network:             of(""),
			TotalUseFlowMB:      of(402.77),
			PackageCode:         of("GJ-LLB-20M-360D-LTCSCP-2022102899F1E1EF"),
			PackageKind:         of[int64](0),
		},
		Extra:       map[string]json.RawMessage{"memo": json.RawMessage(`"abc"`)},
		RawResponse: of(vendorBody),
		Meta:        map[string]any{"fleet": "north", "vehicle": "truck-17"},
	}
}

// resultFailed is a lookup the vendor answered with a failure code.
func resultFailed() schemas.Result {
	return schemas.Result{
		SchemaVersion:  schemas.SchemaVersion,
		RequestID:      "job-20261203-7f3a:000002",
		JobID:          of("job-20261203-7f3a"),
		Lane:           of("bulk"),
		ICCID:          "89000123456789013802",
		ICCIDLuhnValid: of(true),
		Status:         schemas.StatusFailed,
		Error: &schemas.ErrorInfo{
			Kind:       schemas.KindVendor,
			Code:       of("1003"),
			Message:    "card not found",
			HTTPStatus: of(200),
			Retryable:  false,
		},
		Attempts:    1,
		Deliveries:  1,
		RequestSeq:  43,
		RequestedAt: requestedAt,
		FetchedAt:   of(fetchedAt),
		CompletedAt: completedAt,
		DurationMS:  640,
		Worker:      "worker-a",
		RawResponse: of(`{"code":"1003","message":"card not found","data":null}`),
	}
}

// resultInvalid is a request whose body was not a usable ICCID.
func resultInvalid() schemas.Result {
	return schemas.Result{
		SchemaVersion: schemas.SchemaVersion,
		RequestID:     "SIMLOOKUP_REQUESTS:1764799200000000000:44",
		Input:         of("hello world"),
		Status:        schemas.StatusInvalid,
		Error: &schemas.ErrorInfo{
			Kind:    schemas.KindInvalidInput,
			Code:    of("not_digits"),
			Message: `iccid "hello world" is not 18-22 digits`,
		},
		Deliveries:  1,
		RequestSeq:  44,
		RequestedAt: requestedAt,
		CompletedAt: completedAt,
		Worker:      "worker-a",
	}
}

// resultFull sets every pointer and map of Result and Card (checked by
// TestFullResultIsFull), so that every property's type is exercised.
func resultFull() schemas.Result {
	r := resultFailed()
	r.Input = of("89000123456789013802")
	r.Card = resultOK().Card
	r.Card.PackageEndDate = of(time.Date(2027, 1, 8, 0, 0, 0, 0, time.UTC))
	r.Card.PackageEndDateRaw = of("2027-01-08 08:00:00")
	r.Card.ExpectedEndDate = of(time.Date(2027, 6, 30, 16, 0, 0, 0, time.UTC))
	r.Card.ExpectedEndDateRaw = of("2027-07-01 00:00:00")
	r.Card.Remark = of("spare")
	r.Extra = map[string]json.RawMessage{"memo": json.RawMessage(`{"nested":[1,2.5,null]}`)}
	r.Meta = map[string]any{"n": 1.5, "tags": []any{"a"}}
	return r
}

// resultMinimal leaves every pointer and map nil.
func resultMinimal() schemas.Result {
	return schemas.Result{
		SchemaVersion: schemas.SchemaVersion,
		RequestID:     "r1",
		ICCID:         "89000123456789013802",
		Status:        schemas.StatusOK,
		RequestedAt:   requestedAt,
		CompletedAt:   completedAt,
	}
}

func deadLetterFixture() schemas.DeadLetter {
	return schemas.DeadLetter{
		SchemaVersion: schemas.SchemaVersion,
		Reason:        schemas.ReasonMaxDeliveries,
		Detail:        "delivered 10000 times",
		At:            completedAt,
		Worker:        "worker-a",
		Stream:        schemas.RequestStream,
		Subject:       schemas.RequestSubject,
		Sequence:      45,
		RequestID:     "job-20261203-7f3a:000003",
		Deliveries:    10000,
		Headers:       map[string][]string{"Nats-Msg-Id": {"job-20261203-7f3a:000003"}},
		Payload:       []byte(`{"iccid":"89000123456789013802"}`),
	}
}

func jobFixture() schemas.Job {
	return schemas.Job{JobID: "job-20261203-7f3a", Count: 3, Subject: schemas.RequestSubject, CreatedAt: requestedAt}
}

func requestFixture() schemas.Request {
	return schemas.Request{
		ICCID:     "89000123456789013802",
		RequestID: "job-20261203-7f3a:000002",
		JobID:     "job-20261203-7f3a",
		Meta:      map[string]any{"fleet": "north"},
	}
}

func marshalIndent(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	return append(b, '\n')
}

// TestFullResultIsFull keeps resultFull honest when fields are added.
func TestFullResultIsFull(t *testing.T) {
	t.Parallel()
	r := resultFull()
	for _, v := range []reflect.Value{reflect.ValueOf(r), reflect.ValueOf(*r.Card), reflect.ValueOf(*r.Error)} {
		for i := range v.NumField() {
			f := v.Field(i)
			switch f.Kind() {
			case reflect.Pointer, reflect.Map, reflect.Slice:
				if f.IsNil() {
					t.Errorf("resultFull: %s.%s is nil; set it", v.Type().Name(), v.Type().Field(i).Name)
				}
			}
		}
	}
}

func TestGoValuesValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		v        any
		validate func([]byte) error
	}{
		{"result full", resultFull(), schemas.ValidateResult},
		{"result minimal", resultMinimal(), schemas.ValidateResult},
		{"result ok", resultOK(), schemas.ValidateResult},
		{"result failed", resultFailed(), schemas.ValidateResult},
		{"result invalid", resultInvalid(), schemas.ValidateResult},
		{"result zero times", schemas.Result{SchemaVersion: 1, RequestID: "r", Status: schemas.StatusOK}, schemas.ValidateResult},
		{"dead letter", deadLetterFixture(), schemas.ValidateDeadLetter},
		{"dead letter nil payload", schemas.DeadLetter{SchemaVersion: 1, Reason: schemas.ReasonResultRefused}, schemas.ValidateDeadLetter},
		{"job", jobFixture(), schemas.ValidateJob},
		{"request", requestFixture(), schemas.ValidateRequest},
		{"request minimal", schemas.Request{ICCID: "x"}, schemas.ValidateRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.validate(b); err != nil {
				t.Fatalf("%s does not validate: %v\n%s", tt.name, err, b)
			}
		})
	}
}

// TestInvalidDocuments lists documents the schemas must refuse.
func TestInvalidDocuments(t *testing.T) {
	t.Parallel()
	okJSON, _ := json.Marshal(resultOK())
	// result edits a valid ok result: set (or, with a nil value, delete) keys.
	result := func(edits map[string]any) []byte {
		var m map[string]any
		if err := json.Unmarshal(okJSON, &m); err != nil {
			t.Fatal(err)
		}
		for k, v := range edits {
			if v == nil {
				delete(m, k)
				continue
			}
			if raw, ok := v.(json.RawMessage); ok {
				var x any
				if err := json.Unmarshal(raw, &x); err != nil {
					t.Fatal(err)
				}
				v = x
			}
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return b
	}
	card := func(k string, v any) []byte {
		var m map[string]any
		_ = json.Unmarshal(okJSON, &m)
		m["card"].(map[string]any)[k] = v
		b, _ := json.Marshal(m)
		return b
	}
	null := json.RawMessage("null")
	tests := []struct {
		name     string
		validate func([]byte) error
		doc      []byte
	}{
		{"request missing iccid", schemas.ValidateRequest, []byte(`{"request_id":"r1"}`)},
		{"request iccid number", schemas.ValidateRequest, []byte(`{"iccid":89852240400014306175}`)},
		{"request iccid null", schemas.ValidateRequest, []byte(`{"iccid":null}`)},
		{"request meta array", schemas.ValidateRequest, []byte(`{"iccid":"8985","meta":[1]}`)},
		{"request not an object", schemas.ValidateRequest, []byte(`"89852240400014306175"`)},
		{"request bare iccid", schemas.ValidateRequest, []byte(`89852240400014306175 `)},
		{"request two values", schemas.ValidateRequest, []byte(`{"iccid":"1"}{"iccid":"2"}`)},
		{"result bad status", schemas.ValidateResult, result(map[string]any{"status": "done"})},
		{"result schema_version 2", schemas.ValidateResult, result(map[string]any{"schema_version": 2})},
		{"result extra top-level property", schemas.ValidateResult, result(map[string]any{"surprise": true})},
		{"result missing request_id", schemas.ValidateResult, result(map[string]any{"request_id": nil})},
		{"result missing card", schemas.ValidateResult, result(map[string]any{"card": nil})},
		{"result requested_at not a date-time", schemas.ValidateResult, result(map[string]any{"requested_at": "2026-12-03 22:00:00"})},
		{"result fetched_at a number", schemas.ValidateResult, result(map[string]any{"fetched_at": 1764799200})},
		{"result attempts fractional", schemas.ValidateResult, result(map[string]any{"attempts": 1.5})},
		{"result attempts negative", schemas.ValidateResult, result(map[string]any{"attempts": -1})},
		{"result iccid in subject-unsafe form", schemas.ValidateResult, result(map[string]any{"iccid": "8985 2240"})},
		{"result ok with an error", schemas.ValidateResult, result(map[string]any{"error": map[string]any{"kind": "vendor", "code": nil, "message": "", "http_status": nil, "retryable": false}})},
		{"result failed without an error", schemas.ValidateResult, result(map[string]any{"status": "failed", "error": null})},
		{"result error extra property", schemas.ValidateResult, result(map[string]any{"status": "failed", "error": map[string]any{"kind": "vendor", "code": nil, "message": "", "http_status": nil, "retryable": false, "hint": "x"}})},
		{"result error missing retryable", schemas.ValidateResult, result(map[string]any{"status": "failed", "error": map[string]any{"kind": "vendor", "code": nil, "message": "", "http_status": nil}})},
		{"result extra an array", schemas.ValidateResult, result(map[string]any{"extra": []any{1}})},
		{"result card extra property", schemas.ValidateResult, card("memo", "abc")},
		{"result card integer fractional", schemas.ValidateResult, card("is_real_name", 0.5)},
		{"result card number a string", schemas.ValidateResult, card("data_flow_mb", "410")},
		{"result card date not a date-time", schemas.ValidateResult, card("activate_date", "2024-01-08 15:05:19")},
		{"result not JSON", schemas.ValidateResult, []byte(`{"schema_version":1`)},
		{"dead letter payload not base64", schemas.ValidateDeadLetter, bytes.Replace(marshalIndent(t, deadLetterFixture()), []byte(`"payload": "`), []byte(`"payload": "!!`), 1)},
		{"dead letter missing reason", schemas.ValidateDeadLetter, []byte(`{"schema_version":1}`)},
		{"job count negative", schemas.ValidateJob, bytes.Replace(marshalIndent(t, jobFixture()), []byte(`"count": 3`), []byte(`"count": -3`), 1)},
		{"job extra property", schemas.ValidateJob, bytes.Replace(marshalIndent(t, jobFixture()), []byte(`"count": 3`), []byte(`"count": 3, "done": true`), 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.validate(tt.doc)
			if err == nil {
				t.Fatalf("accepted, want refused:\n%s", tt.doc)
			}
			if !errors.Is(err, schemas.ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			t.Log(err)
		})
	}
}

func TestValidationErrorDetail(t *testing.T) {
	t.Parallel()
	err := schemas.ValidateRequest([]byte(`{"iccid":8985}`))
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v does not wrap *jsonschema.ValidationError", err)
	}
	if !strings.Contains(err.Error(), "request.schema.json") || !strings.Contains(err.Error(), "/iccid") {
		t.Fatalf("error %q should name the schema and the failing location", err)
	}
}

// schemaDoc decodes an embedded schema.
func schemaDoc(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSchemaFiles(t *testing.T) {
	t.Parallel()
	for _, s := range []struct {
		file, id string
		b        []byte
	}{
		{"request.schema.json", schemas.RequestSchemaID, schemas.RequestSchema()},
		{"result.schema.json", schemas.ResultSchemaID, schemas.ResultSchema()},
		{"deadletter.schema.json", schemas.DeadLetterSchemaID, schemas.DeadLetterSchema()},
		{"job.schema.json", schemas.JobSchemaID, schemas.JobSchema()},
	} {
		onDisk, err := os.ReadFile(s.file)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(onDisk, s.b) {
			t.Errorf("%s: accessor differs from the file", s.file)
		}
		m := schemaDoc(t, s.b)
		if m["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema = %v", s.file, m["$schema"])
		}
		if m["$id"] != s.id {
			t.Errorf("%s: $id = %v, want %s", s.file, m["$id"], s.id)
		}
		if m["title"] == nil || m["description"] == nil {
			t.Errorf("%s: needs a title and a description", s.file)
		}
		checkDescriptions(t, s.file, "", m)
	}
}

// checkDescriptions requires a non-empty description on every property, at any depth.
func checkDescriptions(t *testing.T, file, path string, node map[string]any) {
	props, _ := node["properties"].(map[string]any)
	for name, p := range props {
		pm := p.(map[string]any)
		if d, _ := pm["description"].(string); len(d) < 10 {
			t.Errorf("%s: property %s/%s has no description", file, path, name)
		}
		checkDescriptions(t, file, path+"/"+name, pm)
	}
}

// TestGoTypesMatchSchemas compares each Go type's JSON fields with its
// schema's properties, in both directions: the same names, required exactly
// when the field has no omitempty, nullable exactly when the Go type can be
// null, and the same JSON type.
func TestGoTypesMatchSchemas(t *testing.T) {
	t.Parallel()
	result := schemaDoc(t, schemas.ResultSchema())
	props := result["properties"].(map[string]any)
	tests := []struct {
		name         string
		typ          reflect.Type
		node         map[string]any
		closed       bool // additionalProperties false
		allRequired  bool // every property required (the Go encoder always writes it)
		requiredOnly []string
	}{
		{"Result", reflect.TypeFor[schemas.Result](), result, true, true, nil},
		{"Card", reflect.TypeFor[schemas.Card](), props["card"].(map[string]any), true, true, nil},
		{"ErrorInfo", reflect.TypeFor[schemas.ErrorInfo](), props["error"].(map[string]any), true, true, nil},
		{"DeadLetter", reflect.TypeFor[schemas.DeadLetter](), schemaDoc(t, schemas.DeadLetterSchema()), true, true, nil},
		{"Job", reflect.TypeFor[schemas.Job](), schemaDoc(t, schemas.JobSchema()), true, true, nil},
		{"Request", reflect.TypeFor[schemas.Request](), schemaDoc(t, schemas.RequestSchema()), false, false, []string{"iccid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			sprops := tt.node["properties"].(map[string]any)
			var goNames, goRequired []string
			for i := range tt.typ.NumField() {
				f := tt.typ.Field(i)
				tag := f.Tag.Get("json")
				name, opts, _ := strings.Cut(tag, ",")
				if !f.IsExported() || name == "-" {
					continue
				}
				if name == "" {
					t.Errorf("%s.%s has no json name", tt.name, f.Name)
					continue
				}
				goNames = append(goNames, name)
				if !slices.Contains(strings.Split(opts, ","), "omitempty") {
					goRequired = append(goRequired, name)
				}
				p, ok := sprops[name].(map[string]any)
				if !ok {
					continue // reported below
				}
				checkPropertyType(t, tt.name+"."+f.Name, f.Type, p)
			}
			slices.Sort(goNames)
			schemaNames := schemaKeys(sprops)
			if !slices.Equal(goNames, schemaNames) {
				t.Errorf("%s: Go JSON fields and schema properties differ\n only in Go:     %v\n only in schema: %v",
					tt.name, setMinus(goNames, schemaNames), setMinus(schemaNames, goNames))
			}
			var req []string
			for _, r := range schemaList(tt.node["required"]) {
				req = append(req, r.(string))
			}
			slices.Sort(req)
			slices.Sort(goRequired)
			want := goRequired
			if tt.requiredOnly != nil {
				want = tt.requiredOnly
			}
			if !slices.Equal(req, want) {
				t.Errorf("%s: schema required = %v, want %v", tt.name, req, want)
			}
			if tt.allRequired && !slices.Equal(req, schemaNames) {
				t.Errorf("%s: every property the Go encoder always writes must be required", tt.name)
			}
			if ap, ok := tt.node["additionalProperties"]; tt.closed && (!ok || ap != false) {
				t.Errorf("%s: additionalProperties must be false", tt.name)
			}
		})
	}
}

// checkType compares a Go field type with a schema property.
func checkPropertyType(t *testing.T, field string, typ reflect.Type, p map[string]any) {
	t.Helper()
	want, format := goJSONTypes(typ)
	var got []string
	switch {
	case p["type"] != nil:
		for _, v := range schemaList(p["type"]) {
			got = append(got, v.(string))
		}
	case p["const"] != nil:
		got = []string{jsonValueType(p["const"])}
	case p["enum"] != nil:
		for _, v := range schemaList(p["enum"]) {
			if vt := jsonValueType(v); !slices.Contains(got, vt) {
				got = append(got, vt)
			}
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s (%s): schema type %v, want %v", field, typ, got, want)
	}
	if f, _ := p["format"].(string); f != format {
		t.Errorf("%s (%s): schema format %q, want %q", field, typ, f, format)
	}
	if k := typ.Kind(); k >= reflect.Uint && k <= reflect.Uint64 && p["minimum"] != 0.0 {
		t.Errorf("%s (%s): unsigned, so the schema needs minimum 0", field, typ)
	}
}

// jsonTypes is what encoding/json writes for a Go type.
func goJSONTypes(typ reflect.Type) (types []string, format string) {
	switch {
	case typ == reflect.TypeFor[time.Time]():
		return []string{"string"}, "date-time"
	case typ == reflect.TypeFor[[]byte]():
		return []string{"string", "null"}, ""
	}
	switch typ.Kind() {
	case reflect.Pointer:
		ts, f := goJSONTypes(typ.Elem())
		return append(ts, "null"), f
	case reflect.Map:
		return []string{"object", "null"}, ""
	case reflect.Struct:
		return []string{"object"}, ""
	case reflect.Slice:
		return []string{"array", "null"}, ""
	case reflect.String:
		return []string{"string"}, ""
	case reflect.Bool:
		return []string{"boolean"}, ""
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return []string{"integer"}, ""
	case reflect.Float32, reflect.Float64:
		return []string{"number"}, ""
	}
	return []string{"unknown " + typ.String()}, ""
}

func jsonValueType(v any) string {
	switch x := v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64:
		if x == float64(int64(x)) {
			return "integer"
		}
		return "number"
	}
	return "unknown"
}

func schemaList(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case nil:
		return nil
	default:
		return []any{x}
	}
}

func schemaKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func setMinus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// TestGolden writes (with -update) or compares byte for byte the example
// documents in testdata/, validates each, and checks each decodes back to
// the same Go value.
func TestGolden(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file     string
		v        any
		validate func([]byte) error
	}{
		{"result-ok.golden.json", resultOK(), schemas.ValidateResult},
		{"result-failed.golden.json", resultFailed(), schemas.ValidateResult},
		{"result-invalid.golden.json", resultInvalid(), schemas.ValidateResult},
		{"deadletter.golden.json", deadLetterFixture(), schemas.ValidateDeadLetter},
		{"job.golden.json", jobFixture(), schemas.ValidateJob},
		{"request.golden.json", requestFixture(), schemas.ValidateRequest},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join("testdata", tt.file)
			got := marshalIndent(t, tt.v)
			if *updateGolden {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./schemas -run TestGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the Go value's encoding (if the change is intended, rerun with -update and review the diff)\n got:\n%s", path, got)
			}
			if err := tt.validate(want); err != nil {
				t.Errorf("%s does not validate: %v", path, err)
			}
			back := reflect.New(reflect.TypeOf(tt.v))
			if err := json.Unmarshal(want, back.Interface()); err != nil {
				t.Fatalf("decode %s: %v", path, err)
			}
			if again := marshalIndent(t, back.Elem().Interface()); !bytes.Equal(again, want) {
				t.Errorf("%s does not survive decode and re-encode:\n%s", path, again)
			}
		})
	}
}

func TestValidateConcurrent(t *testing.T) {
	t.Parallel()
	b := marshalIndent(t, resultOK())
	done := make(chan error)
	for range 8 {
		go func() { done <- schemas.ValidateResult(b) }()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
