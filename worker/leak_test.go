package worker

import (
	"strings"
	"testing"
	"time"

	"github.com/simlookup/simlookup/internal/leaktest"
	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/worker/eiot/eiottest"
)

// TestRunLeavesNoGoroutine: when Run returns, nothing of the worker runs
// any more (handlers, heartbeats, the consumer watcher, the advisory
// subscription's handlers). Not parallel: it looks at every goroutine of the
// process, and parallel tests only start once the sequential ones are done.
func TestRunLeavesNoGoroutine(t *testing.T) {
	b := setup(t, eiottest.Config{})
	for i := range 20 {
		b.publish(schemas.RequestSubject, []byte(iccid(i)), nil)
	}
	w, stop := b.run(b.config())
	b.waitResults(20, 30*time.Second)
	waitFor(t, 10*time.Second, "consuming", func() bool { return w.Ready() == nil })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if left := leaktest.Remaining("simlookup/worker.(*Worker).", 2*time.Second); len(left) > 0 {
		t.Fatalf("%d goroutines of the worker still run after Run returned:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}
