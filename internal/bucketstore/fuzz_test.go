package bucketstore

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block/blocktest"
)

// FuzzIndexHeader opens the index-header of a block whose index is corrupt (a real
// index with bytes flipped, cut or appended): the store reports an error for that block
// and never panics. Series lookups through an index that opens must not panic either.
func FuzzIndexHeader(f *testing.F) {
	dir := f.TempDir()
	id := blocktest.CreateBlock(f, dir, 0, 7_200_000, 20)
	idx, err := os.ReadFile(filepath.Join(dir, id.String(), "index"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint32(0), byte(0), uint16(0))
	f.Add(uint32(len(idx)-10), byte(0xff), uint16(3))
	f.Add(uint32(100), byte(0x80), uint16(0))
	f.Fuzz(func(t *testing.T, at uint32, xor byte, cut uint16) {
		b := bytes.Clone(idx)
		if n := int(at) % len(b); xor != 0 {
			b[n] ^= xor
		}
		b = b[:len(b)-int(cut)%len(b)]
		bkt := objstore.NewInMemBucket()
		bid := ulid.MustParse(id.String())
		if err := bkt.Upload(context.Background(), bid.String()+"/index", bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		var fetchs atomic.Int64
		r, ri, err := openIndexHeader(context.Background(), bkt, NewSegmentCache(1<<20, nil), bid, t.TempDir(), &fetchs)
		if err != nil {
			return
		}
		defer ri.mmap.Close()
		names, err := r.LabelNames(context.Background())
		if err != nil {
			return
		}
		for _, n := range names {
			_, _ = r.SortedLabelValues(context.Background(), n, nil)
		}
	})
}
