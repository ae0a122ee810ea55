package quota

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// ErrStopped is returned by Wait once the limiter has stopped for good (a
// Fleet whose Run has returned). It is never returned while the limiter is
// merely paused (not yet admitted, renewal overdue): Wait blocks then.
var ErrStopped = errors.New("quota: limiter stopped")

// gateState is an immutable snapshot of what Wait may do; it is replaced
// (never mutated) and its changed channel is closed on every replacement, so
// blocked waiters re-read it at once.
type gateState struct {
	lim      *rate.Limiter // nil: closed (no sending)
	deadline time.Time     // zero: none; at or after it nothing is sent
	stopped  bool
	changed  chan struct{}
}

// gate is a token bucket that never reserves future tokens: a waiter takes a
// token only when one is there (rate.Limiter.Allow) and otherwise sleeps
// until the next one is due or the gate changes. Lowering the rate therefore
// takes effect at once for every waiter, with no debt of reservations made at
// the old rate — which the fleet's bound relies on.
type gate struct {
	st  atomic.Pointer[gateState]
	now func() time.Time
	// observe, if set, sees the instant of every token taken (test hook:
	// what the limiter allowed, free of the caller's scheduling delay).
	observe func(time.Time)
}

func newGate(now func() time.Time) *gate {
	g := &gate{now: now}
	g.st.Store(&gateState{changed: make(chan struct{})})
	return g
}

// set replaces the state and wakes every waiter. Callers serialise set.
func (g *gate) set(lim *rate.Limiter, deadline time.Time, stopped bool) {
	old := g.st.Swap(&gateState{lim: lim, deadline: deadline, stopped: stopped, changed: make(chan struct{})})
	close(old.changed)
}

func (g *gate) state() *gateState { return g.st.Load() }

// unit is how many limiter tokens one request takes: buckets count in
// thousandths of a request so that a member's burst can be fractional
// (Burst/members), keeping a 1-request bucket from losing the tokens that
// accrue while a waiter wakes up late.
const unit = 1000

// lateness is how late a waiter may wake up without losing tokens: a
// bucket holds 1 + rate×lateness requests, never more than its share of
// the burst. The rest of the burst stays unused on purpose: it is the slack
// for the scheduling and network delays between Wait returning and the
// request reaching the vendor, where the window is counted.
const lateness = 20 * time.Millisecond

// bucketFor is the bucket size (in requests) for rate r.
func bucketFor(r float64) float64 {
	if math.IsInf(r, 1) {
		return math.Inf(1)
	}
	return 1 + r*lateness.Seconds()
}

// newBucket makes a limiter of r requests per second and a burst of b
// requests (b >= 1) that starts empty: a member that starts (or restarts)
// sending earns its tokens first.
func newBucket(now time.Time, r, b float64) *rate.Limiter {
	lim := rate.NewLimiter(limitOf(r), burstOf(b))
	lim.AllowN(now, burstOf(b))
	return lim
}

// limitOf is r requests per second in tokens.
func limitOf(r float64) rate.Limit {
	if math.IsInf(r, 1) {
		return rate.Inf
	}
	return rate.Limit(r * unit)
}

// burstOf is b requests in tokens, at least one request.
func burstOf(b float64) int { return max(int(b*unit), unit) }

// wait blocks until a token is taken, ctx is done or the gate stops.
func (g *gate) wait(ctx context.Context) error {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		st := g.st.Load()
		if st.stopped {
			return ErrStopped
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var sleep time.Duration = -1 // -1: until the state changes
		if st.lim != nil {
			now := g.now()
			if st.deadline.IsZero() || now.Before(st.deadline) {
				if st.lim.AllowN(now, unit) {
					if g.observe != nil {
						g.observe(now)
					}
					return nil
				}
				sleep = untilToken(st.lim, now)
				if !st.deadline.IsZero() {
					if left := st.deadline.Sub(now); left < sleep {
						sleep = left
					}
				}
			}
		}
		var tc <-chan time.Time
		if sleep >= 0 {
			if sleep < 50*time.Microsecond {
				sleep = 50 * time.Microsecond
			}
			if timer == nil {
				timer = time.NewTimer(sleep)
			} else {
				timer.Reset(sleep)
			}
			tc = timer.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-st.changed:
			if timer != nil {
				timer.Stop()
			}
		case <-tc:
		}
	}
}

// untilToken is how long until lim holds one request's tokens.
func untilToken(lim *rate.Limiter, now time.Time) time.Duration {
	r := float64(lim.Limit())
	if r <= 0 {
		return time.Hour
	}
	need := unit - lim.TokensAt(now)
	if need <= 0 {
		return 0
	}
	return time.Duration(need / r * float64(time.Second))
}
