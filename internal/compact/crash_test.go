package compact

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/thanos-io/objstore"

	"github.com/vigilhq/vigil/internal/block"
)

var errCrashed = errors.New("process crashed")

// crashBucket simulates the compactor process dying: after crashAt writes (uploads and
// deletes) have landed it cancels the compactor's context and fails every later call,
// so nothing the dead process would still have done reaches the bucket.
type crashBucket struct {
	objstore.Bucket
	mu      sync.Mutex
	writes  int
	crashAt int // 0: never
	crashed bool
	cancel  context.CancelFunc
}

func (b *crashBucket) dead() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.crashed
}

func (b *crashBucket) write(op func() error) error {
	if b.dead() {
		return errCrashed
	}
	err := op()
	b.mu.Lock()
	b.writes++
	if b.crashAt > 0 && b.writes >= b.crashAt && !b.crashed {
		b.crashed = true
		b.cancel()
	}
	b.mu.Unlock()
	return err
}

func (b *crashBucket) Upload(ctx context.Context, name string, r io.Reader, opts ...objstore.ObjectUploadOption) error {
	return b.write(func() error { return b.Bucket.Upload(ctx, name, r, opts...) })
}

func (b *crashBucket) Delete(ctx context.Context, name string) error {
	return b.write(func() error { return b.Bucket.Delete(ctx, name) })
}

func (b *crashBucket) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if b.dead() {
		return nil, errCrashed
	}
	return b.Bucket.Get(ctx, name)
}

func (b *crashBucket) Iter(ctx context.Context, dir string, f func(string) error, opts ...objstore.IterOption) error {
	if b.dead() {
		return errCrashed
	}
	return b.Bucket.Iter(ctx, dir, f, opts...)
}

func (b *crashBucket) Exists(ctx context.Context, name string) (bool, error) {
	if b.dead() {
		return false, errCrashed
	}
	return b.Bucket.Exists(ctx, name)
}

func (b *crashBucket) Attributes(ctx context.Context, name string) (objstore.ObjectAttributes, error) {
	if b.dead() {
		return objstore.ObjectAttributes{}, errCrashed
	}
	return b.Bucket.Attributes(ctx, name)
}

// crashScenario builds local blocks once and says what their data deduplicates to.
type crashScenario struct {
	name  string
	cfg   Config
	specs func() (blocks []spec, want map[string][]sample)
}

// multiReplicaSpecs are n 2h windows of two replicas, with gaps as in replicaSpecs.
func multiReplicaSpecs(n int64) (a, b []spec) {
	la, lb := map[string]string{"cluster": "eu", "replica": "a"}, map[string]string{"cluster": "eu", "replica": "b"}
	for i := range n {
		mint, maxt := base+i*2*hour, base+(i+1)*2*hour
		a = append(a, spec{mint: mint, maxt: maxt, labels: la, series: 2, gaps: [][2]int64{{mint + 30*minute, mint + 40*minute}}})
		b = append(b, spec{mint: mint, maxt: maxt, labels: lb, series: 2, offset: 3000, gaps: [][2]int64{{mint + 60*minute, mint + 70*minute}}})
	}
	return a, b
}

var crashScenarios = []crashScenario{
	{
		name: "horizontal",
		cfg:  Config{DisableDownsampling: true},
		specs: func() ([]spec, map[string][]sample) {
			specs := fiveBlocks(nil)
			return specs, expectSeries(specs...)
		},
	},
	{
		name: "replicas",
		cfg:  Config{DisableDownsampling: true, ReplicaLabels: []string{"replica"}, CompactConcurrency: 2},
		specs: func() ([]spec, map[string][]sample) {
			a, b := multiReplicaSpecs(5)
			return append(a, b...), dedupExpected(a, b)
		},
	},
}

// fillBucket uploads the prepared block directories.
func fillBucket(t *testing.T, bkt objstore.Bucket, dirs []string) {
	t.Helper()
	for _, d := range dirs {
		if err := block.Upload(context.Background(), slog.New(slog.DiscardHandler), bkt, d); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCrashSafety kills the compactor at every bucket write of a pass (and at random
// moments), restarts it and checks that no sample was lost at any time and that, once
// the restarted compactor has run, every sample is visible exactly once.
func TestCrashSafety(t *testing.T) {
	for _, sc := range crashScenarios {
		t.Run(sc.name, func(t *testing.T) {
			specs, want := sc.specs()
			var dirs []string
			for _, sp := range specs {
				dirs = append(dirs, makeBlock(t, t.TempDir(), sp))
			}
			// A clean pass tells how many writes there are and how long it takes.
			bkt := &crashBucket{Bucket: objstore.NewInMemBucket()}
			fillBucket(t, bkt, dirs)
			start := time.Now()
			if err := newCompactor(t, bkt, sc.cfg).Iteration(context.Background()); err != nil {
				t.Fatal(err)
			}
			passTime := time.Since(start)
			checkVisible(t, bkt, want)
			total := bkt.writes
			t.Logf("a pass makes %d bucket writes in %s", total, passTime)

			step := max(1, total/30)
			for k := 1; k <= total; k += step {
				crashTrial(t, sc, dirs, want, k, 0)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			for range 8 {
				crashTrial(t, sc, dirs, want, 0, time.Duration(rng.Int64N(int64(passTime))))
			}
		})
	}
}

// crashTrial runs a pass that dies after crashAt writes or after delay, checks that
// all data is still in the bucket, restarts the compactor and checks the result.
func crashTrial(t *testing.T, sc crashScenario, dirs []string, want map[string][]sample, crashAt int, delay time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bkt := &crashBucket{Bucket: objstore.NewInMemBucket(), cancel: cancel}
	fillBucket(t, bkt, dirs)
	cfg := sc.cfg
	cfg.DataDir = t.TempDir()
	bkt.writes, bkt.crashAt = 0, crashAt
	if delay > 0 {
		time.AfterFunc(delay, func() {
			bkt.mu.Lock()
			bkt.crashed = true
			bkt.mu.Unlock()
			cancel()
		})
	}
	err := newCompactor(t, bkt, cfg).Iteration(ctx)
	if IsHalt(err) {
		t.Fatalf("crash at write %d / after %s: halt error %v", crashAt, delay, err)
	}
	bkt.mu.Lock()
	bkt.crashed, bkt.crashAt = true, 0
	bkt.mu.Unlock()

	// Whatever the dead process left, every sample is still readable.
	all, _ := bucketMetas(t, bkt.Bucket)
	got := map[string]map[sample]bool{}
	for _, m := range all {
		for k, ss := range readSeries(t, bkt.Bucket, []*block.Meta{m}) {
			if got[k] == nil {
				got[k] = map[sample]bool{}
			}
			for _, s := range ss {
				got[k][s] = true
			}
		}
	}
	for k, ss := range want {
		for _, s := range ss {
			if !got[k][s] {
				t.Fatalf("crash at write %d / after %s: sample %v of %s lost", crashAt, delay, s, k)
			}
		}
	}

	// Restart (same data directory, leftovers and all) and finish.
	if err := newCompactor(t, bkt.Bucket, cfg).Iteration(context.Background()); err != nil {
		t.Fatalf("crash at write %d / after %s: pass after restart: %v", crashAt, delay, err)
	}
	checkVisible(t, bkt.Bucket, want)
}

// checkVisible checks that the visible blocks hold exactly want, without overlaps.
func checkVisible(t *testing.T, bkt objstore.Bucket, want map[string][]sample) {
	t.Helper()
	vis := visible(t, bkt)
	checkNoOverlap(t, vis)
	equalSeries(t, readSeries(t, bkt, vis), want)
}
