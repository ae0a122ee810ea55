package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/simlookup/simlookup/internal/natstest"
	"github.com/simlookup/simlookup/schemas"
)

// backlog queues BacklogCount requests on a server of its own (fsync off:
// queueing a million requests with an fsync each would dominate the run and
// measures nothing about simlookup), then works them for BacklogDuration with
// no rate limit, sampling the worker's and the sink's RSS every second.
func (e *env) backlog(ctx context.Context, r *Report) error {
	srv, err := natstest.Start(natstest.Options{StoreDir: filepath.Join(e.dir, "nats-backlog"), MaxStore: 1 << 40, NoSyncAlways: true})
	if err != nil {
		return err
	}
	defer srv.Stop()
	nc, err := srv.Connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(30*time.Second))
	if err != nil {
		return err
	}
	if err := schemas.Provision(ctx, js, schemas.StreamOptions{}, 30*time.Second); err != nil {
		return err
	}
	n := e.cfg.BacklogCount
	for from := 0; from < n; from += 10_000 {
		if _, err := publishRequests(ctx, js, "backlog", from, min(10_000, n-from), 0); err != nil {
			return err
		}
	}
	e.log("bench: backlog queued", "requests", n)

	out := filepath.Join(e.dir, "parquet-backlog")
	sinkP, err := startProcess(ctx, e.dir, "backlog-sink", e.cfg.Exe, nil, e.sinkArgs(srv.URL(), out)...)
	if err != nil {
		return err
	}
	defer sinkP.stop()
	workerP, err := startProcess(ctx, e.dir, "backlog-worker", e.cfg.Exe, e.secretEnv(),
		e.workerArgs(srv.URL(), "--limiter", "local", "--rate", "0", "--concurrency", strconv.Itoa(e.cfg.Concurrency))...)
	if err != nil {
		return err
	}
	defer workerP.stop()

	b := &Backlog{Queued: n, Seconds: e.cfg.BacklogDuration.Seconds()}
	start := time.Now()
	for t := time.Second; t <= e.cfg.BacklogDuration; t += time.Second {
		if err := sleepCtx(ctx, time.Until(start.Add(t))); err != nil {
			return err
		}
		ws, err1 := workerP.sample()
		ss, err2 := sinkP.sample()
		if err1 != nil || err2 != nil {
			return fmt.Errorf("backlog: sample: %v %v", err1, err2)
		}
		b.Samples = append(b.Samples, BacklogSample{T: t.Seconds(), WorkerMiB: mib(ws.RSS), SinkMiB: mib(ss.RSS)})
	}
	st, err := js.Stream(ctx, schemas.ResultStream)
	if err != nil {
		return err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return err
	}
	b.Processed = int(info.State.Msgs)
	b.WorkerRSS = rssRange(b.Samples, func(s BacklogSample) float64 { return s.WorkerMiB })
	b.SinkRSS = rssRange(b.Samples, func(s BacklogSample) float64 { return s.SinkMiB })
	r.Backlog = b
	return nil
}

// rssRange summarises samples after a 10% warm-up.
func rssRange(s []BacklogSample, f func(BacklogSample) float64) RSSRange {
	if len(s) == 0 {
		return RSSRange{}
	}
	s = s[len(s)/10:]
	r := RSSRange{First: f(s[0]), Min: f(s[0]), Max: f(s[0]), Last: f(s[len(s)-1])}
	for _, x := range s {
		r.Min, r.Max = min(r.Min, f(x)), max(r.Max, f(x))
	}
	return r
}
