package quota

import (
	"context"
	"errors"
	"math"
	"sync"
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

	mu     sync.Mutex // guards recent and makes window check + take atomic
	recent grantWindow
}

// windowMargin widens the sliding window the gate enforces beyond one
// second. A token bucket lets exactly rate+bucket requests through a closed
// 1-second window, so any jitter between Wait returning and the request
// reaching the vendor (where the quota is counted) could show one request
// too many there. Requiring that no 1s+margin window holds more than
// rate+bucket grants absorbs up to margin of such jitter. The margin is
// windowMargin, or less where the bucket is small for the rate (see
// marginFor), so that it never lowers the rate actually reached.
const windowMargin = 25 * time.Millisecond

// marginFor is the window margin for lim: windowMargin, capped at 90% of the
// time the bucket takes to refill, beyond which the window would start to
// bind below the configured rate.
func marginFor(lim *rate.Limiter) time.Duration {
	r := float64(lim.Limit())
	if r <= 0 {
		return windowMargin
	}
	refill := time.Duration(0.9 * float64(lim.Burst()) / r * float64(time.Second))
	return min(windowMargin, refill)
}

// grantWindow remembers the instants of the last n grants (a ring).
type grantWindow struct {
	span time.Duration // 1s + margin
	at   []time.Time
	next int
	full bool
}

// capacity is the most grants any 1s+margin window may hold for lim.
func capacity(lim *rate.Limiter) int {
	if lim.Limit() == rate.Inf {
		return 0 // unlimited: no window
	}
	return max(int(math.Floor((float64(lim.Limit())+float64(lim.Burst()))/unit+1e-9)), 1)
}

// resize keeps the most recent grants when the capacity changes.
func (w *grantWindow) resize(n int) {
	if n == len(w.at) {
		return
	}
	kept := w.ordered()
	if len(kept) > n {
		kept = kept[len(kept)-n:]
	}
	w.at = make([]time.Time, n)
	copy(w.at, kept)
	w.next, w.full = len(kept)%max(n, 1), len(kept) == n
}

// ordered returns the remembered grants, oldest first.
func (w *grantWindow) ordered() []time.Time {
	if !w.full {
		return append([]time.Time(nil), w.at[:w.next]...)
	}
	return append(append([]time.Time(nil), w.at[w.next:]...), w.at[:w.next]...)
}

// wait is how long until one more grant fits the window (0: now).
func (w *grantWindow) wait(now time.Time) time.Duration {
	if len(w.at) == 0 || !w.full {
		return 0
	}
	return w.at[w.next].Add(w.span).Sub(now)
}

func (w *grantWindow) add(now time.Time) {
	if len(w.at) == 0 {
		return
	}
	w.at[w.next] = now
	w.next = (w.next + 1) % len(w.at)
	if w.next == 0 {
		w.full = true
	}
}

// take grants one request now if both the bucket and the sliding window
// allow it; otherwise it returns how long to sleep before trying again.
func (g *gate) take(lim *rate.Limiter, now time.Time) (bool, time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.recent.resize(capacity(lim))
	g.recent.span = time.Second + marginFor(lim)
	if d := g.recent.wait(now); d > 0 {
		return false, d
	}
	if !lim.AllowN(now, unit) {
		return false, untilToken(lim, now)
	}
	g.recent.add(now)
	return true, 0
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
				ok, d := g.take(st.lim, now)
				if ok {
					if g.observe != nil {
						g.observe(now)
					}
					return nil
				}
				sleep = d
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
