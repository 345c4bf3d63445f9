package bucketstore

import (
	"context"
	"io"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/thanos-io/objstore"
)

// unreachableBucket fails every call but Iter while down is set: the bucket listing
// still worked, then the object store went away in the middle of a sync.
type unreachableBucket struct {
	objstore.Bucket
	down atomic.Bool
}

func (b *unreachableBucket) Exists(ctx context.Context, name string) (bool, error) {
	if b.down.Load() {
		return false, errInjected
	}
	return b.Bucket.Exists(ctx, name)
}

func (b *unreachableBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if b.down.Load() {
		return nil, errInjected
	}
	return b.Bucket.Get(ctx, name)
}

func (b *unreachableBucket) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	if b.down.Load() {
		return nil, errInjected
	}
	return b.Bucket.GetRange(ctx, name, off, length)
}

// A sync that lists the bucket but then cannot read or check the meta.json of the blocks
// it serves keeps serving them: dropping them would make every answer silently miss their
// data until a later sync. A new block it cannot read is still skipped.
func TestSyncKeepsServedBlocksWhenTheBucketFailsMidSync(t *testing.T) {
	bkt := &unreachableBucket{Bucket: newBucket(t)}
	a := writeBlock(t, bkt, map[string]string{"replica": "a"}, 3, 0, twoHours)
	b := writeBlock(t, bkt, map[string]string{"replica": "b"}, 3, 0, twoHours)
	s := newSyncedStore(t, bkt, Config{})
	checkServed(t, s, a, b)

	c := writeBlock(t, bkt, map[string]string{"replica": "c"}, 3, 0, twoHours)
	bkt.down.Store(true)
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkServed(t, s, a, b)
	if n := testutil.ToFloat64(s.metrics.loadFailures); n != 1 {
		t.Errorf("load failures = %v, want 1 (the new block whose meta.json could not be read)", n)
	}

	bkt.down.Store(false)
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkServed(t, s, a, b, c)

	// A block whose meta.json is really gone is still dropped.
	if err := bkt.Delete(context.Background(), a.String()+"/meta.json"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkServed(t, s, b, c)
}
