package worker

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/worker/eiot/eiottest"
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
	if left := goroutinesIn("simlookup/worker.(*Worker)."); len(left) > 0 {
		t.Fatalf("%d goroutines of the worker still run after Run returned:\n%s", len(left), strings.Join(left, "\n\n"))
	}
}
