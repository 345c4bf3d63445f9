// Command querybench measures `vigil query` against a real Prometheus on the data set
// written by bench/gen.
//
// It starts two Prometheus (external labels cluster=bench, replica=r0/r1) on the two
// generated replica directories, a `vigil sidecar` in front of each and one
// `vigil query --query.replica-label=replica` over both sidecars, waits until everything
// is ready and the querier sees both stores, then runs a fixed set of query_range
// queries over the generated window against (a) the querier with deduplication and (b)
// Prometheus r0 directly. For each query it prints the median latency of both, their
// ratio and whether the deduplicated answer matches r0's; then the memory of every
// process.
//
// --mode rate, light and small compare `vigil query` with `thanos query` over the same
// sidecars instead: two mixes under concurrent clients, and small single queries (see
// concurrent.go and small.go, and bench/README.md).
//
//	make build
//	go run ./bench/gen --series 10000 --hours 24 --out /tmp/vigil-bench
//	go run ./bench/querybench --data /tmp/vigil-bench --vigil ./bin/vigil
package main

import (
	"context"
	"flag"
	"fmt"
	"go/build"
	"math"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
)

type options struct {
	data, vigil, prom string
	runs, points      int
	keep              bool
	only              *regexp.Regexp
	tolerance         float64
	mode              string
	thanos            string
	conc              concOptions
}

func main() {
	var o options
	var only string
	flag.StringVar(&o.data, "data", "/tmp/vigil-bench", "directory written by bench/gen (r0/, r1/, bench.json)")
	flag.StringVar(&o.vigil, "vigil", "./bin/vigil", "path of the vigil binary")
	flag.StringVar(&o.prom, "prometheus", "/usr/bin/prometheus", "path of the Prometheus binary")
	flag.IntVar(&o.runs, "runs", 5, "timed runs per query and target (after one warm-up)")
	flag.IntVar(&o.points, "points", 720, "points per series: step = window / points (at least the scrape interval)")
	flag.BoolVar(&o.keep, "keep", false, "leave everything running after the benchmark (until Ctrl-C) and keep the work directory")
	flag.StringVar(&only, "only", "", "run only the queries whose name matches this regexp")
	flag.Float64Var(&o.tolerance, "tolerance", 0.01, "how far (relative) a deduplicated value may lie outside the range of the two replicas' own answers")
	flag.StringVar(&o.mode, "mode", "table", "table (vigil vs Prometheus, the query set), rate or light (concurrent load, vigil vs Thanos), small (small single queries, vigil vs Thanos vs Prometheus)")
	flag.StringVar(&o.thanos, "thanos", filepath.Join(build.Default.GOPATH, "bin", "thanos-v0.42.4"), "the Thanos binary (modes rate, light, small); bench/build-thanos.sh builds it")
	o.conc.register()
	flag.Parse()
	var err error
	if o.only, err = regexp.Compile(only); err != nil {
		fmt.Fprintln(os.Stderr, "querybench: --only:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	switch o.mode {
	case "table":
		err = run(ctx, o)
	case "rate", "light", "small":
		err = runVersus(ctx, o)
	default:
		err = fmt.Errorf("unknown --mode %q", o.mode)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "querybench:", err)
		os.Exit(1)
	}
}

// stack is the set of started processes.
type stack struct {
	proms    []*benchkit.Proc
	promURLs []string
	sidecars []*benchkit.Proc
	querier  *benchkit.Proc
	queryURL string
	// The sidecars' gRPC addresses, and a Thanos querier over them (modes rate, light, small).
	sidecarGRPC []string
	thanos      *benchkit.Proc
	thanosURL   string
	extra       []*benchkit.Proc // more queriers (--baseline)
}

func (s *stack) all() []*benchkit.Proc {
	ps := append([]*benchkit.Proc{}, s.proms...)
	ps = append(ps, s.sidecars...)
	if s.querier != nil {
		ps = append(ps, s.querier)
	}
	if s.thanos != nil {
		ps = append(ps, s.thanos)
	}
	return append(ps, s.extra...)
}

func run(ctx context.Context, o options) (err error) {
	m, err := benchkit.ReadManifest(o.data)
	if err != nil {
		return err
	}
	for _, p := range []*string{&o.data, &o.vigil, &o.prom} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	work, err := os.MkdirTemp("", "vigil-querybench-")
	if err != nil {
		return err
	}
	s := &stack{}
	defer func() {
		ps := s.all()
		for i := len(ps) - 1; i >= 0; i-- { // querier, sidecars, then Prometheus
			ps[i].Stop(15 * time.Second)
		}
		if err != nil || o.keep {
			fmt.Fprintf(os.Stderr, "querybench: logs and configs kept in %s\n", work)
		} else {
			os.RemoveAll(work)
		}
	}()
	if err := s.start(ctx, o, m, work); err != nil {
		for _, p := range s.all() {
			if ctx.Err() == nil { // not interrupted: the logs may tell why
				fmt.Fprintf(os.Stderr, "--- %s (%s) ---\n%s\n", p.Name, p.Log, p.Tail(15))
			}
		}
		return err
	}

	window := time.Duration(m.EndMS-m.StartMS) * time.Millisecond
	step := max((window / time.Duration(o.points)).Truncate(time.Second), time.Duration(m.IntervalMS)*time.Millisecond)
	rp := benchkit.RangeParams{Start: time.UnixMilli(m.StartMS), End: time.UnixMilli(m.EndMS), Step: step}
	fmt.Printf("data: %d series × %s per replica, %s .. %s; step %s (%d points per series); %d runs per query\n\n",
		m.Series, window, rp.Start.UTC().Format(time.RFC3339), rp.End.UTC().Format(time.RFC3339), step,
		int(window/step)+1, o.runs)
	failed, err := benchmark(ctx, o, s, rp, benchkit.QuerySet(m.SingleSeries))
	if err != nil {
		return err
	}
	fmt.Println()
	printMemory(s)
	if o.keep {
		fmt.Printf("\n--keep: querier %s, Prometheus r0 %s, r1 %s; pprof: go tool pprof -top '%s/debug/pprof/profile?seconds=10'\nCtrl-C to stop.\n",
			s.queryURL, s.promURLs[0], s.promURLs[1], s.queryURL)
		<-ctx.Done()
	}
	if failed > 0 {
		return fmt.Errorf("%d queries did not match the replicas within --tolerance %g", failed, o.tolerance)
	}
	return nil
}

// start starts both Prometheus, both sidecars and the querier, and waits until the
// querier answers with both replicas' data.
func (s *stack) start(ctx context.Context, o options, m benchkit.Manifest, work string) error {
	inst := "count(http_requests_total)"
	at := strconv.FormatInt((m.EndMS-m.IntervalMS)/1000, 10)
	for _, r := range m.Replicas {
		addr, err := benchkit.FreeAddr()
		if err != nil {
			return err
		}
		cfg := filepath.Join(work, "prometheus-"+r+".yml")
		yml := fmt.Sprintf("global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n  external_labels: {cluster: bench, replica: %s}\n", r)
		if err := os.WriteFile(cfg, []byte(yml), 0o644); err != nil {
			return err
		}
		p, err := benchkit.StartProc(work, "prometheus-"+r, o.prom, "--config.file="+cfg,
			"--storage.tsdb.path="+filepath.Join(o.data, r), "--web.listen-address="+addr,
			"--storage.tsdb.retention.time=10y", "--storage.tsdb.min-block-duration=2h",
			"--storage.tsdb.max-block-duration=2h", "--web.enable-lifecycle")
		if err != nil {
			return err
		}
		s.proms, s.promURLs = append(s.proms, p), append(s.promURLs, "http://"+addr)
	}
	for i, p := range s.proms {
		u := s.promURLs[i]
		if err := benchkit.WaitFor(ctx, p.Name+" ready", 2*time.Minute, p, func() error { return benchkit.HTTPOK(ctx, u+"/-/ready") }); err != nil {
			return err
		}
		if err := benchkit.WaitFor(ctx, p.Name+" loaded the blocks", 2*time.Minute, p, func() error {
			return expectCount(ctx, u, url.Values{"query": {inst}, "time": {at}}, m.Counters)
		}); err != nil {
			return err
		}
	}
	var endpoints []string
	for i, r := range m.Replicas {
		grpcAddr, err1 := benchkit.FreeAddr()
		httpAddr, err2 := benchkit.FreeAddr()
		if err1 != nil || err2 != nil {
			return fmt.Errorf("free port: %v %v", err1, err2)
		}
		p, err := benchkit.StartProc(work, "sidecar-"+r, o.vigil, "sidecar", "--prometheus.url="+s.promURLs[i],
			"--tsdb.path="+filepath.Join(o.data, r), "--grpc-address="+grpcAddr, "--http-address="+httpAddr)
		if err != nil {
			return err
		}
		s.sidecars = append(s.sidecars, p)
		if err := benchkit.WaitFor(ctx, p.Name+" ready", 2*time.Minute, p, func() error { return benchkit.HTTPOK(ctx, "http://"+httpAddr+"/-/ready") }); err != nil {
			return err
		}
		endpoints = append(endpoints, "--endpoint="+grpcAddr)
		s.sidecarGRPC = append(s.sidecarGRPC, grpcAddr)
	}
	grpcAddr, err1 := benchkit.FreeAddr()
	httpAddr, err2 := benchkit.FreeAddr()
	if err1 != nil || err2 != nil {
		return fmt.Errorf("free port: %v %v", err1, err2)
	}
	args := append([]string{"query", "--query.replica-label=replica", "--grpc-address=" + grpcAddr,
		"--http-address=" + httpAddr}, endpoints...)
	q, err := benchkit.StartProc(work, "query", o.vigil, args...)
	if err != nil {
		return err
	}
	s.querier, s.queryURL = q, "http://"+httpAddr
	if err := benchkit.WaitFor(ctx, "query ready", 2*time.Minute, q, func() error { return benchkit.HTTPOK(ctx, s.queryURL+"/-/ready") }); err != nil {
		return err
	}
	// Both replicas are visible without dedup, and dedup folds them into one.
	if err := benchkit.WaitFor(ctx, "query sees both stores", 2*time.Minute, q, func() error {
		return expectCount(ctx, s.queryURL, url.Values{"query": {inst}, "time": {at}, "dedup": {"false"}}, len(m.Replicas)*m.Counters)
	}); err != nil {
		return err
	}
	return benchkit.WaitFor(ctx, "query deduplicates", time.Minute, q, func() error {
		return expectCount(ctx, s.queryURL, url.Values{"query": {inst}, "time": {at}, "dedup": {"true"}}, m.Counters)
	})
}

// expectCount runs an instant query returning one sample and checks its value.
func expectCount(ctx context.Context, base string, params url.Values, want int) error {
	body, _, err := benchkit.Get(ctx, base, "/api/v1/query", params)
	if err != nil {
		return err
	}
	res, _, err := benchkit.Decode(body)
	if err != nil {
		return err
	}
	for _, pts := range res {
		if len(pts) == 1 && pts[0].V == float64(want) {
			return nil
		}
	}
	return fmt.Errorf("%s: want %d, got %v", params.Get("query"), want, res)
}

// benchmark runs every query against the querier (dedup on) and Prometheus r0, prints
// the table and returns how many results did not match r0 within the tolerance.
func benchmark(ctx context.Context, o options, s *stack, rp benchkit.RangeParams, qs []benchkit.Query) (int, error) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "query\tseries\tpoints\tvigil p50\tprom p50\tratio\tcheck\t")
	var notes []string
	failed := 0
	logSum, n := 0.0, 0
	for _, q := range qs {
		if !o.only.MatchString(q.Name) {
			continue
		}
		vp := rp.Values(q.Expr, url.Values{"dedup": {"true"}})
		pp := rp.Values(q.Expr, nil)
		// Warm-up, also the answers that are checked.
		vb, _, err := benchkit.Get(ctx, s.queryURL, "/api/v1/query_range", vp)
		if err != nil {
			return failed, fmt.Errorf("%s via vigil: %w", q.Name, err)
		}
		pb, _, err := benchkit.Get(ctx, s.promURLs[0], "/api/v1/query_range", pp)
		if err != nil {
			return failed, fmt.Errorf("%s via Prometheus: %w", q.Name, err)
		}
		got, warns, err := benchkit.Decode(vb, "cluster", "replica")
		if err != nil {
			return failed, fmt.Errorf("%s via vigil: %w", q.Name, err)
		}
		want, _, err := benchkit.Decode(pb)
		if err != nil {
			return failed, fmt.Errorf("%s via Prometheus: %w", q.Name, err)
		}
		var other benchkit.Matrix
		if ob, _, err := benchkit.Get(ctx, s.promURLs[1], "/api/v1/query_range", pp); err != nil {
			return failed, fmt.Errorf("%s via Prometheus r1: %w", q.Name, err)
		} else if other, _, err = benchkit.Decode(ob); err != nil {
			return failed, fmt.Errorf("%s via Prometheus r1: %w", q.Name, err)
		}
		d := compare(got, want, other, o.tolerance, rp.Start.Add(time.Hour).UnixMilli())
		check := "ok"
		if !d.ok() {
			check, failed = "MISMATCH", failed+1
		}
		notes = append(notes, fmt.Sprintf("%-24s %s: %s", q.Name, check, d))
		if d.maxRel > 0 {
			notes = append(notes, fmt.Sprintf("%-24s   largest difference: %s", "", d.worst))
		}
		if d.worstOutside != "" {
			notes = append(notes, fmt.Sprintf("%-24s   farthest outside (%.3g): %s", "", d.outsideBy, d.worstOutside))
		}
		for _, w := range warns {
			notes = append(notes, fmt.Sprintf("%-24s   warning: %s", "", w))
		}
		// Timed runs, interleaved so background load hits both targets alike.
		var vt, pt []time.Duration
		for range o.runs {
			_, t, err := benchkit.Get(ctx, s.queryURL, "/api/v1/query_range", vp)
			if err != nil {
				return failed, fmt.Errorf("%s via vigil: %w", q.Name, err)
			}
			vt = append(vt, t)
			_, t, err = benchkit.Get(ctx, s.promURLs[0], "/api/v1/query_range", pp)
			if err != nil {
				return failed, fmt.Errorf("%s via Prometheus: %w", q.Name, err)
			}
			pt = append(pt, t)
		}
		vm, pm := benchkit.Median(vt), benchkit.Median(pt)
		ratio := float64(vm) / float64(pm)
		logSum += math.Log(ratio)
		n++
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%.2f×\t%s\t\n", q.Name, len(want), want.Points(),
			benchkit.FmtDur(vm), benchkit.FmtDur(pm), ratio, check)
	}
	tw.Flush()
	if n > 0 {
		fmt.Printf("geometric mean ratio: %.2f×\n", math.Exp(logSum/float64(n)))
	}
	fmt.Println("\ncorrectness (vigil query with dedup vs Prometheus r0 and r1 queried directly; labels cluster and replica dropped):")
	for _, l := range notes {
		fmt.Println("  " + l)
	}
	return failed, nil
}

// printMemory prints the peak and current resident memory of every process.
func printMemory(s *stack) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "process\tpid\tpeak RSS (VmHWM)\tRSS now\t")
	for _, p := range s.all() {
		hwm, rss := p.MemStatus()
		fmt.Fprintf(tw, "%s\t%d\t%.1f MiB\t%.1f MiB\t\n", p.Name, p.Cmd.Process.Pid, float64(hwm)/1024, float64(rss)/1024)
	}
	tw.Flush()
}
