package sink

import (
	"runtime"
	"strings"
	"testing"
)

// goroutinesIn returns the stacks of the goroutines that run code whose
// frames contain marker.
func goroutinesIn(marker string) []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, marker) {
			out = append(out, g)
		}
	}
	return out
}

// TestRunLeavesNoGoroutine: when Run returns, nothing of the sink runs any
// more (no reader or monitor left behind by a session). Not parallel: it
// looks at every goroutine of the process, and parallel tests only start
// once the sequential ones are done.
func TestRunLeavesNoGoroutine(t *testing.T) {
	b := setup(t, true)
	b.publish(t, results(0, 20))
	cfg := b.config(t)
	cfg.MaxRows = 7
	r := start(t, cfg)
	r.waitCommitted(t, 20)
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if left := goroutinesIn("sink.(*Sink)."); len(left) > 0 {
		t.Fatalf("%d goroutines of the sink still run after Run returned:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}
