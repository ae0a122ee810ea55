package eiottest

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"sort"
	"time"
)

// Stats are the fake's counters since start or the last ResetStats.
type Stats struct {
	// Since is when counting started (the fake's clock).
	Since time.Time `json:"since"`
	// Total counts every request received on the API (refused and faulted
	// ones included; not the admin endpoints).
	Total int64 `json:"total"`
	// Accepted counts requests that passed every check (answered with code
	// "200", with card data or, under the no_data fault, without).
	Accepted int64 `json:"accepted"`
	// Refused counts refusals by reason (Reason* constants).
	Refused map[string]int64 `json:"refused"`
	// Faults counts injected faults by kind (Fault* constants).
	Faults map[string]int64 `json:"faults"`
	// PerICCID counts accepted requests per ICCID.
	PerICCID map[string]int64 `json:"per_iccid"`
	// MaxWindow is the most requests received in any sliding one-second
	// window (t-1s, t]; MaxWindowAccepted likewise for accepted requests.
	MaxWindow         int64 `json:"max_window"`
	MaxWindowAccepted int64 `json:"max_window_accepted"`
	// First and last request received and accepted (zero when none).
	FirstRequest  time.Time `json:"first_request"`
	LastRequest   time.Time `json:"last_request"`
	FirstAccepted time.Time `json:"first_accepted"`
	LastAccepted  time.Time `json:"last_accepted"`
}

// RefusedTotal is the sum of Refused.
func (s Stats) RefusedTotal() int64 {
	var n int64
	for _, v := range s.Refused {
		n += v
	}
	return n
}

// Stats returns a copy of the counters. Safe to call while serving.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statsLocked(true)
}

func (s *Server) statsLocked(perICCID bool) Stats {
	var per map[string]int64
	if perICCID {
		per = maps.Clone(s.st.perICCID)
	}
	return Stats{
		Since: s.st.since, Total: s.st.total, Accepted: s.st.accepted,
		Refused: maps.Clone(s.st.refused), Faults: maps.Clone(s.st.faults), PerICCID: per,
		MaxWindow: s.st.recv.max, MaxWindowAccepted: s.st.acc.max,
		FirstRequest: s.st.firstRecv, LastRequest: s.st.lastRecv,
		FirstAccepted: s.st.firstAccepted, LastAccepted: s.st.lastAccepted,
	}
}

// Summary is Stats without PerICCID: cheap to call often, whatever the
// number of ICCIDs seen.
func (s *Server) Summary() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statsLocked(false)
}

// ResetStats clears the counters, windows and recorded times (not the
// replay memory, faults or quota).
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st = counters{
		since:   s.clock(),
		refused: map[string]int64{}, faults: map[string]int64{}, perICCID: map[string]int64{},
		recv: window{width: time.Second}, acc: window{width: time.Second},
	}
}

// MaxRecordedTimes bounds the arrival times kept for Requests and
// AcceptedTimes (the most recent are kept).
const MaxRecordedTimes = 1 << 20

// Requests returns the arrival times (the fake's clock) of the requests
// received since the last reset, oldest first — at most the last
// MaxRecordedTimes.
func (s *Server) Requests() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.recvTimes.slice()
}

// AcceptedTimes returns the times of the accepted requests, like Requests.
func (s *Server) AcceptedTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.accTimes.slice()
}

// CountBetween counts the times in [from, to).
func CountBetween(times []time.Time, from, to time.Time) int {
	lo := sort.Search(len(times), func(i int) bool { return !times[i].Before(from) })
	hi := sort.Search(len(times), func(i int) bool { return !times[i].Before(to) })
	return max(0, hi-lo)
}

// MaxInWindow returns the most of the (sorted) times that fall in any
// window (t-width, t] — the sliding-window maximum Stats.MaxWindow reports
// for width one second.
func MaxInWindow(times []time.Time, width time.Duration) int {
	best, lo := 0, 0
	for hi, t := range times {
		for lo < hi && !times[lo].After(t.Add(-width)) {
			lo++
		}
		best = max(best, hi-lo+1)
	}
	return best
}

// window keeps the times within the last width, and the most it ever held.
type window struct {
	width time.Duration
	times []time.Time
	head  int
	max   int64
}

func (w *window) len() int { return len(w.times) - w.head }

func (w *window) expire(now time.Time) {
	cut := now.Add(-w.width)
	for w.head < len(w.times) && !w.times[w.head].After(cut) {
		w.head++
	}
	if w.head > 1024 && w.head > len(w.times)/2 {
		n := copy(w.times, w.times[w.head:])
		w.times = w.times[:n]
		w.head = 0
	}
}

func (w *window) push(t time.Time) {
	w.times = append(w.times, t)
	if n := int64(w.len()); n > w.max {
		w.max = n
	}
}

// add records t (times arrive in order) and updates the maximum.
func (w *window) add(t time.Time) {
	w.expire(t)
	w.push(t)
}

// ring keeps the last MaxRecordedTimes times as Unix nanoseconds.
type ring struct {
	buf  []int64
	next int
	full bool
}

func (r *ring) add(t time.Time) {
	if len(r.buf) < MaxRecordedTimes && !r.full {
		r.buf = append(r.buf, t.UnixNano())
		if len(r.buf) == MaxRecordedTimes {
			r.full = true
		}
		return
	}
	r.buf[r.next] = t.UnixNano()
	r.next = (r.next + 1) % len(r.buf)
}

func (r *ring) slice() []time.Time {
	out := make([]time.Time, 0, len(r.buf))
	for i := range r.buf {
		j := i
		if r.full {
			j = (r.next + i) % len(r.buf)
		}
		out = append(out, time.Unix(0, r.buf[j]))
	}
	return out
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "use GET", http.StatusMethodNotAllowed)
		return
	}
	st := s.Summary()
	if r.URL.Query().Get("per_iccid") != "false" {
		st = s.Stats()
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	writeJSON(w, http.StatusOK, append(b, '\n'))
}

// adminFaults is the body of /admin/faults: the faults plus the quota.
type adminFaults struct {
	faultsJSON
	Quota *float64 `json:"quota,omitempty"`
}

func (s *Server) serveFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodPut, http.MethodPost:
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var a adminFaults
		if err := json.Unmarshal(b, &a); err != nil {
			http.Error(w, "bad faults JSON: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := s.SetFaults(a.faults()); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if a.Quota != nil {
			s.SetQuota(*a.Quota)
		}
		s.log.InfoContext(r.Context(), "faults set", "faults", string(b))
	default:
		http.Error(w, "use GET, PUT or POST", http.StatusMethodNotAllowed)
		return
	}
	q := s.Quota()
	b, _ := json.MarshalIndent(adminFaults{faultsJSON: s.Faults().wire(), Quota: &q}, "", "  ")
	writeJSON(w, http.StatusOK, append(b, '\n'))
}
