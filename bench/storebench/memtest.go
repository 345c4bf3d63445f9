package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/bench/internal/benchkit"
)

// memQuery is a query of the memory mode with its own range.
type memQuery struct {
	name, expr string
	rp         benchkit.RangeParams
	allOnly    bool // only against the bucket with every block
}

// memRow is one store's numbers in the memory mode.
type memRow struct {
	bucket string
	sync   syncInfo
	disk   int64
	q      []memQueryRow
}

type memQueryRow struct {
	q          memQuery
	series     int
	cold, warm time.Duration
	after      benchkit.Mem
	heap       float64
}

// runBlocksTest syncs a bucket with the newest --few-blocks blocks and one with every
// block of the small data set, runs the same queries over data both hold, and compares
// the store's memory.
func runBlocksTest(ctx context.Context, e *env) error {
	o := e.o
	m, err := ensureSmallData(ctx, o)
	if err != nil {
		return err
	}
	blocks, err := localBlocks(o.smallData, m.Replicas)
	if err != nil {
		return err
	}
	if len(blocks) < o.fewBlocks {
		return fmt.Errorf("the data set has %d blocks, fewer than --few-blocks %d", len(blocks), o.fewBlocks)
	}
	few := blocks[len(blocks)-o.fewBlocks:] // sorted by min time: the newest
	step := func(w time.Duration) time.Duration {
		return max((w / time.Duration(o.points)).Truncate(time.Second), time.Duration(m.IntervalMS)*time.Millisecond)
	}
	rng := func(from, to int64) benchkit.RangeParams {
		return benchkit.RangeParams{Start: time.UnixMilli(from), End: time.UnixMilli(to),
			Step: step(time.Duration(to-from) * time.Millisecond)}
	}
	sumRate := `sum(rate(http_requests_total[5m]))`
	twoH := (2 * time.Hour).Milliseconds()
	qs := []memQuery{
		{name: "sum_rate last 2h", expr: sumRate, rp: rng(m.EndMS-twoH, m.EndMS)},
		{name: "sum_rate few-blocks window", expr: sumRate, rp: rng(few[0].meta.MinTime, m.EndMS)},
		{name: "raw gauges few-blocks window", expr: `bench_gauge{shard="0"}`, rp: rng(few[0].meta.MinTime, m.EndMS)},
		{name: "sum_rate whole range", expr: sumRate, rp: rng(m.StartMS, m.EndMS), allOnly: true},
	}
	fmt.Printf("data: %d series × %gh × %d replicas = %d blocks; small bucket: the newest %d (%s .. %s)\n\n",
		m.Series, m.Hours, len(m.Replicas), len(blocks), len(few),
		time.UnixMilli(few[0].meta.MinTime).UTC().Format(time.RFC3339), time.UnixMilli(m.EndMS).UTC().Format(time.RFC3339))

	var rows []memRow
	for _, c := range []struct {
		name   string
		blocks []localBlock
	}{{o.bucket + "-few", few}, {o.bucket + "-all", blocks}} {
		cfg, err := prepareBucket(ctx, e, c.name, c.blocks)
		if err != nil {
			return err
		}
		row, err := memCase(ctx, e, c.name, cfg, len(m.Replicas), qs, len(c.blocks) == len(blocks))
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		rows = append(rows, row)
	}
	printMemRows(rows)
	return nil
}

// memCase starts a fresh store and querier on one bucket and runs the queries.
func memCase(ctx context.Context, e *env, name, cfg string, labelSets int, qs []memQuery, all bool) (memRow, error) {
	row := memRow{bucket: name}
	dataDir := filepath.Join(e.work, name+"-data")
	s, err := e.newStack(cfg, dataDir, labelSets, "--index-cache-size="+e.o.indexCache, "--chunk-pool-size="+e.o.chunkPool)
	if err != nil {
		return row, err
	}
	defer s.stop()
	if row.sync, err = s.startStore(ctx); err != nil {
		return row, err
	}
	row.disk = diskUsage(dataDir)
	if err := s.startQuerier(ctx); err != nil {
		return row, err
	}
	for _, q := range qs {
		if q.allOnly && !all {
			continue
		}
		r := memQueryRow{q: q}
		res, took, err := s.query(ctx, q.rp, q.expr)
		if err != nil {
			return row, fmt.Errorf("%s: %w", q.name, err)
		}
		r.series, r.cold = len(res), took
		var times []time.Duration
		for range 3 {
			if _, took, err = s.query(ctx, q.rp, q.expr); err != nil {
				return row, fmt.Errorf("%s: %w", q.name, err)
			}
			times = append(times, took)
		}
		r.warm, r.after = benchkit.Median(times), s.store.Mem()
		met, err := s.storeMetrics(ctx)
		if err != nil {
			return row, err
		}
		r.heap = met["go_memstats_heap_inuse_bytes"]
		row.q = append(row.q, r)
	}
	return row, nil
}

func printMemRows(rows []memRow) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "bucket\tblocks\tsync\tRSS after sync\tanon\tfile\tGo heap\tindex cache\tindex-headers on disk\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.bucket, r.sync.blocks, r.sync.took.Round(time.Millisecond),
			mib(r.sync.mem.RSS), mib(r.sync.mem.Anon), mib(r.sync.mem.File), mibBytes(r.sync.heap),
			mibBytes(r.sync.metrics["vigil_store_index_cache_bytes"]), mibBytes(float64(r.disk)))
	}
	tw.Flush()
	fmt.Println()
	tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "query (after each other, same store)\tbucket\tseries\tcold\twarm p50\tRSS after\tpeak RSS\tGo heap\t")
	for i := range rows[0].q {
		for _, r := range rows {
			for _, q := range r.q {
				if q.q.name == rows[0].q[i].q.name {
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", q.q.name, r.bucket, q.series, benchkit.FmtDur(q.cold),
						benchkit.FmtDur(q.warm), mib(q.after.RSS), mib(q.after.HWM), mibBytes(q.heap))
				}
			}
		}
	}
	for _, r := range rows {
		for _, q := range r.q[len(rows[0].q):] {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", q.q.name, r.bucket, q.series, benchkit.FmtDur(q.cold),
				benchkit.FmtDur(q.warm), mib(q.after.RSS), mib(q.after.HWM), mibBytes(q.heap))
		}
	}
	tw.Flush()
	if len(rows) == 2 && rows[1].sync.blocks > rows[0].sync.blocks {
		a, b := rows[0], rows[1]
		n := float64(b.sync.blocks - a.sync.blocks)
		perBlock := func(x, y int64) string { return fmt.Sprintf("%.0f KiB", float64(y-x)/n) }
		ic := "vigil_store_index_cache_bytes"
		fmt.Printf("\nper extra synced block: RSS after sync %s (anon %s, file %s), Go heap %.0f KiB, index cache %.0f KiB, index-header disk %.0f KiB\n",
			perBlock(a.sync.mem.RSS, b.sync.mem.RSS), perBlock(a.sync.mem.Anon, b.sync.mem.Anon), perBlock(a.sync.mem.File, b.sync.mem.File),
			(b.sync.heap-a.sync.heap)/1024/n, (b.sync.metrics[ic]-a.sync.metrics[ic])/1024/n, float64(b.disk-a.disk)/1024/n)
		la, lb := a.q[len(a.q)-1].after, b.q[len(a.q)-1].after
		fmt.Printf("after the same queries: RSS %s with %d blocks vs %s with %d blocks (peak %s vs %s)\n",
			mib(la.RSS), a.sync.blocks, mib(lb.RSS), b.sync.blocks, mib(la.HWM), mib(lb.HWM))
	}
}

// ensureSmallData returns the manifest of the --blocks-test data set, generating it with
// bench/gen when it is missing or has other dimensions.
func ensureSmallData(ctx context.Context, o options) (benchkit.Manifest, error) {
	m, err := benchkit.ReadManifest(o.smallData)
	if err == nil && m.Series == o.smallSeries && m.Hours == o.smallHours {
		return m, nil
	}
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return m, fmt.Errorf("generating %s needs the vigil module: run storebench from the repository (go env GOMOD: %v)", o.smallData, err)
	}
	args := []string{"run", "./bench/gen", "--series", strconv.Itoa(o.smallSeries),
		"--hours", strconv.FormatFloat(o.smallHours, 'f', -1, 64), "--out", o.smallData, "--force"}
	fmt.Printf("generating the data set: go %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	out, err := cmd.CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if err != nil {
		return m, fmt.Errorf("bench/gen: %v\n%s", err, strings.Join(lines[max(0, len(lines)-10):], "\n"))
	}
	fmt.Println(lines[len(lines)-1])
	return benchkit.ReadManifest(o.smallData)
}
