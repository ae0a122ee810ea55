package schemas

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The JSON Schemas (draft 2020-12) of the messages, embedded from the files
// beside this one so that the binary and the repository always agree.
//
//go:embed *.schema.json
var schemaFiles embed.FS

// The $id of each schema. The major version in the path follows SchemaVersion.
const (
	RequestSchemaID    = "https://simlookup.dev/schemas/request/v1.json"
	ResultSchemaID     = "https://simlookup.dev/schemas/result/v1.json"
	DeadLetterSchemaID = "https://simlookup.dev/schemas/deadletter/v1.json"
	JobSchemaID        = "https://simlookup.dev/schemas/job/v1.json"
)

// ErrInvalid is matched (errors.Is) by every error of the Validate functions:
// the document is not JSON, or does not match the schema. The error also
// wraps the validator's *jsonschema.ValidationError when there is one, which
// carries the failing locations.
var ErrInvalid = errors.New("schemas: document does not match its schema")

// schemaFile names the embedded file of each schema, keyed by $id.
var schemaFile = map[string]string{
	RequestSchemaID:    "request.schema.json",
	ResultSchemaID:     "result.schema.json",
	DeadLetterSchemaID: "deadletter.schema.json",
	JobSchemaID:        "job.schema.json",
}

func mustRead(name string) []byte {
	b, err := schemaFiles.ReadFile(name)
	if err != nil {
		panic("schemas: embedded " + name + " missing: " + err.Error())
	}
	return b
}

// RequestSchema returns request.schema.json: the JSON object form of a
// lookup request. The caller may modify the returned slice.
func RequestSchema() []byte { return mustRead("request.schema.json") }

// ResultSchema returns result.schema.json: the result event.
// The caller may modify the returned slice.
func ResultSchema() []byte { return mustRead("result.schema.json") }

// DeadLetterSchema returns deadletter.schema.json: a dead letter.
// The caller may modify the returned slice.
func DeadLetterSchema() []byte { return mustRead("deadletter.schema.json") }

// JobSchema returns job.schema.json: a record of the jobs bucket.
// The caller may modify the returned slice.
func JobSchema() []byte { return mustRead("job.schema.json") }

// compiled holds the four schemas, compiled once on first use with format
// (date-time) and content (base64) assertions on. It is safe for concurrent
// use: a compiled *jsonschema.Schema is read-only.
var compiled = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.AssertContent()
	for id, name := range schemaFile {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(mustRead(name)))
		if err != nil {
			return nil, fmt.Errorf("schemas: parse %s: %w", name, err)
		}
		if err := c.AddResource(id, doc); err != nil {
			return nil, fmt.Errorf("schemas: add %s: %w", name, err)
		}
	}
	out := make(map[string]*jsonschema.Schema, len(schemaFile))
	for id, name := range schemaFile {
		sch, err := c.Compile(id)
		if err != nil {
			return nil, fmt.Errorf("schemas: compile %s: %w", name, err)
		}
		out[id] = sch
	}
	return out, nil
})

func validate(id string, data []byte) error {
	schs, err := compiled()
	if err != nil {
		return err // the embedded schemas are broken: a build defect, not ErrInvalid
	}
	name := schemaFile[id]
	// UnmarshalJSON keeps numbers as json.Number, so 20-digit integers and
	// integer-vs-number checks are exact.
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: %s: not JSON: %w", ErrInvalid, name, err)
	}
	if err := schs[id].Validate(v); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, name, err)
	}
	return nil
}

// ValidateRequest checks that data is one JSON object matching
// request.schema.json. A bare-ICCID request body is not JSON and is not
// checked here. Errors match ErrInvalid. Safe for concurrent use.
func ValidateRequest(data []byte) error { return validate(RequestSchemaID, data) }

// ValidateResult checks that data is one result event matching
// result.schema.json. Errors match ErrInvalid. Safe for concurrent use.
func ValidateResult(data []byte) error { return validate(ResultSchemaID, data) }

// ValidateDeadLetter checks that data is one dead letter matching
// deadletter.schema.json. Errors match ErrInvalid. Safe for concurrent use.
func ValidateDeadLetter(data []byte) error { return validate(DeadLetterSchemaID, data) }

// ValidateJob checks that data is one job record matching job.schema.json.
// Errors match ErrInvalid. Safe for concurrent use.
func ValidateJob(data []byte) error { return validate(JobSchemaID, data) }
