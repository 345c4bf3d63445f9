package rwload

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"time"
)

// PrintPlan writes a one-line summary of the plan and how long building it took.
func PrintPlan(w io.Writer, p *Plan, took time.Duration) {
	s := p.Shape
	fmt.Fprintf(w, "load: %d series × %d steps = %d samples, %d requests of ≤%d samples, %d senders; "+
		"encoded in %s: %.1f MiB snappy (%.1f MiB raw, %.0f B/sample)\n",
		s.Series, s.Steps, p.Samples, p.Requests(), s.Batch, s.Concurrency, took.Round(time.Millisecond),
		float64(p.Bytes)/(1<<20), float64(p.Raw)/(1<<20), float64(p.Bytes)/float64(max(p.Samples, 1)))
}

// Print writes the result: throughput, latencies, and errors by status code.
func (r *Result) Print(w io.Writer) {
	fmt.Fprintf(w, "sent: %d samples in %s = %.0f samples/s (%.3f M/s)\n",
		r.Samples, r.Duration.Round(time.Millisecond), r.SamplesPerSec(), r.SamplesPerSec()/1e6)
	fmt.Fprintf(w, "requests: %d attempts, %d retries; latency p50 %s, p99 %s, max %s\n",
		r.Requests, r.Retries, r.Latency(0.5).Round(10*time.Microsecond),
		r.Latency(0.99).Round(10*time.Microsecond), r.Latency(1).Round(10*time.Microsecond))
	if len(r.Errors) == 0 {
		fmt.Fprintln(w, "errors: none")
		return
	}
	fmt.Fprintf(w, "errors: %d requests given up (%d samples lost)\n", r.Failed, r.FailedSmp)
	for _, code := range slices.Sorted(maps.Keys(r.Errors)) {
		name := fmt.Sprintf("HTTP %d", code)
		if code == StatusTransport {
			name = "no answer"
		}
		fmt.Fprintf(w, "  %-9s × %d, first: %.200s\n", name, r.Errors[code], r.ErrorText[code])
	}
}
