package bucketstore

import (
	"bufio"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/downsample"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// Defaults used when meta.json carries no index statistics.
const (
	minSeriesEstimate = 256      // bytes per series entry read ahead when fetching series
	defaultChunkSize  = 16000    // bytes read per chunk when its size is unknown
	maxRangeGap       = 64 << 10 // ranges closer than this are fetched as one
	maxRangeSize      = 16 << 20 // no single range read above this
)

// loadedBlock is one loaded block: its meta, the index reader over the index-header and the
// bucket, and what it needs to read chunks.
type loadedBlock struct {
	meta      *meta
	id        ulid.ULID
	ext       labels.Labels
	bkt       objstore.BucketReader
	index     *index.Reader
	ri        *remoteIndex
	dec       *index.Decoder // decodes series entries read by this package, not the reader
	seriesEst int            // bytes read ahead per series entry
	chunkEst  int            // bytes read per chunk
	// ownExtNames is set when the index holds labels named like the block's external
	// labels: the re-sort after adding them must then be conservative.
	ownExtNames bool
	// inflight counts queries reading the block, so a dropped block closes after them.
	inflight sync.WaitGroup
	// avgChunk is the average chunk size of the last batch read, for batch estimates.
	avgChunk avgChunkSize
	window   int // chunk stream window (chunkWindow; tests lower it)
}

func newBlock(m *meta, bkt objstore.BucketReader, r *index.Reader, ri *remoteIndex) *loadedBlock {
	b := &loadedBlock{meta: m, id: m.ULID, ext: m.extLabels(), bkt: bkt, index: r, ri: ri,
		seriesEst: minSeriesEstimate, chunkEst: defaultChunkSize, window: chunkWindow}
	if s := m.Thanos.IndexStats.SeriesMaxSize; s > 0 {
		b.seriesEst = int(s)
	} else if m.Stats.NumSeries > 0 {
		if toc, err := index.NewTOCFromByteSlice(ri); err == nil && toc.LabelIndices > toc.Series {
			b.seriesEst = max(minSeriesEstimate, int(2*(toc.LabelIndices-toc.Series)/m.Stats.NumSeries))
		}
	}
	if s := m.Thanos.IndexStats.ChunkMaxSize; s > 0 {
		b.chunkEst = int(s)
	}
	names, _ := r.LabelNames(context.Background())
	b.ownExtNames = slices.ContainsFunc(names, b.ext.Has)
	b.dec = newSeriesDecoder(ri, r, names)
	return b
}

// newSeriesDecoder decodes series entries with symbols from the local index-header;
// label names, few and hot, are looked up once.
func newSeriesDecoder(ri *remoteIndex, r *index.Reader, names []string) *index.Decoder {
	dec := &index.Decoder{DecodePostings: index.DecodePostingsRaw}
	toc, err := index.NewTOCFromByteSlice(ri)
	if err != nil {
		dec.LookupSymbol = func(context.Context, uint32) (string, error) { return "", err }
		return dec
	}
	syms, err := index.NewSymbols(ri, r.Version(), int(toc.Symbols))
	if err != nil {
		dec.LookupSymbol = func(context.Context, uint32) (string, error) { return "", err }
		return dec
	}
	nameSyms := make(map[uint32]string, len(names))
	for _, n := range names {
		if off, err := syms.ReverseLookup(n); err == nil {
			nameSyms[off] = n
		}
	}
	dec.LookupSymbol = func(_ context.Context, o uint32) (string, error) {
		if n, ok := nameSyms[o]; ok {
			return n, nil
		}
		return syms.Lookup(o)
	}
	return dec
}

func (b *loadedBlock) close() error {
	err := b.index.Close()
	if b.ri.mmap != nil {
		err = errors.Join(err, b.ri.mmap.Close())
	}
	return err
}

// indexErr explains a failed read through the index reader: the request's own end if
// it is over (the reader's bucket reads end with it), else the bucket error behind it,
// if any.
func (b *loadedBlock) indexErr(ctx context.Context, what string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%s in block %s: %w", what, b.id, cerr)
	}
	if ferr := b.ri.err(); ferr != nil {
		return fmt.Errorf("%s in block %s: %w (bucket: %v)", what, b.id, err, ferr)
	}
	return fmt.Errorf("%s in block %s: %w", what, b.id, err)
}

// readIndex runs read through the block's index reader on behalf of the request of
// ctx: bucket reads it starts end when the request does (see readers).
func (b *loadedBlock) readIndex(ctx context.Context, what string, read func() error) error {
	defer b.ri.readers.join(ctx)()
	if err := read(); err != nil {
		return b.indexErr(ctx, what, err)
	}
	return nil
}

// postings returns the sorted series references matching ms.
func (b *loadedBlock) postings(ctx context.Context, ms []*labels.Matcher) (p index.Postings, err error) {
	err = b.readIndex(ctx, "read postings", func() error {
		if len(ms) == 0 {
			k, v := index.AllPostingsKey()
			p, err = b.index.Postings(ctx, k, v)
		} else {
			p, err = tsdb.PostingsForMatchers(ctx, b.index, ms...)
		}
		return err
	})
	return p, err
}

// defaultAggrs are served from downsampled chunks when a request names no aggregate:
// enough to read the average.
var defaultAggrs = []storepb.Aggr{storepb.Aggr_COUNT, storepb.Aggr_SUM}

// fillAggregates sets the fields of out for the requested aggregates of the downsampled
// chunk ac (RAW does not apply to it and is ignored). The sub-chunks share memory with ac.
// A requested aggregate missing from the chunk is an error.
func fillAggregates(out *storepb.AggrChunk, ac downsample.AggrChunk, aggrs []storepb.Aggr) error {
	if !slices.ContainsFunc(aggrs, func(a storepb.Aggr) bool { return a != storepb.Aggr_RAW }) {
		aggrs = defaultAggrs
	}
	for _, a := range aggrs {
		var (
			t   downsample.AggrType
			dst **storepb.Chunk
		)
		switch a {
		case storepb.Aggr_RAW:
			continue
		case storepb.Aggr_COUNT:
			t, dst = downsample.AggrCount, &out.Count
		case storepb.Aggr_SUM:
			t, dst = downsample.AggrSum, &out.Sum
		case storepb.Aggr_MIN:
			t, dst = downsample.AggrMin, &out.Min
		case storepb.Aggr_MAX:
			t, dst = downsample.AggrMax, &out.Max
		case storepb.Aggr_COUNTER:
			t, dst = downsample.AggrCounter, &out.Counter
		default:
			return fmt.Errorf("unknown aggregate %v requested", a)
		}
		if *dst != nil {
			continue // asked twice
		}
		sub, err := ac.Get(t)
		if err != nil {
			return err
		}
		d := sub.Bytes()
		*dst = &storepb.Chunk{Type: storepb.Chunk_Encoding(sub.Encoding() - 1), Data: d, Hash: xxhash.Sum64(d)}
	}
	return nil
}

// seriesRanges turns series references into merged index byte ranges to read ahead.
func (b *loadedBlock) seriesRanges(refs []storage.SeriesRef) []localRange {
	var out []localRange
	for _, ref := range refs {
		start := int(ref) * 16 // index v2: series are 16-byte aligned, ref = offset/16
		if b.index.Version() == index.FormatV1 {
			start = int(ref)
		}
		end := min(start+b.seriesEst, b.ri.size)
		if n := len(out); n > 0 && start <= out[n-1].end+maxRangeGap && end-out[n-1].start <= maxRangeSize {
			out[n-1].end = max(out[n-1].end, end)
			continue
		}
		out = append(out, localRange{start, end})
	}
	return out
}

// seriesBuf is a range of the index's series section held by one request.
type seriesBuf struct {
	start int
	b     []byte
}

// fetchSeries reads the index ranges holding refs, from the index cache when it has them.
// The request keeps its own references, so a small cache cannot evict what it still needs.
func (b *loadedBlock) fetchSeries(ctx context.Context, refs []storage.SeriesRef) ([]seriesBuf, error) {
	ranges := b.seriesRanges(refs)
	out := make([]seriesBuf, 0, len(ranges))
	for _, rg := range ranges {
		if c, ok := b.ri.cache.Get(b.id, rg.start, rg.end); ok {
			out = append(out, seriesBuf{rg.start, c})
			continue
		}
		buf, err := b.ri.fetch(ctx, rg.start, rg.end)
		if err != nil {
			return nil, err
		}
		b.ri.cache.Put(b.id, rg.start, buf)
		out = append(out, seriesBuf{rg.start, buf})
	}
	return out, nil
}

// decodeSeries decodes the series entry of ref (uvarint length, data, CRC32) from bufs,
// reading it alone when it runs past the prefetched range.
func (b *loadedBlock) decodeSeries(ctx context.Context, bufs []seriesBuf, ref storage.SeriesRef, builder *labels.ScratchBuilder, chks *[]chunks.Meta) error {
	off := int(ref) * 16
	if b.index.Version() == index.FormatV1 {
		off = int(ref)
	}
	i := sort.Search(len(bufs), func(i int) bool { return bufs[i].start > off }) - 1
	var entry []byte
	if i >= 0 && off < bufs[i].start+len(bufs[i].b) {
		entry = bufs[i].b[off-bufs[i].start:]
	}
	n, w := binary.Uvarint(entry)
	if w <= 0 || len(entry) < w+int(n) {
		head, err := b.ri.fetch(ctx, off, min(off+binary.MaxVarintLen32, b.ri.size))
		if err != nil {
			return err
		}
		if n, w = binary.Uvarint(head); w <= 0 {
			return fmt.Errorf("corrupt series entry length at offset %d", off)
		}
		if entry, err = b.ri.fetch(ctx, off, min(off+w+int(n)+4, b.ri.size)); err != nil {
			return err
		}
		if len(entry) < w+int(n) {
			return fmt.Errorf("series entry at offset %d is truncated", off)
		}
	}
	return b.dec.Series(entry[w:w+int(n)], builder, chks)
}

// chunkData is one chunk's encoding and bytes.
type chunkData struct {
	enc  byte
	data []byte
}

// chunkWindow is how far past a needed chunk a chunk stream reads: one range read
// serves all batches of a block whose chunks lie within it.
const chunkWindow = maxRangeSize

// chunkStream is one block's open range read of a chunk segment file, kept across the
// batches of a request: a block's batches need its chunks mostly in file order (series are
// read in reference order, and a block's chunks are written in series order), so the next
// batch's chunks usually come further down the same stream. Only the chunks' bytes are
// copied out; the gaps between them are read and dropped, never held.
type chunkStream struct {
	b        *loadedBlock
	rc       io.ReadCloser
	br       *bufio.Reader
	seq      int
	pos, end int // stream position and end (exclusive) in the segment file
	opens    int // range reads started, for tests
}

func (cs *chunkStream) close() {
	if cs.rc != nil {
		cs.rc.Close()
		cs.rc = nil
		cs.br.Reset(nil)
		bufReaders.Put(cs.br)
		cs.br = nil
	}
}

// open starts a range read of segment file seq at off. It reaches the end of what the
// batch needs in this file (upto), plus the largest chunk size for a last chunk longer
// than estimated; when more batches will follow, at least the window, for them.
func (cs *chunkStream) open(ctx context.Context, seq, off, need, upto int, more bool) error {
	cs.close()
	name := fmt.Sprintf("%s/chunks/%06d", cs.b.id, seq+1)
	end := max(off+need, upto+cs.b.chunkEst)
	if more {
		end = max(end, off+cs.b.window)
	}
	rc, err := cs.b.bkt.GetRange(ctx, name, int64(off), int64(end-off))
	if err != nil {
		return fmt.Errorf("read %s [%d,%d): %w", name, off, end, err)
	}
	cs.opens++
	cs.rc, cs.seq, cs.pos, cs.end = rc, seq, off, end
	cs.br = bufReaders.Get().(*bufio.Reader)
	cs.br.Reset(rc)
	return nil
}

// fetchChunks reads the chunks (in any order; est holds their estimated sizes) through
// cs, returning them in the order given, copied into slabs sized by the estimates. more
// says whether later batches will read further chunks of the block.
func (b *loadedBlock) fetchChunks(ctx context.Context, cs *chunkStream, metas []chunks.Meta, est []int, more bool) ([]chunkData, error) {
	order := make([]int, len(metas))
	total := 0
	for i := range order {
		order[i] = i
		total += est[i]
	}
	slices.SortFunc(order, func(x, y int) int { return cmp.Compare(metas[x].Ref, metas[y].Ref) })
	out := make([]chunkData, len(metas))
	sl := slab{b: make([]byte, 0, total), next: total / 4}
	upto := 0 // end of the last chunk of the current segment file's run in order
	for i, k := range order {
		seq, off := chunks.BlockChunkRef(metas[k].Ref).Unpack()
		if i == 0 || seq != segmentOf(metas[order[i-1]]) {
			for _, k2 := range order[i:] {
				s2, o2 := chunks.BlockChunkRef(metas[k2].Ref).Unpack()
				if s2 != seq {
					break
				}
				upto = o2 + est[k2] + chunkTail
			}
		}
		cd, err := cs.read(ctx, seq, off, est[k]+chunkTail, upto, more, &sl)
		if err != nil {
			return nil, err
		}
		out[k] = cd
	}
	return out, nil
}

// read returns the chunk at off of segment file seq, from the open stream when it gets
// there soon enough (less than maxRangeGap ahead), else from a new one. A chunk the stream
// cannot complete (it ends first) is read again on a fresh stream starting at it.
func (cs *chunkStream) read(ctx context.Context, seq, off, need, upto int, more bool, sl *slab) (chunkData, error) {
	for attempt := 0; ; attempt++ {
		if cs.rc == nil || cs.seq != seq || off < cs.pos || off > cs.pos+maxRangeGap || off+need > cs.end || attempt > 0 {
			if attempt > 1 {
				return chunkData{}, fmt.Errorf("chunk %d:%d in block %s is truncated", seq, off, cs.b.id)
			}
			if err := cs.open(ctx, seq, off, need, upto, more); err != nil {
				return chunkData{}, err
			}
		}
		if _, err := cs.br.Discard(off - cs.pos); err != nil {
			if !isShortRead(err) {
				return chunkData{}, fmt.Errorf("read chunks of block %s: %w", cs.b.id, err)
			}
			cs.close()
			continue
		}
		cs.pos = off
		cd, n, err := readChunkFrom(cs.br, sl)
		cs.pos += n
		if err == nil {
			return cd, nil
		}
		if !isShortRead(err) {
			return chunkData{}, fmt.Errorf("read chunk %d:%d of block %s: %w", seq, off, cs.b.id, err)
		}
		cs.close()
		// The stream ended inside the chunk: read it on a stream of its own, as long as
		// its header says.
		if n > 0 && attempt == 0 {
			if l, w, ok := cs.peekLength(ctx, seq, off); ok {
				need = w + 1 + int(l) + 4
			}
		}
	}
}

// peekLength reads the length header of the chunk at off.
func (cs *chunkStream) peekLength(ctx context.Context, seq, off int) (uint64, int, bool) {
	head, err := cs.b.readChunkRange(ctx, seq, off, off+binary.MaxVarintLen32)
	if err != nil {
		return 0, 0, false
	}
	l, w := binary.Uvarint(head)
	return l, w, w > 0
}

func segmentOf(m chunks.Meta) int {
	seq, _ := chunks.BlockChunkRef(m.Ref).Unpack()
	return seq
}

// chunkTail is the bytes around a chunk's data: at most 5 of length, the encoding and a
// CRC32.
const chunkTail = binary.MaxVarintLen32 + 1 + 4

// slab hands out chunk buffers from large allocations: a new one (of at least next bytes)
// when the current is full. Handed-out slices stay valid.
type slab struct {
	b    []byte
	next int
}

func (s *slab) take(n int) []byte {
	if cap(s.b)-len(s.b) < n {
		s.b = make([]byte, 0, max(n, s.next, 4<<10))
	}
	l := len(s.b)
	s.b = s.b[:l+n]
	return s.b[l : l+n : l+n]
}

// bufReaders are the buffered readers chunk streams are read through.
var bufReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// readChunkFrom reads one chunk (uvarint length, encoding, data; the CRC32 is left in the
// stream) from br into sl, returning it and the bytes consumed.
func readChunkFrom(br *bufio.Reader, sl *slab) (chunkData, int, error) {
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return chunkData{}, 0, err
	}
	w := uvarintLen(n)
	if n > maxRangeSize {
		return chunkData{}, w, fmt.Errorf("corrupt chunk length %d", n)
	}
	enc, err := br.ReadByte()
	if err != nil {
		return chunkData{}, w, err
	}
	d := sl.take(int(n))
	if _, err := io.ReadFull(br, d); err != nil {
		return chunkData{}, w + 1, err
	}
	return chunkData{enc: enc, data: d}, w + 1 + int(n), nil
}

func uvarintLen(n uint64) int {
	w := 1
	for ; n >= 0x80; n >>= 7 {
		w++
	}
	return w
}

func isShortRead(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// readChunkRange reads [start, end) of segment file seq; a short read at the end of the
// file is fine.
func (b *loadedBlock) readChunkRange(ctx context.Context, seq, start, end int) ([]byte, error) {
	name := fmt.Sprintf("%s/chunks/%06d", b.id, seq+1)
	rc, err := b.bkt.GetRange(ctx, name, int64(start), int64(end-start))
	if err != nil {
		return nil, fmt.Errorf("read %s [%d,%d): %w", name, start, end, err)
	}
	defer rc.Close()
	buf := make([]byte, end-start)
	n, err := io.ReadFull(rc, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read %s [%d,%d): %w", name, start, end, err)
	}
	return buf[:n], nil
}
