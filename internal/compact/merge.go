package compact

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/vigilhq/vigil/internal/dedup"
	"github.com/vigilhq/vigil/internal/seek"
)

// newDedupMergeFunc returns the vertical merge function for replica deduplication. The
// compactor calls it for every series whose labels appear in more than one of the
// blocks being compacted; each input is that series in one source block. Since the
// replica labels are external labels, the replicas of a series have identical series
// labels and meet here.
//
// If no chunk of one input overlaps a chunk of another (adjacent blocks, the usual case
// of horizontal compaction), the chunks are passed through untouched. Otherwise the
// series is decoded, the inputs' samples are merged with fn (dedup.GapFill or
// dedup.Penalty, non-counter mode: values are never changed, every output sample is a
// sample of some input) and the result is re-encoded into chunks of at most 120 samples
// (XOR for floats, histogram encodings for histograms). Merging the whole series rather
// than only the overlapping stretches keeps the rule's state (which replica it follows,
// the scrape interval) across chunk boundaries, exactly as in the querier.
//
// continues says the replicas carry on in later blocks: then a replica that ends up to two
// scrape intervals before another is not treated as having a gap (see tailCut).
func newDedupMergeFunc(fn dedup.Func, continues bool) storage.VerticalChunkSeriesMergeFunc {
	return func(series ...storage.ChunkSeries) storage.ChunkSeries {
		switch len(series) {
		case 0:
			return nil
		case 1:
			return series[0]
		}
		return &storage.ChunkSeriesEntry{
			Lset: series[0].Labels(),
			ChunkIteratorFn: func(chunks.Iterator) chunks.Iterator {
				chks, err := mergeReplicaChunks(series, fn, continues)
				return &listChunkIterator{chks: chks, err: err, i: -1}
			},
		}
	}
}

// inputChunk is a chunk of one merge input.
type inputChunk struct {
	meta  chunks.Meta
	input int
}

// mergeReplicaChunks merges the chunks of the inputs; see newDedupMergeFunc.
func mergeReplicaChunks(series []storage.ChunkSeries, fn dedup.Func, continues bool) ([]chunks.Meta, error) {
	var all []inputChunk
	for i, s := range series {
		it := s.Iterator(nil)
		for it.Next() {
			all = append(all, inputChunk{meta: it.At(), input: i})
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("read chunks of series %s: %w", s.Labels(), err)
		}
	}
	sortInputChunks(all)
	if !replicasOverlap(all) {
		out := make([]chunks.Meta, len(all))
		for i, c := range all {
			out[i] = c.meta
		}
		return out, nil
	}
	return dedupChunks(series[0], all, len(series), fn, continues)
}

// sortInputChunks sorts chunks by minTime, then input.
func sortInputChunks(all []inputChunk) {
	slices.SortStableFunc(all, func(a, b inputChunk) int {
		if c := cmpInt(a.meta.MinTime, b.meta.MinTime); c != 0 {
			return c
		}
		return a.input - b.input
	})
}

// replicasOverlap reports whether a chunk of one input overlaps a chunk of another
// (chunks sorted by minTime).
func replicasOverlap(all []inputChunk) bool {
	for i := 0; i < len(all); {
		j, maxT := i+1, all[i].meta.MaxTime
		for ; j < len(all) && all[j].meta.MinTime <= maxT; j++ {
			if all[j].input != all[i].input {
				return true
			}
			maxT = max(maxT, all[j].meta.MaxTime)
		}
		i = j
	}
	return false
}

// dedupChunks merges the chunks of several inputs sample by sample. The whole series is
// merged at once, so the replica rule sees exactly what the querier would see over the
// block's time range.
//
// Where the merged samples over a source chunk's time range are exactly that chunk's
// samples (the other replicas contributed nothing there: they have no data in that range,
// or the rule followed this replica throughout it), the source chunk is copied as it is,
// without re-encoding; only the stretches where the result mixes replicas are re-encoded.
// The output holds the same samples as reencodeChunks; only the chunk boundaries may
// differ. Series with histograms, and series whose merge would buffer more than
// maxBufferedSamples, are re-encoded entirely (reencodeChunks streams).
func dedupChunks(s storage.ChunkSeries, all []inputChunk, inputs int, fn dedup.Func, continues bool) ([]chunks.Meta, error) {
	for _, c := range all {
		if c.meta.Chunk == nil {
			return nil, fmt.Errorf("series %s: chunk [%d,%d] has no data", s.Labels(), c.meta.MinTime, c.meta.MaxTime)
		}
	}
	floats := true
	total := 0
	for _, c := range all {
		floats = floats && c.meta.Chunk.Encoding() == chunkenc.EncXOR
		total += c.meta.Chunk.NumSamples()
	}
	if !floats || total > maxBufferedSamples {
		return reencodeChunks(s, all, inputs, fn, continues)
	}
	merged := mergedIterator(all, inputs, fn, continues)
	buf := getSampleBuf()
	defer putSampleBuf(buf)
	for vt := merged.Next(); vt != chunkenc.ValNone; vt = merged.Next() {
		if vt != chunkenc.ValFloat {
			return nil, fmt.Errorf("deduplicate series %s: unexpected %s sample in a float series", s.Labels(), vt)
		}
		t, v := merged.At()
		buf.t = append(buf.t, t)
		buf.v = append(buf.v, v)
	}
	if err := merged.Err(); err != nil {
		return nil, fmt.Errorf("deduplicate series %s: %w", s.Labels(), err)
	}
	out, err := copyOrEncode(all, buf.t, buf.v)
	if err != nil {
		return nil, fmt.Errorf("deduplicate series %s: %w", s.Labels(), err)
	}
	return out, nil
}

// maxBufferedSamples bounds the decoded samples dedupChunks holds for one series (16
// bytes each, so 16 MiB); a longer series is merged by the streaming reencodeChunks.
const maxBufferedSamples = 1 << 20

// samplesPerChunk is where re-encoded chunks are cut, as Prometheus does.
const samplesPerChunk = 120

// sampleBuf holds one series' merged samples.
type sampleBuf struct {
	t []int64
	v []float64
}

var sampleBufs = sync.Pool{New: func() any { return &sampleBuf{} }}

func getSampleBuf() *sampleBuf { return sampleBufs.Get().(*sampleBuf) }

func putSampleBuf(b *sampleBuf) {
	b.t, b.v = b.t[:0], b.v[:0]
	sampleBufs.Put(b)
}

// copyOrEncode turns the merged samples (ts, vs) into chunks: a source chunk (all sorted
// by minTime) whose samples are exactly the next merged samples is copied, and the
// samples between copied chunks are encoded into new XOR chunks.
func copyOrEncode(all []inputChunk, ts []int64, vs []float64) ([]chunks.Meta, error) {
	var (
		out []chunks.Meta
		cur *chunkenc.XORChunk
		app chunkenc.Appender
		it  chunkenc.Iterator
		ci  int

		firstT, lastT int64
	)
	flush := func() {
		if cur != nil {
			out = append(out, chunks.Meta{Chunk: cur, MinTime: firstT, MaxTime: lastT})
			cur, app = nil, nil
		}
	}
	for i := 0; i < len(ts); {
		for ci < len(all) && all[ci].meta.MinTime < ts[i] {
			ci++
		}
		copied := false
		for k := ci; k < len(all) && all[k].meta.MinTime == ts[i]; k++ {
			var n int
			if n, it = matchChunk(all[k].meta, ts[i:], vs[i:], it); n > 0 {
				flush()
				out = append(out, all[k].meta)
				i += n
				copied = true
				break
			}
		}
		if copied {
			continue
		}
		if cur == nil || cur.NumSamples() >= samplesPerChunk {
			flush()
			cur = chunkenc.NewXORChunk()
			var err error
			if app, err = cur.Appender(); err != nil {
				return nil, err
			}
			firstT = ts[i]
		}
		app.Append(0, ts[i], vs[i])
		lastT = ts[i]
		i++
	}
	flush()
	return out, nil
}

// reencodeChunks merges the chunks of several inputs sample by sample and re-encodes the
// whole result, streaming: the reference for dedupChunks, and its path for histograms
// and very long series.
func reencodeChunks(s storage.ChunkSeries, all []inputChunk, inputs int, fn dedup.Func, continues bool) ([]chunks.Meta, error) {
	merged := mergedIterator(all, inputs, fn, continues)
	enc := storage.NewSeriesToChunkEncoder(&storage.SeriesEntry{
		Lset:             s.Labels(),
		SampleIteratorFn: func(chunkenc.Iterator) chunkenc.Iterator { return merged },
	})
	it := enc.Iterator(nil)
	var out []chunks.Meta
	for it.Next() {
		out = append(out, it.At())
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("deduplicate series %s: %w", s.Labels(), err)
	}
	if err := merged.Err(); err != nil {
		return nil, fmt.Errorf("deduplicate series %s: %w", s.Labels(), err)
	}
	return out, nil
}

// mergedIterator returns the replica merge of the inputs' chunks (which all have data).
func mergedIterator(all []inputChunk, inputs int, fn dedup.Func, continues bool) chunkenc.Iterator {
	perInput := make([][]chunkenc.Iterator, inputs)
	for _, c := range all {
		perInput[c.input] = append(perInput[c.input], c.meta.Chunk.Iterator(nil))
	}
	var replicas []chunkenc.Iterator
	cut := make([]int64, inputs)
	for i := range cut {
		cut[i] = math.MaxInt64
	}
	if continues {
		cut = tailCut(all, inputs)
	}
	for i, its := range perInput {
		if cut[i] != math.MaxInt64 && len(its) > 0 {
			replicas = append(replicas, newCutIterator(storage.ChainSampleIteratorFromIterators(nil, its), cut[i]))
			continue
		}
		switch len(its) {
		case 0:
		case 1:
			replicas = append(replicas, its[0])
		default:
			// One input's chunks in time order; the chain also drops duplicate
			// timestamps should an input's own chunks overlap.
			replicas = append(replicas, storage.ChainSampleIteratorFromIterators(nil, its))
		}
	}
	return dedup.NewIterator(replicas, dedup.Options{Func: fn})
}

// matchChunk reports how many samples the chunk holds if they are exactly the first ones
// of ts and vs (same timestamps, same value bits), and 0 otherwise. it is reused.
func matchChunk(m chunks.Meta, ts []int64, vs []float64, it chunkenc.Iterator) (int, chunkenc.Iterator) {
	n := m.Chunk.NumSamples()
	if n == 0 || n > len(ts) || ts[n-1] != m.MaxTime {
		return 0, it
	}
	it = m.Chunk.Iterator(it)
	for j := 0; j < n; j++ {
		if it.Next() != chunkenc.ValFloat {
			return 0, it
		}
		t, v := it.At()
		if t != ts[j] || math.Float64bits(v) != math.Float64bits(vs[j]) {
			return 0, it
		}
	}
	if it.Next() != chunkenc.ValNone || it.Err() != nil {
		return 0, it
	}
	return n, it
}

// tailCut returns, per input, the time after which its samples are dropped (MaxInt64 for
// none). At the end of the merged blocks the replica the merge follows (the one with the
// earliest first sample) seems to stop at its last sample although it carries on in the
// next block; without the cut the merge would fill that fake tail gap from another replica
// and keep one foreign sample per block boundary, which the querier's dedup over the same
// data would not. Only tails within two scrape intervals after the followed replica's last
// sample are cut: a longer tail is a real gap and is filled.
func tailCut(all []inputChunk, inputs int) []int64 {
	first := make([]int64, inputs)
	last := make([]int64, inputs)
	cut := make([]int64, inputs)
	for i := range first {
		first[i], last[i], cut[i] = math.MaxInt64, math.MinInt64, math.MaxInt64
	}
	for _, c := range all {
		first[c.input] = min(first[c.input], c.meta.MinTime)
		last[c.input] = max(last[c.input], c.meta.MaxTime)
	}
	lead := -1
	for i := range first {
		if first[i] != math.MaxInt64 && (lead < 0 || first[i] < first[lead]) {
			lead = i
		}
	}
	if lead < 0 {
		return cut
	}
	var interval int64 // the lead's scrape interval, from its last chunk
	for _, c := range all {
		if n := c.meta.Chunk.NumSamples(); c.input == lead && c.meta.MaxTime == last[lead] && n > 1 {
			interval = (c.meta.MaxTime - c.meta.MinTime) / int64(n-1)
		}
	}
	for i := range cut {
		if i != lead && interval > 0 && last[i] > last[lead] && last[i]-last[lead] <= 2*interval {
			cut[i] = last[lead]
		}
	}
	return cut
}

// cutIterator ends an iterator after time cut.
type cutIterator struct {
	chunkenc.Iterator
	cut int64
}

func newCutIterator(it chunkenc.Iterator, cut int64) *cutIterator {
	return &cutIterator{Iterator: it, cut: cut}
}

func (c *cutIterator) Next() chunkenc.ValueType {
	if vt := c.Iterator.Next(); vt != chunkenc.ValNone && c.Iterator.AtT() <= c.cut {
		return vt
	}
	return chunkenc.ValNone
}

func (c *cutIterator) Seek(t seek.Millis) chunkenc.ValueType {
	if vt := c.Iterator.Seek(t); vt != chunkenc.ValNone && c.Iterator.AtT() <= c.cut {
		return vt
	}
	return chunkenc.ValNone
}

// listChunkIterator iterates a slice of chunk metas, or reports err.
type listChunkIterator struct {
	chks []chunks.Meta
	i    int
	err  error
}

func (it *listChunkIterator) At() chunks.Meta { return it.chks[it.i] }

func (it *listChunkIterator) Next() bool {
	if it.err != nil || it.i+1 >= len(it.chks) {
		return false
	}
	it.i++
	return true
}

func (it *listChunkIterator) Err() error { return it.err }
