package query

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"

	"github.com/vigilhq/vigil/internal/block"
	"github.com/vigilhq/vigil/internal/bucketstore"
	"github.com/vigilhq/vigil/internal/dedup"
	"github.com/vigilhq/vigil/internal/downsample"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

const (
	dsSeries = 3
	dsScrape = 15_000
	dsSpan   = 12 * hour
	dsReset  = 6*hour + 7*dsScrape // a counter reset, away from window edges
)

// dsCounter returns the samples of counter i: one every 15s over [from, to), growing
// by a slowly varying amount per scrape, reset to 0 at dsReset.
func dsCounter(i int, from, to int64) (ts []int64, vs []float64) {
	var v float64
	for t := int64(0); t < to; t += dsScrape {
		if t == dsReset {
			v = 0
		}
		v += float64(i+1) * (1 + 0.5*math.Sin(2*math.Pi*float64(t)/float64(4*hour)))
		if t >= from {
			ts, vs = append(ts, t), append(vs, v)
		}
	}
	return ts, vs
}

// writeRawBlock writes the dsSeries counters {__name__="x", i="<n>"} over [from, to)
// into a raw block under dir with external labels cluster=c1 (and replica=<replica>
// when given) and returns its directory.
func writeRawBlock(t *testing.T, dir string, from, to int64, replica ...string) string {
	t.Helper()
	ctx := context.Background()
	w, err := tsdb.NewBlockWriter(discard, dir, to-from+1)
	if err != nil {
		t.Fatal(err)
	}
	app := w.Appender(ctx)
	for i := range dsSeries {
		ls := labels.FromStrings("__name__", "x", "i", fmt.Sprintf("%03d", i))
		ts, vs := dsCounter(i, from, to)
		for k := range ts {
			if _, err := app.Append(0, ls, ts[k], vs[k]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	id, err := w.Flush(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	bdir := filepath.Join(dir, id.String())
	m, err := block.ReadMeta(bdir)
	if err != nil {
		t.Fatal(err)
	}
	m.Thanos.Labels = map[string]string{"cluster": "c1"}
	for _, r := range replica {
		m.Thanos.Labels["replica"] = r
	}
	m.Thanos.Downsample.Resolution = block.ResolutionRaw
	m.Thanos.Source = "test"
	if err := block.WriteMeta(bdir, m); err != nil {
		t.Fatal(err)
	}
	return bdir
}

// downsampleTo5m downsamples the raw block in rawDir and returns the new block's dir.
func downsampleTo5m(t *testing.T, rawDir string) string {
	t.Helper()
	out := t.TempDir()
	id, err := downsample.DownsampleDir(context.Background(), discard, rawDir, out, block.Resolution5m)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(out, id.String())
}

func uploadBlocks(t *testing.T, bkt objstore.Bucket, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := block.Upload(context.Background(), discard, bkt, d); err != nil {
			t.Fatal(err)
		}
	}
}

// serveBucket serves the bucket with a real store gateway over gRPC and returns the
// querier's factory over it.
func serveBucket(t *testing.T, bkt objstore.Bucket) QueryableFactory {
	t.Helper()
	s := bucketstore.New(bkt, bucketstore.Config{DataDir: t.TempDir(), IndexCacheSize: 16 << 20}, discard, prometheus.NewRegistry())
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	set := newSet(t, serve(t, s, s))
	mustHealthy(t, set, 1)
	return NewQueryableFactory(NewProxy(set, 0, discard), dedup.GapFill)
}

func newFSBucket(t *testing.T) objstore.Bucket {
	t.Helper()
	bkt, err := filesystem.NewBucket(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bkt
}

// byStep flattens a matrix into series labels → step → value.
func byStep(m promql.Matrix) map[string]map[int64]float64 {
	out := map[string]map[int64]float64{}
	for _, s := range m {
		pts := map[int64]float64{}
		for _, p := range s.Floats {
			pts[p.T] = p.F
		}
		out[s.Metric.String()] = pts
	}
	return out
}

type dsCase struct {
	q       string
	rng     int64
	tol     float64 // relative
	scale   float64 // downsampled result × scale is compared with raw
	rewrite bool    // run the downsampled query as the API does: RewriteForDownsampling
}

// The tolerances are those of internal/downsample's TestPromQLOverDownsampled:
// sum/max_over_time exact at steps on window ends, rate within 5% (the aggregates see
// the counter at window ends only, which moves PromQL's extrapolation). count_over_time
// over downsampled data counts aggregate points, one per 5m window (as in Thanos), so it
// is the raw count divided by the samples per window: 20 at a 15s scrape.
var dsCases = []dsCase{
	{"sum_over_time(x[1h])", hour, 1e-9, 1, false},
	{"count_over_time(x[1h])", hour, 0, float64(block.Resolution5m / dsScrape), false},
	{"max_over_time(x[30m])", hour / 2, 0, 1, false},
	{"avg_over_time(x[1h])", hour, 1e-9, 1, false}, // the average of equal-count window averages
	{"min_over_time(x[30m])", hour / 2, 0, 1, false},
	{"rate(x[1h])", hour, 0.05, 1, false},
	{"increase(x[2h])", 2 * hour, 0.05, 1, false},
}

// compareResolutions runs each case at raw and 5m resolution and checks agreement at
// every step whose range skip does not reject.
func compareResolutions(t *testing.T, qf QueryableFactory, cases []dsCase, skip func(c dsCase, from, to int64) bool) {
	t.Helper()
	compareResolutionsWith(t, qf, Options{}, cases, skip)
}

func compareResolutionsWith(t *testing.T, qf QueryableFactory, opts Options, cases []dsCase, skip func(c dsCase, from, to int64) bool) {
	t.Helper()
	dsOpts := opts
	dsOpts.MaxSourceResolution = block.Resolution5m
	start := 2*hour - 1 // a 5m window end
	end := dsSpan - hour
	const step = 15 * 60_000
	for _, tc := range cases {
		raw := byStep(rangeQuery(t, qf, opts, tc.q, start, end, step))
		dsQ := tc.q
		if tc.rewrite {
			dsQ = RewriteForDownsampling(parser.NewParser(parser.Options{}), tc.q)
		}
		ds := byStep(rangeQuery(t, qf, dsOpts, dsQ, start, end, step))
		if len(raw) != dsSeries || len(ds) != dsSeries {
			t.Fatalf("%s: %d raw and %d downsampled series, want %d", tc.q, len(raw), len(ds), dsSeries)
		}
		n := 0
		var worst float64
		for lset, pts := range raw {
			for ts, w := range pts {
				if skip != nil && skip(tc, ts-tc.rng, ts) {
					continue
				}
				g, ok := ds[lset][ts]
				if !ok {
					t.Fatalf("%s: %s has no downsampled result at %d", tc.q, lset, ts)
				}
				g *= tc.scale
				rel := math.Abs(g-w) / math.Max(math.Abs(w), 1e-12)
				worst = max(worst, rel)
				if rel > tc.tol {
					t.Fatalf("%s: %s at %d: downsampled %v, raw %v (relative error %.5f > %.5f)", tc.q, lset, ts, g, w, rel, tc.tol)
				}
				n++
			}
		}
		if n < 50 {
			t.Fatalf("%s: only %d points compared", tc.q, n)
		}
		t.Logf("%-24s %d points, worst relative error %.5f", tc.q, n, worst)
	}
}

func nearReset(c dsCase, from, to int64) bool {
	// Extrapolation around a reset depends on where the samples sit, which downsampling
	// moves to window ends.
	return (c.q[:4] == "rate" || c.q[:4] == "incr") && from <= dsReset+block.Resolution5m && to >= dsReset-block.Resolution5m
}

// PromQL over a store gateway serving a raw block and its 5m downsample: at
// max_source_resolution 0 the raw block is read, at 5m the AggrChunks, and the results
// agree within the documented error.
func TestPromQLOverDownsampledStore(t *testing.T) {
	bkt := newFSBucket(t)
	raw := writeRawBlock(t, t.TempDir(), 0, dsSpan)
	uploadBlocks(t, bkt, raw, downsampleTo5m(t, raw))
	qf := serveBucket(t, bkt)

	// The 5m request really reads the aggregates the function needs.
	q, err := qf(Options{MaxSourceResolution: block.Resolution5m}).Querier(0, dsSpan)
	if err != nil {
		t.Fatal(err)
	}
	req := q.(*querier).seriesRequest(nil, []*labels.Matcher{eq("__name__", "x")})
	if req.MaxResolutionWindow != block.Resolution5m {
		t.Fatalf("max resolution window %d", req.MaxResolutionWindow)
	}
	compareResolutions(t, qf, dsCases, nearReset)
}

// Gap filling mixes resolutions in one series: 5m data for [0, 5h) and [7h, 12h), the
// raw block (which spans the whole 12h) for the gap. Raw chunks under the 5m data give
// way to it, and the mixed chunks are read in time order; the results still agree with
// raw data.
func TestPromQLOverGapFilledResolutions(t *testing.T) {
	bkt := newFSBucket(t)
	raw := writeRawBlock(t, t.TempDir(), 0, dsSpan)
	first := downsampleTo5m(t, writeRawBlock(t, t.TempDir(), 0, 5*hour))
	last := downsampleTo5m(t, writeRawBlock(t, t.TempDir(), 7*hour, dsSpan))
	uploadBlocks(t, bkt, raw, first, last)
	qf := serveBucket(t, bkt)

	var cases []dsCase
	for _, c := range dsCases {
		if c.q[:5] != "count" { // points per window differ between the resolutions
			cases = append(cases, c)
		}
	}
	compareResolutions(t, qf, cases, func(c dsCase, from, to int64) bool {
		if nearReset(c, from, to) {
			return true
		}
		// rate's extrapolation at a resolution edge depends on where the samples sit, and
		// an average over raw samples and window averages weighs them differently.
		if c.q[:4] == "rate" || c.q[:4] == "incr" || c.q[:3] == "avg" {
			for _, edge := range []int64{5 * hour, 7 * hour} {
				if from <= edge+block.Resolution5m && to >= edge-block.Resolution5m {
					return true
				}
			}
		}
		return false
	})
}

// Two replicas' raw and 5m blocks behind one store gateway: with dedup the replica
// label is stripped, the source's chunks split into one run per replica, each read
// through its aggregates and deduplicated; the result agrees with deduplicated raw
// data.
func TestPromQLOverDownsampledReplicasWithDedup(t *testing.T) {
	bkt := newFSBucket(t)
	for _, r := range []string{"r0", "r1"} {
		raw := writeRawBlock(t, t.TempDir(), 0, dsSpan, r)
		uploadBlocks(t, bkt, raw, downsampleTo5m(t, raw))
	}
	qf := serveBucket(t, bkt)
	compareResolutionsWith(t, qf, dedupOn, dsCases, nearReset)
}

// Raw chunks of a source give way to its downsampled chunks: covered ones are dropped,
// those across an edge narrowed.
func TestTrimRawUnderAggregates(t *testing.T) {
	rawC := func(mint, maxt int64) *storepb.AggrChunk {
		return &storepb.AggrChunk{MinTime: mint, MaxTime: maxt, Raw: &storepb.Chunk{Data: []byte{0, 0}}}
	}
	aggrC := func(mint, maxt int64) *storepb.AggrChunk {
		return &storepb.AggrChunk{MinTime: mint, MaxTime: maxt, Count: &storepb.Chunk{Data: []byte{0, 0}}}
	}
	if _, ok := trimRawUnderAggregates([]*storepb.AggrChunk{rawC(0, 10)}); ok {
		t.Fatal("raw-only source reported as downsampled")
	}
	got, ok := trimRawUnderAggregates([]*storepb.AggrChunk{aggrC(0, 100), rawC(10, 50), rawC(90, 150), rawC(160, 170), aggrC(200, 300), rawC(180, 250)})
	if !ok {
		t.Fatal("not reported as downsampled")
	}
	var spans [][3]int64
	for _, c := range got {
		kind := int64(0)
		if c.Raw != nil {
			kind = 1
		}
		spans = append(spans, [3]int64{c.MinTime, c.MaxTime, kind})
	}
	want := [][3]int64{{0, 100, 0}, {101, 150, 1}, {160, 170, 1}, {200, 300, 0}, {180, 199, 1}}
	if fmt.Sprint(spans) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", spans, want)
	}
}

// Two-sample functions cap the resolution at half their range.
func TestSeriesRequestCapsResolutionForTwoSampleFunctions(t *testing.T) {
	q := &querier{Queryable: &Queryable{opts: Options{MaxSourceResolution: block.Resolution1h}}, mint: 0, maxt: hour}
	for _, tc := range []struct {
		fn   string
		rng  int64
		want int64
	}{
		{"rate", 30 * 60_000, 15 * 60_000},
		{"rate", 4 * hour, block.Resolution1h},
		{"sum_over_time", 30 * 60_000, block.Resolution1h},
	} {
		req := q.seriesRequest(&storage.SelectHints{Func: tc.fn, Range: tc.rng}, nil)
		if req.MaxResolutionWindow != tc.want {
			t.Fatalf("%s[%d]: max resolution window %d, want %d", tc.fn, tc.rng, req.MaxResolutionWindow, tc.want)
		}
	}
}

// The querier asks the store for exactly the aggregates its iterator reads.
func TestAggregatesForFollowsAggrsForFunc(t *testing.T) {
	for fn, want := range map[string][]storepb.Aggr{
		"":                {storepb.Aggr_COUNT, storepb.Aggr_SUM},
		"sum":             {storepb.Aggr_COUNT, storepb.Aggr_SUM},
		"avg_over_time":   {storepb.Aggr_COUNT, storepb.Aggr_SUM},
		"count_over_time": {storepb.Aggr_COUNT},
		"count_values":    {storepb.Aggr_COUNT},
		"sum_over_time":   {storepb.Aggr_SUM},
		"min_over_time":   {storepb.Aggr_MIN},
		"max":             {storepb.Aggr_MAX},
		"rate":            {storepb.Aggr_COUNTER},
		"xincrease":       {storepb.Aggr_COUNTER},
	} {
		if got := aggregatesFor(fn); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("aggregatesFor(%q) = %v, want %v", fn, got, want)
		}
	}
}

// countingCases are count_over_time and avg_over_time as the API runs them when
// downsampled data may be read: rewritten to sum the COUNT aggregates (see readmode.go),
// so they agree with raw data instead of counting windows.
var countingCases = []dsCase{
	{"count_over_time(x[1h])", hour, 0, 1, true},
	{"avg_over_time(x[1h])", hour, 1e-9, 1, true},
	{"sum(count_over_time(x[30m])) by (i)", hour / 2, 0, 1, true},
}

// TestCountingOverDownsampled: over 5m data, over a series mixing 5m and raw data, and
// over deduplicated replicas, the rewritten count_over_time gives the exact raw sample
// count and avg_over_time the raw average.
func TestCountingOverDownsampled(t *testing.T) {
	t.Run("5m", func(t *testing.T) {
		bkt := newFSBucket(t)
		raw := writeRawBlock(t, t.TempDir(), 0, dsSpan)
		uploadBlocks(t, bkt, raw, downsampleTo5m(t, raw))
		compareResolutions(t, serveBucket(t, bkt), countingCases, nil)
	})
	t.Run("mixed resolutions", func(t *testing.T) {
		bkt := newFSBucket(t)
		raw := writeRawBlock(t, t.TempDir(), 0, dsSpan)
		first := downsampleTo5m(t, writeRawBlock(t, t.TempDir(), 0, 5*hour))
		last := downsampleTo5m(t, writeRawBlock(t, t.TempDir(), 7*hour, dsSpan))
		uploadBlocks(t, bkt, raw, first, last)
		compareResolutions(t, serveBucket(t, bkt), countingCases, nil)
	})
	t.Run("dedup", func(t *testing.T) {
		bkt := newFSBucket(t)
		for _, r := range []string{"r0", "r1"} {
			raw := writeRawBlock(t, t.TempDir(), 0, dsSpan, r)
			uploadBlocks(t, bkt, raw, downsampleTo5m(t, raw))
		}
		compareResolutionsWith(t, serveBucket(t, bkt), dedupOn, countingCases, nil)
	})
}
