package bucketstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"

	"github.com/vigilhq/vigil/internal/downsample"
	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// Batching. A block's series are read in batches cut by bytes: series are decoded one by
// one and added to the batch until the bytes it will hold (labels, chunk data and the
// structures around them, see heldSize) reach the batch budget. The budget is
// --store.series-batch-size, lowered for a request over many blocks so that every block's
// batches together fit --store.limits.request-bytes.
const (
	// DefaultSeriesBatchBytes is --store.series-batch-size's default.
	DefaultSeriesBatchBytes = 1 << 20
	// minBatchBytes is the smallest per-block budget a request over many blocks gets.
	minBatchBytes = 16 << 10
	// maxBatchSeries bounds a batch by series too (label-only reads of tiny series).
	maxBatchSeries = 10000
	// refsPerRead is how many series references are taken from the postings at a time;
	// their index entries are fetched ahead together (see fetchSeries) and decoded one
	// by one as batches need them.
	refsPerRead = 1000
	// batchesPerBlock is how many batches a block stream can hold at once: the one the
	// merge reads, the one ready in its channel (batchBuffer) and the one being read.
	batchesPerBlock = batchBuffer + 2
	// defaultAvgChunk is the size a block's last chunk of a series is estimated at until
	// the block has read chunks and knows its average.
	defaultAvgChunk = 256
)

// Sizes of what a batch holds besides label and chunk bytes, for heldSize.
var (
	seriesOverhead = int64(unsafe.Sizeof(storepb.Series{})) + 8
	labelOverhead  = int64(unsafe.Sizeof(storepb.Label{})) + 8
	chunkOverhead  = int64(unsafe.Sizeof(storepb.AggrChunk{})+unsafe.Sizeof(storepb.Chunk{})) + 8
)

// heldSize is what the store counts for a series it holds: the series with its labels
// and chunks, structures included. It is a function of the series alone, so the same
// number is taken when the series is read and given back when it is sent.
func heldSize(sr *storepb.Series) int64 {
	n := seriesOverhead + int64(len(sr.Labels))*labelOverhead
	for _, l := range sr.Labels {
		n += int64(len(l.Name) + len(l.Value))
	}
	for _, c := range sr.Chunks {
		n += chunkOverhead + int64(storeapi.AggrChunkBytes(c))
	}
	return n
}

// rawSeries is one series read from the block: labels as stored, and chunks in range.
type rawSeries struct {
	lset   labels.Labels
	chunks []*storepb.AggrChunk
}

// seriesReader reads the series of one block matching a request, batch by batch.
type seriesReader struct {
	b          *loadedBlock
	p          index.Postings
	mint, maxt int64
	skipChunks bool
	aggrs      []storepb.Aggr
	budget     int64 // bytes per batch
	maxSeries  int   // series per batch
	extLabels  int   // labels the store adds to each series, for the estimate
	extBytes   int64 // and their bytes

	// carry is a decoded series that did not fit the last batch: it starts the next.
	carry     *rawSeries
	carryWant []chunks.Meta
	carryEst  []int
	carrySize int64

	refs []storage.SeriesRef // references taken from the postings, with their entries
	bufs []seriesBuf
	next int  // the next of refs to decode
	done bool // postings exhausted

	builder labels.ScratchBuilder
	chks    []chunks.Meta
	stream  chunkStream
	// Reused from batch to batch: the chunks wanted, their estimated sizes, and the
	// batch position of the series each belongs to.
	want   []chunks.Meta
	est    []int
	owners []int
}

func (b *loadedBlock) newSeriesReader(p index.Postings, q *seriesQuery, budget int64, maxSeries int) *seriesReader {
	r := &seriesReader{b: b, p: p, mint: q.mint, maxt: q.maxt, skipChunks: q.skipChunks, aggrs: q.aggrs,
		budget: max(budget, 1), maxSeries: max(maxSeries, 1), extLabels: b.ext.Len()}
	b.ext.Range(func(l labels.Label) { r.extBytes += int64(len(l.Name) + len(l.Value)) })
	r.stream.b = b
	return r
}

// close ends the reader's open chunk stream.
func (r *seriesReader) close() { r.stream.close() }

// fill takes the next references from the postings and fetches their index entries.
func (r *seriesReader) fill(ctx context.Context) (bool, error) {
	r.refs, r.bufs, r.next = r.refs[:0], nil, 0
	for len(r.refs) < min(refsPerRead, r.maxSeries) {
		if !r.p.Next() {
			r.done = true
			break
		}
		r.refs = append(r.refs, r.p.At())
	}
	if err := r.p.Err(); err != nil {
		return false, r.b.indexErr(ctx, "iterate postings", err)
	}
	if len(r.refs) == 0 {
		return false, nil
	}
	bufs, err := r.b.fetchSeries(ctx, r.refs)
	if err != nil {
		return false, fmt.Errorf("fetch series of block %s: %w", r.b.id, err)
	}
	r.bufs = bufs
	return true, nil
}

// nextBatch decodes series until the batch's estimated bytes reach the budget, then reads
// their chunks. It returns the batch and its estimated bytes; an empty batch means the
// block has no more series. onEstimate is called with the estimate before the chunks are
// read, so the caller can refuse a batch it cannot hold.
func (r *seriesReader) nextBatch(ctx context.Context, onEstimate func(int64) error) ([]rawSeries, error) {
	r.want, r.est, r.owners = r.want[:0], r.est[:0], r.owners[:0]
	var (
		out      []rawSeries
		estimate int64
	)
	avg := int(r.b.avgChunk.Load())
	if avg <= 0 {
		avg = defaultAvgChunk
	}
	if r.carry != nil {
		for i := range r.carryWant {
			r.want, r.est, r.owners = append(r.want, r.carryWant[i]), append(r.est, r.carryEst[i]), append(r.owners, 0)
		}
		out, estimate = append(out, *r.carry), r.carrySize
		r.carry, r.carryWant, r.carryEst = nil, r.carryWant[:0], r.carryEst[:0]
	}
	for len(out) < r.maxSeries {
		if r.next == len(r.refs) {
			if r.done {
				break
			}
			ok, err := r.fill(ctx)
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
		}
		ref := r.refs[r.next]
		r.next++
		if err := r.b.decodeSeries(ctx, r.bufs, ref, &r.builder, &r.chks); err != nil {
			return nil, fmt.Errorf("read series %d of block %s: %w", ref, r.b.id, err)
		}
		n := 0
		var size int64
		mark := len(r.want)
		for i, c := range r.chks {
			if c.MaxTime < r.mint || c.MinTime > r.maxt {
				continue
			}
			n++
			if r.skipChunks {
				continue
			}
			e := chunkSizeEstimate(r.chks, i, avg)
			r.want, r.est, r.owners = append(r.want, c), append(r.est, e), append(r.owners, len(out))
			size += chunkOverhead + int64(e)
		}
		if n == 0 {
			continue // no data in range
		}
		lset := r.builder.Labels()
		size += seriesOverhead + int64(lset.Len()+r.extLabels)*labelOverhead + int64(lset.ByteSize()) + r.extBytes
		rs := rawSeries{lset: lset, chunks: make([]*storepb.AggrChunk, 0, n)}
		if len(out) > 0 && estimate+size > r.budget {
			// Does not fit: it starts the next batch.
			r.carry, r.carrySize = &rs, size
			r.carryWant, r.carryEst = append(r.carryWant, r.want[mark:]...), append(r.carryEst, r.est[mark:]...)
			r.want, r.est, r.owners = r.want[:mark], r.est[:mark], r.owners[:mark]
			break
		}
		out = append(out, rs)
		estimate += size
		if estimate >= r.budget {
			break
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	if onEstimate != nil {
		if err := onEstimate(estimate); err != nil {
			return nil, err
		}
	}
	if r.skipChunks || len(r.want) == 0 {
		return out, nil
	}
	more := r.carry != nil || r.next < len(r.refs) || !r.done
	if err := r.b.readChunks(ctx, &r.stream, more, out, r.want, r.est, r.owners, r.aggrs); err != nil {
		return nil, err
	}
	return out, nil
}

// chunkSizeEstimate estimates the bytes of chunk i of a series: exact (the distance to
// the series' next chunk, written right after it) unless it is the series' last chunk in
// its segment file, which gets the block's average.
func chunkSizeEstimate(chks []chunks.Meta, i, avg int) int {
	if i+1 < len(chks) {
		s1, o1 := chunks.BlockChunkRef(chks[i].Ref).Unpack()
		s2, o2 := chunks.BlockChunkRef(chks[i+1].Ref).Unpack()
		if s1 == s2 && o2 > o1 {
			return o2 - o1
		}
	}
	return avg
}

// readChunks reads the chunks of a batch (want, with estimated sizes est, belonging to
// out[owners[i]]) and attaches them to their series.
func (b *loadedBlock) readChunks(ctx context.Context, cs *chunkStream, more bool, out []rawSeries, want []chunks.Meta, est, owners []int, aggrs []storepb.Aggr) error {
	data, err := b.fetchChunks(ctx, cs, want, est, more)
	if err != nil {
		return err
	}
	served := make([]storepb.AggrChunk, len(want))
	raws := make([]storepb.Chunk, len(want))
	var total int
	for i, c := range want {
		served[i].MinTime, served[i].MaxTime = c.MinTime, c.MaxTime
		total += len(data[i].data)
		if chunkenc.Encoding(data[i].enc) == downsample.EncAggr {
			if err := fillAggregates(&served[i], downsample.AggrChunk(data[i].data), aggrs); err != nil {
				return fmt.Errorf("chunk %d of series %s in block %s: %w", c.Ref, out[owners[i]].lset, b.id, err)
			}
		} else {
			raws[i].Type = storepb.Chunk_Encoding(data[i].enc - 1)
			raws[i].Data = data[i].data
			raws[i].Hash = xxhash.Sum64(data[i].data)
			served[i].Raw = &raws[i]
		}
		out[owners[i]].chunks = append(out[owners[i]].chunks, &served[i])
	}
	// Learn the block's average chunk size for the estimates of later batches.
	b.avgChunk.Store(int64(max(1, total/len(want))))
	return nil
}

// avgChunkSize is a block's average chunk size as seen so far (0: none read yet).
type avgChunkSize = atomic.Int64
