package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
)

// gateway is one store gateway process of the --vs-thanos mode: `vigil store` or
// `thanos store`, started fresh for every round on its own data directory.
type gateway struct {
	name       string // "vigil" or "thanos"
	bin        string
	args       []string // subcommand and flags besides the addresses
	grpc, http string
	proc       *benchkit.Proc
	starts     int
}

func (g *gateway) start(ctx context.Context, work string) error {
	g.starts++
	args := append(slices.Clone(g.args), "--grpc-address="+g.grpc, "--http-address="+g.http)
	p, err := benchkit.StartProc(work, fmt.Sprintf("%s-store-%d", g.name, g.starts), g.bin, args...)
	if err != nil {
		return err
	}
	g.proc = p
	return benchkit.WaitFor(ctx, g.name+" store ready", 15*time.Minute, p, func() error {
		return benchkit.HTTPOK(ctx, "http://"+g.http+"/-/ready")
	})
}

func (g *gateway) stop() {
	if g.proc != nil {
		g.proc.Stop(30 * time.Second)
	}
}

// metrics reads the gateway's metrics (both expose Go's runtime metrics), keyed by name
// with labels as exposed.
func (g *gateway) metrics(ctx context.Context) (map[string]float64, error) {
	body, _, err := benchkit.Get(ctx, "http://"+g.http, "/metrics", nil)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, nil
}

// vsQuery is one query's figures for one gateway in one round.
type vsQuery struct {
	q          benchkit.Query
	cold, warm time.Duration // direct Series calls
	series     int
	chunkBytes int64
	peak       benchkit.Mem // HWM: the peak since just before the query's first call
}

// vsRound is one gateway's figures in one round.
type vsRound struct {
	gw          string
	round       int
	syncTook    time.Duration
	sync        benchkit.Mem
	syncHeap    float64
	q           []vsQuery
	after       benchkit.Mem // right after the whole set
	afterHeap   float64      // go_memstats_heap_inuse_bytes
	idle        benchkit.Mem // --vs-idle later, nothing else done
	idleHeap    float64
	afterGC     benchkit.Mem // after GET /debug/pprof/heap?gc=1 and --vs-settle
	afterGCHeap float64
	cache       float64      // index cache bytes (the gateway's own metric) after the set
	fresh       benchkit.Mem // a fresh process after one call of the heaviest query
	freshQuery  string
}

// runVsThanos runs the query set against `vigil store` and `thanos store` over the same
// bucket, in alternating rounds, and compares latency and memory.
func runVsThanos(ctx context.Context, e *env) error {
	o := e.o
	if _, err := os.Stat(o.thanos); err != nil {
		return fmt.Errorf("--thanos: %w (bench/build-thanos.sh builds it)", err)
	}
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
	window := time.Duration(m.EndMS-m.StartMS) * time.Millisecond
	step := max((window / time.Duration(o.points)).Truncate(time.Second), time.Duration(m.IntervalMS)*time.Millisecond)
	rp := benchkit.RangeParams{Start: time.UnixMilli(m.StartMS), End: time.UnixMilli(m.EndMS), Step: step}
	var qs []benchkit.Query
	for _, q := range benchkit.QuerySet(m.SingleSeries) {
		if o.only.MatchString(q.Name) {
			qs = append(qs, q)
		}
	}
	common := []string{"--objstore.config-file=" + cfg, "--index-cache-size=" + o.indexCache,
		"--chunk-pool-size=" + o.chunkPool, "--sync-block-duration=1h"}
	var gws []*gateway
	for _, c := range []struct{ name, bin string }{{"vigil", o.vigil}, {"thanos", o.thanos}} {
		grpc, err1 := benchkit.FreeAddr()
		http, err2 := benchkit.FreeAddr()
		if err1 != nil || err2 != nil {
			return fmt.Errorf("free port: %v %v", err1, err2)
		}
		args := append([]string{"store", "--data-dir=" + filepath.Join(e.work, c.name+"-data")}, common...)
		if c.name == "vigil" {
			args = append(args, o.vigilArgs...)
		} else {
			args = append(args, o.thanosArgs...)
		}
		gws = append(gws, &gateway{name: c.name, bin: c.bin, args: args, grpc: grpc, http: http})
	}
	fmt.Printf("data: %d series × %s × %d replicas (%d blocks); %d queries sent straight to each store's Series API\n",
		m.Series, window, len(m.Replicas), len(blocks), len(qs))
	fmt.Printf("both stores: --index-cache-size=%s --chunk-pool-size=%s; vigil extra %q, thanos extra %q; %d rounds, interleaved\n\n",
		o.indexCache, o.chunkPool, o.vigilArgs, o.thanosArgs, o.rounds)
	var rounds []vsRound
	for round := 1; round <= o.rounds; round++ {
		for _, g := range gws {
			r, err := vsRun(ctx, e, g, round, rp, qs)
			g.stop()
			if err != nil {
				fmt.Fprintf(os.Stderr, "--- %s ---\n%s\n", g.proc.Log, g.proc.Tail(20))
				return fmt.Errorf("%s round %d: %w", g.name, round, err)
			}
			rounds = append(rounds, r)
			fmt.Printf("round %d %-6s: RSS after the set %s (Go heap in use %s), %s later %s, after GC %s (heap %s), highest request peak %s, one %s on a fresh process: peak %s\n",
				round, g.name, mib(r.after.RSS), mibBytes(r.afterHeap), o.vsIdle, mib(r.idle.RSS), mib(r.afterGC.RSS), mibBytes(r.afterGCHeap), mib(maxPeak(r).HWM), r.freshQuery, mib(r.fresh.HWM))
		}
	}
	printVs(rounds, qs, o)
	return nil
}

// vsRun starts g fresh and runs the set: each query once cold and --runs times warm, with
// the process's peak RSS reset before each query; then reads memory after the set, forces a
// GC through pprof, waits --vs-settle and reads it again.
func vsRun(ctx context.Context, e *env, g *gateway, round int, rp benchkit.RangeParams, qs []benchkit.Query) (vsRound, error) {
	r := vsRound{gw: g.name, round: round}
	began := time.Now()
	if err := g.start(ctx, e.work); err != nil {
		return r, err
	}
	r.syncTook, r.sync = time.Since(began), g.proc.Mem()
	met, err := g.metrics(ctx)
	if err != nil {
		return r, err
	}
	r.syncHeap = met["go_memstats_heap_inuse_bytes"]
	for _, q := range qs {
		vq := vsQuery{q: q}
		if !g.proc.ResetPeak() {
			return r, fmt.Errorf("cannot reset the peak RSS of %s (/proc/PID/clear_refs)", g.name)
		}
		dc, err := directSeries(ctx, g.grpc, rp, q.Expr)
		if err != nil {
			return r, fmt.Errorf("%s: %w", q.Name, err)
		}
		vq.cold, vq.series, vq.chunkBytes = dc.took, dc.series, dc.chunkBytes
		var times []time.Duration
		for range e.o.runs {
			dc, err := directSeries(ctx, g.grpc, rp, q.Expr)
			if err != nil {
				return r, fmt.Errorf("%s: %w", q.Name, err)
			}
			times = append(times, dc.took)
		}
		vq.warm, vq.peak = benchkit.Median(times), g.proc.Mem()
		r.q = append(r.q, vq)
	}
	r.after = g.proc.Mem()
	if met, err = g.metrics(ctx); err != nil {
		return r, err
	}
	r.afterHeap = met["go_memstats_heap_inuse_bytes"]
	r.cache = cacheBytes(met)
	select {
	case <-ctx.Done():
		return r, ctx.Err()
	case <-time.After(e.o.vsIdle):
	}
	r.idle = g.proc.Mem()
	if met, err = g.metrics(ctx); err != nil {
		return r, err
	}
	r.idleHeap = met["go_memstats_heap_inuse_bytes"]
	if e.o.profileDir != "" {
		if err := os.MkdirAll(e.o.profileDir, 0o755); err != nil {
			return r, err
		}
		// The heaviest query once more, with a heap profile taken while it runs.
		heavy := slices.MaxFunc(r.q, func(a, b vsQuery) int { return cmp.Compare(a.chunkBytes, b.chunkBytes) })
		done := make(chan error, 1)
		go func() {
			_, err := directSeries(ctx, g.grpc, rp, heavy.q.Expr)
			done <- err
		}()
		time.Sleep(heavy.warm / 2)
		if err := fetch(ctx, "http://"+g.http+"/debug/pprof/heap?gc=1",
			filepath.Join(e.o.profileDir, fmt.Sprintf("%s-heap-during-%d.pprof", g.name, round))); err != nil {
			return r, err
		}
		if err := <-done; err != nil {
			return r, err
		}
	}
	// gc=1 runs a garbage collection before the profile; the profile is the one after the set.
	heapFile := filepath.Join(e.work, fmt.Sprintf("%s-heap-after-%d.pprof", g.name, round))
	if e.o.profileDir != "" {
		heapFile = filepath.Join(e.o.profileDir, fmt.Sprintf("%s-heap-after-%d.pprof", g.name, round))
	}
	if err := fetch(ctx, "http://"+g.http+"/debug/pprof/heap?gc=1", heapFile); err != nil {
		return r, err
	}
	select {
	case <-ctx.Done():
		return r, ctx.Err()
	case <-time.After(e.o.vsSettle):
	}
	r.afterGC = g.proc.Mem()
	if met, err = g.metrics(ctx); err != nil {
		return r, err
	}
	r.afterGCHeap = met["go_memstats_heap_inuse_bytes"]
	// The peak of one heavy request alone: a fresh process, one call.
	heavy := slices.MaxFunc(r.q, func(a, b vsQuery) int { return cmp.Compare(a.chunkBytes, b.chunkBytes) })
	g.stop()
	if err := g.start(ctx, e.work); err != nil {
		return r, err
	}
	if _, err := directSeries(ctx, g.grpc, rp, heavy.q.Expr); err != nil {
		return r, err
	}
	r.fresh, r.freshQuery = g.proc.Mem(), heavy.q.Name
	return r, nil
}

// cacheBytes is the index cache's size in bytes, by the gateway's own metric.
func cacheBytes(met map[string]float64) float64 {
	if v, ok := met["vigil_store_index_cache_bytes"]; ok {
		return v
	}
	var n float64
	for k, v := range met { // thanos: one series per item type
		if strings.HasPrefix(k, "thanos_store_index_cache_total_size_bytes") {
			n += v
		}
	}
	return n
}

func maxPeak(r vsRound) benchkit.Mem {
	var p benchkit.Mem
	for _, q := range r.q {
		if q.peak.HWM > p.HWM {
			p = q.peak
		}
	}
	return p
}

// printVs prints, per query and gateway, the medians over the rounds, then the memory after
// the set round by round.
func printVs(rounds []vsRound, qs []benchkit.Query, o options) {
	byGw := map[string][]vsRound{}
	for _, r := range rounds {
		byGw[r.gw] = append(byGw[r.gw], r)
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "query\tstore\tseries\tchunk bytes\tcold\twarm p50\tpeak RSS (one query)\tvigil/thanos warm\tvigil/thanos peak\t")
	for i, q := range qs {
		med := map[string]vsQuery{}
		for _, gw := range []string{"vigil", "thanos"} {
			var cold, warm []time.Duration
			var peaks []int64
			var last vsQuery
			for _, r := range byGw[gw] {
				last = r.q[i]
				cold, warm, peaks = append(cold, r.q[i].cold), append(warm, r.q[i].warm), append(peaks, r.q[i].peak.HWM)
			}
			slices.Sort(peaks)
			last.cold, last.warm, last.peak.HWM = benchkit.Median(cold), benchkit.Median(warm), peaks[len(peaks)/2]
			med[gw] = last
		}
		for _, gw := range []string{"vigil", "thanos"} {
			v := med[gw]
			ratio := func(a, b float64) string {
				if gw != "vigil" || b == 0 {
					return ""
				}
				return fmt.Sprintf("%.2f", a/b)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", q.Name, gw, v.series, mibBytes(float64(v.chunkBytes)),
				benchkit.FmtDur(v.cold), benchkit.FmtDur(v.warm), mib(v.peak.HWM),
				ratio(float64(v.warm), float64(med["thanos"].warm)), ratio(float64(v.peak.HWM), float64(med["thanos"].peak.HWM)))
		}
	}
	tw.Flush()
	fmt.Printf("cold = first call after the store started (in-memory caches empty); warm p50 = median of %d more; medians over the rounds\n", o.runs)
	fmt.Println("peak RSS (one query) = VmHWM after resetting it just before the query's first call")
	fmt.Println()
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "round\tstore\tsync\tRSS after sync\tGo heap\tRSS after set\tGo heap in use\tindex cache\tRSS idle\tGo heap idle\tRSS after GC\tGo heap after GC\thighest peak\tpeak, one call, fresh\t")
	for _, r := range rounds {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.round, r.gw, r.syncTook.Round(time.Millisecond),
			mib(r.sync.RSS), mibBytes(r.syncHeap), mib(r.after.RSS), mibBytes(r.afterHeap), mibBytes(r.cache),
			mib(r.idle.RSS), mibBytes(r.idleHeap), mib(r.afterGC.RSS), mibBytes(r.afterGCHeap), mib(maxPeak(r).HWM), mib(r.fresh.HWM))
	}
	tw.Flush()
	fmt.Printf("RSS after set = right after the last call; idle = %s later, nothing else done; after GC = then GET /debug/pprof/heap?gc=1 (a forced collection) and %s of rest\n", o.vsIdle, o.vsSettle)
	medRSS := func(gw string, f func(vsRound) int64) int64 {
		var xs []int64
		for _, r := range byGw[gw] {
			xs = append(xs, f(r))
		}
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	after := func(r vsRound) int64 { return r.after.RSS }
	idle := func(r vsRound) int64 { return r.idle.RSS }
	afterGC := func(r vsRound) int64 { return r.afterGC.RSS }
	peak := func(r vsRound) int64 { return maxPeak(r).HWM }
	fresh := func(r vsRound) int64 { return r.fresh.HWM }
	v, t := medRSS("vigil", after), medRSS("thanos", after)
	vi, ti := medRSS("vigil", idle), medRSS("thanos", idle)
	fmt.Printf("\nmedian RSS right after the set: vigil %s, thanos %s (%.2f×); %s later: vigil %s, thanos %s (%.2f×)\n", mib(v), mib(t), float64(v)/float64(t),
		o.vsIdle, mib(vi), mib(ti), float64(vi)/float64(ti))
	fmt.Printf("after GC: vigil %s, thanos %s (%.2f×); highest one-query peak: vigil %s, thanos %s (%.2f×)\n",
		mib(medRSS("vigil", afterGC)), mib(medRSS("thanos", afterGC)),
		float64(medRSS("vigil", afterGC))/float64(medRSS("thanos", afterGC)),
		mib(medRSS("vigil", peak)), mib(medRSS("thanos", peak)), float64(medRSS("vigil", peak))/float64(medRSS("thanos", peak)))
	fmt.Printf("peak RSS of one %s call on a fresh process: vigil %s, thanos %s (%.2f×)\n", rounds[0].freshQuery,
		mib(medRSS("vigil", fresh)), mib(medRSS("thanos", fresh)), float64(medRSS("vigil", fresh))/float64(medRSS("thanos", fresh)))
}
