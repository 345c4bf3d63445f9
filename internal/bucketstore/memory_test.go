package bucketstore

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vigilhq/vigil/internal/storeapi"
	"github.com/vigilhq/vigil/internal/storeapi/storepb"
)

// memBucket writes blocks replicas × spans blocks of n series each (two label sets, so
// the blocks are merged across replicas and time).
func memBucket(t *testing.T, n, spans int) *countingBucket {
	t.Helper()
	bkt := &countingBucket{Bucket: newBucket(t)}
	for _, r := range []string{"a", "b"} {
		for k := range spans {
			writeBlock(t, bkt, map[string]string{"replica": r}, n, int64(k)*twoHours, int64(k+1)*twoHours)
		}
	}
	return bkt
}

// chunkReads counts the GetRange calls on chunk segment files so far.
func (b *countingBucket) chunkReads() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, r := range b.ranges {
		if strings.Contains(r.name, "/chunks/") {
			n++
		}
	}
	return n
}

func seriesAnswer(t *testing.T, ss []*storepb.Series) string {
	t.Helper()
	var b strings.Builder
	for _, s := range ss {
		fmt.Fprintf(&b, "%s:", storeapi.LabelsFromProto(s.Labels))
		for _, c := range s.Chunks {
			fmt.Fprintf(&b, " %d-%d/%x", c.MinTime, c.MaxTime, c.GetRaw().GetHash())
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Batches are cut by bytes: a small --store.series-batch-size holds less at once, with the
// same answer, and still one range read per block (the chunk stream spans batches).
func TestSeriesBatchesAreCutByBytes(t *testing.T) {
	bkt := memBucket(t, 300, 1)
	req := &storepb.SeriesRequest{MinTime: 0, MaxTime: twoHours, Matchers: matchName("m"), WithoutReplicaLabels: []string{"replica"}}
	var answers []string
	var reads []int
	var peaks []int64
	for _, size := range []int64{8 << 10, 64 << 10, 16 << 20} {
		s := startStore(t, bkt, Config{BatchBytes: size})
		var peak atomic.Int64
		s.peakHook.Store(ptr(func(n int64) { peak.Store(n) }))
		before := bkt.chunkReads()
		got, err := collect(t, s.client, req)
		if err != nil || len(got) != 300 {
			t.Fatalf("batch size %d: %d series, %v", size, len(got), err)
		}
		answers = append(answers, seriesAnswer(t, got))
		reads = append(reads, bkt.chunkReads()-before)
		peaks = append(peaks, peak.Load())
	}
	if answers[0] != answers[1] || answers[1] != answers[2] {
		t.Fatal("the answer depends on the batch size")
	}
	// 300 series × 4 chunks of about 200 bytes, plus labels: 2 blocks × ~350 KiB.
	if !(peaks[0] < peaks[1] && peaks[1] < peaks[2]) || peaks[0] > 3*2*(8<<10)+8<<10 {
		t.Fatalf("peak bytes held for batch sizes 8KiB, 64KiB, 16MiB: %v; want more for larger batches, within 3 batches per block", peaks)
	}
	if reads[0] != 2 || reads[1] != 2 || reads[2] != 2 {
		t.Fatalf("chunk range reads for batch sizes 8KiB, 64KiB, 16MiB: %v; want one per block", reads)
	}
}

// The most a request holds at once stays within --store.limits.request-bytes, whatever the
// number of blocks: their batches shrink to fit.
func TestSeriesRequestPeakStaysWithinTheLimit(t *testing.T) {
	bkt := memBucket(t, 200, 4) // 8 blocks
	req := &storepb.SeriesRequest{MinTime: 0, MaxTime: 4 * twoHours, Matchers: matchName("m"), WithoutReplicaLabels: []string{"replica"}}
	full := startStore(t, bkt, Config{})
	want, err := collect(t, full.client, req)
	if err != nil || len(want) != 200 {
		t.Fatalf("%d series, %v", len(want), err)
	}
	var fullPeak atomic.Int64
	full.peakHook.Store(ptr(func(n int64) { fullPeak.Store(n) }))
	if _, err := collect(t, full.client, req); err != nil {
		t.Fatal(err)
	}
	const limit = 512 << 10
	if fullPeak.Load() <= limit {
		t.Fatalf("without a limit the request peaks at %d bytes; the test needs more than %d", fullPeak.Load(), limit)
	}
	s := startStore(t, bkt, Config{RequestBytes: limit})
	var peak atomic.Int64
	s.peakHook.Store(ptr(func(n int64) { peak.Store(n) }))
	got, err := collect(t, s.client, req)
	if err != nil {
		t.Fatalf("within the limit: %v", err)
	}
	if seriesAnswer(t, got) != seriesAnswer(t, want) {
		t.Fatal("a request within its limit answered differently")
	}
	if p := peak.Load(); p <= 0 || p > limit {
		t.Fatalf("peak %d bytes held, limit %d", p, limit)
	}
	if s.pool.used != 0 {
		t.Fatalf("%d bytes still held after the request", s.pool.used)
	}
}

// A request that cannot fit its limit fails with ResourceExhausted before reading the
// chunks it cannot hold, and gives back everything it held.
func TestSeriesRequestOverTheLimitIsResourceExhausted(t *testing.T) {
	bkt := memBucket(t, 200, 2)
	s := startStore(t, bkt, Config{RequestBytes: 4 << 10})
	before := bkt.chunkReads()
	_, err := collect(t, s.client, &storepb.SeriesRequest{MinTime: 0, MaxTime: 2 * twoHours, Matchers: matchName("m")})
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "--store.limits.request-bytes") {
		t.Fatalf("got %v, want ResourceExhausted naming --store.limits.request-bytes", err)
	}
	if n := bkt.chunkReads() - before; n > 4 {
		t.Fatalf("%d chunk reads for a request refused at its first batches", n)
	}
	if s.pool.used != 0 || testutil.ToFloat64(s.pool.inUse) != 0 {
		t.Fatalf("%d bytes still held after the refused request", s.pool.used)
	}
}

// The bytes counted for a batch are its series as sent: held while in flight, all given
// back once sent.
func TestHeldSizeCountsLabelsChunksAndStructures(t *testing.T) {
	sr := &storepb.Series{
		Labels: []*storepb.Label{{Name: "__name__", Value: "m"}, {Name: "i", Value: "001"}},
		Chunks: []*storepb.AggrChunk{{Raw: &storepb.Chunk{Data: make([]byte, 100)}}, {Raw: &storepb.Chunk{Data: make([]byte, 50)}}},
	}
	want := seriesOverhead + 2*labelOverhead + int64(len("__name__m")+len("i001")) + 2*chunkOverhead + 150
	if got := heldSize(sr); got != want {
		t.Fatalf("heldSize = %d, want %d", got, want)
	}
}

// After requests, the store holds what its caches account for and nothing more: the
// request accounting is back at zero and the Go heap, after a collection, has grown by
// no more than the index cache.
func TestMemoryAfterRequestsIsWhatTheCacheHolds(t *testing.T) {
	bkt := memBucket(t, 300, 2)
	s := startStore(t, bkt, Config{KeepFreedMemory: true})
	req := &storepb.SeriesRequest{MinTime: 0, MaxTime: 2 * twoHours, Matchers: matchName("m"), WithoutReplicaLabels: []string{"replica"}}
	if _, err := collect(t, s.client, req); err != nil { // fills the index cache
		t.Fatal(err)
	}
	heap := func() int64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc)
	}
	cacheBefore, heapBefore := s.cache.size, heap()
	for range 10 {
		got, err := collect(t, s.client, req)
		if err != nil || len(got) != 300 {
			t.Fatalf("%d series, %v", len(got), err)
		}
	}
	grown := heap() - heapBefore
	cacheGrown := s.cache.size - cacheBefore
	if s.pool.used != 0 {
		t.Fatalf("%d batch bytes held after the requests", s.pool.used)
	}
	// Ten requests read ~3 MiB of series each; what stays must be the cache's growth
	// plus noise (gRPC and test bookkeeping), not a share of what they read.
	if grown > cacheGrown+512<<10 {
		t.Fatalf("heap grew by %d bytes over 10 requests, the index cache by %d", grown, cacheGrown)
	}
}

// Once the store is idle after Series calls that held enough, freed memory is given back,
// once; calls that keep coming postpone it.
func TestReleaserRunsOnceWhenIdle(t *testing.T) {
	bkt := memBucket(t, 100, 1)
	s := startStore(t, bkt, Config{})
	var mu sync.Mutex
	var releases []time.Time
	s.rel.configure(100*time.Millisecond, 1, func() {
		mu.Lock()
		releases = append(releases, time.Now())
		mu.Unlock()
	})
	req := &storepb.SeriesRequest{MinTime: 0, MaxTime: twoHours, Matchers: matchName("m")}
	var last time.Time
	for range 5 { // back to back: no release in between
		if _, err := collect(t, s.client, req); err != nil {
			t.Fatal(err)
		}
		last = time.Now()
	}
	time.Sleep(400 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(releases) != 1 {
		t.Fatalf("%d releases after a burst of requests, want 1", len(releases))
	}
	if releases[0].Before(last.Add(90 * time.Millisecond)) {
		t.Fatal("released before the store was idle")
	}
	if n := testutil.ToFloat64(s.rel.releases); n != 1 {
		t.Fatalf("vigil_store_memory_releases_total = %v", n)
	}
}

// A chunk stream that ends inside a chunk (longer than estimated, past the window) is
// restarted at that chunk, as long as its header says; the answer is the same.
func TestChunksLongerThanEstimatedAreReadAlone(t *testing.T) {
	bkt := memBucket(t, 50, 1)
	req := &storepb.SeriesRequest{MinTime: 0, MaxTime: twoHours, Matchers: matchName("m")}
	s := startStore(t, bkt, Config{})
	want, err := collect(t, s.client, req)
	if err != nil {
		t.Fatal(err)
	}
	small := startStore(t, bkt, Config{BatchBytes: 4 << 10})
	for _, set := range small.sets() {
		for _, b := range set.blocks {
			b.window, b.chunkEst = 1, 1
			b.avgChunk.Store(1)
		}
	}
	before := bkt.chunkReads()
	got, err := collect(t, small.client, req)
	if err != nil {
		t.Fatal(err)
	}
	if seriesAnswer(t, got) != seriesAnswer(t, want) {
		t.Fatal("chunks read with too small estimates differ")
	}
	if bkt.chunkReads()-before <= 2 {
		t.Fatal("no chunk stream was restarted")
	}
}

func ptr[T any](v T) *T { return &v }

// BenchmarkSeriesRead measures one block stream's batch reads (series entries from the
// index cache after the first run, chunks from a filesystem bucket).
func BenchmarkSeriesRead(b *testing.B) {
	bkt := &countingBucket{Bucket: newBucket(b)}
	writeBlock(b, bkt, map[string]string{"replica": "a"}, 2000, 0, twoHours)
	s := newSyncedStore(b, bkt, Config{})
	blk := s.sets()[0].blocks[0]
	ms, _ := storeapi.MatchersFromProto(matchName("m"))
	for _, size := range []int64{64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("batch=%dKiB", size>>10), func(b *testing.B) {
			b.ReportAllocs()
			q := &seriesQuery{mint: 0, maxt: twoHours}
			var chunkBytes int64
			for b.Loop() {
				p, err := blk.postings(context.Background(), ms)
				if err != nil {
					b.Fatal(err)
				}
				r := blk.newSeriesReader(p, q, size, maxBatchSeries)
				for {
					raws, err := r.nextBatch(context.Background(), nil)
					if err != nil {
						b.Fatal(err)
					}
					if len(raws) == 0 {
						break
					}
					for _, rs := range raws {
						for _, c := range rs.chunks {
							chunkBytes += int64(len(c.Raw.Data))
						}
					}
				}
				r.close()
			}
			b.SetBytes(chunkBytes / int64(b.N))
		})
	}
}

// BenchmarkFetchChunks measures reading 4000 chunks of one block through a chunk stream.
func BenchmarkFetchChunks(b *testing.B) {
	bkt := &countingBucket{Bucket: newBucket(b)}
	writeBlock(b, bkt, map[string]string{"replica": "a"}, 1000, 0, twoHours)
	s := newSyncedStore(b, bkt, Config{})
	blk := s.sets()[0].blocks[0]
	ms, _ := storeapi.MatchersFromProto(matchName("m"))
	p, err := blk.postings(context.Background(), ms)
	if err != nil {
		b.Fatal(err)
	}
	r := blk.newSeriesReader(p, &seriesQuery{mint: 0, maxt: twoHours}, 1<<40, maxBatchSeries)
	raws, err := r.nextBatch(context.Background(), nil)
	if err != nil || len(raws) != 1000 {
		b.Fatalf("%d series, %v", len(raws), err)
	}
	want, est := slices.Clone(r.want), slices.Clone(r.est)
	r.close()
	b.ReportAllocs()
	for b.Loop() {
		cs := &chunkStream{b: blk}
		if _, err := blk.fetchChunks(context.Background(), cs, want, est, false); err != nil {
			b.Fatal(err)
		}
		cs.close()
	}
}
