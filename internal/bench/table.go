package bench

import (
	"fmt"
	"io"
)

// printTable writes the report as markdown tables.
func printTable(w io.Writer, r *Report) {
	fmt.Fprintf(w, "simlookup bench — %s, %d cores, %s, %s (%.0f s)\n\n", r.Machine.CPU, r.Machine.Cores, r.Machine.GoVersion, r.Started.Format("2006-01-02 15:04 UTC"), r.Seconds)
	if r.EndToEnd != nil || r.Ceilings != nil {
		fmt.Fprintf(w, "| throughput (%d lookups, zero-latency fake, no rate limit) | per second |\n|---|---:|\n", r.Count)
		if e := r.EndToEnd; e != nil {
			fmt.Fprintf(w, "| end to end: publish → result event → Parquet row (concurrency %d; NATS default fsync) | %.0f |\n", e.Concurrency, e.PerSecond)
		}
		if e := r.EndToEndSync; e != nil {
			fmt.Fprintf(w, "| end to end, NATS fsync always (%d lookups) | %.0f |\n", e.Lookups, e.PerSecond)
		}
		if c := r.Ceilings; c != nil {
			fmt.Fprintf(w, "| ceiling: raw concurrent HTTP calls to the same fake | %.0f |\n", c.HTTP)
			fmt.Fprintf(w, "| ceiling: raw JetStream publish + consume (default fsync) | %.0f |\n", c.JetStream)
			fmt.Fprintf(w, "| ceiling: raw JetStream publish + consume (fsync always) | %.0f |\n", c.JetStreamSync)
			fmt.Fprintf(w, "| ceiling: raw Parquet rows (sink writer) | %.0f |\n", c.Parquet)
		}
		if e := r.EndToEnd; e != nil && r.Ceilings != nil {
			fmt.Fprintf(w, "| ratio end to end / slowest ceiling (%s) | %.2f |\n", r.Ceilings.Slowest, e.Ratio)
			if es := r.EndToEndSync; es != nil {
				name, _ := r.Ceilings.slowestSync()
				fmt.Fprintf(w, "| ratio end to end / slowest ceiling, fsync always (%s) | %.2f |\n", name, es.Ratio)
			}
		}
		fmt.Fprintln(w)
	}
	if len(r.Quota) > 0 {
		fmt.Fprintf(w, "| quota run | rate | burst | calls in %s | achieved / rate | max 1 s window | bound (rate + burst) |\n|---|---:|---:|---:|---:|---:|---:|\n", secs(r.Quota[0].Seconds))
		for _, q := range r.Quota {
			verdict := ""
			if q.MaxWindow > q.Bound {
				verdict = " **over**"
			}
			fmt.Fprintf(w, "| %d worker process(es) | %.0f | %d | %d | %.3f | %d%s | %d |\n", q.Workers, q.Rate, q.Burst, q.Calls, q.AchievedRatio, q.MaxWindow, verdict, q.Bound)
		}
		fmt.Fprintln(w)
	}
	if l := r.Latency; l != nil {
		fmt.Fprintf(w, "| request → result latency at %.0f/s offered | p50 | p99 | max |\n|---|---:|---:|---:|\n| %d results | %.1f ms | %.1f ms | %.1f ms |\n\n", l.Offered, l.Results, l.P50ms, l.P99ms, l.Maxms)
	}
	if len(r.Processes) > 0 {
		fmt.Fprintf(w, "| process (end-to-end run) | peak RSS | CPU s | CPU s per 1,000 lookups |\n|---|---:|---:|---:|\n")
		for _, p := range r.Processes {
			fmt.Fprintf(w, "| %s | %.1f MiB | %.2f | %.3f |\n", p.Name, p.PeakRSSMiB, p.CPUSeconds, p.CPUPer1000)
		}
		fmt.Fprintln(w)
	}
	if b := r.Backlog; b != nil {
		fmt.Fprintf(w, "| backlog: %d queued, worked %s, %d results | first | min | max | last |\n|---|---:|---:|---:|---:|\n", b.Queued, secs(b.Seconds), b.Processed)
		fmt.Fprintf(w, "| worker RSS (MiB) | %.1f | %.1f | %.1f | %.1f |\n", b.WorkerRSS.First, b.WorkerRSS.Min, b.WorkerRSS.Max, b.WorkerRSS.Last)
		fmt.Fprintf(w, "| sink RSS (MiB) | %.1f | %.1f | %.1f | %.1f |\n\n", b.SinkRSS.First, b.SinkRSS.Min, b.SinkRSS.Max, b.SinkRSS.Last)
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
	}
}

func secs(s float64) string { return fmt.Sprintf("%.0f s", s) }
