package bucketstore

import (
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
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/downsample"
	"github.com/vigilhq/vigil/internal/storeapi"
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
}

func newBlock(m *meta, bkt objstore.BucketReader, r *index.Reader, ri *remoteIndex) *loadedBlock {
	b := &loadedBlock{meta: m, id: m.ULID, ext: m.extLabels(), bkt: bkt, index: r, ri: ri,
		seriesEst: minSeriesEstimate, chunkEst: defaultChunkSize}
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

// indexErr adds the bucket error behind a failed index read, if any.
func (b *loadedBlock) indexErr(what string, err error) error {
	if ferr := b.ri.err(); ferr != nil {
		return fmt.Errorf("%s in block %s: %w (bucket: %v)", what, b.id, err, ferr)
	}
	return fmt.Errorf("%s in block %s: %w", what, b.id, err)
}

// postings returns the sorted series references matching ms.
func (b *loadedBlock) postings(ctx context.Context, ms []*labels.Matcher) (index.Postings, error) {
	if len(ms) == 0 {
		k, v := index.AllPostingsKey()
		return b.index.Postings(ctx, k, v)
	}
	p, err := tsdb.PostingsForMatchers(ctx, b.index, ms...)
	if err != nil {
		return nil, b.indexErr("read postings", err)
	}
	return p, nil
}

// rawSeries is one series read from the block: labels as stored, and chunks in range.
type rawSeries struct {
	lset   labels.Labels
	chunks []*storepb.AggrChunk
}

// readSeries reads the series of refs (sorted) that have chunks overlapping [mint, maxt],
// with those chunks unless skipChunks. Downsampled chunks (encoding 0xFF) are served as
// the aggregates in aggrs. It returns how many chunk data bytes it holds.
func (b *loadedBlock) readSeries(ctx context.Context, refs []storage.SeriesRef, mint, maxt int64, skipChunks bool, aggrs []storepb.Aggr) ([]rawSeries, int64, error) {
	bufs, err := b.fetchSeries(ctx, refs)
	if err != nil {
		return nil, 0, fmt.Errorf("fetch series of block %s: %w", b.id, err)
	}
	var (
		out     = make([]rawSeries, 0, len(refs))
		builder labels.ScratchBuilder
		chks    []chunks.Meta
		want    []chunks.Meta
		owners  []int
	)
	for _, ref := range refs {
		if err := b.decodeSeries(ctx, bufs, ref, &builder, &chks); err != nil {
			return nil, 0, fmt.Errorf("read series %d of block %s: %w", ref, b.id, err)
		}
		n := 0
		for _, c := range chks {
			if c.MaxTime >= mint && c.MinTime <= maxt {
				n++
				if !skipChunks {
					want = append(want, c)
					owners = append(owners, len(out))
				}
			}
		}
		if n == 0 {
			continue // no data in range
		}
		out = append(out, rawSeries{lset: builder.Labels(), chunks: make([]*storepb.AggrChunk, 0, n)})
	}
	if skipChunks || len(want) == 0 {
		return out, 0, nil
	}
	data, err := b.fetchChunks(ctx, want)
	if err != nil {
		return nil, 0, err
	}
	var total int64
	served := make([]storepb.AggrChunk, len(want))
	raws := make([]storepb.Chunk, len(want))
	for i, c := range want {
		served[i].MinTime, served[i].MaxTime = c.MinTime, c.MaxTime
		if chunkenc.Encoding(data[i].enc) == downsample.EncAggr {
			if err := fillAggregates(&served[i], downsample.AggrChunk(data[i].data), aggrs); err != nil {
				return nil, 0, fmt.Errorf("chunk %d of series %s in block %s: %w", c.Ref, out[owners[i]].lset, b.id, err)
			}
			total += int64(storeapi.AggrChunkBytes(&served[i]))
		} else {
			raws[i].Type = storepb.Chunk_Encoding(data[i].enc - 1)
			raws[i].Data = data[i].data
			total += int64(len(data[i].data))
			raws[i].Hash = xxhash.Sum64(data[i].data)
			served[i].Raw = &raws[i]
		}
		out[owners[i]].chunks = append(out[owners[i]].chunks, &served[i])
	}
	return out, total, nil
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

// fetchChunks reads the chunks (in any order) by merged range reads per segment file,
// returning them in the order given.
func (b *loadedBlock) fetchChunks(ctx context.Context, metas []chunks.Meta) ([]chunkData, error) {
	order := make([]int, len(metas))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(x, y int) int { return cmp.Compare(metas[x].Ref, metas[y].Ref) })
	out := make([]chunkData, len(metas))
	for i := 0; i < len(order); {
		seq, off := chunks.BlockChunkRef(metas[order[i]].Ref).Unpack()
		start, end := off, off+b.chunkEst
		j := i + 1
		for ; j < len(order); j++ {
			s2, o2 := chunks.BlockChunkRef(metas[order[j]].Ref).Unpack()
			if s2 != seq || o2 > end+maxRangeGap || o2+b.chunkEst-start > maxRangeSize {
				break
			}
			end = max(end, o2+b.chunkEst)
		}
		buf, err := b.readChunkRange(ctx, seq, start, end)
		if err != nil {
			return nil, err
		}
		used := 0
		for k := i; k < j; k++ {
			_, o := chunks.BlockChunkRef(metas[order[k]].Ref).Unpack()
			cd, err := b.parseChunk(ctx, seq, o, buf[min(o-start, len(buf)):])
			if err != nil {
				return nil, err
			}
			out[order[k]] = cd
			used += len(cd.data)
		}
		if used*2 < len(buf) {
			// Mostly gaps and read-ahead: keep only the chunks, so what the chunk pool
			// counts is what stays in memory.
			compactChunks(out, order[i:j], used)
		}
		i = j
	}
	return out, nil
}

// compactChunks copies the chunks at idx into one slab of size used.
func compactChunks(out []chunkData, idx []int, used int) {
	slab := make([]byte, 0, used)
	for _, k := range idx {
		n := len(slab)
		slab = append(slab, out[k].data...)
		out[k].data = slab[n:len(slab):len(slab)]
	}
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

// parseChunk decodes the chunk at the start of buf (uvarint length, encoding byte,
// data, CRC32), reading it alone when it runs past buf (larger than estimated).
func (b *loadedBlock) parseChunk(ctx context.Context, seq, off int, buf []byte) (chunkData, error) {
	n, w := binary.Uvarint(buf)
	if w > 0 && len(buf) >= w+1+int(n) {
		return chunkData{enc: buf[w], data: buf[w+1 : w+1+int(n)]}, nil
	}
	if w <= 0 {
		head, err := b.readChunkRange(ctx, seq, off, off+binary.MaxVarintLen32)
		if err != nil {
			return chunkData{}, err
		}
		if n, w = binary.Uvarint(head); w <= 0 {
			return chunkData{}, fmt.Errorf("corrupt chunk length at %d:%d in block %s", seq, off, b.id)
		}
	}
	full, err := b.readChunkRange(ctx, seq, off, off+w+1+int(n))
	if err != nil {
		return chunkData{}, err
	}
	if len(full) < w+1+int(n) {
		return chunkData{}, fmt.Errorf("chunk %d:%d in block %s is truncated", seq, off, b.id)
	}
	return chunkData{enc: full[w], data: full[w+1 : w+1+int(n)]}, nil
}
