// Package faults is simlookup's fault-injection suite. Its tests (build tag
// "faults", run by .ci/run) build the real simlookup and nats-server
// binaries, run them as subprocesses against the fake vendor API with faults
// switched on, kill them for real (SIGKILL) at random moments, fill the
// results stream and the sink's disk, and then count with internal/checker
// what every accepted request became: lost must be 0 and duplicate rows 0 in
// every scenario.
//
//	go test -tags faults -count=1 -v ./internal/faults/
//
// The suite prints a markdown summary table of all scenarios at the end, and
// writes it to the file named by SIMLOOKUP_FAULTS_TABLE if that is set.
package faults
