// Package schemas is the contract between simlookup's parts and its users:
// the request and result messages, the dead letters, the job records, the
// subjects they travel on and the JetStream streams that hold them.
//
// The worker produces results and the sink consumes them; neither imports the
// other, both import this package. The JSON Schemas beside this file
// (request, result, deadletter and job .schema.json) describe
// the same messages for users in other languages, and the tests check that the
// Go types and the schemas agree.
//
// Evolution is additive: within a major SchemaVersion fields and columns are
// only added, always nullable; nothing is renamed or retyped.
package schemas
