package quota

import "time"

// SetNoGracefulLeave makes f's Run return on cancel without deleting its
// lease, as a SIGKILLed process would.
func SetNoGracefulLeave(f *Fleet) { f.noGracefulLeave = true }

// Observe makes every token the limiter hands out call fn with its instant.
// Call before the limiter is used.
func ObserveFleet(f *Fleet, fn func(time.Time)) { f.gate.observe = fn }

// ObserveLocal is ObserveFleet for a Local.
func ObserveLocal(l *Local, fn func(time.Time)) { l.gate.observe = fn }

// Timing exposes the derived server TTL and grace for tests.
func Timing(f *Fleet) (serverTTL, grace time.Duration) { return f.tm.serverTTL, f.tm.grace }

var Split = split
