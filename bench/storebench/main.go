// Command storebench measures `vigil store` serving a bucket in MinIO, queried through
// `vigil query`, on the data set written by bench/gen.
//
// It uploads the generated blocks of both replicas to a MinIO bucket (with the meta.json
// "thanos" section a sidecar writes), starts `vigil store` on the bucket and `vigil query
// --query.replica-label=replica` over it, and prints:
//
//   - the initial sync (blocks, time) and the store's memory after it;
//   - for each query of bench/querybench's fixed set, the latency with cold caches (the first
//     run after a store restart) and with warm caches (median of --runs), and the store's
//     memory after it and at its peak;
//   - a CPU and heap profile of the store during the slowest warm query (--profile);
//   - the chunk-pool check: a query over the whole range with a small --chunk-pool-size
//     either stays within it or fails with ResourceExhausted (--pool-sizes).
//
// With --blocks-test it instead syncs many small blocks (by default 120: 1000 series × 120h
// × 2 replicas) and compares the store's memory with a bucket holding only the newest 20,
// running the same queries over data both buckets hold.
//
//	make build
//	go run ./bench/gen --series 10000 --hours 24 --out /tmp/vigil-bench
//	go run ./bench/storebench --data /tmp/vigil-bench --vigil ./bin/vigil
//	go run ./bench/storebench --blocks-test
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
	"github.com/vigilhq/vigil/internal/block"
)

type options struct {
	data, vigil, minio, minioDir, bucket string
	skipUpload, keep, profile            bool
	runs, points, profileSeconds         int
	only                                 *regexp.Regexp
	indexCache, chunkPool                string
	poolSizes, poolQuery                 string
	profileDir                           string
	// --blocks-test
	blocksTest             bool
	smallData              string
	smallSeries, fewBlocks int
	smallHours             float64
	// --vs-thanos
	vsThanos              bool
	thanos                string
	rounds                int
	vsSettle, vsIdle      time.Duration
	vigilArgs, thanosArgs stringList
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var o options
	var only string
	flag.StringVar(&o.data, "data", "/tmp/vigil-bench", "directory written by bench/gen (r0/, r1/, bench.json)")
	flag.StringVar(&o.vigil, "vigil", "./bin/vigil", "path of the vigil binary")
	flag.StringVar(&o.minio, "minio", "", "path of the MinIO binary (default $(go env GOPATH)/bin/minio)")
	flag.StringVar(&o.minioDir, "minio-dir", "/tmp/vigil-storebench-minio", "MinIO's data directory; kept between runs so --skip-upload can reuse the buckets")
	flag.StringVar(&o.bucket, "bucket", "vigil-bench", "bucket name (--blocks-test uses <bucket>-few and <bucket>-all)")
	flag.BoolVar(&o.skipUpload, "skip-upload", false, "use the bucket as it is instead of making it match the data set")
	flag.IntVar(&o.runs, "runs", 5, "warm runs per query (after the cold one)")
	flag.IntVar(&o.points, "points", 720, "points per series: step = window / points (at least the scrape interval)")
	flag.StringVar(&only, "only", "", "run only the queries whose name matches this regexp")
	flag.StringVar(&o.indexCache, "index-cache-size", "250MB", "the store's --index-cache-size")
	flag.StringVar(&o.chunkPool, "chunk-pool-size", "2GB", "the store's --chunk-pool-size for the latency table")
	flag.StringVar(&o.poolSizes, "pool-sizes", "16MB,64MB,256MB", "comma-separated --chunk-pool-size values for the chunk-pool check (empty: skip it)")
	flag.StringVar(&o.poolQuery, "pool-query", `sum by (job) (rate({__name__=~"http_.*"}[5m]))`, "the query of the chunk-pool check, over the whole range")
	flag.BoolVar(&o.profile, "profile", true, "profile the store (CPU, heap) during the slowest warm query")
	flag.IntVar(&o.profileSeconds, "profile-seconds", 15, "length of each CPU profile")
	flag.StringVar(&o.profileDir, "profile-dir", "", "where to save the profiles (default: the work directory, removed at the end unless --keep)")
	flag.BoolVar(&o.keep, "keep", false, "leave everything running at the end (until Ctrl-C) and keep the work directory")
	flag.BoolVar(&o.blocksTest, "blocks-test", false, "memory mode: many small blocks, few vs all synced")
	flag.StringVar(&o.smallData, "small-data", "/tmp/vigil-bench-small", "--blocks-test: data set directory (generated with bench/gen when missing or different)")
	flag.IntVar(&o.smallSeries, "small-series", 1000, "--blocks-test: series per replica")
	flag.Float64Var(&o.smallHours, "small-hours", 120, "--blocks-test: hours (2h blocks per replica = hours/2)")
	flag.IntVar(&o.fewBlocks, "few-blocks", 20, "--blocks-test: blocks (both replicas together) in the small bucket")
	flag.BoolVar(&o.vsThanos, "vs-thanos", false, "side by side: `vigil store` and `thanos store` over the same bucket, interleaved rounds, memory after the set and per-query peaks")
	flag.StringVar(&o.thanos, "thanos", "", "--vs-thanos: the Thanos binary (default $(go env GOPATH)/bin/thanos-v0.42.4, from bench/build-thanos.sh)")
	flag.IntVar(&o.rounds, "rounds", 2, "--vs-thanos: rounds (each: a fresh vigil store, then a fresh thanos store)")
	flag.DurationVar(&o.vsIdle, "vs-idle", 2*time.Second, "--vs-thanos: how long after the set memory is read again, before the forced GC")
	flag.DurationVar(&o.vsSettle, "vs-settle", 5*time.Second, "--vs-thanos: rest after the forced GC before memory is read again")
	flag.Var(&o.vigilArgs, "vigil-arg", "--vs-thanos: extra flag for vigil store (repeatable)")
	flag.Var(&o.thanosArgs, "thanos-arg", "--vs-thanos: extra flag for thanos store (repeatable)")
	flag.Parse()
	var err error
	if o.only, err = regexp.Compile(only); err != nil {
		fmt.Fprintln(os.Stderr, "storebench: --only:", err)
		os.Exit(2)
	}
	if o.minio == "" {
		o.minio = defaultMinio()
	}
	if o.thanos == "" {
		o.thanos = filepath.Join(filepath.Dir(defaultMinio()), "thanos-v0.42.4")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, o)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "storebench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (err error) {
	for _, p := range []*string{&o.data, &o.vigil, &o.minio, &o.minioDir, &o.smallData, &o.thanos} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	work, err := os.MkdirTemp("", "vigil-storebench-")
	if err != nil {
		return err
	}
	e := &env{o: o, work: work}
	defer func() {
		if err != nil && ctx.Err() == nil { // not interrupted: the logs may tell why
			for _, p := range e.procs() {
				fmt.Fprintf(os.Stderr, "--- %s (%s) ---\n%s\n", p.Name, p.Log, p.Tail(15))
			}
		}
		if err != nil || o.keep {
			fmt.Fprintf(os.Stderr, "storebench: logs and profiles kept in %s\n", work)
		} else {
			os.RemoveAll(work)
		}
	}()
	if e.mc, err = startMinio(ctx, work, o.minio, o.minioDir); err != nil {
		return err
	}
	defer e.mc.proc.Stop(15 * time.Second)
	if o.blocksTest {
		return runBlocksTest(ctx, e)
	}
	if o.vsThanos {
		return runVsThanos(ctx, e)
	}
	return runBench(ctx, e)
}

// env is what every mode works with.
type env struct {
	o      options
	mc     *minioServer
	work   string
	stacks []*stack
}

// procs lists MinIO and the processes of every stack started so far.
func (e *env) procs() []*benchkit.Proc {
	var ps []*benchkit.Proc
	if e.mc != nil {
		ps = append(ps, e.mc.proc)
	}
	for _, s := range e.stacks {
		for _, p := range []*benchkit.Proc{s.store, s.querier} {
			if p != nil {
				ps = append(ps, p)
			}
		}
	}
	return ps
}

// newStack returns a stack over the bucket whose config is objCfg, remembered for the logs.
func (e *env) newStack(objCfg, dataDir string, labelSets int, storeArgs ...string) (*stack, error) {
	s, err := newStack(e.o.vigil, e.work, objCfg, dataDir, labelSets, storeArgs...)
	if err == nil {
		e.stacks = append(e.stacks, s)
	}
	return s, err
}

// prepareBucket makes bucket name hold blocks (unless --skip-upload), writes the store's
// objstore config and returns its path.
func prepareBucket(ctx context.Context, e *env, name string, blocks []localBlock) (string, error) {
	o, mc, work := e.o, e.mc, e.work
	bkt, err := mc.openBucket(ctx, name)
	if err != nil {
		return "", err
	}
	defer bkt.Close()
	if !o.skipUpload {
		began := time.Now()
		n, size, err := syncBucket(ctx, bkt, filepath.Join(work, "stage"), blocks)
		if err != nil {
			return "", fmt.Errorf("upload to bucket %s: %w", name, err)
		}
		if n > 0 {
			fmt.Printf("bucket %s: uploaded %d blocks (%s) in %s\n", name, n, mibBytes(float64(size)),
				time.Since(began).Round(time.Millisecond))
		}
	}
	ids, err := block.ListBlockIDs(ctx, bkt)
	if err != nil {
		return "", err
	}
	fmt.Printf("bucket %s at %s: %d blocks (local data set: %d)\n", name, mc.endpoint, len(ids), len(blocks))
	cfg := filepath.Join(work, "objstore-"+name+".yml")
	return cfg, os.WriteFile(cfg, mc.objstoreYAML(name), 0o644)
}

// result is one query's row of the latency table.
type result struct {
	q                benchkit.Query
	series, points   int
	cold, warm       time.Duration
	restart          syncInfo
	direct           directCall // median (by time) of direct Series calls, warm
	after            benchkit.Mem
	indexCache, heap float64
	indexReads       float64 // index range reads from the bucket during the query's runs
	check            string
}

func runBench(ctx context.Context, e *env) error {
	o, mc, work := e.o, e.mc, e.work
	m, err := benchkit.ReadManifest(o.data)
	if err != nil {
		return err
	}
	blocks, err := localBlocks(o.data, m.Replicas)
	if err != nil {
		return err
	}
	cfg, err := prepareBucket(ctx, e, o.bucket, blocks)
	if err != nil {
		return err
	}
	dataDir := filepath.Join(work, "store-data")
	s, err := e.newStack(cfg, dataDir, len(m.Replicas),
		"--index-cache-size="+o.indexCache, "--chunk-pool-size="+o.chunkPool)
	if err != nil {
		return err
	}
	defer func() {
		if o.keep && ctx.Err() == nil {
			fmt.Printf("\n--keep: querier %s, store http://%s (pprof under /debug/pprof), MinIO %s. Ctrl-C to stop.\n",
				s.queryURL, s.http, mc.endpoint)
			<-ctx.Done()
		}
		s.stop()
	}()
	si, err := s.startStore(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("store: initial sync of %d blocks in %s (index-headers built from the bucket, %s on disk)\n",
		si.blocks, si.took.Round(time.Millisecond), mibBytes(float64(diskUsage(dataDir))))
	fmt.Printf("store memory after the sync: RSS %s (anon %s, file %s), peak %s, Go heap in use %s\n",
		mib(si.mem.RSS), mib(si.mem.Anon), mib(si.mem.File), mib(si.mem.HWM), mibBytes(si.heap))
	if err := s.startQuerier(ctx); err != nil {
		return err
	}

	window := time.Duration(m.EndMS-m.StartMS) * time.Millisecond
	step := max((window / time.Duration(o.points)).Truncate(time.Second), time.Duration(m.IntervalMS)*time.Millisecond)
	rp := benchkit.RangeParams{Start: time.UnixMilli(m.StartMS), End: time.UnixMilli(m.EndMS), Step: step}
	fmt.Printf("\ndata: %d series × %s × %d replicas, %s .. %s; step %s; cold = first run after a store restart, warm = median of %d runs\n\n",
		m.Series, window, len(m.Replicas), rp.Start.UTC().Format(time.RFC3339), rp.End.UTC().Format(time.RFC3339), step, o.runs)

	var results []result
	peak := si.mem.HWM
	for _, q := range benchkit.QuerySet(m.SingleSeries) {
		if !o.only.MatchString(q.Name) {
			continue
		}
		r, err := benchQuery(ctx, s, rp, q, o.runs)
		if err != nil {
			return fmt.Errorf("%s: %w", q.Name, err)
		}
		results = append(results, r)
		peak = max(peak, r.after.HWM)
	}
	printResults(results)
	fmt.Printf("\nstore peak RSS over all runs: %s (--index-cache-size %s, --chunk-pool-size %s)\n", mib(peak), o.indexCache, o.chunkPool)
	for _, p := range []*benchkit.Proc{s.querier, mc.proc} {
		pm := p.Mem()
		fmt.Printf("%s: peak RSS %s, RSS now %s\n", p.Name, mib(pm.HWM), mib(pm.RSS))
	}
	if o.profile && len(results) > 0 {
		slowest := results[0]
		for _, r := range results {
			if r.warm > slowest.warm {
				slowest = r
			}
		}
		dir := cmp.Or(o.profileDir, work)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := profileQuery(ctx, s, rp, slowest.q, o.profileSeconds, dir); err != nil {
			return fmt.Errorf("profile: %w", err)
		}
	}
	if o.poolSizes != "" {
		if err := poolCheck(ctx, s, rp, o); err != nil {
			return err
		}
	}
	return nil
}

// benchQuery restarts the store (cold caches), runs q once, then o.runs times more.
func benchQuery(ctx context.Context, s *stack, rp benchkit.RangeParams, q benchkit.Query, runs int) (result, error) {
	r := result{q: q, check: "ok"}
	var err error
	if r.restart, err = s.restartStore(ctx); err != nil {
		return r, err
	}
	first, took, err := s.query(ctx, rp, q.Expr)
	if err != nil {
		return r, err
	}
	r.cold, r.series, r.points = took, len(first), first.Points()
	if len(first) == 0 {
		r.check = "EMPTY"
	}
	var times []time.Duration
	for range runs {
		res, took, err := s.query(ctx, rp, q.Expr)
		if err != nil {
			return r, err
		}
		times = append(times, took)
		if d := diffPoints(first, res); d > 0 && r.check == "ok" {
			r.check = fmt.Sprintf("%d points differ", d)
		}
	}
	r.warm = benchkit.Median(times)
	var calls []directCall
	for range 3 {
		dc, err := directSeries(ctx, s.grpc, rp, q.Expr)
		if err != nil {
			return r, fmt.Errorf("direct Series: %w", err)
		}
		calls = append(calls, dc)
	}
	slices.SortFunc(calls, func(a, b directCall) int { return cmp.Compare(a.took, b.took) })
	r.direct = calls[len(calls)/2]
	r.after = s.store.Mem()
	met, err := s.storeMetrics(ctx)
	if err != nil {
		return r, err
	}
	r.indexCache, r.heap = met["vigil_store_index_cache_bytes"], met["go_memstats_heap_inuse_bytes"]
	r.indexReads = met["vigil_store_index_range_reads_total"] - r.restart.metrics["vigil_store_index_range_reads_total"]
	return r, nil
}

// diffPoints counts the points of a that b lacks or has with another value.
func diffPoints(a, b benchkit.Matrix) int {
	n := 0
	for k, pa := range a {
		pb := b[k]
		if len(pa) != len(pb) {
			n += max(len(pa), len(pb))
			continue
		}
		for i := range pa {
			if pa[i] != pb[i] {
				n++
			}
		}
	}
	for k, pb := range b {
		if _, ok := a[k]; !ok {
			n += len(pb)
		}
	}
	return n
}

func printResults(rs []result) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "query\tseries\tpoints\tcold\twarm p50\tstore Series\tstore series\tchunks\tRSS after sync\tRSS after\tpeak RSS\tGo heap\tindex cache\tindex reads\tcheck\t")
	var syncs []time.Duration
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t\n", r.q.Name, r.series, r.points,
			benchkit.FmtDur(r.cold), benchkit.FmtDur(r.warm), benchkit.FmtDur(r.direct.took), r.direct.series,
			mibBytes(float64(r.direct.chunkBytes)), mib(r.restart.mem.RSS), mib(r.after.RSS), mib(r.after.HWM),
			mibBytes(r.heap), mibBytes(r.indexCache), r.indexReads, r.check)
		syncs = append(syncs, r.restart.took)
	}
	tw.Flush()
	fmt.Printf(`cold = first run after a store restart (index-headers on disk, in-memory caches empty; restart sync median %s)
warm p50 = median of the following runs; check = whether they all equal the cold answer
store Series = the store's share, warm: direct Series calls for the query's selectors (replica label stripped, as
  the querier asks), drained without decoding; store series and chunks = what they returned
index cache = bytes in the store's index cache afterwards; index reads = index range reads from the bucket
  during all of this query's runs (vigil_store_index_range_reads_total)
RSS after = after those runs; peak RSS = VmHWM of that store process, which served only this query
`, benchkit.Median(syncs).Round(time.Millisecond))
}

// poolCheck runs o.poolQuery over the whole range with each --chunk-pool-size of
// --pool-sizes and reports whether it succeeded or failed with ResourceExhausted.
func poolCheck(ctx context.Context, s *stack, rp benchkit.RangeParams, o options) error {
	fmt.Printf("\nchunk-pool check: %s over the whole range, partial_response=false\n", o.poolQuery)
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "--chunk-pool-size\tresult\ttime\tseries\tpool in use (max seen)\tstore RSS after\tstore peak RSS\t")
	var notes []string
	for _, size := range strings.Split(o.poolSizes, ",") {
		size = strings.TrimSpace(size)
		if _, err := s.restartStore(ctx, "--chunk-pool-size="+size); err != nil {
			return err
		}
		poll, stopPoll := context.WithCancel(ctx)
		inUse := make(chan float64, 1)
		go func() { inUse <- s.maxMetric(poll, "vigil_store_chunk_pool_bytes_in_use") }()
		res, took, err := s.query(ctx, rp, o.poolQuery)
		stopPoll()
		maxInUse := <-inUse
		outcome := "ok"
		if err != nil {
			outcome = "error"
			if strings.Contains(err.Error(), "ResourceExhausted") || strings.Contains(err.Error(), "chunk pool exhausted") {
				outcome = "ResourceExhausted"
			}
			if he, ok := err.(*benchkit.HTTPError); ok {
				outcome = fmt.Sprintf("%s (HTTP %d)", outcome, he.StatusCode)
			}
			notes = append(notes, fmt.Sprintf("  %s: %v", size, err))
		}
		m := s.store.Mem()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t\n", size, outcome, benchkit.FmtDur(took), len(res),
			mibBytes(maxInUse), mib(m.RSS), mib(m.HWM))
	}
	tw.Flush()
	fmt.Println("(pool in use = the largest vigil_store_chunk_pool_bytes_in_use seen, polled every 50ms; peak RSS = VmHWM of that store process)")
	for _, n := range notes {
		fmt.Println(n)
	}
	return nil
}
