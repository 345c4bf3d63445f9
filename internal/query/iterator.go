package query

import (
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/vigilhq/vigil/internal/dedup"
	"github.com/vigilhq/vigil/internal/seek"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// splitOverlapping splits one source's chunks into runs without overlap: a chunk goes to
// the first run whose last chunk ends before it starts. A source that holds several
// replicas (a store gateway serving both replicas' blocks with replica labels stripped)
// thus yields one run per replica, which dedup can then tell apart.
func splitOverlapping(chks []*storepb.AggrChunk) [][]*storepb.AggrChunk {
	if len(chks) < 2 {
		return [][]*storepb.AggrChunk{chks}
	}
	sorted := true
	for i := 1; i < len(chks); i++ {
		if chks[i].MinTime <= chks[i-1].MaxTime {
			sorted = false
			break
		}
	}
	if sorted {
		return [][]*storepb.AggrChunk{chks}
	}
	// Order by min time (stable: equal starts keep arrival order) before splitting.
	ordered := append([]*storepb.AggrChunk(nil), chks...)
	insertionSortByMinTime(ordered)
	var runs [][]*storepb.AggrChunk
outer:
	for _, c := range ordered {
		for i, r := range runs {
			last := r[len(r)-1]
			if last.MaxTime < c.MinTime {
				runs[i] = append(r, c)
				continue outer
			}
			if last.MinTime == c.MinTime && last.MaxTime == c.MaxTime && sameRaw(last, c) {
				continue outer // an exact duplicate chunk adds nothing
			}
		}
		runs = append(runs, []*storepb.AggrChunk{c})
	}
	return runs
}

func sameRaw(a, b *storepb.AggrChunk) bool {
	ra, rb := firstChunk(a), firstChunk(b)
	if ra == nil || rb == nil || ra.GetType() != rb.GetType() {
		return false
	}
	if ra.GetHash() != 0 && rb.GetHash() != 0 {
		return ra.GetHash() == rb.GetHash()
	}
	return string(ra.GetData()) == string(rb.GetData())
}

// firstChunk is the chunk that identifies c: its raw chunk, or for a downsampled chunk
// its first aggregate (as Thanos's response deduplicator hashes it).
func firstChunk(c *storepb.AggrChunk) *storepb.Chunk {
	for _, x := range []*storepb.Chunk{c.GetRaw(), c.GetCount(), c.GetSum(), c.GetMin(), c.GetMax(), c.GetCounter()} {
		if x != nil {
			return x
		}
	}
	return nil
}

func insertionSortByMinTime(c []*storepb.AggrChunk) {
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j].MinTime < c[j-1].MinTime; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
}

// chunkListIterator iterates the samples of a time-ordered, non-overlapping chunk list,
// bounded to [mint, maxt]. Chunks are opened (decoded) only when a sample is read from
// them: Seek and SkipChunks skip whole chunks by their time range.
type chunkListIterator struct {
	hasST      bool                 // the current chunk's encoding carries start timestamps
	chks       []*storepb.AggrChunk // chunks not opened yet
	mint, maxt int64
	cur        chunkenc.Iterator // the open chunk's iterator; nil before the first and after the last
	curMaxT    int64             // the open chunk's MaxTime
	inRange    bool              // the open chunk lies within [mint, maxt]: no per-sample bound check
	reuse      chunkenc.Iterator
	pool       chunkenc.Pool
	curChunk   chunkenc.Chunk
	lastVT     chunkenc.ValueType
	err        error
}

var _ dedup.ChunkSkipper = (*chunkListIterator)(nil)

func newChunkListIterator(chks []*storepb.AggrChunk, mint, maxt int64, pool chunkenc.Pool) *chunkListIterator {
	return &chunkListIterator{chks: chks, mint: mint, maxt: maxt, pool: pool}
}

// nextChunk opens the next chunk that can hold samples in range.
func (it *chunkListIterator) nextChunk() bool {
	for len(it.chks) > 0 {
		c := it.chks[0]
		it.chks = it.chks[1:]
		if c.MaxTime < it.mint {
			continue
		}
		if c.MinTime > it.maxt {
			it.chks = nil
			return false
		}
		raw := c.GetRaw()
		if raw == nil {
			// A downsampled chunk: lists holding them are read by newAggrListIterator.
			continue
		}
		if it.curChunk != nil {
			_ = it.pool.Put(it.curChunk)
		}
		chk, err := it.pool.Get(chunkenc.Encoding(raw.GetType()+1), raw.GetData())
		if err != nil {
			it.err = err
			return false
		}
		it.curChunk = chk
		it.hasST = chk.Encoding() >= chunkenc.EncXOR2
		it.cur = chk.Iterator(it.reuse)
		it.reuse = it.cur
		// The bounds come from the chunk's metadata, which the skipping above trusts too.
		it.curMaxT, it.inRange = c.MaxTime, c.MinTime >= it.mint && c.MaxTime <= it.maxt
		return true
	}
	return false
}

func (it *chunkListIterator) Next() chunkenc.ValueType {
	if it.inRange && it.cur != nil { // the common case, without the call to next
		if vt := it.cur.Next(); vt != chunkenc.ValNone {
			it.lastVT = vt
			return vt
		}
	}
	it.lastVT = it.next()
	return it.lastVT
}

func (it *chunkListIterator) next() chunkenc.ValueType {
	for it.err == nil {
		if it.cur != nil {
			if it.inRange {
				if vt := it.cur.Next(); vt != chunkenc.ValNone {
					return vt
				}
			} else {
				for vt := it.cur.Next(); vt != chunkenc.ValNone; vt = it.cur.Next() {
					t := it.cur.AtT()
					if t < it.mint {
						continue
					}
					if t > it.maxt {
						it.chks, it.cur = nil, nil
						return chunkenc.ValNone
					}
					return vt
				}
			}
			if err := it.cur.Err(); err != nil {
				it.err = err
				return chunkenc.ValNone
			}
		}
		if !it.nextChunk() {
			it.cur = nil
			return chunkenc.ValNone
		}
	}
	return chunkenc.ValNone
}

// Seek moves to the first sample at or after t; it never moves backwards. Chunks that
// end before t, the open one included, are skipped without being decoded; within the
// chunk that can hold t the chunk iterator's own Seek is used.
func (it *chunkListIterator) Seek(t seek.Millis) chunkenc.ValueType {
	if it.err != nil {
		return chunkenc.ValNone
	}
	if it.lastVT != chunkenc.ValNone && it.cur.AtT() >= t {
		return it.lastVT
	}
	if t > it.mint {
		it.mint = t // samples before t are never needed again
	}
	if it.cur != nil && it.curMaxT >= it.mint {
		if it.inRange { // the common case, seekOpen without the bound check
			if vt := it.cur.Seek(it.mint); vt != chunkenc.ValNone {
				it.lastVT = vt
				return vt
			}
		}
		if vt, ok := it.seekOpen(); ok {
			it.lastVT = vt
			return vt
		}
	}
	for it.nextChunk() {
		if vt, ok := it.seekOpen(); ok {
			it.lastVT = vt
			return vt
		}
	}
	it.cur, it.lastVT = nil, chunkenc.ValNone
	return chunkenc.ValNone
}

// seekOpen seeks the open chunk to mint. ok is false when the chunk has no sample at or
// after mint (its metadata said otherwise) and the next chunk should be tried.
func (it *chunkListIterator) seekOpen() (vt chunkenc.ValueType, ok bool) {
	vt = it.cur.Seek(it.mint)
	switch {
	case vt == chunkenc.ValNone:
		if err := it.cur.Err(); err != nil {
			it.err = err
			return chunkenc.ValNone, true
		}
		return chunkenc.ValNone, false
	case !it.inRange && it.cur.AtT() > it.maxt:
		it.chks, it.cur = nil, nil
		return chunkenc.ValNone, true
	}
	return vt, true
}

// SkipChunks implements dedup.ChunkSkipper: it moves to the first sample of the chunk
// holding the last sample at or before t, without decoding the chunks before it. A
// chunk with no raw data cannot hold a readable sample; the first readable one after
// it is used instead.
func (it *chunkListIterator) SkipChunks(t int64) (chunkenc.ValueType, bool) {
	if it.err != nil || it.cur == nil {
		return it.lastVT, false // not started (Next opens the first chunk anyway) or done
	}
	i := -1
	for j, c := range it.chks {
		if c.MinTime > t {
			break
		}
		i = j
	}
	if i < 0 {
		return it.lastVT, false // the open chunk is the last one starting at or before t
	}
	it.chks, it.cur = it.chks[i:], nil
	return it.Next(), true
}

func (it *chunkListIterator) At() (int64, float64) { return it.cur.At() }
func (it *chunkListIterator) AtHistogram(h *histogram.Histogram) (int64, *histogram.Histogram) {
	return it.cur.AtHistogram(h)
}
func (it *chunkListIterator) AtFloatHistogram(fh *histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return it.cur.AtFloatHistogram(fh)
}
func (it *chunkListIterator) AtT() int64 { return it.cur.AtT() }
func (it *chunkListIterator) Err() error { return it.err }

// AtST returns the current sample's start timestamp, when the chunk format has one.
// AtST returns the current sample's start timestamp. The StoreAPI's chunk encodings (XOR,
// histogram, float histogram) carry none, and PromQL asks for every sample, so the common
// case answers without a call into the chunk iterator.
func (it *chunkListIterator) AtST() int64 {
	if !it.hasST {
		return 0
	}
	return it.cur.AtST()
}
