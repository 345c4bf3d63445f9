package main

// The printed tables and the comparison with the issue row's goals.

import (
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
)

func mib(kb int64) string { return fmt.Sprintf("%.0f MiB", float64(kb)/1024) }

// peakRSS is the phase's peak with the RSS it started from: Go keeps heap that an
// earlier, bigger query grew, and the peak can be no lower than that.
func peakRSS(r *result) string {
	return fmt.Sprintf("%.0f (%.0f) MiB", float64(r.peakKB)/1024, float64(r.startKB)/1024)
}

func ratio(a, b time.Duration) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

// storesLabel names the stores a querier read from in a phase.
func storesLabel(r *result) string {
	if r.storeShared {
		return mib(r.storePeakKB) + " (shared)"
	}
	return mib(r.storePeakKB)
}

func printSequential(o options, seq [][2]*result) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "query\tquerier\tp50\tp90\tmin\tp50 v/t\tp90 v/t\tCPU/query\tpeak (start) RSS\t%d stores CPU/query\tstores peak RSS (sum)\t\n", o.buckets)
	for _, rs := range seq {
		v, t := rs[0], rs[1]
		for _, r := range rs {
			r50, r90 := "", ""
			if r == v {
				r50, r90 = ratio(benchkit.Percentile(v.Lat, 50), benchkit.Percentile(t.Lat, 50)), ratio(benchkit.Percentile(v.Lat, 90), benchkit.Percentile(t.Lat, 90))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.1fms\t%s\t%.1fms\t%s\t\n", r.query, r.querier,
				benchkit.FmtDur(benchkit.Percentile(r.Lat, 50)), benchkit.FmtDur(benchkit.Percentile(r.Lat, 90)), benchkit.FmtDur(benchkit.Percentile(r.Lat, 0)),
				r50, r90, r.cpuPerQuery(), peakRSS(r), r.storeCPUPerQuery(), storesLabel(r))
		}
	}
	tw.Flush()
}

func printConcurrent(o options, conc [][2]*result) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "query\tquerier\tq/s\tp50\tp90\tp99\terrors\tq/s v/t\tp50 v/t\tCPU/query\tpeak (start) RSS\t%d stores CPU/query\tstores peak RSS (sum)\t\n", o.buckets)
	for _, rs := range conc {
		v, t := rs[0], rs[1]
		for _, r := range rs {
			rq, r50 := "", ""
			if r == v {
				rq = fmt.Sprintf("%.2f×", v.QPS()/max(t.QPS(), 1e-9))
				r50 = ratio(benchkit.Percentile(v.Lat, 50), benchkit.Percentile(t.Lat, 50))
			}
			fmt.Fprintf(tw, "%s\t%s\t%.1f\t%s\t%s\t%s\t%d\t%s\t%s\t%.1fms\t%s\t%.1fms\t%s\t\n", r.query, r.querier, r.QPS(),
				benchkit.FmtDur(benchkit.Percentile(r.Lat, 50)), benchkit.FmtDur(benchkit.Percentile(r.Lat, 90)), benchkit.FmtDur(benchkit.Percentile(r.Lat, 99)), r.Errs,
				rq, r50, r.cpuPerQuery(), peakRSS(r), r.storeCPUPerQuery(), mib(r.storePeakKB))
		}
	}
	tw.Flush()
	for _, rs := range conc {
		for _, r := range rs {
			if r.FirstErr != "" {
				fmt.Printf("  %s via %s: first error: %.300s\n", r.query, r.querier, r.FirstErr)
			}
		}
	}
}

// printSummary holds the figures against the issue row: Vigil ≤ 0.7× Thanos latency,
// querier RSS ≤ Thanos.
func printSummary(o options, st *stack, seq, conc [][2]*result, idle [2]int64) {
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	fmt.Printf("\ngoal: Vigil ≤ 0.7× Thanos latency, querier RSS ≤ Thanos\n")
	for i, rs := range seq {
		v, t := rs[0], rs[1]
		r := float64(benchkit.Percentile(v.Lat, 50)) / float64(max(benchkit.Percentile(t.Lat, 50), 1))
		fmt.Printf("  %-12s latency: sequential p50 %s vs %s = %.2f× (%s)", v.query,
			benchkit.FmtDur(benchkit.Percentile(v.Lat, 50)), benchkit.FmtDur(benchkit.Percentile(t.Lat, 50)), r, met(r <= 0.7))
		peak := [2]int64{v.peakKB, t.peakKB}
		if i < len(conc) {
			cv, ct := conc[i][0], conc[i][1]
			cr := float64(benchkit.Percentile(cv.Lat, 50)) / float64(max(benchkit.Percentile(ct.Lat, 50), 1))
			fmt.Printf("; %d clients p50 %.2f× (%s), q/s %.2f×", o.clients, cr, met(cr <= 0.7), cv.QPS()/max(ct.QPS(), 1e-9))
			peak = [2]int64{max(peak[0], cv.peakKB), max(peak[1], ct.peakKB)}
		}
		fmt.Printf("\n  %-12s querier peak RSS: vigil %s, thanos %s = %.2f× (%s)\n", "", mib(peak[0]), mib(peak[1]),
			float64(peak[0])/float64(max(peak[1], 1)), met(peak[0] <= peak[1]))
	}
	fmt.Printf("  querier RSS right after start: vigil %s, thanos %s\n", mib(idle[0]), mib(idle[1]))
	for _, set := range st.sets {
		hwm, rss := set.mem()
		fmt.Printf("  %d × %s store: RSS now %s in total (%s per store), sum of peaks in the last phase %s\n",
			len(set.procs), set.kind, mib(rss), mib(rss/int64(len(set.procs))), mib(hwm))
	}
}
