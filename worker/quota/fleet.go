package quota

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// Timing constants of the protocol (see the package doc).
const (
	// window is the span of the bound: no sliding window of this length
	// sees more than Rate + Burst requests.
	window = time.Second
	// slack covers scheduling and clock-rate differences between a member
	// and the server when a member computes its own stop deadline.
	slack = 100 * time.Millisecond
	// expiryLag is how late the server may remove an expired lease (its
	// expiry timer runs at most every 250ms on a coarse clock).
	expiryLag = 500 * time.Millisecond
	// markerTTL is how long the bucket keeps the markers of expired or
	// deleted leases.
	markerTTL = time.Minute
)

// Config configures a [Fleet]. Only JetStream and Rate are required.
type Config struct {
	// JetStream is the connection the limiter coordinates through. Required.
	JetStream jetstream.JetStream
	// Bucket is the KV bucket (created if missing, file storage, per-key
	// TTLs enabled). Defaults to "simlookup_quota".
	Bucket string
	// Key names the quota being shared: every process with the same Key in
	// the same Bucket splits one Rate. Use [KeyFor] to derive it from the
	// appkey; never put the appkey itself here (KV keys are visible to
	// anyone who can read the bucket). Letters, digits, '-' and '_'.
	// Defaults to "default".
	Key string
	// Member identifies this process in the fleet; it must be unique among
	// live processes. Defaults to hostname-pid-random.
	Member string
	// Rate is the fleet-wide request rate per second. Required, > 0.
	Rate float64
	// Burst is the fleet-wide burst: no 1-second window sees more than
	// Rate + Burst requests. Defaults to 1.
	Burst int
	// LeaseTTL bounds how long a crashed member's share stays reserved: the
	// others regain it within LeaseTTL of the crash. At least 3s.
	// Defaults to 10s.
	LeaseTTL time.Duration
	// Renew is how often a member renews its lease and re-reads the fleet;
	// it is also how long a graceful leave takes to reach the others.
	// Defaults to the largest of LeaseTTL/5, LeaseTTL/6, ... that leaves a
	// member at least 1.5 renewals of grace before it must stop sending.
	Renew time.Duration
	// FallbackRate is the rate a member uses once it could not renew its
	// lease in time (NATS or the bucket unreachable). 0 means
	// multiplier × Rate / (last members seen + 1); a negative value means
	// stop sending until coordination returns (the only setting under which
	// a partial partition cannot exceed the bound; see the package doc).
	FallbackRate float64
	// Replicas of the bucket when this process creates it. Defaults to 1.
	Replicas int
	// Feedback configures the AIMD response to vendor throttling.
	Feedback Feedback
	// Logger receives membership changes, fallback and feedback events.
	// Defaults to discarding.
	Logger *slog.Logger
	// Registerer gets the simlookup_quota_* metrics (limiter="fleet").
	// Nil means not registered.
	Registerer prometheus.Registerer
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

var keyRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// KeyFor derives a limiter Key from an appkey without revealing it: a
// truncated SHA-256, so processes configured with the same appkey share one
// quota.
func KeyFor(appkey string) string {
	sum := sha256.Sum256([]byte("simlookup/quota/" + appkey))
	return "ak_" + hex.EncodeToString(sum[:8])
}

// DefaultMember is hostname-pid-random, with characters a KV key cannot
// hold replaced by '_'.
func DefaultMember() string {
	host, _ := os.Hostname()
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return sanitize(fmt.Sprintf("%s-%d-%s", cmp.Or(host, "host"), os.Getpid(), hex.EncodeToString(rnd[:])))
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 128 && (r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return r
		}
		return '_'
	}, s)
}

// timing derived from LeaseTTL and Renew.
type timing struct {
	serverTTL time.Duration // the TTL the server enforces on a lease (whole seconds)
	grace     time.Duration // last successful renew send → must stop sending
	opTimeout time.Duration
}

func deriveTiming(leaseTTL, renew time.Duration) (timing, bool) {
	srv := (leaseTTL - renew - expiryLag).Truncate(time.Second)
	t := timing{serverTTL: srv, grace: srv - window - slack, opTimeout: min(max(renew, 250*time.Millisecond), 2*time.Second)}
	return t, srv >= time.Second && t.grace*2 >= renew*3
}

func (c Config) withDefaults() Config {
	c.Bucket = cmp.Or(c.Bucket, "simlookup_quota")
	c.Key = cmp.Or(c.Key, "default")
	if c.Member == "" {
		c.Member = DefaultMember()
	}
	c.Burst = max(c.Burst, 1)
	c.LeaseTTL = cmp.Or(c.LeaseTTL, 10*time.Second)
	if c.Renew == 0 {
		for k := 5; k <= 40; k++ {
			if _, ok := deriveTiming(c.LeaseTTL, c.LeaseTTL/time.Duration(k)); ok {
				c.Renew = c.LeaseTTL / time.Duration(k)
				break
			}
		}
	}
	c.Replicas = cmp.Or(c.Replicas, 1)
	c.Feedback = c.Feedback.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

func (c Config) validate() (timing, error) {
	switch {
	case c.JetStream == nil:
		return timing{}, fmt.Errorf("%w: JetStream is required", ErrConfig)
	case !(c.Rate > 0) || math.IsInf(c.Rate, 0):
		return timing{}, fmt.Errorf("%w: Rate %v must be a finite number > 0", ErrConfig, c.Rate)
	case !keyRE.MatchString(c.Key):
		return timing{}, fmt.Errorf("%w: Key %q: use letters, digits, '-' and '_'", ErrConfig, c.Key)
	case !keyRE.MatchString(c.Member):
		return timing{}, fmt.Errorf("%w: Member %q: use letters, digits, '-' and '_'", ErrConfig, c.Member)
	case c.LeaseTTL < 3*time.Second:
		return timing{}, fmt.Errorf("%w: LeaseTTL %v < 3s", ErrConfig, c.LeaseTTL)
	case c.Renew <= 0:
		return timing{}, fmt.Errorf("%w: Renew %v <= 0", ErrConfig, c.Renew)
	case c.Replicas < 1 || c.Replicas > 5:
		return timing{}, fmt.Errorf("%w: Replicas %d not in 1..5", ErrConfig, c.Replicas)
	}
	t, ok := deriveTiming(c.LeaseTTL, c.Renew)
	if !ok {
		return timing{}, fmt.Errorf("%w: Renew %v too long for LeaseTTL %v (the lease must outlive 1.5 renewals plus %v)", ErrConfig, c.Renew, c.LeaseTTL, window+slack+expiryLag)
	}
	return t, c.Feedback.validate()
}

// lease is the value of a member's key, <Key>.m.<Member>.
type lease struct {
	Member   string  `json:"member"`
	Joined   uint64  `json:"joined"`   // revision of the join; fixed while the lease lives
	Seen     uint64  `json:"seen"`     // highest revision in the snapshot this member has applied
	View     int     `json:"view"`     // members this member divides the rate by
	Admitted bool    `json:"admitted"` // sending its share
	Share    float64 `json:"share"`    // informational: req/s it may send
}

// control is the value of <Key>.ctl, the fleet's feedback multiplier.
type control struct {
	Multiplier float64   `json:"multiplier"`
	Ceiling    float64   `json:"ceiling"` // multiplier before the current run of decreases
	By         string    `json:"by"`
	At         time.Time `json:"at"`
}

type mode int

const (
	modeJoining mode = iota
	modeAdmitted
	modeFallback
)

// Fleet is a rate limiter shared by every process using the same Bucket
// and Key: together they send at most Rate requests per second and no
// 1-second window sees more than Rate + Burst, however processes join,
// leave or crash. See the package doc for the protocol.
//
// Wait, Throttled, Succeeded, Share and Members are safe for concurrent
// use and cheap (no network on the request path); Run must be running for
// Wait to return (before Run has admitted the member, Wait blocks).
type Fleet struct {
	cfg      Config
	tm       timing
	log      *slog.Logger
	gate     *gate
	aimd     *aimd
	m        *metrics
	leaseKey string
	ctlKey   string
	subject  string
	// subjectPrefix is "$KV.<Bucket>.<Key>.": leases and the control key.
	subjectPrefix string
	// throttleSubj carries every member's throttles (core NATS, at most
	// once: a heuristic signal, not part of the bound).
	throttleSubj string

	lowerCh chan struct{}
	raiseCh chan struct{}
	running atomic.Bool
	share   atomic.Uint64 // float64 bits
	members atomic.Int64

	// noGracefulLeave makes Run return on cancel without deleting the
	// lease, as a killed process would (test hook).
	noGracefulLeave bool

	// Owned by Run's goroutine.
	kv        jetstream.KeyValue
	stream    jetstream.Stream
	mode      mode
	rev       uint64 // last revision of our lease, 0: none
	joined    uint64
	view      int
	mult      float64
	ctlRev    uint64
	lim       *rate.Limiter
	deadline  time.Time
	holdView  int
	holdUntil time.Time
	failing   bool
}

var (
	_ interface {
		Wait(context.Context) error
		Throttled(time.Duration)
		Succeeded()
	} = (*Fleet)(nil)
	_ interface {
		Wait(context.Context) error
		Throttled(time.Duration)
		Succeeded()
	} = (*Local)(nil)
)

// NewFleet validates cfg and returns a limiter; call Run to take part in
// the fleet. It does no I/O.
func NewFleet(cfg Config) (*Fleet, error) {
	cfg = cfg.withDefaults()
	tm, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	f := &Fleet{
		cfg:           cfg,
		tm:            tm,
		log:           cfg.Logger.With("component", "quota", "limiter", cfg.Key, "member", cfg.Member),
		gate:          newGate(cfg.Now),
		aimd:          newAIMD(cfg.Feedback, cfg.Now()),
		m:             newMetrics("fleet"),
		leaseKey:      cfg.Key + ".m." + cfg.Member,
		ctlKey:        cfg.Key + ".ctl",
		subject:       "$KV." + cfg.Bucket + "." + cfg.Key + ".m." + cfg.Member,
		subjectPrefix: "$KV." + cfg.Bucket + "." + cfg.Key + ".",
		throttleSubj:  "simlookup.quota." + cfg.Bucket + "." + cfg.Key + ".throttled",
		lowerCh:       make(chan struct{}, 1),
		raiseCh:       make(chan struct{}, 1),
		mult:          1,
	}
	if err := f.m.register(cfg.Registerer); err != nil {
		return nil, err
	}
	f.m.multiplier.Set(1)
	return f, nil
}

// Wait blocks until this member may send one vendor attempt, ctx is done,
// or Run has returned ([ErrStopped]). While the member is joining, or its
// lease renewal is overdue, Wait blocks.
func (f *Fleet) Wait(ctx context.Context) error {
	start := f.cfg.Now()
	err := f.gate.wait(ctx)
	f.m.wait.Observe(f.cfg.Now().Sub(start).Seconds())
	return err
}

// Throttled reports a vendor throttling answer. A sustained run of them
// (Feedback.Threshold within Feedback.Window) lowers the whole fleet's
// multiplier. It never blocks.
func (f *Fleet) Throttled(retryAfter time.Duration) {
	f.m.throttled.Inc()
	f.throttled()
	if nc := f.cfg.JetStream.Conn(); nc != nil {
		_ = nc.Publish(f.throttleSubj, []byte(f.cfg.Member)) // buffered, never blocks on the network
	}
}

// throttled counts one throttle seen anywhere in the fleet.
func (f *Fleet) throttled() {
	if f.aimd.throttled(f.cfg.Now()) == lower {
		select {
		case f.lowerCh <- struct{}{}:
		default:
		}
	}
}

// Succeeded reports an accepted call; while calls succeed the fleet's
// multiplier climbs back to 1. It never blocks.
func (f *Fleet) Succeeded() {
	if f.aimd.succeeded(f.cfg.Now()) == raise {
		select {
		case f.raiseCh <- struct{}{}:
		default:
		}
	}
}

// Share is the rate (requests per second) this member may send now: 0
// while joining or stopped.
func (f *Fleet) Share() float64 { return math.Float64frombits(f.share.Load()) }

// Members is the number of live members this member divides the rate by.
func (f *Fleet) Members() int { return int(f.members.Load()) }

// Multiplier is the fleet's feedback multiplier in (0,1] as last seen.
func (f *Fleet) Multiplier() float64 { return f.aimd.multiplier() }

// Run takes part in the fleet until ctx is done: it creates the bucket if
// needed, joins, renews the lease every Renew, follows membership and the
// feedback multiplier, and falls back when coordination fails. On cancel it
// stops sending, waits one window and deletes its lease, so the others
// regain the share at their next renewal. It returns nil after a graceful
// leave; Run may be called once.
func (f *Fleet) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("quota: Fleet.Run called twice")
	}
	defer func() {
		f.gate.set(nil, time.Time{}, true)
		f.setShare(0)
		f.m.admitted.Set(0)
	}()
	f.log.InfoContext(ctx, "fleet limiter starting", "bucket", f.cfg.Bucket, "rate", f.cfg.Rate, "burst", f.cfg.Burst,
		"lease_ttl", f.cfg.LeaseTTL, "renew", f.cfg.Renew, "server_ttl", f.tm.serverTTL)

	if nc := f.cfg.JetStream.Conn(); nc != nil {
		sub, err := nc.Subscribe(f.throttleSubj, func(m *nats.Msg) {
			if string(m.Data) != f.cfg.Member {
				f.throttled()
			}
		})
		if err != nil {
			f.log.WarnContext(ctx, "fleet throttle signals not shared; each member judges its own", "error", err)
		} else {
			defer func() { _ = sub.Unsubscribe() }()
		}
	}

	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			f.leave(ctx)
			return nil
		case <-timer.C:
			next := f.cfg.Renew
			err := f.tick(ctx)
			if f.mode == modeJoining {
				// Look again soon: admission needs only the others' acks.
				next = min(f.cfg.Renew, 200*time.Millisecond)
			}
			if err != nil {
				if ctx.Err() != nil {
					continue
				}
				f.failed(ctx, err)
				next = min(f.cfg.Renew, 250*time.Millisecond)
			}
			timer.Reset(next)
		case <-f.lowerCh:
			f.adjust(ctx, lower)
		case <-f.raiseCh:
			f.adjust(ctx, raise)
		}
	}
}

func (f *Fleet) tick(ctx context.Context) error {
	if f.kv == nil {
		octx, cancel := context.WithTimeout(ctx, 2*f.tm.opTimeout)
		defer cancel()
		kv, err := f.openBucket(octx)
		if err != nil {
			return err
		}
		f.kv = kv
	}
	octx, cancel := context.WithTimeout(ctx, f.tm.opTimeout)
	snap, err := f.snapshot(octx)
	cancel()
	if err != nil {
		return err
	}
	now := f.cfg.Now()
	if f.failing {
		f.failing = false
		f.log.InfoContext(ctx, "fleet limiter coordinating again")
	}
	if snap.ctlRev != f.ctlRev {
		f.observeCtl(now, snap.ctl.Multiplier, snap.ctlRev)
	}

	// Is our lease still the one we wrote? If it lapsed (expired, deleted)
	// the others may already have raised: rejoin from scratch.
	wasFallback := f.mode == modeFallback
	mine, present := snap.leases[f.cfg.Member]
	if f.rev != 0 {
		switch {
		case present && mine.Joined == f.joined:
			f.rev = max(f.rev, mine.rev)
		default:
			f.log.WarnContext(ctx, "fleet lease lapsed; rejoining", "joined", f.joined)
			f.rev, f.joined = 0, 0
			// Members whose leases lapsed with ours (a deleted bucket) may
			// still be sending: keep dividing by our last view for a lease.
			f.hold(now)
			f.enter(now, modeJoining)
		}
	}
	if wasFallback {
		// Coordinating again. Stay at no more than the view we left with
		// for a lease time: members still falling back cannot be seen.
		f.hold(now)
		f.m.fallback.Set(0)
		if f.mode == modeFallback {
			f.enter(now, modeAdmitted)
		} else {
			f.enter(now, modeJoining)
		}
	}

	// Lower first: apply the new view before telling anyone we have seen it.
	v := len(snap.leases)
	if !present {
		v++
	}
	if now.Before(f.holdUntil) {
		v = max(v, f.holdView)
	}
	if v != f.view {
		f.log.InfoContext(ctx, "fleet membership", "members", v, "was", f.view)
	}
	f.view = v
	f.members.Store(int64(v))
	f.m.members.Set(float64(v))
	f.applyRate(now)

	// Renew (or join), announcing what we have applied.
	r, _ := f.split()
	val, _ := json.Marshal(lease{Member: f.cfg.Member, Joined: f.joined, Seen: snap.maxRev, View: v, Admitted: f.mode == modeAdmitted, Share: r})
	sent := f.cfg.Now()
	if err := f.renew(ctx, val, snap.maxRev, v); err != nil {
		return err
	}
	f.deadline = sent.Add(f.tm.grace)

	// Admission: everyone else has applied a snapshot that holds our join.
	if f.mode == modeJoining && present && mine.Joined == f.joined && f.joined != 0 {
		ok := true
		for id, l := range snap.leases {
			if id != f.cfg.Member && l.Seen < f.joined {
				ok = false
				break
			}
		}
		if ok {
			f.log.InfoContext(ctx, "fleet member admitted", "members", v, "share", r)
			f.enter(now, modeAdmitted)
		}
	}
	f.publishGate()
	return nil
}

// openBucket creates the bucket, or opens an existing one (made by another
// member, perhaps with other replicas, or by an operator) if it has per-key
// TTLs, which the leases need.
func (f *Fleet) openBucket(ctx context.Context) (jetstream.KeyValue, error) {
	kv, err := f.cfg.JetStream.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:         f.cfg.Bucket,
		Description:    "simlookup fleet rate limiter: membership leases and feedback multiplier",
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       f.cfg.Replicas,
		LimitMarkerTTL: markerTTL,
	})
	if errors.Is(err, jetstream.ErrBucketExists) {
		kv, err = f.cfg.JetStream.KeyValue(ctx, f.cfg.Bucket)
		if err == nil {
			st, serr := kv.Status(ctx)
			if serr != nil {
				return nil, fmt.Errorf("quota: bucket %s: %w", f.cfg.Bucket, serr)
			}
			if st.LimitMarkerTTL() <= 0 {
				return nil, fmt.Errorf("quota: bucket %s exists without per-key TTLs (LimitMarkerTTL); delete it and simlookup creates it right", f.cfg.Bucket)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("quota: open bucket %s: %w", f.cfg.Bucket, err)
	}
	return kv, nil
}

// hold keeps dividing by at least the current view (or a hold still in
// force) for one LeaseTTL from now.
func (f *Fleet) hold(now time.Time) {
	hv := f.view
	if now.Before(f.holdUntil) {
		hv = max(hv, f.holdView)
	}
	f.holdView, f.holdUntil = hv, now.Add(f.cfg.LeaseTTL)
}

// renew writes our lease with the server-side TTL: a CAS on our last
// revision, so a lapse in between is noticed; a join when we have none.
func (f *Fleet) renew(ctx context.Context, val []byte, seen uint64, v int) error {
	publish := func(expect bool) (uint64, error) {
		octx, cancel := context.WithTimeout(ctx, f.tm.opTimeout)
		defer cancel()
		opts := []jetstream.PublishOpt{jetstream.WithMsgTTL(f.tm.serverTTL)}
		if expect {
			opts = append(opts, jetstream.WithExpectLastSequencePerSubject(f.rev))
		}
		ack, err := f.cfg.JetStream.PublishMsg(octx, &nats.Msg{Subject: f.subject, Data: val}, opts...)
		if err != nil {
			return 0, err
		}
		return ack.Sequence, nil
	}
	if f.rev == 0 {
		rev, err := publish(false)
		if err != nil {
			return fmt.Errorf("quota: join: %w", err)
		}
		f.rev, f.joined = rev, rev
		// Rewrite the lease with its own join revision.
		var l lease
		_ = json.Unmarshal(val, &l)
		l.Joined = rev
		val, _ = json.Marshal(l)
		f.log.DebugContext(ctx, "fleet member joining", "joined", rev, "members", v, "seen", seen)
	}
	rev, err := publish(true)
	if err != nil && isWrongLastSeq(err) {
		// Our previous renewal may have landed with its ack lost: adopt it
		// if the lease is still ours, else the lease lapsed.
		octx, cancel := context.WithTimeout(ctx, f.tm.opTimeout)
		e, gerr := f.kv.Get(octx, f.leaseKey)
		cancel()
		var l lease
		if gerr == nil && json.Unmarshal(e.Value(), &l) == nil && l.Joined == f.joined {
			f.rev = e.Revision()
			rev, err = publish(true)
		} else if gerr == nil || errors.Is(gerr, jetstream.ErrKeyNotFound) {
			f.rev, f.joined = 0, 0
			f.enter(f.cfg.Now(), modeJoining)
			f.publishGate()
			return fmt.Errorf("quota: lease lapsed: %w", err)
		}
	}
	if err != nil {
		return fmt.Errorf("quota: renew lease: %w", err)
	}
	f.rev = rev
	return nil
}

func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

type snapLease struct {
	lease
	rev uint64
}

type snapshot struct {
	leases map[string]snapLease
	ctl    control
	ctlRev uint64
	maxRev uint64
}

// snapshot reads every live lease and the control key. It lists the
// lease subjects holding a message (stream info with a subject filter,
// which the server computes after the stream state whose last sequence
// becomes maxRev: every lease written at or before maxRev and still live
// is listed), then gets each value; deleted and expired leases read as not
// found.
func (f *Fleet) snapshot(ctx context.Context) (snapshot, error) {
	s := snapshot{leases: map[string]snapLease{}, ctl: control{Multiplier: 1}}
	if f.stream == nil {
		st, err := f.cfg.JetStream.Stream(ctx, "KV_"+f.cfg.Bucket)
		if err != nil {
			return s, fmt.Errorf("quota: read fleet: %w", err)
		}
		f.stream = st
	}
	info, err := f.stream.Info(ctx, jetstream.WithSubjectFilter(f.subjectPrefix+">"))
	if err != nil {
		return s, fmt.Errorf("quota: read fleet: %w", err)
	}
	s.maxRev = info.State.LastSeq
	for subj := range info.State.Subjects {
		key := strings.TrimPrefix(subj, "$KV."+f.cfg.Bucket+".")
		e, err := f.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return s, fmt.Errorf("quota: read fleet: %w", err)
		}
		if key == f.ctlKey {
			var c control
			if json.Unmarshal(e.Value(), &c) == nil && c.Multiplier > 0 && c.Multiplier <= 1 {
				s.ctl, s.ctlRev = c, e.Revision()
			}
			continue
		}
		var l lease
		if json.Unmarshal(e.Value(), &l) != nil {
			continue
		}
		s.leases[strings.TrimPrefix(key, f.cfg.Key+".m.")] = snapLease{lease: l, rev: e.Revision()}
	}
	return s, nil
}

// failed handles a tick that could not coordinate.
func (f *Fleet) failed(ctx context.Context, err error) {
	f.m.coordErrors.Inc()
	if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound) {
		f.kv, f.stream = nil, nil // deleted under us: create it again next tick
	}
	now := f.cfg.Now()
	if !f.failing {
		f.failing = true
		f.log.WarnContext(ctx, "fleet limiter cannot coordinate", "error", err, "stop_at", f.deadline)
	}
	if f.mode == modeAdmitted && !now.Before(f.deadline) {
		fr := f.fallbackRate()
		f.log.WarnContext(ctx, "fleet lease could not be renewed in time: falling back", "fallback_rate", fr, "last_members", f.view)
		f.enter(now, modeFallback)
		f.m.fallback.Set(1)
		f.publishGate()
	}
}

func (f *Fleet) fallbackRate() float64 {
	switch {
	case f.cfg.FallbackRate > 0:
		return f.cfg.FallbackRate
	case f.cfg.FallbackRate < 0:
		return 0
	}
	return f.mult * f.cfg.Rate / float64(max(f.view, 1)+1)
}

// enter switches mode; every switch starts a fresh, empty bucket.
func (f *Fleet) enter(now time.Time, m mode) {
	f.mode = m
	f.lim = nil
	switch m {
	case modeAdmitted:
		r, b := f.split()
		f.lim = newBucket(now, r, b)
		f.setShare(r)
		f.m.admitted.Set(1)
	case modeFallback:
		if fr := f.fallbackRate(); fr > 0 {
			f.lim = newBucket(now, fr, 1)
			f.setShare(fr)
		} else {
			f.setShare(0)
		}
		f.m.admitted.Set(0)
	default:
		f.setShare(0)
		f.m.admitted.Set(0)
	}
}

// split is this member's rate and burst (in requests, the burst possibly
// fractional) for the current view and multiplier. Each member's
// rate + burst ≤ (Rate + Burst)/view and rate ≤ multiplier × Rate/view, so
// over any view-many members Σ(rate+burst) ≤ Rate + Burst and Σ rate ≤
// multiplier × Rate.
func (f *Fleet) split() (float64, float64) {
	return split(f.mult*f.cfg.Rate, f.cfg.Rate, f.cfg.Burst, max(f.view, 1))
}

func split(total, rateCap float64, burst, v int) (float64, float64) {
	share := (rateCap + float64(burst)) / float64(v) // this member's window budget
	r := min(total/float64(v), share-1)
	if r <= 0 {
		// More members than Rate+Burst: each keeps a burst of 1 and the
		// per-window bound cannot hold; keep a trickle.
		r = total / float64(v) / 10
	}
	return r, max(1, min(float64(burst)/float64(v), bucketFor(r), share-r))
}

func (f *Fleet) applyRate(now time.Time) {
	if f.mode != modeAdmitted || f.lim == nil {
		return
	}
	r, b := f.split()
	f.lim.SetLimitAt(now, limitOf(r))
	f.lim.SetBurstAt(now, burstOf(b))
	f.setShare(r)
}

func (f *Fleet) publishGate() {
	switch {
	case f.mode == modeAdmitted && f.lim != nil:
		f.gate.set(f.lim, f.deadline, false)
	case f.mode == modeFallback && f.lim != nil:
		f.gate.set(f.lim, time.Time{}, false)
	default:
		f.gate.set(nil, time.Time{}, false)
	}
}

func (f *Fleet) setShare(r float64) {
	f.share.Store(math.Float64bits(r))
	f.m.share.Set(r)
}

func (f *Fleet) observeCtl(now time.Time, m float64, rev uint64) {
	f.ctlRev = rev
	if m == f.mult {
		return
	}
	lowered := m < f.mult
	f.mult = m
	f.aimd.changed(now, m, lowered)
	f.m.multiplier.Set(m)
	f.applyRate(now)
	if f.mode == modeAdmitted {
		f.publishGate()
	}
}

// adjust moves the fleet multiplier by a CAS on <Key>.ctl. If someone else
// changed it since we last looked, we adopt their value instead of
// compounding it.
func (f *Fleet) adjust(ctx context.Context, v verdict) {
	now := f.cfg.Now()
	if f.kv == nil || !f.aimd.wants(v, now) {
		return
	}
	octx, cancel := context.WithTimeout(ctx, f.tm.opTimeout)
	defer cancel()
	cur, ceiling, rev := 1.0, 1.0, uint64(0)
	e, err := f.kv.Get(octx, f.ctlKey)
	switch {
	case err == nil:
		var c control
		if json.Unmarshal(e.Value(), &c) == nil && c.Multiplier > 0 && c.Multiplier <= 1 {
			cur = c.Multiplier
			if c.Ceiling > 0 && c.Ceiling <= 1 {
				ceiling = c.Ceiling
			}
		}
		rev = e.Revision()
	case errors.Is(err, jetstream.ErrKeyNotFound):
	default:
		f.m.coordErrors.Inc()
		return
	}
	if rev != f.ctlRev {
		f.observeCtl(now, cur, rev)
		return
	}
	target, ceiling := f.aimd.target(v, cur, ceiling, now)
	if target == cur {
		return
	}
	val, _ := json.Marshal(control{Multiplier: target, Ceiling: ceiling, By: f.cfg.Member, At: now.UTC()})
	var nrev uint64
	if rev == 0 {
		nrev, err = f.kv.Create(octx, f.ctlKey, val)
	} else {
		nrev, err = f.kv.Update(octx, f.ctlKey, val, rev)
	}
	if err != nil {
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			f.m.coordErrors.Inc()
		}
		return // someone else moved it: the next tick observes their value
	}
	dir := "up"
	if v == lower {
		dir = "down"
	}
	f.m.adjust.WithLabelValues(dir).Inc()
	f.log.InfoContext(ctx, "fleet rate multiplier changed", "direction", dir, "multiplier", target, "was", cur,
		"fleet_rate", strconv.FormatFloat(target*f.cfg.Rate, 'f', 2, 64))
	f.observeCtl(now, target, nrev)
}

// leave stops sending, waits one window so nothing we sent can share a
// window with what the others send once they raise, and deletes the lease.
func (f *Fleet) leave(ctx context.Context) {
	f.gate.set(nil, time.Time{}, true)
	f.setShare(0)
	if f.noGracefulLeave || f.rev == 0 || f.kv == nil {
		return
	}
	if f.mode == modeAdmitted || f.mode == modeFallback {
		t := time.NewTimer(window)
		<-t.C
	}
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*f.tm.opTimeout)
	defer cancel()
	if err := f.kv.Delete(octx, f.leaseKey); err != nil {
		f.log.WarnContext(octx, "fleet lease not deleted; it expires on its own", "error", err, "within", f.tm.serverTTL)
		return
	}
	f.log.InfoContext(octx, "fleet member left")
}
