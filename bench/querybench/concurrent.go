package main

// Vigil vs Thanos modes: the same sidecars behind `vigil query` and `thanos query`.
//
//	--mode rate   the rate-heavy mix under --clients concurrent clients (data: 1k series at 5s)
//	--mode light  the light mix under --clients concurrent clients (data: 10k series × 24h)
//	--mode small  small single queries, both queriers and Prometheus r0 directly
//
// Both queriers run at once over the same two sidecars; they are measured one after the
// other, A B A B (--rounds), so that other load on the machine hits both alike. CPU per
// query is the querier process's utime+stime (/proc/PID/stat) over a phase divided by
// the queries answered in it.

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
)

type concOptions struct {
	clients  int
	duration time.Duration
	rounds   int
	warmup   time.Duration
	profile  string // directory: CPU profiles of each querier during its last phase
	replicas int
	baseline string // a second vigil binary, measured as "vigil-base" beside the others
}

func (c *concOptions) register() {
	flag.IntVar(&c.clients, "clients", 64, "modes rate, light: concurrent clients, each with one request in flight")
	flag.DurationVar(&c.duration, "duration", 20*time.Second, "modes rate, light: length of one measured phase")
	flag.IntVar(&c.rounds, "rounds", 2, "modes rate, light, small: rounds of A then B")
	flag.DurationVar(&c.warmup, "warmup", 3*time.Second, "modes rate, light: load before each phase that is not measured")
	flag.IntVar(&c.replicas, "replicas", 2, "modes rate, light, small: replicas (Prometheus + sidecar) started; 1 is the issue's rate-heavy set-up")
	flag.StringVar(&c.baseline, "baseline", "", "modes rate, light, small: also run this vigil binary's querier over the same sidecars (before/after comparisons)")
	flag.StringVar(&c.profile, "profile-dir", "", "modes rate, light: write a CPU profile of each querier (10 s within its last phase) here")
}

// target is one querier (or Prometheus) being measured.
type target struct {
	name  string
	url   string
	proc  *benchkit.Proc
	extra url.Values // dedup=true for the queriers
}

func runVersus(ctx context.Context, o options) (err error) {
	m, err := benchkit.ReadManifest(o.data)
	if err != nil {
		return err
	}
	for _, p := range []*string{&o.data, &o.vigil, &o.prom, &o.thanos} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	if o.conc.replicas < 1 || o.conc.replicas > len(m.Replicas) {
		return fmt.Errorf("--replicas must be 1..%d", len(m.Replicas))
	}
	m.Replicas = m.Replicas[:o.conc.replicas]
	work, err := os.MkdirTemp("", "vigil-querybench-")
	if err != nil {
		return err
	}
	s := &stack{}
	defer func() {
		ps := s.all()
		for i := len(ps) - 1; i >= 0; i-- {
			ps[i].Stop(15 * time.Second)
		}
		if err != nil || o.keep {
			fmt.Fprintf(os.Stderr, "querybench: logs and configs kept in %s\n", work)
		} else {
			os.RemoveAll(work)
		}
	}()
	var base *target
	if err = s.start(ctx, o, m, work); err == nil {
		err = s.startThanos(ctx, o, m, work)
	}
	if err == nil && o.conc.baseline != "" {
		base, err = s.startQuerier(ctx, o.conc.baseline, "vigil-base", work)
	}
	if err != nil {
		for _, p := range s.all() {
			if ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "--- %s (%s) ---\n%s\n", p.Name, p.Log, p.Tail(15))
			}
		}
		return err
	}
	dedup := url.Values{"dedup": {"true"}}
	vigil := target{name: "vigil", url: s.queryURL, proc: s.querier, extra: dedup}
	thanos := target{name: "thanos", url: s.thanosURL, proc: s.thanos, extra: dedup}
	prom := target{name: "prometheus", url: s.promURLs[0], proc: s.proms[0]}
	others := []target{thanos}
	if base != nil {
		others = append(others, *base)
	}
	switch o.mode {
	case "rate", "light":
		err = concurrentMode(ctx, o, m, vigil, others, append(slices.Clone(s.proms), s.sidecars...))
	case "small":
		err = smallMode(ctx, o, m, vigil, others, prom, s.sidecarGRPC[0])
	}
	if err != nil {
		return err
	}
	fmt.Println()
	printMemory(s)
	if o.keep {
		fmt.Printf("\n--keep: vigil %s, thanos %s, Prometheus r0 %s. Ctrl-C to stop.\n", s.queryURL, s.thanosURL, s.promURLs[0])
		<-ctx.Done()
	}
	return nil
}

// startQuerier starts another `vigil query` over the sidecars, for before/after runs.
func (s *stack) startQuerier(ctx context.Context, bin, name, work string) (*target, error) {
	grpcAddr, err1 := benchkit.FreeAddr()
	httpAddr, err2 := benchkit.FreeAddr()
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("free port: %v %v", err1, err2)
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	args := []string{"query", "--query.replica-label=replica", "--grpc-address=" + grpcAddr, "--http-address=" + httpAddr}
	for _, e := range s.sidecarGRPC {
		args = append(args, "--endpoint="+e)
	}
	p, err := benchkit.StartProc(work, name, bin, args...)
	if err != nil {
		return nil, err
	}
	s.extra = append(s.extra, p)
	u := "http://" + httpAddr
	if err := benchkit.WaitFor(ctx, name+" ready", 2*time.Minute, p, func() error { return benchkit.HTTPOK(ctx, u+"/-/ready") }); err != nil {
		return nil, err
	}
	return &target{name: name, url: u, proc: p, extra: url.Values{"dedup": {"true"}}}, nil
}

// startThanos starts `thanos query` over the sidecars and waits until it deduplicates.
func (s *stack) startThanos(ctx context.Context, o options, m benchkit.Manifest, work string) error {
	grpcAddr, err1 := benchkit.FreeAddr()
	httpAddr, err2 := benchkit.FreeAddr()
	if err1 != nil || err2 != nil {
		return fmt.Errorf("free port: %v %v", err1, err2)
	}
	args := []string{"query", "--query.replica-label=replica", "--grpc-address=" + grpcAddr, "--http-address=" + httpAddr}
	for _, e := range s.sidecarGRPC {
		args = append(args, "--endpoint="+e)
	}
	p, err := benchkit.StartProc(work, "thanos-query", o.thanos, args...)
	if err != nil {
		return err
	}
	s.thanos, s.thanosURL = p, "http://"+httpAddr
	if err := benchkit.WaitFor(ctx, "thanos query ready", 2*time.Minute, p, func() error { return benchkit.HTTPOK(ctx, s.thanosURL+"/-/ready") }); err != nil {
		return err
	}
	inst := "count(http_requests_total)"
	at := strconv.FormatInt((m.EndMS-m.IntervalMS)/1000, 10)
	return benchkit.WaitFor(ctx, "thanos query deduplicates", 2*time.Minute, p, func() error {
		if err := expectCount(ctx, s.thanosURL, url.Values{"query": {inst}, "time": {at}, "dedup": {"false"}}, len(m.Replicas)*m.Counters); err != nil {
			return err
		}
		return expectCount(ctx, s.thanosURL, url.Values{"query": {inst}, "time": {at}, "dedup": {"true"}}, m.Counters)
	})
}

// loadQuery is one query_range of a mix.
type loadQuery struct {
	name   string
	params url.Values
}

// rateMix is the rate-heavy mix on bench/gen's names: the last 30 minutes at a
// 5 s step. x_count is http_requests_total, x_bucket the duration histogram, `up` three
// raw series, some_gauge bench_gauge.
func rateMix(m benchkit.Manifest) []loadQuery {
	rp := benchkit.RangeParams{Start: time.UnixMilli(m.EndMS - 30*60*1000), End: time.UnixMilli(m.EndMS), Step: 5 * time.Second}
	return []loadQuery{
		{"sum_by_instance_rate_1m", rp.Values(`sum by (instance) (rate(http_requests_total[1m]))`, nil)},
		{"histogram_quantile_p90_5m", rp.Values(`histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))`, nil)},
		{"up_3_series", rp.Values(`bench_gauge{slot=~"0|1|2"}`, nil)},
		{"topk3_gauge", rp.Values(`topk(3, bench_gauge)`, nil)},
	}
}

// lightMix is the light mix: 1 h query_range at 15 s over single instances
// (rotating over 8 instances), the last hour of the data.
func lightMix(m benchkit.Manifest) []loadQuery {
	rp := benchkit.RangeParams{Start: time.UnixMilli(m.EndMS - 3600*1000), End: time.UnixMilli(m.EndMS), Step: 15 * time.Second}
	var out []loadQuery
	for i := range 8 {
		inst := fmt.Sprintf(`instance="10.0.0.%d:8080"`, 1+i*7)
		sel := `http_requests_total{` + inst + `}`
		out = append(out,
			loadQuery{"rate_5m", rp.Values(`rate(`+sel+`[5m])`, nil)},
			loadQuery{"sum_by_job_rate_5m", rp.Values(`sum by (job) (rate(`+sel+`[5m]))`, nil)},
			loadQuery{"max_gauge", rp.Values(`max(bench_gauge{`+inst+`})`, nil)},
			loadQuery{"up", rp.Values(`bench_gauge{slot="`+strconv.Itoa(i)+`"}`, nil)},
			loadQuery{"rate_30m", rp.Values(`rate(`+sel+`[30m])`, nil)},
			loadQuery{"increase_1h", rp.Values(`increase(`+sel+`[1h])`, nil)},
		)
	}
	return out
}

// phase is the outcome of one load phase against one target.
type phase struct {
	benchkit.Tally
	cpu       float64 // seconds of the target process
	rssPeakKB int64
}

// runLoad sends the mix from clients goroutines for d and measures.
func runLoad(ctx context.Context, hc *http.Client, t target, mix []loadQuery, clients int, d time.Duration, measure bool) phase {
	cpu0 := t.proc.CPUSeconds()
	if measure {
		t.proc.ResetPeak()
	}
	tally := benchkit.ClosedLoop(ctx, hc, clients, d, func(_, i int) (string, string) {
		q := mix[i%len(mix)]
		params := url.Values{}
		for k, v := range q.params {
			params[k] = v
		}
		for k, v := range t.extra {
			params[k] = v
		}
		return t.url + "/api/v1/query_range?" + params.Encode(), q.name
	})
	return phase{Tally: tally, cpu: t.proc.CPUSeconds() - cpu0, rssPeakKB: t.proc.Mem().HWM}
}

// concurrentMode runs the mix against a and b in turns. rest are the processes both
// share (Prometheus, sidecars): their CPU per query is printed too.
func concurrentMode(ctx context.Context, o options, m benchkit.Manifest, a target, others []target, rest []*benchkit.Proc) error {
	b := others[0]
	mix := rateMix(m)
	if o.mode == "light" {
		mix = lightMix(m)
	}
	c := o.conc
	fmt.Printf("mode %s: %d queries in the mix, %d clients, %s per phase (after %s warm-up), %d rounds of vigil then thanos\n",
		o.mode, len(mix), c.clients, c.duration, c.warmup, c.rounds)
	for _, q := range mix[:min(len(mix), 6)] {
		fmt.Printf("  %-26s %s (step %ss)\n", q.name, q.params.Get("query"), q.params.Get("step"))
	}
	hc := benchkit.LoadClient(c.clients)
	// Answers must agree before anything is timed.
	for _, q := range mix {
		for _, b := range others {
			if err := sameAnswer(ctx, q, a, b); err != nil {
				return err
			}
		}
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\tquerier\tq/s\tp50\tp99\terrors\tCPU/query\tpeak RSS\tPrometheus+sidecars CPU/query\t")
	results := map[string][]phase{}
	for r := range c.rounds {
		for _, t := range append([]target{a}, others...) {
			runLoad(ctx, hc, t, mix, c.clients, c.warmup, false)
			var prof chan error
			if c.profile != "" && r == c.rounds-1 {
				prof = make(chan error, 1)
				go func() { prof <- cpuProfile(ctx, t, c.profile, o.mode, min(10*time.Second, c.duration)) }()
			}
			var restCPU float64
			for _, p := range rest {
				restCPU -= p.CPUSeconds()
			}
			p := runLoad(ctx, hc, t, mix, c.clients, c.duration, true)
			for _, p := range rest {
				restCPU += p.CPUSeconds()
			}
			if prof != nil {
				if err := <-prof; err != nil {
					fmt.Fprintf(os.Stderr, "profile %s: %v\n", t.name, err)
				}
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			results[t.name] = append(results[t.name], p)
			fmt.Fprintf(tw, "%d\t%s\t%.1f\t%s\t%s\t%d\t%.2fms\t%.0f MiB\t%.2fms\t\n", r+1, t.name, p.QPS(),
				benchkit.FmtDur(benchkit.Percentile(p.Lat, 50)), benchkit.FmtDur(benchkit.Percentile(p.Lat, 99)), p.Errs,
				1000*p.cpu/float64(max(p.OK, 1)), float64(p.rssPeakKB)/1024, 1000*restCPU/float64(max(p.OK, 1)))
			if p.FirstErr != "" {
				fmt.Fprintf(tw, "\t\tfirst error: %.200s\t\t\t\t\t\t\t\n", p.FirstErr)
			}
		}
	}
	tw.Flush()
	sum := func(ps []phase) (q, cpu float64, lat []time.Duration, errs int) {
		var ok int
		var wall time.Duration
		for _, p := range ps {
			ok += p.OK
			wall += p.Wall
			cpu += p.cpu
			lat = append(lat, p.Lat...)
			errs += p.Errs
		}
		return float64(ok) / wall.Seconds(), 1000 * cpu / float64(max(ok, 1)), lat, errs
	}
	for _, t := range others[1:] {
		q, c, l, e := sum(results[t.name])
		fmt.Printf("%s: %.1f q/s, p50 %s, p99 %s, %.2f ms CPU/query, %d errors\n", t.name, q, benchkit.FmtDur(benchkit.Percentile(l, 50)), benchkit.FmtDur(benchkit.Percentile(l, 99)), c, e)
	}
	qa, ca, la, ea := sum(results[a.name])
	qb, cb, lb, eb := sum(results[b.name])
	fmt.Printf("\nall rounds: vigil %.1f q/s, p50 %s, p99 %s, %.2f ms CPU/query, %d errors; thanos %.1f q/s, p50 %s, p99 %s, %.2f ms CPU/query, %d errors\n",
		qa, benchkit.FmtDur(benchkit.Percentile(la, 50)), benchkit.FmtDur(benchkit.Percentile(la, 99)), ca, ea,
		qb, benchkit.FmtDur(benchkit.Percentile(lb, 50)), benchkit.FmtDur(benchkit.Percentile(lb, 99)), cb, eb)
	fmt.Printf("vigil / thanos: %.2f× q/s, %.2f× CPU per query, p99 %.2f×\n", qa/qb, ca/cb,
		float64(benchkit.Percentile(la, 99))/float64(benchkit.Percentile(lb, 99)))
	return nil
}

// sameAnswer checks that both queriers return the same series and timestamps, and
// values within 1e-6 (relative) of each other: both deduplicate the same sidecars.
func sameAnswer(ctx context.Context, q loadQuery, a, b target) error {
	var ms [2]benchkit.Matrix
	for i, t := range []target{a, b} {
		params := url.Values{}
		for k, v := range q.params {
			params[k] = v
		}
		for k, v := range t.extra {
			params[k] = v
		}
		body, _, err := benchkit.Get(ctx, t.url, "/api/v1/query_range", params)
		if err != nil {
			return fmt.Errorf("%s via %s: %w", q.name, t.name, err)
		}
		if ms[i], _, err = benchkit.Decode(body, "cluster", "replica"); err != nil {
			return fmt.Errorf("%s via %s: %w", q.name, t.name, err)
		}
	}
	if len(ms[0]) != len(ms[1]) {
		return fmt.Errorf("%s: %s returned %d series, %s %d", q.name, a.name, len(ms[0]), b.name, len(ms[1]))
	}
	if len(ms[0]) == 0 {
		return fmt.Errorf("%s: no series", q.name)
	}
	d := compare(ms[0], ms[1], ms[1], 0.02, 0)
	if d.missing+d.extra+d.tsMismatch > 0 {
		return fmt.Errorf("%s: %s vs %s: %s", q.name, a.name, b.name, d)
	}
	return nil
}

// cpuProfile saves a CPU profile of t's process taken over d.
func cpuProfile(ctx context.Context, t target, dir, mode string, d time.Duration) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	body, _, err := benchkit.Get(ctx, t.url, "/debug/pprof/profile", url.Values{"seconds": {strconv.Itoa(int(d.Seconds()))}})
	if err != nil {
		return err
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%s.pprof", mode, t.name))
	fmt.Fprintf(os.Stderr, "CPU profile of %s: %s\n", t.name, path)
	return os.WriteFile(path, body, 0o644)
}
