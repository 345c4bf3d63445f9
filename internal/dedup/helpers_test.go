package dedup

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
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/vigilhq/vigil/internal/seek"
)

// sample is one test sample: a float, or a histogram when h is set.
type sample struct {
	t int64
	f float64
	h *histogram.Histogram
}

// sliceIter is a chunkenc.Iterator over samples. With err set it fails after failAfter
// samples, like a replica whose stream breaks.
type sliceIter struct {
	s         []sample
	i         int
	err       error
	failAfter int
}

func newSliceIter(s []sample) *sliceIter { return &sliceIter{s: s, i: -1} }

func (it *sliceIter) typ() chunkenc.ValueType {
	if it.i >= len(it.s) || (it.err != nil && it.i >= it.failAfter) {
		it.i = len(it.s)
		return chunkenc.ValNone
	}
	if it.s[it.i].h != nil {
		return chunkenc.ValHistogram
	}
	return chunkenc.ValFloat
}

func (it *sliceIter) Next() chunkenc.ValueType {
	if it.i < len(it.s) {
		it.i++
	}
	return it.typ()
}

func (it *sliceIter) Seek(t seek.Millis) chunkenc.ValueType {
	if it.i < 0 {
		it.i = 0
	}
	for it.i < len(it.s) && it.s[it.i].t < t {
		it.i++
	}
	return it.typ()
}

func (it *sliceIter) At() (int64, float64) { return it.s[it.i].t, it.s[it.i].f }
func (it *sliceIter) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	return it.s[it.i].t, it.s[it.i].h
}

func (it *sliceIter) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return it.s[it.i].t, it.s[it.i].h.ToFloat(nil)
}
func (it *sliceIter) AtT() int64  { return it.s[it.i].t }
func (it *sliceIter) AtST() int64 { return 0 }
func (it *sliceIter) Err() error {
	if it.err != nil && it.i >= len(it.s) {
		return it.err
	}
	return nil
}

// iters wraps each replica's samples in a fresh iterator.
func iters(reps ...[]sample) []chunkenc.Iterator {
	out := make([]chunkenc.Iterator, len(reps))
	for i, r := range reps {
		out[i] = newSliceIter(r)
	}
	return out
}

// collect drains it; histogram samples are returned with h set.
func collect(t testing.TB, it chunkenc.Iterator) []sample {
	t.Helper()
	var out []sample
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		out = append(out, at(it, vt))
	}
	if err := it.Err(); err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	return out
}

func at(it chunkenc.Iterator, vt chunkenc.ValueType) sample {
	switch vt {
	case chunkenc.ValHistogram:
		ts, h := it.AtHistogram(nil)
		return sample{t: ts, h: h}
	default:
		ts, f := it.At()
		return sample{t: ts, f: f}
	}
}

// series builds float samples at the given timestamps (ms) with value f(t).
func series(ts []int64, f func(int64) float64) []sample {
	out := make([]sample, len(ts))
	for i, t := range ts {
		out[i] = sample{t: t, f: f(t)}
	}
	return out
}

// every returns timestamps from start, step apart, before end, skipping [gapFrom, gapTo).
func every(start, end, step int64, gaps ...[2]int64) []int64 {
	var out []int64
next:
	for t := start; t < end; t += step {
		for _, g := range gaps {
			if t >= g[0] && t < g[1] {
				continue next
			}
		}
		out = append(out, t)
	}
	return out
}

// xorChunk is an XOR chunk with its time range, as chunk metadata carries it.
type xorChunk struct {
	*chunkenc.XORChunk
	minT, maxT int64
}

// xorChunks encodes samples into XOR chunks of 120 samples, like the TSDB head.
func xorChunks(tb testing.TB, s []sample) []xorChunk {
	return xorChunksOf(tb, s, 120)
}

// xorChunksOf encodes samples into XOR chunks of n samples.
func xorChunksOf(tb testing.TB, s []sample, n int) []xorChunk {
	var chks []xorChunk
	var app chunkenc.Appender
	for i, x := range s {
		if i%n == 0 {
			c := chunkenc.NewXORChunk()
			a, err := c.Appender()
			if err != nil {
				tb.Fatal(err)
			}
			chks, app = append(chks, xorChunk{XORChunk: c, minT: x.t}), a
		}
		app.Append(0, x.t, x.f)
		chks[len(chks)-1].maxT = x.t
	}
	return chks
}

// chunksIter iterates a list of XOR chunks, reusing one chunk iterator. Like the
// querier's chunk list iterator, Seek and SkipChunks skip whole chunks by their time
// range without decoding them, and decodes counts the chunks opened.
type chunksIter struct {
	chks    []xorChunk
	ci      int
	it      chunkenc.Iterator
	vt      chunkenc.ValueType
	decodes int
}

func (c *chunksIter) reset(chks []xorChunk) {
	c.chks, c.ci, c.vt, c.decodes = chks, -1, chunkenc.ValNone, 0
}

func (c *chunksIter) open(i int) {
	c.ci = i
	c.it = c.chks[i].Iterator(c.it)
	c.decodes++
}

func (c *chunksIter) Next() chunkenc.ValueType {
	for {
		if c.ci >= 0 && c.ci < len(c.chks) {
			if c.vt = c.it.Next(); c.vt != chunkenc.ValNone {
				return c.vt
			}
		}
		if c.ci+1 >= len(c.chks) {
			c.ci, c.vt = len(c.chks), chunkenc.ValNone
			return chunkenc.ValNone
		}
		c.open(c.ci + 1)
	}
}

func (c *chunksIter) Seek(t seek.Millis) chunkenc.ValueType {
	if c.vt != chunkenc.ValNone && c.it.AtT() >= t {
		return c.vt
	}
	if c.ci < 0 || (c.ci < len(c.chks) && c.chks[c.ci].maxT < t) {
		i := max(c.ci+1, 0)
		for i < len(c.chks) && c.chks[i].maxT < t {
			i++
		}
		if i >= len(c.chks) {
			c.ci, c.vt = len(c.chks), chunkenc.ValNone
			return chunkenc.ValNone
		}
		c.open(i)
	}
	if c.ci >= len(c.chks) {
		return chunkenc.ValNone
	}
	c.vt = c.it.Seek(t)
	return c.vt
}

// SkipChunks implements ChunkSkipper.
func (c *chunksIter) SkipChunks(t seek.Millis) (chunkenc.ValueType, bool) {
	i := c.ci
	for i+1 < len(c.chks) && c.chks[i+1].minT <= t {
		i++
	}
	if i <= c.ci || i >= len(c.chks) {
		return c.vt, false
	}
	c.open(i)
	c.vt = c.it.Next()
	return c.vt, true
}

func (c *chunksIter) At() (int64, float64) { return c.it.At() }
func (c *chunksIter) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return c.it.AtHistogram(h)
}

func (c *chunksIter) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return c.it.AtFloatHistogram(fh)
}
func (c *chunksIter) AtT() int64  { return c.it.AtT() }
func (c *chunksIter) AtST() int64 { return c.it.AtST() }
func (c *chunksIter) Err() error {
	if c.it == nil {
		return nil
	}
	return c.it.Err()
}

// oneSeriesSet is a storage.SeriesSet holding a single series.
type oneSeriesSet struct {
	s    storage.Series
	done bool
}

func (o *oneSeriesSet) Next() bool {
	if o.done {
		return false
	}
	o.done = true
	return true
}
func (o *oneSeriesSet) At() storage.Series                { return o.s }
func (o *oneSeriesSet) Err() error                        { return nil }
func (o *oneSeriesSet) Warnings() annotations.Annotations { return nil }

var testEngine = promql.NewEngine(promql.EngineOpts{
	MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute,
})

// evalRange runs the PromQL range query q over a storage holding one series named x
// whose samples come from newIt, called with the counter flag derived from the query's
// SelectHints.Func exactly as the querier does. It returns the value at each step
// (NaN where the query has no result).
func evalRange(tb testing.TB, newIt func(counter bool) chunkenc.Iterator, q string, start, end, step int64) []float64 {
	tb.Helper()
	queryable := storage.QueryableFunc(func(int64, int64) (storage.Querier, error) {
		return &storage.MockQuerier{SelectMockFunction: func(_ bool, hints *storage.SelectHints, _ ...*labels.Matcher) storage.SeriesSet {
			counter := hints != nil && IsCounterFunc(hints.Func)
			return &oneSeriesSet{s: &storage.SeriesEntry{
				Lset:             labels.FromStrings("__name__", "x"),
				SampleIteratorFn: func(chunkenc.Iterator) chunkenc.Iterator { return newIt(counter) },
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
	out := make([]float64, (end-start)/step+1)
	for i := range out {
		out[i] = math.NaN()
	}
	for _, s := range m {
		for _, p := range s.Floats {
			out[(p.T-start)/step] = p.F
		}
	}
	return out
}
