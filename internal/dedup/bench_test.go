package dedup

import (
	"testing"

	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// benchReplicas is 24h of a counter at 15s in two replicas (7s apart), XOR-encoded in
// 120-sample chunks; each replica has a few gaps so the merge switches.
func benchReplicas(tb testing.TB) (a, b []xorChunk) {
	const day = 24 * 3600_000
	val := func(t int64) float64 { return float64(t) / 100 }
	ra := series(every(0, day, s15, [2]int64{3600_000, 3900_000}, [2]int64{40_000_000, 40_600_000}), val)
	rb := series(every(7000, day, s15, [2]int64{20_000_000, 20_300_000}, [2]int64{60_000_000, 60_180_000}), val)
	return xorChunks(tb, ra), xorChunks(tb, rb)
}

// drain iterates it to the end, reading every value, and returns the sample count.
func drain(it chunkenc.Iterator) int {
	n := 0
	var sum float64
	for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
		_, f := it.At()
		sum += f
		n++
	}
	_ = sum
	return n
}

func benchMerge(b *testing.B, opts *Options) {
	ca, cb := benchReplicas(b)
	ia, ib := &chunksIter{}, &chunksIter{}
	its := make([]chunkenc.Iterator, 2)
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		ia.reset(ca)
		ib.reset(cb)
		its[0], its[1] = ia, ib
		if opts == nil { // baseline: decoding one replica's chunks alone
			n = drain(ia)
			continue
		}
		n = drain(NewIterator(its, *opts))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/sample")
}

// BenchmarkGapFill merges two replicas of a day at 15s (~5760 samples out).
func BenchmarkGapFill(b *testing.B) {
	b.Run("decode-one-replica", func(b *testing.B) { benchMerge(b, nil) })
	b.Run("gauge", func(b *testing.B) { benchMerge(b, &Options{}) })
	b.Run("counter", func(b *testing.B) { benchMerge(b, &Options{Counter: true}) })
}

// BenchmarkPenalty is the same merge with Thanos's penalty algorithm.
func BenchmarkPenalty(b *testing.B) {
	b.Run("gauge", func(b *testing.B) { benchMerge(b, &Options{Func: Penalty}) })
	b.Run("counter", func(b *testing.B) { benchMerge(b, &Options{Func: Penalty, Counter: true}) })
}

// TestNoAllocationPerSample: a whole day's merge allocates only at construction.
func TestNoAllocationPerSample(t *testing.T) {
	ca, cb := benchReplicas(t)
	for _, opts := range []Options{{}, {Counter: true}, {Func: Penalty}, {Func: Penalty, Counter: true}} {
		ia, ib := &chunksIter{}, &chunksIter{}
		ia.reset(ca)
		ib.reset(cb)
		drain(ia) // warm the reused chunk iterators
		drain(ib)
		its := make([]chunkenc.Iterator, 2)
		n := 0
		allocs := testing.AllocsPerRun(5, func() {
			ia.reset(ca)
			ib.reset(cb)
			its[0], its[1] = ia, ib
			n = drain(NewIterator(its, opts))
		})
		if n < 5700 || allocs > 4 {
			t.Errorf("%+v: %v allocations for %d samples, want a few at construction only", opts, allocs, n)
		}
		t.Logf("%+v: %v allocations for %d samples", opts, allocs, n)
	}
}
