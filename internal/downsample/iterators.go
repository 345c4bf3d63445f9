package downsample

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/vigilhq/vigil/internal/seek"
)

// AggrsForFunc returns the aggregates a PromQL function (the SelectHints.Func of a
// select) reads from downsampled data: MIN for min and min_*, MAX for max and max_*,
// COUNT for count and count_*, SUM for sum_*, COUNTER for rate, increase, irate, resets,
// xrate and xincrease, and COUNT and SUM (read as the average SUM/COUNT per point) for
// everything else, including plain sum and an empty name.
func AggrsForFunc(name string) []AggrType {
	switch {
	case name == "min" || strings.HasPrefix(name, "min_"):
		return []AggrType{AggrMin}
	case name == "max" || strings.HasPrefix(name, "max_"):
		return []AggrType{AggrMax}
	case name == "count" || strings.HasPrefix(name, "count_"):
		return []AggrType{AggrCount}
	case strings.HasPrefix(name, "sum_"):
		return []AggrType{AggrSum}
	}
	switch name {
	case "rate", "increase", "irate", "resets", "xrate", "xincrease":
		return []AggrType{AggrCounter}
	}
	return []AggrType{AggrCount, AggrSum}
}

// NewIteratorForFunc returns an iterator over the aggregate of c that the PromQL
// function fn reads (see AggrsForFunc). For counter functions prefer
// NewSeriesIteratorForFunc over all of a series' chunks: resets between chunks are only
// seen when the chunks are read through one apply-counter-resets iterator.
func NewIteratorForFunc(c AggrChunk, fn string) (chunkenc.Iterator, error) {
	return NewSeriesIteratorForFunc([]AggrChunk{c}, fn)
}

// NewSeriesIteratorForFunc returns an iterator over the aggregate that the PromQL
// function fn reads from a series' chunks, which must be sorted by time. COUNTER is read
// through NewApplyCounterResetsIterator, COUNT and SUM together as their average, and
// single aggregates are concatenated (overlapping samples skipped).
func NewSeriesIteratorForFunc(chks []AggrChunk, fn string) (chunkenc.Iterator, error) {
	aggrs := AggrsForFunc(fn)
	its := make([][]chunkenc.Iterator, len(aggrs))
	for i, t := range aggrs {
		for _, c := range chks {
			chk, err := c.Get(t)
			if err != nil {
				return nil, fmt.Errorf("downsample: read aggregate for %q: %w", fn, err)
			}
			its[i] = append(its[i], chk.Iterator(nil))
		}
	}
	switch {
	case len(aggrs) == 2:
		return NewAverageIterator(newChainIterator(its[0]...), newChainIterator(its[1]...)), nil
	case aggrs[0] == AggrCounter:
		return NewApplyCounterResetsIterator(its[0]...), nil
	}
	return newChainIterator(its[0]...), nil
}

// floatIterator implements the histogram and ST parts of chunkenc.Iterator for the
// float-only iterators of this package.
type floatIterator struct{}

func (floatIterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	return math.MinInt64, nil
}

func (floatIterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return math.MinInt64, nil
}
func (floatIterator) AtST() int64 { return 0 }

// nextFloat advances it and reports whether it is on a float sample; a non-float
// sample is an error.
func nextFloat(it chunkenc.Iterator) (bool, error) {
	switch vt := it.Next(); vt {
	case chunkenc.ValFloat:
		return true, nil
	case chunkenc.ValNone:
		return false, it.Err()
	default:
		return false, fmt.Errorf("downsample: unexpected %s sample in float aggregate", vt)
	}
}

// floatSeq reads the float samples of several iterators one after another, as both
// iterators below do. A read error ends the sequence and is kept, naming the chunk.
type floatSeq struct {
	its  []chunkenc.Iterator
	i    int
	what string // the chunks' name in errors ("counter chunk", "chunk")
	err  error
}

// next returns the next sample of the sequence; ok is false at its end or on an error.
func (s *floatSeq) next() (t int64, v float64, ok bool) {
	for s.i < len(s.its) {
		more, err := nextFloat(s.its[s.i])
		if err != nil {
			s.err = fmt.Errorf("%s %d: %w", s.what, s.i, err)
			s.i = len(s.its)
			return 0, 0, false
		}
		if !more {
			s.i++
			continue
		}
		t, v = s.its[s.i].At()
		return t, v, true
	}
	return 0, 0, false
}

// applyCounterResetsIterator implements NewApplyCounterResetsIterator.
type applyCounterResetsIterator struct {
	floatIterator
	seq     floatSeq
	started bool  // A sample has been emitted.
	cur     bool  // The iterator is on an emitted sample.
	t       int64 // Timestamp of the last emitted sample.
	total   float64
	lastV   float64 // Reference value: the last input value, or the true last raw value.
}

// NewApplyCounterResetsIterator reads the COUNTER aggregate chunks of one series, in
// time order, and emits a monotonic running total: the first value starts it and every
// later value v adds v-last, or v when v < last (a reset). NaN values are skipped. A
// sample whose timestamp equals the previous one is the "true last raw value" marker a
// downsampled chunk ends with: it only updates the reference value, so a reset between
// two chunks is seen. Samples before the last emitted one (overlapping chunks) are
// skipped. Resets are hidden, so resets() cannot be computed from the output.
func NewApplyCounterResetsIterator(chks ...chunkenc.Iterator) chunkenc.Iterator {
	return newApplyCounterResetsIterator(chks...)
}

func newApplyCounterResetsIterator(chks ...chunkenc.Iterator) *applyCounterResetsIterator {
	return &applyCounterResetsIterator{seq: floatSeq{its: chks, what: "counter chunk"}}
}

func (it *applyCounterResetsIterator) Next() chunkenc.ValueType {
	it.cur = false
	for {
		t, v, ok := it.seq.next()
		if !ok {
			return chunkenc.ValNone
		}
		switch {
		case math.IsNaN(v):
			continue
		case !it.started:
			it.started, it.total, it.lastV = true, v, v
		case t == it.t:
			it.lastV = v // The true last raw value of the chunk.
			continue
		case t < it.t:
			continue
		case v < it.lastV:
			it.total += v
			it.lastV = v
		default:
			it.total += v - it.lastV
			it.lastV = v
		}
		it.t, it.cur = t, true
		return chunkenc.ValFloat
	}
}

func (it *applyCounterResetsIterator) Seek(t seek.Millis) chunkenc.ValueType {
	return seekByNext(it, it.cur, t)
}

// seekByNext implements Seek for float iterators that can only move forward sample by
// sample (their value depends on every sample before): Next until the timestamp reaches t.
func seekByNext(it chunkenc.Iterator, positioned bool, t int64) chunkenc.ValueType {
	if positioned && it.AtT() >= t {
		return chunkenc.ValFloat
	}
	for it.Next() == chunkenc.ValFloat {
		if it.AtT() >= t {
			return chunkenc.ValFloat
		}
	}
	return chunkenc.ValNone
}

func (it *applyCounterResetsIterator) At() (int64, float64) { return it.t, it.total }
func (it *applyCounterResetsIterator) AtT() int64           { return it.t }
func (it *applyCounterResetsIterator) Err() error           { return it.seq.err }

// averageIterator implements NewAverageIterator.
type averageIterator struct {
	floatIterator
	count, sum chunkenc.Iterator
	cur        bool
	t          int64
	v          float64
	err        error
}

// NewAverageIterator emits sum/count at every timestamp present in both the COUNT and
// the SUM iterator (which normally have the same timestamps).
func NewAverageIterator(count, sum chunkenc.Iterator) chunkenc.Iterator {
	return &averageIterator{count: count, sum: sum}
}

func (it *averageIterator) Next() chunkenc.ValueType {
	it.cur = false
	okC, errC := nextFloat(it.count)
	okS, errS := nextFloat(it.sum)
	return it.align(okC, okS, errors.Join(errC, errS))
}

// align advances the iterator that is behind until both are on the same timestamp.
func (it *averageIterator) align(okC, okS bool, err error) chunkenc.ValueType {
	for err == nil && okC && okS {
		tc, ts := it.count.AtT(), it.sum.AtT()
		switch {
		case tc < ts:
			okC, err = nextFloat(it.count)
		case ts < tc:
			okS, err = nextFloat(it.sum)
		default:
			_, c := it.count.At()
			_, s := it.sum.At()
			it.t, it.v, it.cur = tc, s/c, true
			return chunkenc.ValFloat
		}
	}
	if err != nil {
		it.err = fmt.Errorf("average of sum and count: %w", err)
	}
	return chunkenc.ValNone
}

func (it *averageIterator) Seek(t seek.Millis) chunkenc.ValueType {
	if it.cur && it.t >= t {
		return chunkenc.ValFloat
	}
	it.cur = false
	seek := func(s chunkenc.Iterator) (bool, error) {
		switch vt := s.Seek(t); vt {
		case chunkenc.ValFloat:
			return true, nil
		case chunkenc.ValNone:
			return false, s.Err()
		default:
			return false, fmt.Errorf("downsample: unexpected %s sample in float aggregate", vt)
		}
	}
	okC, errC := seek(it.count)
	okS, errS := seek(it.sum)
	return it.align(okC, okS, errors.Join(errC, errS))
}

func (it *averageIterator) At() (int64, float64) { return it.t, it.v }
func (it *averageIterator) AtT() int64           { return it.t }
func (it *averageIterator) Err() error           { return it.err }

// chainIterator concatenates float iterators, skipping samples that do not advance the
// time.
type chainIterator struct {
	floatIterator
	seq     floatSeq
	started bool
	cur     bool
	t       int64
	v       float64
}

func newChainIterator(its ...chunkenc.Iterator) *chainIterator {
	return &chainIterator{seq: floatSeq{its: its, what: "chunk"}}
}

func (it *chainIterator) Next() chunkenc.ValueType {
	it.cur = false
	for {
		t, v, ok := it.seq.next()
		if !ok {
			return chunkenc.ValNone
		}
		if it.started && t <= it.t {
			continue
		}
		it.started, it.cur, it.t, it.v = true, true, t, v
		return chunkenc.ValFloat
	}
}

func (it *chainIterator) Seek(t seek.Millis) chunkenc.ValueType {
	return seekByNext(it, it.cur, t)
}

func (it *chainIterator) At() (int64, float64) { return it.t, it.v }
func (it *chainIterator) AtT() int64           { return it.t }
func (it *chainIterator) Err() error           { return it.seq.err }
