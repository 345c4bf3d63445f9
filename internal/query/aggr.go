package query

import (
	"fmt"
	"math"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigilhq/vigil/internal/downsample"
	"github.com/vigilhq/vigil/internal/seek"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// Reading downsampled data. A store serves a downsampled chunk as the aggregates the
// request asked for (Count, Sum, Min, Max, Counter) and no Raw. The aggregates a
// PromQL function reads follow downsample.AggrsForFunc: counters (rate, increase, ...)
// read COUNTER through the apply-counter-resets iterator over all of a replica's chunks,
// the *_over_time functions of count, sum, min and max their aggregate, and everything
// else the average SUM/COUNT. Gap filling can mix raw and downsampled chunks in one
// series: raw chunks are read as they are, in time order with the aggregates (and, for
// counters, through the same apply-counter-resets iterator, which leaves a raw counter's
// increases unchanged).

// isAggregated reports whether c is a downsampled chunk (no raw data, some aggregate).
func isAggregated(c *storepb.AggrChunk) bool {
	return c.GetRaw() == nil && (c.GetCount() != nil || c.GetSum() != nil || c.GetMin() != nil ||
		c.GetMax() != nil || c.GetCounter() != nil)
}

func hasAggregated(chks []*storepb.AggrChunk) bool {
	for _, c := range chks {
		if isAggregated(c) {
			return true
		}
	}
	return false
}

// trimRawUnderAggregates makes the raw chunks of one source give way to its downsampled
// chunks where they overlap. The store gateway picks the coarsest allowed resolution and
// fills its gaps with finer blocks, whose chunks can reach past the gap; where both are
// there the coarser data is what the query asked for. A raw chunk covered by an
// aggregate chunk is dropped, and one that overlaps an aggregate chunk's edge gets its
// time range narrowed (a copy, with MinTime or MaxTime moved; newAggrListIterator reads
// a raw chunk only within its range) so that it fills only the gap. Without this the
// overlap would become a pseudo-replica mixing raw values with aggregates. It reports
// whether the source holds downsampled chunks.
func trimRawUnderAggregates(chks []*storepb.AggrChunk) ([]*storepb.AggrChunk, bool) {
	if !hasAggregated(chks) {
		return chks, false
	}
	var aggr []*storepb.AggrChunk
	for _, c := range chks {
		if isAggregated(c) {
			aggr = append(aggr, c)
		}
	}
	insertionSortByMinTime(aggr)
	out := make([]*storepb.AggrChunk, 0, len(chks))
	for _, c := range chks {
		if c.GetRaw() == nil {
			out = append(out, c)
			continue
		}
		mint, maxt := c.MinTime, c.MaxTime
		for _, a := range aggr {
			if a.MaxTime < mint || a.MinTime > maxt {
				continue
			}
			if a.MinTime <= mint {
				mint = a.MaxTime + 1
			} else {
				maxt = a.MinTime - 1
			}
			if mint > maxt {
				break
			}
		}
		switch {
		case mint > maxt:
			// Covered by downsampled data.
		case mint == c.MinTime && maxt == c.MaxTime:
			out = append(out, c)
		default:
			out = append(out, &storepb.AggrChunk{MinTime: mint, MaxTime: maxt, Raw: c.Raw})
		}
	}
	return out, true
}

// newAggrListIterator iterates a time-ordered, non-overlapping chunk list of a source
// holding downsampled chunks (and maybe raw ones) for the PromQL function fn, bounded to
// [mint, maxt]. With counts (read mode count, see readmode.go) its raw samples read as 1.
func newAggrListIterator(chks []*storepb.AggrChunk, mint, maxt int64, fn string, counts bool) chunkenc.Iterator {
	var inRange []*storepb.AggrChunk
	for _, c := range chks {
		if c.MaxTime >= mint && c.MinTime <= maxt {
			inRange = append(inRange, c)
		}
	}
	aggrs := downsample.AggrsForFunc(fn)
	its := make([]chunkenc.Iterator, 0, len(inRange))
	for _, c := range inRange {
		it, err := aggrChunkIterator(c, aggrs)
		if err != nil {
			return &errIterator{err: fmt.Errorf("downsampled chunk [%d, %d] for %q: %w", c.MinTime, c.MaxTime, fn, err)}
		}
		if c.GetRaw() != nil {
			if counts { // read mode count: a raw sample counts 1, as a window counts COUNT
				it = &countingIterator{Iterator: it}
			}
			// A raw chunk may have been narrowed by trimRawUnderAggregates.
			it = &boundedIterator{it: it, mint: c.MinTime, maxt: c.MaxTime}
		}
		its = append(its, it)
	}
	var it chunkenc.Iterator
	if len(aggrs) == 1 && aggrs[0] == downsample.AggrCounter {
		it = downsample.NewApplyCounterResetsIterator(its...)
	} else {
		it = &timeChainIterator{its: its}
	}
	return &boundedIterator{it: it, mint: mint, maxt: maxt}
}

// aggrChunkIterator opens one chunk: its raw data when it has some, otherwise the
// aggregates in aggrs (COUNT and SUM as their average).
func aggrChunkIterator(c *storepb.AggrChunk, aggrs []downsample.AggrType) (chunkenc.Iterator, error) {
	if raw := c.GetRaw(); raw != nil {
		return openChunk(raw, "raw")
	}
	if len(aggrs) == 2 {
		cnt, err := openChunk(c.GetCount(), "count")
		if err != nil {
			return nil, err
		}
		sum, err := openChunk(c.GetSum(), "sum")
		if err != nil {
			return nil, err
		}
		return downsample.NewAverageIterator(cnt, sum), nil
	}
	switch t := aggrs[0]; t {
	case downsample.AggrCount:
		return openChunk(c.GetCount(), t.String())
	case downsample.AggrSum:
		return openChunk(c.GetSum(), t.String())
	case downsample.AggrMin:
		return openChunk(c.GetMin(), t.String())
	case downsample.AggrMax:
		return openChunk(c.GetMax(), t.String())
	default:
		return openChunk(c.GetCounter(), t.String())
	}
}

func openChunk(c *storepb.Chunk, name string) (chunkenc.Iterator, error) {
	if c == nil {
		return nil, fmt.Errorf("the store sent no %s aggregate", name)
	}
	chk, err := chunkenc.FromData(chunkenc.Encoding(c.GetType()+1), c.GetData())
	if err != nil {
		return nil, fmt.Errorf("%s aggregate: %w", name, err)
	}
	return chk.Iterator(nil), nil
}

// timeChainIterator concatenates iterators, skipping samples that do not advance the
// time (overlap between chunks).
type timeChainIterator struct {
	its     []chunkenc.Iterator
	i       int
	started bool
	vt      chunkenc.ValueType
	t       int64
	err     error
}

func (it *timeChainIterator) Next() chunkenc.ValueType {
	for it.i < len(it.its) {
		cur := it.its[it.i]
		vt := cur.Next()
		if vt == chunkenc.ValNone {
			if err := cur.Err(); err != nil {
				it.err, it.i = err, len(it.its)
				break
			}
			it.i++
			continue
		}
		t := cur.AtT()
		if it.started && t <= it.t {
			continue
		}
		it.started, it.t, it.vt = true, t, vt
		return vt
	}
	it.vt = chunkenc.ValNone
	return chunkenc.ValNone
}

func (it *timeChainIterator) Seek(t seek.Millis) chunkenc.ValueType {
	if it.vt != chunkenc.ValNone && it.t >= t {
		return it.vt
	}
	for it.Next() != chunkenc.ValNone {
		if it.t >= t {
			return it.vt
		}
	}
	return chunkenc.ValNone
}

func (it *timeChainIterator) At() (int64, float64) { return it.its[it.i].At() }
func (it *timeChainIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return it.its[it.i].AtHistogram(h)
}

func (it *timeChainIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return it.its[it.i].AtFloatHistogram(fh)
}
func (it *timeChainIterator) AtT() int64  { return it.t }
func (it *timeChainIterator) AtST() int64 { return it.its[it.i].AtST() }
func (it *timeChainIterator) Err() error  { return it.err }

// boundedIterator limits an iterator to [mint, maxt].
type boundedIterator struct {
	it         chunkenc.Iterator
	mint, maxt int64
	done       bool
}

func (b *boundedIterator) Next() chunkenc.ValueType {
	if b.done {
		return chunkenc.ValNone
	}
	for {
		vt := b.it.Next()
		if vt == chunkenc.ValNone {
			b.done = true
			return vt
		}
		if t := b.it.AtT(); t < b.mint {
			continue
		} else if t > b.maxt {
			b.done = true
			return chunkenc.ValNone
		}
		return vt
	}
}

func (b *boundedIterator) Seek(t seek.Millis) chunkenc.ValueType {
	if b.done {
		return chunkenc.ValNone
	}
	vt := b.it.Seek(max(t, b.mint))
	if vt == chunkenc.ValNone {
		b.done = true
		return vt
	}
	if b.it.AtT() > b.maxt {
		b.done = true
		return chunkenc.ValNone
	}
	return vt
}

func (b *boundedIterator) At() (int64, float64) { return b.it.At() }
func (b *boundedIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return b.it.AtHistogram(h)
}

func (b *boundedIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return b.it.AtFloatHistogram(fh)
}
func (b *boundedIterator) AtT() int64  { return b.it.AtT() }
func (b *boundedIterator) AtST() int64 { return b.it.AtST() }
func (b *boundedIterator) Err() error  { return b.it.Err() }

// errIterator yields nothing and reports err.
type errIterator struct{ err error }

func (*errIterator) Next() chunkenc.ValueType            { return chunkenc.ValNone }
func (*errIterator) Seek(seek.Millis) chunkenc.ValueType { return chunkenc.ValNone }
func (*errIterator) At() (int64, float64)                { return math.MinInt64, 0 }
func (*errIterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	return math.MinInt64, nil
}

func (*errIterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return math.MinInt64, nil
}
func (*errIterator) AtT() int64   { return math.MinInt64 }
func (*errIterator) AtST() int64  { return 0 }
func (e *errIterator) Err() error { return e.err }
