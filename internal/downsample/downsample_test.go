package downsample

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/vigilhq/vigil/internal/block"
)

const (
	rawStep = 15_000
	hour    = int64(3_600_000)
	// testMint is on the 15s grid but not on a 10h (batch) boundary.
	testMint = int64(1_700_000_115_000)
)

// span is the raw → 5m batch length.
var span = block.Resolution5m * BatchWindows

// genCounter returns a counter sampled every 15s over [mint, mint+dur) with irregular
// increments, resets (one mid-window, one on the first sample of a batch, one right
// after a gap), gaps (one across a batch boundary) and a few NaN samples.
func genCounter(mint, dur int64) []Sample {
	rng := rand.New(rand.NewPCG(1, 2))
	b1 := (floorDiv(mint, span) + 2) * span // A batch boundary on the sample grid.
	b2 := b1 + 3*span
	resets := map[int64]bool{mint + 7*hour + 13*60_000: true, b1: true, mint + 21*hour + 30*60_000: true}
	gaps := [][2]int64{{mint + 20*hour, mint + 21*hour + 30*60_000}, {b2 - 40*60_000, b2 + 25*60_000}}
	nans := map[int64]bool{mint + 3*hour: true, mint + 30*hour + 15_000: true}
	var out []Sample
	v := 100.0
	for t := mint; t < mint+dur; t += rawStep {
		// The rate varies slowly (hours) and the increments are noisy.
		v += (1.5 + math.Sin(float64(t-mint)/float64(5*hour))) * (0.5 + rng.Float64())
		if resets[t] {
			v = rng.Float64() * 3
		}
		skip := false
		for _, g := range gaps {
			skip = skip || (t >= g[0] && t < g[1])
		}
		switch {
		case skip:
		case nans[t]:
			out = append(out, Sample{t, math.NaN()})
		default:
			out = append(out, Sample{t, v})
		}
	}
	return out
}

// totals returns the raw series' reset-corrected running total at each non-NaN sample.
func totals(raw []Sample) []Sample {
	var out []Sample
	var total, last float64
	for _, s := range raw {
		if math.IsNaN(s.F) {
			continue
		}
		switch {
		case len(out) == 0:
			total = s.F
		case s.F < last:
			total += s.F
		default:
			total += s.F - last
		}
		last = s.F
		out = append(out, Sample{s.T, total})
	}
	return out
}

// totalAt returns the running total at the last sample at or before t.
func totalAt(tot []Sample, t int64) float64 {
	v := math.NaN()
	for _, s := range tot {
		if s.T > t {
			break
		}
		v = s.F
	}
	return v
}

type winAggr struct {
	count               int
	sum, min, max       float64
	firstT, lastT       int64
	batchLast, batchFst Sample
}

// bruteForce aggregates raw per window of res, written independently of the package.
func bruteForce(raw []Sample, res int64) (map[int64]*winAggr, []int64) {
	m := map[int64]*winAggr{}
	var keys []int64
	for _, s := range raw {
		if math.IsNaN(s.F) {
			continue
		}
		k := floorDiv(s.T, res)
		a := m[k]
		if a == nil {
			a = &winAggr{sum: 0, min: math.Inf(1), max: math.Inf(-1), firstT: s.T}
			m[k] = a
			keys = append(keys, k)
		}
		a.count++
		a.sum += s.F
		a.min, a.max, a.lastT = math.Min(a.min, s.F), math.Max(a.max, s.F), s.T
	}
	return m, keys
}

func approx(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

func get(tb testing.TB, m chunks.Meta, t AggrType) []Sample {
	tb.Helper()
	c, err := m.Chunk.(AggrChunk).Get(t)
	if err != nil {
		tb.Fatal(err)
	}
	return readAll(tb, c.Iterator(nil))
}

// checkAggregates verifies downsampled chunks of res against the raw data: one sample
// per window over all chunks (no split windows), the right count, sum, min and max, the
// counter's extra first and last samples, and the counter read through the
// apply-counter-resets iterator equal to the raw running total.
func checkAggregates(t *testing.T, raw []Sample, chks []chunks.Meta, res int64) {
	t.Helper()
	want, keys := bruteForce(raw, res)
	var seen []int64
	var counterIts []chunkenc.Iterator
	var prevMax int64 = math.MinInt64
	for ci, m := range chks {
		if m.MinTime <= prevMax || m.MaxTime < m.MinTime {
			t.Fatalf("chunk %d [%d, %d] overlaps or is inverted (prev max %d)", ci, m.MinTime, m.MaxTime, prevMax)
		}
		prevMax = m.MaxTime
		if n := m.Chunk.NumSamples(); n > 140 || n == 0 {
			t.Fatalf("chunk %d holds %d samples", ci, n)
		}
		cnt, sum, mn, mx, ctr := get(t, m, AggrCount), get(t, m, AggrSum), get(t, m, AggrMin), get(t, m, AggrMax), get(t, m, AggrCounter)
		if len(sum) != len(cnt) || len(mn) != len(cnt) || len(mx) != len(cnt) || len(ctr) != len(cnt)+2 {
			t.Fatalf("chunk %d: lengths count %d sum %d min %d max %d counter %d", ci, len(cnt), len(sum), len(mn), len(mx), len(ctr))
		}
		var first, last Sample // The chunk's first and last raw samples.
		for i, c := range cnt {
			k := floorDiv(c.T, res)
			w := want[k]
			if w == nil {
				t.Fatalf("chunk %d: aggregate at %d for a window without raw data", ci, c.T)
			}
			stamp := min(k*res+res-1, m.MaxTime)
			if c.T != stamp || sum[i].T != stamp || mn[i].T != stamp || mx[i].T != stamp || ctr[i+1].T != stamp {
				t.Fatalf("chunk %d window %d: stamps %d %d %d %d %d, want %d", ci, k, c.T, sum[i].T, mn[i].T, mx[i].T, ctr[i+1].T, stamp)
			}
			if int(c.F) != w.count || !approx(sum[i].F, w.sum) || mn[i].F != w.min || mx[i].F != w.max {
				t.Fatalf("chunk %d window %d: count %v sum %v min %v max %v, want %d %v %v %v",
					ci, k, c.F, sum[i].F, mn[i].F, mx[i].F, w.count, w.sum, w.min, w.max)
			}
			seen = append(seen, k)
			if i == 0 {
				first = rawAt(t, raw, w.firstT)
			}
			last = rawAt(t, raw, w.lastT)
		}
		if m.MinTime != first.T || m.MaxTime != last.T {
			t.Fatalf("chunk %d: range [%d, %d], want first/last raw sample [%d, %d]", ci, m.MinTime, m.MaxTime, first.T, last.T)
		}
		if ctr[0] != first || ctr[len(ctr)-1] != last {
			t.Fatalf("chunk %d: counter starts %v ends %v, want raw %v and %v", ci, ctr[0], ctr[len(ctr)-1], first, last)
		}
		c, _ := m.Chunk.(AggrChunk).Get(AggrCounter)
		counterIts = append(counterIts, c.Iterator(nil))
	}
	if len(seen) != len(keys) {
		t.Fatalf("%d aggregates for %d windows (a window was split or lost)", len(seen), len(keys))
	}
	for i := range keys {
		if seen[i] != keys[i] {
			t.Fatalf("aggregate %d is for window %d, want %d", i, seen[i], keys[i])
		}
	}
	tot := totals(raw)
	n := 0
	for it := NewApplyCounterResetsIterator(counterIts...); it.Next() == chunkenc.ValFloat; n++ {
		ts, v := it.At()
		if w := totalAt(tot, ts); !approx(v, w) {
			t.Fatalf("counter total at %d = %v, raw running total %v", ts, v, w)
		}
	}
	if want := len(keys) + len(chks); n != want { // One aggregate per window plus each chunk's first raw sample.
		t.Fatalf("apply-counter-resets emitted %d samples, want %d", n, want)
	}
}

func rawAt(tb testing.TB, raw []Sample, t int64) Sample {
	tb.Helper()
	for _, s := range raw {
		if s.T == t && !math.IsNaN(s.F) {
			return s
		}
	}
	tb.Fatalf("no raw sample at %d", t)
	return Sample{}
}

func TestDownsampleRaw(t *testing.T) {
	raw := genCounter(testMint, 3*24*hour)
	chks := DownsampleRaw(raw, block.Resolution5m)
	checkAggregates(t, raw, chks, block.Resolution5m)
	for i, m := range chks {
		if floorDiv(m.MinTime, span) != floorDiv(m.MaxTime, span) {
			t.Fatalf("chunk %d [%d, %d] crosses a 10h batch boundary", i, m.MinTime, m.MaxTime)
		}
	}
	if len(chks) != 8 { // 3 days from mid-batch: 7 full or partial 10h batches plus one.
		t.Logf("%d chunks", len(chks))
	}
}

func TestDownsampleRawEdgeCases(t *testing.T) {
	if got := DownsampleRaw(nil, block.Resolution5m); len(got) != 0 {
		t.Fatalf("no samples: %d chunks", len(got))
	}
	if got := DownsampleRaw([]Sample{{1, math.NaN()}}, block.Resolution5m); len(got) != 0 {
		t.Fatalf("only NaN: %d chunks", len(got))
	}
	// One sample: the counter holds it three times at the same timestamp.
	got := DownsampleRaw([]Sample{{1000, 7}}, block.Resolution5m)
	if len(got) != 1 || got[0].MinTime != 1000 || got[0].MaxTime != 1000 {
		t.Fatalf("one sample: %+v", got)
	}
	if c := get(t, got[0], AggrCounter); len(c) != 3 || c[0] != (Sample{1000, 7}) || c[2] != (Sample{1000, 7}) {
		t.Fatalf("one sample counter = %v", c)
	}
	// Duplicate and out-of-order timestamps are dropped; negative timestamps work, and
	// 0 starts a new batch. The last window of a batch is capped at its last sample.
	in := []Sample{{-600_001, 1}, {-600_001, 5}, {-300_000, 2}, {-400_000, 9}, {0, 3}}
	got = DownsampleRaw(in, block.Resolution5m)
	if len(got) != 2 {
		t.Fatalf("%d chunks, want 2", len(got))
	}
	for i, want := range [][]Sample{{{-600_001, 1}, {-300_000, 1}}, {{0, 1}}} {
		cnt := get(t, got[i], AggrCount)
		if len(cnt) != len(want) {
			t.Fatalf("chunk %d count = %v, want %v", i, cnt, want)
		}
		for j := range want {
			if cnt[j] != want[j] {
				t.Fatalf("chunk %d count = %v, want %v", i, cnt, want)
			}
		}
	}
	if c := get(t, got[0], AggrCounter); c[0] != (Sample{-600_001, 1}) || c[len(c)-1] != (Sample{-300_000, 2}) {
		t.Fatalf("counter = %v", c)
	}
}

// TestDownsample5mTo1h checks that 1h data made from 5m data equals 1h data made from
// the raw data directly, and both equal the raw data aggregated per hour.
func TestDownsample5mTo1h(t *testing.T) {
	raw := genCounter(testMint, 12*24*hour)
	m5 := DownsampleRaw(raw, block.Resolution5m)
	h1, skipped, err := DownsampleAggr(m5, block.Resolution1h)
	if err != nil || skipped != 0 {
		t.Fatalf("DownsampleAggr: %v (skipped %d)", err, skipped)
	}
	checkAggregates(t, raw, h1, block.Resolution1h)
	direct := DownsampleRaw(raw, block.Resolution1h)
	checkAggregates(t, raw, direct, block.Resolution1h)
	if len(direct) != len(h1) {
		t.Fatalf("%d chunks from 5m, %d from raw", len(h1), len(direct))
	}
	for i := range direct {
		if direct[i].MinTime != h1[i].MinTime || direct[i].MaxTime != h1[i].MaxTime {
			t.Fatalf("chunk %d: range [%d, %d] from 5m, [%d, %d] from raw", i, h1[i].MinTime, h1[i].MaxTime, direct[i].MinTime, direct[i].MaxTime)
		}
		for typ := AggrCount; typ < numAggrs; typ++ {
			a, b := get(t, h1[i], typ), get(t, direct[i], typ)
			if len(a) != len(b) {
				t.Fatalf("chunk %d %s: %d samples from 5m, %d from raw", i, typ, len(a), len(b))
			}
			for j := range a {
				if a[j].T != b[j].T || !approx(a[j].F, b[j].F) {
					t.Fatalf("chunk %d %s sample %d: %v from 5m, %v from raw", i, typ, j, a[j], b[j])
				}
			}
		}
	}
}

// TestDownsampleAggrUnaligned feeds 5m chunks cut like Thanos cuts them (not on hour
// boundaries): chunks sharing an hour are grouped, so no hour is split.
func TestDownsampleAggrUnaligned(t *testing.T) {
	raw := genCounter(testMint, 6*24*hour)
	m5 := newBuilder().downsampleRaw(nil, raw, block.Resolution5m, 37*block.Resolution5m)
	checkAggregates(t, raw, m5, block.Resolution5m)
	h1, _, err := DownsampleAggr(m5, block.Resolution1h)
	if err != nil {
		t.Fatal(err)
	}
	checkAggregates(t, raw, h1, block.Resolution1h)

	// Histogram aggregates are skipped and counted; raw chunks are rejected.
	hist := EncodeAggrChunk([5]chunkenc.Chunk{xorChunk(t, Sample{1, 1}), chunkenc.NewFloatHistogramChunk(), nil, nil, chunkenc.NewFloatHistogramChunk()})
	in := append([]chunks.Meta{{MinTime: 0, MaxTime: 1, Chunk: hist}}, m5...)
	h1b, skipped, err := DownsampleAggr(in, block.Resolution1h)
	if err != nil || skipped != 1 || len(h1b) != len(h1) {
		t.Fatalf("with a histogram chunk: %d chunks, skipped %d, err %v", len(h1b), skipped, err)
	}
	if _, _, err := DownsampleAggr([]chunks.Meta{{Chunk: xorChunk(t, Sample{1, 1})}}, block.Resolution1h); err == nil {
		t.Fatal("DownsampleAggr accepted a raw XOR chunk")
	}
	noMin := EncodeAggrChunk([5]chunkenc.Chunk{xorChunk(t, Sample{1, 1}), xorChunk(t, Sample{1, 1}), nil, xorChunk(t, Sample{1, 1}), xorChunk(t, Sample{1, 1})})
	if _, _, err := DownsampleAggr([]chunks.Meta{{MinTime: 1, MaxTime: 1, Chunk: noMin}}, block.Resolution1h); err == nil {
		t.Fatal("DownsampleAggr accepted a chunk without MIN")
	}
}
