package eiottest

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/worker/eiot"
)

// Vendor codes the fake answers (HTTP 200, data null), one per reason.
const (
	CodeOK         = "200"
	CodeBadRequest = "10001"
	CodeAppKey     = "10002"
	CodeSign       = "10003"
	CodeStale      = "10004"
	CodeNonce      = "10005"
	CodeReplay     = "10006"
	CodeBusy       = "10007"
	CodeNotFound   = "20001"
)

// Refusal reasons (keys of Stats.Refused).
const (
	ReasonRoute      = "route"
	ReasonBadRequest = "bad_request"
	ReasonAppKey     = "appkey"
	ReasonSign       = "sign"
	ReasonStale      = "stale"
	ReasonNonce      = "nonce"
	ReasonReplay     = "replay"
	ReasonNotFound   = "not_found"
	ReasonQuota      = "quota"
)

// DefaultMaxSkew is the accepted distance between a request's timestamp and
// the fake's clock.
const DefaultMaxSkew = 300 * time.Second

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 64 << 10

// Config configures a fake [Server].
type Config struct {
	// AppKey the fake accepts. Required.
	AppKey string
	// Secret the requests must be signed with. Required.
	Secret sign.Secret
	// Clock is the fake's time (timestamp checks, windows). Defaults to time.Now.
	Clock func() time.Time
	// MaxSkew is the accepted |now - timestamp|. Defaults to 300s.
	MaxSkew time.Duration
	// NotFound says which ICCIDs the vendor does not know (code 20001).
	// Defaults to DefaultNotFound (ICCIDs ending in "404").
	NotFound func(iccid string) bool
	// Faults to inject from the start; see also Server.SetFaults.
	Faults Faults
	// Quota is the allowed requests per second per appkey; 0 is unlimited.
	// At most max(1, floor(Quota)) requests are let through in any window
	// of that many requests' worth of time (1 s for a whole number); the
	// others get HTTP 429 with Retry-After.
	Quota float64
	// Logger logs each refusal (reason, code, ICCID; never the secret).
	// Defaults to discarding.
	Logger *slog.Logger
}

// Server is the fake vendor API; it is an http.Handler.
type Server struct {
	appKey   string
	secret   sign.Secret
	clock    func() time.Time
	maxSkew  time.Duration
	notFound func(string) bool
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc

	mu       sync.Mutex
	faults   Faults
	rng      *rand.Rand
	quota    float64
	quotaWin map[string]*window
	seen     map[replayKey]struct{}
	seenExp  expiryHeap
	st       counters
}

type counters struct {
	since                       time.Time
	total, accepted             int64
	refused, faults, perICCID   map[string]int64
	recv, acc                   window
	recvTimes, accTimes         ring
	firstRecv, lastRecv         time.Time
	firstAccepted, lastAccepted time.Time
}

// New validates cfg and returns a Server. Call Close when done.
func New(cfg Config) (*Server, error) {
	if cfg.AppKey == "" {
		return nil, errors.New("eiottest: AppKey is required")
	}
	if cfg.Secret.IsZero() {
		return nil, errors.New("eiottest: Secret is required")
	}
	if cfg.MaxSkew < 0 {
		return nil, fmt.Errorf("eiottest: MaxSkew %v is negative", cfg.MaxSkew)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.MaxSkew == 0 {
		cfg.MaxSkew = DefaultMaxSkew
	}
	if cfg.NotFound == nil {
		cfg.NotFound = DefaultNotFound
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		appKey: cfg.AppKey, secret: cfg.Secret, clock: cfg.Clock, maxSkew: cfg.MaxSkew, notFound: cfg.NotFound,
		log:  cfg.Logger.With("component", "fake-api"),
		seen: map[replayKey]struct{}{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.SetFaults(cfg.Faults); err != nil {
		return nil, err
	}
	s.SetQuota(cfg.Quota)
	s.ResetStats()
	return s, nil
}

// Close ends every sleeping request (latency, hang) at once.
func (s *Server) Close() { s.cancel() }

// Handler returns s as an http.Handler.
func (s *Server) Handler() http.Handler { return s }

// ClientConfig returns an eiot.Config that talks to this fake at baseURL.
func (s *Server) ClientConfig(baseURL string) eiot.Config {
	return eiot.Config{BaseURL: baseURL, AppKey: s.appKey, Secret: s.secret}
}

// SetFaults replaces the injected faults (and reseeds the fault PRNG).
// Safe to call while serving.
func (s *Server) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f
	s.rng = rand.New(rand.NewPCG(uint64(f.Seed), 0x5eed))
	return nil
}

// Faults returns the injected faults.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// SetQuota sets the per-appkey quota in requests per second (0 or less:
// unlimited). Safe to call while serving.
func (s *Server) SetQuota(q float64) {
	if !(q > 0) || math.IsInf(q, 0) {
		q = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quota = q
	s.quotaWin = map[string]*window{}
}

// Quota returns the per-appkey quota (0 = unlimited).
func (s *Server) Quota() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.quota
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case eiot.Path:
		s.serveAPI(w, r)
	case "/stats":
		s.serveStats(w, r)
	case "/admin/faults":
		s.serveFaults(w, r)
	case "/admin/reset":
		if r.Method != http.MethodPost {
			http.Error(w, "use POST", http.StatusMethodNotAllowed)
			return
		}
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	case "/healthz":
		io.WriteString(w, "ok\n")
	default:
		s.serveAPI(w, r) // counted and refused as a wrong route
	}
}

// codeMessage is the message the fake sends with a code.
func codeMessage(code string) string {
	switch code {
	case CodeBadRequest:
		return "parameter error"
	case CodeAppKey:
		return "appkey invalid"
	case CodeSign:
		return "sign invalid"
	case CodeStale:
		return "timestamp expired"
	case CodeNonce:
		return "nonce invalid"
	case CodeReplay:
		return "repeated request"
	case CodeNotFound:
		return "card not found"
	}
	return "system busy, try again later"
}

// vendorBody is the failure body: HTTP 200, data null.
func vendorBody(code, msg string) []byte {
	b, _ := json.Marshal(map[string]any{"code": code, "message": msg, "data": nil})
	return b
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// refusal describes a failed check.
type refusal struct {
	reason, code, msg string
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, iccid string, f refusal) {
	s.mu.Lock()
	s.st.refused[f.reason]++
	s.mu.Unlock()
	s.log.InfoContext(r.Context(), "refused", "reason", f.reason, "code", f.code, "message", f.msg, "iccid", iccid, "remote", r.RemoteAddr)
	switch f.reason {
	case ReasonRoute:
		if r.URL.Path == eiot.Path {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		} else {
			http.Error(w, "404 page not found", http.StatusNotFound)
		}
	default:
		writeJSON(w, http.StatusOK, vendorBody(f.code, f.msg))
	}
}

func (s *Server) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.ctx.Done():
		return false
	}
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	// Read the body first: it lets the server notice a client going away.
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	params, parseErr := parseBody(body)
	if readErr != nil {
		parseErr = readErr
	}
	appKey, _ := params["appkey"].(string)

	s.mu.Lock()
	now := s.clock() // under the lock, so recorded times are in order
	s.st.total++
	s.st.recv.add(now)
	s.st.recvTimes.add(now)
	if s.st.firstRecv.IsZero() {
		s.st.firstRecv = now
	}
	s.st.lastRecv = now
	f := s.faults.withDefaults()
	u := s.rng.Float64()
	var jitter time.Duration
	if f.Jitter > 0 {
		jitter = time.Duration(s.rng.Int64N(int64(f.Jitter)))
	}
	which5xx := s.rng.IntN(3)
	s.mu.Unlock()

	if !s.sleep(r.Context(), f.Latency+jitter) {
		return
	}
	iccid, _ := params["iccid"].(string)
	if r.URL.Path != eiot.Path || r.Method != http.MethodPost {
		s.refuse(w, r, iccid, refusal{reason: ReasonRoute})
		return
	}
	if wait, ok := s.takeQuota(appKey); !ok {
		s.refuse429(w, r, iccid, wait)
		return
	}

	fault := pickFault(f, u)
	if fault != "" && fault != FaultNoData {
		s.countFault(fault)
		s.log.DebugContext(r.Context(), "fault", "fault", fault, "iccid", iccid)
	}
	switch fault {
	case FaultReset:
		resetConn(w)
		return
	case FaultHang:
		if !s.sleep(r.Context(), f.Hang) {
			return
		}
	case "5xx":
		status := []int{500, 502, 503}[which5xx]
		s.countFault(strconv.Itoa(status))
		if status == 500 {
			writeJSON(w, status, []byte(`{"code":"500","message":"internal server error","data":null}`))
		} else {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(status)
			fmt.Fprintf(w, "<html><head><title>%d %s</title></head><body><center><h1>%d %s</h1></center><hr><center>nginx</center></body></html>\n",
				status, http.StatusText(status), status, http.StatusText(status))
		}
		return
	case Fault429:
		if f.RetryAfterDate {
			w.Header().Set("Retry-After", s.clock().Add(f.RetryAfter).UTC().Format(http.TimeFormat))
		} else {
			w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(f.RetryAfter.Seconds())), 10))
		}
		writeJSON(w, http.StatusTooManyRequests, []byte(`{"code":"429","message":"too many requests","data":null}`))
		return
	case FaultVendorCode:
		writeJSON(w, http.StatusOK, vendorBody(f.VendorCode, codeMessage(f.VendorCode)))
		return
	case FaultMalformed:
		writeJSON(w, http.StatusOK, []byte(`{"code":"200","message":"success","data":{"iccid":"`+iccid[:min(len(iccid), 6)]))
		return
	}

	if ref, ok := s.check(params, parseErr, s.clock()); !ok {
		s.refuse(w, r, iccid, ref)
		return
	}
	s.mu.Lock()
	acceptedAt := s.clock()
	s.st.accepted++
	s.st.acc.add(acceptedAt)
	s.st.accTimes.add(acceptedAt)
	if s.st.firstAccepted.IsZero() {
		s.st.firstAccepted = acceptedAt
	}
	s.st.lastAccepted = acceptedAt
	s.st.perICCID[iccid]++
	if fault == FaultNoData {
		s.st.faults[FaultNoData]++
	}
	s.mu.Unlock()
	if fault == FaultNoData {
		writeJSON(w, http.StatusOK, []byte(`{"code":"200","message":"success","data":null}`))
		return
	}
	writeJSON(w, http.StatusOK, CardResponse(iccid))
}

func (s *Server) countFault(kind string) {
	s.mu.Lock()
	s.st.faults[kind]++
	s.mu.Unlock()
}

func pickFault(f Faults, u float64) string {
	for _, c := range []struct {
		kind string
		rate float64
	}{
		{FaultReset, f.RateReset}, {FaultHang, f.RateHang}, {"5xx", f.Rate5xx}, {Fault429, f.Rate429},
		{FaultVendorCode, f.RateVendorCode}, {FaultMalformed, f.RateMalformed}, {FaultNoData, f.RateNoData},
	} {
		if u < c.rate {
			return c.kind
		}
		u -= c.rate
	}
	return ""
}

func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2: no hijacking; abort the stream instead.
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func (s *Server) refuse429(w http.ResponseWriter, r *http.Request, iccid string, wait time.Duration) {
	s.mu.Lock()
	s.st.refused[ReasonQuota]++
	s.mu.Unlock()
	secs := max(1, int64(math.Ceil(wait.Seconds())))
	s.log.InfoContext(r.Context(), "refused", "reason", ReasonQuota, "iccid", iccid, "retry_after_s", secs, "remote", r.RemoteAddr)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	writeJSON(w, http.StatusTooManyRequests, []byte(`{"code":"429","message":"request rate over quota","data":null}`))
}

// takeQuota admits a request for appKey now, or says how long until a
// slot frees.
func (s *Server) takeQuota(appKey string) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	if s.quota <= 0 {
		return 0, true
	}
	n := max(1, int(math.Floor(s.quota)))
	width := time.Duration(float64(n) / s.quota * float64(time.Second))
	q := s.quotaWin[appKey]
	if q == nil {
		q = &window{width: width}
		s.quotaWin[appKey] = q
	}
	q.expire(now)
	if q.len() >= n {
		return q.times[q.head].Add(width).Sub(now), false
	}
	q.push(now)
	return 0, true
}

// parseBody decodes a JSON object with UseNumber.
func parseBody(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, errors.New("body is not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	return m, nil
}

// integer reads an integer parameter: a JSON integer, or a string of digits.
func integer(v any) (int64, bool) {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = string(x)
	case string:
		s = x
	default:
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

type replayKey struct {
	ts, nonce int64
	iccid     string
}

// check runs the vendor's checks in order; on success it remembers the
// timestamp+nonce+iccid.
func (s *Server) check(p map[string]any, parseErr error, now time.Time) (refusal, bool) {
	bad := func(msg string) (refusal, bool) {
		return refusal{ReasonBadRequest, CodeBadRequest, "parameter error: " + msg}, false
	}
	if parseErr != nil {
		return bad("request body is not a JSON object")
	}
	if k, ok := p["appkey"].(string); !ok || k != s.appKey {
		return refusal{ReasonAppKey, CodeAppKey, codeMessage(CodeAppKey)}, false
	}
	ts, ok := integer(p["timestamp"])
	if !ok {
		return bad("timestamp is required and must be an integer")
	}
	nonce, ok := integer(p["nonce"])
	if !ok {
		return bad("nonce is required and must be an integer")
	}
	sig, ok := p["sign"].(string)
	if !ok || sig == "" {
		return refusal{ReasonSign, CodeSign, codeMessage(CodeSign)}, false
	}
	params := make(sign.Params, len(p))
	for k, v := range p {
		params[k] = v
	}
	valid, err := sign.Verify(params, sig, s.secret)
	if err != nil {
		return bad("a parameter has an unsupported value")
	}
	if !valid {
		return refusal{ReasonSign, CodeSign, codeMessage(CodeSign)}, false
	}
	if d := now.Sub(time.Unix(ts, 0)); d > s.maxSkew || d < -s.maxSkew {
		return refusal{ReasonStale, CodeStale, codeMessage(CodeStale)}, false
	}
	if nonce < eiot.NonceMin || nonce > eiot.NonceMax {
		return refusal{ReasonNonce, CodeNonce, codeMessage(CodeNonce)}, false
	}
	iccid, ok := p["iccid"].(string)
	if !ok || strings.TrimSpace(iccid) == "" {
		return bad("iccid is required")
	}
	key := replayKey{ts, nonce, iccid}
	s.mu.Lock()
	for len(s.seenExp) > 0 && s.seenExp[0].at.Before(now) {
		delete(s.seen, heap.Pop(&s.seenExp).(expiry).key)
	}
	_, dup := s.seen[key]
	if !dup {
		s.seen[key] = struct{}{}
		heap.Push(&s.seenExp, expiry{key: key, at: time.Unix(ts, 0).Add(s.maxSkew + time.Second)})
	}
	s.mu.Unlock()
	if dup {
		return refusal{ReasonReplay, CodeReplay, codeMessage(CodeReplay)}, false
	}
	if s.notFound(iccid) {
		return refusal{ReasonNotFound, CodeNotFound, codeMessage(CodeNotFound)}, false
	}
	return refusal{}, true
}

type expiry struct {
	key replayKey
	at  time.Time
}

type expiryHeap []expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
