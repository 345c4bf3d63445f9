package downsample

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/vigilhq/vigil/internal/block"
)

var testEngine = promql.NewEngine(promql.EngineOpts{
	MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute,
})

type oneSeriesSet struct {
	s    storage.Series
	done bool
}

func (o *oneSeriesSet) Next() bool                        { n := !o.done; o.done = true; return n }
func (o *oneSeriesSet) At() storage.Series                { return o.s }
func (o *oneSeriesSet) Err() error                        { return nil }
func (o *oneSeriesSet) Warnings() annotations.Annotations { return nil }

// eval runs the range query q over one series x whose iterator newIt gets the select
// hint's function, as the querier passes it, and returns the value per step.
func eval(tb testing.TB, newIt func(fn string) chunkenc.Iterator, q string, start, end, step int64) map[int64]float64 {
	tb.Helper()
	queryable := storage.QueryableFunc(func(int64, int64) (storage.Querier, error) {
		return &storage.MockQuerier{SelectMockFunction: func(_ bool, hints *storage.SelectHints, _ ...*labels.Matcher) storage.SeriesSet {
			fn := ""
			if hints != nil {
				fn = hints.Func
			}
			return &oneSeriesSet{s: &storage.SeriesEntry{
				Lset:             labels.FromStrings("__name__", "x"),
				SampleIteratorFn: func(chunkenc.Iterator) chunkenc.Iterator { return newIt(fn) },
			}}
		}}, nil
	})
	qry, err := testEngine.NewRangeQuery(context.Background(), queryable, nil, q,
		time.UnixMilli(start), time.UnixMilli(end), time.Duration(step)*time.Millisecond)
	if err != nil {
		tb.Fatal(err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	if res.Err != nil {
		tb.Fatal(res.Err)
	}
	m, err := res.Matrix()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[int64]float64{}
	for _, s := range m {
		for _, p := range s.Floats {
			out[p.T] = p.F
		}
	}
	return out
}

// promSample is a chunks.Sample for storage.NewListSeriesIterator.
type promSample struct {
	t int64
	f float64
}

func (s promSample) T() int64                    { return s.t }
func (promSample) ST() int64                     { return 0 }
func (s promSample) F() float64                  { return s.f }
func (promSample) H() *histogram.Histogram       { return nil }
func (promSample) FH() *histogram.FloatHistogram { return nil }
func (promSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s promSample) Copy() chunks.Sample         { return s }

// TestPromQLOverDownsampled compares PromQL results over raw data with the same
// queries over its 5m aggregates, read the way the querier reads them (the aggregate
// chosen from the select hint's function, counters through apply-counter-resets).
//
// sum/min/max_over_time at steps on window boundaries are exact. rate and increase
// may differ by up to 5%: the raw data sees every 15s sample while the aggregates see
// the counter only at window ends, so the first and last points of each range sit up to
// 5m from the range's edges, and PromQL's extrapolation over that stretch assumes the
// average rate of the rest of the range, which the noisy, slowly varying test rate does
// not exactly have (about 1-2% for 1h ranges here). Steps whose range touches a gap in
// the data are skipped: there extrapolation depends on where the data stops, which
// downsampling moves to the window end.
func TestPromQLOverDownsampled(t *testing.T) {
	var raw []chunks.Sample
	var clean []Sample
	for _, s := range genCounter(testMint, 3*24*hour) {
		if !math.IsNaN(s.F) { // Downsampling drops NaN; a NaN poisons raw rate().
			raw = append(raw, promSample{s.T, s.F})
			clean = append(clean, s)
		}
	}
	metas := DownsampleRaw(clean, block.Resolution5m)
	var chks []AggrChunk
	for _, m := range metas {
		chks = append(chks, m.Chunk.(AggrChunk))
	}
	rawSeries := storage.NewListSeries(labels.EmptyLabels(), raw)
	rawIt := func(string) chunkenc.Iterator { return rawSeries.Iterator(nil) }
	dsIt := func(fn string) chunkenc.Iterator {
		it, err := NewSeriesIteratorForFunc(chks, fn)
		if err != nil {
			t.Fatal(err)
		}
		return it
	}
	// Gaps in genCounter, to skip ranges touching them.
	var gaps [][2]int64
	for i := 1; i < len(clean); i++ {
		if clean[i].T-clean[i-1].T > 2*rawStep {
			gaps = append(gaps, [2]int64{clean[i-1].T, clean[i].T})
		}
	}
	touchesGap := func(from, to int64) bool {
		for _, g := range gaps {
			if from <= g[1]+block.Resolution5m && to >= g[0]-block.Resolution5m {
				return true
			}
		}
		return false
	}
	start := (floorDiv(testMint, hour)+2)*hour - 1 // A window end: hh:59:59.999.
	end := testMint + 3*24*hour - hour
	const step = 15 * 60_000 // Every step is a 5m window end too.
	for _, tc := range []struct {
		q     string
		rng   int64
		tol   float64
		exact bool
	}{
		{"rate(x[1h])", hour, 0.05, false},
		{"increase(x[2h])", 2 * hour, 0.05, false},
		{"sum_over_time(x[1h])", hour, 1e-9, true},
		{"max_over_time(x[30m])", hour / 2, 0, true},
		{"min_over_time(x[30m])", hour / 2, 0, true},
	} {
		want := eval(t, rawIt, tc.q, start, end, step)
		got := eval(t, dsIt, tc.q, start, end, step)
		var worst float64
		n := 0
		for ts, w := range want {
			if !tc.exact && touchesGap(ts-tc.rng, ts) {
				continue
			}
			g, ok := got[ts]
			if !ok {
				t.Fatalf("%s: no downsampled result at %d", tc.q, ts)
			}
			rel := math.Abs(g-w) / math.Max(math.Abs(w), 1e-12)
			worst = math.Max(worst, rel)
			if rel > tc.tol {
				t.Fatalf("%s at %d: downsampled %v, raw %v (relative error %.4f > %.4f)", tc.q, ts, g, w, rel, tc.tol)
			}
			n++
		}
		if n < 200 {
			t.Fatalf("%s: only %d steps compared", tc.q, n)
		}
		t.Logf("%-22s %d steps, worst relative error %.5f", tc.q, n, worst)
	}
}
