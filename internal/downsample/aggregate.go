package downsample

import (
	"fmt"
	"math"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// Sample is one float sample of a series.
type Sample struct {
	T int64
	F float64
}

// BatchWindows is the largest number of windows in one output chunk. Output chunks
// (batches) start at multiples of BatchWindows × resolution since the epoch: 10h for
// 5m data, 5d for 1h data. 10h is a whole number of hours, so an hour never spans two
// 5m chunks written by this package.
const BatchWindows = 120

// floorDiv divides rounding towards negative infinity (timestamps may be negative).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// windowEnd returns the last millisecond of the resolution window holding t, which is
// where the window's aggregate is stamped (before capping at the batch's last sample).
func windowEnd(t, res int64) int64 {
	return floorDiv(t, res)*res + res - 1
}

// builder accumulates the five aggregate chunks of one output chunk. Its XOR chunks are
// reused between batches: encoding the AggrChunk copies their bytes.
type builder struct {
	chks [numAggrs]*chunkenc.XORChunk
	apps [numAggrs]chunkenc.Appender
	mint int64
}

func newBuilder() *builder {
	b := &builder{}
	for i := range b.chks {
		b.chks[i] = chunkenc.NewXORChunk()
	}
	return b
}

// start empties the chunks for a new batch whose first sample is at mint.
func (b *builder) start(mint int64) {
	b.mint = mint
	for i, c := range b.chks {
		buf := c.Bytes()[:2]
		buf[0], buf[1] = 0, 0
		c.Reset(buf)
		app, err := c.Appender()
		if err != nil { // Cannot happen for an empty XOR chunk.
			panic(fmt.Sprintf("downsample: appender of empty XOR chunk: %v", err))
		}
		b.apps[i] = app
	}
}

// finish appends the counter's closing sample (the true last raw value at the last
// aggregate timestamp maxt) and returns the encoded chunk.
func (b *builder) finish(maxt int64, lastRaw float64) chunks.Meta {
	b.apps[AggrCounter].Append(0, maxt, lastRaw)
	var in [numAggrs]chunkenc.Chunk
	for i, c := range b.chks {
		in[i] = c
	}
	return chunks.Meta{MinTime: b.mint, MaxTime: maxt, Chunk: EncodeAggrChunk(in)}
}

// window holds the aggregates of the current window and the batch's counter state.
type window struct {
	count              int
	sum, min, max      float64
	counter, last      float64
	counterInitialized bool
}

func (w *window) reset() {
	w.count, w.sum, w.min, w.max = 0, 0, math.Inf(1), math.Inf(-1)
}

func (w *window) add(v float64) {
	w.count++
	w.sum += v
	// Plain comparisons: NaNs never get here, and math.Min/Max's care for them and for
	// the sign of zero is measurable in this per-sample loop.
	if v < w.min {
		w.min = v
	}
	if v > w.max {
		w.max = v
	}
	switch {
	case !w.counterInitialized:
		w.counter, w.counterInitialized = v, true
	case v < w.last: // Counter reset: the counter restarted from 0 and reached v.
		w.counter += v
	default:
		w.counter += v - w.last
	}
	w.last = v
}

func (b *builder) appendWindow(t int64, w *window) {
	b.apps[AggrCount].Append(0, t, float64(w.count))
	b.apps[AggrSum].Append(0, t, w.sum)
	b.apps[AggrMin].Append(0, t, w.min)
	b.apps[AggrMax].Append(0, t, w.max)
	b.apps[AggrCounter].Append(0, t, w.counter)
	w.reset()
}

// DownsampleRaw aggregates one series' raw samples, sorted by time, into chunks of
// resolution res (milliseconds), each holding an AggrChunk with all five aggregates.
// NaN samples (including staleness markers) and samples whose timestamp is not after
// the previous sample's are dropped.
func DownsampleRaw(in []Sample, res int64) []chunks.Meta {
	return newBuilder().downsampleRaw(nil, in, res, res*BatchWindows)
}

// downsampleRaw appends the chunks of in to dst, cutting batches at multiples of span
// (a multiple of res).
func (b *builder) downsampleRaw(dst []chunks.Meta, in []Sample, res, span int64) []chunks.Meta {
	var (
		open          bool
		batch, winEnd int64
		prevT         int64 = math.MinInt64
		lastRaw       float64
		w             window
	)
	for _, s := range in {
		if math.IsNaN(s.F) || s.T <= prevT {
			continue
		}
		if bt := floorDiv(s.T, span); open && bt != batch {
			// prevT is the batch's last sample: the last window's end is capped there.
			b.appendWindow(min(winEnd, prevT), &w)
			dst = append(dst, b.finish(min(winEnd, prevT), lastRaw))
			open = false
		}
		switch we := windowEnd(s.T, res); {
		case !open:
			open, batch, winEnd = true, floorDiv(s.T, span), we
			b.start(s.T)
			b.apps[AggrCounter].Append(0, s.T, s.F) // The batch's first raw sample.
			w = window{}
			w.reset()
		case we != winEnd:
			// s is later in the same batch, so winEnd < s.T needs no capping.
			b.appendWindow(winEnd, &w)
			winEnd = we
		}
		w.add(s.F)
		prevT, lastRaw = s.T, s.F
	}
	if open {
		b.appendWindow(min(winEnd, prevT), &w)
		dst = append(dst, b.finish(min(winEnd, prevT), lastRaw))
	}
	return dst
}

// isHistogramAggr reports whether c holds native histogram aggregates (Thanos writes
// SUM and COUNTER of histogram series in histogram encodings).
func isHistogramAggr(c AggrChunk) bool {
	for _, t := range []AggrType{AggrSum, AggrCounter} {
		if chk, err := c.Get(t); err == nil && chk.Encoding() != chunkenc.EncXOR && chk.Encoding() != chunkenc.EncXOR2 {
			return true
		}
	}
	return false
}

// DownsampleAggr re-aggregates one series' downsampled chunks (Chunk set to AggrChunk,
// sorted by time) to the coarser resolution res. Input chunks are grouped whole, at
// most about BatchWindows windows per group, and one output chunk is written per group:
// only a chunk's first and last counter samples are true raw values, so the counter can
// only be rebuilt along input chunk boundaries. Chunks that share a window stay in one
// group, so windows are split only if the input's own chunks are longer than a group.
// Native histogram chunks are skipped and counted in skipped.
func DownsampleAggr(chks []chunks.Meta, res int64) (out []chunks.Meta, skipped int, err error) {
	var d aggrDownsampler
	return d.downsample(nil, chks, res)
}

// aggrDownsampler holds buffers reused across series.
type aggrDownsampler struct {
	floats  []chunks.Meta
	bufs    [numAggrs][]Sample
	its     []chunkenc.Iterator
	builder *builder
}

func (d *aggrDownsampler) downsample(dst, chks []chunks.Meta, res int64) ([]chunks.Meta, int, error) {
	if d.builder == nil {
		d.builder = newBuilder()
	}
	skipped := 0
	d.floats = d.floats[:0]
	for _, m := range chks {
		c, ok := m.Chunk.(AggrChunk)
		if !ok {
			return dst, skipped, fmt.Errorf("downsample: chunk [%d, %d] has encoding %s, not an AggrChunk", m.MinTime, m.MaxTime, encodingName(m.Chunk))
		}
		if isHistogramAggr(c) {
			skipped++
			continue
		}
		d.floats = append(d.floats, m)
	}
	span := res * BatchWindows
	for i := 0; i < len(d.floats); {
		j, g := i+1, floorDiv(d.floats[i].MinTime, span)
		for j < len(d.floats) && (floorDiv(d.floats[j].MinTime, span) == g ||
			floorDiv(d.floats[j].MinTime, res) == floorDiv(d.floats[j-1].MaxTime, res)) {
			j++
		}
		m, ok, err := d.group(d.floats[i:j], res)
		if err != nil {
			return dst, skipped, fmt.Errorf("chunks [%d, %d]: %w", d.floats[i].MinTime, d.floats[j-1].MaxTime, err)
		}
		if ok {
			dst = append(dst, m)
		}
		i = j
	}
	return dst, skipped, nil
}

func encodingName(c chunkenc.Chunk) string {
	if c == nil {
		return "<nil chunk>"
	}
	return c.Encoding().String()
}

// group aggregates one group of input chunks into one output chunk; ok is false when
// the group holds no samples.
func (d *aggrDownsampler) group(grp []chunks.Meta, res int64) (chunks.Meta, bool, error) {
	d.its = d.its[:0]
	for t := range d.bufs {
		d.bufs[t] = d.bufs[t][:0]
	}
	for _, m := range grp {
		c := m.Chunk.(AggrChunk)
		for t := AggrCount; t < numAggrs; t++ {
			chk, err := c.Get(t)
			if err != nil {
				return chunks.Meta{}, false, err
			}
			if t == AggrCounter {
				d.its = append(d.its, chk.Iterator(nil))
				continue
			}
			if d.bufs[t], err = appendFloats(d.bufs[t], chk); err != nil {
				return chunks.Meta{}, false, fmt.Errorf("%s aggregate: %w", t, err)
			}
		}
	}
	cit := newApplyCounterResetsIterator(d.its...)
	for cit.Next() == chunkenc.ValFloat {
		t, v := cit.At()
		d.bufs[AggrCounter] = append(d.bufs[AggrCounter], Sample{t, v})
	}
	if err := cit.Err(); err != nil {
		return chunks.Meta{}, false, fmt.Errorf("counter aggregate: %w", err)
	}
	mint, lastT := int64(math.MaxInt64), int64(math.MinInt64)
	for _, buf := range d.bufs {
		if len(buf) > 0 {
			mint, lastT = min(mint, buf[0].T), max(lastT, buf[len(buf)-1].T)
		}
	}
	if len(d.bufs[AggrCount]) == 0 || len(d.bufs[AggrCounter]) == 0 {
		return chunks.Meta{}, false, nil
	}
	b := d.builder
	b.start(mint)
	first := d.bufs[AggrCounter][0]
	b.apps[AggrCounter].Append(0, first.T, first.F)
	sum := func(acc, v float64) float64 { return acc + v }
	aggregateWindows(b.apps[AggrCount], d.bufs[AggrCount], res, lastT, sum)
	aggregateWindows(b.apps[AggrSum], d.bufs[AggrSum], res, lastT, sum)
	aggregateWindows(b.apps[AggrMin], d.bufs[AggrMin], res, lastT, math.Min)
	aggregateWindows(b.apps[AggrMax], d.bufs[AggrMax], res, lastT, math.Max)
	// The counter series is monotonic: a window's counter is its last value.
	last := aggregateWindows(b.apps[AggrCounter], d.bufs[AggrCounter], res, lastT, func(_, v float64) float64 { return v })
	return b.finish(last, cit.lastV), true, nil
}

// appendFloats appends the float samples of chk to dst, dropping samples that do not
// advance the time (overlaps between chunks).
func appendFloats(dst []Sample, chk chunkenc.Chunk) ([]Sample, error) {
	it := chk.Iterator(nil)
	for {
		switch vt := it.Next(); vt {
		case chunkenc.ValNone:
			return dst, it.Err()
		case chunkenc.ValFloat:
			t, v := it.At()
			if len(dst) == 0 || t > dst[len(dst)-1].T {
				dst = append(dst, Sample{t, v})
			}
		default:
			return dst, fmt.Errorf("unexpected %s sample in float aggregate", vt)
		}
	}
}

// aggregateWindows folds in (sorted) per window of res with op and appends one sample
// per window, stamped at the window end capped at lastT. It returns the last stamp.
func aggregateWindows(app chunkenc.Appender, in []Sample, res, lastT int64, op func(acc, v float64) float64) int64 {
	var stamp int64
	for i := 0; i < len(in); {
		we := windowEnd(in[i].T, res)
		acc := in[i].F
		j := i + 1
		for ; j < len(in) && in[j].T <= we; j++ {
			acc = op(acc, in[j].F)
		}
		stamp = min(we, lastT)
		app.Append(0, stamp, acc)
		i = j
	}
	return stamp
}
