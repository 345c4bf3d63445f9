// Command fanoutbench measures the querier at fan-out to many store gateways: `vigil query`
// and `thanos query` side by side in one run, each over 32 store gateways.
//
// It generates (or reuses) 32 filesystem buckets under --data, one per shard: each holds
// two 2h TSDB blocks (4h) of 1000 series at 15 s whose meta.json carries the thanos section
// a sidecar writes, with one external label set per bucket (cluster=fanout, shard=sNN, no
// replica label). Of the 1000 series, --up are `up` (value 1), the rest
// `http_requests_total` counters. It starts one `vigil store` per bucket and points both
// queriers at those same 32 stores (--thanos-stores: the Thanos querier gets its own 32
// `thanos store` processes over the same buckets instead), waits until each querier sees
// all of them, checks that both answer alike, and then times, interleaved vigil/thanos,
// --runs runs (after a warm-up) of
//
//	count(up)                                  instant, at the end of the data
//	sum(rate(http_requests_total[5m]))         range, the whole 4h at a step giving ~240 points
//
// followed by a concurrent phase per query and querier (--clients for --duration). It
// prints latency percentiles and the vigil/thanos ratio, each querier's CPU per query
// (utime+stime from /proc/PID/stat) and peak RSS (VmHWM, reset before each phase), and the
// store gateways' CPU per query and total RSS.
//
//	bench/build-thanos.sh        # $(go env GOPATH)/bin/thanos-v0.42.4
//	go build -o /tmp/fanout-vigil ./cmd/vigil
//	go run ./bench/fanoutbench --vigil /tmp/fanout-vigil
//	go run ./bench/fanoutbench --vigil /tmp/fanout-vigil --thanos-stores
//
// --keep leaves everything running until Ctrl-C (the URLs are printed); Ctrl-C at any time
// stops every process it started.
package main

import (
	"context"
	"flag"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

type options struct {
	data, work, vigil, thanos string
	buckets, series, up       int
	hours                     int
	interval                  time.Duration
	thanosStores              bool
	runs, warmup, points      int
	clients                   int
	duration, concWarmup      time.Duration
	tolerance                 float64
	profileDir                string
	keep                      bool
}

func main() {
	var o options
	flag.StringVar(&o.data, "data", filepath.Join(os.TempDir(), "vigil-fanout-data"), "directory of the generated buckets (reused when it matches the data flags)")
	flag.StringVar(&o.work, "work", "", "work directory for configs, logs and store data dirs (default: a new one under "+os.TempDir()+", removed after a clean run)")
	flag.StringVar(&o.vigil, "vigil", "./bin/vigil", "path of the vigil binary")
	flag.StringVar(&o.thanos, "thanos", filepath.Join(build.Default.GOPATH, "bin", "thanos-v0.42.4"), "the Thanos binary; bench/build-thanos.sh builds it")
	flag.IntVar(&o.buckets, "buckets", 32, "buckets, one store gateway (per querier set) each")
	flag.IntVar(&o.series, "series", 1000, "series per bucket")
	flag.IntVar(&o.up, "up", 10, "of which `up` series (value 1); the rest are http_requests_total counters")
	flag.IntVar(&o.hours, "hours", 4, "hours of data per bucket, in 2h blocks (even)")
	flag.DurationVar(&o.interval, "interval", 15*time.Second, "sample interval")
	flag.BoolVar(&o.thanosStores, "thanos-stores", false, "give the Thanos querier its own `thanos store` per bucket instead of sharing the vigil stores")
	flag.IntVar(&o.runs, "runs", 20, "timed runs per query and querier, interleaved vigil/thanos")
	flag.IntVar(&o.warmup, "warmup", 3, "untimed runs per query and querier before the timed ones")
	flag.IntVar(&o.points, "points", 240, "points of the range query: step = window / points")
	flag.IntVar(&o.clients, "clients", 8, "concurrent phase: clients, each with one request in flight")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "concurrent phase: length per query and querier (0: skip the phase)")
	flag.DurationVar(&o.concWarmup, "conc-warmup", 2*time.Second, "concurrent phase: untimed load before each measured phase")
	flag.Float64Var(&o.tolerance, "tolerance", 1e-6, "largest relative difference allowed between the two queriers' values")
	flag.StringVar(&o.profileDir, "profile-dir", "", "write CPU profiles of each querier, taken during its concurrent phases (10 s at most), here")
	flag.BoolVar(&o.keep, "keep", false, "leave everything running after the benchmark (until Ctrl-C) and keep the work directory")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fanoutbench:", err)
		os.Exit(1)
	}
}

func (o *options) validate() error {
	switch {
	case o.buckets < 1 || o.buckets > 100:
		return fmt.Errorf("--buckets must be 1..100")
	case o.up < 1 || o.up >= o.series:
		return fmt.Errorf("--up must be 1..--series-1")
	case o.hours < 2 || o.hours%2 != 0:
		return fmt.Errorf("--hours must be a positive even number (2h blocks)")
	case o.interval < time.Second || (2*time.Hour)%o.interval != 0:
		return fmt.Errorf("--interval must be at least 1s and divide 2h")
	case o.runs < 1 || o.points < 1 || o.clients < 1:
		return fmt.Errorf("--runs, --points and --clients must be positive")
	}
	for _, p := range []*string{&o.data, &o.vigil, &o.thanos} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	for _, b := range []string{o.vigil, o.thanos} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("binary: %w (make build; bench/build-thanos.sh)", err)
		}
	}
	return nil
}

func run(ctx context.Context, o options) (err error) {
	if err := o.validate(); err != nil {
		return err
	}
	fmt.Printf("fanoutbench %s, %s\n", time.Now().Format(time.RFC3339), loadAvg())
	ds, err := ensureData(ctx, o)
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}

	work, tmp := o.work, o.work == ""
	if tmp {
		if work, err = os.MkdirTemp("", "vigil-fanoutbench-"); err != nil {
			return fmt.Errorf("work directory: %w", err)
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	st := &stack{work: work}
	defer func() {
		st.stop()
		if err != nil || o.keep || !tmp {
			fmt.Fprintf(os.Stderr, "fanoutbench: logs and configs in %s\n", work)
		} else {
			os.RemoveAll(work)
		}
	}()
	if err := st.start(ctx, o, ds); err != nil {
		if ctx.Err() == nil {
			st.dumpLogs()
		}
		return err
	}
	idle := [2]int64{st.vigil.proc.Mem().RSS, st.thanos.proc.Mem().RSS}

	// Query by query: its answer check, its sequential runs, its concurrent phase. The
	// range query grows both queriers' heaps to hundreds of MiB, which Go keeps for a while:
	// count(up) goes first so that its RSS figures start from a fresh querier.
	var seq, conc [][2]*result
	for i, q := range queries(ds, o.points) {
		fmt.Printf("%s: %s\n", q.name, q.expr)
		if err := sameAnswer(ctx, q, st.vigil, st.thanos, o.tolerance); err != nil {
			return fmt.Errorf("answers differ before timing: %w", err)
		}
		if want := o.up * o.buckets; i == 0 {
			if n, err := instantScalar(ctx, st.vigil, q); err != nil || int(n) != want {
				return fmt.Errorf("count(up) = %v (%v), want %d (%d up series × %d buckets)", n, err, want, o.up, o.buckets)
			}
			fmt.Printf("  count(up) = %d (%d up series × %d buckets)\n", want, o.up, o.buckets)
		}
		s, err := sequential(ctx, o, st, []query{q})
		if err != nil {
			return err
		}
		seq = append(seq, s...)
		if o.duration > 0 {
			c, err := concurrent(ctx, o, st, []query{q})
			if err != nil {
				return err
			}
			conc = append(conc, c...)
		}
	}
	fmt.Printf("\nsequential: %d runs per query and querier after %d warm-up runs, interleaved vigil/thanos\n", o.runs, o.warmup)
	printSequential(o, seq)
	if len(conc) > 0 {
		fmt.Printf("\nconcurrent: %d clients, %s per query and querier after %s warm-up, vigil then thanos\n", o.clients, o.duration, o.concWarmup)
		printConcurrent(o, conc)
	}
	printSummary(o, st, seq, conc, idle)
	fmt.Printf("\n%s\n", loadAvg())
	if o.keep {
		fmt.Printf("\n--keep: vigil query %s, thanos query %s, work %s. Ctrl-C to stop.\n", st.vigil.url, st.thanos.url, work)
		<-ctx.Done()
	}
	return nil
}

// loadAvg returns uptime's load averages: the machine is shared, and the figures mean
// little without them.
func loadAvg() string {
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			return "load average " + strings.Join(f[:3], " ")
		}
	}
	out, _ := exec.Command("uptime").Output()
	return strings.TrimSpace(string(out))
}
