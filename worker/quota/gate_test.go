package quota

import (
	"sort"
	"testing"
	"time"
)

// TestGateWindowAbsorbsJitter drives the gate on a virtual clock and checks
// that no window of 1s+windowMargin holds more than rate+bucket grants (so a
// request delayed by up to windowMargin on its way to the vendor cannot make
// a 1-second window there exceed the bound), while the configured rate is
// still reached.
func TestGateWindowAbsorbsJitter(t *testing.T) {
	for _, tc := range []struct {
		rate, burst float64
	}{{200, 5}, {50, 1}, {5, 1}, {1000, 10}, {16.7, 1.7}} {
		start := time.Unix(1_700_000_000, 0)
		now := start
		g := newGate(func() time.Time { return now })
		lim := newBucket(now, tc.rate, min(tc.burst, bucketFor(tc.rate)))
		var grants []time.Time
		const run = 20 * time.Second
		for now.Sub(start) < run {
			for {
				ok, _ := g.take(lim, now)
				if !ok {
					break
				}
				grants = append(grants, now)
			}
			now = now.Add(time.Millisecond)
		}
		bound := capacity(lim)
		span := time.Second + marginFor(lim)
		if worst := maxIn(grants, span); worst > bound {
			t.Errorf("rate %v burst %v: %d grants in a %v window, bound %d", tc.rate, tc.burst, worst, span, bound)
		}
		if tc.rate == 200 && span < time.Second+20*time.Millisecond { // the benchmark's case
			t.Errorf("rate %v burst %v: margin %v absorbs too little jitter", tc.rate, tc.burst, span-time.Second)
		}
		if float64(bound) > tc.rate+tc.burst+1e-9 {
			t.Errorf("rate %v burst %v: window capacity %d exceeds rate+burst", tc.rate, tc.burst, bound)
		}
		achieved := float64(len(grants)) / run.Seconds()
		if achieved < 0.99*tc.rate {
			t.Errorf("rate %v burst %v: achieved %.2f/s on the virtual clock, want >= 0.99×rate", tc.rate, tc.burst, achieved)
		}
	}
}

// maxIn is the most instants inside any half-open window of width w.
func maxIn(ts []time.Time, w time.Duration) int {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	best, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= w {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}
