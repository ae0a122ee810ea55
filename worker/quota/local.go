package quota

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// ErrConfig is wrapped by every configuration error of this package.
var ErrConfig = errors.New("quota: invalid config")

// Local is a per-process limiter: a token bucket (golang.org/x/time/rate)
// of the given rate and burst, slowed by the same vendor feedback (AIMD) as
// [Fleet]. Use it when exactly one process talks to the vendor with the
// appkey, or when the fleet is limited some other way (--limiter local).
//
// Local is safe for concurrent use.
type Local struct {
	rate  float64
	burst int
	now   func() time.Time
	gate  *gate
	aimd  *aimd
	m     *metrics

	mu  sync.Mutex // serialises rate changes
	lim *rate.Limiter
}

// NewLocal returns a limiter of rate requests per second with the given
// burst: no 1-second window sees more than rate + burst. A rate <= 0 or
// +Inf means no limit. A burst < 1 is taken as 1.
// Feedback uses the [Feedback] defaults; see [NewLocalFeedback].
func NewLocal(r float64, burst int) *Local {
	l, _ := NewLocalFeedback(r, burst, Feedback{})
	return l
}

// NewLocalFeedback is [NewLocal] with explicit feedback settings.
func NewLocalFeedback(r float64, burst int, fb Feedback) (*Local, error) {
	fb = fb.withDefaults()
	if err := fb.validate(); err != nil {
		return nil, err
	}
	if r <= 0 || math.IsNaN(r) {
		r = math.Inf(1)
	}
	burst = max(burst, 1)
	now := time.Now
	l := &Local{rate: r, burst: burst, now: now, gate: newGate(now), aimd: newAIMD(fb, now()), m: newMetrics("local")}
	// A local bucket starts full, as x/time/rate's does: nothing else
	// shares it. It holds at most burst requests, and less when a smaller
	// bucket absorbs wake-up lateness (see the package doc, Burst).
	l.lim = rate.NewLimiter(limitOf(r), burstOf(min(float64(burst), bucketFor(r))))
	l.gate.set(l.lim, time.Time{}, false)
	l.m.share.Set(r)
	l.m.members.Set(1)
	l.m.multiplier.Set(1)
	l.m.admitted.Set(1)
	return l, nil
}

// Register adds the limiter's metrics (simlookup_quota_*, limiter="local")
// to reg.
func (l *Local) Register(reg prometheus.Registerer) error { return l.m.register(reg) }

// Wait blocks until the limiter allows one vendor attempt or ctx is done.
func (l *Local) Wait(ctx context.Context) error {
	start := l.now()
	err := l.gate.wait(ctx)
	l.m.wait.Observe(l.now().Sub(start).Seconds())
	return err
}

// Throttled reports a vendor throttling answer. A sustained run of them
// lowers the rate (multiplicative decrease, with a floor). retryAfter is the
// caller's business (it delays that request); the limiter only slows down.
func (l *Local) Throttled(retryAfter time.Duration) {
	l.m.throttled.Inc()
	now := l.now()
	if v := l.aimd.throttled(now); v != hold {
		l.adjust(now, v)
	}
}

// Succeeded reports an accepted call; while calls succeed the rate climbs
// back (additive increase) to the configured one.
func (l *Local) Succeeded() {
	now := l.now()
	if v := l.aimd.succeeded(now); v != hold {
		l.adjust(now, v)
	}
}

func (l *Local) adjust(now time.Time, v verdict) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.aimd.wants(v, now) {
		return
	}
	cur := l.aimd.multiplier()
	m, ceiling := l.aimd.target(v, cur, l.aimd.ceiling, now)
	if m == cur || math.IsInf(l.rate, 1) {
		return
	}
	l.aimd.ceiling = ceiling
	l.aimd.changed(now, m, v == lower)
	l.lim.SetLimitAt(now, limitOf(l.rate*m))
	l.m.share.Set(l.rate * m)
	l.m.multiplier.Set(m)
	if v == lower {
		l.m.adjust.WithLabelValues("down").Inc()
	} else {
		l.m.adjust.WithLabelValues("up").Inc()
	}
}

// Share is the rate (requests per second) the limiter allows now.
func (l *Local) Share() float64 { return l.rate * l.aimd.multiplier() }

// Multiplier is the feedback multiplier in (0,1].
func (l *Local) Multiplier() float64 { return l.aimd.multiplier() }

// Members is always 1.
func (l *Local) Members() int { return 1 }
