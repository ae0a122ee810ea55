package bench

import (
	"slices"
	"time"
)

// MaxWindow returns the largest number of events inside any window of
// length width (half-open [t, t+width)). times need not be sorted.
func MaxWindow(times []time.Time, width time.Duration) int {
	if len(times) == 0 {
		return 0
	}
	ts := slices.Clone(times)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	best, j := 0, 0
	for i := range ts {
		for ts[i].Sub(ts[j]) >= width {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// Percentile returns the p-th percentile (0 < p ≤ 100, nearest rank) of ds,
// or 0 for none. ds need not be sorted.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(float64(len(s))*p/100+0.999999) - 1
	rank = min(max(rank, 0), len(s)-1)
	return s[rank]
}

// countIn returns how many times fall in [from, to).
func countIn(times []time.Time, from, to time.Time) int {
	n := 0
	for _, t := range times {
		if !t.Before(from) && t.Before(to) {
			n++
		}
	}
	return n
}

// maxWindowStart is MaxWindow plus the start of the first busiest window.
func maxWindowStart(times []time.Time, width time.Duration) (int, time.Time) {
	if len(times) == 0 {
		return 0, time.Time{}
	}
	ts := slices.Clone(times)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	best, j, at := 0, 0, ts[0]
	for i := range ts {
		for ts[i].Sub(ts[j]) >= width {
			j++
		}
		if i-j+1 > best {
			best, at = i-j+1, ts[j]
		}
	}
	return best, at
}

// perSecond counts times in each whole second from first, for n seconds.
func perSecond(times []time.Time, first time.Time, n int) []int {
	out := make([]int, n)
	for _, t := range times {
		if i := int(t.Sub(first) / time.Second); i >= 0 && i < n {
			out[i]++
		}
	}
	return out
}
