//go:build faults

package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/parquet-go/parquet-go"

	"github.com/simlookup/simlookup/internal/checker"
	"github.com/simlookup/simlookup/schemas"
	"github.com/simlookup/simlookup/sign"
	"github.com/simlookup/simlookup/sink"
	"github.com/simlookup/simlookup/worker/eiot"
)

// sec tallies what the security scan searched and found, over the run.
var sec struct {
	sync.Mutex
	items    map[string]int
	bytes    int64
	findings []string
}

func secSearch(kind, where string, data []byte) {
	sec.Lock()
	defer sec.Unlock()
	if sec.items == nil {
		sec.items = map[string]int{}
	}
	sec.items[kind]++
	sec.bytes += int64(len(data))
	for _, needle := range []struct{ what, s string }{{"secret", testSecret}, {"appkey (in full)", testAppKey}} {
		if i := bytes.Index(data, []byte(needle.s)); i >= 0 {
			lo, hi := max(0, i-80), min(len(data), i+len(needle.s)+80)
			sec.findings = append(sec.findings, fmt.Sprintf("%s in %s %s: …%q…", needle.what, kind, where, data[lo:hi]))
		}
	}
}

// securityScan searches what a scenario produced while it still runs:
// every result event and dead letter, every Parquet row (decoded, since the
// pages are compressed) and file (raw bytes: the footer is not), and the
// HTTP pages of every running worker and sink.
func (s *scenario) securityScan() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, _ = checker.ReadResults(ctx, s.js, "", func(seq uint64, data []byte) {
		secSearch("result event", fmt.Sprintf("%s seq %d", s.name, seq), data)
	})
	_ = checker.ScanStream(ctx, s.js, schemas.DLQStream, func(m jetstream.Msg) error {
		secSearch("dead letter", s.name, m.Data())
		return nil
	})
	_ = filepath.WalkDir(s.out, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		secSearch("output file", path, b)
		if strings.HasSuffix(path, ".parquet") {
			rows, err := parquet.Read[sink.Row](bytes.NewReader(b), int64(len(b)))
			if err != nil {
				sec.Lock()
				sec.findings = append(sec.findings, fmt.Sprintf("unreadable parquet file %s: %v", path, err))
				sec.Unlock()
				return nil
			}
			for _, r := range rows {
				j, _ := json.Marshal(r)
				secSearch("parquet row", path, j)
			}
		}
		return nil
	})
	for _, p := range append(append([]*proc{}, s.workers...), s.sinks...) {
		if !p.Running() {
			continue
		}
		for _, page := range []string{"/metrics", "/healthz", "/readyz"} {
			resp, err := http.Get("http://" + httpAddr(p) + page)
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			secSearch("http page", p.name+page, b)
		}
	}
}

// TestSecurityTLSUntrusted: the vendor client refuses a TLS server whose
// certificate nobody signed, with an error naming the certificate problem;
// a worker pointed at it pauses (no result is produced) and says why in its
// log.
func TestSecurityTLSUntrusted(t *testing.T) {
	s := newScenario(t, "tls-untrusted")
	tlsSrv := httptest.NewUnstartedServer(s.fake)
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake errors are expected
	tlsSrv.StartTLS()
	defer tlsSrv.Close()

	client, err := eiot.New(eiot.Config{BaseURL: tlsSrv.URL, AppKey: testAppKey, Secret: sign.NewSecret(testSecret)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.Lookup(context.Background(), "89852240400014306175")
	if err == nil {
		t.Fatal("the client accepted an untrusted certificate")
	}
	msg := err.Error()
	t.Logf("client error: %s", msg)
	if !strings.Contains(msg, "certificate") {
		t.Errorf("the client's error does not name the certificate problem: %s", msg)
	}

	s.fake.url = tlsSrv.URL
	w := s.startWorker()
	s.waitStreams()
	s.publish(3)
	var line string
	deadline := time.Now().Add(8 * time.Second)
	for line == "" && time.Now().Before(deadline) {
		for _, l := range strings.Split(w.Log(), "\n") {
			if strings.Contains(l, "certificate") {
				line = l
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	in, err := s.collect(false)
	if err != nil {
		t.Fatal(err)
	}
	// An untrusted certificate is the deployment's fault, not the cards':
	// the worker pauses (systemic) and keeps every request.
	if rep := checker.Check(in); rep.ByStatus["ok"] > 0 || rep.ByStatus["failed"] > 0 {
		t.Errorf("results through an untrusted certificate (want none: the worker pauses): %v", rep.ByStatus)
	}
	note := "TLS: against an untrusted certificate the vendor client fails with: " + truncate(msg, 200) + "; the worker pauses and produces no result."
	if line == "" {
		t.Errorf("no worker log line names the certificate problem within 8 s:\n%s", w.LogTail(2000))
	} else {
		note += " The worker logs: " + truncate(line, 300)
	}
	summaryNote(note)
}

// TestSecurityRequestSizeCap: a request body over the limit never becomes a
// lookup. The requests stream refuses it (MaxMsgSize 64 KiB); with the
// stream's bound raised by an operator, the worker's own cap (64 KiB) turns
// it into an invalid result without a vendor call.
func TestSecurityRequestSizeCap(t *testing.T) {
	s := newScenario(t, "request-size-cap")
	s.startWorker()
	s.waitStreams()
	big := []byte(`{"iccid":"89852240400014306175","meta":{"pad":"` + strings.Repeat("x", 70<<10) + `"}}`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := s.js.Publish(ctx, schemas.RequestSubject, big, jetstream.WithMsgID("too-big-1"))
	if err == nil {
		t.Fatal("the requests stream accepted a 70 KiB request")
	}
	refused := err.Error()
	t.Logf("the requests stream refused a 70 KiB request: %v", err)

	st, err := s.js.Stream(ctx, schemas.RequestStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxMsgSize = 1 << 20
	if _, err := s.js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	calls := s.fake.calls.Load()
	if _, err := s.js.Publish(ctx, schemas.RequestSubject, big, jetstream.WithMsgID("too-big-2")); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.accepted = append(s.accepted, "too-big-2")
	s.mu.Unlock()
	rep, err := s.waitDone(60*time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	var code string
	results, _ := checker.ReadResults(ctx, s.js, "", func(_ uint64, data []byte) {
		var r schemas.Result
		if json.Unmarshal(data, &r) == nil && r.Error != nil && r.Error.Code != nil {
			code = *r.Error.Code
		}
	})
	if rep.ByStatus["invalid"] != 1 || len(results) != 1 {
		t.Errorf("a 70 KiB request past the stream: statuses %v, want one invalid", rep.ByStatus)
	}
	if n := s.fake.calls.Load() - calls; n != 0 {
		t.Errorf("%d vendor calls for an oversized request", n)
	}
	summaryNote(fmt.Sprintf("Request size cap: the requests stream refuses a 70 KiB request (%s); with the stream's bound raised to 1 MiB the worker answers it with an invalid result (code %q) and no vendor call.", truncate(refused, 100), code))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
