package compact

import (
	"context"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

// watchedBucket counts the calls made after Run returned, and can hold every upload of
// a meta.json until its context ends (a slow upload in flight when leadership ends).
type watchedBucket struct {
	objstore.Bucket
	returned  atomic.Bool
	late      atomic.Int64 // calls after returned was set
	holdMeta  bool
	iterDelay time.Duration // a slow listing, which does not notice cancellation
	heldOnce  sync.Once
	held      chan struct{} // closed when the first meta.json upload is held
	lateNames sync.Map
}

func (b *watchedBucket) note(name string) {
	if b.returned.Load() {
		b.late.Add(1)
		b.lateNames.Store(name, true)
	}
}

func (b *watchedBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	b.note(name)
	if b.holdMeta && strings.HasSuffix(name, "/"+block.MetaFilename) {
		b.heldOnce.Do(func() { close(b.held) })
		<-ctx.Done()
		return ctx.Err()
	}
	return b.Bucket.Upload(ctx, name, r, opts...)
}

func (b *watchedBucket) Delete(ctx context.Context, name string) error {
	b.note(name)
	return b.Bucket.Delete(ctx, name)
}

func (b *watchedBucket) Iter(ctx context.Context, dir string, f func(string) error, opts ...objstore.IterOption) error {
	b.note(dir)
	time.Sleep(b.iterDelay)
	return b.Bucket.Iter(ctx, dir, f, opts...)
}

func (b *watchedBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	b.note(name)
	return b.Bucket.Get(ctx, name)
}

// With leader election Run's context ends when leadership does: Run must then return
// promptly, with nothing it started (iterations, periodic cleanups) still using the
// bucket afterwards.
func TestRunStopsEverythingBeforeReturning(t *testing.T) {
	for i := range 3 { // a cleanup in flight at cancellation is a matter of timing
		bkt := &watchedBucket{Bucket: objstore.NewInMemBucket(), iterDelay: 20 * time.Millisecond}
		for _, sp := range fiveBlocks(nil) {
			upload(t, bkt.Bucket, sp)
		}
		c := newCompactor(t, bkt, Config{DisableDownsampling: true})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			err := c.Run(ctx, RunOptions{Wait: true, WaitInterval: 5 * time.Millisecond, CleanupInterval: time.Millisecond})
			bkt.returned.Store(true)
			done <- err
		}()
		time.Sleep(time.Duration(200+50*i) * time.Millisecond)
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
		time.Sleep(100 * time.Millisecond)
		if n := bkt.late.Load(); n > 0 {
			var names []string
			bkt.lateNames.Range(func(k, _ any) bool { names = append(names, k.(string)); return true })
			t.Fatalf("%d bucket calls after Run returned: %v", n, names)
		}
	}
}

// A compaction whose upload is in flight when the context ends is abandoned without
// leaving a visible block, and Run returns at once; the next Run (a new term of
// leadership) finishes the work.
func TestRunCancelledDuringUpload(t *testing.T) {
	bkt := &watchedBucket{Bucket: objstore.NewInMemBucket(), holdMeta: true, held: make(chan struct{})}
	specs := fiveBlocks(nil)
	for _, sp := range specs {
		upload(t, bkt.Bucket, sp)
	}
	c := newCompactor(t, bkt, Config{DisableDownsampling: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, RunOptions{Wait: true, WaitInterval: time.Hour}) }()
	select {
	case <-bkt.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the compacted block's meta.json was never uploaded")
	}
	cancelled := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	t.Logf("Run returned %s after cancellation during the upload", time.Since(cancelled))
	if vis := visible(t, bkt.Bucket); len(vis) != len(specs) {
		t.Fatalf("%d visible blocks after the cancelled compaction, want the %d sources untouched", len(vis), len(specs))
	}

	bkt.holdMeta = false
	if err := c.Run(context.Background(), RunOptions{}); err != nil {
		t.Fatalf("next Run: %v", err)
	}
	vis := visible(t, bkt.Bucket)
	checkNoOverlap(t, vis)
	equalSeries(t, readSeries(t, bkt.Bucket, vis), expectSeries(specs...))
	if len(vis) != 2 {
		t.Errorf("%d visible blocks after the next Run, want the 8h block and the newest 2h block", len(vis))
	}
}

// A halted compactor stays halted when leadership comes back: Run idles.
func TestRunStaysHalted(t *testing.T) {
	bkt := &watchedBucket{Bucket: objstore.NewInMemBucket()}
	c := newCompactor(t, bkt, Config{})
	c.halted.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	bkt.returned.Store(true) // count every call
	if err := c.Run(ctx, RunOptions{Wait: true, WaitInterval: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if n := bkt.late.Load(); n > 0 {
		t.Errorf("a halted compactor made %d bucket calls", n)
	}
}
