// Package quota paces vendor calls so that all worker processes sharing one
// appkey stay inside its one quota: no more than Rate requests per second,
// and no sliding 1-second window above Rate + Burst, counting retries.
//
// Two limiters satisfy the worker's Limiter / FeedbackLimiter interfaces:
//
//   - [Local]: a golang.org/x/time/rate token bucket for one process.
//   - [Fleet]: the same, split among the live processes through a NATS
//     JetStream KV bucket (default "simlookup_quota") that the workers'
//     NATS server already provides. This is the default (--limiter fleet).
//
// Both slow down on vendor throttling ([Feedback], AIMD). Neither does any
// I/O in Wait: a Fleet member only takes tokens from its own bucket.
//
// # The fleet protocol
//
// Every member owns a lease key <Key>.m.<Member> whose value says which
// join revision it is, the bucket position it has seen, and the number of
// members it divides the rate by (its view). Each Renew interval a member
//
//  1. reads the fleet: the lease subjects holding a message (stream info
//     with a subject filter; the server computes it after the stream state
//     whose last sequence becomes "seen", so every lease written at or
//     before "seen" and still live is in the list) and each lease's value;
//  2. applies the view v = live leases (itself included) to its bucket:
//     rate r = min(m·Rate/v, (Rate+Burst)/v − 1), where m is the fleet
//     multiplier, and a bucket of b = min(Burst/v, 1 + r×20ms) requests,
//     at least 1 (buckets count in thousandths of a request). Each
//     member's r + b ≤ (Rate+Burst)/v, so over any v members with that view
//     Σ r ≤ m·Rate and Σ (r + b) ≤ Rate + Burst, which bounds every
//     1-second window;
//  3. renews its lease with a server-side TTL (a per-message TTL, the
//     bucket has LimitMarkerTTL) and a CAS on its previous revision, then
//     reports the view and the "seen" position it has just applied.
//
// A member sends only while admitted and only before its local deadline.
//
// Joins. A joiner writes its lease and sends nothing until every other live
// lease reports seen ≥ its join revision, i.e. every other member has
// lowered to a view that counts it (lower first, raise later). Its bucket
// then starts empty. So for any two admitted members, the later one was
// acknowledged by the earlier one, and both views count both: every
// sender's view is at least the number of senders, and the sums above hold.
//
// Leaves. On cancel, Run stops sending, waits one window (1 s), and deletes
// the lease; the others raise at their next read (within Renew).
//
// Crashes and partitions. A member's stop deadline is its last successful
// renewal's send time + serverTTL − 1 s − 100 ms; serverTTL is LeaseTTL −
// Renew − 500 ms rounded down to whole seconds (NATS TTLs are whole
// seconds; the server removes an expired message within ~350 ms). The
// lease can expire on the server only after serverTTL from a renewal the
// member sent, so a member that cannot renew has stopped at least one
// window before anyone can see its lease gone and raise: nothing it sent
// shares a window with the others' raised rates. The others see the lease
// gone within serverTTL + 500 ms + Renew ≤ LeaseTTL of the crash and raise.
// A member whose lease lapsed (expired, deleted, the bucket deleted: its
// CAS renewal fails or the lease is missing) rejoins from scratch and, for
// one LeaseTTL, divides by at least its last view, since members whose
// leases vanished with its own may not have noticed yet. A deleted bucket
// is created again. (Deleting one live lease by hand is outside the bound:
// the others raise at once while its owner sends until its next read.)
//
// Fallback. After its deadline a member that still cannot coordinate falls
// back to FallbackRate (default m·Rate/(last view + 1), burst 1), logs it
// and sets simlookup_quota_fallback. When every member loses coordination
// at once (the NATS server or the bucket's stream down — nobody can read a
// lease gone, so nobody raises) the fallback rates sum below Rate. On
// reconnecting, a member divides by at least its last view for one
// LeaseTTL, so members still falling back are counted. Under a partial
// partition (some members reach NATS, one does not) the cut-off member's
// fallback adds to the others' full split: the bound then holds only with
// FallbackRate < 0 (stop until coordination returns), which costs little in
// practice since a worker cut off from NATS cannot fetch work or publish
// results either.
//
// A stale lease (a crashed member before its TTL) delays joiners, never
// the bound. With more members than Rate + Burst, each keeps a burst of 1
// and the per-window bound cannot hold; keep members < Rate + Burst.
//
// # Burst
//
// A bucket of exactly 1 request loses the tokens that accrue while a
// waiter wakes up late, so buckets hold 1 + rate×20ms. The rest of Burst is
// deliberately left unused: a 1-second window is counted where requests
// reach the vendor, after scheduling and network delays that can bunch
// them, and the unused burst is the slack for that. Local does the same.
//
// # Feedback
//
// Throttled on every 429 / busy answer; a run of Feedback.Threshold within
// Feedback.Window lowers the multiplier ×Feedback.Decrease (floor
// Feedback.Floor); Succeeded, with no throttle for Feedback.Interval, raises
// it by Feedback.Step per Interval up to 1 — three Steps at a time while
// below 90% of the multiplier from before the current run of decreases, so
// a passing throttling storm costs seconds, while a vendor limit below Rate
// is probed one Step at a time. A Fleet member publishes each throttle on
// core NATS (simlookup.quota.<Bucket>.<Key>.throttled, at most once — a
// signal, not part of the bound) so runs and quiet spells are judged
// fleet-wide, keeps the multiplier in <Key>.ctl and changes it by CAS: if
// another member moved it first, it adopts that value instead of
// compounding it, so one sustained run is one decrease. Every member applies
// a change at its next read (≤ Renew); the multiplier never exceeds 1, so
// feedback cannot break the bound. Retry-After is honoured by the worker for
// its own request; the limiter only slows down.
//
// # Cost
//
// Per request: one Wait on a local token bucket (an atomic load and
// rate.Limiter.AllowN; BenchmarkWait measures local and fleet within a few
// percent of each other, ~0.4 µs under contention on 2 cores), and for
// Succeeded a mutex. Per throttle: one core NATS publish. Per member and
// Renew: one stream info, one KV get per member and the control key, and
// one publish. Nothing is read or written on the request path.
//
// # Metrics
//
// simlookup_quota_{share_per_second, members, multiplier, admitted,
// fallback, wait_seconds, throttled_total, adjustments_total,
// coordination_failures_total}, with const label limiter="fleet"|"local".
package quota
