package tsdbstore

import (
	"fmt"
	"math"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"

	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// chunkReader turns the TSDB chunks of a series into StoreAPI chunks. It keeps its
// iterators and buffers across series; one request's stream owns one.
//
// Chunk data is not copied: block and m-mapped head chunks stay valid while the querier
// that produced them is open, which outlives every send of the request, and the chunk
// querier already hands out a copy of a head chunk that is still being appended to
// (tsdb.ChunkReaderWithCopy), with its real max time.
type chunkReader struct {
	it    chunks.Iterator
	smp   chunkenc.Iterator // for re-encoding
	metas []chunks.Meta
}

// wireChunk keeps a chunk's two wire messages in one allocation.
type wireChunk struct {
	aggr storepb.AggrChunk
	raw  storepb.Chunk
}

// read returns the chunks of cs as whole raw chunks, sorted by min time as the TSDB
// yields them. Chunks reaching outside the request are not cut: clients trim samples,
// as with every Thanos store.
func (r *chunkReader) read(cs storage.ChunkSeries) ([]*storepb.AggrChunk, error) {
	r.metas = r.metas[:0]
	defer func() { clear(r.metas) }() // do not pin chunks until the next series
	r.it = cs.Iterator(r.it)
	for r.it.Next() {
		m := r.it.At()
		if m.Chunk == nil || m.Chunk.NumSamples() == 0 {
			continue
		}
		if _, ok := wireEncoding(m.Chunk.Encoding()); ok {
			r.metas = append(r.metas, m)
			continue
		}
		var err error
		if r.metas, err = r.reencode(r.metas, m); err != nil {
			return nil, err
		}
	}
	if err := r.it.Err(); err != nil {
		return nil, fmt.Errorf("iterate chunks: %w", err)
	}
	slab := make([]wireChunk, len(r.metas))
	out := make([]*storepb.AggrChunk, len(r.metas))
	for i, m := range r.metas {
		w := &slab[i]
		w.raw.Type, _ = wireEncoding(m.Chunk.Encoding())
		w.raw.Data = m.Chunk.Bytes()
		w.raw.Hash = xxhash.Sum64(w.raw.Data)
		w.aggr.MinTime, w.aggr.MaxTime, w.aggr.Raw = m.MinTime, m.MaxTime, &w.raw
		out[i] = &w.aggr
	}
	return out, nil
}

// wireEncoding maps a Prometheus chunk encoding to the StoreAPI's, which numbers them one
// lower; ok is false for encodings the StoreAPI cannot carry.
func wireEncoding(e chunkenc.Encoding) (enc storepb.Chunk_Encoding, ok bool) {
	switch e {
	case chunkenc.EncXOR:
		return storepb.Chunk_XOR, true
	case chunkenc.EncHistogram:
		return storepb.Chunk_HISTOGRAM, true
	case chunkenc.EncFloatHistogram:
		return storepb.Chunk_FLOAT_HISTOGRAM, true
	}
	return 0, false
}

// plainEncoding is the StoreAPI-compatible encoding of the same sample type, and the
// value type such chunks hold.
func plainEncoding(e chunkenc.Encoding) (chunkenc.Encoding, chunkenc.ValueType) {
	switch e {
	case chunkenc.EncXOR2:
		return chunkenc.EncXOR, chunkenc.ValFloat
	case chunkenc.EncHistogramST:
		return chunkenc.EncHistogram, chunkenc.ValHistogram
	case chunkenc.EncFloatHistogramST:
		return chunkenc.EncFloatHistogram, chunkenc.ValFloatHistogram
	}
	return chunkenc.EncNone, chunkenc.ValNone
}

// reencode appends to dst the chunk m rewritten in its plain encoding. The start-timestamp
// encodings (a TSDB with st-storage, or float chunk encoding xor2) have no StoreAPI
// number, and the start timestamps they add have no place on the wire. A histogram chunk
// may come out as several when the plain encoding must cut a new chunk.
func (r *chunkReader) reencode(dst []chunks.Meta, m chunks.Meta) ([]chunks.Meta, error) {
	enc, want := plainEncoding(m.Chunk.Encoding())
	if enc == chunkenc.EncNone {
		return dst, fmt.Errorf("chunk encoding %s has no StoreAPI equivalent", m.Chunk.Encoding())
	}
	chk, err := chunkenc.NewEmptyChunk(enc)
	if err != nil {
		return dst, fmt.Errorf("create %s chunk: %w", enc, err)
	}
	app, err := chk.Appender()
	if err != nil {
		return dst, fmt.Errorf("append to %s chunk: %w", enc, err)
	}
	cur := chunks.Meta{Chunk: chk, MinTime: math.MaxInt64}
	r.smp = m.Chunk.Iterator(r.smp)
	for vt := r.smp.Next(); vt != chunkenc.ValNone; vt = r.smp.Next() {
		if vt != want {
			return dst, fmt.Errorf("%s sample in a %s chunk", vt, m.Chunk.Encoding())
		}
		t, next, cut, nextApp, err := appendSample(app, r.smp, vt)
		if err != nil {
			return dst, fmt.Errorf("re-encode %s chunk as %s: %w", m.Chunk.Encoding(), enc, err)
		}
		app = nextApp
		if cut {
			dst = append(dst, cur)
			cur = chunks.Meta{Chunk: next, MinTime: t}
		} else if next != nil {
			cur.Chunk = next // recoded to fit the sample
		}
		cur.MinTime, cur.MaxTime = min(cur.MinTime, t), t
	}
	if err := r.smp.Err(); err != nil {
		return dst, fmt.Errorf("iterate %s chunk: %w", m.Chunk.Encoding(), err)
	}
	if cur.Chunk.NumSamples() > 0 {
		dst = append(dst, cur)
	}
	return dst, nil
}

// appendSample appends the iterator's current sample of type vt. A histogram appender
// may need another chunk: cut reports that next is a new chunk starting with this sample;
// otherwise a non-nil next is the current chunk recoded, which replaces it. The returned
// appender takes the next sample.
func appendSample(app chunkenc.Appender, it chunkenc.Iterator, vt chunkenc.ValueType) (t int64, next chunkenc.Chunk, cut bool, _ chunkenc.Appender, err error) {
	var recoded bool
	switch vt {
	case chunkenc.ValFloat:
		var v float64
		t, v = it.At()
		app.Append(0, t, v)
		return t, nil, false, app, nil
	case chunkenc.ValHistogram:
		var h *histogram.Histogram // not reused: the appender keeps its spans
		t, h = it.AtHistogram(nil)
		next, recoded, app, err = app.AppendHistogram(nil, 0, t, h, false)
	default:
		var fh *histogram.FloatHistogram
		t, fh = it.AtFloatHistogram(nil)
		next, recoded, app, err = app.AppendFloatHistogram(nil, 0, t, fh, false)
	}
	return t, next, next != nil && !recoded, app, err
}
