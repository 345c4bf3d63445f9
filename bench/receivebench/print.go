package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
	"github.com/vigilhq/vigil/bench/rwload"
)

// mib converts kB (as /proc reports them) to MiB.
func mib(kb int64) float64 { return float64(kb) / 1024 }

func idleRSS(rs []*receiver) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%s %.0f MiB", r.name, mib(r.idle.RSS))
	}
	return strings.Join(parts, ", ")
}

// printReceivers prints the throughput next to the reference, and per receiver its
// memory and CPU during the load. Every receiver holds every series (one receiver, or
// replication factor 3 over three), so the active series are the load's series.
// Per-million figures: the whole RSS, and the growth over the idle RSS before the load
// (the cost of the series, without the process's fixed base).
func printReceivers(rs []*receiver, plan *rwload.Plan, res *rwload.Result) {
	sps := res.SamplesPerSec()
	fmt.Printf("\ningested: %.3f M samples/s; reference (issue, Thanos receive, single, 20k×100): %.2f M samples/s → %.2f×\n",
		sps/1e6, refSamplesPerSec/1e6, sps/refSamplesPerSec)
	perM := 1e6 / float64(plan.Shape.Series)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "receiver\tidle RSS\tpeak RSS\tfinal RSS\tfinal RSS / 1M series\t(final-idle) / 1M series\tCPU during load\tCPU µs/sample\t")
	for _, r := range rs {
		m := r.proc.Mem()
		cpu := cpuTime(r.proc.Cmd.Process.Pid) - r.cpuBefore
		fmt.Fprintf(w, "%s\t%.0f MiB\t%.0f MiB\t%.0f MiB\t%.0f MiB\t%.0f MiB\t%.2f s\t%.2f\t\n",
			r.name, mib(r.idle.RSS), mib(m.HWM), mib(m.RSS), mib(m.RSS)*perM, mib(m.RSS-r.idle.RSS)*perM,
			cpu.Seconds(), float64(cpu.Microseconds())/float64(max(res.Samples, 1)))
	}
	fmt.Fprintf(w, "reference\t\t≈%.0f MB\t\t\t\t\t\t\n", refRSSMB)
	w.Flush()
}

// verify checks, through the querier, that each receiver holds what was acknowledged.
func verify(ctx context.Context, base string, plan *rwload.Plan, res *rwload.Result, rs []*receiver) error {
	got, err := queryStored(ctx, base, plan)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	fmt.Printf("\ncheck through vigil query (window of the load, per replica label):\n")
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "replica\tseries\tsamples\tsum of values\tresult")
	failed := 0
	for _, r := range rs {
		s := got[benchkit.LabelKey(map[string]string{"replica": r.name})]
		delete(got, benchkit.LabelKey(map[string]string{"replica": r.name}))
		if s == nil {
			s = &stored{}
		}
		verdict := "ok"
		if err := s.check(plan.Shape.Series, res); err != nil {
			verdict, failed = "FAIL: "+err.Error(), failed+1
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%.6g\t%s\n", r.name, s.series, s.samples, s.sum, verdict)
	}
	for key, s := range got { // series without a known replica label
		fmt.Fprintf(w, "%s\t%d\t%d\t%.6g\tFAIL: unexpected labels\n", key, s.series, s.samples, s.sum)
		failed++
	}
	fmt.Fprintf(w, "sent\t%d\t%d\t%.6g\t(acknowledged)\n", plan.Shape.Series, res.Samples, res.Sum)
	w.Flush()
	if failed > 0 {
		return fmt.Errorf("verify: %d replica(s) do not hold what was acknowledged", failed)
	}
	return nil
}
