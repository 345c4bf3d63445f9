package downsample

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"

	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// DefaultReadAhead is how much of a segment file a FileChunkReader reads at once unless
// told otherwise.
const DefaultReadAhead = 1 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// WithFileChunks returns b with its chunks read by a FileChunkReader over dir/chunks
// (dir is b's block directory) instead of through Prometheus's memory map. Use it for
// one pass over a whole block (compaction, downsampling): the pages of a mapped file
// that a pass has read stay in the process's resident set until the block is closed, so
// a mapped pass over a block holds as much resident memory as the block's chunks. Read
// with pread, they only go through the page cache, which the kernel can reclaim.
//
// readAhead is how much of a file each read takes (0 means DefaultReadAhead): a
// compaction of many blocks at once gives each a smaller share.
func WithFileChunks(b tsdb.BlockReader, dir string, pool chunkenc.Pool, readAhead int) tsdb.BlockReader {
	return fileChunksBlock{BlockReader: b, dir: dir, pool: pool, readAhead: readAhead}
}

type fileChunksBlock struct {
	tsdb.BlockReader
	dir       string
	pool      chunkenc.Pool
	readAhead int
}

func (b fileChunksBlock) Chunks() (tsdb.ChunkReader, error) {
	r, err := OpenFileChunkReader(filepath.Join(b.dir, "chunks"), b.pool)
	if err == nil && b.readAhead > 0 {
		r.readAhead = b.readAhead
	}
	return r, err
}

// FileChunkReader reads the chunks of a block's segment files with pread, 1 MiB of a
// file at a time (DefaultReadAhead); it suits reading chunks in file order, as compaction and downsampling
// do. A returned chunk's bytes stay valid after later reads (windows are never reused).
// It is safe for concurrent use.
type FileChunkReader struct {
	pool      chunkenc.Pool
	files     []*os.File
	sizes     []int64
	readAhead int

	mu     sync.Mutex
	seg    int
	off    int64
	window []byte
}

// OpenFileChunkReader opens the segment files in dir (a block's chunks directory). pool
// nil means chunkenc.NewPool().
func OpenFileChunkReader(dir string, pool chunkenc.Pool) (*FileChunkReader, error) {
	if pool == nil {
		pool = chunkenc.NewPool()
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if _, err := strconv.ParseUint(e.Name(), 10, 64); err == nil {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names) // zero-padded sequence numbers: the segment index is the position
	r := &FileChunkReader{pool: pool, seg: -1, readAhead: DefaultReadAhead}
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			r.Close()
			return nil, err
		}
		r.files = append(r.files, f)
		st, err := f.Stat()
		if err != nil {
			r.Close()
			return nil, err
		}
		r.sizes = append(r.sizes, st.Size())
		var hdr [chunks.SegmentHeaderSize]byte
		if _, err := f.ReadAt(hdr[:], 0); err != nil {
			r.Close()
			return nil, fmt.Errorf("read header of chunk segment %s: %w", n, err)
		}
		if m := binary.BigEndian.Uint32(hdr[:chunks.MagicChunksSize]); m != chunks.MagicChunks {
			r.Close()
			return nil, fmt.Errorf("chunk segment %s: invalid magic number %x", n, m)
		}
		if v := hdr[chunks.MagicChunksSize]; v != 1 {
			r.Close()
			return nil, fmt.Errorf("chunk segment %s: invalid chunk format version %d", n, v)
		}
	}
	return r, nil
}

// bytes returns n bytes of segment seg at off, or fewer at the end of the file.
func (r *FileChunkReader) bytes(seg int, off int64, n int) ([]byte, error) {
	if seg == r.seg && off >= r.off && off+int64(n) <= r.off+int64(len(r.window)) {
		return r.window[off-r.off : off-r.off+int64(n)], nil
	}
	size := r.sizes[seg]
	if off >= size {
		return nil, fmt.Errorf("chunk offset %d beyond the end of segment %d (%d bytes)", off, seg, size)
	}
	w := make([]byte, min(int64(max(n, r.readAhead)), size-off))
	if _, err := r.files[seg].ReadAt(w, off); err != nil {
		return nil, fmt.Errorf("read segment %d at %d: %w", seg, off, err)
	}
	r.seg, r.off, r.window = seg, off, w
	return w[:min(n, len(w))], nil
}

// ChunkOrIterable implements tsdb.ChunkReader: it reads the chunk meta.Ref points to and
// checks its checksum.
func (r *FileChunkReader) ChunkOrIterable(meta chunks.Meta) (chunkenc.Chunk, chunkenc.Iterable, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seg, start := chunks.BlockChunkRef(meta.Ref).Unpack()
	if seg >= len(r.files) {
		return nil, nil, fmt.Errorf("segment index %d out of range", seg)
	}
	off := int64(start)
	b, err := r.bytes(seg, off, chunks.MaxChunkLengthFieldSize)
	if err != nil {
		return nil, nil, err
	}
	dataLen, n := binary.Uvarint(b)
	if n <= 0 {
		return nil, nil, fmt.Errorf("reading chunk length failed with %d", n)
	}
	total := n + chunks.ChunkEncodingSize + int(dataLen) + crc32.Size
	if b, err = r.bytes(seg, off, total); err != nil {
		return nil, nil, err
	}
	if len(b) < total {
		return nil, nil, fmt.Errorf("segment %d does not hold the chunk at %d: %d bytes needed, %d left", seg, off, total, len(b))
	}
	encAndData := b[n : total-crc32.Size]
	if crc32.Checksum(encAndData, castagnoli) != binary.BigEndian.Uint32(b[total-crc32.Size:]) {
		return nil, nil, errors.New("checksum mismatch")
	}
	chk, err := r.pool.Get(chunkenc.Encoding(encAndData[0]), encAndData[1:])
	return chk, nil, err
}

// Close closes the segment files.
func (r *FileChunkReader) Close() error {
	var errs []error
	for _, f := range r.files {
		errs = append(errs, f.Close())
	}
	r.files = nil
	return errors.Join(errs...)
}
