package quota

import (
	"math"
	"testing"
	"time"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestAIMD(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for _, tc := range []struct {
		name    string
		steps   func(a *aimd) []verdict
		wantEnd []verdict
	}{
		{"spread-out throttles do not lower", func(a *aimd) []verdict {
			return []verdict{a.throttled(at(2000)), a.throttled(at(4500)), a.throttled(at(7000))}
		}, []verdict{hold, hold, hold}},
		{"three within the window lower", func(a *aimd) []verdict {
			return []verdict{a.throttled(at(2000)), a.throttled(at(2500)), a.throttled(at(3000))}
		}, []verdict{hold, hold, lower}},
		{"not within Interval of a change", func(a *aimd) []verdict {
			a.changed(at(1500), 0.85, true)
			return []verdict{a.throttled(at(2000)), a.throttled(at(2100)), a.throttled(at(2200)), a.throttled(at(2600))}
		}, []verdict{hold, hold, hold, lower}},
		{"success raises only after a quiet Interval", func(a *aimd) []verdict {
			a.changed(at(0), 0.5, true)
			v1 := a.succeeded(at(500))
			a.throttled(at(1200))
			v2 := a.succeeded(at(1500))
			v3 := a.succeeded(at(2300))
			return []verdict{v1, v2, v3}
		}, []verdict{hold, hold, raise}},
		{"at 1 nothing rises", func(a *aimd) []verdict {
			return []verdict{a.succeeded(at(5000))}
		}, []verdict{hold}},
	} {
		a := newAIMD(Feedback{}.withDefaults(), t0)
		got := tc.steps(a)
		for i := range got {
			if got[i] != tc.wantEnd[i] {
				t.Errorf("%s: step %d = %v, want %v", tc.name, i, got[i], tc.wantEnd[i])
			}
		}
	}
	a := newAIMD(Feedback{}.withDefaults(), t0)
	if m, _ := a.target(lower, 0.11, 1, t0); m != 0.1 {
		t.Errorf("floor: %v", m)
	}
	if m, _ := a.target(raise, 0.98, 1, t0); m != 1 {
		t.Errorf("cap: %v", m)
	}
	// A storm: decreases 1 s apart keep the ceiling from before it...
	m, c := a.target(lower, 1, 1, t0)
	a.changed(t0, m, true)
	m, c = a.target(lower, m, c, t0.Add(time.Second))
	if !near(m, 0.85*0.85) || c != 1 {
		t.Errorf("storm: multiplier %v ceiling %v, want 0.7225 and 1", m, c)
	}
	// ...so the climb back is fast up to 90% of it, then gentle.
	if up, _ := a.target(raise, 0.5, c, t0); !near(up, 0.65) {
		t.Errorf("fast climb: %v, want 0.65", up)
	}
	if up, _ := a.target(raise, 0.8, c, t0); !near(up, 0.9) {
		t.Errorf("fast climb capped at 0.9 of the ceiling: %v", up)
	}
	if up, _ := a.target(raise, 0.9, c, t0); !near(up, 0.95) {
		t.Errorf("gentle climb: %v, want 0.95", up)
	}
	// A decrease after an increase starts a new run: the ceiling is now.
	a.changed(t0.Add(2*time.Second), 0.65, false)
	if _, c := a.target(lower, 0.65, 1, t0.Add(3*time.Second)); c != 0.65 {
		t.Errorf("new run ceiling %v, want 0.65", c)
	}
}
