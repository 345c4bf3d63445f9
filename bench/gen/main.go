// Command gen writes a synthetic benchmark data set for Vigil: N series × H hours at a
// scrape interval for two Prometheus replicas (r0 and r1), as 2h-aligned TSDB blocks that
// a real Prometheus loads at startup.
//
// The series are realistic in shape: http_requests_total counters (with a diurnal rate
// and occasional restarts), http_request_duration_seconds_bucket histograms (buckets as
// cumulative counters) and bench_gauge gauges, of which bench_gauge{shard="0"} selects
// 500. Both replicas sample the same underlying value functions, but each scrapes each
// target at its own offset within the interval, with jitter.
//
//	go run ./bench/gen --series 10000 --hours 24 --out /tmp/vigil-bench
//
// writes /tmp/vigil-bench/{r0,r1}/<ULID>/ and /tmp/vigil-bench/bench.json, which
// describes the data set for querybench.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// blockRange is the TSDB block duration Prometheus and the sidecar expect.
const blockRange = 2 * time.Hour

// Manifest is written as bench.json next to the replica directories; querybench reads it.
type Manifest struct {
	Series     int      `json:"series"`
	Hours      float64  `json:"hours"`
	IntervalMS int64    `json:"intervalMs"`
	StartMS    int64    `json:"startMs"` // first sample at or after
	EndMS      int64    `json:"endMs"`   // all samples before
	Replicas   []string `json:"replicas"`
	// SingleSeries is a selector matching exactly one series (per replica).
	SingleSeries string `json:"singleSeries"`
	// Gauges is the number of bench_gauge series; bench_gauge{shard="0"} matches
	// min(Gauges, 500) of them.
	Gauges  int    `json:"gauges"`
	Counter int    `json:"counters"`
	Buckets int    `json:"buckets"`
	Seed    uint64 `json:"seed"`
}

func main() {
	var (
		nSeries  = flag.Int("series", 10000, "number of series per replica")
		hours    = flag.Float64("hours", 24, "hours of data")
		interval = flag.Duration("interval", 15*time.Second, "scrape interval")
		out      = flag.String("out", "/tmp/vigil-bench", "output directory (gets r0/, r1/ and bench.json)")
		seed     = flag.Uint64("seed", 1, "random seed of the series parameters")
		endFlag  = flag.String("end", "", "end of the data (RFC 3339 or Unix seconds); default now rounded down to 2h")
		jitter   = flag.Duration("jitter", 25*time.Millisecond, "maximum per-scrape timestamp jitter (±)")
		workers  = flag.Int("workers", runtime.GOMAXPROCS(0), "blocks written concurrently")
		force    = flag.Bool("force", false, "delete existing r0/ and r1/ under --out first")
	)
	flag.Parse()
	if err := run(*nSeries, *hours, *interval, *out, *seed, *endFlag, *jitter, *workers, *force); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(nSeries int, hours float64, interval time.Duration, out string, seed uint64,
	endFlag string, jitter time.Duration, workers int, force bool) error {
	if nSeries < 10 || hours <= 0 || interval < time.Second {
		return fmt.Errorf("need --series ≥ 10, --hours > 0 and --interval ≥ 1s")
	}
	if jitter*4 > interval {
		return fmt.Errorf("--jitter must be at most a quarter of --interval")
	}
	end, err := parseEnd(endFlag)
	if err != nil {
		return err
	}
	endMS := end.UnixMilli()
	startMS := endMS - int64(hours*float64(time.Hour/time.Millisecond))
	intMS := interval.Milliseconds()
	replicas := []string{"r0", "r1"}
	for _, r := range replicas {
		dir := filepath.Join(out, r)
		if !force && !emptyDir(dir) {
			return fmt.Errorf("%s is not empty: pass --force to replace it", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}

	began := time.Now()
	ss := buildSeries(nSeries, seed, startMS)
	p := &genParams{series: ss, symbols: symbolsOf(ss), epoch: floorDiv(startMS, intMS) * intMS,
		start: startMS, end: endMS, interval: intMS, jitter: jitter.Milliseconds()}
	var jobs []blockJob
	bms := blockRange.Milliseconds()
	for ri, r := range replicas {
		for mint := floorDiv(startMS, bms) * bms; mint < endMS; mint += bms {
			jobs = append(jobs, blockJob{replica: ri, dir: filepath.Join(out, r), mint: mint, maxt: mint + bms})
		}
	}
	fmt.Printf("gen: %d series × %.1fh at %s, 2 replicas, %d blocks, %s .. %s\n", nSeries, hours, interval,
		len(jobs), time.UnixMilli(startMS).UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))

	var samples, chunks atomic.Uint64
	var mu sync.Mutex
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(max(1, workers))
	for _, job := range jobs {
		g.Go(func() error {
			st, err := writeBlock(ctx, p, job)
			if err != nil {
				return fmt.Errorf("block %s [%d,%d): %w", replicas[job.replica], job.mint, job.maxt, err)
			}
			samples.Add(st.samples)
			chunks.Add(st.chunks)
			mu.Lock()
			fmt.Printf("  %s %s %s  %d samples %d chunks\n", replicas[job.replica], st.id,
				time.UnixMilli(job.mint).UTC().Format("2006-01-02T15:04"), st.samples, st.chunks)
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	took := time.Since(began)

	m := Manifest{Series: nSeries, Hours: hours, IntervalMS: intMS, StartMS: startMS, EndMS: endMS,
		Replicas: replicas, Seed: seed}
	for _, s := range ss {
		switch s.kind {
		case kindGauge:
			m.Gauges++
		case kindCounter:
			m.Counter++
		case kindBucket:
			m.Buckets++
		}
	}
	m.SingleSeries = busiest(ss)
	b, _ := json.MarshalIndent(&m, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "bench.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	var size int64
	for _, r := range replicas {
		size += dirSize(filepath.Join(out, r))
	}
	fmt.Printf("gen: wrote %d samples in %d chunks (%.1f MiB) in %s: %.1f M samples/s, peak RSS %s\n",
		samples.Load(), chunks.Load(), float64(size)/(1<<20), took.Round(time.Millisecond),
		float64(samples.Load())/took.Seconds()/1e6, peakRSS())
	return nil
}

// busiest returns a selector of the counter with the highest rate: its rate() is the
// least affected by the counters' integer steps, so replicas agree on it within 0.1%.
func busiest(ss []series) string {
	var best *series
	for i := range ss {
		if ss[i].kind == kindCounter && (best == nil || ss[i].rate > best.rate) {
			best = &ss[i]
		}
	}
	l := best.lset
	return fmt.Sprintf(`http_requests_total{instance=%q,handler=%q,code=%q}`, l.Get("instance"), l.Get("handler"), l.Get("code"))
}

// parseEnd parses --end; empty means now rounded down to the block range.
func parseEnd(s string) (time.Time, error) {
	if s == "" {
		return time.Now().Truncate(blockRange), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var sec int64
	if _, err := fmt.Sscanf(s, "%d", &sec); err == nil {
		return time.Unix(sec, 0), nil
	}
	return time.Time{}, fmt.Errorf("--end %q: want RFC 3339 or Unix seconds", s)
}

func emptyDir(dir string) bool {
	ents, err := os.ReadDir(dir)
	return err != nil || len(ents) == 0
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// peakRSS returns this process's VmHWM from /proc/self/status, or "?".
func peakRSS() string {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
