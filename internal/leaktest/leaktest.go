// Package leaktest finds goroutines that outlive the code that started them,
// for tests that check that a Run method leaves nothing behind.
package leaktest

import (
	"runtime"
	"strings"
	"time"
)

// Goroutines returns the stacks of the process's goroutines that mention
// marker (a package path or a function name), one string per goroutine.
func Goroutines(marker string) []string {
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

// Remaining is Goroutines(marker) once none are left or grace has passed,
// whichever comes first. A goroutine that has signalled it is done may take
// a moment to actually exit; a leaked one is still there after grace.
func Remaining(marker string, grace time.Duration) []string {
	deadline := time.Now().Add(grace)
	for {
		left := Goroutines(marker)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(10 * time.Millisecond)
	}
}
