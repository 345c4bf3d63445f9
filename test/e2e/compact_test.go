package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/test/e2e/e2eutil"
)

// compactQueries is the fixed query set compared before and after compaction, all at raw
// resolution (max_source_resolution=0s) and with dedup.
//
// Tolerance: the querier deduplicates r0 and r1 at query time, the compactor at
// compaction time, both with the gap-fill rule (follow one replica, fill its gaps from the
// other). With no gaps in the data both follow the same replica, so the aggregates must be
// identical; relTo allows a relative difference of 1e-9 for float summation order only
// (PromQL sums series in the order the store returns them, which need not be the same
// for 2×26 source blocks and for one compacted block).
//
// Raw selectors (raw: true) are compared with diffRaw: every sample returned before must
// be returned after with the same value, and no sample may be added. Offline dedup merges
// each overlapping pair of 2h replica blocks on its own; where later blocks follow, it does
// not treat a replica's last sample in the block as the start of a gap (the querier sees
// the replica continue in the next block), so it takes exactly the samples the querier's
// dedup takes.
var compactQueries = []compactQuery{
	{name: "rate", expr: `sum(rate(e2e_requests_total[5m]))`, relTo: 1e-9},
	{name: "increase-by", expr: `sum by (instance) (increase(e2e_requests_total[1h]))`, relTo: 1e-9},
	{name: "max_over_time", expr: `max_over_time(e2e_gauge[30m])`, relTo: 1e-9},
	{name: "count", expr: `count(e2e_gauge) + count(e2e_requests_total)`, relTo: 0},
	{name: "raw-gauge", expr: `e2e_gauge{instance=~"i1|i7"}[52h]`, raw: true, relTo: 0},
	{name: "raw-counter", expr: `e2e_requests_total{instance="i3"}[52h]`, raw: true, relTo: 0},
}

// compactWindow returns the data range of the test: 26 2h blocks per replica starting at
// a 48h boundary (so the first 24 fill a complete 2d compaction window and the last two
// make it "not the newest"), ending at least a day before now.
func compactWindow() (start, end int64) {
	const twoDays = int64(48 * time.Hour / time.Millisecond)
	now := time.Now().UnixMilli()
	start = (now - 4*twoDays) / twoDays * twoDays
	return start, start + 26*compactBlockMS
}

// startStoreQuery starts a vigil store on the objstore config and a vigil query over it
// deduplicating on replica, and waits until the querier sees the store.
func startStoreQuery(t *testing.T, cfg string) (st, q *e2eutil.Vigil) {
	t.Helper()
	st = e2eutil.StartVigil(t, "store", "--objstore.config-file="+cfg,
		"--data-dir="+filepath.Join(t.TempDir(), "store"), "--sync-block-duration=1h")
	st.MustWaitReady(t)
	q = e2eutil.StartVigil(t, "query", "--endpoint="+st.GRPCAddr, "--query.replica-label=replica")
	q.MustWaitReady(t)
	e2eutil.Poll(t, 20*time.Second, 200*time.Millisecond, func() error {
		return storesHealthy(q.HTTPURL, "store", st.GRPCAddr)
	})
	return st, q
}

// runQueries runs the fixed query set against the querier.
func runQueries(t *testing.T, base string, start, end int64) map[string]queryResult {
	t.Helper()
	out := map[string]queryResult{}
	for _, q := range compactQueries {
		out[q.name] = runCompactQuery(t, base, q, time.UnixMilli(start), time.UnixMilli(end))
	}
	return out
}

// checkQueries compares the fixed query set's answers with want (see compactQueries for
// the tolerances); start is the first sample of r0.
func checkQueries(t *testing.T, what string, want, got map[string]queryResult, start int64) {
	t.Helper()
	for _, q := range compactQueries {
		if q.raw {
			d, extras := diffRaw(want[q.name], got[q.name], start, 0)
			if d != "" {
				t.Errorf("%s: %s (%s) differs from before compaction:\n%s", what, q.name, q.expr, d)
			}
			if extras > 0 {
				t.Errorf("%s: %s: %d samples added by offline dedup", what, q.name, extras)
			}
			continue
		}
		if d := diffResults(want[q.name], got[q.name], q.relTo); d != "" {
			t.Errorf("%s: %s (%s) differs from before compaction:\n%s", what, q.name, q.expr, d)
		}
	}
}

// compactArgs are the flags of one compaction pass over cfg.
func compactArgs(t *testing.T, cfg string) []string {
	return []string{"compact",
		"--objstore.config-file=" + cfg,
		"--data-dir=" + filepath.Join(t.TempDir(), "compact"),
		"--consistency-delay=0s",
		"--delete-delay=0s",
		"--deduplication.replica-label=replica",
	}
}

// runCompact runs one compaction pass to completion and fails the test unless it exits 0.
func runCompact(t *testing.T, cfg string) time.Duration {
	t.Helper()
	began := time.Now()
	code, out, err := e2eutil.ProcessExit(t, 90*time.Second, e2eutil.ProcessSpec{Name: "vigil-compact",
		Bin: e2eutil.VigilBin(t), Args: append(compactArgs(t, cfg), "--http-address="+e2eutil.FreeAddr(t))})
	took := time.Since(began)
	if err != nil || code != 0 {
		t.Fatalf("vigil compact: exit %d, %v; output:\n%s", code, err, tailLines(out, 60))
	}
	return took
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// checkCompacted checks the bucket after complete compaction: the raw blocks are
// compacted (level > 1), deduplicated into one group whose labels lack replica, they do
// not overlap, and 5m downsampled blocks exist.
func checkCompacted(t *testing.T, what string, bs []bucketBlock) {
	t.Helper()
	var compacted, downsampled int
	groups := map[string]bool{}
	for _, b := range bs {
		if !b.visible() {
			continue
		}
		if _, ok := b.meta.Thanos.Labels["replica"]; ok {
			t.Errorf("%s: block %s still has the replica label: %v", what, b.id, b.meta.Thanos.Labels)
		}
		if b.meta.Thanos.Labels["cluster"] != "e2e" || len(b.meta.Thanos.Labels) != 1 {
			t.Errorf("%s: block %s has labels %v, want {cluster=e2e}", what, b.id, b.meta.Thanos.Labels)
		}
		groups[b.groupKey()] = true
		switch b.meta.Thanos.Downsample.Resolution {
		case block.ResolutionRaw:
			if b.meta.Compaction.Level > 1 {
				compacted++
			}
		case block.Resolution5m:
			downsampled++
		}
	}
	if compacted == 0 {
		t.Errorf("%s: no visible raw block of compaction level > 1", what)
	}
	if downsampled == 0 {
		t.Errorf("%s: no visible 5m (resolution 300000) block", what)
	}
	if len(groups) > 2 { // raw and 5m of {cluster="e2e"}
		t.Errorf("%s: %d groups %v, want raw and 5m of {cluster=\"e2e\"} only", what, len(groups), groups)
	}
	for _, o := range overlaps(bs) {
		t.Errorf("%s: %s", what, o)
	}
	if t.Failed() {
		t.Logf("%s: bucket:\n%s", what, describeBlocks(bs))
	}
}

// TestCompactDedupDownsample: a MinIO bucket holds an HA pair (replica r0 and r1) of 26
// 2h blocks each (52h, 50 series at 15s). The fixed query set is answered by vigil query
// over vigil store with dedup at raw resolution; then one `vigil compact` pass with
// replica dedup must exit 0 and leave compacted (level > 1), deduplicated (one label set
// without replica) and 5m-downsampled blocks, with the raw bytes of the bucket roughly
// halved; a fresh vigil store over the compacted bucket must answer the same. Then the
// compactor is SIGKILLed at random points on fresh copies of the data and rerun: every
// answer must stay the same and no two visible blocks of a group may overlap.
func TestCompactDedupDownsample(t *testing.T) {
	began := time.Now()
	m := e2eutil.StartMinIO(t)
	start, end := compactWindow()
	dirs, nsamples := writeCompactBlocks(t, t.TempDir(), start, end)
	cfg := uploadCompactBlocks(t, m, "main", dirs)
	blocksBefore := listBucketBlocks(t, m, "main")
	bytesBefore := rawBytes(blocksBefore)
	t.Logf("bucket: %d blocks, %d samples, %d bytes (setup %s)", len(blocksBefore), nsamples, bytesBefore, time.Since(began).Round(time.Millisecond))

	st, q := startStoreQuery(t, cfg)
	// Query the whole data range, from its first sample to its last.
	qStart, qEnd := start, end-1
	before := runQueries(t, q.HTTPURL, qStart, qEnd)
	for _, cq := range compactQueries {
		if len(before[cq.name]) == 0 {
			t.Fatalf("before compaction: %s (%s) returned no series", cq.name, cq.expr)
		}
	}
	// Sanity: the querier deduplicated (the raw selector returns one series per instance
	// without replica, with r0's or r1's sample count, not both).
	for k, pts := range before["raw-counter"] {
		if strings.Contains(k, "replica") || len(pts) > int((end-start)/compactStep)+1 {
			t.Fatalf("before compaction: raw-counter series %s with %d samples: dedup did not happen", k, len(pts))
		}
	}
	if err := q.Stop(e2eutil.DefaultStopTimeout); err != nil {
		t.Fatal(err)
	}
	if err := st.Stop(e2eutil.DefaultStopTimeout); err != nil {
		t.Fatal(err)
	}

	took := runCompact(t, cfg)
	t.Logf("vigil compact: %s", took.Round(time.Millisecond))
	blocksAfter := listBucketBlocks(t, m, "main")
	checkCompacted(t, "after compaction", blocksAfter)
	bytesAfter := rawBytes(blocksAfter)
	ratio := float64(bytesAfter) / float64(bytesBefore)
	t.Logf("raw bytes: before %d, after %d (%.3f×)", bytesBefore, bytesAfter, ratio)
	// Vertical dedup keeps each sample of the replica pair once: about half the bytes
	// (index and chunk overheads differ a little).
	if ratio > 0.65 {
		t.Errorf("raw bytes after compaction %d = %.3f× of before %d, want <= 0.65× (replicas stored once)", bytesAfter, ratio, bytesBefore)
	}
	for _, b := range blocksAfter {
		if b.meta == nil {
			t.Errorf("after compaction: block %s has no meta.json (partial upload left behind)", b.id)
		} else if b.marked {
			t.Errorf("after compaction: block %s still marked for deletion though --delete-delay=0s", b.id)
		}
	}

	// A new store (a new sync) over the compacted bucket.
	st2, q2 := startStoreQuery(t, cfg)
	after := runQueries(t, q2.HTTPURL, qStart, qEnd)
	checkQueries(t, "after compaction", before, after, start)
	checkDownsampled(t, q2.HTTPURL, start)
	if err := q2.Stop(e2eutil.DefaultStopTimeout); err != nil {
		t.Fatal(err)
	}
	if err := st2.Stop(e2eutil.DefaultStopTimeout); err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		return
	}

	// Crash safety: SIGKILL the compactor after a random delay within the duration of a
	// full pass, then run it to completion, on a fresh copy of the data each time.
	seed := uint64(time.Now().UnixNano())
	t.Logf("crash loop seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 5))
	for i := range 4 {
		prefix := fmt.Sprintf("crash%d", i)
		ccfg := uploadCompactBlocks(t, m, prefix, dirs)
		delay := time.Duration(rng.Int64N(int64(took)))
		c := e2eutil.StartVigilWith(t, e2eutil.VigilOptions{Args: compactArgs(t, ccfg), NoGRPC: true})
		time.Sleep(delay)
		exited := c.Exited()
		if err := c.Kill(); err != nil {
			t.Fatal(err)
		}
		mid := listBucketBlocks(t, m, prefix)
		visible := 0
		for _, b := range mid {
			if b.visible() {
				visible++
			}
		}
		t.Logf("%s: killed after %s (exited before: %v): %d block dirs, %d visible", prefix, delay.Round(time.Millisecond), exited, len(mid), visible)

		runCompact(t, ccfg)
		bs := listBucketBlocks(t, m, prefix)
		checkCompacted(t, prefix+" after kill and rerun", bs)
		var partial, marked int
		for _, b := range bs {
			if b.meta == nil {
				partial++ // an upload the kill interrupted: invisible, cleaned after 48h
			} else if b.marked {
				marked++
			}
		}
		t.Logf("%s: after rerun %d block dirs: %d partial uploads, %d marked for deletion", prefix, len(bs), partial, marked)
		stc, qc := startStoreQuery(t, ccfg)
		checkQueries(t, prefix+" after kill and rerun", before, runQueries(t, qc.HTTPURL, qStart, qEnd), start)
		if err := qc.Stop(e2eutil.DefaultStopTimeout); err != nil {
			t.Fatal(err)
		}
		if err := stc.Stop(e2eutil.DefaultStopTimeout); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("total %s", time.Since(began).Round(time.Millisecond))
}

// checkDownsampled compares answers at max_source_resolution=5m with the raw answers
// over the 48h the 5m block covers, within the error of 5m aggregates: a 1h window of 5m
// aggregates can start or end one 5m bucket away from the raw window, so sums differ by
// up to 1/12 of the window and the gauge's max by up to its change over 5m (40·5/60 ≈ 3.4
// of ≥ 10): 10% relative. count_over_time and avg_over_time are held to the same bound:
// the querier sums the COUNT aggregates for them, where Thanos would count the 5m points
// (12 per hour instead of 240 raw samples) and average window averages.
func checkDownsampled(t *testing.T, base string, start int64) {
	t.Helper()
	from, to := time.UnixMilli(start+int64(time.Hour/time.Millisecond)), time.UnixMilli(start+48*int64(time.Hour/time.Millisecond))
	for _, expr := range []string{`max_over_time(e2e_gauge[1h])`, `sum_over_time(e2e_gauge[1h])`, `sum(increase(e2e_requests_total[1h]))`,
		`count_over_time(e2e_gauge[1h])`, `avg_over_time(e2e_gauge[1h])`} {
		_, raw := rangeQuery(t, base, expr, from, to, 30*time.Minute, url.Values{"dedup": {"true"}, "max_source_resolution": {"0s"}})
		_, ds := rangeQuery(t, base, expr, from, to, 30*time.Minute, url.Values{"dedup": {"true"}, "max_source_resolution": {"5m"}})
		want, got := toResult(t, raw), toResult(t, ds)
		if len(want) == 0 {
			t.Errorf("%s at raw resolution: no series", expr)
		}
		if d := diffResults(want, got, 0.10); d != "" {
			t.Errorf("%s at 5m resolution differs from raw by more than the 5m aggregate error:\n%s", expr, d)
		}
	}
}

func toResult(t *testing.T, ss []promSeries) queryResult {
	t.Helper()
	out := queryResult{}
	for _, s := range ss {
		for _, v := range s.Values {
			p, err := decodePoint(v)
			if err != nil {
				t.Fatal(err)
			}
			out[metricKey(s.Metric)] = append(out[metricKey(s.Metric)], p)
		}
	}
	return out
}
