package compact

import (
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/vigilhq/vigil/internal/dedup"
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
func newDedupMergeFunc(fn dedup.Func) storage.VerticalChunkSeriesMergeFunc {
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
				chks, err := mergeReplicaChunks(series, fn)
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
func mergeReplicaChunks(series []storage.ChunkSeries, fn dedup.Func) ([]chunks.Meta, error) {
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
	slices.SortStableFunc(all, func(a, b inputChunk) int {
		if c := cmpInt(a.meta.MinTime, b.meta.MinTime); c != 0 {
			return c
		}
		return a.input - b.input
	})
	if !replicasOverlap(all) {
		out := make([]chunks.Meta, len(all))
		for i, c := range all {
			out[i] = c.meta
		}
		return out, nil
	}
	return dedupChunks(series[0], all, len(series), fn)
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

// dedupChunks merges the chunks of several inputs sample by sample and re-encodes the
// result. The whole series is merged at once, so the replica rule sees exactly what
// the querier would see over the block's time range.
func dedupChunks(s storage.ChunkSeries, all []inputChunk, inputs int, fn dedup.Func) ([]chunks.Meta, error) {
	perInput := make([][]chunkenc.Iterator, inputs)
	for _, c := range all {
		if c.meta.Chunk == nil {
			return nil, fmt.Errorf("series %s: chunk [%d,%d] has no data", s.Labels(), c.meta.MinTime, c.meta.MaxTime)
		}
		perInput[c.input] = append(perInput[c.input], c.meta.Chunk.Iterator(nil))
	}
	var replicas []chunkenc.Iterator
	for _, its := range perInput {
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
	merged := dedup.NewIterator(replicas, dedup.Options{Func: fn})
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
