package quota

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Feedback configures how vendor throttling (HTTP 429, "busy" answers)
// moves the rate multiplier: multiplicative decrease on a sustained run of
// throttles, additive increase while calls succeed (AIMD). The multiplier
// scales the configured rate and never exceeds 1, so feedback can only slow
// the fleet down below the configured rate, never speed it up past it.
//
// The zero value means the defaults below.
type Feedback struct {
	// Threshold is how many throttles within Window make a "sustained run"
	// that lowers the rate. An occasional 429 does not. A Fleet counts
	// every member's throttles (they are shared over core NATS), so the run
	// is judged fleet-wide. Defaults to 3.
	Threshold int
	// Window is the span in which Threshold throttles must fall. Defaults to 2s.
	Window time.Duration
	// Decrease multiplies the multiplier on a sustained run. Defaults to 0.85.
	Decrease float64
	// Floor is the lowest multiplier. Defaults to 0.1.
	Floor float64
	// Step is added to the multiplier per Interval while calls succeed and
	// none is throttled (in a Fleet: none anywhere in the fleet).
	// Defaults to 0.05.
	Step float64
	// Interval is the least time between two changes of the multiplier
	// (after a decrease, before an increase, between increases). Defaults to 1s.
	Interval time.Duration
	// Disabled turns feedback off: the multiplier stays 1.
	Disabled bool
}

func (f Feedback) withDefaults() Feedback {
	if f.Threshold == 0 {
		f.Threshold = 3
	}
	if f.Window == 0 {
		f.Window = 2 * time.Second
	}
	if f.Decrease == 0 {
		f.Decrease = 0.85
	}
	if f.Floor == 0 {
		f.Floor = 0.1
	}
	if f.Step == 0 {
		f.Step = 0.05
	}
	if f.Interval == 0 {
		f.Interval = time.Second
	}
	return f
}

func (f Feedback) validate() error {
	switch {
	case f.Threshold < 1:
		return fmt.Errorf("%w: Feedback.Threshold %d < 1", ErrConfig, f.Threshold)
	case f.Window <= 0:
		return fmt.Errorf("%w: Feedback.Window %v <= 0", ErrConfig, f.Window)
	case !(f.Decrease > 0 && f.Decrease < 1):
		return fmt.Errorf("%w: Feedback.Decrease %v not in (0,1)", ErrConfig, f.Decrease)
	case !(f.Floor > 0 && f.Floor <= 1):
		return fmt.Errorf("%w: Feedback.Floor %v not in (0,1]", ErrConfig, f.Floor)
	case !(f.Step > 0 && f.Step <= 1):
		return fmt.Errorf("%w: Feedback.Step %v not in (0,1]", ErrConfig, f.Step)
	case f.Interval <= 0:
		return fmt.Errorf("%w: Feedback.Interval %v <= 0", ErrConfig, f.Interval)
	}
	return nil
}

// aimd decides, from the local stream of Throttled/Succeeded calls, when
// the multiplier should go down or up. It does not own the multiplier: the
// caller applies the decision (Local directly, Fleet through a CAS on the
// shared key) and reports the value it ended with through changed.
type aimd struct {
	cfg Feedback

	mu           sync.Mutex
	throttles    []time.Time // ring of the last Threshold throttle times
	next         int
	lastThrottle time.Time
	lastChange   time.Time
	lastLower    time.Time
	lastRaise    time.Time
	mult         float64
	ceiling      float64     // Local only; a Fleet keeps it in the control key
	full         atomic.Bool // mult >= 1: nothing to raise
}

func newAIMD(cfg Feedback, _ time.Time) *aimd {
	a := &aimd{cfg: cfg, throttles: make([]time.Time, cfg.Threshold), mult: 1, ceiling: 1}
	a.full.Store(true)
	return a
}

type verdict int

const (
	hold verdict = iota
	lower
	raise
)

// throttled records one throttle and says whether it completes a sustained run.
func (a *aimd) throttled(now time.Time) verdict {
	if a.cfg.Disabled {
		return hold
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.lastThrottle = now
	a.throttles[a.next] = now
	a.next = (a.next + 1) % len(a.throttles)
	if a.wantsLocked(lower, now) {
		return lower
	}
	return hold
}

// succeeded records an accepted call and says whether the multiplier may rise.
func (a *aimd) succeeded(now time.Time) verdict {
	if a.cfg.Disabled || a.full.Load() {
		return hold // the common case, without the lock
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.wantsLocked(raise, now) {
		return raise
	}
	return hold
}

// wants re-checks a verdict just before acting on it: between the verdict
// and the action another caller may already have moved the multiplier.
func (a *aimd) wants(v verdict, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.wantsLocked(v, now)
}

func (a *aimd) wantsLocked(v verdict, now time.Time) bool {
	if now.Sub(a.lastChange) < a.cfg.Interval {
		return false
	}
	switch v {
	case lower:
		oldest := a.throttles[a.next] // the Threshold-th most recent
		return a.mult > a.cfg.Floor && !oldest.IsZero() && now.Sub(oldest) <= a.cfg.Window
	case raise:
		return a.mult < 1 && now.Sub(a.lastThrottle) >= a.cfg.Interval
	}
	return false
}

// target computes the multiplier and ceiling a verdict leads to from cur
// and ceiling. The ceiling is the multiplier before the current run of
// decreases (decreases with no increase between them): the rate the vendor
// last accepted. Below 90% of it the multiplier climbs three Steps at a
// time (a throttling storm that has passed costs seconds, not minutes);
// above, one Step, probing the vendor's limit gently.
func (a *aimd) target(v verdict, cur, ceiling float64, now time.Time) (float64, float64) {
	a.mu.Lock()
	lastLower, lastRaise := a.lastLower, a.lastRaise
	a.mu.Unlock()
	switch v {
	case lower:
		if lastLower.IsZero() || lastRaise.After(lastLower) {
			ceiling = cur
		}
		return max(a.cfg.Floor, cur*a.cfg.Decrease), ceiling
	case raise:
		next := cur + a.cfg.Step
		if fast := 0.9 * ceiling; cur < fast {
			next = max(next, min(cur+3*a.cfg.Step, fast))
		}
		return min(1, next), ceiling
	}
	return cur, ceiling
}

// changed records that the multiplier is now m (set by us or observed).
// A change restarts the Interval clock and the throttle run: throttles
// that answered requests sent at the old rate do not count again.
func (a *aimd) changed(now time.Time, m float64, lowered bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if m == a.mult {
		return
	}
	a.mult = m
	a.full.Store(m >= 1)
	a.lastChange = now
	if lowered {
		clear(a.throttles)
		a.lastLower = now
	} else {
		a.lastRaise = now
	}
}

func (a *aimd) multiplier() float64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.mult
}
