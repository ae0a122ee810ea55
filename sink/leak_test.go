package sink

import (
	"strings"
	"testing"
	"time"

	"github.com/simlookup/simlookup/internal/leaktest"
)

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
	if left := leaktest.Remaining("sink.(*Sink).", 2*time.Second); len(left) > 0 {
		t.Fatalf("%d goroutines of the sink still run after Run returned:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}
