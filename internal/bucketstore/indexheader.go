package bucketstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/tsdb/fileutil"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/thanos-io/objstore"
)

// The index-header is the part of a block's index the store keeps locally: the header,
// the symbol table, the postings offset table and the table of contents. It is written
// as a sparse file of the index's full size holding those sections at their original
// offsets, so Prometheus' own index reader works on it unchanged; every other range
// (postings lists, series) is read from the bucket on demand and cached. The file is a
// local cache only and is never uploaded.
const (
	indexHeaderFile = "index-header"
	headerOKFile    = "index-header.ok" // written last: a header without it is rebuilt
	tocLen          = 6*8 + 4
	headerLen       = 5
	// readAhead is the minimum size of an on-demand index read: a postings list is read
	// as a 4-byte length and then its body, which one read then usually serves.
	readAhead = 16 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// localRange is a byte range of the index held in the local index-header.
type localRange struct{ start, end int }

// remoteIndex is an index.ByteSlice over a block's index: local sections from the
// mmapped index-header, everything else from the segment cache or the bucket.
type remoteIndex struct {
	// readers are the requests reading through the index reader now, whose context
	// its bucket reads run with (see readers).
	readers readers
	id      ulid.ULID
	name    string // object name of the index
	size    int
	bkt     objstore.BucketReader
	cache   *SegmentCache
	mmap    *fileutil.MmapFile
	local   []localRange
	fetchs  *atomic.Int64 // bucket range reads, for metrics
	// lastErr keeps the last bucket error: ByteSlice cannot return one, so the reader
	// reports a short read and the caller asks here why.
	lastErr atomic.Pointer[error]
}

// Len implements index.ByteSlice.
func (r *remoteIndex) Len() int { return r.size }

// Sub implements index.ByteSlice.
func (r *remoteIndex) Sub(start, end int) index.ByteSlice {
	return realSlice(r.Range(start, end))
}

// Range implements index.ByteSlice. A failed bucket read returns bytes the index reader
// rejects as invalid; err() says what happened.
func (r *remoteIndex) Range(start, end int) []byte {
	if start < 0 || end > r.size || start > end {
		return failedRange(end - start)
	}
	if start == 0 && end == r.size {
		// Prometheus' symbol table decodes from a slice of the whole index but only reads
		// the symbols section, which the sparse index-header holds.
		return r.mmap.Bytes()
	}
	for _, l := range r.local {
		if start >= l.start && end <= l.end {
			return r.mmap.Bytes()[start:end]
		}
	}
	if b, ok := r.cache.Get(r.id, start, end); ok {
		return b
	}
	// Read ahead only what the cache can keep: a segment it rejects is read again.
	ahead := min(readAhead, int(min(r.cache.max/8, r.cache.itemLimit())))
	fetchEnd := min(max(end, start+ahead), r.size)
	b, err := r.fetch(r.readers.fetchContext(), start, fetchEnd)
	if err != nil {
		// A read cut short because its requests gave up is their own end, which they
		// report themselves; it would only be a stale cause for a later failure.
		if !errors.Is(err, context.Canceled) {
			r.lastErr.Store(&err)
		}
		return failedRange(end - start)
	}
	r.cache.Put(r.id, start, b)
	return b[:end-start]
}

// readers tracks the requests reading through a block's index reader. The reader's
// ByteSlice carries no context, so a bucket read it starts runs with a context of its
// own that ends once every request reading has ended or given up: a query past its
// deadline does not stay stuck behind a hanging object store, and a read that another
// request still waits for is not cut short.
type readers struct {
	mu     sync.Mutex
	n      int // requests reading
	ctx    context.Context
	cancel context.CancelFunc
}

// join registers a request reading with ctx until the returned function is called.
func (rs *readers) join(ctx context.Context) (leave func()) {
	rs.mu.Lock()
	if rs.n == 0 {
		rs.ctx, rs.cancel = context.WithCancel(context.Background())
	}
	rs.n++
	rs.mu.Unlock()
	var once sync.Once
	gone := func() {
		once.Do(func() {
			rs.mu.Lock()
			defer rs.mu.Unlock()
			if rs.n--; rs.n == 0 {
				rs.cancel()
			}
		})
	}
	stop := context.AfterFunc(ctx, gone)
	return func() {
		stop()
		gone()
	}
}

// fetchContext is the context of a bucket read: that of the requests reading, or, for
// a read outside any request (building the index-header), one that never ends.
func (rs *readers) fetchContext() context.Context {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.n == 0 {
		return context.Background()
	}
	return rs.ctx
}

// failedRange stands in for bytes that could not be read. All 0xFF makes every decoder
// fail (a length of 4 GiB, an overflowing varint) instead of reading zeros as an empty
// list; the caller then reports err().
func failedRange(n int) []byte {
	b := make([]byte, max(n, 0))
	for i := range b {
		b[i] = 0xff
	}
	return b
}

// err returns the last bucket error seen, if any.
func (r *remoteIndex) err() error {
	if p := r.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// fetch reads index bytes [start, end) from the bucket.
func (r *remoteIndex) fetch(ctx context.Context, start, end int) ([]byte, error) {
	r.fetchs.Add(1)
	rc, err := r.bkt.GetRange(ctx, r.name, int64(start), int64(end-start))
	if err != nil {
		return nil, fmt.Errorf("read %s [%d,%d): %w", r.name, start, end, err)
	}
	defer rc.Close()
	b := make([]byte, end-start)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("read %s [%d,%d): %w", r.name, start, end, err)
	}
	return b, nil
}

type realSlice []byte

func (b realSlice) Len() int                           { return len(b) }
func (b realSlice) Range(start, end int) []byte        { return b[start:end] }
func (b realSlice) Sub(start, end int) index.ByteSlice { return b[start:end] }

// openIndexHeader opens (building it first if needed) the index-header of block id in
// dir and returns the reader over the whole index.
func openIndexHeader(ctx context.Context, bkt objstore.BucketReader, cache *SegmentCache, id ulid.ULID, dir string, fetchs *atomic.Int64) (*index.Reader, *remoteIndex, error) {
	name := id.String() + "/index"
	attrs, err := bkt.Attributes(ctx, name)
	if err != nil {
		return nil, nil, fmt.Errorf("stat %s: %w", name, err)
	}
	ri := &remoteIndex{id: id, name: name, size: int(attrs.Size), bkt: bkt, cache: cache, fetchs: fetchs}
	if ri.size < headerLen+tocLen {
		return nil, nil, fmt.Errorf("index of block %s is too small (%d bytes)", id, ri.size)
	}
	path := filepath.Join(dir, indexHeaderFile)
	local, err := loadHeader(dir, ri.size)
	if err != nil {
		if local, err = buildHeader(ctx, ri, dir); err != nil {
			return nil, nil, fmt.Errorf("build index-header of block %s: %w", id, err)
		}
	}
	ri.local = local
	if ri.mmap, err = fileutil.OpenMmapFile(path); err != nil {
		return nil, nil, fmt.Errorf("mmap index-header of block %s: %w", id, err)
	}
	r, err := index.NewReader(ri, index.DecodePostingsRaw)
	if err != nil {
		ri.mmap.Close()
		if ferr := ri.err(); ferr != nil {
			err = fmt.Errorf("%w (bucket: %v)", err, ferr)
		}
		return nil, nil, fmt.Errorf("open index of block %s: %w", id, err)
	}
	return r, ri, nil
}

// loadHeader reuses an index-header built earlier for an index of this size.
func loadHeader(dir string, size int) ([]localRange, error) {
	st, err := os.Stat(filepath.Join(dir, indexHeaderFile))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, headerOKFile)); err != nil {
		return nil, err
	}
	if int(st.Size()) != size {
		return nil, errors.New("index-header size does not match the index")
	}
	f, err := os.Open(filepath.Join(dir, indexHeaderFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	toc := make([]byte, tocLen)
	if _, err := f.ReadAt(toc, int64(size-tocLen)); err != nil {
		return nil, err
	}
	return sectionsFromTOC(f, toc, size)
}

// buildHeader range-reads the header, TOC, symbols and postings offset table and writes
// them into a sparse local file.
func buildHeader(ctx context.Context, ri *remoteIndex, dir string) ([]localRange, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	_ = os.Remove(filepath.Join(dir, headerOKFile))
	path := filepath.Join(dir, indexHeaderFile)
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := f.Truncate(int64(ri.size)); err != nil {
		return nil, err
	}
	copyRange := func(start, end int) ([]byte, error) {
		b, err := ri.fetch(ctx, start, end)
		if err != nil {
			return nil, err
		}
		_, err = f.WriteAt(b, int64(start))
		return b, err
	}
	head, err := copyRange(0, headerLen)
	if err != nil {
		return nil, err
	}
	if m := binary.BigEndian.Uint32(head); m != index.MagicIndex {
		return nil, fmt.Errorf("invalid index magic %x", m)
	}
	toc, err := copyRange(ri.size-tocLen, ri.size)
	if err != nil {
		return nil, err
	}
	if crc32.Checksum(toc[:tocLen-4], castagnoli) != binary.BigEndian.Uint32(toc[tocLen-4:]) {
		return nil, errors.New("index TOC checksum mismatch")
	}
	symOff, ptOff := int(binary.BigEndian.Uint64(toc[0:8])), int(binary.BigEndian.Uint64(toc[40:48]))
	for _, off := range []int{symOff, ptOff} {
		if off <= 0 || off+8 > ri.size {
			return nil, fmt.Errorf("index section offset %d out of range", off)
		}
		lb, err := copyRange(off, off+4)
		if err != nil {
			return nil, err
		}
		n := int(binary.BigEndian.Uint32(lb))
		if off+4+n+4 > ri.size {
			return nil, fmt.Errorf("index section at %d overruns the index", off)
		}
		if _, err := copyRange(off+4, off+4+n+4); err != nil {
			return nil, err
		}
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	local, err := sectionsFromTOC(f, toc, ri.size)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, headerOKFile), nil, 0o644); err != nil {
		return nil, err
	}
	return local, nil
}

// sectionsFromTOC lists the locally held ranges given the TOC and the header file.
func sectionsFromTOC(f *os.File, toc []byte, size int) ([]localRange, error) {
	out := []localRange{{0, headerLen}, {size - tocLen, size}}
	for _, off := range []int{int(binary.BigEndian.Uint64(toc[0:8])), int(binary.BigEndian.Uint64(toc[40:48]))} {
		lb := make([]byte, 4)
		if _, err := f.ReadAt(lb, int64(off)); err != nil {
			return nil, err
		}
		out = append(out, localRange{off, off + 4 + int(binary.BigEndian.Uint32(lb)) + 4})
	}
	return out, nil
}
