package bench

import "net/http"

// newFakeHandler is the fake vendor API of the benchmark: zero latency, no
// faults.
func newFakeHandler() (http.Handler, error) {
	return FakeVendor(benchAppKey, benchSecret), nil
}
